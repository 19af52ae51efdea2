// The HTTP face of the gateway: a fixed route table, the request-id, auth and body-limit
// steps, and the writing of JSON, errors and SSE, over an Exchange (exchange.ts) that either the
// fast lane (fast-lane.ts) or node:http carries. Everything else is in core.

import { isUtf8 } from 'node:buffer';
import { createServer, type RequestListener, type Server, type ServerOptions, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { Socket } from 'node:net';
import { FabricError, STREAM_INTERRUPTED, lastSentBackend, toFabricError, wasSent } from '../core/errors.ts';
import { clientRequestId, RequestIds } from '../core/ids.ts';
import { traceContext, type TraceContext } from '../core/trace-context.ts';
import { RequestTrace, operationName, type Attributes } from '../tracing/request-trace.ts';
import type { Tracing } from '../tracing/otlp.ts';
import { Cancel } from '../core/upstream.ts';
import { RefusalLines } from './refusal-lines.ts';
import { BodyBudget } from './body-budget.ts';
import type { ProbeNowResult } from '../health/probe.ts';
import { ClientClosed, type Gateway, type HoldingSink, type RequestContext, type Served } from '../core/gateway.ts';
import type { Logger } from '../core/log.ts';
import { isAudioOp, isPoolingOp, type AudioOperation, type JsonObject, type Operation } from '../engines/types.ts';
import { MasterKey } from './auth.ts';
import { checkDialectBody, validateRequest } from './validate.ts';
import { parseAudioRequest } from './audio.ts';
import { allowedOrigin, corsHeaders, isPreflight, OpenGatewayGuard, preflightHeaders } from './cors.ts';
import { fromResponsesRequest, referencedIds, responsesParam, type ResponsesEcho } from './responses/request.ts';
import { ResponseIds, toResponse } from './responses/response.ts';
import { ResponsesStream } from './responses/stream.ts';
import { RecentItems } from './responses/items.ts';
import { fromMessagesRequest, type MessagesEcho } from './messages/request.ts';
import { errorBody, errorEvent, messageId, toMessage } from './messages/response.ts';
import { MessagesStream } from './messages/stream.ts';
import { healthBody, modelsBody, modelBody } from './info.ts';
import type { ConfigState } from '../health/alerts.ts';
import { suggest } from '../config/issues.ts';
import { GatewayMetrics, NO_ROLE } from '../metrics/gateway-metrics.ts';
import { allows, type Accounting } from '../accounting/service.ts';
import { bodySize, IMAGE_PART_BOUND, promptEstimate, type RequestAccount } from '../accounting/account.ts';
import { BYTES_PER_TOKEN } from '../tokens/estimate.ts';
import { CapturingSink } from '../accounting/request-log.ts';
import type { KeyRecord, UsageRecord } from '../store/types.ts';
import { handleAdmin, isAdminPath, MAX_ADMIN_BODY, modelsForKey } from './admin.ts';
import { PROMETHEUS_CONTENT_TYPE, type Snapshot } from '../metrics/registry.ts';
import { bodyTimedOut, closingErrorAnswer, NodeExchange, sendJson, sendText, type Exchange } from './exchange.ts';
import { FastLane } from './fast-lane.ts';
import { dashboardAsset } from './dashboard/assets.ts';
import { KeepingSink, ResponseCache, type CachePlan, type CacheResult } from '../cache/response-cache.ts';
import { ownAnswer, type CacheEntry } from '../cache/entry.ts';
import { CACHE_BACKEND } from '../config/types.ts';
import type { Usage } from '../engines/types.ts';

export interface AppState {
  gateway: Gateway;
  masterKey: MasterKey | undefined;
  log: Logger;
  /** Set on SIGTERM: readiness fails and new requests are refused while in-flight ones finish. */
  draining: boolean;
  startedAt: number;
  /** Created with the server when not given. */
  metrics?: GatewayMetrics;
  /** Keys, limits, budgets and usage (src/accounting); absent when the gateway runs without a store. */
  accounting?: Accounting;
  /** The output items of Responses answers (an item_reference names them); created with the server when not given. */
  recentItems?: RecentItems;
  /** Set when a drain's grace ran out and the connections still open were closed. */
  cutOff?: boolean;
  /** Ends every stream already begun with a shutting_down error event; how many were open. Set by the server. */
  cutStreams?: () => number;
  /** Probes the named backends (every one when none is named) now, cutting a cooldown short for those that answer. */
  probeNow?: (names: readonly string[]) => Promise<ProbeNowResult[]>;
  /** The other worker processes sharing the port (src/cli/siblings.ts), when there are; `index`: this one's. */
  workers?: { index: string; ask(topic: string, payload: unknown): Promise<unknown[]> };
  /** The config running, and the last reload refused since (fabric serve keeps it). */
  config?: ConfigState;
  /** gateway.tracing: the requests' spans, to an OTLP collector (src/tracing). */
  tracing?: Tracing;
  /** gateway.cache: answers kept and given again (src/cache); created with the server when not given. */
  cache?: ResponseCache;
}

const JSON_TYPE = 'application/json';

/**
 * An API served over chat completions in another dialect, translated before routing and after
 * answering: OpenAI's Responses API (src/http/responses/), Anthropic's Messages API (src/http/messages/).
 */
type Dialect = 'responses' | 'messages';

interface PostRoute {
  op: Operation;
  api: Dialect | undefined;
}

const POST_ROUTES: Record<string, PostRoute> = {
  '/v1/chat/completions': { op: 'chat', api: undefined },
  '/chat/completions': { op: 'chat', api: undefined },
  '/v1/completions': { op: 'completions', api: undefined },
  '/completions': { op: 'completions', api: undefined },
  '/v1/embeddings': { op: 'embeddings', api: undefined },
  '/embeddings': { op: 'embeddings', api: undefined },
  // Jina's and Cohere's reranking API, at the paths vLLM serves it (/v2/rerank: Cohere's v2 clients).
  '/v1/rerank': { op: 'rerank', api: undefined },
  '/rerank': { op: 'rerank', api: undefined },
  '/v2/rerank': { op: 'rerank', api: undefined },
  '/v1/responses': { op: 'chat', api: 'responses' },
  '/responses': { op: 'chat', api: 'responses' },
  // Anthropic's Messages API: Claude Code and Anthropic's SDKs (their base URL is the gateway's, without /v1).
  '/v1/messages': { op: 'chat', api: 'messages' },
  '/messages': { op: 'chat', api: 'messages' },
  '/v1/audio/transcriptions': { op: 'transcriptions', api: undefined },
  '/audio/transcriptions': { op: 'transcriptions', api: undefined },
  '/v1/audio/translations': { op: 'translations', api: undefined },
  '/audio/translations': { op: 'translations', api: undefined },
};

/** Anthropic's token count (POST): the gateway's estimate, with its tokenizer; no backend is asked. */
const COUNT_TOKENS_PATHS = new Set(['/v1/messages/count_tokens', '/messages/count_tokens']);

/** Paths answered to GET and HEAD (besides /v1/models/{id}): any other method there is a 405, and a path in neither table a 404. */
const GET_PATHS = new Set(['/health/live', '/healthz', '/health/ready', '/readyz', '/health', '/metrics', '/v1/models', '/models', '/']);

/** `anthropic`: the error in Anthropic's shape (its Messages API's routes), with the request's id. */
function sendError(x: Exchange, e: FabricError, anthropic?: string): void {
  // A 401 names the scheme it wants (RFC 9110 §11.6.1).
  sendJson(x, e.status, anthropic === undefined ? JSON.stringify(e.toBody()) : errorBody(e, anthropic), e.status === 401 ? { ...e.headers, 'www-authenticate': 'Bearer' } : e.headers);
}

/**
 * The headers of an answer a backend served, as the flat [name, value, …] list head() takes:
 * one header block built in one go (the request ids come from the exchange's preset). `head`
 * and the route's headers are joined in one list of their size (pushed onto, `head` would grow
 * a larger one first).
 */
function servedHeaders(head: readonly string[], s: Served): string[] {
  const h = head.concat('x-fabric-role', s.role, 'x-fabric-backend', s.backend, 'x-fabric-attempts', String(s.attempts));
  if (s.rerouted) h.push('x-fabric-rerouted', 'true');
  if (s.budgets !== undefined) h.push('x-fabric-budget-exceeded', s.budgets.join(', '));
  return h;
}

const NO_USAGE: Usage = { prompt_tokens: 0, completion_tokens: 0, total_tokens: 0 };

/**
 * An answer from the response cache, as served: by the role that made it, from the cache (no
 * backend, no attempt, no tokens: usage records and metrics count it under CACHE_BACKEND).
 */
function cachedServed(requested: string, route: string, e: CacheEntry): Served {
  return {
    requested, route, role: e.role, backend: CACHE_BACKEND, model: e.model, attempts: 0, rerouted: false, usage: NO_USAGE,
    streamError: undefined, clientHeldBack: false, firstTokenMs: undefined, failures: [], retries: 0,
  };
}

/**
 * x-fabric-drill: fail-primary makes this one request treat its primary backends as failed
 * (fabric smoke --drill). It chooses where a request goes, so only the operator may send it:
 * the master key, or anyone on a gateway without one.
 */
function drill(v: string | string[] | undefined, key: KeyRecord | undefined): boolean | undefined {
  if (v === undefined) return undefined;
  if (key !== undefined) throw new FabricError('permission_denied', 'x-fabric-drill needs the master key; virtual keys cannot send it', { param: 'x-fabric-drill' });
  if (v === 'fail-primary') return true;
  throw new FabricError('invalid_request', `x-fabric-drill must be "fail-primary", not ${JSON.stringify(String(v)).slice(0, 60)}`, { param: 'x-fabric-drill' });
}

/** The gateway's request id and the client's own (x-request-id), and the simulation's label, on every answer. */
function setIdHeaders(x: Exchange, id: string, cid: string | undefined, simulated: boolean): void {
  const h = cid === undefined ? ['x-request-id', id] : ['x-request-id', id, 'x-client-request-id', cid];
  if (simulated) h.push('x-fabric-simulated', 'true');
  x.preset = h;
}

const DONE_EVENT = 'data: [DONE]';
/** How an audio stream's closing event begins (src/engines/audio.ts writes it so). */
const TRANSCRIPT_DONE = 'data: {"type":"transcript.text.done"';

/** Where a chunk's closing `data: [DONE]` event (and its blank line) starts, or -1. Looks at the tail only. */
function doneAt(data: Buffer | string): number {
  const n = data.length;
  if (n < DONE_EVENT.length || (typeof data === 'string' ? data.charCodeAt(n - 1) : data[n - 1]) !== 10) return -1;
  const from = Math.max(0, n - DONE_EVENT.length - 4);
  const i = data.indexOf(DONE_EVENT, from);
  return i === -1 || (i > 0 && (typeof data === 'string' ? data.charCodeAt(i - 1) : data[i - 1]) !== 10) ? -1 : i;
}

class ResponseSink implements HoldingSink {
  readonly #x: Exchange;
  /** performance.now() when the stream was committed to the client. */
  firstByteAt: number | undefined;
  /**
   * Hold the stream's closing [DONE] event and its end until release(): its usage record is
   * spooled first, so a stream the client saw complete is never unrecorded.
   */
  deferEnd = false;
  /** The closing event's start when it is not `data: [DONE]` (an audio stream's transcript.text.done). */
  closingEvent: string | undefined;
  #endPending = false;
  #done: Buffer | string | undefined = undefined;
  constructor(x: Exchange) {
    this.#x = x;
  }
  begin(served: Served): void {
    this.firstByteAt = performance.now();
    this.#x.head(200, servedHeaders(['content-type', 'text/event-stream; charset=utf-8', 'cache-control', 'no-cache', 'x-accel-buffering', 'no'], served));
  }
  write(data: Buffer | string): boolean {
    if (this.#cut) return true;
    if (this.deferEnd) {
      const i = this.closingEvent === undefined ? doneAt(data) : data.indexOf(this.closingEvent);
      if (i !== -1) {
        this.#done = data.slice(i);
        if (i === 0) return true;
        data = data.slice(0, i);
      }
    }
    return this.#x.write(data);
  }
  writeLast(data: string): void {
    if (this.#cut) return;
    if (this.deferEnd) this.#done = this.#done === undefined ? data : this.#done + data;
    else this.#x.write(data);
  }
  onDrain(cb: () => void): void {
    this.#x.onDrain(cb);
  }
  end(): void {
    if (this.#cut) return;
    if (this.deferEnd) this.#endPending = true;
    else this.#x.end();
  }
  release(): void {
    if (this.#cut) return;
    if (this.#done !== undefined && !this.#x.ended) this.#x.write(this.#done);
    this.#done = undefined;
    if (this.#endPending && !this.#x.ended) this.#x.end();
    this.#endPending = false;
  }

  /** The event the drain's end writes into this stream, when not the chat one (a Messages stream's is Anthropic's). */
  cutEvent: string | undefined;

  #cut = false;
  /**
   * The drain's grace ran out: a stream already begun ends with `event` (an error event), so its
   * client is told rather than cut off mid-chunk; what the backend sends after is dropped.
   */
  cut(event: string): void {
    if (this.#cut || this.firstByteAt === undefined || this.#x.ended) return;
    this.#cut = true;
    this.#x.write(event);
    this.#x.end();
  }
}

export interface ServerLimits {
  maxHeaderBytes: number;
  maxBodyBytes: () => number;
  /** Bytes of bodies still arriving, all connections together (gateway.limits.max_body_in_flight). */
  maxBodyInFlightBytes?: () => number;
  /** Off: node:http takes every request (the fast lane's fallback, always there). */
  fastLane: boolean;
  /** How long a request's head, and the whole request, may take to arrive (30 s and 300 s; shorter in tests). */
  timeouts?: { headersMs: number; requestMs: number };
  /** HTTPS with this certificate and key (gateway.tls); node:http then parses every request (the lane reads plain TCP). */
  tls?: { cert: Buffer; key: Buffer };
}

const KEEP_ALIVE_MS = 65_000;

const SHUTTING_DOWN = 'the gateway is shutting down: its drain\'s grace ran out before this stream ended';
/** The drain's end in a Messages stream: Anthropic's error event (an overload: retry elsewhere). */
const MESSAGES_CUT = errorEvent('overloaded_error', SHUTTING_DOWN);

/** node:http's server, or over TLS node:https's (a node:http server underneath: the same options, events and methods). */
function listener(options: ServerOptions, tls: ServerLimits['tls'], handler: RequestListener): Server {
  return tls === undefined ? createServer(options, handler) : createHttpsServer({ ...options, ...tls }, handler) as unknown as Server;
}

/** A client's path or name in a message or log line: its first 200 characters (it may be some 16 KiB). */
function clip(s: string): string {
  return s.length <= 200 ? s : `${s.slice(0, 200)}… (${s.length} characters)`;
}

/**
 * Ends a connection with `last` once the answer in flight has gone: a malformed request
 * pipelined behind a stream must not land inside it. (Answers node:http had queued behind the
 * one in flight are not sent after a parse error; their clients see the connection close.)
 */
function endAfterAnswers(socket: Socket, last: string): void {
  const inFlight = (socket as Socket & { _httpMessage?: ServerResponse | null })._httpMessage;
  // An answer whose own request is not whole (its body cut short: the error is that request's)
  // is not waited for: ending now lets node:http abort it.
  if (inFlight === undefined || inFlight === null || inFlight.req?.complete !== true) {
    socket.end(last);
    return;
  }
  // After node:http's own 'finish' handler, which hands the socket to the next queued answer.
  inFlight.once('finish', () => setImmediate(() => {
    if (socket.writable) endAfterAnswers(socket, last);
  }));
}

export function createGatewayServer(app: AppState, limits: ServerLimits): Server {
  const { maxHeaderBytes, maxBodyBytes } = limits;
  const ids = new RequestIds();
  const metrics = app.metrics ??= new GatewayMetrics(() => app.gateway, app.startedAt);
  metrics.configState = () => app.config;
  metrics.draining = () => app.draining;
  metrics.tracing = app.tracing;
  const refusals = new RefusalLines(app.log);
  /** Streams being relayed: the drain's end tells each one (AppState.cutStreams). */
  const openStreams = new Map<ResponseSink, Cancel>();
  app.cutStreams = () => {
    const event = `data: ${JSON.stringify({ error: { message: SHUTTING_DOWN, type: 'server_error', param: null, code: 'shutting_down' } })}\n\n`;
    const n = openStreams.size;
    // Told, then let go of: its backend request is aborted as when a client leaves.
    for (const [sink, cancel] of openStreams) {
      sink.cut(sink.cutEvent ?? event);
      cancel.abort();
    }
    return n;
  };
  const bodies = new BodyBudget(limits.maxBodyInFlightBytes ?? (() => 128 * 2 ** 20));
  /** Output items of Responses answers, for a later request's item_reference. */
  const recentItems = app.recentItems ??= new RecentItems();
  const cache = app.cache ??= new ResponseCache(app.log);
  metrics.attachCache(cache);

  /** What is known of an inference request when it fails, for its error metrics. */
  interface Inference {
    op: Operation;
    /** POST /v1/responses or /v1/messages: a chat request in another API's dialect, both ways. */
    api: Dialect | undefined;
    /** Its request was translated: later errors name chat fields, to be named as the client's. */
    translated?: boolean;
    model: string | undefined; key: KeyRecord | undefined; account: RequestAccount | undefined; ts: number;
    /** The request's W3C trace (the client's, or the gateway's own when it records spans): its id is in the log line. */
    trace?: TraceContext | undefined;
  }

  /**
   * Runs fn once the usage records added so far are in the spool (src/accounting/writer.ts):
   * an answer a client has received is never unrecorded, even if the process is killed.
   */
  function afterRecord(fn: () => void): void {
    const a = app.accounting;
    if (a === undefined) fn();
    else a.writer.whenSpooled(fn);
  }

  /** Why a body cannot be read: a 415 naming its Content-Encoding when it has one (the gateway decodes none), else a 400. */
  function unreadableBody(x: Exchange, why: string): FabricError {
    const enc = x.headers['content-encoding'];
    return enc !== undefined && enc !== 'identity'
      ? new FabricError('unsupported_media_type', `the request body is ${JSON.stringify(enc.slice(0, 40))}-encoded: send it uncompressed (the gateway does not decode request bodies)`)
      : new FabricError('invalid_json', `the request body ${why}`);
  }

  /** A JSON body's text: invalid UTF-8 would be decoded to U+FFFD and sent on, a prompt other than the one sent. */
  function jsonText(x: Exchange, bytes: Buffer): string {
    if (!isUtf8(bytes)) throw unreadableBody(x, 'is not valid UTF-8');
    return bytes.toString('utf8');
  }

  function parseJson(x: Exchange, raw: string): unknown {
    try {
      return JSON.parse(raw);
    } catch (e) {
      throw unreadableBody(x, `is not valid JSON: ${(e as Error).message}`);
    }
  }

  /** An audio upload (/v1/audio/transcriptions, translations): a whole answer or a stream, never cached. */
  async function runAudio(gw: Gateway, inf: Inference, x: Exchange, ctx: RequestContext, started: number, op: AudioOperation): Promise<void> {
    const read = x.body(gw.config.gateway.limits.maxAudioBytes, 'gateway.limits.max_audio');
    const bytes = read instanceof Promise ? await read : read;
    // Held until answered, with the other bodies the gateway buffers (a slow Whisper must not gather them without bound).
    if (!bodies.take(bytes.length)) throw bodies.refusal('request bodies and audio uploads being transcribed');
    try {
      await transcribe(gw, inf, x, ctx, started, op, bytes);
    } finally {
      bodies.give(bytes.length);
    }
  }

  async function transcribe(gw: Gateway, inf: Inference, x: Exchange, ctx: RequestContext, started: number, op: AudioOperation, bytes: Buffer): Promise<void> {
    ctx.bodyBytes = bytes.length;
    const req = parseAudioRequest(op, bytes, x.headers['content-type']);
    inf.model = req.model;
    ctx.caller = inf.key;
    const acct = app.accounting;
    if (acct !== undefined) {
      const a = acct.admit(op, { model: req.model, stream: req.stream }, '', ctx, inf.key, gw);
      inf.account = a instanceof Promise ? await a : a;
      ctx.account = inf.account;
    }
    if (req.stream) {
      const sink = new ResponseSink(x);
      sink.deferEnd = inf.account !== undefined;
      sink.closingEvent = TRANSCRIPT_DONE;
      openStreams.set(sink, ctx.cancel);
      let served: Served;
      try {
        served = await gw.audioStream(op, req, ctx, sink);
      } finally {
        openStreams.delete(sink);
      }
      const now = performance.now();
      const firstByteAt = sink.firstByteAt;
      const rec = inf.account?.finish(served, now - started, firstByteAt === undefined ? undefined : firstByteAt - started, undefined);
      answered(inf, ctx, served, started, now, firstByteAt, rec, true, undefined, () => sink.release(), req.fileBytes);
      return;
    }
    const { response, served } = await gw.audio(op, req, ctx);
    const now = performance.now();
    const rec = inf.account?.finish(served, now - started, undefined, undefined);
    answered(inf, ctx, served, started, now, undefined, rec, false, undefined, () => {
      x.head(200, servedHeaders(['content-type', response.contentType, 'content-length', String(Buffer.byteLength(response.text))], served));
      x.end(response.text);
    }, req.fileBytes);
  }

  async function runInference(gw: Gateway, inf: Inference, x: Exchange, ctx: RequestContext, started: number): Promise<void> {
    const op = inf.op;
    if (isAudioOp(op)) return runAudio(gw, inf, x, ctx, started, op);
    // Awaited only while the body is still arriving: the usual request has all of it already.
    const read = x.body(maxBodyBytes(), 'gateway.limits.max_body');
    const bytes = read instanceof Promise ? await read : read;
    ctx.bodyBytes = bytes.length;
    const raw = jsonText(x, bytes);
    let parsed = parseJson(x, raw);
    let echo: ResponsesEcho | undefined;
    let messages: MessagesEcho | undefined;
    /** Whose Responses items these are (item_reference finds only a key's own). */
    const owner = inf.key?.id ?? '';
    if (inf.api === 'messages') {
      // Refused in the client's own body, before the fields the chat request does not carry are left out.
      checkDialectBody(parsed, raw, true);
      const t = fromMessagesRequest(parsed, gw.config.gateway.limits);
      parsed = t.chat;
      messages = t.echo;
      inf.translated = true;
    } else if (inf.api === 'responses') {
      // Refused in the client's own body, before the fields the chat request does not carry are left out.
      checkDialectBody(parsed, raw, false);
      // With several workers, items another one returned are asked of it.
      if (recentItems.siblings !== undefined) await recentItems.gather(owner, referencedIds(parsed));
      const t = fromResponsesRequest(parsed, gw.config.gateway.limits, (itemId) => recentItems.recall(owner, itemId), bytes.length);
      parsed = t.chat;
      echo = t.echo;
      inf.translated = true;
      // The prompt's size as routing sees it (the check before sending): what references brought in counts.
      ctx.bodyBytes += t.referencedBytes;
    }
    const body: JsonObject = validateRequest(op, parsed, raw, gw.config.gateway.limits);
    inf.model = body.model as string;
    ctx.caller = inf.key;
    const acct = app.accounting;
    if (acct !== undefined) {
      const a = acct.admit(op, body, raw, ctx, inf.key, gw);
      inf.account = a instanceof Promise ? await a : a;
      ctx.account = inf.account;
    }
    // The response cache, when it covers this route (not for a failure drill, which must reach its fallback).
    const plan: CachePlan | undefined = gw.config.gateway.cache === undefined || ctx.drillFailPrimary === true ? undefined
      : cache.plan(gw, op, body, inf.key, x.headers['cache-control']);
    let hit: CacheEntry | undefined;
    let cached: CacheResult | undefined;
    const stream = body.stream === true && !isPoolingOp(op);
    if (plan !== undefined) {
      // A whole answer may wait for the same one being made now (not a stream), until its client leaves.
      const l = cache.lookup(gw, plan, stream ? undefined : ctx.cancel);
      hit = l instanceof Promise ? await l : l;
      cached = hit !== undefined ? 'hit' : plan.lookup ? 'miss' : 'bypass';
      x.preset!.push('x-fabric-cache', cached);
      if (hit !== undefined) {
        x.preset!.push('age', String(Math.max(0, Math.floor((Date.now() - hit.storedAt) / 1000))));
        const u = hit.usage;
        cache.counters.saved(plan.route, u, u === undefined || acct === undefined ? 0 : acct.prices.cost(hit.backend, u.prompt_tokens, u.completion_tokens, 0));
      }
    }
    let served: Served;
    let firstByteAt: number | undefined;
    let rec: UsageRecord | undefined;
    let now: number;
    /**
     * Sends the answer (unary) or its last bytes (stream), once its usage record is spooled;
     * after the metrics and the log line, so that a failure there still meets an unanswered request.
     */
    let answer: () => void;
    if (stream) {
      const sink = new ResponseSink(x);
      sink.deferEnd = inf.account !== undefined;
      openStreams.set(sink, ctx.cancel);
      // The request log captures what the client got (a Responses stream's events, not the chat chunks under them).
      const capture = acct?.logsBodies === true ? new CapturingSink(sink, gw.config.gateway.requestLog.maxBodyBytes) : undefined;
      const responses = echo === undefined ? undefined
        : new ResponsesStream(capture ?? sink, echo, new ResponseIds(ctx.id), ctx.created, (s) => s.model);
      const anthropic = messages === undefined ? undefined
        : new MessagesStream(capture ?? sink, messages, messageId(ctx.id), (s) => s.model, () => promptEstimate(inf.account?.size ?? bodySize(body)));
      if (anthropic !== undefined) sink.cutEvent = MESSAGES_CUT;
      const out = responses ?? anthropic ?? capture ?? sink;
      // The chat stream's bytes are kept (a Responses stream is translated from them again on a hit).
      const keeping = hit === undefined && plan?.store === true ? new KeepingSink(out, plan.maxEntryBytes, cache.streamBudget) : undefined;
      try {
        if (hit !== undefined) {
          served = cachedServed(body.model as string, plan!.route, hit);
          out.begin(served);
          out.write(ownAnswer(hit, ctx.id, ctx.created));
          out.end();
        } else served = await gw.stream(op, body, ctx, keeping ?? out);
      } catch (e) {
        // What it held counts against every stream's keeping until let go.
        keeping?.dispose();
        throw e;
      } finally {
        openStreams.delete(sink);
      }
      if (keeping !== undefined) {
        const k = served.streamError === undefined ? keeping.kept() : undefined;
        keeping.dispose();
        if (k !== undefined) cache.keep(gw, plan!, served, k.text, k.bytes);
      }
      if (responses?.finished === true) recentItems.remember(owner, responses.output);
      firstByteAt = sink.firstByteAt;
      now = performance.now();
      rec = inf.account?.finish(served, now - started, firstByteAt === undefined ? undefined : firstByteAt - started, capture?.text);
      answer = () => sink.release();
    } else {
      let text = '';
      // Requests waiting for this one's answer (the same, arrived meanwhile) make their own if it ends with none to give them.
      try {
        if (hit !== undefined && echo === undefined && messages === undefined) {
          served = cachedServed(body.model as string, plan!.route, hit);
          text = ownAnswer(hit, ctx.id, ctx.created);
        } else {
          let response: JsonObject;
          if (hit !== undefined) {
            served = cachedServed(body.model as string, plan!.route, hit);
            response = JSON.parse(hit.body) as JsonObject;
          } else {
            const r = await gw.unary(op, body, ctx);
            served = r.served;
            response = r.response;
          }
          const chat = response;
          if (echo !== undefined) {
            response = toResponse(chat, echo, new ResponseIds(ctx.id), ctx.created);
            recentItems.remember(owner, response.output as JsonObject[]);
          } else if (messages !== undefined) response = toMessage(chat, messages, messageId(ctx.id));
          text = JSON.stringify(response);
          // The chat answer is kept (a Responses or Messages answer is made from it again on a hit, with its own ids).
          if (hit === undefined && plan !== undefined && (plan.store || plan.lead !== undefined)) cache.keep(gw, plan, served, response === chat ? text : JSON.stringify(chat));
        }
      } finally {
        if (plan?.lead !== undefined) cache.release(plan);
      }
      now = performance.now();
      rec = inf.account?.finish(served, now - started, undefined, acct?.logsBodies === true ? text : undefined);
      answer = () => {
        x.head(200, servedHeaders(['content-type', JSON_TYPE, 'content-length', String(Buffer.byteLength(text))], served));
        x.end(text);
      };
    }
    answered(inf, ctx, served, started, now, firstByteAt, rec, stream, cached, answer);
  }

  /** An answer made: its metrics, its log line and span, then the answer itself once its usage record is spooled. */
  function answered(inf: Inference, ctx: RequestContext, served: Served, started: number, now: number, firstByteAt: number | undefined,
    rec: UsageRecord | undefined, stream: boolean, cached: CacheResult | undefined, answer: () => void, audioBytes?: number): void {
    const op = inf.op;
    metrics.served(op, served, (now - started) / 1000, firstByteAt === undefined ? undefined : (firstByteAt - started) / 1000);
    // A stream that broke after its first byte was answered 200, and failed: a warning, with the
    // code its usage record and the client's error event carry.
    const broken = served.streamError !== undefined;
    app.log.log(broken ? 'warn' : 'info', 'request', {
      id: ctx.id, client_id: ctx.clientRequestId, trace_id: ctx.trace?.traceId, op, model: served.requested, role: served.role, backend: served.backend,
      status: 200, code: broken ? STREAM_INTERRUPTED : undefined, attempts: served.attempts, rerouted: served.rerouted || undefined, stream: stream || undefined, api: inf.api,
      ms: Math.round((now - started) * 10) / 10,
      prompt_tokens: served.usage?.prompt_tokens ?? rec?.promptTokens, completion_tokens: served.usage?.completion_tokens ?? rec?.completionTokens ?? served.completionEstimate,
      estimated: served.usage === undefined || undefined,
      stream_error: served.streamError,
      key: inf.key?.name, cost: rec === undefined || rec.cost === 0 ? undefined : rec.cost, budget_exceeded: served.budgets, cache: cached, audio_bytes: audioBytes,
    });
    if (inf.trace instanceof RequestTrace) {
      endSpan(inf, 200, {
        'gen_ai.response.model': served.model, 'gen_ai.usage.input_tokens': served.usage?.prompt_tokens ?? rec?.promptTokens, 'gen_ai.usage.output_tokens': served.usage?.completion_tokens ?? rec?.completionTokens,
        'fabric.request_id': ctx.id, 'fabric.role': served.role, 'fabric.backend': served.backend, 'fabric.attempts': served.attempts, 'fabric.rerouted': served.rerouted || undefined,
        'fabric.stream': stream || undefined, 'fabric.cost_usd': rec === undefined || rec.cost === 0 ? undefined : rec.cost,
        'error.type': broken ? STREAM_INTERRUPTED : undefined, 'fabric.cache': cached,
      }, broken ? `stream interrupted: ${served.streamError}` : undefined);
    }
    afterRecord(answer);
  }

  /** The request's SERVER span, when this gateway records its trace (gateway.tracing). */
  function endSpan(inf: Inference, status: number, attrs: Attributes, error: string | undefined): void {
    const op = operationName(inf.op);
    const model = inf.model?.slice(0, 200);
    app.tracing!.end(inf.trace, model === undefined ? op : `${op} ${model}`, {
      'gen_ai.operation.name': op, 'gen_ai.request.model': model, 'http.request.method': 'POST', 'http.response.status_code': status,
      'fabric.api': inf.api, 'fabric.key': inf.key?.name, ...attrs,
    }, error);
  }

  /**
   * Who is calling: the master key (undefined), a virtual key (its record), or a 401. With no
   * master key configured the gateway is open: a known virtual key is still attributed and
   * limited (a revoked or expired one is refused); anything else passes as anonymous.
   */
  function authorize(x: Exchange): KeyRecord | undefined | Promise<KeyRecord> {
    const presented = MasterKey.presented(x.headers);
    if (app.masterKey !== undefined && app.masterKey.matches(presented)) return undefined;
    const keys = app.accounting?.keys;
    if (app.masterKey === undefined) return presented === undefined || keys === undefined || keys.size === 0 ? undefined : keys.verifyKnown(presented);
    if (presented !== undefined && keys !== undefined) return keys.verify(presented);
    throw new FabricError('invalid_api_key', 'Incorrect or missing API key: send the gateway key as "Authorization: Bearer <key>" (or "x-api-key: <key>")');
  }

  /** The master key only (admin, metrics): a virtual key is a 403, anything else a 401. */
  async function masterOnly(x: Exchange, what: string): Promise<void> {
    if (app.masterKey === undefined) return;
    if ((await authorize(x)) !== undefined) throw new FabricError('permission_denied', `${what} needs the master key; virtual keys cannot read it`);
  }

  /**
   * POST /v1/messages/count_tokens: the prompt's tokens as the gateway counts them (its o200k
   * tokenizer over the text the chat request would carry, four tokens a message, an image as 750;
   * past COUNT_EXACT tokens, by bytes): an estimate, not the model's own count; no backend is
   * asked, and nothing is recorded. The model must exist and be one the key may use, as for the
   * request it stands for.
   */
  async function countTokens(x: Exchange, key: KeyRecord | undefined): Promise<void> {
    const gw = app.gateway;
    const read = x.body(maxBodyBytes(), 'gateway.limits.max_body');
    const bytes = read instanceof Promise ? await read : read;
    const raw = jsonText(x, bytes);
    const parsed = parseJson(x, raw);
    checkDialectBody(parsed, raw, true);
    const body = validateRequest('chat', fromMessagesRequest(parsed, gw.config.gateway.limits, true).chat, raw, gw.config.gateway.limits);
    const model = body.model as string;
    const route = gw.route('chat', model, key?.roles === undefined ? undefined : (name) => allows(key, name, gw));
    if (key !== undefined && !allows(key, route.name, gw)) {
      throw new FabricError('model_not_allowed', `key "${key.name}" does not have access to model \`${model}\`; it may use: ${key.roles?.join(', ') || 'nothing'}`, { param: 'model' });
    }
    let images = 0;
    for (const m of body.messages as JsonObject[]) if (Array.isArray(m.content)) for (const p of m.content as JsonObject[]) if (p.type === 'image_url') images++;
    const tokens = await gw.countTokens(body) + images * (IMAGE_PART_BOUND / BYTES_PER_TOKEN);
    sendJson(x, 200, JSON.stringify({ input_tokens: tokens }));
  }

  /** Without a master key: what a web page could make a browser send is refused (cors.ts). */
  const guard = new OpenGatewayGuard();

  async function handle(x: Exchange, id: string): Promise<void> {
    const started = performance.now();
    const cid = clientRequestId(x.headers['x-request-id']);
    const url = x.url;
    const method = x.method;
    const q = url.indexOf('?');
    const path = q === -1 ? url : url.slice(0, q);
    const post = POST_ROUTES[path];
    setIdHeaders(x, id, cid, app.gateway.config.simulated);
    // Anthropic's SDKs read the request id from request-id (into errors and responses' _request_id).
    if (post === undefined ? COUNT_TOKENS_PATHS.has(path) : post.api === 'messages') x.preset!.push('request-id', id);
    const corsOrigins = app.gateway.config.gateway.corsOrigins;
    let inf: Inference | undefined;
    try {
      if (app.masterKey === undefined) guard.check(x.headers, corsOrigins);
      if (corsOrigins !== undefined) {
        const origin = allowedOrigin(x.headers, corsOrigins);
        // Every answer varies by Origin once CORS is on: a cache must not give one origin's to another.
        if (origin !== undefined) corsHeaders(x.preset!, origin);
        else x.preset!.push('vary', 'origin');
        if (isPreflight(method, x.headers)) {
          // Before any key: browsers send none with a preflight.
          if (origin === undefined) throw new FabricError('permission_denied', `the origin ${JSON.stringify(String(x.headers.origin)).slice(0, 200)} is not allowed to call this gateway (gateway.cors.origins)`);
          x.head(204, preflightHeaders(x.headers));
          x.end();
          return;
        }
      }
      if (post !== undefined) {
        if (method !== 'POST') throw new FabricError('method_not_allowed', `${method} is not allowed on ${clip(path)}; use POST`, { headers: { allow: 'POST' } });
        const now = Date.now();
        inf = { op: post.op, api: post.api, model: undefined, key: undefined, account: undefined, ts: now, trace: undefined };
        // Awaited only when the key is not cached: the hot path stays synchronous.
        const a = authorize(x);
        const key = a instanceof Promise ? await a : a;
        inf.key = key;
        if (app.draining) throw new FabricError('shutting_down', 'the gateway is shutting down; retry on another instance', { headers: { connection: 'close', 'retry-after': '1' } });
        const cancel = new Cancel();
        // The client went away before its answer ended: the backend request is aborted.
        x.onAbort(cancel);
        const tp = x.headers.traceparent;
        const incoming = tp === undefined ? undefined : traceContext(tp, x.headers.tracestate);
        const ctx: RequestContext = {
          id, clientRequestId: cid, created: Math.floor(now / 1000), cancel, drillFailPrimary: drill(x.headers['x-fabric-drill'], key),
          trace: app.tracing === undefined ? incoming : app.tracing.begin(incoming, started),
        };
        inf.trace = ctx.trace;
        metrics.begin();
        // The gateway of the config in force when the request was taken serves it whole: a reload
        // while its body is still arriving leaves this one's pools open until it is done.
        const gw = app.gateway;
        gw.enter();
        try {
          await runInference(gw, inf, x, ctx, started);
        } finally {
          gw.leave();
          metrics.end();
        }
        return;
      }
      if (COUNT_TOKENS_PATHS.has(path)) {
        if (method !== 'POST') throw new FabricError('method_not_allowed', `${method} is not allowed on ${clip(path)}; use POST`, { headers: { allow: 'POST' } });
        const a = authorize(x);
        return await countTokens(x, a instanceof Promise ? await a : a);
      }
      if (isAdminPath(path)) {
        const k = await authorize(x);
        const master = app.masterKey !== undefined && k === undefined;
        return await handleAdmin(x, path, new URLSearchParams(q === -1 ? '' : url.slice(q + 1)), {
          accounting: app.accounting, gateway: app.gateway, master, hasMasterKey: app.masterKey !== undefined, probeNow: app.probeNow,
          workers: app.workers, cache: app.cache,
        });
      }
      const modelPath = path.startsWith('/v1/models/') ? '/v1/models/' : path.startsWith('/models/') ? '/models/' : undefined;
      // The fleet dashboard's page and files: open, as /health is (what it shows past /health asks for the master key).
      const asset = dashboardAsset(path);
      if (asset !== undefined) {
        if (method !== 'GET' && method !== 'HEAD') throw new FabricError('method_not_allowed', `${method} is not allowed on ${clip(path)}; use GET`, { headers: { allow: 'GET, HEAD' } });
        return sendText(x, 200, asset.body, asset.type, asset.headers);
      }
      if (!GET_PATHS.has(path) && modelPath === undefined) throw new FabricError('not_found', `no route for ${method} ${clip(path)}`);
      if (method !== 'GET' && method !== 'HEAD') throw new FabricError('method_not_allowed', `${method} is not allowed on ${clip(path)}; use GET`, { headers: { allow: 'GET, HEAD' } });
      if (path === '/health/live' || path === '/healthz') return sendJson(x, 200, '{"status":"ok"}');
      if (path === '/health/ready' || path === '/readyz') {
        return app.draining ? sendJson(x, 503, '{"status":"draining"}') : sendJson(x, 200, '{"status":"ready"}');
      }
      if (path === '/health') {
        // Open to probes; with a master key, backend URLs and error texts only for its holder.
        const full = app.masterKey === undefined || app.masterKey.matches(MasterKey.presented(x.headers));
        return sendJson(x, 200, JSON.stringify(healthBody(app.gateway, app.startedAt, app.draining, full, app.config)));
      }
      if (path === '/metrics') {
        await masterOnly(x, 'GET /metrics');
        // With several workers, every worker's series, each labelled with its worker.
        const w = app.workers;
        if (w === undefined) return sendText(x, 200, metrics.render(), PROMETHEUS_CONTENT_TYPE);
        const others = (await w.ask('metrics', null)).filter((s): s is Snapshot => typeof s === 'object' && s !== null && typeof (s as Snapshot).worker === 'string' && typeof (s as Snapshot).families === 'object');
        return sendText(x, 200, metrics.render(w.index, others), PROMETHEUS_CONTENT_TYPE);
      }
      if (path === '/v1/models' || path === '/models') {
        const k = await authorize(x);
        return sendJson(x, 200, k === undefined ? modelsBody(app.gateway) : modelsForKey(app.gateway, k));
      }
      if (modelPath !== undefined) {
        const k = await authorize(x);
        let name: string;
        try {
          name = decodeURIComponent(path.slice(modelPath.length));
        } catch {
          throw new FabricError('invalid_request', 'the model id in the path is not valid percent-encoding', { param: 'model' });
        }
        if (name === '') throw new FabricError('not_found', `no model id after ${modelPath}; GET ${modelPath.slice(0, -1)} lists them`, { param: 'model' });
        const r = app.gateway.table.resolve(name);
        const visible = (n: string): boolean => k === undefined || k.roles === undefined || allows(k, n, app.gateway);
        const body = r === undefined || visible(r.route.name) ? modelBody(app.gateway, name) : undefined;
        if (body === undefined) {
          const hint = suggest(name, [...app.gateway.table.names()].filter((n) => { const t = app.gateway.table.resolve(n); return t !== undefined && visible(t.route.name); }));
          throw new FabricError('model_not_found', `The model \`${clip(name)}\` does not exist on this gateway${hint === undefined ? '' : ` (did you mean \`${hint}\`?)`}`, { param: 'model' });
        }
        return sendJson(x, 200, body);
      }
      return sendJson(x, 200, JSON.stringify({ name: 'ai-fabric', simulated: app.gateway.config.simulated, endpoints: ['/v1/chat/completions', '/v1/completions', '/v1/embeddings', '/v1/rerank', '/v1/responses', '/v1/messages', '/v1/audio/transcriptions', '/v1/audio/translations', '/v1/models', '/health', '/metrics', '/dashboard'] }));
    } catch (e) {
      let fe = toFabricError(e);
      // A stream the client left after its first tokens: by the role and backend that served it.
      const served = fe instanceof ClientClosed ? fe.served : undefined;
      // Closed by the gateway when a drain's grace ran out, not by the client.
      const gone = fe.status === 499;
      // A stream already begun got its 200 and an error event: recorded so, with its tokens.
      if (gone && app.cutOff === true) fe = new FabricError('shutting_down', 'the gateway stopped before the request was done: the drain\'s grace ran out', { attempts: fe.attempts, ...(served === undefined ? {} : { status: 200 }) });
      if (fe.code === 'internal_error') app.log.error('internal error', { id, path, error: String((e as Error)?.stack ?? e) });
      // A Responses request's error names its own fields, not those of the chat request it became
      // (Anthropic's errors carry no param: their messages name the field, which keeps its name).
      if (inf?.translated === true && inf.api === 'responses' && fe.param !== null) {
        const param = responsesParam(fe.param);
        if (param !== fe.param) fe = new FabricError(fe.code, fe.message, { param, attempts: fe.attempts, headers: fe.headers, status: fe.status });
      }
      const ms = performance.now() - started;
      if (inf !== undefined) {
        // Every inference request gets its one 'request' line, failed ones too.
        const route = (inf.model === undefined ? undefined : app.gateway.table.resolve(inf.model))?.route.name;
        metrics.failed(inf.op, served?.role ?? route ?? NO_ROLE, served?.backend, fe.status, fe.code, ms / 1000, fe.attempts);
        // Refused before it was authenticated: nobody to attribute it to, and no record (an
        // unauthenticated flood must not grow the store); the log line and metrics still count it.
        let rec: UsageRecord | undefined;
        if (inf.account !== undefined) rec = inf.account.fail(fe, ms, served?.role ?? route ?? '');
        else if (fe.status !== 401) app.accounting?.refused(id, inf.key, inf.op, inf.model, route ?? '', fe, ms, inf.ts);
        const role = served?.role ?? route;
        const backend = served?.backend ?? (lastSentBackend(fe.attempts) || undefined);
        const attempts = served?.attempts ?? fe.attempts?.filter(wasSent).length;
        // A bad key's line: anyone can make those, so they are capped (the record above is not).
        if (fe.status !== 401 || refusals.allow()) app.log.log(fe.status >= 500 || fe.status === 429 ? 'warn' : 'info', 'request', {
          id, client_id: cid, trace_id: inf.trace?.traceId, op: inf.op, api: inf.api, model: inf.model?.slice(0, 200), role, backend, status: fe.status, code: fe.code,
          attempts, ms: Math.round(ms * 10) / 10, message: fe.message, key: inf.key?.name,
          prompt_tokens: rec?.promptTokens || undefined, completion_tokens: rec?.completionTokens || undefined, estimated: rec?.estimated || undefined,
        });
        if (inf.trace instanceof RequestTrace) {
          // A 4xx is the client's: no error of the server span's (OpenTelemetry's HTTP conventions); its code is kept apart.
          endSpan(inf, fe.status, {
            'error.type': fe.status >= 500 ? fe.code : undefined, 'fabric.error_code': fe.code, 'fabric.request_id': id, 'fabric.role': role, 'fabric.backend': backend,
            'fabric.attempts': attempts, 'gen_ai.usage.input_tokens': rec?.promptTokens || undefined, 'gen_ai.usage.output_tokens': rec?.completionTokens || undefined,
          }, fe.status >= 500 ? fe.message : undefined);
        }
      } else if (fe.status >= 500) app.log.warn('request failed', { id, path: clip(path), status: fe.status, code: fe.code, message: fe.message });
      else if (refusals.allow()) app.log.info('request refused', { id, client_id: cid, method, path: clip(path), status: fe.status, code: fe.code, message: fe.message, ms: Math.round(ms * 10) / 10 });
      if (gone) {
        // A stream the drain ended has its error event queued: closing would drop it for a
        // client that reads slowly; the drain closes what is left once it has had a moment.
        if (!(app.cutOff === true && served !== undefined)) x.destroy();
        return;
      }
      if (x.headersSent) {
        // A stream already begun: the gateway has ended it with an error event.
        if (!x.ended) x.end();
        return;
      }
      // A failed inference request's usage record is spooled before its answer, as a served one's.
      // Anthropic's routes answer in Anthropic's shape, with the request id its SDKs report.
      const anthropic = (post !== undefined ? post.api === 'messages' : COUNT_TOKENS_PATHS.has(path)) ? id : undefined;
      if (inf === undefined) sendError(x, fe, anthropic);
      else afterRecord(() => sendError(x, fe, anthropic));
    }
  }

  function serve(x: Exchange): void {
    const id = ids.next();
    if (x.lane === 'fast') metrics.laneFast.v++;
    else metrics.laneNode.v++;
    handle(x, id).catch((e: unknown) => {
      app.log.error('unhandled', { id, error: String(e) });
      if (x.headersSent) return void x.destroy();
      sendError(x, toFabricError(e));
    });
  }

  // A request without a Host header reaches the handler, to be refused in OpenAI's shape (node:http's own 400 has no body).
  const HEADERS_TIMEOUT_MS = limits.timeouts?.headersMs ?? 30_000;
  const REQUEST_TIMEOUT_MS = limits.timeouts?.requestMs ?? 300_000;
  const options: ServerOptions = {
    maxHeaderSize: maxHeaderBytes, keepAliveTimeout: KEEP_ALIVE_MS, headersTimeout: HEADERS_TIMEOUT_MS, requestTimeout: REQUEST_TIMEOUT_MS, requireHostHeader: false,
    // node:http checks its timeouts this often (30 s by default): within a tenth of the head's.
    connectionsCheckingInterval: Math.max(10, Math.min(30_000, HEADERS_TIMEOUT_MS / 10)),
  };
  const server = listener(options, limits.tls, (req, res) => {
    const x = new NodeExchange(req, res, bodies);
    if (req.headers.host !== undefined || req.httpVersion !== '1.1') return serve(x);
    const id = ids.next();
    setIdHeaders(x, id, undefined, app.gateway.config.simulated);
    app.log.info('request refused', { id, method: req.method, path: clip(req.url ?? ''), status: 400, code: 'invalid_request' });
    sendError(x, new FabricError('invalid_request', 'an HTTP/1.1 request must have a Host header', { headers: { connection: 'close' } }));
  });
  // An Expect other than 100-continue (node:http's own 417 has no body), and CONNECT (which
  // node:http answers by closing the connection): OpenAI-shaped refusals, logged like the rest.
  server.on('checkExpectation', (req, res: ServerResponse) => {
    const x = new NodeExchange(req, res, bodies);
    const id = ids.next();
    setIdHeaders(x, id, undefined, app.gateway.config.simulated);
    app.log.info('request refused', { id, method: req.method, path: clip(req.url ?? ''), status: 417, code: 'expectation_failed' });
    sendError(x, new FabricError('expectation_failed', `Expect: ${String(req.headers.expect).slice(0, 60)} cannot be met; only 100-continue is`, { headers: { connection: 'close' } }));
  });
  server.on('connect', (req, socket: Socket) => {
    const id = ids.next();
    app.log.info('request refused', { id, method: 'CONNECT', path: clip(req.url ?? ''), status: 405, code: 'method_not_allowed' });
    endAfterAnswers(socket, closingErrorAnswer(405, 'CONNECT is not served: this is an API gateway, not a forward proxy', 'method_not_allowed', id));
  });
  server.on('clientError', (err: NodeJS.ErrnoException, socket: Socket) => {
    if (!socket.writable) return socket.destroy();
    // Bytes after a request that closes its connection (Connection: close, HTTP/1.0): nothing to answer.
    if (err.code === 'HPE_CLOSED_CONNECTION') return;
    // The client ended its side in the middle of a request: it has gone (its request, if it had
    // begun, has its own line as a 499); nothing to answer or log.
    if (err.code === 'HPE_INVALID_EOF_STATE') return socket.destroy();
    const id = ids.next();
    const [status, message, code] = err.code === 'HPE_HEADER_OVERFLOW' ? [431, `request headers exceed the limit of ${maxHeaderBytes} bytes`, 'headers_too_large']
      : err.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? [408, `the request did not arrive in time (its head within ${HEADERS_TIMEOUT_MS / 1000} s, its body within ${REQUEST_TIMEOUT_MS / 1000} s)`, 'request_timeout']
        : [400, 'malformed HTTP request', 'bad_request'];
    // A body that did not come in time belongs to a request already handed over: the answer
    // carries its id, and its own line says 408 (its body read fails so). Else, this is its one
    // line, so that the id the client got can be found.
    const requestId = err.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? bodyTimedOut(socket) : undefined;
    if (requestId === undefined) app.log.info('request refused', { id, status, code, error: err.code ?? err.message });
    endAfterAnswers(socket, closingErrorAnswer(status, message, code, requestId === undefined || requestId === '' ? id : requestId));
  });
  // The lane also makes server.closeIdleConnections() and closeAllConnections() reach its connections.
  if (limits.fastLane && limits.tls === undefined) new FastLane(server, serve, {
    maxHeaderBytes, headersTimeoutMs: HEADERS_TIMEOUT_MS, requestTimeoutMs: REQUEST_TIMEOUT_MS, keepAliveTimeoutMs: KEEP_ALIVE_MS,
    // Admin bodies have their own limit (the lane reads up to the larger, the handler refuses past its own); audio uploads theirs.
    maxBodyBytes: (url) => (url.startsWith('/v1/audio/') || url.startsWith('/audio/') ? app.gateway.config.gateway.limits.maxAudioBytes : Math.max(maxBodyBytes(), MAX_ADMIN_BODY)),
    bodies,
    requestId: () => ids.next(),
    refused: (id, status, message) => app.log.info('request refused', { id, status, code: 'request_timeout', message }),
  });
  return server;
}

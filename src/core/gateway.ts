// The transport-free gateway: one request in, an answer (or a stream into a sink) out.
// Fallback is a plain loop over an ordered plan — role members by strategy, then each
// fallback role — that ends in either an answer or one error listing every attempt.

import { setTimeout as sleep } from 'node:timers/promises';
import type { Dispatcher } from 'undici';
import type { FabricConfig } from '../config/types.ts';
import type { JsonObject, NormalizeContext, Operation, Usage } from '../engines/types.ts';
import { RouteTable, type ListedModel, type Route } from '../routing/table.ts';
import { TokenCounter } from '../tokens/count.ts';
import { suggest } from '../config/issues.ts';
import { BackendRuntime } from './backend.ts';
import { FabricError, type AttemptFailure, type FailureClass } from './errors.ts';
import { SseRelay, LineSplitter } from './sse-relay.ts';
import type { Secrets } from '../config/env-file.ts';

export interface RequestContext {
  /** The gateway's own id: what logs and accounting key on. */
  id: string;
  clientRequestId: string | undefined;
  /** Unix seconds, for response envelopes. */
  created: number;
  /** Aborted when the client goes away. */
  signal: AbortSignal;
}

export interface Served {
  requested: string;
  role: string;
  backend: string;
  attempts: number;
  /** Served by a fallback role, a rule target or a context-window fallback, not the route asked for. */
  rerouted: boolean;
  usage: Usage | undefined;
  /** Set when a stream broke after its first byte and was ended with an error event. */
  streamError: string | undefined;
  failures: AttemptFailure[];
}

export interface StreamSink {
  /** Commit the response: status 200 and headers naming the served route. */
  begin(served: Served): void;
  write(data: Buffer | string): boolean;
  onDrain(cb: () => void): void;
  end(): void;
}

class AttemptError extends Error {
  readonly failure: FailureClass;
  readonly status: number | undefined;
  readonly retryAfter: string | undefined;
  constructor(failure: FailureClass, message: string, status?: number, retryAfter?: string) {
    super(message);
    this.failure = failure;
    this.status = status;
    this.retryAfter = retryAfter;
  }
}

type RouteT = Route<BackendRuntime>;

const MAX_ERROR_BODY = 64 * 1024;

const NETWORK_CODES: Record<string, string> = {
  ECONNREFUSED: 'connection refused',
  ECONNRESET: 'connection reset',
  EHOSTUNREACH: 'host unreachable',
  ENETUNREACH: 'network unreachable',
  ENOTFOUND: 'host not found',
  EAI_AGAIN: 'DNS lookup failed',
  EPIPE: 'connection closed',
  UND_ERR_SOCKET: 'connection closed by the backend',
  UND_ERR_CLOSED: 'connection closed',
};

async function readLimited(body: Dispatcher.ResponseData['body']): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const c of body) {
    const b = c as Buffer;
    if (size + b.length > MAX_ERROR_BODY) {
      chunks.push(b.subarray(0, MAX_ERROR_BODY - size));
      body.destroy();
      break;
    }
    chunks.push(b);
    size += b.length;
  }
  return Buffer.concat(chunks).toString('utf8');
}

function secs(ms: number): string {
  return ms >= 1000 ? `${+(ms / 1000).toFixed(1)}s` : `${ms}ms`;
}

export interface GatewayOptions {
  /** Override for tests: the token counter used by routing rules. */
  tokens?: TokenCounter;
}

export class Gateway {
  readonly config: FabricConfig;
  readonly backends: Map<string, BackendRuntime>;
  readonly table: RouteTable<BackendRuntime>;
  readonly #tokens: TokenCounter;

  constructor(config: FabricConfig, secrets: Secrets, opts: GatewayOptions = {}) {
    this.config = config;
    this.backends = new Map();
    for (const b of config.backends.values()) {
      this.backends.set(b.name, new BackendRuntime(b, b.node === undefined ? undefined : config.nodes.get(b.node), secrets));
    }
    this.table = new RouteTable(config, this.backends);
    this.#tokens = opts.tokens ?? new TokenCounter();
    if ([...config.roles.values()].some((r) => r.rules.length > 0)) this.#tokens.preload();
  }

  models(): readonly ListedModel[] {
    return this.table.listed();
  }

  /** Resolve the model and check it fits the operation; throws 404 / 400. */
  route(op: Operation, model: string): RouteT {
    const r = this.table.resolve(model);
    if (r === undefined) {
      const hint = suggest(model, this.table.names());
      throw new FabricError('model_not_found', `The model \`${model}\` does not exist on this gateway${hint === undefined ? '' : ` (did you mean \`${hint}\`?)`}; GET /v1/models lists what it serves`, { param: 'model' });
    }
    const want = op === 'embeddings' ? 'embeddings' : 'chat';
    if (r.route.kind !== want) {
      const endpoint = r.route.kind === 'embeddings' ? '/v1/embeddings' : '/v1/chat/completions';
      throw new FabricError('wrong_model_kind', `\`${model}\` is a ${r.route.kind} model; use ${endpoint}`, { param: 'model' });
    }
    return r.route;
  }

  /** A non-streamed request: the normalized OpenAI response object. */
  async unary(op: Operation, body: JsonObject, ctx: RequestContext): Promise<{ response: JsonObject; served: Served }> {
    let response: JsonObject | undefined;
    const served = await this.#run(op, body, ctx, async (backend, route, served) => {
      response = await this.#unaryAttempt(op, backend, route, body, ctx, served);
    });
    return { response: response!, served };
  }

  /** A streamed request: writes SSE into the sink; resolves when the stream has ended. */
  async stream(op: Operation, body: JsonObject, ctx: RequestContext, sink: StreamSink): Promise<Served> {
    return this.#run(op, body, ctx, (backend, route, served) => this.#streamAttempt(op, backend, route, body, ctx, sink, served));
  }

  async #plan(route: RouteT, body: JsonObject): Promise<{ chain: RouteT[]; rerouted: boolean }> {
    for (const rule of route.rules) {
      if (await this.#tokens.exceeds(body, rule.inputTokensOver)) return { chain: [rule.target, ...rule.target.fallbacks], rerouted: true };
    }
    return { chain: [route, ...route.fallbacks], rerouted: false };
  }

  async #run(
    op: Operation, body: JsonObject, ctx: RequestContext,
    attempt: (backend: BackendRuntime, route: RouteT, served: Served) => Promise<void>,
  ): Promise<Served> {
    const requested = body.model as string;
    const first = this.route(op, requested);
    let { chain, rerouted } = await this.#plan(first, body);
    const failures: AttemptFailure[] = [];
    const served: Served = { requested, role: '', backend: '', attempts: 0, rerouted, usage: undefined, streamError: undefined, failures };
    const maxAttempts = this.config.gateway.limits.maxAttempts;
    let usedContextFallback = false;
    outer: for (let ci = 0; ci < chain.length; ci++) {
      const step = chain[ci]!;
      for (const backend of step.balancer.order()) {
        const skip = backend.skipReason(Date.now());
        if (skip !== undefined) {
          failures.push({ backend: backend.name, role: step.name, failure: 'unavailable', message: skip });
          continue;
        }
        for (let retry = 0; ; retry++) {
          if (served.attempts >= maxAttempts) break outer;
          served.attempts++;
          served.role = step.name;
          served.backend = backend.name;
          served.rerouted = rerouted || ci > 0;
          const started = performance.now();
          try {
            await attempt(backend, step, served);
            backend.recordSuccess(performance.now() - started);
            return served;
          } catch (e) {
            if (ctx.signal.aborted) throw new FabricError('invalid_request', 'client closed the request', { status: 499 });
            if (e instanceof FabricError) throw e;
            const f = e instanceof AttemptError ? e : new AttemptError('malformed', `unexpected failure: ${(e as Error).message}`);
            failures.push({ backend: backend.name, role: step.name, failure: f.failure, status: f.status, message: f.message, retryAfter: f.retryAfter });
            if (f.failure === 'client_error') {
              throw new FabricError('upstream_rejected', f.message, { attempts: failures });
            }
            if (f.failure === 'context_length') {
              backend.recordSuccess(performance.now() - started);
              const cf = step.contextFallback;
              if (cf !== undefined && !usedContextFallback) {
                usedContextFallback = true;
                chain = [cf, ...cf.fallbacks];
                rerouted = true;
                ci = -1;
                continue outer;
              }
              throw new FabricError('context_length_exceeded', f.message, { param: op === 'chat' ? 'messages' : 'input', attempts: failures });
            }
            if (f.failure !== 'rate_limited') backend.recordFailure(f.message, Date.now());
            const retryable = f.failure === 'connect' || f.status === 429 || f.status === 503;
            if (retryable && retry < backend.config.maxRetries && served.attempts < maxAttempts && backend.skipReason(Date.now()) === undefined) {
              await sleep(this.#backoff(retry, f.retryAfter), undefined, { signal: ctx.signal }).catch(() => {});
              if (ctx.signal.aborted) throw new FabricError('invalid_request', 'client closed the request', { status: 499 });
              continue;
            }
            break;
          }
        }
      }
    }
    throw this.#allFailed(requested, failures);
  }

  #backoff(retry: number, retryAfter: string | undefined): number {
    const { retryBaseMs, retryMaxMs } = this.config.gateway;
    const ra = retryAfter === undefined ? NaN : Number(retryAfter) * 1000;
    if (Number.isFinite(ra) && ra >= 0 && ra <= retryMaxMs) return ra;
    const ceiling = Math.min(retryMaxMs, retryBaseMs * 2 ** retry);
    return ceiling / 2 + Math.random() * (ceiling / 2);
  }

  #allFailed(model: string, failures: AttemptFailure[]): FabricError {
    const sent = failures.filter((f) => f.failure !== 'unavailable');
    const tried = failures.map((f) => `${f.backend} (${f.role}): ${f.message}`).join('; ');
    const every = (c: FailureClass): boolean => sent.length > 0 && sent.every((f) => f.failure === c);
    if (every('rate_limited')) {
      const ra = sent[sent.length - 1]!.retryAfter;
      return new FabricError('rate_limit_exceeded', `every backend for \`${model}\` is rate limited: ${tried}`, {
        attempts: failures, headers: ra === undefined ? undefined : { 'retry-after': ra },
      });
    }
    if (every('timeout')) return new FabricError('upstream_timeout', `every backend for \`${model}\` timed out: ${tried}`, { attempts: failures });
    if (every('malformed')) return new FabricError('bad_upstream_response', `the backend for \`${model}\` sent an unusable answer: ${tried}`, { attempts: failures });
    return new FabricError('no_backend_available', `no backend could serve \`${model}\`; tried: ${tried || 'nothing (no backend configured)'}`, {
      attempts: failures, headers: { 'retry-after': '5' },
    });
  }

  #headers(backend: BackendRuntime, ctx: RequestContext, stream: boolean): Record<string, string> {
    const h: Record<string, string> = {
      'content-type': 'application/json',
      accept: stream ? 'text/event-stream' : 'application/json',
      'x-request-id': ctx.id,
    };
    if (backend.authorization !== undefined) h.authorization = backend.authorization;
    return h;
  }

  #nctx(ctx: RequestContext, model: string): NormalizeContext {
    return { requestId: ctx.id, model, created: ctx.created };
  }

  /** Sends one request upstream, mapping transport failures to attempt failures. */
  async #send(
    backend: BackendRuntime, path: string, payload: string, ctx: RequestContext, stream: boolean, signal: AbortSignal, why: () => string | undefined,
  ): Promise<Dispatcher.ResponseData> {
    const t = backend.config.timeouts;
    try {
      return await backend.pool.request({
        method: 'POST',
        path: backend.basePath + path,
        headers: this.#headers(backend, ctx, stream),
        body: payload,
        signal,
        headersTimeout: t.firstByteMs,
        // Streams run their own first-byte/idle timer: the wait between headers and the first token is not idle time.
        bodyTimeout: stream ? 0 : t.idleMs,
      });
    } catch (e) {
      throw this.#transportError(backend, e, why());
    }
  }

  #transportError(backend: BackendRuntime, e: unknown, timedOut: string | undefined): AttemptError {
    if (timedOut !== undefined) return new AttemptError('timeout', timedOut);
    const err = e as { code?: string; message?: string; cause?: { code?: string } };
    const code = err.code ?? err.cause?.code;
    const t = backend.config.timeouts;
    if (code === 'UND_ERR_CONNECT_TIMEOUT') return new AttemptError('timeout', `connect timeout after ${secs(t.connectMs)}`);
    if (code === 'UND_ERR_HEADERS_TIMEOUT') return new AttemptError('timeout', `no response within the first-byte timeout (${secs(t.firstByteMs)})`);
    if (code === 'UND_ERR_BODY_TIMEOUT') return new AttemptError('timeout', `response stalled past the idle timeout (${secs(t.idleMs)})`);
    const what = code === undefined ? undefined : NETWORK_CODES[code];
    return new AttemptError('connect', what ?? `request failed: ${code ?? err.message ?? 'unknown error'}`);
  }

  async #upstreamError(backend: BackendRuntime, res: Dispatcher.ResponseData): Promise<AttemptError> {
    const status = res.statusCode;
    if (status >= 300 && status < 400) {
      res.body.destroy();
      return new AttemptError('malformed', `answered with a redirect (${status}), which the gateway does not follow`, status);
    }
    const text = await readLimited(res.body).catch(() => '');
    const info = backend.engine.parseError(status, text);
    const msg = `HTTP ${status}: ${info.message}`;
    if (status === 429) {
      const ra = res.headers['retry-after'];
      return new AttemptError('rate_limited', msg, status, typeof ra === 'string' ? ra : undefined);
    }
    if (info.contextLength) return new AttemptError('context_length', info.message, status);
    if (status === 401 || status === 403 || status === 404 || status === 405) return new AttemptError('misconfigured', msg, status);
    if (status >= 500) return new AttemptError('upstream_5xx', msg, status);
    return new AttemptError('client_error', info.message, status);
  }

  #model(backend: BackendRuntime, route: RouteT, requested: string): string {
    return route.passthrough ? requested : backend.config.model;
  }

  async #unaryAttempt(
    op: Operation, backend: BackendRuntime, route: RouteT, body: JsonObject, ctx: RequestContext, served: Served,
  ): Promise<JsonObject> {
    const prepared = backend.engine.prepare(op, body, { model: this.#model(backend, route, served.requested), wantStreamUsage: false, clientWantsUsage: false });
    const ac = new AbortController();
    let timedOut: string | undefined;
    const total = backend.config.timeouts.totalMs;
    const timer = setTimeout(() => { timedOut = `no complete answer within the total timeout (${secs(total)})`; ac.abort(); }, total);
    const onAbort = (): void => ac.abort();
    ctx.signal.addEventListener('abort', onAbort, { once: true });
    backend.outstanding++;
    try {
      const res = await this.#send(backend, prepared.path, prepared.body, ctx, false, ac.signal, () => timedOut);
      if (res.statusCode < 200 || res.statusCode >= 300) throw await this.#upstreamError(backend, res);
      let text: string;
      try {
        text = await res.body.text();
      } catch (e) {
        throw this.#transportError(backend, e, timedOut);
      }
      let json: unknown;
      try {
        json = JSON.parse(text);
      } catch {
        throw new AttemptError('malformed', `answered 200 with a body that is not JSON (${text.length} bytes)`, res.statusCode);
      }
      const out = backend.engine.normalize(op, json, body, this.#nctx(ctx, served.requested));
      if (out === undefined) throw new AttemptError('malformed', `answered 200 with JSON that is not a ${op} response`, res.statusCode);
      served.usage = out.usage as Usage | undefined;
      return out;
    } finally {
      clearTimeout(timer);
      ctx.signal.removeEventListener('abort', onAbort);
      backend.outstanding--;
    }
  }

  #streamAttempt(
    op: Operation, backend: BackendRuntime, route: RouteT, body: JsonObject, ctx: RequestContext, sink: StreamSink, served: Served,
  ): Promise<void> {
    const so = body.stream_options;
    const clientWantsUsage = typeof so === 'object' && so !== null && (so as { include_usage?: unknown }).include_usage === true;
    const prepared = backend.engine.prepare(op, body, { model: this.#model(backend, route, served.requested), wantStreamUsage: true, clientWantsUsage });
    const t = backend.config.timeouts;
    const ac = new AbortController();
    let timedOut: string | undefined;
    const total = setTimeout(() => { timedOut = `stream exceeded the total timeout (${secs(t.totalMs)})`; ac.abort(); }, t.totalMs);
    // The first-byte deadline runs until the backend sends anything; from then on the idle
    // deadline, refreshed per chunk (refresh() re-arms the same timer, no allocation).
    let idle: NodeJS.Timeout | undefined;
    const firstByte = setTimeout(() => { timedOut = `no first token within the first-byte timeout (${secs(t.firstByteMs)})`; ac.abort(); }, t.firstByteMs);
    const onIdle = (): void => { timedOut = `stream stalled past the idle timeout (${secs(t.idleMs)})`; ac.abort(); };
    const onAbort = (): void => ac.abort();
    ctx.signal.addEventListener('abort', onAbort, { once: true });
    backend.outstanding++;
    const cleanup = (): void => {
      clearTimeout(total);
      clearTimeout(firstByte);
      if (idle !== undefined) clearTimeout(idle);
      ctx.signal.removeEventListener('abort', onAbort);
      backend.outstanding--;
    };

    return (async () => {
      let res: Dispatcher.ResponseData;
      try {
        res = await this.#send(backend, prepared.path, prepared.body, ctx, true, ac.signal, () => timedOut);
        if (res.statusCode < 200 || res.statusCode >= 300) throw await this.#upstreamError(backend, res);
        const ct = res.headers['content-type'];
        const ctype = typeof ct === 'string' ? ct : '';
        if (backend.engine.streamFormat === 'sse' && !ctype.includes('text/event-stream')) {
          const text = await readLimited(res.body).catch(() => '');
          throw new AttemptError('malformed', `answered a stream request with ${ctype || 'no content type'} instead of text/event-stream (${text.slice(0, 200)})`, res.statusCode);
        }
      } catch (e) {
        cleanup();
        throw e;
      }
      const upstream = res.body;
      const nctx = this.#nctx(ctx, served.requested);
      const relay = backend.engine.streamFormat === 'sse' ? new SseRelay(prepared.injectedUsage) : undefined;
      const lines = relay === undefined ? new LineSplitter() : undefined;
      const translator = relay === undefined ? backend.engine.streamTranslator!(op, nctx, clientWantsUsage) : undefined;

      await new Promise<void>((resolve, reject) => {
        let begun = false;
        let settled = false;
        const settle = (err?: unknown): void => {
          if (settled) return;
          settled = true;
          cleanup();
          if (err === undefined) resolve();
          else reject(err);
        };
        /** After the first byte: end the client's stream with an error event, never silently. */
        const breakStream = (message: string): void => {
          served.streamError = message;
          backend.recordFailure(message, Date.now());
          sink.write(`data: ${JSON.stringify({ error: { message: `stream from ${backend.name} interrupted: ${message}`, type: 'server_error', param: null, code: 'stream_interrupted' } })}\n\n`);
          sink.end();
          upstream.destroy();
          settle();
        };
        const forward = (out: Buffer | string): void => {
          if (!begun) {
            begun = true;
            sink.begin(served);
          }
          if (!sink.write(out)) {
            upstream.pause();
            sink.onDrain(() => upstream.resume());
          }
        };
        const translate = (chunk: Buffer): string => {
          let out = '';
          for (const line of lines!.push(chunk)) out += translator!.line(line);
          return out;
        };
        upstream.on('data', (chunk: Buffer) => {
          if (settled) return;
          if (idle !== undefined) idle.refresh();
          else {
            clearTimeout(firstByte);
            idle = setTimeout(onIdle, t.idleMs);
          }
          try {
            if (relay !== undefined) {
              const out = relay.push(chunk);
              if (out !== undefined) {
                forward(out);
              }
            } else {
              const out = translate(chunk);
              if (out !== '') {
                forward(out);
              }
            }
          } catch (e) {
            const msg = e instanceof FabricError ? e.message : String(e);
            if (begun) breakStream(msg);
            else { upstream.destroy(); settle(new AttemptError('malformed', msg)); }
          }
        });
        upstream.on('end', () => {
          if (settled) return;
          try {
            if (relay !== undefined) {
              const rest = relay.flush();
              if (rest !== undefined) forward(rest);
              served.usage = relay.usage;
              if (!relay.sawDone) {
                if (begun) return breakStream('the backend ended the stream without [DONE]');
                return settle(new AttemptError('malformed', 'the backend ended the stream without sending anything'));
              }
            } else {
              const rest = lines!.flush();
              if (rest !== '') {
                const out = translator!.line(rest);
                if (out !== '') forward(out);
              }
              served.usage = translator!.usage();
              if (!translator!.done()) {
                if (begun) return breakStream('the backend ended the stream before it was done');
                return settle(new AttemptError('malformed', 'the backend ended the stream without sending anything'));
              }
            }
          } catch (e) {
            if (begun) return breakStream(e instanceof Error ? e.message : String(e));
            return settle(new AttemptError('malformed', e instanceof Error ? e.message : String(e)));
          }
          sink.end();
          settle();
        });
        upstream.on('error', (e: unknown) => {
          if (settled) return;
          if (ctx.signal.aborted) return settle(new AttemptError('aborted', 'client closed the request'));
          const ae = this.#transportError(backend, e, timedOut);
          if (begun) breakStream(ae.message);
          else settle(ae);
        });
      });
    })();
  }

  async close(): Promise<void> {
    await Promise.all([...this.backends.values()].map((b) => b.close()));
  }
}

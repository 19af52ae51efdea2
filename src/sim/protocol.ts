// The contract between the engine core (sockets, auth, faults, queueing, timing) and a
// protocol (paths, request parsing, response and error shapes). A protocol never touches
// a socket or a timer; the core never knows a field name.

import { randomInt, randomUUID } from 'node:crypto';
import type { SimEngineStats, SimModelKind, SimTiming } from './types.ts';

export interface Reply {
  status: number;
  headers: Record<string, string>;
  body: string;
}

/** Live counters the core keeps and protocols read for /metrics, /slots, /api/ps. */
export interface EngineLoad extends SimEngineStats {
  finishedStop: number;
  finishedLength: number;
  /** prompt + completion tokens of the requests generating now: the simulated KV cache */
  activeTokens: number;
}

/** One model the engine serves, with what it can do. */
export interface ServedModel {
  readonly name: string;
  readonly kind: SimModelKind;
  readonly dimensions: number;
  readonly contextWindow: number;
}

export interface EngineView {
  readonly name: string;
  /** the main model's name, kind, dimensions and window */
  readonly model: string;
  readonly kind: SimModelKind;
  readonly dimensions: number;
  readonly contextWindow: number;
  /** every model served, the main one first */
  readonly models: readonly ServedModel[];
  readonly timing: Readonly<SimTiming>;
  /** vLLM's --enable-auto-tool-choice (with a tool parser) */
  readonly autoToolChoice: boolean;
  /** llama-server's Jinja chat templates (--jinja, on by default; --no-jinja), without which it refuses tools */
  readonly jinja: boolean;
  /** llama-server's --metrics, without which /metrics is a 501 */
  readonly metrics: boolean;
  /** llama-server's --ubatch-size: the longest embeddings input or rerank pair it evaluates */
  readonly physicalBatch: number;
  /** epoch ms */
  readonly startedAt: number;
  readonly load: Readonly<EngineLoad>;
}

export type SimErrorKind =
  | 'bad-request'
  | 'model-not-found'
  | 'unsupported'
  | 'context-length'
  | 'overloaded'
  | 'rate-limit'
  | 'server-error';

/** A failure in protocol-neutral terms; each route renders it in its engine's shape. */
export interface SimError {
  kind: SimErrorKind;
  message?: string;
  status?: number;
  model?: string;
  param?: string;
  /** a machine-readable code, for engines whose errors carry one (OpenAI's) */
  code?: string;
  /** the error's type where the engine's handler names it apart from its status (vLLM's request validation) */
  type?: string;
  promptTokens?: number;
  maxTokens?: number;
  /** the window of the model asked for, when it is not the engine's main model */
  contextWindow?: number;
  retryAfterS?: number;
}

export type FinishReason = 'stop' | 'length' | 'tool_calls';

/** A document a rerank or score request scored. */
export interface RankedDocument {
  /** its place in the request */
  index: number;
  text: string;
  /** in (0, 1): generate.ts relevance */
  score: number;
  /** the query and document as one pair, special tokens included, before any truncation */
  tokens: number;
}

export interface PlannedChoice {
  index: number;
  /** the reply's tokens; a tool call's arguments (JSON) when `toolCall` is set */
  tokens: readonly string[];
  finish: FinishReason;
  toolCall?: { id: string; name: string };
  /** the stop string (the request's `stop`) the reply ended on: engines leave it out of the text */
  stopSequence?: string;
  promptTokens: number;
  promptText: string;
}

/** What an inference request will produce, decided before any time passes. */
export interface Plan {
  id: string;
  /** epoch seconds */
  created: number;
  model: string;
  stream: boolean;
  includeUsage: boolean;
  promptTokens: number;
  completionTokens: number;
  choices: PlannedChoice[];
  /** generation steps: the longest choice */
  steps: number;
  /** embeddings requests only */
  vectors: Float32Array[] | null;
  /** rerank and score requests only: the documents scored, in the order the answer lists them */
  ranks: RankedDocument[] | null;
  base64: boolean;
  /** protocol-specific extras the renderer wants (e.g. the request's options) */
  extra: Record<string, unknown>;
}

export interface StreamShape {
  contentType: string;
  /** sent with the first token: role chunks and the like */
  begin(p: Plan): string;
  /** the events for generation step i (one token of each choice still running) */
  step(p: Plan, i: number): string;
  /** finish events, usage, terminator */
  end(p: Plan): string;
  /** a 200 body in this framing that no client can parse */
  garbage: string;
  /** what the engine sends when generation fails after the stream began, to its end (the 'stream-error' fault) */
  failure(p: Plan): string;
}

export interface InferenceRoute {
  readonly kind: 'inference';
  /** whether the request asks for a stream, answerable even when planning fails */
  wantsStream(body: unknown): boolean;
  plan(body: unknown): Plan | SimError;
  error(e: SimError): Reply;
  reply(p: Plan): Reply;
  readonly stream: StreamShape | null;
}

export interface InfoRoute {
  readonly kind: 'info';
  /** health routes report the 'error' fault too */
  readonly health?: boolean;
  handle(body: unknown, query: string): Reply;
}

export type Route = InferenceRoute | InfoRoute;

export function infoRoute(handle: InfoRoute['handle'], health = false): InfoRoute {
  return { kind: 'info', health, handle };
}

export interface ProtocolImpl {
  resolve(method: string, path: string): Route | undefined;
  notFound(method: string, path: string): Reply;
  needsKey(path: string): boolean;
  unauthorized(presented: string | undefined): Reply;
  /** a request body that is not JSON */
  badJson(path: string): Reply;
  /** what a health route answers while the engine is failing with `status` */
  healthError(status: number): Reply;
  /**
   * An inference request was answered in full: seconds from its arrival to its first token and
   * to its end (for engines that export latency histograms).
   */
  finished?(ttftSeconds: number, e2eSeconds: number): void;
}

export type ProtocolFactory = (view: EngineView) => ProtocolImpl;

/**
 * The served model a request names; the main model when it names none. A linear scan: an
 * engine serves a handful of models at most.
 */
export function servedModel(view: EngineView, name: string | undefined): ServedModel | undefined {
  if (name === undefined) return view.models[0];
  for (const m of view.models) if (m.name === name) return m;
  return undefined;
}

/** Parsed requests and plans never have a `kind`; SimErrors always do. */
export function isSimError<T extends object>(x: T | SimError): x is SimError {
  return 'kind' in x;
}

export function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

const JSON_TYPE = 'application/json';

export function jsonReply(status: number, payload: unknown, contentType = JSON_TYPE): Reply {
  return { status, headers: { 'content-type': contentType }, body: JSON.stringify(payload) };
}

export function textReply(status: number, body: string, contentType = 'text/plain; charset=utf-8'): Reply {
  return { status, headers: { 'content-type': contentType }, body };
}

export function hexId(): string {
  return randomUUID().replaceAll('-', '');
}

/** `n` characters drawn at random from `alphabet`, as engines make their ids. */
export function randomId(alphabet: string, n: number): string {
  let s = '';
  for (let i = 0; i < n; i++) s += alphabet[randomInt(alphabet.length)];
  return s;
}

export function nowSeconds(): number {
  return Math.floor(Date.now() / 1000);
}

/** The reply tokens cut to a limit, with the finish reason that implies. */
export function limitTokens(all: readonly string[], max: number | undefined): { tokens: readonly string[]; finish: 'stop' | 'length' } {
  // The end-of-sequence token needs a step too: a limit the reply exactly fills stops it at "length".
  if (max === undefined || max > all.length) return { tokens: all, finish: 'stop' };
  return { tokens: all.slice(0, Math.max(0, max)), finish: 'length' };
}

/** A request's stop strings (`stop`: one string or a list), empty ones left out. */
export function stopStrings(v: unknown): readonly string[] {
  if (typeof v === 'string') return v === '' ? [] : [v];
  return Array.isArray(v) ? v.filter((s): s is string => typeof s === 'string' && s !== '') : [];
}

/**
 * The reply cut where a stop string first appears, and the string that matched; undefined when
 * none does. As engines do, the text ends before the stop string (a token may be cut inside).
 */
export function stopAt(tokens: readonly string[], stop: readonly string[]): { tokens: string[]; matched: string } | undefined {
  if (stop.length === 0) return undefined;
  const text = tokens.join('');
  let at = -1;
  let matched = '';
  for (const s of stop) {
    const i = text.indexOf(s);
    if (i !== -1 && (at === -1 || i < at)) {
      at = i;
      matched = s;
    }
  }
  if (at === -1) return undefined;
  const out: string[] = [];
  let pos = 0;
  for (const t of tokens) {
    if (pos + t.length > at) {
      if (pos < at) out.push(t.slice(0, at - pos));
      break;
    }
    out.push(t);
    pos += t.length;
  }
  return { tokens: out, matched };
}

/** Joins what a choice produced up to (not including) token `end`. */
export function choiceText(c: PlannedChoice, end = c.tokens.length): string {
  let s = '';
  for (let i = 0; i < end && i < c.tokens.length; i++) s += c.tokens[i];
  return s;
}

/** A JSON body cut off mid-object: valid UTF-8, invalid JSON. */
export const GARBAGE_JSON = '{"id":"chatcmpl-sim","object":"chat.completion","choices":[{"index":0,"message":{"role":"assist';

/** An SSE body whose events are not JSON and that never terminates properly. */
export const GARBAGE_SSE = 'data: {"id":"chatcmpl-sim","choices":[{"delta":{"content":"Hel\n\nthis is not an event stream\n\n';

export const GARBAGE_NDJSON = '{"model":"sim","message":{"role":"assistant","content":"Hel\nnot json either\n';

/** Non-negative integer from a request field, or undefined when absent/invalid. */
export function intField(v: unknown): number | undefined {
  return typeof v === 'number' && Number.isInteger(v) && v >= 0 ? v : undefined;
}

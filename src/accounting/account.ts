// One request's account: what it may cost and what it did. Created at admission (after the
// key's role, budget and rate limits are checked), handed to the gateway as its attempt hooks
// (reserve before each attempt on a priced backend, settle after), and closed with one usage
// record when the answer has ended — streams included, with the usage they reported.

import { isImagePart } from '../engines/content-parts.ts';
import type { AttemptHooks, AttemptVerdict, RequestContext, Served } from '../core/gateway.ts';
import type { BackendRuntime } from '../core/backend.ts';
import { FabricError, STREAM_INTERRUPTED, lastSentBackend, wasSent } from '../core/errors.ts';
import type { JsonObject, Usage } from '../engines/types.ts';
import type { KeyRecord, UsageRecord } from '../store/types.ts';
import type { BudgetScope, Hold } from './ledger.ts';
import { periodAdjective, periodEnd, usd } from './periods.ts';
import type { Accounting } from './service.ts';
import { BYTES_PER_TOKEN } from '../tokens/estimate.ts';

/** Seconds a request refused for a key budget held by requests in flight is told to wait: about what a request takes. */
const BUDGET_HELD_RETRY_S = 2;

/** What a request body says about its size, read once at admission. */
export interface BodySize {
  /** UTF-8 bytes of the prompt text: a byte-level BPE token covers at least one byte, so an upper bound of its tokens. */
  promptBytes: number;
  messages: number;
  /** max_tokens × the generations, or undefined when the request sets no maximum. */
  maxCompletion: number | undefined;
  /** Generations asked: n (or best_of) for each prompt of a legacy batch. */
  choices: number;
}

/**
 * How many prompts a legacy completions request holds: a string or one list of token ids is one;
 * a list of strings or of token-id lists is a batch, each generated `n` times.
 */
export function promptCount(p: unknown): number {
  return Array.isArray(p) && typeof p[0] !== 'number' ? p.length : 1;
}

const PER_MESSAGE_BOUND = 8;
/** Speech compressed as far as it is sent (Opus at 8 kbit/s): a bound on how long an upload's bytes last. */
const AUDIO_BYTES_PER_SECOND_AT_LEAST = 1_000;
/** Audio tokens a second of speech counts as, at most (OpenAI's speech models: about 10 a second). */
const AUDIO_TOKENS_PER_SECOND_AT_MOST = 25;
const PROMPT_BOUND_EXTRA = 16;
/**
 * What an image part may cost, in prompt tokens, at most: OpenAI's largest counts are some 1,450
 * (gpt-4o's tiles, a 2048×768 image) and 2,500 (gpt-4.1-mini's patches). Counted as that many
 * bytes, so the cost bound (a byte a token) covers it and the estimate (four bytes a token)
 * reads 750, about a typical image's count. Its URL or base64 data is no measure of either.
 */
export const IMAGE_PART_BOUND = 3_000;

export function bodySize(body: JsonObject): BodySize {
  let bytes = 0;
  let messages = 0;
  const add = (v: unknown): void => {
    if (typeof v === 'string') bytes += Buffer.byteLength(v, 'utf8');
    // A token id is one token: counted as 4 bytes, what promptEstimate reads as one token.
    else if (typeof v === 'number') bytes += 4;
    else if (Array.isArray(v)) {
      for (const p of v) {
        if (typeof p !== 'object' || p === null || Array.isArray(p)) add(p);
        else if (isImagePart(p)) bytes += IMAGE_PART_BOUND;
        else add((p as { text?: unknown }).text);
      }
    }
  };
  if (Array.isArray(body.messages)) {
    for (const m of body.messages) {
      messages++;
      if (typeof m === 'object' && m !== null) {
        add((m as { content?: unknown }).content);
        const calls = (m as { tool_calls?: unknown }).tool_calls;
        if (calls !== undefined) bytes += Buffer.byteLength(JSON.stringify(calls), 'utf8');
      }
    }
  }
  add(body.prompt);
  add(body.input);
  // Reranking: the engine reads the query once beside each document.
  const docs = body.documents;
  if (typeof body.query === 'string' && Array.isArray(docs)) {
    bytes += Buffer.byteLength(body.query, 'utf8') * docs.length;
    add(docs);
    messages += docs.length;
  }
  if (body.tools !== undefined) bytes += Buffer.byteLength(JSON.stringify(body.tools), 'utf8');
  // A JSON schema to follow is part of the prompt the engine (or OpenAI) reads.
  const rf = body.response_format;
  if (typeof rf === 'object' && rf !== null && (rf as { json_schema?: unknown }).json_schema !== undefined) bytes += Buffer.byteLength(JSON.stringify((rf as { json_schema: unknown }).json_schema), 'utf8');
  // Generations: each prompt of a legacy batch n times, or best_of times (the engine generates
  // them all and returns the best n).
  const n = Math.max(typeof body.n === 'number' && body.n > 1 ? body.n : 1, typeof body.best_of === 'number' && body.best_of > 1 ? body.best_of : 1);
  const choices = body.prompt === undefined ? n : n * promptCount(body.prompt);
  const mt = typeof body.max_completion_tokens === 'number' ? body.max_completion_tokens : typeof body.max_tokens === 'number' ? body.max_tokens : undefined;
  return { promptBytes: bytes, messages, maxCompletion: mt === undefined ? undefined : mt * choices, choices };
}

/** Completion tokens a token-rate reservation assumes when the request sets no max_tokens. */
export const DEFAULT_COMPLETION_ESTIMATE = 256;

export function promptEstimate(s: BodySize): number {
  return Math.ceil(s.promptBytes / BYTES_PER_TOKEN) + 4 * s.messages;
}

export interface TpmHold { key: string; limit: number; reserved: number }

export interface AccountInit {
  ctx: RequestContext;
  key: KeyRecord | undefined;
  op: string;
  model: string;
  body: JsonObject;
  stream: boolean;
  ts: number;
  keyScope: BudgetScope | undefined;
  tpm: readonly TpmHold[];
  /** The raw request, kept only when request logging is on. */
  rawRequest: string | undefined;
  /** Already measured at admission (for a token-rate reservation); else measured when first needed. */
  size?: BodySize;
}

/** Shared by every request that holds no token-rate reservation. */
export const NO_TPM: readonly TpmHold[] = Object.freeze([]);

export class RequestAccount implements AttemptHooks {
  readonly #acct: Accounting;
  readonly ctx: RequestContext;
  readonly key: KeyRecord | undefined;
  readonly op: string;
  readonly model: string;
  readonly stream: boolean;
  readonly ts: number;
  readonly keyScope: BudgetScope | undefined;
  readonly tpm: readonly TpmHold[];
  /** The raw request, kept only when request logging is on. */
  readonly rawRequest: string | undefined;
  readonly #body: JsonObject;
  #size: BodySize | undefined;
  #hold: Hold | undefined;
  #attempt = 0;
  /** Settled cost of this request's attempts (only a served one costs). */
  cost = 0;
  estimated = false;
  #usage: Usage | undefined;
  /** The backend whose attempt succeeded (its usage is #usage). */
  #servedBy: string | undefined;
  #closed = false;

  constructor(acct: Accounting, init: AccountInit) {
    this.#acct = acct;
    this.ctx = init.ctx;
    this.key = init.key;
    this.op = init.op;
    this.model = init.model;
    this.#body = init.body;
    this.stream = init.stream;
    this.ts = init.ts;
    this.keyScope = init.keyScope;
    this.tpm = init.tpm;
    this.rawRequest = init.rawRequest;
    this.#size = init.size;
  }

  /**
   * The body's size, measured on first use: most requests (no token limit, no priced budget,
   * usage reported) never need it, and measuring walks the whole prompt.
   */
  get size(): BodySize {
    return this.#size ??= bodySize(this.#body);
  }

  /** The most this request could cost on a backend: every prompt byte a token, the whole max_tokens (or what the backend can produce), the whole total timeout for GPU-hour prices. */
  maxCost(backend: BackendRuntime): number {
    const p = this.#acct.prices.of(backend.name);
    if (p.input === 0 && p.output === 0 && p.perSecond === 0 && p.perAudioSecond === 0) return 0;
    if (this.op === 'transcriptions' || this.op === 'translations') {
      // Audio: as long as its bytes could last at the lowest bitrate speech is sent at, and every
      // second of it as many audio tokens as OpenAI's speech models count.
      const seconds = (this.ctx.bodyBytes ?? 0) / AUDIO_BYTES_PER_SECOND_AT_LEAST;
      return seconds * (p.perAudioSecond + AUDIO_TOKENS_PER_SECOND_AT_MOST * p.input) + this.#acct.maxTokens * p.output + (backend.config.timeouts.totalMs / 1000) * p.perSecond;
    }
    const s = this.size;
    const promptBound = s.promptBytes + PER_MESSAGE_BOUND * s.messages + PROMPT_BOUND_EXTRA;
    const completionBound = this.op === 'embeddings' || this.op === 'rerank' ? 0
      : s.maxCompletion ?? Math.min(this.#acct.maxTokens, backend.config.contextWindow ?? Infinity) * s.choices;
    return promptBound * p.input + completionBound * p.output + (backend.config.timeouts.totalMs / 1000) * p.perSecond;
  }

  before(backend: BackendRuntime): AttemptVerdict | undefined | Promise<AttemptVerdict | undefined> {
    const scopes = this.#acct.scopesFor(backend.name, this.keyScope);
    if (scopes.length === 0) return undefined;
    const amount = this.maxCost(backend);
    if (amount === 0) return undefined;
    const r = this.#acct.ledger.reserve(`${this.ctx.id}.${this.#attempt++}`, scopes, amount);
    return r instanceof Promise ? r.then((x) => this.#reserved(x, backend, amount)) : this.#reserved(r, backend, amount);
  }

  #reserved(r: Awaited<ReturnType<Accounting['ledger']['reserve']>>, backend: BackendRuntime, amount: number): AttemptVerdict | undefined {
    if (r.ok) {
      this.#hold = r.hold;
      return undefined;
    }
    const s = r.scope;
    const left = Math.max(0, s.limit - r.spent - r.reserved);
    if (s === this.keyScope) {
      this.#acct.refusedByKeyBudget(this.key!);
      // What stands in the way is only held by requests still running, which settle at what they
      // cost: a wait will do, so a 429 the SDKs retry, not the spent budget's (x-should-retry: false).
      if (r.spent + amount <= s.limit + 1e-9) {
        throw new FabricError('rate_limit_exceeded',
          `key "${this.key!.name}" has ${usd(left)} of its ${periodAdjective(s.period)} budget of ${usd(s.limit)} free: ${usd(r.spent)} spent and ${usd(r.reserved)} held by requests in flight until they finish; `
          + `this request could cost up to ${usd(amount)} on ${backend.name}. Retry shortly, or lower max_tokens`, { headers: { 'retry-after': String(BUDGET_HELD_RETRY_S) } });
      }
      throw new FabricError('insufficient_quota',
        `key "${this.key!.name}" has ${usd(left)} left of its ${periodAdjective(s.period)} budget of ${usd(s.limit)} (${usd(r.spent)} spent${r.reserved > 0 ? `, ${usd(r.reserved)} held by requests in flight` : ''}); ` +
        `this request could cost up to ${usd(amount)} on ${backend.name}. Lower max_tokens, or wait for the budget to reset${Number.isFinite(periodEnd(s.period, Date.now())) ? ` at ${new Date(periodEnd(s.period, Date.now())).toISOString()}` : ''}`);
    }
    const budget = this.#acct.budgetOf(s.id);
    return {
      skip: r.spent >= s.limit
        ? `over its ${periodAdjective(s.period)} budget (${usd(s.limit)}): ${usd(r.spent)} spent (budget "${budget?.name ?? s.id}")`
        : `within ${usd(left)} of its ${periodAdjective(s.period)} budget (${usd(s.limit)}) and this request could cost up to ${usd(amount)} (budget "${budget?.name ?? s.id}")`,
      fallback: budget?.fallback,
      budget: budget?.name,
    };
  }

  after(backend: BackendRuntime, usage: Usage | undefined, ok: boolean, ms: number, completionEstimate?: number): void {
    let actual = 0;
    if (ok) {
      this.#servedBy = backend.name;
      let u = usage;
      if (u === undefined) {
        u = this.#estimate(completionEstimate);
      }
      // Embeddings report no completion tokens.
      u = { prompt_tokens: u.prompt_tokens ?? 0, completion_tokens: u.completion_tokens ?? 0, total_tokens: u.total_tokens ?? 0 };
      this.#usage = u;
      actual = this.#acct.prices.cost(backend.name, u.prompt_tokens, u.completion_tokens, ms / 1000, usage?.audio_seconds ?? 0);
      this.cost += actual;
    }
    const hold = this.#hold;
    this.#hold = undefined;
    if (hold !== undefined) this.#acct.ledger.settle(hold, actual);
  }

  /**
   * The engine reported no usage (or a stream broke before it): the prompt estimated from the
   * body's size, the completion from the chunks relayed (a stream) or the answer's text.
   */
  #estimate(completionEstimate: number | undefined): Usage {
    const prompt = promptEstimate(this.size);
    const completion = completionEstimate ?? 0;
    this.estimated = true;
    return { prompt_tokens: prompt, completion_tokens: completion, total_tokens: prompt + completion };
  }

  /** The request was answered (a stream: it has ended). */
  finish(served: Served, latencyMs: number, ttftMs: number | undefined, response: string | undefined): UsageRecord {
    const u = this.#usage ?? served.usage ?? this.#estimate(served.completionEstimate);
    // A stream that broke after its first byte: a 200 the client saw end with an error event.
    // Recorded as answered (200, its tokens billed) with the code that counts it as an error.
    const code = served.streamError === undefined ? undefined : STREAM_INTERRUPTED;
    const rec = this.#record(200, code, served.role, served.backend, served.attempts, served.rerouted, u, latencyMs, ttftMs);
    this.#close(rec, response);
    return rec;
  }

  /**
   * A failed request: recorded under the role asked for and the last backend it was sent to,
   * with the usage of an attempt that delivered tokens before the request failed (a stream the
   * client left: its tokens are billed).
   */
  fail(e: FabricError, latencyMs: number, role: string): UsageRecord {
    const sent = e.attempts?.filter(wasSent);
    const served = this.#servedBy === undefined ? 0 : 1;
    const rec = this.#record(e.status, e.code, role, this.#servedBy ?? lastSentBackend(e.attempts), (sent?.length ?? 0) + served, false, this.#usage, latencyMs, undefined);
    this.#close(rec, JSON.stringify(e.toBody()));
    return rec;
  }

  #record(status: number, code: string | undefined, role: string, backend: string, attempts: number, rerouted: boolean, u: Usage | undefined, latencyMs: number, ttftMs: number | undefined): UsageRecord {
    return {
      id: this.ctx.id, ts: this.ts, keyId: this.key?.id, keyName: this.key?.name, op: this.op, model: this.model, role, backend,
      upstreamModel: backend === '' ? '' : this.#acct.upstreamModel(backend), status, code,
      promptTokens: u?.prompt_tokens ?? 0, completionTokens: u?.completion_tokens ?? 0, estimated: this.estimated,
      latencyMs: Math.round(latencyMs * 100) / 100, ttftMs: ttftMs === undefined ? undefined : Math.round(ttftMs * 100) / 100,
      attempts, rerouted, stream: this.stream, cost: this.cost,
    };
  }

  #close(rec: UsageRecord, response: string | undefined): void {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#hold !== undefined) {
      this.#acct.ledger.settle(this.#hold, 0);
      this.#hold = undefined;
    }
    const used = rec.promptTokens + rec.completionTokens;
    for (const t of this.tpm) this.#acct.limiter.adjust(t.key, t.limit, t.reserved - used);
    this.#acct.record(rec, this, response);
  }
}

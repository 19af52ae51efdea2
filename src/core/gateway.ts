// The transport-free gateway: one request in, an answer (or a stream into a sink) out.
// Fallback is a plain loop over an ordered plan — role members by strategy, then each
// fallback role — that ends in either an answer or one error listing every attempt.

import { KIND_ENDPOINTS, KIND_NAMES, ollamaNumCtx, type FabricConfig } from '../config/types.ts';
import { isAudioOp, isPoolingOp, type AudioOperation, type JsonObject, type NormalizeContext, type Operation, type PreparedRequest, type Usage } from '../engines/types.ts';
import { AudioStreamTranslator, audioAnswer, upstreamBody, type AudioAnswer, type AudioRequest } from '../engines/audio.ts';
import { RouteTable, type ListedModel, type Route } from '../routing/table.ts';
import { TokenCounter } from '../tokens/count.ts';
import { answerTokensEstimate } from '../tokens/estimate.ts';
import { affinityKey } from '../routing/affinity.ts';
import { inputHasAll, keyConditionsHold, type Caller, type RouteRule } from '../routing/rules.ts';
import { suggest } from '../config/issues.ts';
import { BackendRuntime } from './backend.ts';
import { FabricError, STREAM_INTERRUPTED, wasSent, type AttemptFailure, type FailureClass } from './errors.ts';
import { AttemptError, Unsupported, MAX_ERROR_BODY, MAX_RESPONSE_BODY, retryAfterMs, secs, transportError, upstreamError, withoutKeys } from './attempt-error.ts';
import { streamAttempt, type StreamOutcome } from './stream-attempt.ts';
import { BufferedCall, cancellableSleep, Deadlines, type Cancel } from './upstream.ts';
import type { Secrets } from '../config/env-file.ts';
import type { TraceContext } from './trace-context.ts';

export interface RequestContext {
  /** The gateway's own id: what logs and accounting key on. */
  id: string;
  clientRequestId: string | undefined;
  /** Unix seconds, for response envelopes. */
  created: number;
  /** Fires when the client goes away. */
  cancel: Cancel;
  /** Failure drill (x-fabric-drill: fail-primary): the first step's backends count as failed, for this request only. */
  drillFailPrimary?: boolean;
  /** Budgets: reserve before each attempt, settle after (src/accounting); absent when nothing is priced or budgeted. */
  account?: AttemptHooks;
  /** The route, when admission already resolved it (on this gateway): not resolved twice. */
  route?: Route<BackendRuntime>;
  /** The request body's size in bytes: no prompt in it is longer, in tokens. */
  bodyBytes?: number;
  /** The W3C trace context each backend is sent: the client's as it came, or the gateway's own attempt spans (src/core/trace-context.ts). */
  trace?: TraceContext | undefined;
  /** The request's virtual key, for rules on who calls (src/routing/rules.ts); absent for the master key and an open gateway. */
  caller?: Caller | undefined;
}

/**
 * A prompt is judged too long for a backend before sending only when the gateway's count
 * (o200k) is this far past the backend's known window: another model's tokenizer may count a
 * little less, and a backend that might fit is tried.
 */
const SURELY_TOO_LONG = 1.25;
/** The tokens a token count counts exactly (a 256K window, the largest most local models have); the rest is estimated by bytes. */
export const COUNT_EXACT = 262_144;

/** Why a backend is passed over before sending (a spent budget), and where to go instead. */
export interface AttemptVerdict {
  skip: string;
  /** A role to append to the chain (the budget's fallback). */
  fallback?: string;
  /** The budget that was spent, reported in x-fabric-budget-exceeded. */
  budget?: string;
}

export interface AttemptHooks {
  /** Before an attempt: undefined to send it, or why not. May reserve; may throw a FabricError to end the request. */
  before(backend: BackendRuntime): AttemptVerdict | undefined | Promise<AttemptVerdict | undefined>;
  /** After an attempt, answered (ok) or failed: settles what before() reserved. */
  after(backend: BackendRuntime, usage: Usage | undefined, ok: boolean, ms: number, completionEstimate?: number): void;
}

export interface Served {
  requested: string;
  /** The route the requested name resolved to (a role, pattern or backend alias). */
  route: string;
  /** The route that served: the same, or a fallback / rule / context-window target. */
  role: string;
  backend: string;
  /** The model id sent to that backend (its own, or the requested one on a pass-through pattern). */
  model: string;
  attempts: number;
  /** Served by a fallback role, a rule target or a context-window fallback, not the route asked for. */
  rerouted: boolean;
  usage: Usage | undefined;
  /** Set when a stream broke after its first byte and was ended with an error event. */
  streamError: string | undefined;
  /** That error was the total timeout, after the client had held the stream back by not reading: not the backend's failure. */
  clientHeldBack: boolean;
  /** A stream: ms from its attempt's start to its first token (the backend's time to first token, and the gateway's relay). */
  firstTokenMs: number | undefined;
  /** An answer that carried no usage: a stream's chunks, about one token each, or a whole answer's text, four bytes a token (an estimate). */
  completionEstimate?: number;
  failures: AttemptFailure[];
  /** Attempts sent again to the same backend after a failure. */
  retries: number;
  /** Budgets found spent on the way: their backends were passed over. */
  budgets?: string[];
}

export interface StreamSink {
  /** Commit the response: status 200 and headers naming the served route. */
  begin(served: Served): void;
  write(data: Buffer | string): boolean;
  onDrain(cb: () => void): void;
  end(): void;
}

/** A sink whose last bytes may be held back until the answer's usage record is spooled. */
export interface HoldingSink extends StreamSink {
  /** Written as the stream's last bytes: at once, or at release when the end is deferred. */
  writeLast(data: string): void;
}

type RouteT = Route<BackendRuntime>;

/** The client went away (499): with what was served, when a stream it left had begun (its tokens are billed). */
export class ClientClosed extends FabricError {
  readonly served: Served | undefined;
  constructor(served: Served | undefined, attempts: AttemptFailure[]) {
    super('client_closed_request', 'client closed the request', { attempts });
    this.served = served;
  }
}

export interface GatewayOptions {
  /** Override for tests: the token counter used by routing rules. */
  tokens?: TokenCounter;
  /** Called when a step had nothing to try (every backend skipped): wakes sleeping nodes (Wake-on-LAN). */
  wakeFor?: (backends: readonly BackendRuntime[]) => void;
}

/** An engine's 404 that is about the model (vLLM: "The model `x` does not exist."; Ollama: 'model "x" not found'), not a wrong path. */
const MODEL_WORD = /\bmodel\b/i;

/** What a stream's attempt tells of how it was served (its error without the backend's key). */
function streamed(backend: BackendRuntime, served: Served, outcome: StreamOutcome): void {
  served.usage = outcome.usage;
  served.streamError = outcome.streamError === undefined ? undefined : withoutKeys(backend, outcome.streamError);
  served.completionEstimate = outcome.completionEstimate;
  served.clientHeldBack = outcome.clientHeldBack;
}

export class Gateway {
  readonly config: FabricConfig;
  readonly backends: Map<string, BackendRuntime>;
  readonly table: RouteTable<BackendRuntime>;
  readonly #tokens: TokenCounter;
  readonly #wakeFor: GatewayOptions['wakeFor'];
  /** Total-time deadlines of this gateway's requests in flight, swept by one timer. */
  readonly #deadlines = new Deadlines();
  /** Requests running on this gateway (enter/leave); a retired one (after a reload) closes its pools when none are left. */
  #active = 0;
  /** whenIdle() callers. */
  readonly #idle: (() => void)[] = [];

  constructor(config: FabricConfig, secrets: Secrets, opts: GatewayOptions = {}) {
    this.config = config;
    this.backends = new Map();
    for (const b of config.backends.values()) {
      this.backends.set(b.name, new BackendRuntime(b, b.node === undefined ? undefined : config.nodes.get(b.node), secrets));
    }
    this.table = new RouteTable(config, this.backends);
    this.#tokens = opts.tokens ?? new TokenCounter();
    this.#wakeFor = opts.wakeFor;
    if ([...config.roles.values()].some((r) => r.rules.some((x) => x.inputTokensOver !== undefined))) this.#tokens.preload();
  }

  models(): readonly ListedModel[] {
    return this.table.listed();
  }

  /**
   * A chat request's prompt tokens as the gateway's tokenizer counts them (loaded on first use): an
   * estimate of any model's count. Counted up to COUNT_EXACT tokens, past that by bytes: a count
   * (Anthropic's count_tokens, which no rate limit meters) costs at most some 200 ms of CPU
   * whatever the body limit (8 MiB took a second).
   */
  countTokens(body: JsonObject): Promise<number> {
    return this.#tokens.estimate(body, COUNT_EXACT);
  }

  /**
   * Resolve the model and check it fits the operation; throws 404 / 400. `visible`: the routes the
   * caller may see (a key limited to some roles), the only ones a did-you-mean may name.
   */
  route(op: Operation, model: string, visible?: (routeName: string) => boolean): RouteT {
    const r = this.table.resolve(model);
    if (r === undefined) {
      const names = visible === undefined ? this.table.names() : [...this.table.names()].filter((n) => { const t = this.table.resolve(n); return t !== undefined && visible(t.route.name); });
      const hint = suggest(model, names);
      throw new FabricError('model_not_found', `The model \`${model}\` does not exist on this gateway${hint === undefined ? '' : ` (did you mean \`${hint}\`?)`}; GET /v1/models lists what it serves`, { param: 'model' });
    }
    const want = op === 'embeddings' || op === 'rerank' ? op : isAudioOp(op) ? 'transcription' : 'chat';
    if (r.route.kind !== want) {
      const k = r.route.kind;
      throw new FabricError('wrong_model_kind', `\`${model}\` is ${KIND_NAMES[k]} model; use ${KIND_ENDPOINTS[k]}`, { param: 'model' });
    }
    return r.route;
  }

  /** A non-streamed request: the normalized OpenAI response object. */
  unary(op: Operation, body: JsonObject, ctx: RequestContext): Promise<{ response: JsonObject; served: Served }> {
    return this.#attempts(op, body, ctx, (backend, served) => this.#unaryAttempt(op, backend, body, ctx, served));
  }

  /** An audio upload (transcription or translation): the answer as the client asked for it. */
  audio(op: AudioOperation, req: AudioRequest, ctx: RequestContext): Promise<{ response: AudioAnswer; served: Served }> {
    // What routing reads of a request: its model. The upload itself goes to each attempt.
    return this.#attempts(op, { model: req.model }, ctx, (backend, served) => this.#audioAttempt(op, backend, req, ctx, served));
  }

  /** A streamed audio upload: OpenAI's transcript.text events into the sink; resolves when the stream has ended. */
  async audioStream(op: AudioOperation, req: AudioRequest, ctx: RequestContext, sink: StreamSink): Promise<Served> {
    return (await this.#attempts(op, { model: req.model, stream: true }, ctx, async (backend, served) => {
      const u = this.#upload(op, backend, req, ctx, served, true);
      // No first-byte limit: OpenAI's whisper-1 answers a stream request whole, once the audio is decoded.
      streamed(backend, served, await streamAttempt(this.#deadlines, backend, u, u.headers, new AudioStreamTranslator(), true, sink, served, ctx.cancel, 0));
    })).served;
  }

  /** A streamed request: writes SSE into the sink; resolves when the stream has ended. */
  async stream(op: Operation, body: JsonObject, ctx: RequestContext, sink: StreamSink): Promise<Served> {
    // Decided once: preparing an attempt may add include_usage to the body, and a fallback
    // attempt must still strip the usage event the client did not ask for.
    const so = body.stream_options;
    const clientWantsUsage = typeof so === 'object' && so !== null && (so as { include_usage?: unknown }).include_usage === true;
    return (await this.#attempts(op, body, ctx, (backend, served) => this.#streamAttempt(op, backend, body, ctx, sink, served, clientWantsUsage))).served;
  }

  /** The first rule whose conditions all hold (the token count last: the others cost next to nothing) picks the plan; else the route's own. */
  async #plan(op: Operation, route: RouteT, body: JsonObject, caller: Caller | undefined): Promise<RouteRule<RouteT> | undefined> {
    for (const rule of route.rules) {
      if (!keyConditionsHold(rule, caller)) continue;
      if (rule.inputHas !== undefined && !inputHasAll(body, rule.inputHas)) continue;
      if (rule.inputTokensOver === undefined) return rule;
      const over = isPoolingOp(op) ? this.#tokens.anyOver(body, rule.inputTokensOver) : this.#tokens.exceeds(body, rule.inputTokensOver);
      if (await over) return rule;
    }
    return undefined;
  }

  /**
   * Counts a request as running here from when it is taken (before its body is read), so a
   * reload meanwhile keeps this gateway's pools open for it; leave() once for each enter().
   * The HTTP server does it around each inference request.
   */
  enter(): void {
    this.#active++;
  }

  leave(): void {
    if (--this.#active === 0 && this.#idle.length > 0) for (const f of this.#idle.splice(0)) f();
  }

  /** Resolves once no request is running here (at once if none is). */
  whenIdle(): Promise<void> {
    return this.#active === 0 ? Promise.resolve() : new Promise((resolve) => { this.#idle.push(resolve); });
  }

  /** Tries the plan's backends in turn until an attempt succeeds: what it returned, and how the request was served. */
  async #attempts<T>(
    op: Operation, body: JsonObject, ctx: RequestContext,
    attempt: (backend: BackendRuntime, served: Served) => Promise<T>,
  ): Promise<{ response: T; served: Served }> {
    const requested = body.model as string;
    const first = ctx.route ?? this.route(op, requested);
    const rule = first.rules.length === 0 ? undefined : await this.#plan(op, first, body, ctx.caller);
    const ruled = rule?.target;
    // A rule on who calls keeps its callers on its target's side: the context-window fallback of
    // the role they asked for (another tier's, say the cloud) is not theirs.
    const askedContextFallback = rule !== undefined && (rule.keys !== undefined || rule.keyMetadata !== undefined) ? undefined : first.contextFallback;
    // The route's own chain, shared by every request: copied before anything is appended.
    let chain = (ruled ?? first).chain;
    let rerouted = ruled !== undefined;
    const failures: AttemptFailure[] = [];
    const served: Served = { requested, route: first.name, role: '', backend: '', model: '', attempts: 0, rerouted, usage: undefined, streamError: undefined, clientHeldBack: false, firstTokenMs: undefined, failures, retries: 0 };
    const maxAttempts = this.config.gateway.limits.maxAttempts;
    let usedContextFallback = false;
    let unsupported: Unsupported | undefined;
    let affinity: string | undefined;
    // Skipped for a while only (cooling down, half-open, rate limited by the backend, a node
    // asleep): they may take the request later, which makes a final 400 (context length,
    // unsupported) a 503 to retry.
    let waiting: Array<[BackendRuntime, RouteT]> | undefined;
    // A non-streamed generation answers only once it is done: a half-open trial of one holds its slot that long.
    const wholeAnswer = !isPoolingOp(op) && body.stream !== true;
    outer: for (let ci = 0; ci < chain.length; ci++) {
      const step = chain[ci]!;
      const balancer = step.balancer;
      const order = balancer.wantsAffinityKey === true && op === 'chat' ? balancer.order(affinity ??= affinityKey(body)) : balancer.order();
      let tried = false;
      let skipped = 0;
      for (const backend of order) {
        if (ci === 0 && ctx.drillFailPrimary === true && !usedContextFallback) {
          failures.push({ backend: backend.name, role: step.name, failure: 'unavailable', message: 'treated as failed by the failure drill (x-fabric-drill)' });
          continue;
        }
        const now = Date.now();
        const skip = backend.skipReason(now, wholeAnswer);
        if (skip !== undefined) {
          failures.push({ backend: backend.name, role: step.name, failure: 'unavailable', message: skip });
          if (backend.retryAfterSeconds(now) !== undefined) (waiting ??= []).push([backend, step]);
          skipped++;
          if (skipped === order.length && !tried && this.#wakeFor !== undefined) this.#wakeFor(step.members);
          continue;
        }
        tried = true;
        // A prompt far past the backend's known window is not sent: the engine would refuse it
        // (Ollama only after loading the model). Counted only for a body that long in bytes,
        // and only when the tokenizer is loaded for rules (it costs some 70 MiB).
        // Not on a pattern route (the client names the model, whose window is not the
        // backend's), nor for a batch of legacy prompts (each has the window to itself).
        // Nor for reranking: each query and document pair has the window to itself.
        const window = step.passthrough || Array.isArray(body.prompt) || op === 'rerank' ? undefined : backend.contextWindow();
        const limit = window === undefined ? 0 : Math.ceil(window * SURELY_TOO_LONG);
        if (window !== undefined && this.#tokens.ready && (ctx.bodyBytes ?? Infinity) > limit && await this.#tokens.exceeds(body, limit)) {
          backend.releaseTrial();
          failures.push({ backend: backend.name, role: step.name, failure: 'context_length', judged: true, message: `not sent: the prompt is over ${limit} tokens (counted with o200k), well past its context window of ${window}` });
          const cf = usedContextFallback ? undefined : step.contextFallback ?? askedContextFallback;
          if (cf !== undefined) { usedContextFallback = true; chain = cf.chain; rerouted = true; ci = -1; }
          continue outer;
        }
        for (let retry = 0; ; retry++) {
          if (served.attempts >= maxAttempts) {
            backend.releaseTrial(); // a half-open trial reserved above, never sent
            break outer;
          }
          if (ctx.account !== undefined) {
            let v = ctx.account.before(backend);
            if (v instanceof Promise) v = await v;
            if (v !== undefined) {
              backend.releaseTrial();
              failures.push({ backend: backend.name, role: step.name, failure: 'unavailable', message: v.skip, ...(v.budget === undefined ? {} : { budget: v.budget }) });
              if (v.budget !== undefined && !(served.budgets ??= []).includes(v.budget)) served.budgets.push(v.budget);
              // A budget covers backends of any kind; its fallback takes over only requests of its own.
              const fb = v.fallback === undefined ? undefined : this.table.resolve(v.fallback)?.route;
              if (fb !== undefined && fb.kind === first.kind && !chain.includes(fb)) chain = [...chain, fb, ...fb.fallbacks.filter((f) => !chain.includes(f))];
              break;
            }
          }
          served.attempts++;
          served.role = step.name;
          served.backend = backend.name;
          served.model = this.#model(backend, step, requested);
          served.rerouted = rerouted || ci > 0;
          const started = performance.now();
          const trace = ctx.trace;
          trace?.attempt?.({ op, backend: backend.name, role: step.name, engine: backend.config.engine, url: backend.config.url, model: served.model, retry: retry > 0 });
          try {
            const response = await attempt(backend, served);
            trace?.attemptEnd?.(served.streamError === undefined ? undefined : STREAM_INTERRUPTED, served.streamError);
            const ms = performance.now() - started;
            ctx.account?.after(backend, served.usage, true, ms, served.completionEstimate);
            // A stream the client left after its first tokens: billed above, not the backend's failure.
            if (ctx.cancel.aborted) throw new ClientClosed(served, failures);
            // A stream that broke after its first byte was answered (with an error event), but the
            // backend failed (its machine, which streamed, is on); unless the client's slow reading
            // ran it out of time (neither way, then).
            if (served.streamError === undefined) {
              backend.recordSuccess(ms);
              backend.recent.succeeded(started + ms, served.firstTokenMs ?? ms, served.firstTokenMs !== undefined);
            } else if (!served.clientHeldBack) backend.recordFailure(served.streamError, Date.now(), false, true);
            return { response, served };
          } catch (e) {
            // Refused by the engine's translation before anything was sent: no attempt to trace.
            // The backend's words may quote its key: never exported.
            if (trace?.attemptEnd !== undefined) trace.attemptEnd(e instanceof AttemptError ? e.failure : e instanceof FabricError ? e.code : 'error', withoutKeys(backend, String((e as Error)?.message)), !(e instanceof Unsupported));
            if (e instanceof ClientClosed) throw e;
            ctx.account?.after(backend, undefined, false, performance.now() - started);
            if (ctx.cancel.aborted) throw new ClientClosed(undefined, [...failures, { backend: backend.name, role: step.name, failure: 'aborted', message: 'client closed the request' }]);
            if (e instanceof FabricError) throw e;
            const f = e instanceof AttemptError ? e : new AttemptError('malformed', `unexpected failure: ${(e as Error).message}`);
            // The gateway's own machine is out of descriptors or memory: no backend is blamed,
            // and another would fail the same way.
            if (f.local) {
              backend.releaseTrial();
              // Not an attempt of the backend's: nothing reached it (nor its failure counts).
              throw new FabricError('gateway_overloaded', `${backend.name}: ${f.message}`, { attempts: failures, headers: { 'retry-after': '1' } });
            }
            // What the backend said reaches the client, /health and the log: never its key (an
            // error event or a first chunk may quote it as well as an error body).
            f.message = withoutKeys(backend, f.message);
            // Ollama's refusal names no figures: say what decided its context, and the fix.
            if (f.failure === 'context_length' && backend.config.engine === 'ollama' && ollamaNumCtx(backend.config) === undefined) {
              f.message += ` (${backend.name} sets no context_window, so Ollama ran ${backend.config.model} at its server's default context; set one to have the gateway ask for a longer context)`;
            }
            // On a pattern route the client named the model: a backend that does not serve it
            // says 404, which is not its failure, and another backend of the pattern may serve it.
            if (step.passthrough && f.status === 404 && f.failure === 'misconfigured' && MODEL_WORD.test(f.message)) {
              failures.push({ backend: backend.name, role: step.name, failure: 'model_not_found', status: 404, message: f.message });
              // It answered, and properly: healthy (a half-open trial that ends so closes the circuit).
              backend.recordSuccess(performance.now() - started);
              break;
            }
            failures.push({ backend: backend.name, role: step.name, failure: f.failure, status: f.status, message: f.message, retryAfter: f.retryAfter });
            if (f instanceof Unsupported) {
              // Nothing was sent (not an attempt); another backend may take the request as asked.
              served.attempts--;
              backend.releaseTrial();
              unsupported = f;
              break;
            }
            if (f.failure === 'client_error') {
              throw new FabricError('upstream_rejected', f.message, { attempts: failures, ...(f.param === undefined ? {} : { param: f.param }) });
            }
            if (f.failure === 'context_length') {
              backend.recordSuccess(performance.now() - started);
              // The longer-context role of this step, or else of the route asked for (a fallback
              // role's window may be the smaller one). Without one: the role's other backends
              // serve the same window; the next role may have a longer one.
              const cf = usedContextFallback ? undefined : step.contextFallback ?? askedContextFallback;
              if (cf !== undefined) { usedContextFallback = true; chain = cf.chain; rerouted = true; ci = -1; }
              continue outer;
            }
            // An HTTP answer, however bad (a 5xx, a 404 for another model), says the machine is on:
            // a workstation failing so is down, not switched off (until a probe or a failed
            // connection says otherwise). A failure of the gateway's own says nothing.
            if (f.failure !== 'rate_limited' || f.quotaSpent) backend.recordFailure(f.message, Date.now(), false, f.status !== undefined ? true : f.failure === 'connect' ? false : undefined);
            backend.accountSpent = f.failure === 'quota_exceeded';
            // A wait the backend asks for that is longer than a request waits: not retried here
            // (skipReason below says so), and later requests pass it over until then.
            const wait = f.retryAfter === undefined ? undefined : retryAfterMs(f.retryAfter, Date.now());
            if (wait !== undefined && wait > this.config.gateway.retryMaxMs) backend.rateLimit(wait, Date.now());
            const retryable = (f.failure === 'connect' || f.status === 429 || f.status === 503) && !f.quotaSpent;
            if (retryable && retry < backend.config.maxRetries && served.attempts < maxAttempts && backend.skipReason(Date.now(), wholeAnswer) === undefined) {
              await cancellableSleep(this.#backoff(retry, wait), ctx.cancel);
              if (ctx.cancel.aborted) throw new ClientClosed(undefined, failures);
              served.retries++;
              continue;
            }
            break;
          }
        }
      }
    }
    throw this.#allFailed(op, requested, body, failures, unsupported, waiting);
  }

  /** The wait before a retry: the backend's own (Retry-After, in ms; only a short one reaches here), or jittered exponential backoff. */
  #backoff(retry: number, retryAfterMs: number | undefined): number {
    const { retryBaseMs, retryMaxMs } = this.config.gateway;
    if (retryAfterMs !== undefined && retryAfterMs <= retryMaxMs) return retryAfterMs;
    const ceiling = Math.min(retryMaxMs, retryBaseMs * 2 ** retry);
    return ceiling / 2 + Math.random() * (ceiling / 2);
  }

  /** Why this backend's engine cannot take the request as asked (Ollama and n > 1), if it cannot: for a backend skipped without trying. */
  #refusal(op: Operation, backend: BackendRuntime, route: RouteT, requested: string, body: JsonObject): Unsupported | undefined {
    try {
      backend.engine.prepare(op, body, { model: this.#model(backend, route, requested), wantStreamUsage: false, clientWantsUsage: false });
    } catch (e) {
      if (e instanceof Unsupported) return e;
    }
    return undefined;
  }

  /** The final error; `model` is the one the client named (preparing an attempt rewrites body.model). */
  #allFailed(op: Operation, model: string, body: JsonObject, failures: AttemptFailure[], unsupported: Unsupported | undefined, waiting: Array<[BackendRuntime, RouteT]> | undefined): FabricError {
    // Sent, or judged as the engine would have answered (a prompt surely past its window).
    const sent = failures.filter((f) => wasSent(f) || f.judged === true);
    const now = Date.now();
    const tried = failures.map((f) => `${f.backend} (${f.role}): ${f.message}`).join('; ');
    const every = (c: FailureClass): boolean => sent.length > 0 && sent.every((f) => f.failure === c);
    // Backends skipped for a while only that could take the request as asked: worth a retry.
    // A backend that can never be used, a spent budget or the drill is not; nor is one whose
    // engine refuses the request's form.
    const later: Array<[BackendRuntime, RouteT]> = [];
    for (const w of waiting ?? []) {
      const no = this.#refusal(op, w[0], w[1], model, body);
      if (no === undefined) later.push(w);
      else unsupported ??= no;
    }
    // No backend could take the request as asked: the request's to change (400).
    if (unsupported !== undefined && sent.length === 0 && later.length === 0) {
      return new FabricError('invalid_request', `no backend for \`${model}\` can take this request: ${tried}`, { param: unsupported.param, attempts: failures });
    }
    // The prompt fits nowhere: the client's to shorten (400), not a fleet failure. Unless a
    // backend that may have a longer window was skipped for now (cooling down, asleep): a 503
    // to retry, not a prompt to cut. A role's backends share a window, so one skipped beside a
    // backend that answered "too long" has none longer; nor has one whose configured window is
    // no longer than every window that was too short.
    if (every('context_length') && !later.some(([b, r]) => this.#mayFit(b, r, sent))) {
      return new FabricError('context_length_exceeded', `the input is longer than the context window of every backend tried for \`${model}\`: ${tried}`, {
        param: op === 'chat' ? 'messages' : op === 'completions' ? 'prompt' : op === 'rerank' ? 'documents' : 'input', attempts: failures,
      });
    }
    // Every account tried is spent, and no backend skipped for now may serve later, but for those
    // cooling down after their account said so: waiting will not help, and the error says so to
    // the client's SDK (x-should-retry: false).
    const quota = every('quota_exceeded');
    const spentAccount = (f: AttemptFailure): boolean => f.failure === 'quota_exceeded' || (!wasSent(f) && this.backends.get(f.backend)?.accountSpent === true);
    if ((quota && later.length === 0) || (sent.length === 0 && failures.length > 0 && failures.every(spentAccount))) {
      const spent = [...new Set(failures.map((f) => f.backend))].join(', ');
      return new FabricError('insufficient_quota', `no quota left on the provider account behind ${spent} (insufficient_quota): no backend for \`${model}\` can serve the request until it is topped up; tried: ${tried}`, { attempts: failures });
    }
    if (!quota && sent.length > 0 && sent.every((f) => f.failure === 'rate_limited' || f.failure === 'quota_exceeded')) {
      const ra = sent.findLast((f) => f.failure === 'rate_limited')?.retryAfter;
      return new FabricError('rate_limit_exceeded', `every backend for \`${model}\` is rate limited: ${tried}`, {
        attempts: failures, headers: ra === undefined ? undefined : { 'retry-after': ra },
      });
    }
    // Only spent budgets stood in the way, and nothing may serve later: the period's end is what
    // it waits for, not a retry (OpenAI's quota error, x-should-retry: false).
    if (sent.length === 0 && later.length === 0 && failures.length > 0 && failures.every((f) => f.budget !== undefined)) {
      const names = [...new Set(failures.map((f) => f.budget))].join(', ');
      return new FabricError('insufficient_quota', `every backend for \`${model}\` is held back by a spent budget (${names}) until its period resets: ${tried}`, { attempts: failures });
    }
    // Unless a backend of the pattern was skipped for now: it may serve the name (a 503 to retry).
    if (every('model_not_found') && later.length === 0) {
      return new FabricError('model_not_found', `The model \`${model}\` is not served by any backend its name matches: ${tried}`, { param: 'model', attempts: failures });
    }
    if (every('timeout')) return new FabricError('upstream_timeout', `every backend for \`${model}\` timed out: ${tried}`, { attempts: failures });
    if (every('malformed')) return new FabricError('bad_upstream_response', `the backend for \`${model}\` sent an unusable answer: ${tried}`, { attempts: failures });
    // When the first backend may be tried again: at once (1 s) for one that failed without
    // cooling down, at the end of its cooldown (or of the wait it asked for with a 429) for one
    // skipped so; 5 s when nothing says (no backend, or every one skipped for another reason:
    // a node asleep, a budget).
    let retryAfter: number | undefined;
    for (const f of failures) {
      const b = this.backends.get(f.backend);
      if (b === undefined) continue;
      const s = b.retryAfterSeconds(now) ?? (wasSent(f) ? 1 : undefined);
      if (s !== undefined && (retryAfter === undefined || s < retryAfter)) retryAfter = s;
    }
    return new FabricError('no_backend_available', `no backend could serve \`${model}\`; tried: ${tried || 'nothing (no backend configured)'}`, {
      attempts: failures, headers: { 'retry-after': String(retryAfter ?? 5) },
    });
  }

  /** Whether a skipped backend's window may be longer than those of the backends that answered "too long" (`tooLong`). */
  #mayFit(backend: BackendRuntime, route: RouteT, tooLong: readonly AttemptFailure[]): boolean {
    let longest = 0;
    let unknown = false;
    for (const f of tooLong) {
      if (f.role === route.name) return false;
      const w = this.backends.get(f.backend)?.contextWindow();
      if (w === undefined) unknown = true; // not known: the skipped one's may be longer
      else if (w > longest) longest = w;
    }
    const own = backend.contextWindow();
    return unknown || own === undefined || own > longest;
  }

  #headers(backend: BackendRuntime, ctx: RequestContext, stream: boolean): Record<string, string> {
    const h: Record<string, string> = {
      'content-type': 'application/json',
      accept: stream ? 'text/event-stream' : 'application/json',
      'x-request-id': ctx.id,
    };
    if (backend.authorization !== undefined) h.authorization = backend.authorization;
    const t = ctx.trace;
    if (t !== undefined) {
      h.traceparent = t.traceparent;
      if (t.tracestate !== undefined) h.tracestate = t.tracestate;
    }
    return h;
  }

  #nctx(ctx: RequestContext, model: string): NormalizeContext {
    return { requestId: ctx.id, model, created: ctx.created };
  }

  #model(backend: BackendRuntime, route: RouteT, requested: string): string {
    return route.passthrough ? requested : backend.config.model;
  }

  /**
   * The request as this backend's engine takes it. Nothing has been sent: a failure here is the
   * request's (a FabricError, as is) or the gateway's own (a 500), never the backend's.
   */
  #prepare(op: Operation, backend: BackendRuntime, body: JsonObject, served: Served, stream: boolean, clientWantsUsage: boolean): PreparedRequest {
    try {
      return backend.engine.prepare(op, body, { model: served.model, wantStreamUsage: stream, clientWantsUsage });
    } catch (e) {
      if (e instanceof FabricError || e instanceof AttemptError) throw e;
      throw new FabricError('internal_error', `the request could not be prepared for ${backend.name}`, { cause: e });
    }
  }

  #unaryAttempt(op: Operation, backend: BackendRuntime, body: JsonObject, ctx: RequestContext, served: Served): Promise<JsonObject> {
    const prepared = this.#prepare(op, backend, body, served, false, false);
    // No first-byte limit for a generation: vLLM and Ollama send a non-streamed answer's head
    // only once the whole generation is done, so the wait for it is the total timeout's.
    // Embeddings and reranking take no generation: a wedged engine is still found out at first_byte.
    const headersTimeout = isPoolingOp(op) ? backend.config.timeouts.firstByteMs : 0;
    return this.#wholeAnswer(backend, ctx, backend.basePath + prepared.path, this.#headers(backend, ctx, false), prepared.body, headersTimeout, (json, status) => {
      const out = backend.engine.normalize(op, json, body, this.#nctx(ctx, served.requested));
      if (out === undefined) throw new AttemptError('malformed', `answered ${status} with JSON that is not a ${op} response`, status);
      served.usage = out.usage as Usage | undefined;
      // No usage reported: the completion estimated from the answer's text, as a stream's from its chunks.
      if (served.usage === undefined && !isPoolingOp(op)) served.completionEstimate = answerTokensEstimate(out);
      return out;
    });
  }

  /** An audio upload as this backend gets it: its path, its headers, the form with its model. */
  #upload(op: AudioOperation, backend: BackendRuntime, req: AudioRequest, ctx: RequestContext, served: Served, stream: boolean): { path: string; headers: Record<string, string>; body: readonly Buffer[] } {
    const { body, contentType } = upstreamBody(req, served.model, backend.config.engine);
    const headers = this.#headers(backend, ctx, stream);
    headers['content-type'] = contentType;
    return { path: `/audio/${op}`, headers, body };
  }

  #audioAttempt(op: AudioOperation, backend: BackendRuntime, req: AudioRequest, ctx: RequestContext, served: Served): Promise<AudioAnswer> {
    const u = this.#upload(op, backend, req, ctx, served, false);
    // The answer comes once the whole audio is decoded: no first-byte limit, as for a generation.
    return this.#wholeAnswer(backend, ctx, backend.basePath + u.path, u.headers, u.body, 0, (json, status) => {
      const out = audioAnswer(op, req.format, json, status);
      served.usage = out.usage;
      return out;
    });
  }

  /**
   * One request whose answer is read whole, as JSON, within the backend's total timeout (from
   * the request's start; connecting is bounded by the pool's connect timeout, each read of the
   * body by idle): what `read` makes of it. A failure is the attempt's (AttemptError).
   */
  async #wholeAnswer<T>(
    backend: BackendRuntime, ctx: RequestContext, path: string, headers: Record<string, string>, body: string | readonly Buffer[], headersTimeout: number,
    read: (json: unknown, status: number) => T,
  ): Promise<T> {
    const t = backend.config.timeouts;
    const call = new BufferedCall(MAX_RESPONSE_BODY, MAX_ERROR_BODY);
    let timedOut: string | undefined;
    const deadline = this.#deadlines.add(t.totalMs, () => {
      timedOut = `no complete answer within the total timeout (${secs(t.totalMs)})`;
      call.abort(new Error(timedOut));
    });
    ctx.cancel.onAbort(() => call.abort(new Error('client closed the request')));
    backend.outstanding++;
    try {
      call.send(backend.pool, { method: 'POST', path, headers, body, headersTimeout, bodyTimeout: t.idleMs });
      let res;
      try {
        res = await call.promise;
      } catch (e) {
        throw transportError(backend, e, timedOut);
      }
      if (res.status < 200 || res.status >= 300) throw upstreamError(backend, res.status, res.headers, res.body.toString('utf8'));
      let json: unknown;
      try {
        json = JSON.parse(res.body.toString('utf8'));
      } catch {
        throw new AttemptError('malformed', `answered ${res.status} with a body that is not JSON (${res.body.length} bytes)`, res.status);
      }
      return read(json, res.status);
    } finally {
      this.#deadlines.delete(deadline);
      ctx.cancel.clear();
      backend.outstanding--;
    }
  }

  async #streamAttempt(
    op: Operation, backend: BackendRuntime, body: JsonObject, ctx: RequestContext, sink: StreamSink, served: Served, clientWantsUsage: boolean,
  ): Promise<void> {
    const prepared = this.#prepare(op, backend, body, served, true, clientWantsUsage);
    const translator = backend.engine.streamFormat === 'sse' ? undefined : backend.engine.streamTranslator!(op, this.#nctx(ctx, served.requested), clientWantsUsage, prepared);
    streamed(backend, served, await streamAttempt(this.#deadlines, backend, prepared, this.#headers(backend, ctx, true), translator, clientWantsUsage, sink, served, ctx.cancel));
  }

  /**
   * A reload: this gateway replaces `prev`. Each backend that is the same server as before
   * (BackendRuntime.sameServerAs) takes over what `prev` knew of it and its requests in flight;
   * a new, renamed or changed one starts unknown. Call once, just before this gateway is swapped in.
   */
  carryOver(prev: Gateway, now = Date.now()): void {
    /** Each old runtime whose server this config keeps, and the runtime that takes it over. */
    const kept = new Map<BackendRuntime, BackendRuntime>();
    for (const b of this.backends.values()) {
      const was = prev.backends.get(b.name);
      if (was === undefined || !b.sameServerAs(was)) continue;
      b.takeOver(was, now);
      kept.set(was, b);
    }
    // Conversations pinned to a backend (affinity) stay there, where their prefix is cached.
    for (const role of this.config.roles.values()) {
      const balancer = this.table.resolve(role.name)?.route.balancer;
      const was = prev.table.resolve(role.name)?.route.balancer;
      if (balancer?.adopt !== undefined && was !== undefined) balancer.adopt(was, (old) => kept.get(old));
    }
  }

  async close(): Promise<void> {
    await Promise.all([...this.backends.values()].map((b) => b.close()));
  }

  /**
   * Replaced by a reload: close the pools once the requests still running here are done
   * (a request mid-fallback must still reach its next backend), at most after maxWaitMs.
   */
  async retire(maxWaitMs: number): Promise<void> {
    let t: NodeJS.Timeout | undefined;
    await Promise.race([this.whenIdle(), new Promise<void>((resolve) => { t = setTimeout(resolve, maxWaitMs); t.unref(); })]);
    clearTimeout(t);
    await this.close();
  }

}

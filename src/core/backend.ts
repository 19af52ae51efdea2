// A backend as the gateway runs it: its adapter, its connection pool, its credential and
// what is known of its health. Created once per config load (what is known carries over a
// reload that leaves the backend as it was: takeOver); the routing table holds these.

import { poolFor } from './http-client.ts';
import type { UpstreamPool } from './h1-pool.ts';
import { RecentTraffic } from '../health/recent.ts';
import { DEFAULT_HEALTH_POLICY, ollamaNumCtx, type BackendConfig, type HealthPolicy, type NodeConfig } from '../config/types.ts';
import type { Secrets } from '../config/env-file.ts';
import { redact } from './redact.ts';
import type { BackendSecret } from './sse-relay.ts';
import { engineFor } from '../engines/index.ts';
import type { EngineAdapter } from '../engines/types.ts';
import type { Member } from '../routing/balancer.ts';
import type { LoadSample } from '../health/load.ts';

/**
 * up: the last probe or request succeeded. failing: it failed, fewer times in a row than the
 * threshold, so the backend is still tried. down: cooled down (circuit open or half-open).
 */
export type HealthState = 'unknown' | 'up' | 'failing' | 'down';

/**
 * closed: in rotation. open: cooling down, skipped. half-open: the cooldown is over and one
 * trial (a request or the monitor's probe-back) decides whether it is restored or cooled again.
 */
export type Circuit = 'closed' | 'open' | 'half-open';

/** A load sample older than this is ignored (its engine stopped answering): the gateway's own count is fresher. */
const LOAD_STALE_MS = 30_000;
/** KV-cache usage from which a backend counts as overloaded (vLLM preempts near full). */
const KV_OVERLOADED = 0.9;

export class BackendRuntime implements Member {
  readonly name: string;
  readonly weight: number;
  readonly config: BackendConfig;
  readonly node: NodeConfig | undefined;
  readonly engine: EngineAdapter;
  /** Plain-HTTP backends (the fleet's engines) on the lean client; HTTPS (the cloud) on undici. */
  readonly pool: UpstreamPool;
  /** URL path prefix of the base URL (e.g. /v1), prepended to every engine path. */
  readonly basePath: string;
  readonly origin: string;
  /** Authorization header value for this backend, never the client's. */
  readonly authorization: string | undefined;
  /** The key, as bytes to look for in what the backend streams (an engine may quote it), and how text is rid of it. */
  readonly secret: BackendSecret | undefined;
  /** Set when the backend's key is missing from the environment: it is skipped, saying why. */
  readonly unusable: string | undefined;

  readonly policy: HealthPolicy;

  outstanding = 0;
  state: HealthState = 'unknown';
  consecutiveFailures = 0;
  /** 0 while the circuit is closed; otherwise when the cooldown ends (the circuit is half-open after it). */
  coolUntil = 0;
  /** Trips since the last successful request: each doubles the cooldown, up to the policy's maximum. */
  trips = 0;
  /**
   * 0, or until when the backend asked not to be sent requests (a 429 whose Retry-After is
   * longer than the gateway waits within a request): skipped until then, as if cooling down,
   * but not counted as a failure.
   */
  rateLimitedUntil = 0;
  lastError: string | undefined;
  /**
   * The machine answered last time it was asked: a probe that got any HTTP answer, or a request
   * that failed with one (an error status, another model); a failed connection clears it. A
   * workstation's backend that is failing with the machine on is down, not switched off.
   */
  hostAnswered = false;

  /** On a workstation and no longer answering at all: switched off, which is expected (not an outage), were it down. */
  get switchedOff(): boolean {
    return this.node?.power === 'workstation' && !this.hostAnswered;
  }
  /** Its last request failed because the provider account's quota is spent (until one succeeds): waiting out a cooldown will not cure it. */
  accountSpent = false;
  lastErrorAt: number | undefined;
  /** Latency of the last successful request. */
  lastLatencyMs: number | undefined;
  /** Its live traffic of the last minutes: answers' latency, streams' time to first token, errors (shared with the runtime a reload replaces). */
  recent = new RecentTraffic();
  /** When the last probe answered (or failed), and how long it took. */
  lastCheckedAt: number | undefined;
  lastProbeLatencyMs: number | undefined;
  /** What the engine says it serves (vLLM /v1/models, Ollama /api/tags), from the last probe. */
  servedModel: string | undefined;
  /** Ollama: whether the model is loaded in memory now (/api/ps); undefined for other engines. */
  modelLoaded: boolean | undefined;
  /** The engine's own version (vLLM /version, Ollama /api/version, llama.cpp's build), as it last said. */
  engineVersion: string | undefined;
  /** The longest request the engine says it takes (vLLM max_model_len, a llama.cpp slot's n_ctx; Ollama: what is loaded now). */
  servedContext: number | undefined;
  /** When the engine was last asked about itself (version, llama.cpp's slot context). */
  describedAt: number | undefined;
  /** The engine's own load, from its /metrics, /slots or /api/ps. */
  load: LoadSample | undefined;
  /** `outstanding` when `load` was read: the engine's count includes these requests of ours. */
  outstandingAtSample = 0;
  /** When a Wake-on-LAN packet was last sent to this backend's node. */
  wakeRequestedAt: number | undefined;

  #trialUntil = 0;
  /** The current failure streak includes a failed request, which a good /health does not excuse. */
  #trafficInStreak = false;
  readonly #listeners = new Set<(b: BackendRuntime) => void>();

  constructor(config: BackendConfig, node: NodeConfig | undefined, secrets: Secrets) {
    this.name = config.name;
    this.weight = config.weight;
    this.config = config;
    this.node = node;
    this.policy = config.health ?? DEFAULT_HEALTH_POLICY;
    this.engine = engineFor(config);
    const u = new URL(config.url);
    this.origin = u.origin;
    this.basePath = u.pathname.replace(/\/+$/, '');
    const key = config.apiKey === undefined ? undefined : secrets.get(config.apiKey.env);
    this.authorization = key === undefined ? undefined : `Bearer ${key}`;
    this.secret = key === undefined || key === '' ? undefined : { bytes: Buffer.from(key, 'utf8'), redact: (text) => redact(text, [key]) };
    this.unusable = config.apiKey !== undefined && key === undefined ? `its API key (${config.apiKey.env}) is not set` : undefined;
    const t = config.timeouts;
    // Idle connections kept 4 s on the fleet, under the 5 s keep-alive of uvicorn (vLLM) and
    // Node servers; 30 s to the cloud, where a new connection costs a TLS handshake.
    this.pool = poolFor(this.origin, { connections: config.maxConnections, keepAliveMs: u.protocol === 'http:' ? 4_000 : 30_000, connectMs: t.connectMs, firstByteMs: t.firstByteMs, idleMs: t.idleMs });
  }

  /**
   * The longest prompt this backend is known to take: the configured context_window, or less
   * if the engine says so. Not Ollama's: it loads the model with what each request asks for,
   * so what is loaded now says nothing of the next request.
   */
  contextWindow(): number | undefined {
    if (this.config.engine === 'ollama') return ollamaNumCtx(this.config);
    const c = this.config.contextWindow;
    const s = this.servedContext;
    if (c === undefined) return s;
    return s === undefined ? c : Math.min(c, s);
  }

  circuit(now: number): Circuit {
    if (this.coolUntil === 0) return 'closed';
    return now < this.coolUntil ? 'open' : 'half-open';
  }

  /**
   * Why this backend must be skipped now, or undefined if it may be tried. When the cooldown
   * is over this lets exactly one caller through (the half-open trial) and reserves the slot,
   * so a recovering backend is not hit by every waiting request at once. `wholeAnswer`: the
   * trial is a non-streamed generation, which may take up to the total timeout to answer.
   */
  skipReason(now: number, wholeAnswer = false): string | undefined {
    if (this.unusable !== undefined) return this.unusable;
    if (now < this.rateLimitedUntil) return `rate limited by the backend for ${Math.ceil((this.rateLimitedUntil - now) / 1000)}s more (it answered 429 with Retry-After)`;
    if (this.coolUntil === 0) return undefined;
    if (now < this.coolUntil) {
      return `cooling down for ${Math.ceil((this.coolUntil - now) / 1000)}s more after ${this.consecutiveFailures} consecutive failures (${this.lastError ?? 'unknown error'})`;
    }
    if (now < this.#trialUntil) return 'half-open: one trial request is already testing whether it is back';
    // The reservation lapses on its own if the trial never reports (the caller gave up first),
    // once it could have answered: its first byte, or a whole non-streamed generation.
    const t = this.config.timeouts;
    this.#trialUntil = now + (wholeAnswer ? t.totalMs : Math.min(t.totalMs, t.connectMs + t.firstByteMs));
    return undefined;
  }

  /** A reserved half-open trial that sent nothing (the request was not one this engine can take): free for the next request. */
  releaseTrial(): void {
    this.#trialUntil = 0;
  }

  /** Whether a request could be sent now, without reserving a half-open trial: for balancers. */
  available(now: number): boolean {
    if (this.unusable !== undefined || now < this.rateLimitedUntil) return false;
    if (this.coolUntil === 0) return true;
    return now >= this.coolUntil && now >= this.#trialUntil;
  }

  /** Seconds until a cooling (or rate-limited) backend may be tried again; undefined when it is neither (for Retry-After). */
  retryAfterSeconds(now: number): number | undefined {
    if (this.unusable !== undefined) return undefined;
    if (now < this.rateLimitedUntil) return Math.max(1, Math.ceil((Math.max(this.rateLimitedUntil, this.coolUntil) - now) / 1000));
    if (this.coolUntil === 0) return undefined;
    if (now < this.coolUntil) return Math.max(1, Math.ceil((this.coolUntil - now) / 1000));
    return 1;
  }

  /**
   * The backend answered 429 asking for a wait (Retry-After) longer than the gateway waits
   * within a request: it is skipped until then. What a backend can ask is capped at the
   * longest cooldown (max_cooldown), after which one request finds out whether it still refuses.
   * A later answer never shortens the wait.
   */
  rateLimit(waitMs: number, now: number): void {
    const until = now + Math.min(waitMs, this.policy.maxCooldownMs);
    if (until > this.rateLimitedUntil) this.rateLimitedUntil = until;
  }

  /** A request succeeded: the circuit closes and the cooldown escalation starts over. */
  recordSuccess(latencyMs: number): void {
    this.lastLatencyMs = latencyMs;
    this.accountSpent = false;
    this.trips = 0;
    this.#close();
  }

  /**
   * A health probe answered. A probe-back after the cooldown (or a forced one, while a node
   * wakes) restores the backend; a probe inside the cooldown does not cut it short, and one
   * between failed requests does not wipe their streak (a server whose /health is fine can
   * still time out every generation). Trips are kept, so such a backend cools down for
   * longer each time.
   */
  recordProbeSuccess(latencyMs: number, now: number, force = false): void {
    this.lastCheckedAt = now;
    this.lastProbeLatencyMs = latencyMs;
    if (this.coolUntil === 0) {
      if (this.consecutiveFailures === 0 || !this.#trafficInStreak) this.#close();
      return;
    }
    if (!force && now < this.coolUntil) return;
    this.#close();
  }

  /** A request (or, with probe: true, a health probe) failed. A further failure extends a cooldown, never shortens it. */
  /**
   * A failed request or probe. `answered`: whether the machine gave an HTTP answer (true: it is
   * on; false: the connection failed); undefined leaves hostAnswered as it was.
   */
  recordFailure(message: string, now: number, probe = false, answered?: boolean): void {
    if (answered !== undefined) this.hostAnswered = answered;
    if (this.consecutiveFailures === 0) this.#trafficInStreak = false;
    if (!probe) {
      this.#trafficInStreak = true;
      this.recent.failed(performance.now());
    }
    this.consecutiveFailures++;
    this.lastError = message;
    this.lastErrorAt = now;
    this.#trialUntil = 0;
    if (this.coolUntil !== 0 && now < this.coolUntil) {
      this.coolUntil = Math.max(this.coolUntil, now + this.#cooldown());
      return;
    }
    if (this.coolUntil !== 0 || this.consecutiveFailures >= this.policy.failureThreshold) {
      // Tripped from closed, or a half-open trial failed: cool down, longer each time.
      this.trips++;
      this.state = 'down';
      this.coolUntil = now + this.#cooldown();
      for (const fn of this.#listeners) fn(this);
      return;
    }
    this.state = 'failing';
  }

  /** Called each time the backend cools down (trips); returns the unsubscribe function. */
  onTrip(fn: (b: BackendRuntime) => void): () => void {
    this.#listeners.add(fn);
    return () => { this.#listeners.delete(fn); };
  }

  #cooldown(): number {
    const { cooldownMs, maxCooldownMs } = this.policy;
    return Math.min(maxCooldownMs, cooldownMs * 2 ** Math.max(0, this.trips - 1));
  }

  #close(): void {
    this.consecutiveFailures = 0;
    this.coolUntil = 0;
    this.#trialUntil = 0;
    this.state = 'up';
  }

  /**
   * Whether `other` (this backend in the config before a reload) is the same server, reached
   * the same way: same name, engine, URL and model, and the same key. A changed key is a fresh
   * start like a changed URL, as the key is often what made it fail (a 401, a spent quota, the
   * account's rate limit); a key moved to another variable with the same value is not a change.
   * Timeouts, weight, limits and the health policy may change: what is known of the server holds.
   */
  sameServerAs(other: BackendRuntime): boolean {
    const a = this.config;
    const b = other.config;
    return a.name === b.name && a.engine === b.engine && a.url === b.url && a.model === b.model && this.authorization === other.authorization;
  }

  /**
   * A reload: `prev` is this same server (sameServerAs) in the config being replaced. What is
   * known of it carries over, so a reload that leaves a backend as it was does not bring a
   * cooled-down or rate-limited one back into rotation, nor flip the fleet's alert level:
   * health and circuit (with a half-open trial's reservation), the backend's Retry-After, the
   * last error, latencies, what the engine says of itself, its load and the wake request.
   * A cooldown or Retry-After longer than the new policy gives from now is cut to it (a
   * shorter max_cooldown applies at once); the failure count stays as it is (a reload is no
   * failure: the next one decides against the new threshold).
   *
   * Requests still running on `prev` count as this one's from now on, so least-outstanding,
   * least-loaded and the overload check (against max_connections) see them: `prev`'s counter
   * becomes an alias of this one's (reload-time only; the old runtime's requests decrement this
   * count as they end, and this runtime's own hot path is untouched). Call once, just before
   * this runtime takes requests.
   */
  takeOver(prev: BackendRuntime, now: number): void {
    this.state = prev.state;
    this.consecutiveFailures = prev.consecutiveFailures;
    this.trips = prev.trips;
    // The escalated cooldown the new policy gives this many trips (a half-open circuit's end is past: kept).
    this.coolUntil = prev.coolUntil === 0 ? 0 : Math.min(prev.coolUntil, now + this.#cooldown());
    this.rateLimitedUntil = Math.min(prev.rateLimitedUntil, now + this.policy.maxCooldownMs);
    // Not the half-open trial's reservation: its result is recorded on `prev`, so here it would
    // hold traffic back until it lapsed; the next request is this runtime's trial.
    this.#trafficInStreak = prev.#trafficInStreak;
    this.lastError = prev.lastError;
    this.lastErrorAt = prev.lastErrorAt;
    this.hostAnswered = prev.hostAnswered;
    this.accountSpent = prev.accountSpent;
    this.lastLatencyMs = prev.lastLatencyMs;
    this.recent = prev.recent;
    this.lastCheckedAt = prev.lastCheckedAt;
    this.lastProbeLatencyMs = prev.lastProbeLatencyMs;
    this.servedModel = prev.servedModel;
    this.modelLoaded = prev.modelLoaded;
    this.engineVersion = prev.engineVersion;
    this.servedContext = prev.servedContext;
    this.describedAt = prev.describedAt;
    this.load = prev.load;
    this.outstandingAtSample = prev.outstandingAtSample;
    this.wakeRequestedAt = prev.wakeRequestedAt;
    this.outstanding += prev.outstanding;
    // An accessor on the retired runtime only: `prev.outstanding--` at the end of a request
    // started before the reload reads and writes this runtime's count. A later reload makes
    // this one an alias in turn, so a chain of reloads still lands on the live runtime.
    Object.defineProperty(prev, 'outstanding', {
      configurable: true, enumerable: true,
      get: () => this.outstanding,
      set: (n: number) => { this.outstanding = n; },
    });
  }

  /** Record the engine's load as just read. */
  setLoad(sample: LoadSample): void {
    this.load = sample;
    this.outstandingAtSample = this.outstanding;
  }

  /** The engine's load sample, unless it has gone stale. */
  freshLoad(now: number): LoadSample | undefined {
    const l = this.load;
    return l !== undefined && now - l.at <= LOAD_STALE_MS ? l : undefined;
  }

  /**
   * Lower is lighter, per unit of weight. Our own requests count live; the engine's sample adds
   * what we cannot see (other clients' requests, and its queue, which counts twice: a queued
   * request waits for a whole generation), and a nearly full KV cache, which means preemption.
   */
  loadScore(now: number): number {
    let score = this.outstanding;
    const l = this.freshLoad(now);
    if (l !== undefined) {
      const running = l.running ?? 0;
      const waiting = l.waiting ?? 0;
      score += Math.max(0, running + waiting - this.outstandingAtSample) + waiting;
      if (l.kvCacheUsage !== undefined && l.kvCacheUsage >= KV_OVERLOADED) score += 4;
    }
    return score / this.weight;
  }

  /** Queue building or KV cache nearly full: a conversation should not be pinned here now. */
  overloaded(now: number): boolean {
    if (this.outstanding >= this.config.maxConnections) return true;
    const l = this.freshLoad(now);
    if (l === undefined) return false;
    return (l.waiting ?? 0) > 0 || (l.kvCacheUsage ?? 0) >= KV_OVERLOADED;
  }

  async close(): Promise<void> {
    await this.pool.close().catch(() => this.pool.destroy());
  }
}

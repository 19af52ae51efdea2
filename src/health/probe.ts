// Background health probes with each engine's own signal: vLLM and SGLang /health and the
// served model in /v1/models; Ollama /api/tags with the model pulled, and /api/ps for whether
// it is loaded; llama.cpp /health (503 while it loads its model); LM Studio, generic
// OpenAI-compatible servers and OpenAI GET /models (free: a probe never bills). A probe result
// feeds the same circuit live traffic does (src/core/backend.ts).

import { errorCode, isLocalError, networkErrorText } from '../core/attempt-error.ts';
import type { BackendRuntime, HealthState } from '../core/backend.ts';
import type { Logger } from '../core/log.ts';
import type { GatewayConfig } from '../config/types.ts';
import { backendGet as get, ollamaEntry, ollamaLists, readLoad, readsLoad } from './load.ts';

/** One backend's answer to an operator's probe (POST /admin/health/probe). */
export interface ProbeNowResult { backend: string; ok: boolean; detail: string; state: string }

export interface ProbeResult {
  ok: boolean;
  latencyMs: number;
  detail: string;
  /** What the engine says it serves. */
  servedModel?: string;
  /** Ollama: the model is loaded in memory. */
  loaded?: boolean;
  /** The longest request the engine takes, as it says: vLLM's max_model_len; Ollama's loaded context. */
  servedContext?: number;
  /** The probe failed on the gateway's own machine (out of descriptors or memory): it says nothing of the backend. */
  local?: boolean;
  /** It failed, but the engine answered over HTTP (an error status, the wrong model): its machine is on. */
  answered?: boolean;
}

/** What an engine says of itself beyond health (describeEngine). */
export interface EngineFacts {
  engineVersion?: string;
  /** A llama.cpp slot's n_ctx (/props). */
  servedContext?: number;
}

/** A positive whole number of tokens, or undefined. */
function tokens(v: unknown): number | undefined {
  return typeof v === 'number' && Number.isInteger(v) && v > 0 ? v : undefined;
}

interface ModelCard { id?: unknown; root?: unknown; parent?: unknown; max_model_len?: unknown }

/** vLLM's /v1/models entry for `want`: its max_model_len, or its base model's (a LoRA adapter's card has none). */
function maxModelLen(body: unknown, want: string): number | undefined {
  const data = (body as { data?: unknown } | null)?.data;
  if (!Array.isArray(data)) return undefined;
  const cards = data as (ModelCard | null)[];
  const card = cards.find((m) => m?.id === want) ?? cards.find((m) => m?.root === want);
  const own = tokens(card?.max_model_len);
  if (own !== undefined || typeof card?.parent !== 'string') return own;
  return tokens(cards.find((m) => m?.id === card.parent)?.max_model_len);
}

/** The first Ollama that honours truncate and shift (ollama/ollama#12519, reverted, then in 0.12.6). */
const OLLAMA_TRUNCATE_SINCE = [0, 12, 6];

/** Whether dotted version `v` is older than `since`; undefined when it is not one (a dev build). */
function olderThan(v: string, since: readonly number[]): boolean | undefined {
  const m = /^v?(\d+)\.(\d+)\.(\d+)/.exec(v);
  if (m === null) return undefined;
  for (let i = 0; i < 3; i++) {
    const d = Number(m[i + 1]) - since[i]!;
    if (d !== 0) return d < 0;
  }
  return false;
}

/** How often what an engine says of itself (version, llama.cpp's slot context) is read again; and whenever it comes back. */
const DESCRIBE_EVERY_MS = 10 * 60_000;
/** Those reads are extras: they wait this long at most. */
const DESCRIBE_TIMEOUT_MS = 2_000;

/** A short string field of a JSON body, or undefined. */
function field(text: string, pick: (j: Record<string, unknown>) => unknown): string | undefined {
  const j = optionalJson(text);
  const v = typeof j === 'object' && j !== null ? pick(j as Record<string, unknown>) : undefined;
  return typeof v === 'string' && v !== '' ? v.slice(0, 64) : undefined;
}

/**
 * What the engine says of itself, beyond health: its version (vLLM /version, Ollama
 * /api/version, llama.cpp's build) and a llama.cpp slot's context (/props); nothing if the
 * engine does not say. The monitor asks in the background, once a probe's result has counted.
 */
async function describeEngine(b: BackendRuntime, timeoutMs: number): Promise<EngineFacts> {
  const path = b.config.engine === 'vllm' ? '/version' : b.config.engine === 'ollama' ? '/api/version' : b.config.engine === 'llamacpp' ? '/props' : undefined;
  if (path === undefined) return {};
  const r = await get(b, path, timeoutMs).catch(() => undefined);
  if (r?.status !== 200) return {};
  if (b.config.engine !== 'llamacpp') {
    const v = field(r.text, (j) => j.version);
    return v === undefined ? {} : { engineVersion: v };
  }
  // A slot's context: -c divided among --parallel slots unless the cache is unified.
  const props = optionalJson(r.text) as { default_generation_settings?: { n_ctx?: unknown } } | undefined;
  const served = tokens(typeof props === 'object' && props !== null ? props.default_generation_settings?.n_ctx : undefined);
  const build = field(r.text, (j) => j.build_info);
  return { ...(served === undefined ? {} : { servedContext: served }), ...(build === undefined ? {} : { engineVersion: build }) };
}

const DEFAULT_PROBE_TIMEOUT_MS = 5_000;

class ProbeFailure extends Error {}

/** The warnings about engines said so far in this process (#warnOnce). */
const SAID = new Set<string>();

function json(text: string, what: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    throw new ProbeFailure(`${what} answered with a body that is not JSON`);
  }
}

/** A body that is only informative: not JSON means nothing is known, not that the backend is down. */
function optionalJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

/** Model ids from an OpenAI-style GET /models ({data:[{id}]}), or from llama.cpp's {models:[{name}]}. */
function listedModels(body: unknown): string[] {
  const o = body as { data?: { id?: unknown; root?: unknown }[]; models?: { name?: unknown; model?: unknown }[] } | null;
  const ids: string[] = [];
  for (const m of Array.isArray(o?.data) ? o.data : []) {
    if (typeof m?.id === 'string') ids.push(m.id);
    if (typeof m?.root === 'string' && m.root !== m.id) ids.push(m.root);
  }
  for (const m of Array.isArray(o?.models) ? o.models : []) if (typeof m?.name === 'string') ids.push(m.name);
  return ids;
}

/** The engine-specific checks; throws ProbeFailure with what is wrong. */
async function check(b: BackendRuntime, timeoutMs: number): Promise<Omit<ProbeResult, 'ok' | 'latencyMs' | 'detail'>> {
  const want = b.config.model;
  const modelsPath = `${b.basePath}/models`;
  switch (b.config.engine) {
    case 'vllm':
    case 'sglang': {
      const h = await get(b, '/health', timeoutMs);
      if (h.status !== 200) throw new ProbeFailure(`/health answered HTTP ${h.status}`);
      // Up is not enough: it must serve the model the config routes to it.
      const m = await get(b, modelsPath, timeoutMs);
      if (m.status !== 200) throw new ProbeFailure(`${b.basePath}/models answered HTTP ${m.status}`);
      const listed = json(m.text, `${b.basePath}/models`);
      const ids = listedModels(listed);
      if (!ids.includes(want)) throw new ProbeFailure(`serves ${ids.length === 0 ? 'no model' : ids.join(', ')}, not ${want}`);
      const served = maxModelLen(listed, want);
      return { servedModel: want, ...(served === undefined ? {} : { servedContext: served }) };
    }
    case 'llamacpp': {
      const h = await get(b, '/health', timeoutMs);
      if (h.status === 503) throw new ProbeFailure('loading its model (/health answered 503)');
      if (h.status !== 200) throw new ProbeFailure(`/health answered HTTP ${h.status}`);
      // llama-server serves one model whatever a request names; its name is for the table only.
      const m = await get(b, modelsPath, timeoutMs).catch(() => undefined);
      const listed = m?.status === 200 ? optionalJson(m.text) : undefined;
      const ids = listed === undefined ? [] : listedModels(listed);
      return { servedModel: ids[0] };
    }
    case 'ollama': {
      const t = await get(b, '/api/tags', timeoutMs);
      if (t.status !== 200) throw new ProbeFailure(`/api/tags answered HTTP ${t.status}`);
      if (ollamaLists(json(t.text, '/api/tags'), want) !== true) throw new ProbeFailure(`model ${want} is not pulled on this Ollama (ollama pull ${want})`);
      // Loaded or not, it answers: a model not in memory only makes the first request slow.
      const ps = await get(b, '/api/ps', timeoutMs).catch(() => undefined);
      const running = ps?.status === 200 ? optionalJson(ps.text) : undefined;
      const loaded = running === undefined ? undefined : ollamaLists(running, want);
      // The context it is loaded with (recent Ollama): the gateway's num_ctx once it has asked.
      const models = (running as { models?: unknown } | undefined)?.models;
      const served = loaded === true && Array.isArray(models) ? tokens(ollamaEntry(models, want)?.context_length) : undefined;
      return { servedModel: want, ...(loaded === undefined ? {} : { loaded }), ...(served === undefined ? {} : { servedContext: served }) };
    }
    default: {
      const m = await get(b, modelsPath, timeoutMs);
      if (m.status !== 200) throw new ProbeFailure(`${b.basePath}/models answered HTTP ${m.status}`);
      const ids = listedModels(json(m.text, `${b.basePath}/models`));
      // Servers that list nothing (some proxies) are given the benefit of the doubt.
      if (ids.length > 0 && !ids.includes(want)) throw new ProbeFailure(`does not list ${want} among its ${ids.length} models`);
      return { servedModel: want };
    }
  }
}

function describeError(e: unknown, timeoutMs: number): string {
  if (e instanceof ProbeFailure) return e.message;
  // DOMExceptions (AbortSignal.timeout) carry a numeric legacy code: go by name for those.
  const code = errorCode(e) ?? (e as { name?: string }).name;
  switch (code) {
    case 'TimeoutError': case 'AbortError': case 'UND_ERR_HEADERS_TIMEOUT': case 'UND_ERR_BODY_TIMEOUT': case 'UND_ERR_CONNECT_TIMEOUT':
      return `health check timed out after ${timeoutMs} ms`;
    default: return networkErrorText(code) ?? code ?? (e as { message?: string }).message ?? 'health check failed';
  }
}

export async function probeBackend(b: BackendRuntime, timeoutMs = DEFAULT_PROBE_TIMEOUT_MS): Promise<ProbeResult> {
  const started = performance.now();
  if (b.unusable !== undefined) return { ok: false, latencyMs: 0, detail: b.unusable };
  try {
    const extra = await check(b, timeoutMs);
    return { ok: true, latencyMs: performance.now() - started, detail: 'ok', ...extra };
  } catch (e) {
    const local = isLocalError(errorCode(e));
    return {
      ok: false, latencyMs: performance.now() - started, detail: local ? `the gateway could not probe it: ${String(errorCode(e))}` : describeError(e, timeoutMs),
      ...(local ? { local } : {}), ...(e instanceof ProbeFailure ? { answered: true } : {}),
    };
  }
}

export interface MonitorSettings {
  intervalMs: number;
  probeTimeoutMs: number;
  loadIntervalMs: number;
}

export function monitorSettings(g: GatewayConfig): MonitorSettings {
  return { intervalMs: g.healthIntervalMs, probeTimeoutMs: g.health.probeTimeoutMs, loadIntervalMs: g.health.loadIntervalMs };
}

/** How long after an operator's probe a backend still failing is probed often, as a waking node is. */
const PROBE_NOW_MS = 10_000;

/** How often a node that was just sent a magic packet is probed until it answers. */
const EXPEDITE_MS = 2_000;

/**
 * Probes every backend at the interval; re-probes a failing one quickly (so N failures in a
 * row take seconds, not N intervals); probes a cooled-down one back when its cooldown ends;
 * probes a waking node's backends often until they answer; reads load between probes.
 */
export class HealthMonitor {
  readonly #backends: BackendRuntime[];
  readonly #settings: MonitorSettings;
  readonly #log: Logger;
  readonly #inFlight = new Map<BackendRuntime, Promise<ProbeResult>>();
  readonly #timers = new Map<BackendRuntime, { at: number; timer: NodeJS.Timeout }>();
  readonly #expediteUntil = new Map<BackendRuntime, number>();
  readonly #unsubscribe: (() => void)[] = [];
  #interval: NodeJS.Timeout | undefined;
  #loadTimer: NodeJS.Timeout | undefined;
  #stopped = false;

  constructor(backends: Iterable<BackendRuntime>, settings: MonitorSettings, log: Logger) {
    this.#backends = [...backends];
    this.#settings = settings;
    this.#log = log;
  }

  /** Re-probe quickly after a failure below the threshold: a tenth of the interval, 10 ms to 5 s. */
  get #recheckMs(): number {
    return Math.min(5_000, Math.max(10, Math.round(this.#settings.intervalMs / 10)));
  }

  async probeAll(): Promise<void> {
    const now = Date.now();
    // A cooling backend has its probe-back scheduled; probing it sooner would only extend the cooldown.
    await Promise.all(this.#backends.filter((b) => b.circuit(now) !== 'open' || this.#expediting(b, now)).map((b) => this.probe(b)));
  }

  /** One probe of one backend (joined if one is already running), applied to its state. */
  probe(b: BackendRuntime): Promise<ProbeResult> {
    const running = this.#inFlight.get(b);
    if (running !== undefined) return running;
    const wasUp = b.state === 'up';
    const p = probeBackend(b, this.#settings.probeTimeoutMs).then((r) => {
      this.#inFlight.delete(b);
      if (this.#stopped) return r;
      if (r.local === true) {
        // Nothing learnt of the backend: its state stays, and it is probed again soon.
        const now = Date.now();
        if (now - this.#localWarnedAt >= 60_000) {
          this.#localWarnedAt = now;
          this.#log.warn('the gateway ran out of file descriptors or memory probing its backends: raise LimitNOFILE (ulimit -n); their states stay as they were', { backend: b.name, detail: r.detail });
        }
        this.#at(b, now + this.#recheckMs);
        return r;
      }
      this.#apply(b, r);
      // What the engine says of itself: after the result counts (a backend back is up at once),
      // every DESCRIBE_EVERY_MS, and whenever it comes back.
      const due = b.describedAt === undefined || !wasUp || Date.now() - b.describedAt >= DESCRIBE_EVERY_MS;
      if (r.ok && due && !this.#describing.has(b)) {
        this.#describing.add(b);
        b.describedAt = Date.now();
        void describeEngine(b, Math.min(this.#settings.probeTimeoutMs, DESCRIBE_TIMEOUT_MS)).then((d) => {
          this.#describing.delete(b);
          if (!this.#stopped) this.#learn(b, d);
        });
      }
      return r;
    });
    this.#inFlight.set(b, p);
    return p;
  }

  /** When a probe last warned of the gateway's own exhaustion (at most once a minute). */
  #localWarnedAt = -Infinity;

  /** Backends being asked about themselves now. */
  readonly #describing = new Set<BackendRuntime>();

  /**
   * A warning about what an engine is, said once per process: a reload builds new runtimes,
   * which learn the same facts again, and the operator heard it the first time.
   */
  #warnOnce(message: string, fields: Record<string, unknown>): void {
    if (SAID.has(message)) return;
    SAID.add(message);
    this.#log.warn(message, fields);
  }

  /** Takes what an engine says of itself (a probe's served context, a description's version): warns once on news. */
  #learn(b: BackendRuntime, r: EngineFacts): void {
    if (r.servedContext !== undefined && r.servedContext !== b.servedContext) {
      b.servedContext = r.servedContext;
      const configured = b.config.contextWindow;
      // Ollama loads the model with the window each request asks for: what it has now is no limit.
      if (configured !== undefined && r.servedContext < configured && b.config.engine !== 'ollama') {
        this.#warnOnce(`backend ${b.name}: context_window is ${configured} but the engine takes at most ${r.servedContext} tokens per request (${b.config.engine === 'llamacpp' ? "a slot's n_ctx: -c divided among --parallel slots" : 'max_model_len'}): prompts in between are sent and refused; set context_window to ${r.servedContext}, or start the engine with a longer context`, { backend: b.name, context_window: configured, served: r.servedContext });
      }
    }
    if (r.engineVersion !== undefined && r.engineVersion !== b.engineVersion) {
      b.engineVersion = r.engineVersion;
      // 0.0.0: a build from source without its version, not an old release.
      if (b.config.engine === 'ollama' && r.engineVersion !== '0.0.0' && olderThan(r.engineVersion, OLLAMA_TRUNCATE_SINCE) === true) {
        this.#warnOnce(`backend ${b.name}: Ollama ${r.engineVersion} ignores truncate and shift, so a prompt past its context is cut in silence and answered as if read whole; upgrade it to 0.12.6 or later`, { backend: b.name, url: b.config.url, version: r.engineVersion });
      }
    }
  }

  #apply(b: BackendRuntime, r: ProbeResult): void {
    const now = Date.now();
    const before = b.state;
    const forced = this.#expediting(b, now);
    if (r.servedModel !== undefined) b.servedModel = r.servedModel;
    if (r.loaded !== undefined) b.modelLoaded = r.loaded;
    // Ollama's is what is loaded now: nothing loaded, nothing to show.
    if (r.ok && b.config.engine === 'ollama' && r.servedContext === undefined) b.servedContext = undefined;
    this.#learn(b, r);
    // An answer, good or bad, says the machine is on.
    b.hostAnswered = r.ok || r.answered === true;
    if (r.ok) {
      b.recordProbeSuccess(r.latencyMs, now, forced);
      if (b.state === 'up') this.#expediteUntil.delete(b);
    } else {
      b.lastCheckedAt = now;
      b.lastProbeLatencyMs = undefined;
      b.recordFailure(`health check: ${r.detail}`, now, true);
    }
    if (before !== b.state) this.#logChange(b, before, r);
    else this.#log.debug('probe', { backend: b.name, ok: r.ok, ms: Math.round(r.latencyMs * 10) / 10, detail: r.ok ? undefined : r.detail, state: b.state, model: r.servedModel, loaded: r.loaded });
    this.#scheduleFollowUp(b, now);
  }

  #logChange(b: BackendRuntime, before: HealthState, r: ProbeResult): void {
    // A workstation whose engine still answers (with an error) is on: its failure is an outage.
    const workstation = b.switchedOff;
    if (b.state === 'failing' && before !== 'up') return;
    // A workstation going quiet is most likely being switched off: not worth a warning.
    const level = b.state === 'up' || workstation ? 'info' : 'warn';
    this.#log.log(level, `backend ${b.name} is ${b.state === 'down' && workstation ? 'offline (expected: workstation off)' : b.state}`, {
      backend: b.name, node: b.node?.name, detail: r.detail, was: before,
      cooldown_s: b.coolUntil === 0 ? undefined : Math.ceil((b.coolUntil - Date.now()) / 1000),
    });
  }

  #expediting(b: BackendRuntime, now: number): boolean {
    const until = this.#expediteUntil.get(b);
    return until !== undefined && now < until;
  }

  /** The next out-of-band probe this backend needs, if any. */
  #scheduleFollowUp(b: BackendRuntime, now: number): void {
    if (this.#stopped || this.#settings.intervalMs <= 0) return;
    if (this.#expediting(b, now) && b.state !== 'up') return this.#at(b, now + Math.min(EXPEDITE_MS, this.#settings.intervalMs));
    if (b.state === 'failing') return this.#at(b, now + this.#recheckMs);
    if (b.coolUntil !== 0) return this.#at(b, Math.max(now, b.coolUntil) + 5);
  }

  /** Arm (or bring forward) this backend's one extra-probe timer. */
  #at(b: BackendRuntime, at: number): void {
    const existing = this.#timers.get(b);
    if (existing !== undefined) {
      if (existing.at <= at) return;
      clearTimeout(existing.timer);
    }
    const timer = setTimeout(() => {
      this.#timers.delete(b);
      void this.probe(b);
    }, Math.max(0, at - Date.now()));
    timer.unref();
    this.#timers.set(b, { at, timer });
  }

  /**
   * Probes now, as an operator asks after mending an engine (POST /admin/health/probe): a
   * backend that answers is back at once, its cooldown cut short, as a woken node's is.
   */
  async probeNow(backends: readonly BackendRuntime[]): Promise<ProbeNowResult[]> {
    const mine = backends.filter((b) => this.#backends.includes(b));
    this.expedite(mine, PROBE_NOW_MS);
    return Promise.all(mine.map(async (b) => {
      const r = await this.probe(b);
      return { backend: b.name, ok: r.ok, detail: r.detail, state: b.state };
    }));
  }

  /** How much longer this backend is probed often (a node waking, an operator's probe); 0 if it is not. */
  expeditedFor(b: BackendRuntime, now = Date.now()): number {
    return this.#expediting(b, now) ? this.#expediteUntil.get(b)! - now : 0;
  }

  /** Probe these backends every couple of seconds until they answer or `forMs` passes (a node is waking). */
  expedite(backends: Iterable<BackendRuntime>, forMs: number): void {
    const until = Date.now() + forMs;
    for (const b of backends) {
      if (!this.#backends.includes(b)) continue;
      this.#expediteUntil.set(b, until);
      this.#at(b, Date.now() + Math.min(EXPEDITE_MS, Math.max(10, this.#settings.intervalMs)));
    }
  }

  async pollLoad(): Promise<void> {
    await Promise.all(this.#backends.filter((b) => readsLoad(b) && b.state !== 'down' && b.unusable === undefined).map(async (b) => {
      const sample = await readLoad(b, this.#settings.probeTimeoutMs);
      if (sample !== undefined && !this.#stopped) {
        b.setLoad(sample);
        if (sample.loaded !== undefined) b.modelLoaded = sample.loaded;
      }
    }));
  }

  start(): void {
    if (this.#settings.intervalMs <= 0) return;
    this.#interval = setInterval(() => { void this.probeAll(); }, this.#settings.intervalMs);
    this.#interval.unref();
    if (this.#settings.loadIntervalMs > 0) {
      this.#loadTimer = setInterval(() => { void this.pollLoad(); }, this.#settings.loadIntervalMs);
      this.#loadTimer.unref();
    }
    // Live traffic trips backends too: probe each back in when its cooldown ends.
    for (const b of this.#backends) {
      this.#unsubscribe.push(b.onTrip((t) => this.#scheduleFollowUp(t, Date.now())));
      this.#scheduleFollowUp(b, Date.now());
    }
  }

  stop(): void {
    this.#stopped = true;
    if (this.#interval !== undefined) clearInterval(this.#interval);
    if (this.#loadTimer !== undefined) clearInterval(this.#loadTimer);
    for (const { timer } of this.#timers.values()) clearTimeout(timer);
    this.#timers.clear();
    for (const u of this.#unsubscribe.splice(0)) u();
  }
}

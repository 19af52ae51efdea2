// What the gateway exports at GET /metrics: requests, latency and time to first token, tokens,
// errors by class, retries, fallbacks, and each backend's health and load. Request-time
// recording is a handful of counter adds; backend state is read at scrape time.

import { evaluate, LEVEL_RANK, reloadRefusedText, type ConfigState } from '../health/alerts.ts';
import { BACKEND_STATUSES, fleetReport } from '../health/report.ts';
import type { Gateway, Served } from '../core/gateway.ts';
import { lastSentBackend, wasSent, type AttemptFailure } from '../core/errors.ts';
import { Registry, type Counter, type Gauge, type Histogram, type Snapshot } from './registry.ts';
import type { Accounting } from '../accounting/service.ts';
import type { TracingStats } from '../tracing/otlp.ts';
import type { ResponseCache } from '../cache/response-cache.ts';
import { CACHE_BACKEND } from '../config/types.ts';

const LATENCY_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300];
const TTFT_BUCKETS = [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60];

/** The role label for requests that never resolved to a route (bad body, unknown model). */
export const NO_ROLE = '(none)';

export class GatewayMetrics {
  readonly registry = new Registry();
  readonly requests: Counter;
  readonly duration: Histogram;
  readonly ttft: Histogram;
  readonly tokens: Counter;
  readonly errors: Counter;
  readonly attemptFailures: Counter;
  readonly retries: Counter;
  readonly fallbacks: Counter;
  readonly streamsInterrupted: Counter;
  readonly inflight: Gauge;
  /** 1 while gateway.realtime has the event loop at SCHED_FIFO (src/core/scheduling.ts). */
  readonly eventLoopRealtime: Gauge;
  /** The running config's state, read at each scrape (set by the server). */
  configState: (() => ConfigState | undefined) | undefined;
  /** Whether the gateway is draining, read at each scrape (set by the server): part of the alert level. */
  draining: (() => boolean) | undefined;
  /** The span exporter's counts (gateway.tracing), read at each scrape (set by the server). */
  tracing: { readonly stats: TracingStats } | undefined;
  readonly rateLimited: Counter;
  readonly keyBudgetRefused: Counter;
  readonly budgetFallbacks: Counter;
  readonly cost: Counter;
  #accounting: Accounting | undefined;
  readonly #backendUp: Gauge;
  readonly #backendCircuit: Gauge;
  readonly #backendOutstanding: Gauge;
  readonly #backendFailures: Gauge;
  readonly #engineRunning: Gauge;
  readonly #engineWaiting: Gauge;
  readonly #engineKv: Gauge;
  readonly #nodeOnline: Gauge;
  readonly #healthLevel: Gauge;
  readonly #backendStatus: Gauge;
  readonly #roleAvailable: Gauge;
  readonly #roleServable: Gauge;
  readonly #rss: Gauge;
  readonly #heap: Gauge;
  readonly #cpu: Counter;
  #inflightNow = 0;
  /** Counted by the HTTP server for every request (series handles: no lookup per request). */
  readonly laneFast: { v: number };
  readonly laneNode: { v: number };

  constructor(gateway: () => Gateway, startedAt: number) {
    const r = this.registry;
    this.requests = r.counter('fabric_requests_total', 'Requests answered, by operation, role, backend and HTTP status.', ['op', 'role', 'backend', 'status']);
    this.duration = r.histogram('fabric_request_duration_seconds', 'Whole request time, from the request received to the last byte sent.', ['op', 'role'], LATENCY_BUCKETS);
    this.ttft = r.histogram('fabric_time_to_first_token_seconds', 'Streams: from the request received to the first byte sent to the client.', ['role', 'backend'], TTFT_BUCKETS);
    this.tokens = r.counter('fabric_tokens_total', 'Tokens as the backends reported them, by direction (in: prompt, out: completion).', ['role', 'backend', 'direction']);
    this.errors = r.counter('fabric_errors_total', 'Requests answered with an error, by operation and error code.', ['op', 'code']);
    this.attemptFailures = r.counter('fabric_attempt_failures_total', 'Failed attempts against a backend, by failure class (connect, timeout, upstream_5xx, rate_limited, quota_exceeded, malformed, …).', ['backend', 'class']);
    this.retries = r.counter('fabric_retries_total', 'Attempts sent to the same backend again after a failure.', ['backend']);
    this.fallbacks = r.counter('fabric_fallbacks_total', 'Requests served by another role than the one asked for (fallback chain, rule, context-window fallback).', ['role', 'served_role']);
    this.streamsInterrupted = r.counter('fabric_streams_interrupted_total', 'Streams ended with an error event after their first byte.', ['role', 'backend']);
    this.inflight = r.gauge('fabric_requests_in_flight', 'Inference requests being served now.');
    this.eventLoopRealtime = r.gauge('fabric_event_loop_realtime', '1 while gateway.realtime has the event loop at real-time priority (it hands it back while saturated).');
    this.eventLoopRealtime.set([], 0);
    const lanes = r.counter('fabric_http_requests_total', 'HTTP requests by the parser that took them: the fast lane, or node:http (anything outside the lane\'s strict grammar).', ['parser']);
    this.laneFast = lanes.handle(['fast']);
    this.laneNode = lanes.handle(['node']);
    this.rateLimited = r.counter('fabric_rate_limited_total', 'Requests refused with 429 by a virtual key\'s rate limit, by key and limit (rpm, tpm, ROLE rpm, …).', ['key', 'limit']);
    this.keyBudgetRefused = r.counter('fabric_key_budget_refused_total', 'Requests refused because their key\'s budget could not cover them.', ['key']);
    this.budgetFallbacks = r.counter('fabric_budget_fallbacks_total', 'Requests whose route passed over a backend because its budget was spent (served elsewhere).', ['budget']);
    this.cost = r.counter('fabric_cost_usd_total', 'Cost of answered requests in US dollars, from the price table.', ['role', 'backend']);
    const budgetSpent = r.gauge('fabric_budget_spent_usd', 'Spend in the current period against each budget.', ['budget', 'period']);
    const budgetLimit = r.gauge('fabric_budget_limit_usd', 'Each budget\'s amount per period.', ['budget', 'period']);
    const budgetReserved = r.gauge('fabric_budget_reserved_usd', 'Held by requests in flight against each budget.', ['budget']);
    const budgetExhausted = r.gauge('fabric_budget_exhausted', '1 while a budget is spent: its backends are passed over.', ['budget']);
    const queue = r.gauge('fabric_accounting_queue_records', 'Usage records waiting to be written to the store.');
    const storeUp = r.gauge('fabric_accounting_store_up', '1 if the last write to (or ping of) the store succeeded.');
    const written = r.counter('fabric_accounting_records_written_total', 'Usage records written to the store.');
    const failures = r.counter('fabric_accounting_write_failures_total', 'Failed batch writes (each is retried; records wait in the spool).');
    const spansExported = r.counter('fabric_trace_spans_exported_total', 'Spans sent to the OTLP collector (gateway.tracing).');
    const spansDropped = r.counter('fabric_trace_spans_dropped_total', 'Spans not sent: the collector failed or was unreachable, or too many waited.');
    r.onCollect(() => {
      const t = this.tracing?.stats;
      if (t === undefined) return;
      spansExported.inc([], t.exported - spansExported.value([]));
      spansDropped.inc([], t.dropped - spansDropped.value([]));
    });
    const reloadRefused = r.gauge('fabric_config_reload_refused', '1 while the last reload was refused: the gateway serves an older config than the file on disk (which a restart would refuse).', []);
    const loadedAt = r.gauge('fabric_config_loaded_timestamp_seconds', 'When the running config was loaded (at start, or by the last reload that took).', []);
    r.onCollect(() => {
      const c = this.configState?.();
      if (c !== undefined) {
        reloadRefused.set([], c.refused === undefined ? 0 : 1);
        loadedAt.set([], c.loadedAt / 1000);
      }
    });
    r.onCollect(() => {
      const a = this.#accounting;
      if (a === undefined) return;
      budgetSpent.reset();
      budgetLimit.reset();
      budgetReserved.reset();
      budgetExhausted.reset();
      for (const b of a.budgets()) {
        budgetSpent.set([b.name, b.period], b.spent);
        budgetLimit.set([b.name, b.period], b.limit);
        budgetReserved.set([b.name], b.reserved);
        budgetExhausted.set([b.name], b.exhausted ? 1 : 0);
      }
      // Series by key name: those of keys revoked, expired or deleted go, so minting keys
      // (one per user or session through /key/generate) does not grow them for ever.
      const live = a.keys.liveNames();
      this.rateLimited.retain(([k]) => live.has(k!));
      this.keyBudgetRefused.retain(([k]) => live.has(k!));
      queue.set([], a.writer.queued);
      storeUp.set([], a.writer.storeUp ? 1 : 0);
      written.inc([], a.writer.stats.written - written.value([]));
      failures.inc([], a.writer.stats.failures - failures.value([]));
    });
    this.#backendUp = r.gauge('fabric_backend_up', '1 if the backend is in rotation (last probe or request succeeded, or not yet known), 0 if failing or cooled down.', ['backend', 'node']);
    this.#backendCircuit = r.gauge('fabric_backend_cooling_down', '1 while the backend is cooled down (circuit open or half-open).', ['backend']);
    this.#backendOutstanding = r.gauge('fabric_backend_outstanding_requests', 'Requests this gateway has in flight to the backend.', ['backend']);
    this.#backendFailures = r.gauge('fabric_backend_consecutive_failures', 'Consecutive failures (requests and probes) of the backend.', ['backend']);
    this.#engineRunning = r.gauge('fabric_backend_engine_requests_running', 'Requests the engine reports running (vLLM /metrics, llama.cpp, Ollama /api/ps).', ['backend']);
    this.#engineWaiting = r.gauge('fabric_backend_engine_requests_waiting', 'Requests the engine reports queued.', ['backend']);
    this.#engineKv = r.gauge('fabric_backend_engine_kv_cache_usage_ratio', 'KV-cache usage the engine reports (0–1).', ['backend']);
    this.#nodeOnline = r.gauge('fabric_node_backends_up', 'Backends of the node in rotation.', ['node', 'power']);
    // The fleet as GET /health judges it, for alerting rules that mean what `fabric health` means
    // (fabric render writes them: monitoring/ai-fabric-alerts.yml).
    this.#healthLevel = r.gauge('fabric_health_level', 'The runbook\'s alert level the gateway judges now, as GET /health\'s alert: 0 ok, 1 info, 2 warning, 3 critical.');
    this.#backendStatus = r.gauge('fabric_backend_status', 'The backend\'s status as GET /health gives it: 1 for its status now, 0 for the others (a workstation switched off is "offline (expected)", not "down").', ['backend', 'node', 'status']);
    this.#roleAvailable = r.gauge('fabric_role_available', '1 if one of the role\'s own backends could be tried now.', ['role']);
    this.#roleServable = r.gauge('fabric_role_servable', '1 if the role or a role of its fallback chain could serve a request now.', ['role']);
    this.#rss = r.gauge('process_resident_memory_bytes', 'Resident memory of the gateway process.');
    this.#heap = r.gauge('nodejs_heap_used_bytes', 'V8 heap in use.');
    this.#cpu = r.counter('process_cpu_seconds_total', 'User and system CPU time of the gateway process.');
    const startGauge = r.gauge('process_start_time_seconds', 'Start time of the process since the Unix epoch.');
    startGauge.set([], Math.floor(startedAt / 1000));

    r.onCollect(() => {
      const now = Date.now();
      for (const g of [this.#backendUp, this.#backendCircuit, this.#backendOutstanding, this.#backendFailures, this.#engineRunning, this.#engineWaiting, this.#engineKv, this.#nodeOnline]) g.reset();
      const perNode = new Map<string, { power: string; up: number }>();
      for (const b of gateway().backends.values()) {
        const node = b.node?.name ?? '';
        // (A cooled-down backend's state is 'down', so up and unknown need no cooldown check.)
        const up = (b.state === 'up' || b.state === 'unknown') && b.unusable === undefined ? 1 : 0;
        this.#backendUp.set([b.name, node], up);
        this.#backendCircuit.set([b.name], b.circuit(now) !== 'closed' ? 1 : 0);
        this.#backendOutstanding.set([b.name], b.outstanding);
        this.#backendFailures.set([b.name], b.consecutiveFailures);
        // A stale sample is no reading: the series is left out rather than frozen at its last value.
        const load = b.freshLoad(now);
        if (load !== undefined) {
          if (typeof load.running === 'number') this.#engineRunning.set([b.name], load.running);
          if (typeof load.waiting === 'number') this.#engineWaiting.set([b.name], load.waiting);
          if (typeof load.kvCacheUsage === 'number') this.#engineKv.set([b.name], load.kvCacheUsage);
        }
        if (b.node !== undefined) {
          const n = perNode.get(node) ?? { power: b.node.power, up: 0 };
          n.up += up;
          perNode.set(node, n);
        }
      }
      for (const [node, n] of perNode) this.#nodeOnline.set([node, n.power], n.up);
      this.#fleet(gateway(), now);
      const mem = process.memoryUsage();
      this.#rss.set([], mem.rss);
      this.#heap.set([], mem.heapUsed);
      const cpu = process.cpuUsage();
      const c = this.#cpu;
      c.inc([], (cpu.user + cpu.system) / 1e6 - c.value([]));
      this.inflight.set([], this.#inflightNow);
    });
  }

  /** The /health view of the fleet: its alert level, each backend's status, each role's availability. */
  #fleet(gw: Gateway, now: number): void {
    for (const g of [this.#healthLevel, this.#backendStatus, this.#roleAvailable, this.#roleServable]) g.reset();
    const report = fleetReport(gw, now);
    for (const b of report.backends) {
      for (const s of BACKEND_STATUSES) this.#backendStatus.set([b.name, b.node ?? '', s], b.status === s ? 1 : 0);
    }
    for (const r of report.roles) {
      this.#roleAvailable.set([r.name], r.available ? 1 : 0);
      this.#roleServable.set([r.name], r.serving === null ? 0 : 1);
    }
    const alert = evaluate({ backends: report.backends, draining: this.draining?.() === true, reloadRefused: reloadRefusedText(this.configState?.()) });
    this.#healthLevel.set([], LEVEL_RANK[alert.level]);
  }

  begin(): void {
    this.#inflightNow++;
  }

  end(): void {
    this.#inflightNow--;
  }

  /** A request answered from a backend (streams: once the stream has ended). */
  served(op: string, s: Served, seconds: number, firstByteSeconds: number | undefined): void {
    this.requests.inc([op, s.role, s.backend, '200']);
    // The role's request time is its backends': answers from the cache would hide a slow one.
    if (s.backend !== CACHE_BACKEND) this.duration.observe([op, s.role], seconds);
    if (firstByteSeconds !== undefined) this.ttft.observe([s.role, s.backend], firstByteSeconds);
    const u = s.usage;
    if (u !== undefined) {
      if (u.prompt_tokens > 0) this.tokens.inc([s.role, s.backend, 'in'], u.prompt_tokens);
      if (u.completion_tokens > 0) this.tokens.inc([s.role, s.backend, 'out'], u.completion_tokens);
    }
    if (s.streamError !== undefined) this.streamsInterrupted.inc([s.role, s.backend]);
    if (s.failures.length > 0) {
      this.#attempts(s.failures);
      if (s.retries > 0) this.#retries(s.failures, s.backend);
    }
    if (s.rerouted) this.fallbacks.inc([s.route, s.role]);
    if (s.budgets !== undefined) for (const b of s.budgets) this.budgetFallbacks.inc([b]);
  }

  /** The response cache's counters, and its memory store's size read at scrape time. */
  attachCache(c: ResponseCache): void {
    const requests = this.registry.counter('fabric_cache_requests_total', 'Requests on routes the response cache covers, by what it did: hit (answered from it), miss (sent to a backend), bypass (not looked up: a sampled request under when: deterministic, or the client\'s Cache-Control).', ['role', 'result']);
    const stored = this.registry.counter('fabric_cache_stored_total', 'Answers the response cache kept.', ['role']);
    const entries = this.registry.gauge('fabric_cache_entries', 'Answers held by the response cache\'s memory store (store: memory).');
    const bytes = this.registry.gauge('fabric_cache_bytes', 'Bytes held by the response cache\'s memory store, of its max_size.');
    const evictions = this.registry.counter('fabric_cache_evictions_total', 'Answers the memory store let go before their ttl to make room (max_size).');
    const savedTokens = this.registry.counter('fabric_cache_saved_tokens_total', 'Tokens the answers given from the response cache took to make (in: prompt, out: completion): what the backends were spared.', ['role', 'direction']);
    const savedUsd = this.registry.counter('fabric_cache_saved_usd_total', 'What the answers given from the response cache would have cost again, at their backends\' prices.', ['role']);
    c.counters = {
      result: (role, result) => requests.inc([role, result]),
      stored: (role) => stored.inc([role]),
      saved: (role, usage, usd) => {
        if (usage !== undefined && usage.prompt_tokens > 0) savedTokens.inc([role, 'in'], usage.prompt_tokens);
        if (usage !== undefined && usage.completion_tokens > 0) savedTokens.inc([role, 'out'], usage.completion_tokens);
        if (usd > 0) savedUsd.inc([role], usd);
      },
    };
    this.registry.onCollect(() => {
      const m = c.memory;
      if (m === undefined) return;
      entries.set([], m.size);
      bytes.set([], m.bytes);
      evictions.inc([], m.evictions - evictions.value([]));
    });
  }

  /** Budget, spend and usage-writer gauges read from the accounting at scrape time. */
  attachAccounting(a: Accounting): void {
    this.#accounting = a;
  }

  /**
   * A request answered with an error. `servedBy` is the backend that served it when there is one
   * (a stream its client left after the first tokens, answered 499): its attempt is not among
   * `attempts`, and may have been a retry. Otherwise the request counts under the backend it
   * last reached (a 504's, a 502's), as its usage record does; '' when it reached none.
   */
  failed(op: string, role: string, servedBy: string | undefined, status: number, code: string, seconds: number, attempts: readonly AttemptFailure[] | undefined): void {
    this.requests.inc([op, role, servedBy ?? lastSentBackend(attempts), String(status)]);
    this.errors.inc([op, code]);
    this.duration.observe([op, role], seconds);
    if (attempts !== undefined && attempts.length > 0) {
      this.#attempts(attempts);
      this.#retries(attempts, servedBy);
    }
  }

  /**
   * Retries, counted against the backend that was retried: each attempt sent to the same
   * backend as the one before it, the answering one (`servedBy`) included.
   */
  #retries(failures: readonly AttemptFailure[], servedBy: string | undefined): void {
    let prev: string | undefined;
    for (const f of failures) {
      if (!wasSent(f)) continue;
      if (f.backend === prev) this.retries.inc([f.backend]);
      prev = f.backend;
    }
    if (servedBy !== undefined && servedBy === prev) this.retries.inc([servedBy]);
  }

  /** Failed attempts, by backend and class; an attempt its client left (aborted) is no backend's failure. */
  #attempts(failures: readonly AttemptFailure[]): void {
    for (const f of failures) if (f.failure !== 'aborted' && wasSent(f)) this.attemptFailures.inc([f.backend, f.failure]);
  }

  /** The text format; in a worker of several (its index), every worker's series, each labelled with its worker. */
  render(worker?: string, others: readonly Snapshot[] = []): string {
    return this.registry.render(worker, others);
  }

  /** This worker's series, for another worker's render(). */
  snapshot(worker: string): Snapshot {
    return this.registry.snapshot(worker);
  }
}

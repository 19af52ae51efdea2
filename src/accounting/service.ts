// The gateway's state, assembled: the store, the key ring, the rate limiter, the budget
// ledger, the usage writer and the price table, with what the HTTP layer asks of them —
// who is calling, may they (role, budget, rate), and what happened. main.ts creates one per
// gateway process; a config reload swaps prices and budgets, keeping the rest.

import { join } from 'node:path';
import type { BudgetConfig, FabricConfig } from '../config/types.ts';
import type { RequestContext } from '../core/gateway.ts';
import type { Gateway } from '../core/gateway.ts';
import { FabricError } from '../core/errors.ts';
import type { Logger } from '../core/log.ts';
import { isPoolingOp, type JsonObject, type Operation } from '../engines/types.ts';
import { KeyRing } from '../keys/keyring.ts';
import { LocalBuckets, RedisBuckets, type BucketTake, type RateLimiter, type TakeResult } from '../limits/buckets.ts';
import { openRedis, type SharedRedis } from '../limits/redis-client.ts';
import { ROLLUP_CHUNK } from '../store/rows.ts';
import type { KeyRecord, RateLimit, Store, UsageRecord } from '../store/types.ts';
import { DEFAULT_COMPLETION_ESTIMATE, NO_TPM, RequestAccount, bodySize, promptEstimate, type AccountInit, type TpmHold } from './account.ts';
import { MemoryLedger, RedisLedger, type BudgetScope, type Ledger } from './ledger.ts';
import { periodAdjective, periodEnd, periodStart, usd } from './periods.ts';
import { PriceTable } from './prices.ts';
import { Redactor } from './request-log.ts';
import { UsageWriter } from './writer.ts';

/** Counters the metrics module reads (gateway-metrics.ts). */
export interface AccountingEvents {
  rateLimited(key: string, limit: string): void;
  keyBudgetRefused(key: string): void;
  cost(role: string, backend: string, usd: number): void;
}

export interface BudgetStatus {
  name: string;
  period: string;
  limit: number;
  spent: number;
  reserved: number;
  exhausted: boolean;
  backends: string[];
  fallback: string | undefined;
  resetsAt: string | undefined;
}

export interface AccountingOptions {
  store: Store;
  config: FabricConfig;
  log: Logger;
  /** The data directory: the spool lives in it. */
  dataDir: string;
  redisUrl?: string;
  /** Warn of a Redis eviction policy that may evict limits and budgets (default true; one worker of several does). */
  checkRedisPolicy?: boolean;
  events?: AccountingEvents;
}

const NOOP_EVENTS: AccountingEvents = { rateLimited() {}, keyBudgetRefused() {}, cost() {} };

/** Dollars as shown: to the billionth, without the float sums' noise (3.8400000000000005e-05). */
const nanoUsd = (n: number): number => Math.round(n * 1e9) / 1e9;

/** How long a budget sync's read of settled spend may hold usage batches back. */
const SPEND_READ_MS = 5_000;

/** `p`, or a rejection with `why` once `ms` have passed (p goes on, its outcome ignored). */
function withDeadline<T>(p: Promise<T>, ms: number, why: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => { timer = setTimeout(() => reject(new Error(why)), ms); });
  p.catch(() => {});
  return Promise.race([p, late]).finally(() => clearTimeout(timer));
}

export class Accounting {
  readonly store: Store;
  readonly keys: KeyRing;
  readonly writer: UsageWriter;
  ledger: Ledger;
  limiter: RateLimiter;
  prices: PriceTable;
  events: AccountingEvents;
  readonly #log: Logger;
  #config: FabricConfig;
  #redis: SharedRedis | undefined;
  #byBackend = new Map<string, BudgetScope[]>();
  /** `spentUnder`: the backend names its spend is summed from (its backends', and their former names). */
  #budgets = new Map<string, { scope: BudgetScope; cfg: BudgetConfig; spentUnder: string[] }>();
  readonly #keyScopes = new WeakMap<KeyRecord, BudgetScope>();
  #redactor: Redactor | undefined;
  #spendTimer: NodeJS.Timeout | undefined;
  #spendEvery = 0;
  #pruneTimer: NodeJS.Timeout | undefined;
  #folding = false;
  #closing = false;
  #syncing: Promise<void> | undefined;
  maxTokens: number;

  private constructor(o: AccountingOptions) {
    this.store = o.store;
    this.#log = o.log;
    this.#config = o.config;
    this.events = o.events ?? NOOP_EVENTS;
    const a = o.config.gateway.accounting;
    this.keys = new KeyRing(o.store, { syncIntervalMs: a.syncIntervalMs, log: o.log });
    this.writer = new UsageWriter({
      store: o.store, spoolDir: join(o.dataDir, 'spool'), batchSize: a.batchSize, flushIntervalMs: a.flushIntervalMs, maxBuffer: a.maxBuffer,
      log: o.log, pingWhenIdle: a.onStoreDown === 'refuse', onCommitted: (recs) => this.#committed(recs),
      onStoreState: (up) => { if (up) void this.syncSpend(); },
    });
    this.ledger = new MemoryLedger();
    this.limiter = new LocalBuckets();
    this.prices = new PriceTable(o.config);
    this.maxTokens = o.config.gateway.limits.maxTokens;
    this.reconfigure(o.config);
  }

  /** Opens everything: migrations, keys, the spool replay, Redis if configured, the first spend sync. */
  static async start(o: AccountingOptions): Promise<Accounting> {
    const applied = await o.store.migrate();
    if (applied.length > 0) o.log.info('store: schema migrated', { store: o.store.kind, where: o.store.where, versions: applied });
    const b = o.store.migrationBackup;
    if (b?.error !== undefined) o.log.warn(`store: could not copy the database to ${b.file} before migrating it (${b.error}); migrated without a copy to go back to`);
    else if (b !== undefined) o.log.info(`store: the database as it was before the migration is in ${b.file} (an older version of the gateway can be given it back)`);
    const a = new Accounting(o);
    if (o.redisUrl !== undefined) {
      const redis = await openRedis(o.redisUrl, { prefix: o.config.gateway.redis?.prefix ?? 'fabric', log: o.log, checkPolicy: o.checkRedisPolicy });
      a.#redis = redis;
      const fallback = (e: Error): void => o.log.debug('redis: call failed; using per-process state for it', { error: e.message });
      a.limiter = new RedisBuckets(redis, fallback);
      const holdTtlMs = Math.max(60_000, ...[...o.config.backends.values()].map((b) => b.timeouts.totalMs)) + 60_000;
      a.ledger = new RedisLedger(redis, { holdTtlMs, onFallback: fallback });
    }
    await a.keys.start();
    await a.writer.start();
    await a.syncSpend();
    a.#armSpendSync(o.config.gateway.accounting.syncIntervalMs);
    a.#pruneTimer = setInterval(() => { void a.housekeeping(); }, 3_600_000);
    a.#pruneTimer.unref();
    void a.housekeeping();
    return a;
  }

  get config(): FabricConfig {
    return this.#config;
  }

  /** The budget spend sync, every `ms`: armed at start, and again when a reload changes sync_interval. */
  #armSpendSync(ms: number): void {
    clearInterval(this.#spendTimer);
    this.#spendEvery = ms;
    this.#spendTimer = setInterval(() => { void this.syncSpend(); }, ms);
    this.#spendTimer.unref();
  }

  get sharedLimits(): boolean {
    return this.#redis !== undefined;
  }

  /** The shared Redis connection (gateway.redis), which the response cache also uses. */
  get redis(): SharedRedis | undefined {
    return this.#redis;
  }

  /** Prices and budgets from a reloaded config; the store and Redis stay as they were. */
  reconfigure(config: FabricConfig): void {
    this.#config = config;
    const a = config.gateway.accounting;
    // Timers armed at start (not yet when the constructor calls this) follow a new sync_interval.
    if (this.#spendTimer !== undefined && a.syncIntervalMs !== this.#spendEvery) {
      this.#armSpendSync(a.syncIntervalMs);
      this.keys.setSyncInterval(a.syncIntervalMs);
    }
    this.writer.retune({ batchSize: a.batchSize, flushIntervalMs: a.flushIntervalMs, maxBuffer: a.maxBuffer, pingWhenIdle: a.onStoreDown === 'refuse' });
    this.prices = new PriceTable(config);
    this.maxTokens = config.gateway.limits.maxTokens;
    this.#budgets = new Map();
    this.#byBackend = new Map();
    for (const b of config.budgets) {
      const scope: BudgetScope = { id: `budget:${b.name}`, limit: b.amount, period: b.period };
      this.#budgets.set(scope.id, { scope, cfg: b, spentUnder: spentUnder(config, b) });
      for (const be of b.backends) {
        const list = this.#byBackend.get(be) ?? [];
        list.push(scope);
        this.#byBackend.set(be, list);
      }
    }
    const rl = config.gateway.requestLog;
    this.#redactor = rl.enabled ? new Redactor(rl) : undefined;
    for (const name of this.prices.unpriced(config)) {
      if (config.budgets.some((b) => b.backends.includes(name))) {
        this.#log.warn(`budgets: cloud backend ${name} has no known price (model ${config.backends.get(name)!.model}); add it under prices: or its spend counts as $0`);
      }
    }
  }

  get logsBodies(): boolean {
    return this.#redactor !== undefined;
  }

  budgetOf(scopeId: string): BudgetConfig | undefined {
    return this.#budgets.get(scopeId)?.cfg;
  }

  upstreamModel(backend: string): string {
    return this.#config.backends.get(backend)?.model ?? '';
  }

  /** The budgets a request on this backend counts against. */
  scopesFor(backend: string, keyScope: BudgetScope | undefined): BudgetScope[] {
    const provider = this.#byBackend.get(backend);
    if (keyScope === undefined) return provider ?? [];
    return provider === undefined ? [keyScope] : [...provider, keyScope];
  }

  /** A key's budget scope, made once per key record (a key reload brings new records). */
  keyScope(k: KeyRecord): BudgetScope | undefined {
    if (k.budget === undefined) return undefined;
    let s = this.#keyScopes.get(k);
    if (s === undefined) this.#keyScopes.set(k, s = { id: `key:${k.id}`, limit: k.budget.amount, period: k.budget.period });
    return s;
  }

  refusedByKeyBudget(k: KeyRecord): void {
    this.events.keyBudgetRefused(k.name);
  }

  /** Every request's checks before routing: store policy, the key's roles, budget and rate limits. */
  admit(op: Operation, body: JsonObject, raw: string, ctx: RequestContext, key: KeyRecord | undefined, gw: Gateway): RequestAccount | Promise<RequestAccount> {
    const ts = Date.now();
    if (this.#config.gateway.accounting.onStoreDown === 'refuse' && !this.writer.storeUp) {
      throw new FabricError('store_unavailable', 'the gateway cannot record usage now (its database is unreachable) and is configured to refuse requests until it can (gateway.accounting.on_store_down: refuse)', { headers: { 'retry-after': '5' } });
    }
    const model = body.model as string;
    const route = gw.route(op, model, key?.roles === undefined ? undefined : (name) => allows(key, name, gw));
    ctx.route = route;
    const init: AccountInit = {
      ctx, key, op, model, body, stream: body.stream === true && !isPoolingOp(op), ts, keyScope: undefined, tpm: NO_TPM,
      rawRequest: this.#redactor === undefined ? undefined : raw,
    };
    if (key === undefined) return new RequestAccount(this, init);
    if (key.roles !== undefined && !allows(key, route.name, gw)) {
      throw new FabricError('model_not_allowed', `key "${key.name}" does not have access to model \`${model}\`; it may use: ${key.roles.join(', ') || 'nothing'}`, { param: 'model' });
    }
    const keyScope = this.keyScope(key);
    if (keyScope !== undefined) {
      const v = this.ledger.view(keyScope);
      if (v.spent >= keyScope.limit) {
        this.events.keyBudgetRefused(key.name);
        const end = periodEnd(keyScope.period, ts);
        throw new FabricError('insufficient_quota', `key "${key.name}" is over its ${periodAdjective(keyScope.period)} budget: ${usd(v.spent)} spent of ${usd(keyScope.limit)}` +
          (Number.isFinite(end) ? `; it resets at ${new Date(end).toISOString()}` : ''));
      }
      init.keyScope = keyScope;
    }
    const roleLimit = roleLimitOf(key, route, gw);
    if (key.rpm === undefined && key.tpm === undefined && roleLimit?.rpm === undefined && roleLimit?.tpm === undefined) return new RequestAccount(this, init);
    const takes: BucketTake[] = [];
    const tpm: TpmHold[] = [];
    // Measured only here, where a token-rate reservation needs it; the account reuses it.
    const size = key.tpm !== undefined || roleLimit?.tpm !== undefined ? bodySize(body) : undefined;
    const tokens = size === undefined ? 0 : promptEstimate(size) + (isPoolingOp(op) ? 0 : size.maxCompletion ?? DEFAULT_COMPLETION_ESTIMATE * size.choices);
    addTakes(takes, tpm, `k:${key.id}`, key, tokens);
    if (roleLimit !== undefined) addTakes(takes, tpm, `k:${key.id}:r:${route.name}`, roleLimit, tokens);
    init.size = size;
    if (tpm.length > 0) init.tpm = tpm;
    const verdict = this.limiter.take(takes);
    if (verdict instanceof Promise) return verdict.then((v) => this.#decide(v, takes, init, key, route.name));
    return this.#decide(verdict, takes, init, key, route.name);
  }

  #decide(v: TakeResult, takes: readonly BucketTake[], init: AccountInit, key: KeyRecord, routeName: string): RequestAccount {
    if (v.ok) return new RequestAccount(this, init);
    const t = takes[v.index]!;
    const kind = t.key.endsWith(':rpm') ? 'requests' : 'tokens';
    const perRole = t.key.includes(':r:');
    this.events.rateLimited(key.name, `${perRole ? routeName + ' ' : ''}${kind === 'requests' ? 'rpm' : 'tpm'}`);
    const secs = Math.max(1, Math.ceil(v.retryAfterMs / 1000));
    throw new FabricError('rate_limit_exceeded',
      `Rate limit reached for key "${key.name}"${perRole ? ` on ${routeName}` : ''} on ${kind} per minute (${kind === 'requests' ? 'RPM' : 'TPM'}): limit ${t.limit}` +
      `${kind === 'tokens' ? `, this request needs about ${t.cost}` : ''}. Please try again in ${(v.retryAfterMs / 1000).toFixed(1)}s.`,
      { headers: { 'retry-after': String(secs), [`x-ratelimit-limit-${kind}`]: String(t.limit), [`x-ratelimit-remaining-${kind}`]: '0' } });
  }

  /** An inference request refused before it had an account (bad body, unknown model, rate limited, …). */
  refused(id: string, key: KeyRecord | undefined, op: Operation, model: string | undefined, role: string, e: FabricError, latencyMs: number, ts: number): void {
    this.record({
      id, ts, keyId: key?.id, keyName: key?.name, op, model: model?.slice(0, 200) ?? '', role, backend: '', upstreamModel: '',
      status: e.status, code: e.code, promptTokens: 0, completionTokens: 0, estimated: false, latencyMs: Math.round(latencyMs * 100) / 100,
      ttftMs: undefined, attempts: 0, rerouted: false, stream: false, cost: 0,
    }, undefined, undefined);
  }

  record(rec: UsageRecord, acct: RequestAccount | undefined, response: string | undefined): void {
    if (rec.cost > 0) this.events.cost(rec.role, rec.backend, rec.cost);
    if (this.#config.gateway.accounting.enabled) this.writer.add(rec);
    const red = this.#redactor;
    if (red !== undefined && acct?.rawRequest !== undefined) {
      this.writer.addLog({ id: rec.id, ts: rec.ts, keyId: rec.keyId, status: rec.status, request: red.apply(acct.rawRequest), response: red.apply(response ?? '') });
    }
  }

  #scopeIdsOf(rec: UsageRecord): string[] {
    const ids = (this.#byBackend.get(rec.backend) ?? []).map((s) => s.id);
    if (rec.keyId !== undefined) ids.push(`key:${rec.keyId}`);
    return ids;
  }

  #periodOf = (id: string): BudgetConfig['period'] | undefined => {
    const b = this.#budgets.get(id);
    if (b !== undefined) return b.scope.period;
    if (id.startsWith('key:')) return this.keys.byId(id.slice(4))?.budget?.period;
    return undefined;
  };

  #committed(recs: readonly UsageRecord[]): void {
    for (const r of recs) if (r.cost > 0) this.ledger.committed(this.#scopeIdsOf(r), r.ts, r.cost, this.#periodOf);
  }

  /** Every budget and key budget in force now. */
  #activeScopes(): BudgetScope[] {
    const scopes = [...this.#budgets.values()].map((b) => b.scope);
    for (const k of this.keys.all()) {
      const s = k.revokedAt === undefined ? this.keyScope(k) : undefined;
      if (s !== undefined) scopes.push(s);
    }
    return scopes;
  }

  /**
   * Settled spend read from the store, and the ledger rebased on it (syncSpend, with the writer
   * quiet). A read past SPEND_READ_MS is given up (the last totals are kept), so that a store
   * that hangs does not hold usage batches back for longer.
   */
  async #rebase(scopes: BudgetScope[]): Promise<void> {
    const now = Date.now();
    const marks = this.ledger.mark();
    let bases: Map<string, number>;
    try {
      // One deadline for the whole read, however many periods it sums.
      bases = await withDeadline(this.#settled(scopes, now), SPEND_READ_MS, `reading settled spend took over ${SPEND_READ_MS / 1000} s`);
    } catch (e) {
      this.#log.debug('budgets: cannot read spend from the store; keeping the last known', { error: (e as Error).message });
      return;
    }
    // The totals are the period's that was current when the read began, though it may have ended since.
    await this.ledger.rebase(bases, marks, scopes, now);
  }

  /** Settled spend of each scope in its current period, from the store. */
  async #settled(scopes: BudgetScope[], now: number): Promise<Map<string, number>> {
    const bases = new Map<string, number>();
    for (const start of new Set(scopes.map((s) => periodStart(s.period, now)))) {
      // The rows summed once by key and by backend; each scope is then a lookup or a few.
      const byKey = new Map<string, number>();
      const byBackend = new Map<string, number>();
      for (const r of await this.store.spendSince(start)) {
        if (r.keyId !== undefined) byKey.set(r.keyId, (byKey.get(r.keyId) ?? 0) + r.cost);
        byBackend.set(r.backend, (byBackend.get(r.backend) ?? 0) + r.cost);
      }
      for (const s of scopes) {
        if (periodStart(s.period, now) !== start) continue;
        let sum = 0;
        if (s.id.startsWith('key:')) sum = byKey.get(s.id.slice(4)) ?? 0;
        else for (const b of this.#budgets.get(s.id)!.spentUnder) sum += byBackend.get(b) ?? 0;
        bases.set(s.id, sum);
      }
    }
    return bases;
  }

  /** Re-reads settled spend from the store: other instances' requests, and ours once written. */
  syncSpend(): Promise<void> {
    if (this.#syncing !== undefined) return this.#syncing;
    this.#syncing = (async () => {
      const scopes = this.#activeScopes();
      if (scopes.length === 0) return;
      // No batch of this process's is written from the mark to the rebase: one committed in
      // between would be in the totals read and also still counted here.
      await this.writer.quiet(() => this.#rebase(scopes));
    })().finally(() => { this.#syncing = undefined; });
    return this.#syncing;
  }

  budgets(): BudgetStatus[] {
    const now = Date.now();
    return [...this.#budgets.values()].map(({ scope, cfg }) => {
      const v = this.ledger.view(scope);
      const end = periodEnd(scope.period, now);
      return {
        name: cfg.name, period: cfg.period, limit: cfg.amount, spent: nanoUsd(v.spent), reserved: nanoUsd(v.reserved), exhausted: v.spent >= cfg.amount,
        backends: cfg.backends, fallback: cfg.fallback, resetsAt: Number.isFinite(end) ? new Date(end).toISOString() : undefined,
      };
    });
  }

  keySpend(k: KeyRecord): { spent: number; reserved: number; limit: number; period: string; resetsAt: string | undefined } | undefined {
    const s = this.keyScope(k);
    if (s === undefined) return undefined;
    const v = this.ledger.view(s);
    const end = periodEnd(s.period, Date.now());
    return { spent: nanoUsd(v.spent), reserved: nanoUsd(v.reserved), limit: s.limit, period: s.period, resetsAt: Number.isFinite(end) ? new Date(end).toISOString() : undefined };
  }

  /** Hourly, and once at start: request logs pruned, old usage records folded into daily totals. */
  async housekeeping(): Promise<void> {
    await this.pruneLogs();
    await this.foldUsage();
  }

  /**
   * Folds usage records older than `accounting.retention` (whole UTC days) into daily totals, a
   * transaction of at most ROLLUP_CHUNK records at a time with a turn of the event loop between.
   * Several workers or instances may run it at once: each record is folded once.
   */
  async foldUsage(now: number = Date.now()): Promise<number> {
    const keep = this.#config.gateway.accounting.retentionMs;
    if (keep === undefined || this.#folding) return 0;
    this.#folding = true;
    const before = periodStart('day', now - keep);
    let total = 0;
    try {
      for (let n = await this.store.rollupUsage(before, ROLLUP_CHUNK); n > 0 && !this.#closing; n = await this.store.rollupUsage(before, ROLLUP_CHUNK)) {
        total += n;
        await new Promise((r) => setImmediate(r));
      }
    } catch (e) {
      // Stopping: the rest is folded at the next start.
      if (!this.#closing) this.#log.warn('usage: cannot fold old records into daily totals now; will try again within the hour', { error: (e as Error).message });
    } finally {
      this.#folding = false;
    }
    if (total > 0) this.#log.info('usage: records folded into daily totals', { records: total, before: new Date(before).toISOString() });
    return total;
  }

  async pruneLogs(): Promise<void> {
    const rl = this.#config.gateway.requestLog;
    if (!rl.enabled) return;
    try {
      const n = await this.store.pruneRequestLogs(Date.now() - rl.retentionMs, rl.maxSizeBytes);
      if (n > 0) this.#log.debug('request log: pruned', { entries: n });
    } catch (e) {
      this.#log.debug('request log: cannot prune now', { error: (e as Error).message });
    }
  }

  /** SIGTERM: stop timers, write out the usage queue, close connections. */
  async close(timeoutMs = 10_000): Promise<void> {
    this.#closing = true;
    clearInterval(this.#spendTimer);
    clearInterval(this.#pruneTimer);
    this.keys.stop();
    await this.writer.close(timeoutMs);
    await this.limiter.close();
    await this.ledger.close();
    await this.#redis?.close();
    await this.store.close();
  }
}

/** The backend names a budget's spend is summed from: its backends, and the names they had before a rename (`formerly`). */
export function spentUnder(config: FabricConfig, b: BudgetConfig): string[] {
  return [...new Set(b.backends.flatMap((name) => [name, ...(config.backends.get(name)?.formerly ?? [])]))];
}

/** Whether a key may ask for the route: its names (roles or aliases) resolve to that route. */
export function allows(key: KeyRecord, routeName: string, gw: Gateway): boolean {
  if (key.roles === undefined) return true;
  for (const n of key.roles) {
    if (n === routeName) return true;
    if (gw.table.resolve(n)?.route.name === routeName) return true;
  }
  return false;
}

/** A request's takes from one limit's buckets (key-wide or per role): one request, and its estimated tokens. */
function addTakes(takes: BucketTake[], tpm: TpmHold[], scope: string, limit: RateLimit, tokens: number): void {
  if (limit.rpm !== undefined) takes.push({ key: `${scope}:rpm`, limit: limit.rpm, cost: 1 });
  if (limit.tpm !== undefined) {
    takes.push({ key: `${scope}:tpm`, limit: limit.tpm, cost: tokens });
    tpm.push({ key: `${scope}:tpm`, limit: limit.tpm, reserved: Math.min(tokens, limit.tpm) });
  }
}

/**
 * A key's limits on the role a request resolves to: set under the role's name, or, on a key made
 * before aliases were kept as their role's name, under one of the role's aliases.
 */
function roleLimitOf(key: KeyRecord, route: { name: string }, gw: Gateway): KeyRecord['roleLimits'][string] | undefined {
  const limits = key.roleLimits;
  if (Object.hasOwn(limits, route.name)) return limits[route.name];
  for (const name in limits) if (gw.table.resolve(name)?.route === route) return limits[name];
  return undefined;
}


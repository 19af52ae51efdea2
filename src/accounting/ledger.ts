// Budgets as reserve-then-settle. Before a request is sent to a priced backend, the most it
// could cost is reserved in every budget it counts against (its key's, its provider's), all
// or none, and only if each stays within its limit; after it, the hold is settled with the
// real cost. So however many requests race, a budget is overspent only by what a request's
// real cost exceeded its reservation (and the reservation is an upper bound: the prompt's
// bytes and the request's max_tokens).
//
// MemoryLedger is exact within one process. Spend settled by other instances reaches it
// through the store: every sync_interval it re-reads the settled total, so with several
// instances and no Redis, a budget can be overspent by what the others reserve between two
// syncs. RedisLedger keeps spend and holds in Redis (one Lua script per reserve or settle),
// exact across instances, and falls back to the memory ledger while Redis is away.

import type { BudgetPeriod } from '../config/types.ts';
import { periodEnd, periodStart } from './periods.ts';
import type { SharedRedis } from '../limits/redis-client.ts';
import { script } from '../limits/redis-client.ts';

export interface BudgetScope {
  /** key:<key id> or budget:<name>. */
  id: string;
  limit: number;
  period: BudgetPeriod;
}

interface Entry {
  /** Settled spend in the store at the last sync. */
  base: number;
  /** Settled here and committed to the store since the last sync's mark. */
  committed: number;
  /** Settled here, record not yet in the store. */
  pending: number;
  reserved: number;
}

export interface Hold {
  readonly id: string;
  readonly amount: number;
  readonly scopes: readonly BudgetScope[];
  /** Period start of each scope when reserved. */
  readonly starts: readonly number[];
  /** Made in Redis (settled there) or in this process. */
  readonly shared: boolean;
}

export type Reservation =
  | { ok: true; hold: Hold }
  | { ok: false; scope: BudgetScope; spent: number; reserved: number };

export interface SpendView { spent: number; reserved: number }

/** Marks taken before a store read, so what was committed during it is not lost or doubled. */
export type Marks = Map<string, number>;

export interface Ledger {
  reserve(holdId: string, scopes: readonly BudgetScope[], amount: number): Reservation | Promise<Reservation>;
  settle(hold: Hold, actual: number): void;
  view(scope: BudgetScope): SpendView;
  /** A settled request's record reached the store. */
  committed(scopeIds: readonly string[], ts: number, cost: number, periods: (id: string) => BudgetPeriod | undefined): void;
  mark(): Marks;
  /**
   * Settled totals read from the store (scope id → USD in the period current at `now`, when the
   * read began): a period that ended during the read keeps them, not the new one.
   */
  rebase(bases: Map<string, number>, marks: Marks, scopes: readonly BudgetScope[], now?: number): void | Promise<void>;
  close(): Promise<void>;
}

const EPSILON = 1e-9;

const entryKey = (id: string, start: number): string => `${id}@${start}`;

export class MemoryLedger implements Ledger {
  readonly #entries = new Map<string, Entry>();
  readonly #now: () => number;

  constructor(now: () => number = Date.now) {
    this.#now = now;
  }

  #entry(id: string, start: number): Entry {
    const k = entryKey(id, start);
    let e = this.#entries.get(k);
    if (e === undefined) {
      e = { base: 0, committed: 0, pending: 0, reserved: 0 };
      this.#entries.set(k, e);
    }
    return e;
  }

  reserve(holdId: string, scopes: readonly BudgetScope[], amount: number): Reservation {
    const now = this.#now();
    const starts = scopes.map((s) => periodStart(s.period, now));
    const entries = scopes.map((s, i) => this.#entry(s.id, starts[i]!));
    for (let i = 0; i < scopes.length; i++) {
      const e = entries[i]!;
      const spent = e.base + e.committed + e.pending;
      if (spent + e.reserved + amount > scopes[i]!.limit + EPSILON) return { ok: false, scope: scopes[i]!, spent, reserved: e.reserved };
    }
    for (const e of entries) e.reserved += amount;
    return { ok: true, hold: { id: holdId, amount, scopes, starts, shared: false } };
  }

  settle(hold: Hold, actual: number): void {
    hold.scopes.forEach((s, i) => {
      const e = this.#entry(s.id, hold.starts[i]!);
      e.reserved = Math.max(0, e.reserved - hold.amount);
      e.pending += actual;
    });
  }

  view(scope: BudgetScope): SpendView {
    const e = this.#entries.get(entryKey(scope.id, periodStart(scope.period, this.#now())));
    return e === undefined ? { spent: 0, reserved: 0 } : { spent: e.base + e.committed + e.pending, reserved: e.reserved };
  }

  committed(scopeIds: readonly string[], ts: number, cost: number, periods: (id: string) => BudgetPeriod | undefined): void {
    for (const id of scopeIds) {
      const period = periods(id);
      if (period === undefined) continue;
      const e = this.#entries.get(entryKey(id, periodStart(period, ts)));
      if (e === undefined) continue;
      const moved = Math.min(e.pending, cost);
      e.pending -= moved;
      e.committed += moved;
    }
  }

  mark(): Marks {
    const m: Marks = new Map();
    for (const [k, e] of this.#entries) m.set(k, e.committed);
    return m;
  }

  rebase(bases: Map<string, number>, marks: Marks, scopes: readonly BudgetScope[], now = this.#now()): void {
    const current = new Set<string>();
    for (const s of scopes) {
      const start = periodStart(s.period, now);
      const k = entryKey(s.id, start);
      current.add(k);
      const e = this.#entry(s.id, start);
      e.base = bases.get(s.id) ?? 0;
      // What was committed before the read is in `base` now; what came after stays counted here.
      e.committed = Math.max(0, e.committed - (marks.get(k) ?? 0));
    }
    // Past periods' entries can go once nothing is held in them. (A set, not a scan of the
    // scopes per entry: with a budget on every key that was keys² work every sync.)
    const cutoff = now - 40 * 86_400_000;
    for (const [k, e] of this.#entries) {
      if (e.reserved === 0 && e.pending === 0 && Number(k.slice(k.lastIndexOf('@') + 1)) < cutoff && !current.has(k)) this.#entries.delete(k);
    }
  }

  close(): Promise<void> {
    return Promise.resolve();
  }
}

const RESERVE = script(`
local now = tonumber(ARGV[1])
local amount = tonumber(ARGV[2])
local hold = ARGV[3]
local expiry = tonumber(ARGV[4])
local ttl = tonumber(ARGV[5])
local out = {0}
for i = 1, #KEYS do
  local k = KEYS[i]
  local limit = tonumber(ARGV[4 + 2 * i])
  if redis.call('EXISTS', k) == 0 then redis.call('HSET', k, 'spent', ARGV[5 + 2 * i], 'reserved', '0') end
  local expired = redis.call('ZRANGEBYSCORE', k .. ':h', '-inf', now)
  for _, h in ipairs(expired) do
    local a = redis.call('HGET', k .. ':a', h)
    if a then
      redis.call('HINCRBYFLOAT', k, 'reserved', -tonumber(a))
      redis.call('HDEL', k .. ':a', h)
    end
    redis.call('ZREM', k .. ':h', h)
  end
  local spent = tonumber(redis.call('HGET', k, 'spent')) or 0
  local reserved = tonumber(redis.call('HGET', k, 'reserved')) or 0
  if spent + reserved + amount > limit + 1e-9 then return {i, tostring(spent), tostring(reserved)} end
  out[2 * i] = tostring(spent)
  out[2 * i + 1] = tostring(reserved + amount)
end
for i = 1, #KEYS do
  local k = KEYS[i]
  if amount > 0 then
    redis.call('HINCRBYFLOAT', k, 'reserved', amount)
    redis.call('ZADD', k .. ':h', expiry, hold)
    redis.call('HSET', k .. ':a', hold, tostring(amount))
  end
  redis.call('EXPIRE', k, ttl)
  redis.call('EXPIRE', k .. ':h', ttl)
  redis.call('EXPIRE', k .. ':a', ttl)
end
return out
`);

/**
 * Lua: frees hold `hold` from budget key `k`, if it is there. Not onto a budget evicted or
 * flushed meanwhile: that would recreate it with no spend and no expiry.
 */
const FREE_HOLD = `local a = redis.call('HGET', k .. ':a', hold)
  if a then
    if redis.call('EXISTS', k) == 1 then redis.call('HINCRBYFLOAT', k, 'reserved', -tonumber(a)) end
    redis.call('HDEL', k .. ':a', hold)
    redis.call('ZREM', k .. ':h', hold)
  end`;

// A scope gone from Redis (flushed, restarted, expired) is not recreated from this one request's
// cost, which would reset its spend to it: it starts again from this process's known spend
// (ARGV[2 + i], this request included), as RESERVE does.
const SETTLE = script(`
local hold = ARGV[1]
local actual = tonumber(ARGV[2])
local ttl = tonumber(ARGV[3])
local out = {}
for i = 1, #KEYS do
  local k = KEYS[i]
  ${FREE_HOLD}
  if redis.call('HEXISTS', k, 'spent') == 0 then
    redis.call('HSET', k, 'spent', ARGV[3 + i], 'reserved', '0')
    redis.call('EXPIRE', k, ttl)
  elseif actual > 0 then
    redis.call('HINCRBYFLOAT', k, 'spent', actual)
  end
  out[2 * i - 1] = tostring(redis.call('HGET', k, 'spent') or '0')
  out[2 * i] = tostring(redis.call('HGET', k, 'reserved') or '0')
end
return out
`);

/** A hold given up on (its RESERVE timed out here, and may yet run there): released if it was made. */
const RELEASE = script(`
local hold = ARGV[1]
for i = 1, #KEYS do
  local k = KEYS[i]
  ${FREE_HOLD}
end
return 0
`);

/** Spend in Redis is never below what the store has settled (after a Redis restart or an outage). */
const FLOOR = script(`
local ttl = tonumber(ARGV[1])
local out = {}
for i = 1, #KEYS do
  local k = KEYS[i]
  local base = tonumber(ARGV[1 + i])
  local spent = tonumber(redis.call('HGET', k, 'spent'))
  if spent == nil or spent < base then redis.call('HSET', k, 'spent', tostring(base)) end
  if redis.call('HEXISTS', k, 'reserved') == 0 then redis.call('HSET', k, 'reserved', '0') end
  redis.call('EXPIRE', k, ttl)
  out[2 * i - 1] = tostring(redis.call('HGET', k, 'spent'))
  out[2 * i] = tostring(redis.call('HGET', k, 'reserved'))
end
return out
`);

export class RedisLedger implements Ledger {
  readonly #redis: SharedRedis;
  readonly #local: MemoryLedger;
  readonly #now: () => number;
  readonly #holdTtlMs: number;
  readonly #onFallback: (e: Error) => void;
  /** The last spend Redis reported per scope and period: what admission checks read. */
  readonly #mirror = new Map<string, SpendView>();

  constructor(redis: SharedRedis, opts: { holdTtlMs: number; onFallback?: (e: Error) => void; now?: () => number }) {
    this.#redis = redis;
    this.#now = opts.now ?? Date.now;
    this.#local = new MemoryLedger(this.#now);
    this.#holdTtlMs = opts.holdTtlMs;
    this.#onFallback = opts.onFallback ?? (() => {});
  }

  #k(id: string, start: number): string {
    return `${this.#redis.prefix}:budget:${id}:${start}`;
  }

  #ttl(period: BudgetPeriod, now: number): number {
    const end = periodEnd(period, now);
    return Math.ceil(((Number.isFinite(end) ? end - now : 400 * 86_400_000) + 86_400_000) / 1000);
  }

  reserve(holdId: string, scopes: readonly BudgetScope[], amount: number): Reservation | Promise<Reservation> {
    if (!this.#redis.ready || scopes.length === 0) return this.#local.reserve(holdId, scopes, amount);
    const now = this.#now();
    const starts = scopes.map((s) => periodStart(s.period, now));
    const keys = scopes.map((s, i) => this.#k(s.id, starts[i]!));
    const ttl = Math.max(...scopes.map((s) => this.#ttl(s.period, now)));
    const args: (string | number)[] = [now, amount, holdId, now + this.#holdTtlMs, ttl];
    for (const s of scopes) args.push(s.limit, this.#local.view(s).spent);
    return this.#redis.run(RESERVE, keys, args).then(
      (r) => {
        const a = r as (number | string)[];
        if (Number(a[0]) !== 0) {
          const i = Number(a[0]) - 1;
          const view = { spent: Number(a[1]), reserved: Number(a[2]) };
          this.#mirror.set(keys[i]!, view);
          return { ok: false as const, scope: scopes[i]!, ...view };
        }
        keys.forEach((k, i) => this.#mirror.set(k, { spent: Number(a[2 * i + 1]), reserved: Number(a[2 * i + 2]) }));
        return { ok: true as const, hold: { id: holdId, amount, scopes, starts, shared: true } };
      },
      (e: Error) => {
        this.#onFallback(e);
        // A RESERVE that timed out here may still run there, holding budget no one would settle
        // for as long as a hold lives: released right behind it (Redis runs one connection's
        // commands in order), a no-op if it never ran.
        if (amount > 0) this.#redis.run(RELEASE, keys, [holdId]).catch(() => {});
        return this.#local.reserve(holdId, scopes, amount);
      },
    );
  }

  settle(hold: Hold, actual: number): void {
    if (!hold.shared) {
      this.#local.settle(hold, actual);
      return;
    }
    // The local ledger learns the spend too: it is the fallback, and its pending/committed
    // bookkeeping keeps the store sync from counting it twice.
    this.#local.settle({ ...hold, amount: 0, shared: false }, actual);
    const keys = hold.scopes.map((s, i) => this.#k(s.id, hold.starts[i]!));
    const now = this.#now();
    const ttl = Math.max(...hold.scopes.map((s) => this.#ttl(s.period, now)));
    // This process's spend in the hold's period (the request included), should Redis have lost it.
    const known = hold.scopes.map((s, i) => (periodStart(s.period, now) === hold.starts[i] ? Math.max(actual, this.#local.view(s).spent) : actual));
    this.#redis.run(SETTLE, keys, [hold.id, actual, ttl, ...known]).then(
      (r) => {
        const a = r as string[];
        keys.forEach((k, i) => this.#mirror.set(k, { spent: Number(a[2 * i]), reserved: Number(a[2 * i + 1]) }));
      },
      (e: Error) => {
        // The hold expires in Redis; the spend reaches it at the next sync's floor from the store.
        this.#onFallback(e);
      },
    );
  }

  view(scope: BudgetScope): SpendView {
    const local = this.#local.view(scope);
    if (!this.#redis.ready) return local;
    const m = this.#mirror.get(this.#k(scope.id, periodStart(scope.period, this.#now())));
    return m === undefined ? local : { spent: Math.max(m.spent, local.spent), reserved: m.reserved };
  }

  committed(scopeIds: readonly string[], ts: number, cost: number, periods: (id: string) => BudgetPeriod | undefined): void {
    this.#local.committed(scopeIds, ts, cost, periods);
  }

  mark(): Marks {
    return this.#local.mark();
  }

  async rebase(bases: Map<string, number>, marks: Marks, scopes: readonly BudgetScope[], now = this.#now()): Promise<void> {
    this.#local.rebase(bases, marks, scopes, now);
    if (!this.#redis.ready || scopes.length === 0) return;
    const keys = scopes.map((s) => this.#k(s.id, periodStart(s.period, now)));
    const ttl = Math.max(...scopes.map((s) => this.#ttl(s.period, now)));
    try {
      const a = (await this.#redis.run(FLOOR, keys, [ttl, ...scopes.map((s) => this.#local.view(s).spent)])) as string[];
      keys.forEach((k, i) => this.#mirror.set(k, { spent: Number(a[2 * i]), reserved: Number(a[2 * i + 1]) }));
    } catch (e) {
      this.#onFallback(e as Error);
    }
  }

  close(): Promise<void> {
    return this.#local.close();
  }
}

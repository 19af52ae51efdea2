// Strategies for sharing a role's load among its backends. Each returns the order in which
// to try them: the first is the pick, the rest are where a failed attempt goes next.

import type { Strategy } from '../config/types.ts';

export interface Member {
  readonly name: string;
  readonly weight: number;
  /** Requests sent and not yet finished. */
  readonly outstanding: number;
  /** Relative load, lower is lighter (least-loaded); members without it are ranked by outstanding / weight. */
  loadScore?(now: number): number;
  /** Too busy to pin a conversation to (affinity). */
  overloaded?(now: number): boolean;
  /** Could be tried now (not cooling down); asking must not change anything. */
  available?(now: number): boolean;
}

export interface Balancer<M extends Member> {
  /**
   * The order to try the members in. With affinity on, `affinityKey` (a hash of the
   * conversation's opening messages) puts the member that served that conversation first.
   * `now` spares load-aware strategies a clock read when the caller has one.
   */
  order(affinityKey?: string, now?: number): readonly M[];
  /** True when order() uses an affinity key: callers compute one only then. */
  readonly wantsAffinityKey?: boolean;
  /**
   * A reload: takes over what `prev` (the same role's balancer in the config replaced) remembers
   * of its conversations, each on the member `same` gives for its old one (none: forgotten).
   */
  adopt?(prev: Balancer<M>, same: (old: M) => M | undefined): void;
}

class Single<M extends Member> implements Balancer<M> {
  readonly #only: readonly M[];
  constructor(m: M) { this.#only = [m]; }
  order(): readonly M[] { return this.#only; }
}

function rotate<M>(members: readonly M[], start: number): M[] {
  const n = members.length;
  const out = new Array<M>(n);
  for (let i = 0; i < n; i++) out[i] = members[(start + i) % n]!;
  return out;
}

/** Every rotation of the members, built once: the orders a rotating strategy hands out (callers only read them). */
const rotations = <M>(members: readonly M[]): readonly (readonly M[])[] => members.map((_, i) => rotate(members, i));

class RoundRobin<M extends Member> implements Balancer<M> {
  readonly #rotations: readonly (readonly M[])[];
  #next = 0;
  constructor(members: readonly M[]) { this.#rotations = rotations(members); }
  order(): readonly M[] {
    const start = this.#next;
    this.#next = (start + 1) % this.#rotations.length;
    return this.#rotations[start]!;
  }
}

/** Smooth weighted round robin (as nginx does): spreads picks evenly in proportion to weight. */
class Weighted<M extends Member> implements Balancer<M> {
  readonly #members: readonly M[];
  readonly #rotations: readonly (readonly M[])[];
  readonly #current: number[];
  readonly #total: number;
  constructor(members: readonly M[]) {
    this.#members = members;
    this.#rotations = rotations(members);
    this.#current = members.map(() => 0);
    this.#total = members.reduce((s, m) => s + m.weight, 0);
  }
  order(): readonly M[] {
    let best = 0;
    for (let i = 0; i < this.#members.length; i++) {
      this.#current[i]! += this.#members[i]!.weight;
      if (this.#current[i]! > this.#current[best]!) best = i;
    }
    this.#current[best]! -= this.#total;
    return this.#rotations[best]!;
  }
}

/**
 * Lightest first by a measure of load; ties broken by rotation so equal backends share.
 * least-outstanding measures requests in flight; least-loaded the engines' own load (queue,
 * running requests, KV cache) together with the gateway's requests in flight.
 */
class Lightest<M extends Member> implements Balancer<M> {
  readonly #members: readonly M[];
  readonly #load: (m: M, now: number) => number;
  /** Scratch for the loads of one order() call, so each member is measured once. */
  readonly #keys: Float64Array;
  #tie = 0;
  constructor(members: readonly M[], load: (m: M, now: number) => number) {
    this.#members = members;
    this.#load = load;
    this.#keys = new Float64Array(members.length);
  }
  order(_affinityKey?: string, now = Date.now()): readonly M[] {
    const start = this.#tie;
    this.#tie = (start + 1) % this.#members.length;
    const out = rotate(this.#members, start);
    const keys = this.#keys;
    for (let i = 0; i < out.length; i++) keys[i] = this.#load(out[i]!, now);
    // Insertion sort: stable (keeps the rotation among equals), in place, and a role has few backends.
    for (let i = 1; i < out.length; i++) {
      const m = out[i]!;
      const k = keys[i]!;
      let j = i - 1;
      for (; j >= 0 && keys[j]! > k; j--) {
        out[j + 1] = out[j]!;
        keys[j + 1] = keys[j]!;
      }
      out[j + 1] = m;
      keys[j + 1] = k;
    }
    return out;
  }
}

const outstanding = (m: Member): number => m.outstanding;
const score = (m: Member, now: number): number => (m.loadScore === undefined ? m.outstanding / m.weight : m.loadScore(now));
const usable = (m: Member, now: number): boolean => m.available === undefined || m.available(now);
const busy = (m: Member, now: number): boolean => m.overloaded !== undefined && m.overloaded(now);

export interface AffinityOptions {
  /** Conversations remembered (least recently used forgotten first). */
  maxEntries?: number;
  /** A conversation idle this long starts afresh (its prefix has left the cache anyway). */
  ttlMs?: number;
}

/**
 * Keeps a conversation on the backend that served it, for prefix-cache hits, while that
 * backend is available and not overloaded; otherwise the inner strategy picks, and the
 * conversation moves there (its cache is warm there from now on).
 */
class Affinity<M extends Member> implements Balancer<M> {
  readonly wantsAffinityKey = true;
  readonly #inner: Balancer<M>;
  readonly #sticky = new Map<string, { m: M; at: number }>();
  readonly #max: number;
  readonly #ttl: number;
  readonly #members: ReadonlySet<M>;
  constructor(inner: Balancer<M>, members: readonly M[], opts: AffinityOptions) {
    this.#inner = inner;
    this.#members = new Set(members);
    this.#max = opts.maxEntries ?? 10_000;
    this.#ttl = opts.ttlMs ?? 30 * 60_000;
  }
  adopt(prev: Balancer<M>, same: (old: M) => M | undefined): void {
    if (!(prev instanceof Affinity)) return;
    for (const [key, { m, at }] of prev.#sticky) {
      const now = same(m);
      if (now !== undefined && this.#members.has(now)) this.#sticky.set(key, { m: now, at });
    }
    while (this.#sticky.size > this.#max) this.#sticky.delete(this.#sticky.keys().next().value!);
  }

  order(affinityKey?: string, now = Date.now()): readonly M[] {
    const base = this.#inner.order(undefined, now);
    if (affinityKey === undefined) return base;
    const prev = this.#sticky.get(affinityKey);
    let pick: M | undefined;
    if (prev !== undefined && now - prev.at < this.#ttl && usable(prev.m, now) && !busy(prev.m, now)) pick = prev.m;
    pick ??= base.find((m) => usable(m, now) && !busy(m, now)) ?? base.find((m) => usable(m, now)) ?? base[0]!;
    // Map order is insertion order: delete and re-insert keeps the oldest entry first, for eviction.
    this.#sticky.delete(affinityKey);
    this.#sticky.set(affinityKey, { m: pick, at: now });
    if (this.#sticky.size > this.#max) this.#sticky.delete(this.#sticky.keys().next().value!);
    if (pick === base[0]) return base;
    const out = [pick];
    for (const m of base) if (m !== pick) out.push(m);
    return out;
  }
}

export function createBalancer<M extends Member>(strategy: Strategy, members: readonly M[], opts: { affinity?: boolean } & AffinityOptions = {}): Balancer<M> {
  if (members.length === 0) throw new Error('a balancer needs at least one member');
  if (members.length === 1) return new Single(members[0]!);
  const inner = strategy === 'weighted' ? new Weighted(members)
    : strategy === 'least-outstanding' ? new Lightest(members, outstanding)
      : strategy === 'least-loaded' ? new Lightest(members, score)
        : new RoundRobin(members);
  return opts.affinity === true ? new Affinity(inner, members, opts) : inner;
}

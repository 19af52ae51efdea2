// Strategies for sharing a role's load among its backends. Each returns the order in which
// to try them: the first is the pick, the rest are where a failed attempt goes next.

import type { Strategy } from '../config/types.ts';

export interface Member {
  readonly name: string;
  readonly weight: number;
  /** Requests sent and not yet finished. */
  readonly outstanding: number;
}

export interface Balancer<M extends Member> {
  order(): readonly M[];
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

class RoundRobin<M extends Member> implements Balancer<M> {
  readonly #members: readonly M[];
  #next = 0;
  constructor(members: readonly M[]) { this.#members = members; }
  order(): readonly M[] {
    const start = this.#next;
    this.#next = (start + 1) % this.#members.length;
    return rotate(this.#members, start);
  }
}

/** Smooth weighted round robin (as nginx does): spreads picks evenly in proportion to weight. */
class Weighted<M extends Member> implements Balancer<M> {
  readonly #members: readonly M[];
  readonly #current: number[];
  readonly #total: number;
  constructor(members: readonly M[]) {
    this.#members = members;
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
    return rotate(this.#members, best);
  }
}

/** Fewest requests in flight first; ties broken by rotation so equal backends share. */
class LeastOutstanding<M extends Member> implements Balancer<M> {
  readonly #members: readonly M[];
  #tie = 0;
  constructor(members: readonly M[]) { this.#members = members; }
  order(): readonly M[] {
    const start = this.#tie;
    this.#tie = (start + 1) % this.#members.length;
    const out = rotate(this.#members, start);
    // Stable sort keeps the rotation among equals.
    return out.sort((a, b) => a.outstanding - b.outstanding);
  }
}

export function createBalancer<M extends Member>(strategy: Strategy, members: readonly M[]): Balancer<M> {
  if (members.length === 0) throw new Error('a balancer needs at least one member');
  if (members.length === 1) return new Single(members[0]!);
  if (strategy === 'weighted') return new Weighted(members);
  if (strategy === 'least-outstanding') return new LeastOutstanding(members);
  return new RoundRobin(members);
}

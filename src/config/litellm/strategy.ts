// routing_strategy → a role's balancing strategy and its members' weights. LiteLLM's
// strategy is router-wide; the fabric's is per role, so each role gets the equivalent.

import type { KeyPath } from '../issues.ts';
import type { Strategy } from '../types.ts';
import { describe, type Translation } from './context.ts';
import type { Deployment } from './deployments.ts';

export function strategyFor(t: Translation, v: { v: unknown; path: KeyPath } | undefined): { name: string; path: KeyPath | undefined } {
  if (v === undefined) return { name: 'simple-shuffle', path: undefined };
  if (typeof v.v !== 'string') {
    t.r.error(v.path, `must be a routing strategy name, got ${describe(v.v)}`);
    return { name: 'simple-shuffle', path: v.path };
  }
  const messages: Record<string, string> = {
    'simple-shuffle': '',
    'least-busy': '',
    'latency-based-routing': 'not supported yet: least-loaded is used (the engines\' own queues and requests in flight; a slow backend holds more, so it gets fewer)',
    'usage-based-routing': 'not supported yet: load is shared by weight (tpm, else rpm) without tracking usage',
    'usage-based-routing-v2': 'not supported yet: load is shared by weight (tpm, else rpm) without tracking usage',
    'cost-based-routing': 'not supported yet: round-robin is used',
  };
  const m = messages[v.v];
  if (m === undefined) t.r.warn(v.path, `unknown routing strategy ${JSON.stringify(v.v)}: round-robin is used`);
  else if (m !== '') t.r.warn(v.path, m);
  return { name: v.v, path: v.path };
}

/** A role's strategy and its members' weights, as LiteLLM's strategy would share load among them. */
export function balance(strategy: string, members: Deployment[]): { strategy: Strategy; weights: (number | undefined)[]; source: string | undefined } {
  if (strategy === 'least-busy') return { strategy: 'least-outstanding', weights: members.map(() => undefined), source: undefined };
  if (strategy === 'latency-based-routing') return { strategy: 'least-loaded', weights: members.map(() => undefined), source: undefined };
  const order = strategy.startsWith('usage-based') ? ['weight', 'tpm', 'rpm'] as const : ['weight', 'rpm', 'tpm'] as const;
  for (const k of order) {
    // simple-shuffle weighs by weight if any deployment has one, else by rpm or tpm when every deployment has it.
    const vals = members.map((m) => m[k]);
    const usable = k === 'weight' ? vals.some((x) => x !== undefined) : vals.every((x) => x !== undefined);
    if (!usable || strategy === 'cost-based-routing') continue;
    const raw = vals.map((x) => x ?? 1);
    if (raw.every((x) => x === raw[0])) break;
    const max = Math.max(...raw);
    const integral = raw.every((x) => Number.isInteger(x)) && max <= 1000;
    return { strategy: 'weighted', weights: raw.map((x) => (integral ? x : Math.max(1, Math.round((x / max) * 1000)))), source: k };
  }
  return { strategy: 'round-robin', weights: members.map(() => undefined), source: undefined };
}

export function strategyNote(litellm: string, ours: Strategy): string {
  if (litellm === 'simple-shuffle') return ours === 'weighted' ? 'simple-shuffle with weights: weighted picks in proportion, deterministically' : 'simple-shuffle picks at random; round-robin spreads load the same way, deterministically';
  if (litellm === 'least-busy') return 'least-busy: fewest requests in flight';
  return `routing_strategy ${litellm}: ${ours}`;
}

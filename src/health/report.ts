// The fleet as GET /health reports it: every backend (status, latency, served model, load,
// last error, its node's power state), every node, every role (and what would serve it now).
// `fabric health`, `fabric smoke` and the alert monitor all read this one shape.

import type { BackendRuntime } from '../core/backend.ts';
import { roleByName, type BackendConfig, type FabricConfig, type NodePower, type RoleKind } from '../config/types.ts';
import { nodeState, type NodeState } from './power.ts';
import { isCloud } from '../config/cloud.ts';
import { slowReason, type RecentFigures } from './recent.ts';

export const BACKEND_STATUSES = ['up', 'failing', 'down', 'unknown', 'offline (expected)', 'waking', 'unconfigured'] as const;
export type BackendStatus = typeof BACKEND_STATUSES[number];

export interface BackendReport {
  name: string;
  engine: string;
  model: string;
  url: string;
  node: string | null;
  power: NodePower | null;
  node_state: NodeState | null;
  status: BackendStatus;
  circuit: 'closed' | 'open' | 'half-open';
  cooling_down: boolean;
  cooldown_remaining_s: number | null;
  /** Seconds it is still skipped for because it answered 429 with a long Retry-After (capped at max_cooldown). */
  rate_limited_remaining_s: number | null;
  consecutive_failures: number;
  /** Kinds of the roles it serves: an embeddings backend on an always-on node is watched closely. */
  kinds: RoleKind[];
  /** Physical aliases: names that reach this backend alone. */
  aliases: string[];
  /** A paid cloud API: never billed by probes or smoke checks unless asked. */
  cloud: boolean;
  served_model: string | null;
  model_loaded: boolean | null;
  /** What the engine says of itself: its version, and the longest request it takes (tokens). */
  engine_version: string | null;
  served_context: number | null;
  /** Latency of the last health probe. */
  latency_ms: number | null;
  /** Latency of the last successful request. */
  last_latency_ms: number | null;
  /** Its live traffic over the last minutes: requests, errors, p50/p95 latency of whole answers and of streams' time to first token. */
  recent: RecentFigures;
  /** Why it counts as slow (its p95 above the health policy's `slow`), or null. */
  slow: string | null;
  last_checked_at: string | null;
  last_error: string | null;
  last_error_at: string | null;
  outstanding: number;
  load: {
    running: number | null;
    waiting: number | null;
    kv_cache_usage: number | null;
    slots: number | null;
    score: number;
    overloaded: boolean;
    source: string | null;
    age_s: number | null;
  };
  simulated: boolean;
}

export interface NodeReport {
  name: string;
  power: NodePower;
  state: NodeState;
  wol: boolean;
  backends: string[];
  wake_requested_at: string | null;
}

export interface RoleReport {
  name: string;
  kind: RoleKind;
  backends: string[];
  aliases: string[];
  fallbacks: string[];
  dimensions: number | null;
  /** One of its own backends could be tried now. */
  available: boolean;
  /** The step of its chain (itself or a fallback role) that would serve a request now, or null. */
  serving: string | null;
  /** Every backend of the role is a cloud API. */
  cloud: boolean;
}

export interface FleetView {
  readonly config: FabricConfig;
  readonly backends: Map<string, BackendRuntime>;
}

const iso = (t: number | undefined): string | null => (t === undefined ? null : new Date(t).toISOString());
const round1 = (v: number | undefined): number | null => (v === undefined ? null : Math.round(v * 10) / 10);

function backendStatus(b: BackendRuntime, node: NodeState | null): BackendStatus {
  if (b.unusable !== undefined) return 'unconfigured';
  if (b.state === 'up') return 'up';
  if (node === 'waking') return 'waking';
  if (b.state === 'down') return b.switchedOff ? 'offline (expected)' : 'down';
  return b.state;
}

export function fleetReport(gw: FleetView, now = Date.now()): { backends: BackendReport[]; nodes: NodeReport[]; roles: RoleReport[] } {
  const cfg = gw.config;
  const boot = cfg.gateway.wake.bootTimeoutMs;
  const all = [...gw.backends.values()];
  const nodes: NodeReport[] = [...cfg.nodes.values()].map((n) => {
    const on = all.filter((b) => b.node?.name === n.name);
    const woken = Math.max(0, ...on.map((b) => b.wakeRequestedAt ?? 0));
    return {
      name: n.name, power: n.power, state: nodeState(on, now, boot), wol: n.wol !== undefined,
      backends: on.map((b) => b.name), wake_requested_at: woken === 0 ? null : iso(woken),
    };
  });
  const nodeStates = new Map(nodes.map((n) => [n.name, n.state]));
  const kindsOf = (name: string): RoleKind[] => {
    const kinds = new Set<RoleKind>();
    for (const r of cfg.roles.values()) if (r.backends.includes(name)) kinds.add(r.kind);
    for (const p of cfg.patterns) if (p.backends.includes(name)) kinds.add(p.kind);
    return [...kinds];
  };
  const backends: BackendReport[] = all.map((b) => {
    const ns = b.node === undefined ? null : nodeStates.get(b.node.name) ?? null;
    // A sample from before the backend went down, or gone stale, says nothing about now.
    const l = b.state === 'down' ? undefined : b.freshLoad(now);
    const circuit = b.circuit(now);
    const recent = b.recent.figures(performance.now());
    return {
      name: b.name,
      engine: b.config.engine,
      model: b.config.model,
      url: b.config.url,
      node: b.node?.name ?? null,
      power: b.node?.power ?? null,
      node_state: ns,
      status: backendStatus(b, ns),
      circuit,
      cooling_down: circuit === 'open',
      cooldown_remaining_s: circuit === 'open' ? Math.ceil((b.coolUntil - now) / 1000) : null,
      rate_limited_remaining_s: now < b.rateLimitedUntil ? Math.ceil((b.rateLimitedUntil - now) / 1000) : null,
      consecutive_failures: b.consecutiveFailures,
      kinds: kindsOf(b.name),
      aliases: b.config.aliases,
      cloud: isCloud(b.config),
      served_model: b.servedModel ?? null,
      model_loaded: b.modelLoaded ?? null,
      engine_version: b.engineVersion ?? null,
      served_context: b.servedContext ?? null,
      latency_ms: b.state === 'down' ? null : round1(b.lastProbeLatencyMs),
      last_latency_ms: round1(b.lastLatencyMs),
      recent,
      slow: b.state === 'down' ? null : slowReason(recent, b.policy.slowMs),
      last_checked_at: iso(b.lastCheckedAt),
      last_error: b.lastError ?? null,
      last_error_at: iso(b.lastErrorAt),
      outstanding: b.outstanding,
      load: {
        running: l?.running ?? null,
        waiting: l?.waiting ?? null,
        kv_cache_usage: l?.kvCacheUsage === undefined ? null : Math.round(l.kvCacheUsage * 1000) / 1000,
        slots: l?.slots ?? null,
        score: Math.round(b.loadScore(now) * 100) / 100,
        overloaded: b.overloaded(now),
        source: l?.source ?? null,
        age_s: l === undefined ? null : Math.round((now - l.at) / 100) / 10,
      },
      simulated: b.config.simulated,
    };
  });
  const usable = (roleName: string): boolean => {
    const r = roleByName(cfg.roles, roleName);
    return r !== undefined && r.backends.some((n) => gw.backends.get(n)?.available(now) === true);
  };
  const roles: RoleReport[] = [...cfg.roles.values()].map((r) => {
    const chain = [r.name, ...r.fallbacks.map((f) => roleByName(cfg.roles, f)?.name ?? f)];
    return {
      name: r.name,
      kind: r.kind,
      backends: r.backends,
      aliases: r.aliases,
      fallbacks: chain.slice(1),
      dimensions: r.dimensions ?? null,
      available: usable(r.name),
      serving: chain.find(usable) ?? null,
      cloud: r.backends.length > 0 && r.backends.every((n) => { const b = cfg.backends.get(n); return b !== undefined && isCloud(b); }),
    };
  });
  return { backends, nodes, roles };
}

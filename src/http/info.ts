// Bodies of the informational endpoints: /v1/models (roles, aliases, physical models) and
// /health (every backend's state). Both say when the fleet is simulated.

import type { Gateway } from '../core/gateway.ts';
import type { ListedModel } from '../routing/table.ts';

function modelObject(m: ListedModel, created: number, simulated: boolean): Record<string, unknown> {
  return {
    id: m.id,
    object: 'model',
    created,
    owned_by: simulated ? 'ai-fabric (simulated)' : 'ai-fabric',
    fabric: { type: m.via, kind: m.kind, target: m.target, backends: m.backends, simulated },
  };
}

const cache = new WeakMap<Gateway, { list: string; byId: Map<string, string> }>();

function built(gw: Gateway): { list: string; byId: Map<string, string> } {
  let c = cache.get(gw);
  if (c === undefined) {
    const created = Math.floor(Date.now() / 1000);
    const objs = gw.models().map((m) => modelObject(m, created, gw.config.simulated));
    c = { list: JSON.stringify({ object: 'list', data: objs }), byId: new Map(objs.map((o) => [o.id as string, JSON.stringify(o)])) };
    cache.set(gw, c);
  }
  return c;
}

export function modelsBody(gw: Gateway): string {
  return built(gw).list;
}

export function modelBody(gw: Gateway, id: string): string | undefined {
  return built(gw).byId.get(id);
}

export function healthBody(gw: Gateway, startedAt: number, draining: boolean): Record<string, unknown> {
  const now = Date.now();
  const backends = [...gw.backends.values()].map((b) => {
    const workstation = b.node?.power === 'workstation';
    const down = b.state === 'down' || b.unusable !== undefined;
    return {
      name: b.name,
      engine: b.config.engine,
      model: b.config.model,
      url: b.config.url,
      node: b.node?.name ?? null,
      power: b.node?.power ?? null,
      status: b.unusable !== undefined ? 'unconfigured' : down && workstation ? 'offline (expected)' : b.state,
      cooling_down: now < b.coolUntil,
      last_error: b.lastError ?? null,
      last_latency_ms: b.lastLatencyMs === undefined ? null : Math.round(b.lastLatencyMs * 10) / 10,
      outstanding: b.outstanding,
      simulated: b.config.simulated,
    };
  });
  const roles = [...gw.config.roles.values()].map((r) => {
    const members = r.backends.map((n) => gw.backends.get(n)!).filter((b) => b !== undefined);
    return { name: r.name, kind: r.kind, available: members.some((b) => b.state !== 'down' && b.unusable === undefined && now >= b.coolUntil) };
  });
  const critical = backends.filter((b) => b.status === 'down' && b.power !== 'workstation').length;
  return {
    status: draining ? 'draining' : critical > 0 ? 'degraded' : 'ok',
    simulated: gw.config.simulated,
    uptime_s: Math.round((now - startedAt) / 1000),
    backends,
    roles,
  };
}

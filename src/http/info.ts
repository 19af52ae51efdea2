// Bodies of the informational endpoints: /v1/models (roles, aliases, physical models) and
// /health (the fleet report of src/health/report.ts and its alert level). Both say when the fleet is simulated.

import type { Gateway } from '../core/gateway.ts';
import type { ListedModel } from '../routing/table.ts';
import { fleetReport } from '../health/report.ts';
import { evaluate, reloadRefusedText, type ConfigState } from '../health/alerts.ts';

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

/**
 * GET /health. `full`: the master key's holder (or anyone, with no master key) also sees each
 * backend's URL and last error text, which tell an outsider where the fleet is and what breaks it.
 */
export function healthBody(gw: Gateway, startedAt: number, draining: boolean, full = true, config?: ConfigState): Record<string, unknown> {
  const now = Date.now();
  const report = fleetReport(gw, now);
  const { nodes, roles } = report;
  const backends = full ? report.backends : report.backends.map((b) => ({ ...b, url: null, last_error: null }));
  const critical = backends.filter((b) => b.status === 'down').length;
  const iso = (t: number | undefined): string | null => (t === undefined ? null : new Date(t).toISOString());
  const refused = config?.refused;
  return {
    status: draining ? 'draining' : critical > 0 ? 'degraded' : 'ok',
    simulated: gw.config.simulated,
    uptime_s: Math.round((now - startedAt) / 1000),
    // Whether URLs and error texts are shown: a null last_error then means no error, not one hidden.
    details: full ? 'full' : 'hidden',
    // The reason names the file and what is wrong in it: for the master key's holder.
    config: { loaded_at: iso(config?.loadedAt), reload_refused_at: iso(refused?.at), reload_refused: refused === undefined ? null : full ? refused.reason : 'details for the master key\'s holder' },
    alert: evaluate({ backends, draining, reloadRefused: reloadRefusedText(config, full) }),
    backends,
    nodes,
    roles,
  };
}


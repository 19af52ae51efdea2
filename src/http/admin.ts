// The admin API, master key only: virtual keys, usage reports, budgets and the request log.
//   GET    /admin/keys                 list          POST /admin/keys               create (the key is in this answer only)
//   GET    /admin/keys/ID              show + spend  PATCH /admin/keys/ID           change limits, roles, budget, expiry
//   (one key's answers carry its revision as an ETag; PATCH, revoke, rotate and DELETE honour If-Match: 412 once it changed)
//   POST   /admin/keys/ID/revoke       revoke        DELETE /admin/keys/ID          revoke
//   POST   /admin/keys/ID/rotate       new secret    GET  /admin/usage?by=&since=&until=&key=&format=csv
//   GET    /admin/budgets              spend against every budget
//   GET    /admin/requests?limit=&key=&id=   the request log (when gateway.request_log is on)
// LiteLLM's names work too: POST /key/generate, GET /key/list, GET /key/info?key=, POST /key/update,
// POST /key/delete {keys}, POST /key/regenerate {key} (and /key/KEY/regenerate).

import { sendText, type Exchange } from './exchange.ts';
import type { Accounting } from '../accounting/service.ts';
import { allows } from '../accounting/service.ts';
import { parseWhen } from '../accounting/periods.ts';
import { FabricError } from '../core/errors.ts';
import type { Gateway } from '../core/gateway.ts';
import { KeyAdmin, keyView } from '../keys/admin.ts';
import { parseKeyInput } from '../keys/input.ts';
import { staleField } from '../keys/stale.ts';
import { keyRevision } from '../store/rows.ts';
import { USAGE_GROUPS, type KeyPatch, type KeyRecord, type UsageGroup, type UsageRow } from '../store/types.ts';
import { modelsBody } from './info.ts';
import type { AppState } from './server.ts';

export const MAX_ADMIN_BODY = 64 * 1024;

export interface AdminContext {
  accounting: Accounting | undefined;
  gateway: Gateway;
  /** The caller presented the master key. */
  master: boolean;
  /** A master key is configured at all. */
  hasMasterKey: boolean;
  probeNow?: AppState['probeNow'];
  workers?: AppState['workers'];
  cache?: AppState['cache'];
}

/** Admin answers are kept by no cache on the way (a proxy's, a browser's): they carry keys' secrets once, and usage. */
function send(x: Exchange, status: number, body: unknown, type = 'application/json', headers?: Record<string, string>): void {
  sendText(x, status, typeof body === 'string' ? body : JSON.stringify(body), type, { 'cache-control': 'no-store', ...headers });
}

/** One key, with its revision as the ETag that If-Match may send back. */
function sendKey(x: Exchange, status: number, k: KeyRecord, body: Record<string, unknown>): void {
  send(x, status, body, 'application/json', { etag: `"${keyRevision(k)}"` });
}

/**
 * If-Match's entity tags (RFC 9110 §13.1.1): the revisions a change to a key is made on, else
 * 412. Compared strongly, so a weak tag (W/"…") never matches; a tag without its quotes is
 * taken as the tag. Undefined when absent, or `*` (any revision: the key exists). No condition,
 * no check: LiteLLM's clients and scripts change keys as they always did, the last write winning.
 */
export function ifMatch(header: string | undefined): string[] | undefined {
  if (header === undefined) return undefined;
  const tags: string[] = [];
  let weak = false;
  for (const m of header.matchAll(/(W\/)?"([^"]*)"|([^\s,]+)/g)) {
    if (m[3] === '*') return undefined;
    if (m[1] !== undefined) weak = true;
    else tags.push(m[2] ?? m[3]!);
  }
  if (tags.length === 0) {
    throw new FabricError('precondition_failed', weak ? 'If-Match: a weak ETag (W/"…") never matches; send the ETag as GET /admin/keys/ID gives it'
      : 'If-Match names no ETag: send the one GET /admin/keys/ID gives, in its quotes, or leave the header out');
  }
  return tags;
}

/** The body as a JSON object (an empty body is an empty one): every admin route takes fields. */
async function readJson(x: Exchange): Promise<Record<string, unknown>> {
  const body = await x.body(MAX_ADMIN_BODY, 'fixed for the admin API');
  if (body.length === 0) return {};
  let j: unknown;
  try {
    j = JSON.parse(body.toString('utf8'));
  } catch (e) {
    throw new FabricError('invalid_json', `the request body is not valid JSON: ${(e as Error).message}`);
  }
  if (typeof j !== 'object' || j === null || Array.isArray(j)) throw new FabricError('invalid_request', 'the request body must be a JSON object');
  return j as Record<string, unknown>;
}

/** A key id from the path, percent-decoded; a malformed escape is the client's 400. */
function pathId(segment: string): string {
  try {
    return decodeURIComponent(segment);
  } catch {
    throw new FabricError('invalid_request', 'the key id in the path is not valid percent-encoding');
  }
}

export function isAdminPath(path: string): boolean {
  return path.startsWith('/admin/') || path.startsWith('/key/') || path === '/admin';
}

/** Every role name a key lists must be something this gateway serves (typos would lock the key out). */
function checkRoles(patch: KeyPatch, gw: Gateway): void {
  for (const r of patch.roles ?? []) {
    if (gw.table.resolve(r) === undefined) throw new FabricError('invalid_request', `roles: \`${r}\` is not a model this gateway serves; GET /v1/models lists them`, { param: 'roles' });
  }
  // Limits apply by the name of the role a request resolves to: an alias is kept as its role's
  // name, and a typo, which would never match, is refused.
  if (patch.roleLimits === undefined) return;
  const byRole: KeyPatch['roleLimits'] = {};
  for (const [r, limits] of Object.entries(patch.roleLimits)) {
    const route = gw.table.resolve(r)?.route;
    if (route === undefined) throw new FabricError('invalid_request', `role_limits: \`${r}\` is not a model this gateway serves; GET /v1/models lists them`, { param: `role_limits.${r}` });
    byRole[route.name] = limits;
  }
  patch.roleLimits = byRole;
}

/** CSV headed by what it is grouped by (key, role, …), as the JSON's fields are; by key, the key's id too (names may repeat across revoked keys). */
export function usageCsv(by: UsageGroup, rows: readonly UsageRow[]): string {
  const esc = (s: string): string => (/[",\n\r]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s);
  const ids = by === 'key';
  return `${by}${ids ? ',key_id' : ''},requests,errors,prompt_tokens,completion_tokens,cost_usd,avg_latency_ms\n` +
    rows.map((r) => [esc(r.group), ...(ids ? [r.keyId ?? ''] : []), r.requests, r.errors, r.promptTokens, r.completionTokens, r.cost.toFixed(6), r.avgLatencyMs.toFixed(1)].join(',')).join('\n') + (rows.length > 0 ? '\n' : '');
}

export function usageJson(by: UsageGroup, since: number | undefined, until: number | undefined, rows: readonly UsageRow[]): Record<string, unknown> {
  const total = rows.reduce((t, r) => ({
    requests: t.requests + r.requests, errors: t.errors + r.errors, prompt_tokens: t.prompt_tokens + r.promptTokens,
    completion_tokens: t.completion_tokens + r.completionTokens, cost_usd: t.cost_usd + r.cost,
  }), { requests: 0, errors: 0, prompt_tokens: 0, completion_tokens: 0, cost_usd: 0 });
  return {
    object: 'fabric.usage', by,
    since: since === undefined ? null : new Date(since).toISOString(),
    until: until === undefined ? null : new Date(until).toISOString(),
    data: rows.map((r) => ({
      [by]: r.group, ...(r.keyId === undefined ? {} : { key_id: r.keyId }), requests: r.requests, errors: r.errors, prompt_tokens: r.promptTokens, completion_tokens: r.completionTokens,
      cost_usd: r.cost, avg_latency_ms: Math.round(r.avgLatencyMs * 10) / 10,
    })),
    total,
  };
}

/** /v1/models as a key sees it: only what it may ask for. */
export function modelsForKey(gw: Gateway, key: KeyRecord): string {
  if (key.roles === undefined) return modelsBody(gw);
  const all = JSON.parse(modelsBody(gw)) as { object: string; data: { id: string }[] };
  all.data = all.data.filter((m) => {
    const r = gw.table.resolve(m.id);
    return r !== undefined && allows(key, r.route.name, gw);
  });
  return JSON.stringify(all);
}

/**
 * POST /admin/health/probe {"backends": [NAME…]} (all when absent): probe now, as after an engine
 * is mended; one that answers is back at once. With several workers, each probes its own view.
 */
async function probeNow(x: Exchange, a: AdminContext): Promise<void> {
  if (x.method !== 'POST') throw new FabricError('method_not_allowed', `${x.method} is not allowed on /admin/health/probe; use POST`, { headers: { allow: 'POST' } });
  const body = await readJson(x);
  const all = [...a.gateway.backends.values()];
  // `only`: a backend or a node's backends, as `fabric health NAME` selects them.
  const only = body.only;
  if (only !== undefined && typeof only !== 'string') throw new FabricError('invalid_request', '`only` must be a backend or node name', { param: 'only' });
  const names = only !== undefined ? all.filter((b) => b.name === only || b.node?.name === only).map((b) => b.name) : body.backends;
  if (only !== undefined && (names as string[]).length === 0) throw new FabricError('not_found', `no backend or node named ${JSON.stringify(only)}`, { param: 'only' });
  if (names !== undefined && (!Array.isArray(names) || !names.every((n) => typeof n === 'string'))) {
    throw new FabricError('invalid_request', '`backends` must be a list of backend names', { param: 'backends' });
  }
  const unknown = (names ?? []).filter((n) => !a.gateway.backends.has(n));
  if (unknown.length > 0) throw new FabricError('not_found', `no backend named ${unknown.map((n) => JSON.stringify(n)).join(', ')}; backends: ${all.map((b) => b.name).join(', ')}`, { param: 'backends' });
  if (a.probeNow === undefined) throw new FabricError('not_found', 'this gateway does not probe its backends');
  const chosen = names === undefined ? all : all.filter((b) => names.includes(b.name));
  void a.workers?.ask('probe', chosen.map((b) => b.name)).catch(() => {});
  send(x, 200, { object: 'list', data: await a.probeNow(chosen.map((b) => b.name)) });
}

/**
 * GET /admin/cache: the response cache's settings and what its memory store holds; DELETE: every
 * answer kept is forgotten (each worker's memory, and Redis when it is the store), as after a
 * change the cache cannot see (a chat template edited on the engine).
 */
async function cacheAdmin(x: Exchange, a: AdminContext): Promise<void> {
  const c = a.cache;
  if (c === undefined) throw new FabricError('not_found', 'this gateway has no response cache');
  if (x.method === 'GET' || x.method === 'HEAD') return send(x, 200, { object: 'fabric.cache', ...c.stats(a.gateway) });
  if (x.method !== 'DELETE') throw new FabricError('method_not_allowed', `${x.method} is not allowed on /admin/cache; use GET or DELETE`, { headers: { allow: 'GET, HEAD, DELETE' } });
  const others = (await a.workers?.ask('cache-clear', null)) ?? [];
  const { memory, redis } = await c.clear(a.gateway);
  const fromWorkers = others.reduce((n: number, v) => n + (typeof v === 'number' ? v : 0), 0);
  send(x, 200, { object: 'fabric.cache.cleared', memory_entries: memory + fromWorkers, ...(redis === undefined ? {} : { redis_entries: redis }) });
}

export async function handleAdmin(x: Exchange, path: string, query: URLSearchParams, a: AdminContext): Promise<void> {
  if (!a.hasMasterKey) {
    // Names no one command: the CLI, which knows which of its commands asked, says what that one can do instead.
    throw new FabricError('no_master_key', 'this gateway has no master key: set gateway.master_key to use the admin API (on the gateway host, `fabric keys` and `fabric usage` read the store directly with --config FILE, or --data-dir DIR for a gateway started without a config)');
  }
  if (!a.master) throw new FabricError('permission_denied', 'the admin API needs the master key; virtual keys cannot manage keys or read usage');
  // Needs no store: the fleet's health is the gateway's own.
  if (path === '/admin/health/probe') return probeNow(x, a);
  if (path === '/admin/cache') return cacheAdmin(x, a);
  const acct = a.accounting;
  if (acct === undefined) throw new FabricError('not_found', 'the gateway has no store (accounting is not running)');
  const admin = new KeyAdmin(acct.store, acct.keys);
  const method = x.method;
  const body = method === 'POST' || method === 'PATCH' || method === 'PUT' ? await readJson(x) : undefined;
  const now = Date.now();
  // What a key names that this gateway's config no longer serves (a role renamed under it).
  const resolves = (n: string): boolean => a.gateway.table.resolve(n) !== undefined;
  const view = (k: KeyRecord): Record<string, unknown> => ({ ...keyView(k, now), stale: staleField(k, resolves) });
  const withSpend = (k: KeyRecord): Record<string, unknown> => ({ ...view(k), spend: acct.keySpend(k) ?? null });

  // ── native routes ──
  if (path === '/admin/keys') {
    if (method === 'GET') return send(x, 200, { object: 'list', data: (await admin.list()).map(view) });
    if (method === 'POST') {
      const patch = parseKeyInput(body, 'create', now);
      checkRoles(patch, a.gateway);
      const { record, secret } = await admin.create(patch, now);
      return sendKey(x, 201, record, { ...keyView(record, now), key: secret });
    }
  }
  const m = /^\/admin\/keys\/([^/]+)(?:\/(revoke|rotate))?$/.exec(path);
  if (m !== null) {
    const id = pathId(m[1]!);
    const action = m[2];
    // A change on condition (If-Match) is made only to the key as the client read it.
    const expect = (): string[] | undefined => ifMatch(x.headers['if-match']);
    if (action === undefined && method === 'GET') {
      const k = await admin.find(id, now);
      return sendKey(x, 200, k, withSpend(k));
    }
    if (action === undefined && method === 'PATCH') {
      const patch = parseKeyInput(body, 'update', now);
      checkRoles(patch, a.gateway);
      const k = await admin.update(id, patch, now, expect());
      return sendKey(x, 200, k, withSpend(k));
    }
    if ((action === 'revoke' && method === 'POST') || (action === undefined && method === 'DELETE')) {
      const k = await admin.revoke(id, now, expect());
      return sendKey(x, 200, k, keyView(k, now));
    }
    if (action === 'rotate' && method === 'POST') {
      const { record, secret } = await admin.rotate(id, now, expect());
      return sendKey(x, 200, record, { ...keyView(record, now), key: secret });
    }
  }
  if (path === '/admin/usage' && method === 'GET') {
    const by = (query.get('by') ?? 'key') as UsageGroup;
    if (!(USAGE_GROUPS as readonly string[]).includes(by)) throw new FabricError('invalid_request', `by must be one of ${USAGE_GROUPS.join(', ')}`, { param: 'by' });
    const when = (name: string): number | undefined => {
      const v = query.get(name);
      if (v === null || v === '') return undefined;
      const t = parseWhen(v, now);
      if (t === undefined) throw new FabricError('invalid_request', `${name} must be a duration back (7d, 24h), today, month, an ISO date or unix seconds`, { param: name });
      return t;
    };
    const since = when('since');
    const until = when('until');
    const keyParam = query.get('key');
    const keyId = keyParam === null || keyParam === '' ? undefined : (await admin.find(keyParam)).id;
    const rows = await acct.store.usageSummary({ by, since, until, keyId });
    if (query.get('format') === 'csv') return send(x, 200, usageCsv(by, rows), 'text/csv; charset=utf-8');
    return send(x, 200, usageJson(by, since, until, rows));
  }
  if (path === '/admin/budgets' && method === 'GET') return send(x, 200, { object: 'list', data: acct.budgets() });
  if (path === '/admin/requests' && method === 'GET') {
    const limit = Math.min(1000, Math.max(1, Number(query.get('limit') ?? 50) || 50));
    const keyParam = query.get('key');
    const keyId = keyParam === null || keyParam === '' ? undefined : (await admin.find(keyParam)).id;
    const data = await acct.store.requestLogs({ limit, keyId, id: query.get('id') ?? undefined });
    return send(x, 200, { object: 'list', enabled: acct.config.gateway.requestLog.enabled, data });
  }

  // ── LiteLLM-compatible names ──
  const lite = (k: KeyRecord, secret?: string): Record<string, unknown> => ({
    ...(secret === undefined ? {} : { key: secret }), token: k.id, key_alias: k.name === k.id ? null : k.name, key_name: k.hint, models: k.roles ?? [], metadata: k.metadata,
    expires: k.expiresAt === undefined ? null : new Date(k.expiresAt).toISOString(), max_budget: k.budget?.amount ?? null,
    budget_duration: k.budget?.period ?? null, rpm_limit: k.rpm ?? null, tpm_limit: k.tpm ?? null, blocked: k.revokedAt !== undefined,
    spend: acct.keySpend(k)?.spent ?? 0,
  });
  const target = (b: unknown): string => {
    const k = (b as { key?: unknown } | undefined)?.key;
    if (typeof k !== 'string' || k === '') throw new FabricError('invalid_request', 'key is required (the key, or its id)', { param: 'key' });
    return k;
  };
  const stripKey = (b: unknown): unknown => {
    if (typeof b !== 'object' || b === null) return b;
    const { key: _k, ...rest } = b as Record<string, unknown>;
    return rest;
  };
  if (path === '/key/generate' && method === 'POST') {
    const patch = parseKeyInput(body, 'create', now, { nameOptional: true });
    checkRoles(patch, a.gateway);
    const { record, secret } = await admin.create(patch, now);
    return send(x, 200, lite(record, secret));
  }
  if (path === '/key/list' && method === 'GET') return send(x, 200, { keys: (await admin.list()).filter((k) => k.revokedAt === undefined).map((k) => k.id) });
  if (path === '/key/info' && method === 'GET') {
    const k = await admin.find(query.get('key') ?? '');
    return send(x, 200, { key: k.id, info: lite(k) });
  }
  if (path === '/key/update' && method === 'POST') {
    const patch = parseKeyInput(stripKey(body), 'update', now);
    checkRoles(patch, a.gateway);
    return send(x, 200, lite(await admin.update(target(body), patch, now)));
  }
  if (path === '/key/delete' && method === 'POST') {
    const keys = body?.keys;
    if (!Array.isArray(keys) || !keys.every((k) => typeof k === 'string')) throw new FabricError('invalid_request', 'keys must be a list of keys or key ids', { param: 'keys' });
    const deleted: string[] = [];
    for (const k of keys as string[]) deleted.push((await admin.revoke(k, now)).id);
    return send(x, 200, { deleted_keys: deleted });
  }
  const regen = /^\/key\/(?:(.+)\/)?regenerate$/.exec(path);
  if (regen !== null && method === 'POST') {
    const id = regen[1] !== undefined ? pathId(regen[1]) : target(body);
    const { record, secret } = await admin.rotate(id, now);
    return send(x, 200, lite(record, secret));
  }
  throw new FabricError('not_found', `no admin route for ${method} ${path}`);
}

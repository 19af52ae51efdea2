// Rows ↔ records, shared by both stores: the column lists, and the conversions that differ
// only in how each driver returns JSON, booleans and 64-bit integers.

import { createHash } from 'node:crypto';
import { canonicalJson } from '../core/canonical-json.ts';
import type { KeyCondition, KeyPatch, KeyRecord, RateLimit, UsageGroup, UsageRecord, UsageRow, BudgetPeriod } from './types.ts';

export const KEY_COLUMNS = [
  'id', 'hash', 'hint', 'name', 'metadata', 'roles', 'expires_at', 'budget_amount', 'budget_period', 'rpm', 'tpm', 'role_limits',
  'created_at', 'updated_at', 'revoked_at',
] as const;

export const USAGE_COLUMNS = [
  'id', 'ts', 'key_id', 'key_name', 'op', 'model', 'role', 'backend', 'upstream_model', 'status', 'code', 'prompt_tokens',
  'completion_tokens', 'estimated', 'latency_ms', 'ttft_ms', 'attempts', 'rerouted', 'stream', 'cost',
] as const;

type Row = Record<string, unknown>;

const num = (v: unknown): number | undefined => (v === null || v === undefined ? undefined : Number(v));
const json = (v: unknown): unknown => (typeof v === 'string' ? JSON.parse(v) : v);

export function keyFromRow(r: Row): KeyRecord {
  const roles = json(r.roles);
  const amount = num(r.budget_amount);
  return {
    id: String(r.id),
    hash: String(r.hash),
    hint: String(r.hint),
    name: String(r.name),
    metadata: (json(r.metadata) ?? {}) as Record<string, unknown>,
    roles: Array.isArray(roles) ? roles.map(String) : undefined,
    expiresAt: num(r.expires_at),
    budget: amount === undefined ? undefined : { amount, period: String(r.budget_period) as BudgetPeriod },
    rpm: num(r.rpm),
    tpm: num(r.tpm),
    roleLimits: (json(r.role_limits) ?? {}) as Record<string, RateLimit>,
    createdAt: Number(r.created_at),
    updatedAt: Number(r.updated_at),
    revokedAt: num(r.revoked_at),
  };
}

/** Column values of a key in KEY_COLUMNS order, JSON as text (both drivers accept it). */
export function keyValues(k: KeyRecord): (string | number | null)[] {
  return [
    k.id, k.hash, k.hint, k.name, JSON.stringify(k.metadata), k.roles === undefined ? null : JSON.stringify(k.roles),
    k.expiresAt ?? null, k.budget?.amount ?? null, k.budget?.period ?? null, k.rpm ?? null, k.tpm ?? null, JSON.stringify(k.roleLimits),
    k.createdAt, k.updatedAt, k.revokedAt ?? null,
  ];
}

/**
 * A patch applied: a key present with the value undefined clears that field (expiry, budget,
 * limits). A new updatedAt is at least a millisecond past the old one: two changes in one
 * millisecond, or from an instance whose clock is behind, still give the key a new revision.
 */
export function applyPatch(k: KeyRecord, patch: KeyPatch): KeyRecord {
  const out = { ...k } as unknown as Record<string, unknown>;
  for (const [name, v] of Object.entries(patch)) if (name !== 'id' && name !== 'createdAt') out[name] = v;
  if (patch.updatedAt !== undefined) out.updatedAt = Math.max(patch.updatedAt, k.updatedAt + 1);
  return out as unknown as KeyRecord;
}

/**
 * A key's revision: a digest of every stored field, so that any change to it, by whatever wrote
 * it (another instance, an older gateway, an UPDATE by hand), makes another. The admin API's
 * ETag; an update conditional on it fails rather than overwrite what its writer did not see.
 * Metadata and role limits in canonical order: PostgreSQL's JSONB gives keys back in its own.
 */
export function keyRevision(k: KeyRecord): string {
  const fields = [
    k.id, k.hash, k.hint, k.name, canonicalJson(k.metadata), k.roles ?? null, k.expiresAt ?? null, k.budget?.amount ?? null, k.budget?.period ?? null,
    k.rpm ?? null, k.tpm ?? null, canonicalJson(k.roleLimits), k.createdAt, k.updatedAt, k.revokedAt ?? null,
  ];
  return createHash('sha256').update(JSON.stringify(fields)).digest('base64url').slice(0, 22);
}

/** Whether the key as it is meets an update's condition. */
export function meets(k: KeyRecord, expect: KeyCondition | undefined): boolean {
  if (expect === undefined) return true;
  return (expect.hash === undefined || k.hash === expect.hash) && (expect.revision === undefined || keyRevision(k) === expect.revision);
}

const USAGE_STRINGS = ['id', 'op', 'model', 'role', 'backend', 'upstreamModel'] as const;
const USAGE_NUMBERS = ['ts', 'status', 'promptTokens', 'completionTokens', 'latencyMs', 'attempts', 'cost'] as const;
const USAGE_BOOLEANS = ['estimated', 'rerouted', 'stream'] as const;
const USAGE_OPTIONAL_STRINGS = ['keyId', 'keyName', 'code'] as const;

/**
 * What is wrong with a usage record read back from a spool file (a hand-edited or corrupted
 * line), or undefined when every field has its type: a store must never be handed one it
 * cannot bind, which it would refuse batch after batch.
 */
export function usageRecordProblem(x: unknown): string | undefined {
  if (typeof x !== 'object' || x === null || Array.isArray(x)) return 'not an object';
  const o = x as Record<string, unknown>;
  for (const k of USAGE_STRINGS) if (typeof o[k] !== 'string') return `${k} is not a string`;
  if (o.id === '') return 'id is empty';
  for (const k of USAGE_NUMBERS) if (typeof o[k] !== 'number' || !Number.isFinite(o[k])) return `${k} is not a number`;
  for (const k of USAGE_BOOLEANS) if (typeof o[k] !== 'boolean') return `${k} is not a boolean`;
  for (const k of USAGE_OPTIONAL_STRINGS) if (o[k] !== undefined && o[k] !== null && typeof o[k] !== 'string') return `${k} is not a string`;
  if (o.ttftMs !== undefined && o.ttftMs !== null && (typeof o.ttftMs !== 'number' || !Number.isFinite(o.ttftMs))) return 'ttftMs is not a number';
  return undefined;
}

export function usageValues(u: UsageRecord, bool: (b: boolean) => number | boolean): unknown[] {
  return [
    u.id, u.ts, u.keyId ?? null, u.keyName ?? null, u.op, u.model, u.role, u.backend, u.upstreamModel, u.status, u.code ?? null,
    u.promptTokens, u.completionTokens, bool(u.estimated), u.latencyMs, u.ttftMs ?? null, u.attempts, bool(u.rerouted), bool(u.stream), u.cost,
  ];
}

export function usageFromRow(r: Row): UsageRecord {
  return {
    id: String(r.id),
    ts: Number(r.ts),
    keyId: r.key_id === null ? undefined : String(r.key_id),
    keyName: r.key_name === null ? undefined : String(r.key_name),
    op: String(r.op),
    model: String(r.model),
    role: String(r.role),
    backend: String(r.backend),
    upstreamModel: String(r.upstream_model),
    status: Number(r.status),
    code: r.code === null ? undefined : String(r.code),
    promptTokens: Number(r.prompt_tokens),
    completionTokens: Number(r.completion_tokens),
    estimated: Boolean(r.estimated),
    latencyMs: Number(r.latency_ms),
    ttftMs: num(r.ttft_ms),
    attempts: Number(r.attempts),
    rerouted: Boolean(r.rerouted),
    stream: Boolean(r.stream),
    cost: Number(r.cost),
  };
}

export function usageRowFromRow(r: Row): UsageRow {
  const grp = r.grp === null || r.grp === undefined ? '' : String(r.grp);
  // By key, the group is the key's id, and the row is named by its name (groupExtra).
  const byKey = r.key_label !== undefined;
  return {
    group: byKey ? String(r.key_label ?? NO_KEY) : grp,
    ...(byKey && grp !== NO_KEY ? { keyId: grp } : {}),
    requests: Number(r.requests),
    errors: Number(r.errors),
    promptTokens: Number(r.prompt_tokens ?? 0),
    completionTokens: Number(r.completion_tokens ?? 0),
    cost: Number(r.cost ?? 0),
    avgLatencyMs: Number(r.avg_latency_ms ?? 0),
  };
}

const NO_KEY = '(none)';

/** The GROUP BY expression for a report; `day` is the UTC date. It reads both tables, where a missing key is NULL or ''. */
export function groupExpr(by: UsageGroup, day: string): string {
  switch (by) {
    case 'key': return `COALESCE(NULLIF(key_id, ''), '${NO_KEY}')`;
    case 'role': return "COALESCE(NULLIF(role, ''), '(none)')";
    case 'backend': return "COALESCE(NULLIF(backend, ''), '(none)')";
    case 'model': return "COALESCE(NULLIF(model, ''), '(none)')";
    case 'status': return 'status';
    case 'day': return day;
  }
}

/**
 * A report: the per-request records and the daily totals older ones were folded into, each
 * grouped, then summed together. `grp` is the group expression as selected (PostgreSQL casts it
 * to text), `where` the filter both tables take (on ts and key_id). By key, the row is named by
 * the key's name (the group is its id, as two keys may share a name).
 *
 * An error is a record with an error status, or with a code: a stream that broke after its first
 * byte keeps the 200 it was answered with, and its code (stream_interrupted) says it failed.
 */
export function summarySql(by: UsageGroup, grp: string, where: string): string {
  const label = by === 'key' ? ', MAX(key_name) AS key_label' : '';
  const sums = 'SUM(prompt_tokens) AS prompt_tokens, SUM(completion_tokens) AS completion_tokens, SUM(cost) AS cost, SUM(latency_ms) AS latency_ms';
  return `SELECT grp, SUM(requests) AS requests, SUM(errors) AS errors, SUM(prompt_tokens) AS prompt_tokens, SUM(completion_tokens) AS completion_tokens,
      SUM(cost) AS cost, SUM(latency_ms) / SUM(requests) AS avg_latency_ms${by === 'key' ? ', MAX(key_label) AS key_label' : ''}
    FROM (
      SELECT ${grp} AS grp, COUNT(*) AS requests, SUM(CASE WHEN status >= 400 OR code IS NOT NULL THEN 1 ELSE 0 END) AS errors, ${sums}${label}
        FROM fabric_usage ${where} GROUP BY 1
      UNION ALL
      SELECT ${grp} AS grp, SUM(requests) AS requests, SUM(errors) AS errors, ${sums}${label}
        FROM fabric_usage_daily ${where} GROUP BY 1
    ) AS u
    GROUP BY grp ORDER BY ${by === 'day' ? 'grp' : 'cost DESC, requests DESC, grp'}`;
}

/** Priced spend since a time (the parameter `p`), by key and backend, from both tables: each answered from its partial index on priced rows. */
export function spendSql(p: string): string {
  return `SELECT key_id, backend, SUM(cost) AS cost FROM (
      SELECT key_id, backend, cost FROM fabric_usage WHERE ts >= ${p} AND cost > 0
      UNION ALL
      SELECT NULLIF(key_id, ''), backend, cost FROM fabric_usage_daily WHERE ts >= ${p} AND cost > 0
    ) AS s GROUP BY key_id, backend`;
}

/** A day's totals grouped from `source` (records), added to those already folded for that day. */
export function rollupInsert(day: string, source: string): string {
  const sum = (c: string): string => `${c} = fabric_usage_daily.${c} + excluded.${c}`;
  return `INSERT INTO fabric_usage_daily (ts, key_id, key_name, op, model, role, backend, status, code, requests, errors, prompt_tokens, completion_tokens, cost, latency_ms)
    SELECT ${day}, COALESCE(key_id, ''), MAX(key_name), op, model, role, backend, status, COALESCE(code, ''), COUNT(*),
      SUM(CASE WHEN status >= 400 OR code IS NOT NULL THEN 1 ELSE 0 END), SUM(prompt_tokens), SUM(completion_tokens), SUM(cost), SUM(latency_ms)
    FROM ${source}
    GROUP BY COALESCE(key_id, ''), op, model, role, backend, status, COALESCE(code, '')
    ON CONFLICT (ts, key_id, op, model, role, backend, status, code) DO UPDATE SET
      key_name = COALESCE(excluded.key_name, fabric_usage_daily.key_name), ${['requests', 'errors', 'prompt_tokens', 'completion_tokens', 'cost', 'latency_ms'].map(sum).join(', ')}`;
}

export const DAY_MS = 86_400_000;

/**
 * The span one fold takes from the oldest record before the horizon (`start`): to the end of
 * start's UTC day or the horizon, whichever is first; the caller cuts it short at the record
 * `maxRecords` on (FOLD_CUT), when that is later than `start`. Both dialects ask the same two
 * questions (FOLD_FIRST, FOLD_CUT) in the fold's transaction.
 */
export function foldSpan(start: number, before: number): { day: number; end: number } {
  const day = Math.floor(start / DAY_MS) * DAY_MS;
  return { day, end: Math.min(day + DAY_MS, before) };
}

/** The oldest record before the horizon (parameter 1). */
export const FOLD_FIRST = (p: (i: number) => string): string => `SELECT MIN(ts) AS ts FROM fabric_usage WHERE ts < ${p(1)}`;
/** The time of the record (parameter 3) records on from parameter 1, before parameter 2. */
export const FOLD_CUT = (p: (i: number) => string): string => `SELECT ts FROM fabric_usage WHERE ts >= ${p(1)} AND ts < ${p(2)} ORDER BY ts LIMIT 1 OFFSET ${p(3)}`;

/** Records folded per transaction at most (the rest of their day goes in the next): a pass never holds the write lock long. */
export const ROLLUP_CHUNK = 20_000;

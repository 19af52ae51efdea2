// What the admin API (and `fabric keys`) accepts to create or change a key, checked field by
// field into a KeyPatch. Native names, with LiteLLM's /key/generate names as aliases
// (key_alias, models, duration, max_budget + budget_duration, rpm_limit, tpm_limit) so its
// clients and scripts work unchanged.

import { BUDGET_PERIODS, type BudgetPeriod } from '../config/types.ts';
import { parseDuration } from '../config/units.ts';
import { FabricError } from '../core/errors.ts';
import type { KeyPatch, RateLimit } from '../store/types.ts';

type Obj = Record<string, unknown>;

const bad = (param: string, message: string): FabricError => new FabricError('invalid_request', `${param}: ${message}`, { param });

const KNOWN = new Set([
  'name', 'key_alias', 'key_name', 'metadata', 'roles', 'models', 'expires_at', 'expires_in', 'duration', 'budget', 'max_budget', 'budget_duration',
  'rpm', 'rpm_limit', 'tpm', 'tpm_limit', 'role_limits', 'key', 'keys',
]);

function limit(v: unknown, param: string): number | undefined {
  if (v === null) return undefined;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 1) throw bad(param, 'must be a whole number of 1 or more, or null for none');
  return v;
}

/** A Map, not an object: a client's "constructor" or "__proto__" must find nothing. */
const PERIOD_ALIASES = new Map<string, BudgetPeriod>([
  ['daily', 'day'], ['1d', 'day'], ['24h', 'day'], ['weekly', 'week'], ['7d', 'week'], ['1w', 'week'],
  ['monthly', 'month'], ['30d', 'month'], ['1mo', 'month'], ['31d', 'month'],
]);

/** LiteLLM budget durations ("30d", "1mo", "7d", "24h") map to the calendar periods budgets use. */
function period(v: unknown, param: string): BudgetPeriod {
  if (typeof v !== 'string') throw bad(param, `must be one of ${BUDGET_PERIODS.join(', ')}`);
  const s = v.trim().toLowerCase();
  if ((BUDGET_PERIODS as readonly string[]).includes(s)) return s as BudgetPeriod;
  const p = PERIOD_ALIASES.get(s);
  if (p === undefined) throw bad(param, `must be one of ${BUDGET_PERIODS.join(', ')} (or 1d, 7d, 30d), got ${JSON.stringify(v)}`);
  return p;
}

function amount(v: unknown, param: string): number {
  if (typeof v !== 'number' || !Number.isFinite(v) || v < 0) throw bad(param, 'must be an amount of US dollars, 0 or more');
  return v;
}

/** A key's fields from a request body; `now` resolves relative expiries. */
/** `nameOptional`: LiteLLM's key_alias may be left out (the key is then named by its id). */
export function parseKeyInput(body: unknown, mode: 'create' | 'update', now: number = Date.now(), opts: { nameOptional?: boolean } = {}): KeyPatch {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) throw new FabricError('invalid_request', 'the body must be a JSON object');
  const b = body as Obj;
  for (const k of Object.keys(b)) if (!KNOWN.has(k)) throw bad(k, `unknown field; known: ${[...KNOWN].filter((x) => x !== 'key' && x !== 'keys').join(', ')}`);
  const out: KeyPatch = {};
  const name = b.name ?? b.key_alias ?? b.key_name;
  if (name !== undefined) {
    if (typeof name !== 'string' || name.trim() === '' || name.length > 200) throw bad('name', 'must be a non-empty string of at most 200 characters');
    // A name stands for the key where an id or the key itself may be given: it must read as neither.
    if (/^(key_|sk-)/.test(name.trim())) throw bad('name', 'must not begin with key_ or sk- (those are read as a key\'s id or the key itself)');
    out.name = name.trim();
  } else if (mode === 'create' && opts.nameOptional !== true) throw bad('name', 'is required: what the key is for (e.g. obsidian, trailblazer)');
  if (b.metadata !== undefined) {
    if (typeof b.metadata !== 'object' || b.metadata === null || Array.isArray(b.metadata)) throw bad('metadata', 'must be a JSON object');
    if (JSON.stringify(b.metadata).length > 16_384) throw bad('metadata', 'must be at most 16 KiB as JSON');
    out.metadata = b.metadata as Obj;
  }
  // A native null is a value (all roles; no expiry), not the absence `??` would take it for.
  // LiteLLM's /key/update ignores a null models or duration (its clients send every field), and
  // takes duration "-1" for no expiry.
  const roles = b.roles !== undefined ? b.roles : b.models ?? undefined;
  if (roles !== undefined) {
    if (roles === null) out.roles = undefined;
    else if (!Array.isArray(roles) || !roles.every((r) => typeof r === 'string' && r !== '')) throw bad('roles', 'must be a list of model names (roles or aliases), or null for all');
    else out.roles = roles.length === 0 && b.models !== undefined ? undefined : [...new Set(roles as string[])];
  }
  const expIn = b.expires_in !== undefined ? b.expires_in : b.duration === '-1' ? null : b.duration ?? undefined;
  if (b.expires_at !== undefined) {
    if (b.expires_at === null) out.expiresAt = undefined;
    else {
      const t = typeof b.expires_at === 'number' ? b.expires_at * 1000 : typeof b.expires_at === 'string' ? Date.parse(b.expires_at) : NaN;
      if (!Number.isFinite(t)) throw bad('expires_at', 'must be an ISO date-time or unix seconds, or null for never');
      // A new key that could never be used is a mistake; an update may send an expiry back as it was.
      if (mode === 'create' && t <= now) throw bad('expires_at', `is in the past (${new Date(t).toISOString()}); a key that has expired cannot be used`);
      out.expiresAt = t;
    }
  } else if (expIn !== undefined) {
    if (expIn === null || expIn === 'permanent') out.expiresAt = undefined;
    else {
      const ms = parseDuration(expIn);
      if (ms === undefined || ms <= 0) throw bad('expires_in', 'must be a duration such as 30d, 12h or 90m');
      out.expiresAt = now + ms;
    }
  }
  if (b.budget !== undefined) {
    if (b.budget === null) out.budget = undefined;
    else {
      if (typeof b.budget !== 'object' || Array.isArray(b.budget)) throw bad('budget', 'must be { amount, period } or null');
      const bb = b.budget as Obj;
      out.budget = { amount: amount(bb.amount, 'budget.amount'), period: bb.period === undefined ? 'month' : period(bb.period, 'budget.period') };
    }
  } else if (b.max_budget !== undefined) {
    out.budget = b.max_budget === null ? undefined
      : { amount: amount(b.max_budget, 'max_budget'), period: b.budget_duration === undefined || b.budget_duration === null ? 'total' : period(b.budget_duration, 'budget_duration') };
  }
  const rpm = b.rpm !== undefined ? b.rpm : b.rpm_limit;
  if (rpm !== undefined) out.rpm = limit(rpm, 'rpm');
  const tpm = b.tpm !== undefined ? b.tpm : b.tpm_limit;
  if (tpm !== undefined) out.tpm = limit(tpm, 'tpm');
  if (b.role_limits !== undefined) {
    if (typeof b.role_limits !== 'object' || b.role_limits === null || Array.isArray(b.role_limits)) throw bad('role_limits', 'must be { ROLE: { rpm, tpm } }');
    // No prototype: a role named "__proto__" is a key like any other.
    const rl: Record<string, RateLimit> = Object.create(null) as Record<string, RateLimit>;
    for (const [role, v] of Object.entries(b.role_limits as Obj)) {
      if (typeof v !== 'object' || v === null) throw bad(`role_limits.${role}`, 'must be { rpm, tpm }');
      const lv = v as Obj;
      for (const k of Object.keys(lv)) if (k !== 'rpm' && k !== 'tpm') throw bad(`role_limits.${role}.${k}`, 'unknown field; known: rpm, tpm');
      const entry: RateLimit = {};
      if (lv.rpm !== undefined && lv.rpm !== null) entry.rpm = limit(lv.rpm, `role_limits.${role}.rpm`);
      if (lv.tpm !== undefined && lv.tpm !== null) entry.tpm = limit(lv.tpm, `role_limits.${role}.tpm`);
      rl[role] = entry;
    }
    out.roleLimits = rl;
  }
  return out;
}

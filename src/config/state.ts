// Validates the config of the gateway's state: gateway.data_dir / store / redis / accounting /
// request_log, and the top-level prices and budgets. Kept apart from schema.ts like serve.ts;
// the same Reporter gives the same file:line:col errors.

import type { KeyPath } from './issues.ts';
import { suggest } from './issues.ts';
import { parseDuration } from './units.ts';
import { bool, describe, duration, int, isObj, mapping, oneOf, secret, size, str, strList, type Reporter } from './schema.ts';
import {
  BUDGET_PERIODS, STORE_DOWN_POLICIES, roleByName,
  type AccountingConfig, type BackendConfig, type BudgetConfig, type GatewayConfig, type PriceConfig, type RequestLogConfig, type RoleConfig,
  type StoreConfig,
} from './types.ts';

export const STATE_GATEWAY_KEYS = ['data_dir', 'store', 'redis', 'accounting', 'request_log'] as const;

/** A non-negative amount of money: 150, 0.4, or "$150". */
export function money(r: Reporter, path: KeyPath, v: unknown, required: boolean): number | undefined {
  if (v === undefined || v === null) {
    if (required) r.error(path, 'is required (US dollars, e.g. 150)');
    return undefined;
  }
  const n = typeof v === 'string' && /^\$?\s*\d+(\.\d+)?$/.test(v.trim()) ? Number(v.trim().replace(/^\$\s*/, '')) : v;
  if (typeof n !== 'number' || !Number.isFinite(n) || n < 0) {
    r.error(path, `must be an amount of US dollars of 0 or more (e.g. 150 or "$150"), got ${describe(v)}`);
    return undefined;
  }
  return n;
}

function store(r: Reporter, v: unknown, dflt: StoreConfig): StoreConfig {
  const p = ['gateway', 'store'];
  if (typeof v === 'string') {
    // Shorthands: a secret reference is a PostgreSQL URL; anything else a SQLite path.
    if (/^(env:|\$\{|os\.environ\/)/.test(v.trim())) {
      const url = secret(r, p, v);
      return url === undefined ? dflt : { kind: 'postgres', url };
    }
    if (/^postgres(ql)?:\/\//i.test(v.trim())) {
      r.error(p, 'a PostgreSQL URL holds a password: write url: env:DATABASE_URL and put the URL in the environment or the .env file');
      return dflt;
    }
    return { kind: 'sqlite', path: v };
  }
  const m = mapping(r, p, v, ['sqlite', 'url']);
  if (m === undefined) return dflt;
  if (m.sqlite !== undefined && m.url !== undefined) {
    r.error(p, 'give either sqlite: PATH or url: env:NAME (PostgreSQL), not both');
    return dflt;
  }
  if (m.url !== undefined) {
    if (typeof m.url === 'string' && /^postgres(ql)?:\/\//i.test(m.url.trim())) {
      r.error([...p, 'url'], 'a PostgreSQL URL holds a password: write env:DATABASE_URL and put the URL in the environment or the .env file');
      return dflt;
    }
    const url = secret(r, [...p, 'url'], m.url);
    return url === undefined ? dflt : { kind: 'postgres', url };
  }
  const path = str(r, [...p, 'sqlite'], m.sqlite);
  return path === undefined ? dflt : { kind: 'sqlite', path };
}

function accounting(r: Reporter, v: unknown, d: AccountingConfig): AccountingConfig {
  const p = ['gateway', 'accounting'];
  if (typeof v === 'boolean') return { ...d, enabled: v };
  const m = mapping(r, p, v, ['enabled', 'batch_size', 'flush_interval', 'sync_interval', 'on_store_down', 'max_buffer', 'retention']);
  if (m === undefined) return { ...d };
  const out: AccountingConfig = {
    enabled: bool(r, [...p, 'enabled'], m.enabled, d.enabled),
    batchSize: int(r, [...p, 'batch_size'], m.batch_size, d.batchSize, 1, 100_000),
    flushIntervalMs: duration(r, [...p, 'flush_interval'], m.flush_interval, d.flushIntervalMs),
    syncIntervalMs: duration(r, [...p, 'sync_interval'], m.sync_interval, d.syncIntervalMs),
    onStoreDown: oneOf(r, [...p, 'on_store_down'], m.on_store_down, STORE_DOWN_POLICIES, d.onStoreDown),
    maxBuffer: int(r, [...p, 'max_buffer'], m.max_buffer, d.maxBuffer, 1, 10_000_000),
    retentionMs: retention(r, [...p, 'retention'], m.retention, d.retentionMs),
  };
  if (out.flushIntervalMs < 10) r.error([...p, 'flush_interval'], 'must be at least 10ms');
  if (out.syncIntervalMs < 50) r.error([...p, 'sync_interval'], 'must be at least 50ms');
  return out;
}

/** accounting.retention: a duration of a day or more, or forever. */
function retention(r: Reporter, path: KeyPath, v: unknown, d: number | undefined): number | undefined {
  if (v === undefined || v === null) return d;
  if (v === 'forever') return undefined;
  const ms = parseDuration(v);
  if (ms === undefined || ms < 86_400_000) {
    r.error(path, `must be a duration of a day or more such as 90d or 400d (older records are folded into daily totals), or forever; got ${describe(v)}`);
    return d;
  }
  return ms;
}

function requestLog(r: Reporter, v: unknown, d: RequestLogConfig): RequestLogConfig {
  const p = ['gateway', 'request_log'];
  if (typeof v === 'boolean') return { ...d, enabled: v };
  const m = mapping(r, p, v, ['enabled', 'max_body', 'retention', 'max_size', 'redact']);
  if (m === undefined) return { ...d, redact: [...d.redact] };
  const redact = strList(r, [...p, 'redact'], m.redact);
  redact.forEach((re, i) => {
    try {
      new RegExp(re, 'g');
    } catch (e) {
      r.error([...p, 'redact', i], `is not a valid regular expression: ${(e as Error).message}`);
    }
  });
  return {
    enabled: bool(r, [...p, 'enabled'], m.enabled, true),
    maxBodyBytes: size(r, [...p, 'max_body'], m.max_body, d.maxBodyBytes),
    retentionMs: duration(r, [...p, 'retention'], m.retention, d.retentionMs),
    maxSizeBytes: size(r, [...p, 'max_size'], m.max_size, d.maxSizeBytes),
    redact,
  };
}

/** gateway.data_dir, store, redis, accounting, request_log into `g`. */
export function gatewayState(r: Reporter, m: Record<string, unknown>, g: GatewayConfig): void {
  g.dataDir = str(r, ['gateway', 'data_dir'], m.data_dir);
  g.store = store(r, m.store, g.store);
  const rp = ['gateway', 'redis'];
  if (typeof m.redis === 'string') {
    const url = secret(r, rp, m.redis);
    if (url !== undefined) g.redis = { url, prefix: 'fabric' };
  } else {
    const rm = mapping(r, rp, m.redis, ['url', 'prefix']);
    if (rm !== undefined) {
      if (rm.url === undefined) r.error([...rp, 'url'], 'is required: env:REDIS_URL (a Redis URL may hold a password)');
      const url = secret(r, [...rp, 'url'], rm.url);
      const prefix = str(r, [...rp, 'prefix'], rm.prefix) ?? 'fabric';
      if (!/^[A-Za-z0-9_.:-]+$/.test(prefix)) r.error([...rp, 'prefix'], 'may hold letters, digits and _ . : - only');
      if (url !== undefined) g.redis = { url, prefix };
    }
  }
  g.accounting = accounting(r, m.accounting, g.accounting);
  g.requestLog = requestLog(r, m.request_log, g.requestLog);
}

export function prices(r: Reporter, v: unknown, backends: Map<string, BackendConfig>): Map<string, PriceConfig> {
  const out = new Map<string, PriceConfig>();
  const m = mapping(r, ['prices'], v, Object.keys(isObj(v) ? v : {}));
  if (m === undefined) return out;
  const models = new Set([...backends.values()].map((b) => b.model));
  for (const [name, raw] of Object.entries(m)) {
    const p = ['prices', name];
    const pm = mapping(r, p, raw, ['input', 'output', 'gpu_hour', 'audio_minute']);
    if (pm === undefined) {
      r.error(p, 'must be a mapping: { input: USD per 1M tokens, output: USD per 1M tokens }, { gpu_hour: USD } or { audio_minute: USD }');
      continue;
    }
    if (pm.input === undefined && pm.output === undefined && pm.gpu_hour === undefined && pm.audio_minute === undefined) {
      r.error(p, 'needs input and output (USD per 1M tokens), gpu_hour (USD), or audio_minute (USD per minute of audio)');
    }
    out.set(name, {
      input: money(r, [...p, 'input'], pm.input, false) ?? 0,
      output: money(r, [...p, 'output'], pm.output, false) ?? 0,
      gpuHour: money(r, [...p, 'gpu_hour'], pm.gpu_hour, false),
      audioMinute: money(r, [...p, 'audio_minute'], pm.audio_minute, false),
    });
    if (!backends.has(name) && !models.has(name)) {
      const hint = suggest(name, [...backends.keys(), ...models]);
      r.warn(p, `names no backend and no backend's model${hint === undefined ? '' : ` (did you mean "${hint}"?)`}; it applies to nothing`, true);
    }
  }
  return out;
}

export function budgets(
  r: Reporter, v: unknown, backends: Map<string, BackendConfig>, roles: Map<string, RoleConfig>,
): BudgetConfig[] {
  const out: BudgetConfig[] = [];
  const m = mapping(r, ['budgets'], v, Object.keys(isObj(v) ? v : {}));
  if (m === undefined) return out;
  for (const [name, raw] of Object.entries(m)) {
    const p = ['budgets', name];
    const bm = mapping(r, p, raw, ['amount', 'period', 'backends', 'roles', 'engines', 'fallback']);
    if (bm === undefined) {
      r.error(p, 'must be a mapping with amount, period and backends, roles or engines');
      continue;
    }
    const amount = money(r, [...p, 'amount'], bm.amount, true) ?? 0;
    const period = bm.period === undefined ? (r.error([...p, 'period'], `is required: one of ${BUDGET_PERIODS.join(', ')}`), 'month' as const)
      : oneOf(r, [...p, 'period'], bm.period, BUDGET_PERIODS, 'month');
    const set = new Set<string>();
    strList(r, [...p, 'backends'], bm.backends).forEach((b, i) => {
      if (backends.has(b)) set.add(b);
      else {
        const hint = suggest(b, backends.keys());
        r.error([...p, 'backends', i], `names a backend that is not defined: "${b}"${hint === undefined ? '' : ` (did you mean "${hint}"?)`}`);
      }
    });
    strList(r, [...p, 'roles'], bm.roles).forEach((n, i) => {
      const role = roleByName(roles, n);
      if (role === undefined) {
        const hint = suggest(n, roles.keys());
        r.error([...p, 'roles', i], `names no role or role alias: "${n}"${hint === undefined ? '' : ` (did you mean "${hint}"?)`}`);
      } else for (const b of role.backends) set.add(b);
    });
    strList(r, [...p, 'engines'], bm.engines).forEach((e, i) => {
      const matching = [...backends.values()].filter((b) => b.engine === e);
      if (matching.length === 0) r.error([...p, 'engines', i], `no backend has engine "${e}"`);
      for (const b of matching) set.add(b.name);
    });
    if (bm.backends === undefined && bm.roles === undefined && bm.engines === undefined) {
      r.error(p, 'needs what it covers: backends: [...], roles: [...] or engines: [openai]', true);
    }
    const fallback = str(r, [...p, 'fallback'], bm.fallback);
    if (fallback !== undefined) {
      const role = roleByName(roles, fallback);
      if (role === undefined) {
        const hint = suggest(fallback, roles.keys());
        r.error([...p, 'fallback'], `names no role or role alias: "${fallback}"${hint === undefined ? '' : ` (did you mean "${hint}"?)`}`);
      } else if (role.backends.some((b) => set.has(b))) {
        r.error([...p, 'fallback'], `"${fallback}" uses backends this budget covers, so it cannot take over when the budget is spent`);
      }
    }
    out.push({ name, amount, period, backends: [...set], fallback });
  }
  return out;
}

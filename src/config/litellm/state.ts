// LiteLLM's state settings as the gateway's own (../state.ts): database_url → gateway.store,
// redis_url (or host, port and password) → gateway.redis, provider_budget_config → budgets.
// The proxy-wide max_budget has no native equivalent: it is reported with the budget that
// comes closest. Secrets stay references; a value written literally is held, never written.

import type { KeyPath } from '../issues.ts';
import type { BudgetPeriod } from '../types.ts';
import { describe, duration, isObj, numeric, seconds, slug, type NativeBudget, type NativeDoc, type Obj, type Translation } from './context.ts';
import type { Deployment } from './deployments.ts';
import { envRef, holdLiteral, secretRef } from './secrets.ts';

/** A deployment the gateway serves, and the backend it became. */
export interface Served {
  d: Deployment;
  backend: string;
}

const DB: KeyPath = ['general_settings', 'database_url'];

/**
 * general_settings.database_url → gateway.store { url } (PostgreSQL). The gateway keeps its
 * own fabric_* tables there; LiteLLM's (virtual keys, spend logs) are not read.
 */
export function readStore(t: Translation, gs: Obj, doc: NativeDoc): void {
  const v = gs.database_url;
  if (v !== undefined && v !== null && v !== '') {
    if (envRef(v) === undefined && (typeof v !== 'string' || !/^postgres(ql)?:\/\//i.test(v.trim()))) {
      // Never echo the value: a database URL holds a password.
      t.r.warn(DB, `must be a postgresql:// URL or os.environ/NAME, got ${typeof v === 'string' ? 'another kind of value' : describe(v)}; ignored: the gateway keeps its state in SQLite beside the config`);
    } else {
      const url = secretRef(t, DB, v, 'DATABASE_URL');
      if (url !== undefined) {
        doc.gateway.store = { url };
        t.from(['gateway', 'store'], DB);
        t.from(['gateway', 'store', 'url'], DB);
        t.note(['gateway', 'store'], 'general_settings.database_url: PostgreSQL, as LiteLLM\'s; the gateway keeps keys and usage in its own fabric_* tables there');
        t.r.warn(DB, 'mapped to gateway.store (PostgreSQL), but LiteLLM\'s own tables there (virtual keys, teams, users, spend logs) are not read: ' +
          'LiteLLM virtual keys do not authenticate here; give clients keys from fabric keys create (the gateway adds its own fabric_* tables beside LiteLLM\'s)', true);
      }
    }
  }
}

/**
 * proxy_batch_write_at → accounting.flush_interval; allow_requests_on_db_unavailable: true → accounting.on_store_down: serve;
 * maximum_spend_logs_retention_period → accounting.retention.
 */
export function readAccounting(t: Translation, gs: Obj, doc: NativeDoc): void {
  const accounting: NonNullable<NativeDoc['gateway']['accounting']> = {};
  const bw = seconds(t, ['general_settings', 'proxy_batch_write_at'], gs.proxy_batch_write_at);
  if (bw !== undefined) {
    accounting.flush_interval = duration(Math.max(10, Math.round(bw * 1000)));
    t.from(['gateway', 'accounting', 'flush_interval'], ['general_settings', 'proxy_batch_write_at']);
    t.note(['gateway', 'accounting', 'flush_interval'], `proxy_batch_write_at ${bw}s: usage records are written to the store in batches this often (each is in the spool file on disk from the start)`);
  }
  const adu = gs.allow_requests_on_db_unavailable;
  if (adu === true) {
    accounting.on_store_down = 'serve';
    t.from(['gateway', 'accounting', 'on_store_down'], ['general_settings', 'allow_requests_on_db_unavailable']);
    t.note(['gateway', 'accounting', 'on_store_down'], 'allow_requests_on_db_unavailable: requests are answered while the database is down; keys are checked from memory and usage is written when it is back');
  } else if (adu !== undefined && adu !== null && adu !== false) {
    t.r.error(['general_settings', 'allow_requests_on_db_unavailable'], `must be true or false, got ${describe(adu)}`);
  }
  const rp = gs.maximum_spend_logs_retention_period;
  if (rp !== undefined && rp !== null) {
    const RP: KeyPath = ['general_settings', 'maximum_spend_logs_retention_period'];
    const m = typeof rp === 'string' ? /^\s*(\d+)\s*([smhd])\s*$/.exec(rp) : null;
    if (m === null) {
      t.r.warn(RP, `must be a duration such as "30d", "24h", "60m" or "3600s", got ${describe(rp)}; ignored: records older than 90d are folded into daily totals`, true);
    } else {
      const days = (Number(m[1]) * { s: 1, m: 60, h: 3600, d: 86_400 }[m[2] as 's' | 'm' | 'h' | 'd']) / 86_400;
      accounting.retention = `${Math.max(1, Math.ceil(days))}d`;
      t.from(['gateway', 'accounting', 'retention'], RP);
      t.note(['gateway', 'accounting', 'retention'], `maximum_spend_logs_retention_period ${rp}: where LiteLLM deletes older spend logs, the gateway folds its per-request records into daily totals (a day at least), so reports and budgets still count them`);
    }
  }
  if (Object.keys(accounting).length > 0) doc.gateway.accounting = accounting;
}

const REDIS_NOTE = 'shared by every gateway instance: rate limits and budget holds (health and cooldowns stay per process, where LiteLLM shares them too)';

/** Where a LiteLLM config names a Redis server: router_settings' redis_* keys, or cache_params' own. */
export interface RedisKeys {
  at: KeyPath;
  url: string;
  host: string;
  port: string;
  password: string;
  /** What the server is for, as "to share <purpose> across gateway instances". */
  purpose: string;
}

const ROUTER_REDIS: RedisKeys = {
  at: ['router_settings'], url: 'redis_url', host: 'redis_host', port: 'redis_port', password: 'redis_password', purpose: 'rate limits and budgets',
};

/** A Redis connection as gateway.redis takes it (env:NAME), and the key it came from. */
export interface RedisUrl {
  url: string;
  from: KeyPath;
  /** Built from host and port, not given as a URL; with a password in it. */
  parts: boolean;
  password: boolean;
}

/**
 * router_settings' redis_url (or host, port and password) → gateway.redis { url }. LiteLLM
 * uses Redis only with both redis_host and redis_port (or redis_url).
 */
export function readRedis(t: Translation, rs: Obj, doc: NativeDoc): void {
  const k = ROUTER_REDIS;
  const present = (key: string): boolean => rs[key] !== undefined && rs[key] !== null && rs[key] !== '';
  if (!present(k.url) && !(present(k.host) && present(k.port))) {
    for (const key of [k.host, k.port, k.password].filter(present)) {
      t.r.warn([...k.at, key], 'ignored, as by LiteLLM: it uses Redis only with both redis_host and redis_port (or redis_url)', true);
    }
    return;
  }
  const r = redisUrl(t, rs, k);
  if (r === undefined) return;
  doc.gateway.redis = { url: r.url };
  t.from(['gateway', 'redis'], r.from);
  t.note(['gateway', 'redis'], `${r.parts ? `router_settings.redis_host/port${r.password ? '/password' : ''} as one URL` : 'router_settings.redis_url'}: ${REDIS_NOTE}`);
}

/**
 * A Redis server named by url, or by host and port (and password) → the env:NAME reference
 * gateway.redis takes; undefined, reported, when none can be written. The gateway takes Redis
 * as one URL from the environment: host, port and password are mapped only when all are
 * written out (the URL is held like a literal secret); with os.environ/ parts no reference
 * can stand for the URL, so the exact native config to write is reported instead. The caller
 * checks that host and port are there when url is not.
 */
export function redisUrl(t: Translation, obj: Obj, k: RedisKeys): RedisUrl | undefined {
  const present = (key: string): boolean => obj[key] !== undefined && obj[key] !== null && obj[key] !== '';
  const parts = [k.host, k.port, k.password].filter(present);
  const at = (key: string): KeyPath => [...k.at, key];
  const name = (key: string): string => [...k.at, key].join('.');
  if (present(k.url)) {
    const url = secretRef(t, at(k.url), obj[k.url], 'REDIS_URL');
    for (const key of parts) t.r.warn(at(key), `ignored: ${name(k.url)} is set, and LiteLLM connects with it`, true);
    return url === undefined ? undefined : { url, from: at(k.url), parts: false, password: false };
  }
  const [host, port] = [obj[k.host], obj[k.port]].map((x) => String(x).trim()) as [string, string];
  const hostPart = (h: string): string => (h.includes(':') && !h.startsWith('[') ? `[${h}]` : h);
  if (parts.every((key) => envRef(obj[key]) === undefined)) {
    // Every part is written out: one URL, held for serving like any literal secret.
    const password = present(k.password) ? String(obj[k.password]) : undefined;
    const value = `redis://${password === undefined ? '' : `:${encodeURIComponent(password)}@`}${hostPart(host)}:${port}`;
    const held = holdLiteral(t, 'REDIS_URL', value);
    if (password !== undefined) {
      t.r.warn(at(k.password), `holds a secret literally: ${k.host}, ${k.port} and ${k.password} are used as one URL, env:${held} (fabric config import writes only that reference); ` +
        `put ${held}=redis://:<password>@${hostPart(host)}:${port} in the environment or the .env file and write ${k.url}: os.environ/${held} instead of the three`);
    } else {
      t.r.warn(at(k.host), `used with ${k.port} as one URL, env:${held} = ${value} (the gateway reads Redis as a URL from the environment; fabric config import writes only the reference): ` +
        `put ${held}=${value} in the environment or the .env file (LiteLLM would also take a password from REDIS_PASSWORD: a server that needs one has it in the URL, redis://:<password>@…)`, true);
    }
    return { url: `env:${held}`, from: at(k.host), parts: true, password: password !== undefined };
  }
  // Some part names an environment variable: no single reference can stand for the URL.
  const show = (key: string, literal: string): string => {
    const r = envRef(obj[key]);
    return r === undefined ? literal : `<${r}>`;
  };
  const auth = present(k.password) ? `:${show(k.password, '<password>')}@` : '';
  const template = `redis://${auth}${show(k.host, hostPart(host))}:${show(k.port, port)}`;
  t.r.warn(at(k.host), 'not mapped: the gateway reads Redis as one URL from the environment, and none can be built from os.environ/ parts without copying their values. ' +
    `To share ${k.purpose} across gateway instances, set REDIS_URL=${template} (each <NAME> replaced by its value: .env files are not interpolated) ` +
    'in the environment or the .env file and write gateway.redis: { url: env:REDIS_URL } ' +
    `(or ${name(k.url)}: os.environ/REDIS_URL); until then each gateway process keeps its own`, true);
  for (const key of parts) if (key !== k.host) t.r.warn(at(key), `not mapped: part of the one Redis URL the gateway takes; see ${name(k.host)}`, true);
  return undefined;
}

/** How a LiteLLM duration (1d, 7d, 30d, 1mo, …) maps to a native budget period. */
export interface PeriodMapping {
  period: BudgetPeriod;
  /** The native period has the same length; else the amount is scaled to keep the rate. */
  sameLength: boolean;
  /** Multiply LiteLLM's amount by this for the native period. */
  scale: number;
  text: string;
}

const UNIT_SECONDS: Record<string, number> = { s: 1, m: 60, h: 3600, d: 86_400, w: 604_800 };
const NATIVE_DAYS: Record<'day' | 'week' | 'month', number> = { day: 1, week: 7, month: 30 };

/** LiteLLM's duration_in_seconds: <n>s|m|h|d|w|mo. undefined when it is not one. */
export function mapPeriod(v: unknown): PeriodMapping | undefined {
  if (typeof v !== 'string') return undefined;
  const m = /^(\d+)\s*(mo|[smhdw])$/.exec(v.trim());
  if (m === null || Number(m[1]) === 0) return undefined;
  const n = Number(m[1]);
  const unit = m[2]!;
  const days = unit === 'mo' ? n * 30 : (n * UNIT_SECONDS[unit]!) / 86_400;
  const same = unit === 'mo' ? (n === 1 ? 'month' : undefined) : days === 1 ? 'day' : days === 7 ? 'week' : days === 30 ? 'month' : undefined;
  if (same !== undefined) return { period: same, sameLength: true, scale: 1, text: v.trim() };
  const period = days < Math.sqrt(7) ? 'day' : days < Math.sqrt(7 * 30) ? 'week' : 'month';
  return { period, sameLength: false, scale: unit === 'mo' ? 1 / n : NATIVE_DAYS[period] / days, text: v.trim() };
}

const round = (x: number): number => Number(x.toPrecision(6));
const PERIOD_START: Record<BudgetPeriod, string> = { day: 'from midnight', week: 'from Monday', month: 'from the 1st', total: 'never reset' };

function amountOf(v: unknown): number | undefined {
  const n = numeric(v);
  return typeof n === 'number' && Number.isFinite(n) && n >= 0 ? n : undefined;
}

/**
 * router_settings.provider_budget_config {provider: {budget_limit, time_period}} → budgets.
 * LiteLLM filters a provider's deployments out while its spend is at the limit, and each
 * model_name's fallbacks take over; a native budget passes its backends over the same way.
 */
export function readBudgets(t: Translation, rs: Obj, doc: NativeDoc, served: Served[]): void {
  const p: KeyPath = ['router_settings', 'provider_budget_config'];
  const v = rs.provider_budget_config;
  if (v === undefined || v === null) return;
  if (!isObj(v)) {
    t.r.error(p, `must be a mapping of provider: {budget_limit, time_period}, got ${describe(v)}`);
    return;
  }
  const budgets: Record<string, NativeBudget> = {};
  for (const [provider, cfg] of Object.entries(v)) {
    const bp: KeyPath = [...p, provider];
    if (!isObj(cfg)) {
      t.r.error(bp, `must be a mapping with budget_limit (US dollars) and time_period (1d, 7d, 30d, 1mo, …), got ${describe(cfg)}`);
      continue;
    }
    // LiteLLM's BudgetConfig takes budget_limit or max_budget, time_period or budget_duration.
    for (const k of Object.keys(cfg)) {
      if (!['budget_limit', 'max_budget', 'time_period', 'budget_duration'].includes(k)) t.r.warn([...bp, k], 'not supported in a provider budget; ignored', true);
    }
    const limitKey = cfg.budget_limit !== undefined ? 'budget_limit' : 'max_budget';
    const periodKey = cfg.time_period !== undefined ? 'time_period' : 'budget_duration';
    const rawAmount = cfg[limitKey];
    if (rawAmount === undefined || rawAmount === null || amountOf(rawAmount) === 0) {
      t.r.warn(bp, `has no budget_limit${rawAmount === undefined || rawAmount === null ? '' : ' above 0'}: LiteLLM enforces none; left out`, true);
      continue;
    }
    const amount = amountOf(rawAmount);
    if (amount === undefined) {
      t.r.error([...bp, limitKey], `must be an amount of US dollars, got ${describe(rawAmount)}`);
      continue;
    }
    const rawPeriod = cfg[periodKey];
    if (rawPeriod === undefined || rawPeriod === null) {
      t.r.warn(bp, 'has no time_period: LiteLLM does not check a budget without one; left out', true);
      continue;
    }
    const period = mapPeriod(rawPeriod);
    if (period === undefined) {
      t.r.warn([...bp, periodKey], `${describe(rawPeriod)} is not a LiteLLM duration (1d, 7d, 30d, 1mo, …); this budget is left out`);
      continue;
    }
    const members = served.filter((s) => s.d.provider === provider);
    if (members.length === 0) {
      t.r.warn(bp, `no deployment the gateway serves uses provider ${provider}/; ignored`, true);
      continue;
    }
    const name = slug(provider);
    const unique = (xs: Served[]): string[] => [...new Set(xs.map((s) => s.backend))];
    const own = members.filter((s) => s.d.backend.engine === 'openai');
    const budget: NativeBudget = { amount: round(amount * period.scale), period: period.period };
    const path: KeyPath = ['budgets', name];
    if (provider === 'openai' && own.length > 0) {
      budget.engines = ['openai'];
      const servers = unique(members.filter((s) => s.d.backend.engine !== 'openai'));
      if (servers.length > 0) {
        t.note([...path, 'engines'], `OpenAI's own backends; not ${servers.join(', ')} (openai/ with an api_base: other servers), which LiteLLM would also stop while the budget is spent`);
        t.r.warn(bp, `covers OpenAI's own backends (engines: [openai]). LiteLLM counts openai/ deployments with an api_base (${servers.join(', ')}) as provider openai too ` +
          'and stops them while the budget is spent; here they are other servers and keep serving (list them under the budget\'s backends: to stop them too)', true);
      }
    } else {
      budget.backends = unique(members);
      if (provider === 'openai') t.note([...path, 'backends'], 'openai/ deployments with an api_base, which LiteLLM counts as provider openai (none of them is api.openai.com)');
      const free = budget.backends.filter((b) => doc.prices?.[b] === undefined && doc.backends[b]?.engine !== 'openai');
      if (free.length > 0) t.note([...path, 'backends'], `${free.join(', ')}: no input_cost_per_token, so their requests cost $0 and do not count, as in LiteLLM`);
    }
    budgets[name] = budget;
    t.from(path, bp);
    t.from([...path, 'amount'], [...bp, limitKey]);
    t.from([...path, 'period'], [...bp, periodKey]);
    t.note(path, `router_settings.provider_budget_config.${provider}: $${amount} per ${period.text}`);
    if (period.sameLength) {
      t.note([...path, 'period'], `${period.text}: a UTC calendar ${period.period} (${PERIOD_START[period.period]}), where LiteLLM counts ${period.text} from the budget's first spend`);
    } else {
      t.r.warn([...bp, periodKey], `${period.text} has no native period (day, week, month): written as $${budget.amount} per ${period.period}, the same rate, where LiteLLM allows $${amount} per ${period.text} from the first spend`);
      t.note([...path, 'period'], `${period.text} has no native period: $${amount} per ${period.text} scaled to a ${period.period}`);
    }
    const covered = new Set(budget.engines !== undefined ? own.map((s) => s.backend) : budget.backends);
    const other = Object.entries(doc.roles).find(([, r]) => r.kind === 'chat' && r.backends.every((b) => !covered.has(b) && doc.backends[b]?.engine !== 'openai'))?.[0];
    t.note(path, 'no fallback: LiteLLM has none for a spent budget. It skips these deployments and each model_name\'s fallbacks take over, as here; ' +
      `to send their requests to one role instead, add fallback: ROLE (a role on other backends${other === undefined ? '' : `, e.g. fallback: ${other}`})`);
  }
  if (Object.keys(budgets).length > 0) {
    doc.budgets = budgets;
    t.from(['budgets'], p);
  }
}

/**
 * litellm_settings.max_budget (with budget_duration): LiteLLM refuses every request once the
 * whole proxy has spent it. A native budget covers backends, roles or engines and passes a
 * spent one's backends over, so there is no equivalent: reported with the closest budget.
 */
export function readProxyBudget(t: Translation, ls: Obj, gs: Obj, doc: NativeDoc): void {
  const mbPath: KeyPath = ['litellm_settings', 'max_budget'];
  const bdPath: KeyPath = ['litellm_settings', 'budget_duration'];
  const mb = ls.max_budget;
  const bd = ls.budget_duration;
  const amount = mb === undefined || mb === null ? undefined : amountOf(mb);
  if (mb !== undefined && mb !== null) {
    if (amount === undefined) {
      t.r.error(mbPath, `must be an amount of US dollars, got ${describe(mb)}`);
    } else if (amount === 0) {
      t.header.push('litellm_settings.max_budget: 0 turns LiteLLM\'s proxy budget off; nothing to carry over');
    } else {
      const period = bd === undefined || bd === null ? undefined : mapPeriod(bd);
      const native = period === undefined ? 'total' : period.period;
      const suggested = round(amount * (period?.scale ?? 1));
      const priced = Object.keys(doc.backends).filter((b) => doc.prices?.[b] !== undefined || doc.backends[b]!.engine === 'openai');
      const per = bd === undefined || bd === null ? ' (never reset: no budget_duration)' : ` per ${typeof bd === 'string' ? bd : describe(bd)}`;
      t.r.warn(mbPath, `not supported yet: the gateway has no proxy-wide budget. LiteLLM refuses every request once the proxy has spent $${amount}${per}; ` +
        'a native budget covers backends, roles or engines and passes a spent one\'s backends over, so requests fall back to the others. ' +
        (priced.length === 0
          ? 'No backend here has a price, so nothing would count against one'
          : `Only priced backends spend: for the same cap on them write budgets: { proxy: { amount: ${suggested}, period: ${native}, backends: [${priced.join(', ')}] } }`), true);
    }
  }
  if (bd !== undefined && bd !== null) {
    if (amount === undefined || amount === 0) t.r.warn(bdPath, 'ignored without litellm_settings.max_budget, as in LiteLLM', true);
    else t.r.warn(bdPath, 'the period of litellm_settings.max_budget, which is not carried over (see there)', true);
  }
  for (const k of ['max_budget', 'budget_duration'] as const) {
    if (gs[k] !== undefined) t.r.warn(['general_settings', k], `not a general_settings key LiteLLM reads (the proxy-wide budget is litellm_settings.${k}); ignored, as by LiteLLM`, true);
  }
}

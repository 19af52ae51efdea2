// LiteLLM's settings sections — litellm_settings, router_settings, general_settings,
// environment_variables — read into router-wide defaults and the fabric's gateway block.
// Keys with no mapping are reported by name (sections.ts says what happens instead).

import type { KeyPath } from '../issues.ts';
import { describe, duration, isObj, nonNegInt, positive, seconds, type NativeDoc, type Obj, type Translation } from './context.ts';
import type { DeploymentDefaults } from './deployments.ts';
import { secretRef } from './secrets.ts';
import { DROP_PARAMS, GENERIC, MAPPED, UNSUPPORTED, type Section } from './sections.ts';

/** LiteLLM's own defaults, where they decide behaviour. */
export const LITELLM = { numRetries: 2, cooldownS: 5, maxFallbacks: 5, host: '0.0.0.0', port: 4000 } as const;

export function section(t: Translation, top: Obj, name: Section | 'environment_variables'): Obj {
  const v = top[name];
  if (v === undefined || v === null) return {};
  if (!isObj(v)) {
    t.r.error([name], `must be a mapping, got ${describe(v)}`);
    return {};
  }
  return v;
}

/** The value LiteLLM uses: router_settings wins over litellm_settings (it sets the Router; litellm_settings sets module defaults). */
export function pick(ls: Obj, rs: Obj, rsKey: string, lsKey = rsKey): { v: unknown; path: KeyPath } | undefined {
  const present = (x: unknown): boolean => x !== undefined && x !== null && !(Array.isArray(x) && x.length === 0);
  if (present(rs[rsKey])) return { v: rs[rsKey], path: ['router_settings', rsKey] };
  if (present(ls[lsKey])) return { v: ls[lsKey], path: ['litellm_settings', lsKey] };
  return undefined;
}

export function reportUnmapped(t: Translation, name: Section, obj: Obj): void {
  for (const k of Object.keys(obj)) {
    if ((MAPPED[name] as readonly string[]).includes(k)) continue;
    t.r.warn([name, k], UNSUPPORTED[name][k] ?? GENERIC, true);
  }
}

export function readEnvironmentVariables(t: Translation, envVars: Obj): void {
  for (const [k, v] of Object.entries(envVars)) {
    if (v === undefined || v === null) continue;
    if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(k)) {
      t.r.warn(['environment_variables', k], 'not an environment variable name; ignored', true);
      continue;
    }
    // Held like a literal secret: usable by os.environ/ references, never written out.
    t.literals.set(k, String(v));
    t.r.warn(['environment_variables', k], 'used where the environment does not set it; fabric config import does not copy the value: put it in the .env file', true);
  }
}

export function readDefaults(t: Translation, ls: Obj, rs: Obj): DeploymentDefaults {
  const nr = pick(ls, rs, 'num_retries');
  const retries = nr === undefined ? undefined : nonNegInt(t, nr.path, nr.v);
  const to = pick(ls, rs, 'timeout', 'request_timeout');
  const timeout = to === undefined ? undefined : seconds(t, to.path, to.v);
  const sto = rs.stream_timeout === undefined ? undefined : seconds(t, ['router_settings', 'stream_timeout'], rs.stream_timeout);
  const mpr = positive(t, ['router_settings', 'default_max_parallel_requests'], rs.default_max_parallel_requests);
  for (const k of ['fallbacks', 'context_window_fallbacks', 'default_fallbacks', 'num_retries', 'allowed_fails', 'cooldown_time', 'max_fallbacks'] as const) {
    const both = rs[k] !== undefined && rs[k] !== null && ls[k] !== undefined && ls[k] !== null;
    if (both) t.r.warn(['litellm_settings', k], `ignored: router_settings.${k} is set too and takes precedence, as in LiteLLM`, true);
  }
  if (rs.timeout !== undefined && ls.request_timeout !== undefined) t.r.warn(['litellm_settings', 'request_timeout'], 'ignored: router_settings.timeout is set too and takes precedence, as in LiteLLM', true);
  if (timeout === undefined) {
    t.header.push('no request_timeout or router timeout: deployments without their own timeout get the gateway\'s defaults (a stream\'s first token within 60s and each chunk within 30s; 10m for a whole request, streamed or not), where LiteLLM waits up to 6000s');
  }
  return {
    retries: retries === undefined ? { value: LITELLM.numRetries, path: undefined } : { value: retries, path: nr!.path },
    timeout: timeout === undefined ? undefined : { s: timeout, path: to!.path },
    streamTimeout: sto === undefined ? undefined : { s: sto, path: ['router_settings', 'stream_timeout'] },
    maxConnections: mpr === undefined ? undefined : { n: Math.max(1, Math.round(mpr)), path: ['router_settings', 'default_max_parallel_requests'] },
  };
}

export function readLogging(t: Translation, ls: Obj): void {
  if (ls.set_verbose === true) t.r.warn(['litellm_settings', 'set_verbose'], 'not a config setting here: run fabric serve --log-level debug');
  if (ls.json_logs === true) t.header.push('litellm_settings.json_logs: the gateway logs JSON lines whenever stdout is not a terminal (as under systemd or docker)');
  if (ls.drop_params === true) {
    t.r.warn(['litellm_settings', 'drop_params'], DROP_PARAMS);
  }
}

/**
 * allowed_fails / cooldown_time: LiteLLM cools a deployment down when its failures in the
 * current minute exceed allowed_fails, for cooldown_time seconds, never longer. The
 * gateway counts consecutive failures: failure_threshold = allowed_fails + 1, no doubling.
 */
export function readCooldown(t: Translation, ls: Obj, rs: Obj, doc: NativeDoc): void {
  const af = pick(ls, rs, 'allowed_fails');
  const ct = pick(ls, rs, 'cooldown_time');
  const fails = af === undefined ? undefined : nonNegInt(t, af.path, af.v);
  const cool = ct === undefined ? undefined : seconds(t, ct.path, ct.v);
  if (fails === undefined && cool === undefined) {
    t.header.push(`allowed_fails/cooldown_time not set: the gateway's defaults apply (cool a backend down after 3 consecutive failures, 30s doubling up to 5m), where LiteLLM uses ${LITELLM.cooldownS}s and its failure rate`);
    return;
  }
  const health: NonNullable<NativeDoc['gateway']['health']> = {};
  if (fails !== undefined) {
    health.failure_threshold = Math.min(fails + 1, 100);
    t.from(['gateway', 'health', 'failure_threshold'], af!.path);
    t.note(['gateway', 'health', 'failure_threshold'], `allowed_fails ${fails}: the failure after that many cools a backend down (LiteLLM counts a minute's failures, the gateway consecutive ones)`);
  }
  if (cool !== undefined) {
    health.cooldown = duration(Math.round(cool * 1000));
    health.max_cooldown = health.cooldown;
    t.from(['gateway', 'health', 'cooldown'], ct!.path);
    t.note(['gateway', 'health', 'cooldown'], `cooldown_time ${cool}s, each time (LiteLLM does not lengthen repeated cooldowns)`);
  }
  doc.gateway.health = health;
}

/**
 * alerting: [slack] (or webhook) → gateway.alerts. LiteLLM reads the URL from
 * SLACK_WEBHOOK_URL (WEBHOOK_URL) unless alert_to_webhook_url names one per alert type.
 */
function readAlerts(t: Translation, gs: Obj, g: NativeDoc['gateway']): void {
  const v = gs.alerting;
  if (v === undefined || v === null) {
    if (gs.alert_to_webhook_url !== undefined) t.r.warn(['general_settings', 'alert_to_webhook_url'], 'ignored without general_settings.alerting, as in LiteLLM', true);
    return;
  }
  const list = Array.isArray(v) ? v : [v];
  let chosen: { format: 'slack' | 'json'; env: string; kind: string } | undefined;
  list.forEach((a, i) => {
    const p: KeyPath = Array.isArray(v) ? ['general_settings', 'alerting', i] : ['general_settings', 'alerting'];
    const kind = a === 'slack' ? { format: 'slack' as const, env: 'SLACK_WEBHOOK_URL', kind: a } : a === 'webhook' ? { format: 'json' as const, env: 'WEBHOOK_URL', kind: a } : undefined;
    if (kind === undefined) t.r.warn(p, `not supported yet: ${describe(a)} alerts; the gateway alerts through one Slack or JSON webhook`);
    else if (chosen !== undefined) t.r.warn(p, `not supported yet: a second alert destination; alerts go to ${chosen.kind} only`);
    else chosen = kind;
  });
  if (chosen === undefined) return;
  let webhook: string | undefined;
  const per = gs.alert_to_webhook_url;
  if (isObj(per) && Object.keys(per).length > 0) {
    const [first, url] = Object.entries(per)[0]!;
    webhook = secretRef(t, ['general_settings', 'alert_to_webhook_url', first], url, chosen.env);
    if (new Set(Object.values(per).map((x) => JSON.stringify(x))).size > 1) {
      t.r.warn(['general_settings', 'alert_to_webhook_url'], `not supported yet: one webhook per alert type; every alert goes to ${first}'s`, true);
    }
    if (webhook !== undefined) t.from(['gateway', 'alerts', 'webhook'], ['general_settings', 'alert_to_webhook_url', first]);
  } else {
    if (per !== undefined) t.r.warn(['general_settings', 'alert_to_webhook_url'], `must be a mapping of alert type: webhook URL, got ${describe(per)}; ignored`, true);
    webhook = `env:${chosen.env}`;
    t.from(['gateway', 'alerts', 'webhook'], ['general_settings', 'alerting']);
    t.note(['gateway', 'alerts', 'webhook'], `${chosen.env}, where LiteLLM reads it`);
  }
  if (webhook === undefined) return;
  g.alerts = { webhook, format: chosen.format };
  t.note(['gateway', 'alerts'], `alerting: [${chosen.kind}]: the gateway alerts when a backend goes down or comes back; LiteLLM's other alert types (budgets, slow responses) are not sent`);
}

export function readGateway(t: Translation, gs: Obj, rs: Obj, doc: NativeDoc): void {
  const g = doc.gateway;
  g.host = LITELLM.host;
  t.note(['gateway', 'host'], 'LiteLLM listens on every interface; use 127.0.0.1 to keep the gateway local');
  g.port = LITELLM.port;
  t.note(['gateway', 'port'], 'LiteLLM\'s default; fabric serve --port overrides it, as litellm --port did');
  const mk = secretRef(t, ['general_settings', 'master_key'], gs.master_key, 'LITELLM_MASTER_KEY');
  if (mk !== undefined) {
    g.master_key = mk;
    t.from(['gateway', 'master_key'], ['general_settings', 'master_key']);
  } else {
    t.note(['gateway', 'host'], 'no general_settings.master_key: like LiteLLM, the gateway accepts requests without a key');
  }
  readAlerts(t, gs, g);
  const hci = seconds(t, ['general_settings', 'health_check_interval'], gs.health_check_interval);
  if (hci !== undefined) {
    g.health_interval = duration(Math.round(hci * 1000));
    t.from(['gateway', 'health_interval'], ['general_settings', 'health_check_interval']);
  }
  const at = seconds(t, ['general_settings', 'alerting_threshold'], gs.alerting_threshold);
  if (at !== undefined) {
    g.health = { ...g.health, slow: duration(Math.round(at * 1000)) };
    t.from(['gateway', 'health', 'slow'], ['general_settings', 'alerting_threshold']);
    t.note(['gateway', 'health', 'slow'], `alerting_threshold ${at}s: a backend whose p95 latency (streams: time to first token) over the last 5 minutes passes it is a warning, sent to the alert webhook (LiteLLM alerts on each request that takes longer)`);
  }
  if (gs.background_health_checks === false) t.r.warn(['general_settings', 'background_health_checks'], 'not supported: the gateway always probes its backends in the background (every health_check_interval, default 60s)');
  const ra = seconds(t, ['router_settings', 'retry_after'], rs.retry_after);
  if (ra !== undefined) {
    // The gateway's backoff sleeps between base/2 and base, doubling per retry: base = 2 × retry_after keeps LiteLLM's minimum wait.
    const base = Math.round(ra * 2000);
    g.retry = { base: duration(base), max: duration(Math.max(base, 2_000)) };
    t.from(['gateway', 'retry'], ['router_settings', 'retry_after']);
    t.note(['gateway', 'retry'], `retry_after ${ra}s: at least that long between retries`);
  }
  // Keys in reading order for the imported file; health and limits were set earlier.
  const { health, limits, ...rest } = g;
  doc.gateway = { ...rest, ...(health === undefined ? {} : { health }), ...(limits === undefined ? {} : { limits }) };
}

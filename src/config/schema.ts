// Validates a parsed YAML document into a FabricConfig. Every problem is reported with its
// key path (the loader turns paths into file:line:col), and validation carries on past the
// first error so one `fabric config check` run shows them all.

import { GO_MAX_DURATION_MS, parseDuration, parseGoDuration, parseSize } from './units.ts';
import { suggest, type KeyPath } from './issues.ts';
import { NODE_DEPLOY_KEYS, checkServePorts, nodeDeploy, serveBlock } from './serve.ts';
import { STATE_GATEWAY_KEYS, budgets, gatewayState, prices } from './state.ts';
import {
  ENGINE_KINDS, KIND_NAMES, NODE_POWER, ROLE_KINDS, STRATEGIES, DEFAULT_TIMEOUTS, defaultGateway, ALERT_FORMATS, ALERT_LEVELS, roleByName,
  isLoopbackHost, ollamaNumCtx, type AlertsConfig, type BackendConfig, type EngineKind, type FabricConfig, type GatewayConfig, type GpuSpec, type HealthPolicy, type NodeConfig,
  type PatternRoute, type RoleConfig, type RoleKind, type RoleRule, INPUT_FEATURES, type SecretRef, type Timeouts, type TracingConfig, type WolTarget,
  CACHE_BACKEND, CACHE_STORES, CACHE_WHEN, CACHE_SCOPES, type CacheConfig, type CachePolicy,
} from './types.ts';

export interface Reporter {
  error(path: KeyPath, message: string, onKey?: boolean): void;
  warn(path: KeyPath, message: string, onKey?: boolean): void;
}

type Obj = Record<string, unknown>;

export function isObj(v: unknown): v is Obj {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Checks `v` is a mapping and that it holds only `allowed` keys. */
export function mapping(r: Reporter, path: KeyPath, v: unknown, allowed: readonly string[]): Obj | undefined {
  if (v === undefined || v === null) return undefined;
  if (!isObj(v)) {
    r.error(path, `must be a mapping, got ${describe(v)}`);
    return undefined;
  }
  for (const k of Object.keys(v)) {
    if (!allowed.includes(k)) {
      const hint = suggest(k, allowed);
      r.error([...path, k], `unknown key${hint === undefined ? '' : ` (did you mean "${hint}"?)`}; allowed: ${allowed.join(', ')}`, true);
    }
  }
  return v;
}

/** A string as a message quotes it: JSON, cut short when long (a pasted certificate or file is no part of a message). */
export function quoted(s: string, max = 80): string {
  return s.length <= max ? JSON.stringify(s) : `${JSON.stringify(s.slice(0, max))}… (${s.length} characters)`;
}

export function describe(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'a list';
  if (typeof v === 'object') return 'a mapping';
  return `${typeof v} ${typeof v === 'string' ? quoted(v) : JSON.stringify(v)}`;
}

export function str(r: Reporter, path: KeyPath, v: unknown, required: true): string;
export function str(r: Reporter, path: KeyPath, v: unknown, required?: false): string | undefined;
export function str(r: Reporter, path: KeyPath, v: unknown, required = false): string | undefined {
  if (v === undefined || v === null) {
    if (required) r.error(path, 'is required');
    return required ? '' : undefined;
  }
  if (typeof v === 'number') return String(v);
  if (typeof v !== 'string' || v.trim() === '') {
    r.error(path, `must be a non-empty string, got ${describe(v)}`);
    return required ? '' : undefined;
  }
  return v;
}

export function bool(r: Reporter, path: KeyPath, v: unknown, dflt: boolean): boolean {
  if (v === undefined || v === null) return dflt;
  if (typeof v !== 'boolean') {
    r.error(path, `must be true or false, got ${describe(v)}`);
    return dflt;
  }
  return v;
}

export function oneOf<T extends string>(r: Reporter, path: KeyPath, v: unknown, values: readonly T[], dflt: T): T {
  if (v === undefined || v === null) return dflt;
  if (typeof v === 'string' && (values as readonly string[]).includes(v)) return v as T;
  const hint = typeof v === 'string' ? suggest(v, values) : undefined;
  r.error(path, `must be one of ${values.join(', ')}, got ${describe(v)}${hint === undefined ? '' : ` (did you mean "${hint}"?)`}`);
  return dflt;
}

export function int(r: Reporter, path: KeyPath, v: unknown, dflt: number, min: number, max = Number.MAX_SAFE_INTEGER): number {
  if (v === undefined || v === null) return dflt;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) {
    r.error(path, `${max === Number.MAX_SAFE_INTEGER ? `must be an integer of at least ${min}` : `must be an integer from ${min} to ${max}`}, got ${describe(v)}`);
    return dflt;
  }
  return v;
}

function optInt(r: Reporter, path: KeyPath, v: unknown, min: number): number | undefined {
  if (v === undefined || v === null) return undefined;
  return int(r, path, v, 0, min);
}

export function duration(r: Reporter, path: KeyPath, v: unknown, dflt: number): number {
  if (v === undefined || v === null) return dflt;
  const ms = parseDuration(v);
  if (ms === undefined) {
    r.error(path, `must be a duration such as 500ms, 30s, 5m (a bare number is milliseconds), got ${describe(v)}`);
    return dflt;
  }
  // LiteLLM's timeouts are seconds: a bare 600 here would be 0.6 s.
  if (ms !== 0 && (typeof v === 'number' || /^\s*[\d.]+\s*$/.test(String(v)))) {
    r.warn(path, `a bare number is milliseconds: ${String(v).trim()} is ${ms >= 1000 ? `${ms / 1000} s` : `${ms} ms`}; write ${String(v).trim()}ms to say so, or ${String(v).trim()}s if seconds were meant`);
  }
  return ms;
}

export function size(r: Reporter, path: KeyPath, v: unknown, dflt: number): number {
  if (v === undefined || v === null) return dflt;
  const b = parseSize(v);
  if (b === undefined) {
    r.error(path, `must be a size such as 16KiB, 8MiB, 8GiB (a bare number is bytes), got ${describe(v)}`);
    return dflt;
  }
  return b;
}

export function list(r: Reporter, path: KeyPath, v: unknown): unknown[] {
  if (v === undefined || v === null) return [];
  if (typeof v === 'string') return [v];
  if (!Array.isArray(v)) {
    r.error(path, `must be a list, got ${describe(v)}`);
    return [];
  }
  return v;
}

export function strList(r: Reporter, path: KeyPath, v: unknown): string[] {
  const out: string[] = [];
  list(r, path, v).forEach((item, i) => {
    const s = str(r, [...path, i], item, true);
    if (s !== '') out.push(s);
  });
  return out;
}

const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
const SECRET_FORMS = [/^env:(.+)$/, /^\$\{(.+)\}$/, /^os\.environ\/(.+)$/];

/**
 * A secret is written as a reference to an environment variable (env:NAME, ${NAME} or
 * LiteLLM's os.environ/NAME). A literal value is refused: configs get committed and
 * pasted into issues, and a key in one would leak.
 */
export function secret(r: Reporter, path: KeyPath, v: unknown): SecretRef | undefined {
  if (v === undefined || v === null) return undefined;
  if (isObj(v)) {
    const m = mapping(r, path, v, ['env']);
    const name = m === undefined ? undefined : str(r, [...path, 'env'], m.env, true);
    if (name !== undefined && name !== '' && !ENV_NAME.test(name)) r.error([...path, 'env'], 'must be an environment variable name');
    return name ? { env: name } : undefined;
  }
  if (typeof v === 'string') {
    for (const re of SECRET_FORMS) {
      const m = re.exec(v.trim());
      if (m !== null) {
        if (!ENV_NAME.test(m[1]!)) {
          r.error(path, 'must name an environment variable (letters, digits, underscore)');
          return undefined;
        }
        return { env: m[1]! };
      }
    }
    r.error(path, 'must reference a secret, not contain it: write env:NAME (or ${NAME}) and put the value in the environment or the .env file');
    return undefined;
  }
  r.error(path, `must be a secret reference such as env:NAME, got ${describe(v)}`);
  return undefined;
}

function url(r: Reporter, path: KeyPath, v: unknown): string {
  const s = str(r, path, v, true);
  if (s === '') return '';
  let u: URL;
  try {
    u = new URL(s);
  } catch {
    r.error(path, `is not a valid URL: ${quoted(s)}`);
    return '';
  }
  // The value, not its scheme alone ("got ftp:" read as a value cut short).
  if (u.protocol !== 'http:' && u.protocol !== 'https:') r.error(path, `must be an http:// or https:// URL, got ${quoted(s)}`);
  if (u.username !== '' || u.password !== '') r.error(path, 'must not carry credentials; use api_key with an env: reference');
  if (u.search !== '' || u.hash !== '') r.error(path, 'must not have a query or fragment');
  return s.replace(/\/+$/, '');
}

function timeouts(r: Reporter, path: KeyPath, v: unknown, base: Timeouts): Timeouts {
  const m = mapping(r, path, v, ['connect', 'first_byte', 'idle', 'total']);
  if (m === undefined) return { ...base };
  return {
    connectMs: duration(r, [...path, 'connect'], m.connect, base.connectMs),
    firstByteMs: duration(r, [...path, 'first_byte'], m.first_byte, base.firstByteMs),
    idleMs: duration(r, [...path, 'idle'], m.idle, base.idleMs),
    totalMs: duration(r, [...path, 'total'], m.total, base.totalMs),
  };
}

/** failure_threshold / cooldown / max_cooldown, over `base`; shared by gateway.health and backends.NAME.health. */
function healthPolicy(r: Reporter, path: KeyPath, m: Obj, base: HealthPolicy): HealthPolicy {
  const p: HealthPolicy = {
    failureThreshold: int(r, [...path, 'failure_threshold'], m.failure_threshold, base.failureThreshold, 1, 100),
    cooldownMs: duration(r, [...path, 'cooldown'], m.cooldown, base.cooldownMs),
    maxCooldownMs: duration(r, [...path, 'max_cooldown'], m.max_cooldown, base.maxCooldownMs),
  };
  const slow = m.slow === 'off' || m.slow === false ? undefined : m.slow === undefined ? base.slowMs : duration(r, [...path, 'slow'], m.slow, 0);
  if (slow !== undefined) p.slowMs = slow;
  if (slow === 0) r.error([...path, 'slow'], 'must be a duration above 0 such as 10s, or off');
  if (m.max_cooldown === undefined && p.maxCooldownMs < p.cooldownMs) p.maxCooldownMs = p.cooldownMs;
  if (p.maxCooldownMs < p.cooldownMs) r.error([...path, 'max_cooldown'], `must be at least the cooldown (${p.cooldownMs} ms)`);
  return p;
}

const HEALTH_POLICY_KEYS = ['failure_threshold', 'cooldown', 'max_cooldown', 'slow'] as const;

function alerts(r: Reporter, v: unknown): AlertsConfig | undefined {
  const p = ['gateway', 'alerts'];
  const m = mapping(r, p, v, ['webhook', 'format', 'interval', 'min_interval', 'notify']);
  if (m === undefined) return undefined;
  let webhook: AlertsConfig['webhook'] | undefined;
  const w = m.webhook;
  if (w === undefined || w === null) r.error([...p, 'webhook'], 'is required: env:NAME (recommended: a Slack webhook URL is a secret) or an http(s) URL');
  else if (typeof w === 'string' && /^https?:\/\//i.test(w.trim())) {
    // Not url(): webhook URLs may carry their token in the query (Google Chat, some relays).
    try {
      webhook = { url: new URL(w.trim()).href };
    } catch {
      r.error([...p, 'webhook'], `is not a valid URL: ${JSON.stringify(w)}`);
    }
  }
  else webhook = secret(r, [...p, 'webhook'], w);
  const out: AlertsConfig = {
    webhook: webhook ?? { url: '' },
    format: oneOf(r, [...p, 'format'], m.format, ALERT_FORMATS, 'slack'),
    intervalMs: duration(r, [...p, 'interval'], m.interval, 30_000),
    minIntervalMs: duration(r, [...p, 'min_interval'], m.min_interval, 60_000),
    notify: oneOf(r, [...p, 'notify'], m.notify, ALERT_LEVELS, 'warning'),
  };
  if (out.intervalMs < 100) r.error([...p, 'interval'], 'must be at least 100ms');
  return webhook === undefined ? undefined : out;
}

/** Header names whose value is a credential: never written in the config itself. */
const CREDENTIAL_HEADER = /authorization|token|key|secret|password/i;

function tracing(r: Reporter, v: unknown): TracingConfig | undefined {
  const p = ['gateway', 'tracing'];
  const m = mapping(r, p, v, ['endpoint', 'headers', 'sample', 'service_name']);
  if (m === undefined) return undefined;
  if (m.endpoint === undefined || m.endpoint === null) r.error([...p, 'endpoint'], 'is required: the OTLP/HTTP collector, e.g. http://127.0.0.1:4318');
  let endpoint = m.endpoint === undefined || m.endpoint === null ? '' : url(r, [...p, 'endpoint'], m.endpoint);
  // A collector's base URL (OTEL_EXPORTER_OTLP_ENDPOINT's form, e.g. Grafana Cloud's …/otlp) gets
  // the traces path, as OTel SDKs add it; a URL that ends with it is taken as written.
  if (endpoint !== '' && !/\/v1\/traces$/.test(new URL(endpoint).pathname)) endpoint = endpoint.replace(/\/+$/, '') + '/v1/traces';
  const headers: TracingConfig['headers'] = [];
  if (m.headers !== undefined && m.headers !== null && !isObj(m.headers)) r.error([...p, 'headers'], `must be a mapping of header names to values, got ${describe(m.headers)}`);
  else if (isObj(m.headers)) {
    for (const [name, value] of Object.entries(m.headers)) {
      const hp = [...p, 'headers', name];
      if (!/^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/.test(name)) { r.error(hp, 'is not a valid header name'); continue; }
      const literal = typeof value === 'string' && !/^(env:|\$\{|os\.environ\/)/.test(value.trim());
      if (literal && !CREDENTIAL_HEADER.test(name)) { headers.push([name, value]); continue; }
      const ref = secret(r, hp, value);
      if (ref !== undefined) headers.push([name, ref]);
    }
  }
  let sample = 1;
  if (m.sample !== undefined && m.sample !== null) {
    if (typeof m.sample !== 'number' || !(m.sample >= 0 && m.sample <= 1)) r.error([...p, 'sample'], `must be a number from 0 to 1 (the share of requests traced), got ${describe(m.sample)}`);
    else sample = m.sample;
  }
  const serviceName = m.service_name === undefined ? 'ai-fabric' : str(r, [...p, 'service_name'], m.service_name, true);
  if (endpoint === '') return undefined;
  return { endpoint, headers, sample, serviceName: serviceName || 'ai-fabric' };
}

const CACHE_POLICY_KEYS = ['ttl', 'when'] as const;

/** A cache entry's lifetime: at least a second (a shorter one is a typo: a bare number is milliseconds). */
function cacheTtl(r: Reporter, path: KeyPath, v: unknown, dflt: number): number {
  // -1: absent, or not a duration (already reported).
  const ms = duration(r, path, v, -1);
  if (ms === -1) return dflt;
  if (ms < 1_000) r.error(path, `must be at least 1s, got ${describe(v)}`);
  return ms;
}

function cache(r: Reporter, v: unknown, redis: boolean): CacheConfig | undefined {
  const p = ['gateway', 'cache'];
  // `cache: true` for every default, `cache: false` (or nothing) for none.
  if (v === true) v = {};
  if (v === false) return undefined;
  const m = mapping(r, p, v, [...CACHE_POLICY_KEYS, 'scope', 'store', 'max_size', 'max_entry']);
  if (m === undefined) return undefined;
  const store = oneOf(r, [...p, 'store'], m.store, CACHE_STORES, redis ? 'redis' : 'memory');
  if (store === 'redis' && !redis) r.error([...p, 'store'], 'is redis, but gateway.redis is not set: give it the server (redis: { url: env:REDIS_URL }), or use store: memory');
  const out: CacheConfig = {
    ttlMs: cacheTtl(r, [...p, 'ttl'], m.ttl, 3_600_000),
    when: oneOf(r, [...p, 'when'], m.when, CACHE_WHEN, 'deterministic'),
    scope: oneOf(r, [...p, 'scope'], m.scope, CACHE_SCOPES, 'key'),
    store,
    maxSizeBytes: size(r, [...p, 'max_size'], m.max_size, 64 * 2 ** 20),
    maxEntryBytes: size(r, [...p, 'max_entry'], m.max_entry, 2 ** 20),
  };
  if (out.maxEntryBytes > out.maxSizeBytes) r.error([...p, 'max_entry'], `must be at most max_size (${out.maxSizeBytes} bytes)`);
  return out;
}

/** A role's `cache`: false (off for it), or its own ttl and when. */
function roleCache(r: Reporter, path: KeyPath, v: unknown): RoleConfig['cache'] {
  if (v === undefined || v === null || v === true) return undefined;
  if (v === false || v === 'off') return false;
  const m = mapping(r, path, v, CACHE_POLICY_KEYS);
  if (m === undefined) return undefined;
  const out: Partial<CachePolicy> = {};
  if (m.ttl !== undefined) out.ttlMs = cacheTtl(r, [...path, 'ttl'], m.ttl, 0);
  if (m.when !== undefined) out.when = oneOf(r, [...path, 'when'], m.when, CACHE_WHEN, 'deterministic');
  return out;
}

/** An origin as browsers send it: scheme://host[:port], nothing after. */
const ORIGIN = /^[a-z][a-z0-9+.-]*:\/\/[^/?#\s]+$/i;

function cors(r: Reporter, v: unknown): ReadonlySet<string> | '*' | undefined {
  const p = ['gateway', 'cors'];
  const m = mapping(r, p, v, ['origins']);
  if (m === undefined) return undefined;
  const origins = strList(r, [...p, 'origins'], m.origins);
  if (origins.length === 0) r.error([...p, 'origins'], 'list the browser origins allowed to call the gateway (e.g. http://localhost:3000), or "*" for any');
  if (origins.includes('*')) return '*';
  origins.forEach((o, i) => {
    // "null": what file:// pages, sandboxed frames and some app shells send as their origin.
    if (o !== 'null' && !ORIGIN.test(o)) {
      r.error([...p, 'origins', i], `${JSON.stringify(o)} is not an origin: scheme://host[:port], with no path${o.endsWith('/') ? ` (drop the trailing "/": ${o.replace(/\/+$/, '')})` : ''}`);
    }
  });
  // Browsers send the scheme and host in lower case.
  return new Set(origins.map((o) => o.toLowerCase()));
}

function gateway(r: Reporter, v: unknown): GatewayConfig {
  const g = defaultGateway();
  const m = mapping(r, ['gateway'], v, ['host', 'port', 'tls', 'master_key', 'env_file', 'limits', 'retry', 'health_interval', 'workers', 'fast_lane', 'realtime', 'cors', 'health', 'wake', 'alerts', 'tracing', 'cache', ...STATE_GATEWAY_KEYS]);
  if (m === undefined) return g;
  g.host = str(r, ['gateway', 'host'], m.host) ?? g.host;
  g.port = int(r, ['gateway', 'port'], m.port, g.port, 0, 65535);
  const tls = mapping(r, ['gateway', 'tls'], m.tls, ['cert', 'key']);
  if (tls !== undefined) g.tls = { cert: str(r, ['gateway', 'tls', 'cert'], tls.cert, true), key: str(r, ['gateway', 'tls', 'key'], tls.key, true) };
  g.masterKey = secret(r, ['gateway', 'master_key'], m.master_key);
  g.envFile = str(r, ['gateway', 'env_file'], m.env_file);
  g.healthIntervalMs = duration(r, ['gateway', 'health_interval'], m.health_interval, g.healthIntervalMs);
  g.workers = int(r, ['gateway', 'workers'], m.workers, g.workers, 1, 64);
  g.fastLane = bool(r, ['gateway', 'fast_lane'], m.fast_lane, g.fastLane);
  g.realtime = bool(r, ['gateway', 'realtime'], m.realtime, g.realtime);
  g.corsOrigins = cors(r, m.cors);
  const lp = ['gateway', 'limits'];
  const l = mapping(r, lp, m.limits, ['max_body', 'max_audio', 'max_body_in_flight', 'max_header', 'max_tokens', 'max_n', 'max_best_of', 'max_prompts', 'max_documents', 'max_attempts']);
  if (l !== undefined) {
    g.limits.maxBodyBytes = size(r, [...lp, 'max_body'], l.max_body, g.limits.maxBodyBytes);
    g.limits.maxAudioBytes = size(r, [...lp, 'max_audio'], l.max_audio, g.limits.maxAudioBytes);
    g.limits.maxBodyInFlightBytes = size(r, [...lp, 'max_body_in_flight'], l.max_body_in_flight, g.limits.maxBodyInFlightBytes);
    if (g.limits.maxBodyInFlightBytes < g.limits.maxBodyBytes) r.error([...lp, 'max_body_in_flight'], `must be at least max_body (${g.limits.maxBodyBytes} bytes): one whole body must fit`);
    else if (g.limits.maxBodyInFlightBytes < g.limits.maxAudioBytes) {
      // An upload must fit in what the gateway buffers: the default gives way to a smaller budget; one set says so.
      if (l.max_audio === undefined) g.limits.maxAudioBytes = g.limits.maxBodyInFlightBytes;
      else r.error([...lp, 'max_audio'], `must be at most max_body_in_flight (${g.limits.maxBodyInFlightBytes} bytes): one whole upload must fit`);
    }
    g.limits.maxHeaderBytes = size(r, [...lp, 'max_header'], l.max_header, g.limits.maxHeaderBytes);
    g.limits.maxTokens = int(r, [...lp, 'max_tokens'], l.max_tokens, g.limits.maxTokens, 1);
    g.limits.maxN = int(r, [...lp, 'max_n'], l.max_n, g.limits.maxN, 1);
    g.limits.maxBestOf = int(r, [...lp, 'max_best_of'], l.max_best_of, g.limits.maxBestOf, 1);
    g.limits.maxPrompts = int(r, [...lp, 'max_prompts'], l.max_prompts, g.limits.maxPrompts, 1);
    g.limits.maxDocuments = int(r, [...lp, 'max_documents'], l.max_documents, g.limits.maxDocuments, 1);
    g.limits.maxAttempts = int(r, [...lp, 'max_attempts'], l.max_attempts, g.limits.maxAttempts, 1, 50);
  }
  const rt = mapping(r, ['gateway', 'retry'], m.retry, ['base', 'max']);
  if (rt !== undefined) {
    g.retryBaseMs = duration(r, ['gateway', 'retry', 'base'], rt.base, g.retryBaseMs);
    g.retryMaxMs = duration(r, ['gateway', 'retry', 'max'], rt.max, g.retryMaxMs);
  }
  const hp = ['gateway', 'health'];
  const h = mapping(r, hp, m.health, [...HEALTH_POLICY_KEYS, 'probe_timeout', 'load_interval']);
  if (h !== undefined) {
    g.health = {
      ...healthPolicy(r, hp, h, g.health),
      probeTimeoutMs: duration(r, [...hp, 'probe_timeout'], h.probe_timeout, g.health.probeTimeoutMs),
      loadIntervalMs: duration(r, [...hp, 'load_interval'], h.load_interval, g.health.loadIntervalMs),
    };
    if (g.health.probeTimeoutMs < 1) r.error([...hp, 'probe_timeout'], 'must be at least 1ms');
  }
  const wp = ['gateway', 'wake'];
  const w = mapping(r, wp, m.wake, ['enabled', 'min_interval', 'boot_timeout']);
  if (w !== undefined) {
    if (w.enabled !== undefined && typeof w.enabled !== 'boolean') r.error([...wp, 'enabled'], `must be true or false, got ${describe(w.enabled)}`);
    g.wake = {
      enabled: w.enabled === true,
      minIntervalMs: duration(r, [...wp, 'min_interval'], w.min_interval, g.wake.minIntervalMs),
      bootTimeoutMs: duration(r, [...wp, 'boot_timeout'], w.boot_timeout, g.wake.bootTimeoutMs),
    };
  }
  g.alerts = alerts(r, m.alerts);
  g.tracing = tracing(r, m.tracing);
  gatewayState(r, m, g);
  g.cache = cache(r, m.cache, g.redis !== undefined);
  // Sandboxed frames of any site send Origin: null: listed on a gateway without a key, it would be "*".
  if (g.corsOrigins instanceof Set && g.corsOrigins.has('null') && g.masterKey === undefined) {
    const i = Array.isArray((m.cors as { origins?: unknown } | undefined)?.origins) ? ((m.cors as { origins: unknown[] }).origins).indexOf('null') : -1;
    r.warn(['gateway', 'cors', 'origins', ...(i === -1 ? [] : [i])], '"null" is the origin of sandboxed frames on any site, so without a master key it is refused (it would let any site call the gateway); set gateway.master_key');
  }
  return g;
}

const MAC = /^[0-9a-f]{2}([:-]?)(?:[0-9a-f]{2}\1){4}[0-9a-f]{2}$/i;
const IPV4 = /^(25[0-5]|2[0-4]\d|1?\d?\d)(\.(25[0-5]|2[0-4]\d|1?\d?\d)){3}$/;

function wol(r: Reporter, path: KeyPath, v: unknown): WolTarget | undefined {
  const m = mapping(r, path, v, ['mac', 'broadcast', 'port']);
  if (m === undefined) return undefined;
  const mac = str(r, [...path, 'mac'], m.mac, true);
  if (mac !== '' && !MAC.test(mac)) r.error([...path, 'mac'], `must be a MAC address such as aa:bb:cc:dd:ee:ff, got ${describe(m.mac)}`);
  const broadcast = str(r, [...path, 'broadcast'], m.broadcast) ?? '255.255.255.255';
  if (!IPV4.test(broadcast)) r.error([...path, 'broadcast'], `must be an IPv4 broadcast address such as 192.168.1.255, got ${describe(m.broadcast)}`);
  return { mac, broadcast, port: int(r, [...path, 'port'], m.port, 9, 1, 65535) };
}

function nodes(r: Reporter, v: unknown): Map<string, NodeConfig> {
  const out = new Map<string, NodeConfig>();
  const m = mapping(r, ['nodes'], v, Object.keys(isObj(v) ? v : {}));
  if (m === undefined) return out;
  for (const [name, raw] of Object.entries(m)) {
    const p = ['nodes', name];
    const n = mapping(r, p, raw, ['power', 'address', 'gpus', 'description', 'wol', ...NODE_DEPLOY_KEYS]);
    if (n === undefined) {
      if (raw === null || raw === undefined) r.error(p, 'must be a mapping with at least power');
      continue;
    }
    const gpus: GpuSpec[] = [];
    list(r, [...p, 'gpus'], n.gpus).forEach((g, i) => {
      const gp = [...p, 'gpus', i];
      const gm = mapping(r, gp, g, ['model', 'memory', 'reserved']);
      if (gm === undefined) return;
      const memory = size(r, [...gp, 'memory'], gm.memory, 0);
      if (gm.memory === undefined) r.error([...gp, 'memory'], 'is required (e.g. 8GiB)');
      else if (memory <= 0 && parseSize(gm.memory) !== undefined) r.error([...gp, 'memory'], `must be more than 0, got ${describe(gm.memory)}`);
      const gpu: GpuSpec = { model: str(r, [...gp, 'model'], gm.model, true), memoryBytes: memory };
      if (gm.reserved !== undefined) {
        gpu.reservedBytes = size(r, [...gp, 'reserved'], gm.reserved, 0);
        if (memory > 0 && gpu.reservedBytes >= memory) r.error([...gp, 'reserved'], `must be less than the GPU's memory (${String(gm.memory)}), got ${String(gm.reserved)}`);
      }
      gpus.push(gpu);
    });
    const node: NodeConfig = {
      name,
      power: oneOf(r, [...p, 'power'], n.power, NODE_POWER, 'always-on'),
      address: str(r, [...p, 'address'], n.address),
      gpus,
    };
    const wake = wol(r, [...p, 'wol'], n.wol);
    if (wake !== undefined) node.wol = wake;
    Object.assign(node, nodeDeploy(r, p, n));
    out.set(name, node);
  }
  return out;
}

const BACKEND_KEYS = [
  'engine', 'node', 'url', 'model', 'api_key', 'context_window', 'keep_alive', 'weight', 'max_retries', 'max_connections', 'timeouts', 'aliases', 'simulated',
  'formerly', 'health', 'cloud', 'serve',
] as const;

/**
 * An Ollama backend's keep_alive, in seconds for Ollama's API: a duration with its unit as Go
 * writes them (30s, 10m, 1h30m; negative means for good, as in Ollama), a day count (1d), or
 * forever (-1). A bare number is refused but for 0 and -1: Ollama reads one as seconds, and
 * this file reads bare durations as milliseconds.
 */
function keepAliveSeconds(r: Reporter, path: KeyPath, v: unknown, engine: EngineKind | undefined): number | undefined {
  if (v === undefined || v === null) return undefined;
  if (engine !== undefined && engine !== 'ollama') {
    r.error(path, `applies to Ollama backends only (how long Ollama keeps the model loaded); this backend's engine is ${engine}`, true);
    return undefined;
  }
  if (v === -1 || v === 'forever' || v === '-1') return -1;
  if (v === 0 || v === '0') return 0;
  const text = typeof v === 'string' ? v.trim() : '';
  const ms = text === '' || !/[a-z]$/i.test(text) ? undefined : parseGoDuration(text) ?? parseDuration(text);
  if (ms === undefined) {
    const hint = typeof v === 'number' ? ` (write ${v}s for ${v} seconds, as Ollama reads a bare number)` : '';
    r.error(path, `must be a duration with its unit such as 30s, 10m, 1h30m, 1d, or forever (also -1), or 0 to unload after each request; got ${describe(v)}${hint}`);
    return undefined;
  }
  // Past Go's longest duration Ollama's decoding overflows.
  if (ms > GO_MAX_DURATION_MS) {
    r.error(path, `is longer than Ollama can take (about 292 years); write forever`);
    return undefined;
  }
  return ms < 0 ? -1 : Math.ceil(ms / 1000);
}

function backends(r: Reporter, v: unknown, nodeMap: Map<string, NodeConfig>, policy: HealthPolicy): Map<string, BackendConfig> {
  const out = new Map<string, BackendConfig>();
  if (v === undefined || v === null) {
    r.error(['backends'], 'is required: at least one backend');
    return out;
  }
  const m = mapping(r, ['backends'], v, Object.keys(isObj(v) ? v : {}));
  if (m === undefined) return out;
  for (const [name, raw] of Object.entries(m)) {
    const p = ['backends', name];
    const b = mapping(r, p, raw, BACKEND_KEYS);
    if (b === undefined) {
      r.error(p, 'must be a mapping with engine, url and model');
      continue;
    }
    const engine = b.engine === undefined ? (r.error([...p, 'engine'], `is required: one of ${ENGINE_KINDS.join(', ')}`), 'openai-compatible' as const)
      : oneOf(r, [...p, 'engine'], b.engine, ENGINE_KINDS, 'openai-compatible');
    // A missing or mistyped engine is reported once; checks that depend on the engine are
    // skipped rather than run against the stand-in, whose complaints the user never caused.
    const engineKnown = (ENGINE_KINDS as readonly unknown[]).includes(b.engine);
    const node = str(r, [...p, 'node'], b.node);
    if (node !== undefined && !nodeMap.has(node)) {
      const hint = suggest(node, nodeMap.keys());
      r.error([...p, 'node'], `names a node that is not defined under nodes: "${node}"${hint === undefined ? '' : ` (did you mean "${hint}"?)`}`);
    }
    let backendUrl: string;
    if (b.url === undefined && engine === 'openai') backendUrl = 'https://api.openai.com/v1';
    else if (b.url === undefined && !engineKnown) backendUrl = ''; // whether one is needed depends on the engine
    else backendUrl = url(r, [...p, 'url'], b.url);
    const apiKey = secret(r, [...p, 'api_key'], b.api_key);
    if (engine === 'openai' && apiKey === undefined) r.error([...p, 'api_key'], 'is required for engine openai (e.g. env:OPENAI_API_KEY)');
    const hm = mapping(r, [...p, 'health'], b.health, HEALTH_POLICY_KEYS);
    if (b.cloud !== undefined && typeof b.cloud !== 'boolean') r.error([...p, 'cloud'], `must be true or false, got ${describe(b.cloud)}`);
    const keepAlive = keepAliveSeconds(r, [...p, 'keep_alive'], b.keep_alive, engineKnown ? engine : undefined);
    const formerly = strList(r, [...p, 'formerly'], b.formerly);
    out.set(name, {
      ...(formerly.length === 0 ? {} : { formerly }),
      ...(keepAlive === undefined ? {} : { keepAliveSeconds: keepAlive }),
      health: hm === undefined
        ? { failureThreshold: policy.failureThreshold, cooldownMs: policy.cooldownMs, maxCooldownMs: policy.maxCooldownMs, ...(policy.slowMs === undefined ? {} : { slowMs: policy.slowMs }) }
        : healthPolicy(r, [...p, 'health'], hm, policy),
      ...(typeof b.cloud === 'boolean' ? { cloud: b.cloud } : {}),
      name,
      engine,
      node,
      url: backendUrl,
      model: str(r, [...p, 'model'], b.model, true),
      apiKey,
      contextWindow: optInt(r, [...p, 'context_window'], b.context_window, 1),
      weight: int(r, [...p, 'weight'], b.weight, 1, 1, 1000),
      maxRetries: int(r, [...p, 'max_retries'], b.max_retries, 1, 0, 10),
      maxConnections: int(r, [...p, 'max_connections'], b.max_connections, 256, 1, 100_000),
      timeouts: timeouts(r, [...p, 'timeouts'], b.timeouts, DEFAULT_TIMEOUTS),
      aliases: strList(r, [...p, 'aliases'], b.aliases),
      simulated: b.simulated === true,
    });
    const serve = serveBlock(r, [...p, 'serve'], b.serve, {
      engine: engineKnown ? engine : undefined, node: node === undefined ? undefined : nodeMap.get(node), nodeName: node, url: backendUrl, model: out.get(name)!.model,
    });
    if (serve !== undefined) out.get(name)!.serve = serve;
  }
  checkServePorts(r, out.values());
  checkOllamaShared(r, out.values());
  return out;
}

/**
 * Ollama loads a model once per context size and keeps it as long as the last request said:
 * two backends asking one server for one model with different windows make it reload the
 * model each time the other is used, and different keep_alive values undo each other.
 */
function checkOllamaShared(r: Reporter, backends: Iterable<BackendConfig>): void {
  const seen = new Map<string, BackendConfig>();
  for (const b of backends) {
    if (b.engine !== 'ollama' || b.url === '') continue;
    let u: URL;
    try { u = new URL(b.url); } catch { continue; }
    // One server however it is named on this machine; one model with or without its :latest.
    const host = isLoopbackHost(u.hostname) ? '127.0.0.1' : u.hostname;
    const model = b.model.includes(':', b.model.lastIndexOf('/') + 1) ? b.model : `${b.model}:latest`;
    const key = `${u.protocol}//${host}:${u.port} ${model}`;
    const first = seen.get(key);
    if (first === undefined) { seen.set(key, b); continue; }
    const ctx = ollamaNumCtx(b);
    const firstCtx = ollamaNumCtx(first);
    if (ctx !== firstCtx) {
      const where = b.contextWindow !== undefined ? ['backends', b.name, 'context_window'] : b.serve?.maxModelLen !== undefined ? ['backends', b.name, 'serve', 'max_model_len'] : ['backends', b.name];
      const context = (n: number | undefined): string => (n === undefined ? "the server's default context" : `a context of ${n} tokens`);
      r.warn(where, `asks ${u.origin} for ${b.model} with ${context(ctx)}, and backend ${first.name} with ${context(firstCtx)}: Ollama reloads the model whenever the other is used; give both the same context_window`, b.contextWindow === undefined && b.serve?.maxModelLen === undefined);
    }
    if ((b.keepAliveSeconds ?? OLLAMA_KEEP_ALIVE_S) !== (first.keepAliveSeconds ?? OLLAMA_KEEP_ALIVE_S)) {
      r.warn(b.keepAliveSeconds !== undefined ? ['backends', b.name, 'keep_alive'] : ['backends', b.name], `asks ${u.origin} to keep ${b.model} loaded ${keepAliveText(b.keepAliveSeconds)}, and backend ${first.name} ${keepAliveText(first.keepAliveSeconds)}: each request resets it; give both the same keep_alive`, b.keepAliveSeconds === undefined);
    }
  }
}

/** Ollama's own keep_alive: 5 minutes. */
const OLLAMA_KEEP_ALIVE_S = 300;

function keepAliveText(s: number | undefined): string {
  if (s === undefined) return "for Ollama's default 5 minutes";
  if (s < 0) return 'for good';
  if (s === 0) return 'not at all';
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const sec = s % 60;
  return `for ${h > 0 ? `${h}h` : ''}${m > 0 ? `${m}m` : ''}${sec > 0 || s < 60 ? `${sec}s` : ''}`;
}

const ROLE_KEYS = [
  'kind', 'backends', 'aliases', 'fallbacks', 'context_window_fallback', 'strategy', 'rules', 'dimensions', 'description', 'affinity', 'cache',
] as const;

/** Engines that serve OpenAI's audio transcription and translation endpoints. */
const AUDIO_ENGINES: ReadonlySet<string> = new Set(['vllm', 'openai', 'openai-compatible']);
/** Engines that serve Jina's and Cohere's rerank endpoint (llama.cpp's server when started with --reranking). */
const RERANK_ENGINES: ReadonlySet<string> = new Set(['vllm', 'llamacpp', 'openai-compatible', 'sglang']);

const RULE_CONDITIONS = ['if_input_tokens_over', 'if_input_has', 'if_key', 'if_key_metadata'] as const;
const RULE_KEYS = [...RULE_CONDITIONS, 'route_to'] as const;
/** Rules the config refuses (kept in place, so later ones keep their index): no warning compares against them. */
const refusedRules = new WeakSet<RoleRule>();

function rules(r: Reporter, path: KeyPath, v: unknown): RoleRule[] {
  const out: RoleRule[] = [];
  list(r, path, v).forEach((raw, i) => {
    const p = [...path, i];
    let refused = false;
    const rr: Reporter = { error: (...a) => { refused = true; r.error(...a); }, warn: (...a) => r.warn(...a) };
    if (raw === null || raw === undefined) rr.error(p, 'is empty: a rule is a condition and route_to, such as { if_input_tokens_over: 12000, route_to: openai/strong }');
    const m = mapping(rr, p, raw, RULE_KEYS);
    const rule: RoleRule = { routeTo: m === undefined ? '' : str(rr, [...p, 'route_to'], m.route_to, true) };
    out.push(rule);
    if (m !== undefined) ruleConditions(rr, p, m, rule);
    if (refused || m === undefined) refusedRules.add(rule);
  });
  return out;
}

function ruleConditions(r: Reporter, p: KeyPath, m: Record<string, unknown>, rule: RoleRule): void {
  const given = RULE_CONDITIONS.filter((k) => k in m);
  if (given.length === 0) {
    r.error(p, `needs a condition: if_input_tokens_over (a token count), if_input_has (${INPUT_FEATURES.join(', ')}), if_key (virtual key names) or if_key_metadata (entries of a virtual key's metadata)`);
  }
  // Left empty (`if_key:` with nothing after it), a condition would hold for every request.
  for (const k of given) if (m[k] === null) r.error([...p, k], 'is empty: give its value, or leave the key out');
  if (m.if_input_tokens_over !== undefined && m.if_input_tokens_over !== null) {
    const over = int(r, [...p, 'if_input_tokens_over'], m.if_input_tokens_over, 0, 1);
    if (over > 0) rule.inputTokensOver = over;
  }
  if (m.if_input_has !== undefined && m.if_input_has !== null) {
    const has = list(r, [...p, 'if_input_has'], m.if_input_has).map((x, j) => oneOf(r, [...p, 'if_input_has', ...(Array.isArray(m.if_input_has) ? [j] : [])], x, INPUT_FEATURES, 'image'));
    if (has.length > 0) rule.inputHas = [...new Set(has)];
    else if (Array.isArray(m.if_input_has)) r.error([...p, 'if_input_has'], `names nothing: give ${INPUT_FEATURES.join(', ')}`);
  }
  if (m.if_key !== undefined && m.if_key !== null) {
    const keys = strList(r, [...p, 'if_key'], m.if_key);
    keys.forEach((k, j) => {
      // A key's name never reads as its id or its secret (src/keys/input.ts): one of those here never matches, and a secret must not be in a config.
      if (/^(key_|sk-)/.test(k)) r.error([...p, 'if_key', ...(Array.isArray(m.if_key) ? [j] : [])], 'names a key by its id or its secret: give its name (fabric keys list)');
    });
    if (keys.length > 0) rule.keys = keys;
    else if (Array.isArray(m.if_key) && m.if_key.length === 0) r.error([...p, 'if_key'], 'names no key: list the virtual keys\' names (fabric keys list)');
  }
  if (m.if_key_metadata !== undefined && m.if_key_metadata !== null) {
    const md = keyMetadataCondition(r, [...p, 'if_key_metadata'], m.if_key_metadata);
    if (md !== undefined) rule.keyMetadata = md;
  }
}

/** Whether every request rule `b` applies to is taken by rule `a` (each of a's conditions follows from b's). */
function ruleCovers(a: RoleRule, b: RoleRule): boolean {
  if (refusedRules.has(a) || refusedRules.has(b)) return false;
  if (a.inputTokensOver !== undefined && (b.inputTokensOver === undefined || b.inputTokensOver < a.inputTokensOver)) return false;
  if (a.inputHas !== undefined && (b.inputHas === undefined || !a.inputHas.every((x) => b.inputHas!.includes(x)))) return false;
  if (a.keys !== undefined && (b.keys === undefined || !b.keys.every((k) => a.keys!.includes(k)))) return false;
  if (a.keyMetadata !== undefined) {
    for (const [field, values] of Object.entries(a.keyMetadata)) {
      const theirs = b.keyMetadata?.[field];
      if (theirs === undefined || !theirs.every((x) => values.includes(x))) return false;
    }
  }
  return true;
}

/** `{ tier: free }` or `{ tier: [free, trial] }`: each entry a metadata field and the values it may have, kept as text. */
function keyMetadataCondition(r: Reporter, path: KeyPath, v: unknown): Record<string, string[]> | undefined {
  if (!isObj(v)) {
    r.error(path, `must be a mapping of metadata fields to values, such as { tier: free }, got ${describe(v)}`);
    return undefined;
  }
  const out: Record<string, string[]> = {};
  let ok = Object.keys(v).length > 0;
  if (!ok) r.error(path, 'is empty: give at least one field, such as { tier: free }');
  for (const [field, want] of Object.entries(v)) {
    const items = Array.isArray(want) ? want : [want];
    const values: string[] = [];
    items.forEach((x, j) => {
      const at = Array.isArray(want) ? [...path, field, j] : [...path, field];
      if (typeof x === 'string' || typeof x === 'number' || typeof x === 'boolean') values.push(String(x));
      else {
        r.error(at, `must be a text, number or true/false (a key's metadata value is compared as text), got ${describe(x)}`);
        ok = false;
      }
    });
    if (values.length === 0 && Array.isArray(want)) {
      r.error([...path, field], 'lists no value');
      ok = false;
    }
    out[field] = values;
  }
  return ok ? out : undefined;
}

function roles(r: Reporter, v: unknown, backendMap: Map<string, BackendConfig>): Map<string, RoleConfig> {
  const out = new Map<string, RoleConfig>();
  if (v === undefined || v === null) {
    r.error(['roles'], 'is required: at least one role');
    return out;
  }
  const m = mapping(r, ['roles'], v, Object.keys(isObj(v) ? v : {}));
  if (m === undefined) return out;
  for (const [name, raw] of Object.entries(m)) {
    const p = ['roles', name];
    const role = mapping(r, p, raw, ROLE_KEYS);
    if (role === undefined) {
      r.error(p, 'must be a mapping with kind and backends');
      continue;
    }
    const members = strList(r, [...p, 'backends'], role.backends);
    if (members.length === 0) r.error([...p, 'backends'], 'is required: at least one backend name');
    members.forEach((b, i) => {
      if (!backendMap.has(b)) {
        const hint = suggest(b, backendMap.keys());
        r.error([...p, 'backends', i], `names a backend that is not defined: "${b}"${hint === undefined ? '' : ` (did you mean "${hint}"?)`}`);
      }
    });
    const kind = role.kind === undefined ? (r.error([...p, 'kind'], `is required: one of ${ROLE_KINDS.join(', ')}`), 'chat' as const)
      : oneOf(r, [...p, 'kind'], role.kind, ROLE_KINDS, 'chat');
    if (role.affinity !== undefined && typeof role.affinity !== 'boolean') r.error([...p, 'affinity'], `must be true or false, got ${describe(role.affinity)}`);
    const roleCacheCfg = roleCache(r, [...p, 'cache'], role.cache);
    out.set(name, {
      ...(role.affinity === true ? { affinity: true } : {}),
      ...(roleCacheCfg === undefined ? {} : { cache: roleCacheCfg }),
      name,
      kind,
      backends: members,
      aliases: strList(r, [...p, 'aliases'], role.aliases),
      fallbacks: strList(r, [...p, 'fallbacks'], role.fallbacks),
      contextWindowFallback: str(r, [...p, 'context_window_fallback'], role.context_window_fallback),
      strategy: oneOf(r, [...p, 'strategy'], role.strategy, STRATEGIES, 'round-robin'),
      rules: rules(r, [...p, 'rules'], role.rules),
      dimensions: optInt(r, [...p, 'dimensions'], role.dimensions, 1),
      description: str(r, [...p, 'description'], role.description),
    });
  }
  return out;
}

function patterns(r: Reporter, v: unknown, backendMap: Map<string, BackendConfig>): PatternRoute[] {
  const out: PatternRoute[] = [];
  list(r, ['patterns'], v).forEach((raw, i) => {
    const p = ['patterns', i];
    const m = mapping(r, p, raw, ['match', 'kind', 'backends', 'strategy']);
    if (m === undefined) return;
    const members = strList(r, [...p, 'backends'], m.backends);
    if (members.length === 0) r.error([...p, 'backends'], 'is required: at least one backend name');
    members.forEach((b, j) => {
      if (!backendMap.has(b)) r.error([...p, 'backends', j], `names a backend that is not defined: "${b}"`);
    });
    out.push({
      match: str(r, [...p, 'match'], m.match, true),
      kind: oneOf(r, [...p, 'kind'], m.kind, ROLE_KINDS, 'chat'),
      backends: members,
      strategy: oneOf(r, [...p, 'strategy'], m.strategy, STRATEGIES, 'round-robin'),
    });
  });
  return out;
}

/** Cross-references that need the whole document: names unique across roles and aliases, fallbacks resolvable. */
function crossCheck(r: Reporter, cfg: FabricConfig): void {
  /** A transcription or rerank route's backends: each must run an engine that serves its endpoint. */
  const servedBy = (kind: RoleKind, names: readonly string[], path: KeyPath): void => names.forEach((name, i) => {
    const b = cfg.backends.get(name);
    if (b === undefined) return;
    if (kind === 'transcription' && !AUDIO_ENGINES.has(b.engine)) {
      r.error([...path, 'backends', i], `${name} runs on ${b.engine}, which does not serve /v1/audio/transcriptions: use vllm (a Whisper model), openai, or openai-compatible (speaches, LocalAI)`);
    }
    if (kind === 'rerank' && !RERANK_ENGINES.has(b.engine)) {
      r.error([...path, 'backends', i], `${name} runs on ${b.engine}, which does not serve /v1/rerank: use vllm or sglang (a reranker such as BAAI/bge-reranker-v2-m3), llamacpp (started with --reranking), or openai-compatible (Infinity)`);
    }
  });
  cfg.patterns.forEach((pt, i) => servedBy(pt.kind, pt.backends, ['patterns', i]));
  const owner = new Map<string, string>();
  const claim = (name: string, what: string, path: KeyPath): void => {
    const prev = owner.get(name);
    if (prev !== undefined) r.error(path, `"${name}" is already used by ${prev}`);
    else owner.set(name, what);
  };
  for (const role of cfg.roles.values()) claim(role.name, `role ${role.name}`, ['roles', role.name]);
  for (const role of cfg.roles.values()) {
    role.aliases.forEach((a, i) => claim(a, `an alias of role ${role.name}`, ['roles', role.name, 'aliases', i]));
  }
  for (const b of cfg.backends.values()) {
    b.aliases.forEach((a, i) => claim(a, `an alias of backend ${b.name}`, ['backends', b.name, 'aliases', i]));
  }
  const mustBeRole = (from: RoleConfig, target: string, path: KeyPath): void => {
    const t = roleByName(cfg.roles, target);
    if (t === undefined) {
      const hint = suggest(target, owner.keys());
      r.error(path, `names no role or role alias: "${target}"${hint === undefined ? '' : ` (did you mean "${hint}"?)`}`);
    } else if (t.kind !== from.kind) {
      r.error(path, `"${target}" is a ${t.kind} role but ${from.name} is ${from.kind}`);
    } else if (t === from) {
      r.error(path, `"${target}" is ${from.name} itself`);
    }
  };
  for (const role of cfg.roles.values()) {
    const p = ['roles', role.name];
    role.fallbacks.forEach((f, i) => mustBeRole(role, f, [...p, 'fallbacks', i]));
    if (role.contextWindowFallback !== undefined) mustBeRole(role, role.contextWindowFallback, [...p, 'context_window_fallback']);
    role.rules.forEach((rule, i) => {
      if (rule.routeTo !== '') mustBeRole(role, rule.routeTo, [...p, 'rules', i, 'route_to']);
      if (rule.inputHas !== undefined && role.kind !== 'chat') r.error([...p, 'rules', i, 'if_input_has'], `only chat requests carry images, audio or tools: this is ${KIND_NAMES[role.kind]} role`);
      if (rule.inputTokensOver !== undefined && role.kind === 'transcription') r.error([...p, 'rules', i, 'if_input_tokens_over'], 'a transcription request\'s input is audio, with no text to count');
      const first = role.rules.findIndex((earlier, k) => k < i && ruleCovers(earlier, rule));
      if (first >= 0) r.warn([...p, 'rules', i], `never applies: rules[${first}] comes first and takes every request this one would (a role's rules are tried in the order written; put the narrower one first)`);
    });
    if (role.dimensions !== undefined && role.kind !== 'embeddings') r.error([...p, 'dimensions'], 'only applies to embeddings roles');
    servedBy(role.kind, role.backends, p);
    if (role.kind === 'transcription') {
      if (role.cache !== undefined) r.warn([...p, 'cache'], 'audio is never cached: this setting does nothing on a transcription role', true);
    }
    if (role.affinity === true && role.kind !== 'chat') r.warn([...p, 'affinity'], `only chat conversations have a prefix to keep warm; ignored for ${KIND_NAMES[role.kind]} role`, true);
    if (role.cache !== undefined && role.cache !== false && cfg.gateway.cache === undefined) {
      r.error([...p, 'cache'], 'sets how this role\'s answers are cached, but the response cache is off: turn it on with gateway.cache (e.g. cache: { ttl: 1h })');
    }
  }
  // The cache's own name in usage records and metrics (src/cache): no backend may take it.
  if (cfg.backends.has(CACHE_BACKEND)) r.error(['backends', CACHE_BACKEND], `"${CACHE_BACKEND}" is the name usage records and metrics give answers from the response cache; name the backend otherwise`, true);
  if (cfg.gateway.wake.enabled && ![...cfg.nodes.values()].some((n) => n.wol !== undefined)) {
    r.warn(['gateway', 'wake', 'enabled'], 'no node has a wol: { mac } block, so there is nothing to wake');
  }
  // A former name is one backend's: it must not be a backend still, nor claimed twice.
  const formerOf = new Map<string, string>();
  for (const b of cfg.backends.values()) {
    (b.formerly ?? []).forEach((f, i) => {
      const path = ['backends', b.name, 'formerly', i];
      if (cfg.backends.has(f)) r.error(path, `"${f}" is a backend of this config; formerly lists the names ${b.name} had before a rename`);
      else if (formerOf.has(f)) r.error(path, `"${f}" is already a former name of backend ${formerOf.get(f)}`);
      else formerOf.set(f, b.name);
    });
  }
  for (const b of cfg.backends.values()) {
    const used = [...cfg.roles.values()].some((role) => role.backends.includes(b.name)) || cfg.patterns.some((pt) => pt.backends.includes(b.name));
    if (!used && b.aliases.length === 0) r.warn(['backends', b.name], 'is not used by any role, pattern or alias', true);
  }
}

export function validateFabric(raw: unknown, r: Reporter, file: string | undefined): FabricConfig {
  const top = mapping(r, [], raw, ['version', 'gateway', 'nodes', 'backends', 'roles', 'patterns', 'prices', 'budgets']) ?? {};
  if (top.version !== undefined && top.version !== 1) r.error(['version'], `must be 1, got ${describe(top.version)}`);
  const nodeMap = nodes(r, top.nodes);
  // The gateway first: its health block is every backend's default.
  const gw = gateway(r, top.gateway);
  const backendMap = backends(r, top.backends, nodeMap, gw.health);
  const roleMap = roles(r, top.roles, backendMap);
  const cfg: FabricConfig = {
    file,
    gateway: gw,
    nodes: nodeMap,
    backends: backendMap,
    roles: roleMap,
    patterns: patterns(r, top.patterns, backendMap),
    prices: prices(r, top.prices, backendMap),
    budgets: budgets(r, top.budgets, backendMap, roleMap),
    simulated: backendMap.size > 0 && [...backendMap.values()].every((b) => b.simulated),
  };
  crossCheck(r, cfg);
  return cfg;
}

// Validates a parsed YAML document into a FabricConfig. Every problem is reported with its
// key path (the loader turns paths into file:line:col), and validation carries on past the
// first error so one `fabric config check` run shows them all.

import { parseDuration, parseSize } from './units.ts';
import { suggest, type KeyPath } from './issues.ts';
import {
  ENGINE_KINDS, NODE_POWER, ROLE_KINDS, STRATEGIES, DEFAULT_TIMEOUTS, defaultGateway,
  type BackendConfig, type FabricConfig, type GatewayConfig, type GpuSpec, type NodeConfig,
  type PatternRoute, type RoleConfig, type RoleRule, type SecretRef, type Timeouts,
} from './types.ts';

export interface Reporter {
  error(path: KeyPath, message: string, onKey?: boolean): void;
  warn(path: KeyPath, message: string, onKey?: boolean): void;
}

type Obj = Record<string, unknown>;

function isObj(v: unknown): v is Obj {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Checks `v` is a mapping and that it holds only `allowed` keys. */
function mapping(r: Reporter, path: KeyPath, v: unknown, allowed: readonly string[]): Obj | undefined {
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

function describe(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'a list';
  if (typeof v === 'object') return 'a mapping';
  return `${typeof v} ${JSON.stringify(v)}`;
}

function str(r: Reporter, path: KeyPath, v: unknown, required: true): string;
function str(r: Reporter, path: KeyPath, v: unknown, required?: false): string | undefined;
function str(r: Reporter, path: KeyPath, v: unknown, required = false): string | undefined {
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

function oneOf<T extends string>(r: Reporter, path: KeyPath, v: unknown, values: readonly T[], dflt: T): T {
  if (v === undefined || v === null) return dflt;
  if (typeof v === 'string' && (values as readonly string[]).includes(v)) return v as T;
  const hint = typeof v === 'string' ? suggest(v, values) : undefined;
  r.error(path, `must be one of ${values.join(', ')}, got ${describe(v)}${hint === undefined ? '' : ` (did you mean "${hint}"?)`}`);
  return dflt;
}

function int(r: Reporter, path: KeyPath, v: unknown, dflt: number, min: number, max = Number.MAX_SAFE_INTEGER): number {
  if (v === undefined || v === null) return dflt;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) {
    r.error(path, `must be an integer from ${min} to ${max}, got ${describe(v)}`);
    return dflt;
  }
  return v;
}

function optInt(r: Reporter, path: KeyPath, v: unknown, min: number): number | undefined {
  if (v === undefined || v === null) return undefined;
  return int(r, path, v, 0, min);
}

function duration(r: Reporter, path: KeyPath, v: unknown, dflt: number): number {
  if (v === undefined || v === null) return dflt;
  const ms = parseDuration(v);
  if (ms === undefined) {
    r.error(path, `must be a duration such as 500ms, 30s, 5m (a bare number is milliseconds), got ${describe(v)}`);
    return dflt;
  }
  return ms;
}

function size(r: Reporter, path: KeyPath, v: unknown, dflt: number): number {
  if (v === undefined || v === null) return dflt;
  const b = parseSize(v);
  if (b === undefined) {
    r.error(path, `must be a size such as 16KiB, 8MiB, 8GiB (a bare number is bytes), got ${describe(v)}`);
    return dflt;
  }
  return b;
}

function list(r: Reporter, path: KeyPath, v: unknown): unknown[] {
  if (v === undefined || v === null) return [];
  if (typeof v === 'string') return [v];
  if (!Array.isArray(v)) {
    r.error(path, `must be a list, got ${describe(v)}`);
    return [];
  }
  return v;
}

function strList(r: Reporter, path: KeyPath, v: unknown): string[] {
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
function secret(r: Reporter, path: KeyPath, v: unknown): SecretRef | undefined {
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
    r.error(path, `is not a valid URL: ${JSON.stringify(s)}`);
    return '';
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') r.error(path, `must be an http:// or https:// URL, got ${u.protocol}`);
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

function gateway(r: Reporter, v: unknown): GatewayConfig {
  const g = defaultGateway();
  const m = mapping(r, ['gateway'], v, ['host', 'port', 'master_key', 'env_file', 'limits', 'retry', 'health_interval', 'workers']);
  if (m === undefined) return g;
  g.host = str(r, ['gateway', 'host'], m.host) ?? g.host;
  g.port = int(r, ['gateway', 'port'], m.port, g.port, 0, 65535);
  g.masterKey = secret(r, ['gateway', 'master_key'], m.master_key);
  g.envFile = str(r, ['gateway', 'env_file'], m.env_file);
  g.healthIntervalMs = duration(r, ['gateway', 'health_interval'], m.health_interval, g.healthIntervalMs);
  g.workers = int(r, ['gateway', 'workers'], m.workers, g.workers, 1, 64);
  const lp = ['gateway', 'limits'];
  const l = mapping(r, lp, m.limits, ['max_body', 'max_header', 'max_tokens', 'max_n', 'max_best_of', 'max_attempts']);
  if (l !== undefined) {
    g.limits.maxBodyBytes = size(r, [...lp, 'max_body'], l.max_body, g.limits.maxBodyBytes);
    g.limits.maxHeaderBytes = size(r, [...lp, 'max_header'], l.max_header, g.limits.maxHeaderBytes);
    g.limits.maxTokens = int(r, [...lp, 'max_tokens'], l.max_tokens, g.limits.maxTokens, 1);
    g.limits.maxN = int(r, [...lp, 'max_n'], l.max_n, g.limits.maxN, 1);
    g.limits.maxBestOf = int(r, [...lp, 'max_best_of'], l.max_best_of, g.limits.maxBestOf, 1);
    g.limits.maxAttempts = int(r, [...lp, 'max_attempts'], l.max_attempts, g.limits.maxAttempts, 1, 50);
  }
  const rt = mapping(r, ['gateway', 'retry'], m.retry, ['base', 'max']);
  if (rt !== undefined) {
    g.retryBaseMs = duration(r, ['gateway', 'retry', 'base'], rt.base, g.retryBaseMs);
    g.retryMaxMs = duration(r, ['gateway', 'retry', 'max'], rt.max, g.retryMaxMs);
  }
  return g;
}

function nodes(r: Reporter, v: unknown): Map<string, NodeConfig> {
  const out = new Map<string, NodeConfig>();
  const m = mapping(r, ['nodes'], v, Object.keys(isObj(v) ? v : {}));
  if (m === undefined) return out;
  for (const [name, raw] of Object.entries(m)) {
    const p = ['nodes', name];
    const n = mapping(r, p, raw, ['power', 'address', 'gpus', 'description']);
    if (n === undefined) {
      if (raw === null || raw === undefined) r.error(p, 'must be a mapping with at least power');
      continue;
    }
    const gpus: GpuSpec[] = [];
    list(r, [...p, 'gpus'], n.gpus).forEach((g, i) => {
      const gp = [...p, 'gpus', i];
      const gm = mapping(r, gp, g, ['model', 'memory']);
      if (gm === undefined) return;
      const memory = size(r, [...gp, 'memory'], gm.memory, 0);
      if (gm.memory === undefined) r.error([...gp, 'memory'], 'is required (e.g. 8GiB)');
      gpus.push({ model: str(r, [...gp, 'model'], gm.model, true), memoryBytes: memory });
    });
    out.set(name, {
      name,
      power: oneOf(r, [...p, 'power'], n.power, NODE_POWER, 'always-on'),
      address: str(r, [...p, 'address'], n.address),
      gpus,
    });
  }
  return out;
}

const BACKEND_KEYS = [
  'engine', 'node', 'url', 'model', 'api_key', 'context_window', 'weight', 'max_retries', 'max_connections', 'timeouts', 'aliases', 'simulated',
] as const;

function backends(r: Reporter, v: unknown, nodeMap: Map<string, NodeConfig>): Map<string, BackendConfig> {
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
    const node = str(r, [...p, 'node'], b.node);
    if (node !== undefined && !nodeMap.has(node)) {
      const hint = suggest(node, nodeMap.keys());
      r.error([...p, 'node'], `names a node that is not defined under nodes: "${node}"${hint === undefined ? '' : ` (did you mean "${hint}"?)`}`);
    }
    const backendUrl = b.url === undefined && engine === 'openai' ? 'https://api.openai.com/v1' : url(r, [...p, 'url'], b.url);
    const apiKey = secret(r, [...p, 'api_key'], b.api_key);
    if (engine === 'openai' && apiKey === undefined) r.error([...p, 'api_key'], 'is required for engine openai (e.g. env:OPENAI_API_KEY)');
    out.set(name, {
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
  }
  return out;
}

const ROLE_KEYS = [
  'kind', 'backends', 'aliases', 'fallbacks', 'context_window_fallback', 'strategy', 'rules', 'dimensions', 'description',
] as const;

function rules(r: Reporter, path: KeyPath, v: unknown): RoleRule[] {
  const out: RoleRule[] = [];
  list(r, path, v).forEach((raw, i) => {
    const p = [...path, i];
    const m = mapping(r, p, raw, ['if_input_tokens_over', 'route_to']);
    if (m === undefined) return;
    if (m.if_input_tokens_over === undefined) r.error([...p, 'if_input_tokens_over'], 'is required (a token count)');
    const over = int(r, [...p, 'if_input_tokens_over'], m.if_input_tokens_over, 0, 1);
    const to = str(r, [...p, 'route_to'], m.route_to, true);
    if (over > 0 && to !== '') out.push({ inputTokensOver: over, routeTo: to });
  });
  return out;
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
    const kind = role.kind === undefined ? (r.error([...p, 'kind'], 'is required: chat or embeddings'), 'chat' as const)
      : oneOf(r, [...p, 'kind'], role.kind, ROLE_KINDS, 'chat');
    out.set(name, {
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
  const roleByName = (n: string): RoleConfig | undefined => {
    const direct = cfg.roles.get(n);
    if (direct !== undefined) return direct;
    for (const role of cfg.roles.values()) if (role.aliases.includes(n)) return role;
    return undefined;
  };
  const mustBeRole = (from: RoleConfig, target: string, path: KeyPath): void => {
    const t = roleByName(target);
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
    role.rules.forEach((rule, i) => mustBeRole(role, rule.routeTo, [...p, 'rules', i, 'route_to']));
    if (role.dimensions !== undefined && role.kind !== 'embeddings') r.error([...p, 'dimensions'], 'only applies to embeddings roles');
  }
  for (const b of cfg.backends.values()) {
    const used = [...cfg.roles.values()].some((role) => role.backends.includes(b.name)) || cfg.patterns.some((pt) => pt.backends.includes(b.name));
    if (!used && b.aliases.length === 0) r.warn(['backends', b.name], 'is not used by any role, pattern or alias', true);
  }
}

export function validateFabric(raw: unknown, r: Reporter, file: string | undefined): FabricConfig {
  const top = mapping(r, [], raw, ['version', 'gateway', 'nodes', 'backends', 'roles', 'patterns']) ?? {};
  if (top.version !== undefined && top.version !== 1) r.error(['version'], `must be 1, got ${describe(top.version)}`);
  const nodeMap = nodes(r, top.nodes);
  const backendMap = backends(r, top.backends, nodeMap);
  const cfg: FabricConfig = {
    file,
    gateway: gateway(r, top.gateway),
    nodes: nodeMap,
    backends: backendMap,
    roles: roles(r, top.roles, backendMap),
    patterns: patterns(r, top.patterns, backendMap),
    simulated: backendMap.size > 0 && [...backendMap.values()].every((b) => b.simulated),
  };
  crossCheck(r, cfg);
  return cfg;
}

// LiteLLM's response cache as gateway.cache. LiteLLM (litellm/caching/caching.py) keeps every
// answer its supported call types produce, sampled ones too, under a key made of the request's
// parameters and model group — not the caller — so the mapping is when: always, scope: shared.
// Its entries expire after cache_params.ttl seconds, else its store's default: 600 s in memory
// (in_memory_cache.py), 60 s in Redis (base_cache.py). The proxy's default type is redis
// (proxy_server.py), connected from REDIS_* in its environment when cache_params names none.

import type { KeyPath } from '../issues.ts';
import type { RoleKind } from '../types.ts';
import { describe, duration, isObj, readNumber, type NativeCache, type NativeDoc, type Obj, type Translation } from './context.ts';
import { redisUrl, type RedisKeys } from './state.ts';

const CACHE_REDIS: RedisKeys = {
  at: ['litellm_settings', 'cache_params'], url: 'url', host: 'host', port: 'port', password: 'password', purpose: 'the response cache, rate limits and budgets',
};
/** redis-py's port when none is given (LiteLLM passes host and port on as they are). */
const REDIS_PORT = 6379;
const SEMANTIC = ['redis-semantic', 'qdrant-semantic', 'valkey-semantic'];
const ELSEWHERE = ['s3', 'gcs', 'azure-blob', 'disk'];
const READ = ['type', 'mode', 'ttl', 'default_in_memory_ttl', 'default_in_redis_ttl', 'supported_call_types', 'namespace'];
const CONNECTION = ['url', 'host', 'port', 'password'];
/** The calls the proxy makes for what the gateway serves; supported_call_types is matched against these names. */
const CALLS = { chat: 'acompletion', completions: 'atext_completion', embeddings: 'aembedding', rerank: 'arerank' } as const;

interface Source {
  /** cache_params, or {} (router_settings.cache_responses takes none), and where it is. */
  params: Obj;
  at: KeyPath;
  /** The key that turns the cache on. */
  origin: KeyPath;
  /** LiteLLM's cache type, its default applied, and where issues about it (and the store) go. */
  type: unknown;
  typePath: KeyPath;
}

const present = (v: unknown): boolean => v !== undefined && v !== null && v !== '';
/** A value named as the subject of a message: a string as written, in quotes. */
const shown = (v: unknown): string => (typeof v === 'string' ? JSON.stringify(v) : describe(v));

/**
 * litellm_settings.cache: true (with cache_params) → gateway.cache; else
 * router_settings.cache_responses: true, LiteLLM's Router's cache: in router_settings' Redis
 * when it names one, else in memory. After readRedis: the cache may use its gateway.redis.
 */
export function readCache(t: Translation, ls: Obj, rs: Obj, doc: NativeDoc): void {
  const LS: KeyPath = ['litellm_settings'];
  const CR: KeyPath = ['router_settings', 'cache_responses'];
  if (present(ls.cache) && typeof ls.cache !== 'boolean') t.r.warn([...LS, 'cache'], `must be true or false, got ${describe(ls.cache)}; ignored`);
  if (present(rs.cache_responses) && typeof rs.cache_responses !== 'boolean') t.r.warn(CR, `must be true or false, got ${describe(rs.cache_responses)}; ignored`);
  if (ls.cache === true) {
    const cp = ls.cache_params;
    if (present(cp) && !isObj(cp)) {
      t.r.error([...LS, 'cache_params'], `must be a mapping (type, host, port, ttl, …), got ${describe(cp)}`);
      return;
    }
    const params = isObj(cp) ? cp : {};
    mapCache(t, rs, doc, {
      params, at: [...LS, 'cache_params'], origin: [...LS, 'cache'],
      type: params.type ?? 'redis', typePath: 'type' in params ? [...LS, 'cache_params', 'type'] : [...LS, 'cache'],
    });
    if (rs.cache_responses === true && doc.gateway.cache !== undefined) t.note(['gateway', 'cache'], 'router_settings.cache_responses is on too: LiteLLM\'s Router keeps the cache litellm_settings made');
    return;
  }
  if (present(ls.cache_params)) t.r.warn([...LS, 'cache_params'], 'ignored without litellm_settings.cache: true, as in LiteLLM', true);
  if (rs.cache_responses === true) mapCache(t, rs, doc, { params: {}, at: CR, origin: CR, type: routerRedis(rs) ? 'redis' : 'local', typePath: CR });
}

function mapCache(t: Translation, rs: Obj, doc: NativeDoc, src: Source): void {
  const { params, type } = src;
  const at = (k: string): KeyPath => [...src.at, k];
  const mode = params.mode;
  if (Boolean(mode) && mode !== 'default_on') {
    // LiteLLM treats any mode but default_on as opt-in; turning the cache on would give answers to requests that never asked.
    t.r.warn(at('mode'), `${mode === 'default_off' ? '' : `${shown(mode)} is not default_on: `}LiteLLM then caches only requests that opt in ("cache": {"use-cache": true} in the body), ` +
      'and the gateway has no per-request opt-in: the response cache is left off. To cache every answer, write gateway.cache: { when: always, scope: shared }');
    return;
  }
  const known = typeof type === 'string' && (type === 'redis' || type === 'local' || SEMANTIC.includes(type) || ELSEWHERE.includes(type));
  if (!known) {
    t.r.warn(src.typePath, `${shown(type)} is not a LiteLLM cache type (local, redis, redis-semantic, qdrant-semantic, s3, gcs, disk): LiteLLM keeps nothing with it, so the response cache is left off`);
    return;
  }
  const off = offKinds(t, params.supported_call_types, at('supported_call_types'));
  if (off === undefined) return;

  const cache: NativeCache = { ttl: ttlOf(t, params, type, at), when: 'always', scope: 'shared' };
  t.from(['gateway', 'cache'], src.origin);
  t.note(['gateway', 'cache'], `${src.origin.join('.')}: LiteLLM keeps every answer, sampled ones too (when: always), for every caller alike (scope: shared). ` +
    'Clients skip or refresh it as with LiteLLM ("cache": {"no-cache": true} in the body; no-store, s-maxage, ttl too) or with the Cache-Control header');
  const store = storeOf(t, rs, doc, src);
  if (store !== undefined) {
    cache.store = store;
    t.from(['gateway', 'cache', 'store'], src.typePath);
  }
  if (type === 'redis' && store === undefined) t.note(['gateway', 'cache'], 'no store: in memory until gateway.redis is set, then in Redis');
  if (SEMANTIC.includes(type)) {
    t.r.warn(src.typePath, `not supported: the gateway has no semantic cache (${type}); it keeps answers for identical requests only, in each process's memory`);
  } else if (ELSEWHERE.includes(type)) {
    t.r.warn(src.typePath, `not supported: the gateway keeps answers in memory or in gateway.redis, not ${type}; here in each process's memory, lost on restart`);
  }
  if (present(params.namespace)) {
    t.r.warn(at('namespace'), 'not carried over: the gateway keeps its entries under <gateway.redis.prefix>:cache: (prefix fabric unless set), apart from LiteLLM\'s; ' +
      'entries name their route and its backends, so fabrics sharing a Redis never mix answers (the prefix, which rate limits share, keeps them apart)', true);
  }
  const used = type === 'redis' ? [...READ, ...CONNECTION] : READ;
  for (const k of Object.keys(params)) {
    if (used.includes(k)) continue;
    t.r.warn(at(k), type === 'redis'
      ? 'not carried over; ignored (gateway.redis takes only a URL: TLS, a user and a database go in it, as rediss://user:password@host:port/db)'
      : `not carried over: it configures LiteLLM's ${type} cache; ignored`, true);
  }
  doc.gateway.cache = cache;
  for (const kind of off) {
    for (const [name, role] of Object.entries(doc.roles)) {
      if (role.kind !== kind) continue;
      role.cache = false;
      t.from(['roles', name, 'cache'], at('supported_call_types'));
      t.note(['roles', name, 'cache'], `supported_call_types leaves out ${kind === 'chat' ? `${CALLS.chat} and ${CALLS.completions}` : kind === 'rerank' ? CALLS.rerank : CALLS.embeddings} (the proxy's calls for ${kind}): not cached`);
    }
    const patterns = (doc.patterns ?? []).filter((p) => p.kind === kind).map((p) => p.match);
    if (patterns.length > 0) t.r.warn(at('supported_call_types'), `not supported for wildcard model_names (${patterns.join(', ')}): a pattern route cannot turn the cache off, so their ${kind} answers are kept`);
  }
}

/**
 * The role kinds supported_call_types leaves out: the proxy checks the names of its async
 * calls, so "completion" without "acompletion" caches no chat. A role serves /chat/completions
 * and /completions alike, so chat is off only when both are left out. undefined: none of the
 * gateway's calls is listed, and the cache stays off.
 */
function offKinds(t: Translation, v: unknown, path: KeyPath): RoleKind[] | undefined {
  if (!present(v)) return [];
  if (!Array.isArray(v)) {
    t.r.warn(path, `must be a list of call types, got ${describe(v)}; ignored: every call is cached`);
    return [];
  }
  const has = (c: string): boolean => v.includes(c);
  const [chat, completions, embeddings, rerank] = [has(CALLS.chat), has(CALLS.completions), has(CALLS.embeddings), has(CALLS.rerank)];
  if (!chat && !completions && !embeddings && !rerank) {
    t.r.warn(path, `lists none of ${CALLS.chat}, ${CALLS.completions}, ${CALLS.embeddings}, ${CALLS.rerank} (the proxy's calls for chat, completions, embeddings and reranking; the SDK's sync names do not cover them): ` +
      'LiteLLM caches none of what the gateway serves, so the response cache is left off');
    return undefined;
  }
  if (chat !== completions) {
    t.r.warn(path, `leaves out ${chat ? CALLS.completions : CALLS.chat}, but a role's /chat/completions and /completions answers are cached alike: both are cached`);
  }
  const off: RoleKind[] = [];
  if (!chat && !completions) off.push('chat');
  if (!embeddings) off.push('embeddings');
  if (!rerank) off.push('rerank');
  return off;
}

/** cache_params.ttl, or default_in_memory_ttl / default_in_redis_ttl for their type (which win, as in LiteLLM), else the store's default. */
function ttlOf(t: Translation, params: Obj, type: string, at: (k: string) => KeyPath): string {
  const redisKind = type === 'redis' || type === 'redis-semantic' || type === 'valkey-semantic';
  const own = type === 'local' ? 'default_in_memory_ttl' : redisKind ? 'default_in_redis_ttl' : undefined;
  for (const k of ['default_in_memory_ttl', 'default_in_redis_ttl']) {
    if (k !== own && present(params[k])) t.r.warn(at(k), `ignored, as by LiteLLM: it applies to a ${k === 'default_in_memory_ttl' ? 'local' : 'Redis'} cache only`, true);
  }
  const key = own !== undefined && present(params[own]) ? own : present(params.ttl) ? 'ttl' : undefined;
  if (key === own && present(params.ttl)) t.r.warn(at('ttl'), `ignored: ${own} is set too and takes precedence, as in LiteLLM`, true);
  const s = key === undefined ? undefined : readNumber(t, at(key), params[key], (n) => Number.isFinite(n) && n > 0, 'a number of seconds', 'ignore');
  const fallbackS = type === 'redis' ? 60 : 600;
  let ms = Math.round((s ?? fallbackS) * 1000);
  if (ms < 1000) {
    t.r.warn(at(key!), `${s}s is shorter than the gateway keeps an answer: 1s`);
    ms = 1000;
  }
  const ttl = duration(ms);
  if (s !== undefined) {
    t.from(['gateway', 'cache', 'ttl'], at(key!));
  } else {
    t.note(['gateway', 'cache', 'ttl'], `no ttl: ${fallbackS}s, LiteLLM's default for ${type === 'redis' ? 'a Redis' : 'an in-memory'} cache`);
  }
  return ttl;
}

/**
 * Where entries live: "memory" for every type but redis (written out, so that a gateway.redis
 * added later does not move it); for redis, gateway.redis — router_settings' server when it
 * names one (the gateway has one Redis), else the one cache_params names — or undefined
 * (memory until gateway.redis is set) when that cannot be written.
 */
function storeOf(t: Translation, rs: Obj, doc: NativeDoc, src: Source): 'memory' | 'redis' | undefined {
  if (src.type !== 'redis') return 'memory';
  const p = src.params;
  const at = (k: string): KeyPath => [...src.at, k];
  const named = CONNECTION.filter((k) => present(p[k]));
  const first = named.includes('url') ? 'url' : named.includes('host') ? 'host' : undefined;
  const unshared = 'the cache is kept in each gateway process\'s memory until gateway.redis is set (redis: { url: env:REDIS_URL }), then in Redis, shared by every instance';
  if (routerRedis(rs)) {
    if (first !== undefined && server(p, CONNECTION) !== server(rs, ['redis_url', 'redis_host', 'redis_port'])) {
      t.r.warn(at(first), 'not mapped: the gateway has one Redis, router_settings\', and keeps the cache there too, where LiteLLM used this server', true);
      for (const k of named) if (k !== first) t.r.warn(at(k), `not mapped: see ${at(first).join('.')}`, true);
    }
    if (doc.gateway.redis === undefined) {
      t.r.warn(src.typePath, `LiteLLM keeps it in Redis, and the gateway's is router_settings', which is not mapped (see router_settings.redis_host): ${unshared}`);
      return undefined;
    }
    t.note(['gateway', 'cache', 'store'], 'in gateway.redis, shared by every gateway instance');
    return 'redis';
  }
  if (first === undefined) {
    t.r.warn(src.typePath, `LiteLLM's Redis cache connects to REDIS_URL (or REDIS_HOST, REDIS_PORT, REDIS_PASSWORD) in its environment, which the gateway does not read: ${unshared}`);
    for (const k of named) t.r.warn(at(k), `not mapped: without host or url, LiteLLM takes the server from its environment; see ${src.typePath.join('.')}`, true);
    return undefined;
  }
  const portGiven = present(p.port);
  const r = redisUrl(t, first === 'host' && !portGiven ? { ...p, port: REDIS_PORT } : p, CACHE_REDIS);
  if (r === undefined) return undefined;
  doc.gateway.redis = { url: r.url };
  t.from(['gateway', 'redis'], r.from);
  const what = r.parts ? `host${portGiven ? '/port' : ''}${r.password ? '/password' : ''} as one URL${portGiven ? '' : ` (port ${REDIS_PORT}, redis-py's default)`}` : 'url';
  t.note(['gateway', 'redis'], `litellm_settings.cache_params.${what}: the response cache's Redis, shared by every gateway instance; rate limits and budget holds use it too`);
  t.note(['gateway', 'cache', 'store'], 'in gateway.redis, shared by every gateway instance');
  return 'redis';
}

/** router_settings names a Redis server LiteLLM's Router connects to: redis_url, or redis_host with redis_port. */
function routerRedis(rs: Obj): boolean {
  return present(rs.redis_url) || (present(rs.redis_host) && present(rs.redis_port));
}

/** A Redis server as written: its URL, else host and port (redis-py's default when none); a password does not make another server. */
function server(o: Obj, [url, host, port]: string[]): string {
  const s = (v: unknown): string => (present(v) ? String(v).trim() : '');
  return present(o[url!]) ? s(o[url!]) : `${s(o[host!])}:${s(o[port!]) || REDIS_PORT}`;
}

// One Redis connection for the gateway's shared state (rate-limit buckets, budget holds),
// through node-redis. Scripts run by EVALSHA with a fallback to EVAL, and every call has a
// short deadline: when Redis is slow or gone the caller falls back to its per-process state
// rather than hold requests. Commands are never queued while disconnected.

import { createHash } from 'node:crypto';
import type { Logger } from '../core/log.ts';

export interface RedisScript {
  readonly source: string;
  readonly sha: string;
}

export function script(source: string): RedisScript {
  return { source, sha: createHash('sha1').update(source).digest('hex') };
}

export interface SharedRedis {
  /** Connected now (commands will be tried). */
  readonly ready: boolean;
  readonly prefix: string;
  run(s: RedisScript, keys: string[], args: (string | number)[]): Promise<unknown>;
  close(): Promise<void>;
}

export interface RedisOptions {
  prefix: string;
  log: Logger;
  /** Deadline of one script call; past it the caller uses its local fallback. */
  timeoutMs?: number;
  /** Read maxmemory-policy once connected and warn of one that may evict limits and budgets (default true; one worker of several does). */
  checkPolicy?: boolean;
}

/**
 * The warning for a maxmemory-policy that lets Redis evict the gateway's rate-limit buckets and
 * budget holds (all have an expiry) rather than only cached answers, or undefined for one that
 * does not: noeviction (the default: with the cache bounded by max_size, a maxmemory above it
 * leaves room), volatile-lru and volatile-lfu (cold keys first: cached answers, a bucket gone
 * idle). volatile-ttl is warned of too: the buckets, kept a minute at most, expire first.
 */
export function evictionPolicyWarning(policy: string): string | undefined {
  if (!policy.startsWith('allkeys-') && policy !== 'volatile-ttl' && policy !== 'volatile-random') return undefined;
  const first = policy === 'volatile-ttl' ? ', the buckets first (they expire soonest)' : '';
  return `redis: maxmemory-policy ${policy} lets Redis evict the gateway's rate-limit buckets and budget holds at maxmemory${first}, `
    + 'not only cached answers; set noeviction with a maxmemory well above gateway.cache.max_size (the cache keeps within it), or volatile-lru';
}

export async function openRedis(url: string, opts: RedisOptions): Promise<SharedRedis> {
  // Loaded only when Redis is configured: node-redis costs about 30 MiB of memory once loaded.
  const { createClient } = await import('redis');
  const timeoutMs = opts.timeoutMs ?? 250;
  let warned = 0;
  const withDeadline = <T>(p: Promise<T>): Promise<T> => {
    let timer: NodeJS.Timeout;
    return Promise.race([
      p.finally(() => clearTimeout(timer)),
      new Promise<never>((_, reject) => { timer = setTimeout(() => reject(new Error(`redis: no answer within ${timeoutMs} ms`)), timeoutMs); }),
    ]);
  };
  const client = createClient({
    url,
    disableOfflineQueue: true,
    socket: {
      connectTimeout: 2_000,
      reconnectStrategy: (retries: number) => Math.min(50 * 2 ** retries, 2_000),
    },
  });
  client.on('error', (e: Error) => {
    // Reported at most every 10 s: a Redis outage must not flood the log.
    const now = Date.now();
    if (now - warned > 10_000) {
      warned = now;
      opts.log.warn('redis: unavailable; limits and budgets hold per process until it is back', { error: e.message });
    }
  });
  /** The eviction policy's check, made at the first connection. */
  let policyChecked: Promise<void> | undefined;
  client.on('ready', () => {
    if (warned !== 0) opts.log.info('redis: connected again; limits and budgets are shared again');
    warned = 0;
    if (policyChecked !== undefined || opts.checkPolicy === false) return;
    // Managed Redis often refuses CONFIG: then nothing is said but at debug level.
    policyChecked = withDeadline(client.configGet('maxmemory-policy')).then((c) => {
      const warning = evictionPolicyWarning(String(c['maxmemory-policy'] ?? ''));
      if (warning !== undefined) opts.log.warn(warning);
    }, (e: Error) => opts.log.debug('redis: could not read maxmemory-policy', { error: e.message }));
  });
  // Connecting at start is awaited once; if Redis is down then, the gateway still starts
  // (local fallback) and the client keeps reconnecting in the background.
  await Promise.race([client.connect().catch(() => {}), new Promise((r) => setTimeout(r, 2_000).unref())]);
  // Said before the gateway says it is up (within the call's deadline), when connected now.
  await policyChecked;

  return {
    get ready() {
      return client.isReady;
    },
    prefix: opts.prefix,
    async run(s, keys, args) {
      if (!client.isReady) throw new Error('redis: not connected');
      const a = args.map(String);
      // One deadline over both tries: a script the server does not have yet is sent whole even
      // when the caller has stopped waiting, so a call given up on still runs (in order).
      return withDeadline(client.evalSha(s.sha, { keys, arguments: a }).catch((e: Error) => {
        if (!String(e.message).includes('NOSCRIPT')) throw e;
        return client.eval(s.source, { keys, arguments: a });
      }));
    },
    async close() {
      try {
        if (client.isOpen) await client.close();
      } catch {
        client.destroy();
      }
    },
  };
}

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
}

export async function openRedis(url: string, opts: RedisOptions): Promise<SharedRedis> {
  // Loaded only when Redis is configured: node-redis costs about 30 MiB of memory once loaded.
  const { createClient } = await import('redis');
  const timeoutMs = opts.timeoutMs ?? 250;
  let warned = 0;
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
  client.on('ready', () => {
    if (warned !== 0) opts.log.info('redis: connected again; limits and budgets are shared again');
    warned = 0;
  });
  // Connecting at start is awaited once; if Redis is down then, the gateway still starts
  // (local fallback) and the client keeps reconnecting in the background.
  await Promise.race([client.connect().catch(() => {}), new Promise((r) => setTimeout(r, 2_000).unref())]);

  const withDeadline = <T>(p: Promise<T>): Promise<T> => {
    let timer: NodeJS.Timeout;
    return Promise.race([
      p.finally(() => clearTimeout(timer)),
      new Promise<never>((_, reject) => { timer = setTimeout(() => reject(new Error(`redis: no answer within ${timeoutMs} ms`)), timeoutMs); }),
    ]);
  };

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

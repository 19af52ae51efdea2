// What the response cache costs a real Redis (a throwaway redis-server): Redis's own time per
// SET (the script that keeps the bound) and per lookup, from INFO commandstats, with max_size
// never reached, reached with a large index, and with a small one; and a lookup's round trip.
//
//   node bench/cache-redis.ts [N=20000] [BODY_BYTES=1000] [TREE=this checkout]
//
// TREE is another checkout's root, to measure its store the same way (the figures before a change).

import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const [nArg, bodyArg, treeArg] = process.argv.slice(2);
const N = Number(nArg ?? 20_000);
const BODY = Number(bodyArg ?? 1000);
const tree = treeArg ?? fileURLToPath(new URL('..', import.meta.url));
const { startRedis } = await import(`${tree}/test/support/servers.ts`) as typeof import('../test/support/servers.ts');
const { openRedis } = await import(`${tree}/src/limits/redis-client.ts`) as typeof import('../src/limits/redis-client.ts');
const { RedisStore } = await import(`${tree}/src/cache/redis-store.ts`) as typeof import('../src/cache/redis-store.ts');
const { silentLogger } = await import(`${tree}/src/core/log.ts`) as typeof import('../src/core/log.ts');

const body = 'x'.repeat(BODY);
const entry = (i: number) => ({ body, role: 'chat-fast', backend: 'armitage-qwen', model: 'qwen', usage: undefined, storedAt: i });
const key = (i: number): string => i.toString(16).padStart(8, '0').repeat(8);

for (const [label, maxBytes] of [['never full (1 GiB)', 2 ** 30], ['full, large index (64 MiB)', 64 * 2 ** 20], ['full, small index (1 MiB)', 2 ** 20]] as const) {
  const server = await startRedis();
  if (typeof server === 'string') throw new Error(server);
  const cli = (...a: string[]): string => execFileSync('redis-cli', ['-p', String(server.port), ...a]).toString();
  const usecPerCall = (): number => Number(/cmdstat_evalsha:calls=\d+,usec=\d+,usec_per_call=([\d.]+)/.exec(cli('INFO', 'commandstats'))![1]);
  const redis = await openRedis(server.url, { prefix: 'bench', log: silentLogger, timeoutMs: 5_000, checkPolicy: false });
  const store = new RedisStore(redis, (e) => { throw e; });
  // A store from before the bound has no maxBytes: setting it there does nothing.
  (store as { maxBytes?: number }).maxBytes = maxBytes;
  // SETs are sent as the gateway sends them (not awaited); a lookup every 100 waits for them.
  const sets = async (from: number): Promise<void> => {
    for (let i = from; i < from + N; i++) {
      store.set(key(i), entry(i), BODY, 3_600_000);
      if (i % 100 === 99) await store.get(key(i));
    }
    await store.get(key(from));
  };
  // Filled first, to max_size where it is reached: the SETs measured then evict as they keep.
  const filled = maxBytes >= 2 ** 30 ? N : Math.ceil((1.2 * maxBytes) / (BODY + 600));
  for (let from = 0; from < filled; from += N) await sets(from);
  cli('CONFIG', 'RESETSTAT');
  await sets(filled);
  const setUs = usecPerCall();
  cli('CONFIG', 'RESETSTAT');
  const rtt: number[] = [];
  for (let i = 0; i < N; i++) {
    const t = performance.now();
    await store.get(key(filled + Math.floor(Math.random() * N)));
    rtt.push(performance.now() - t);
  }
  const getUs = usecPerCall();
  rtt.sort((a, b) => a - b);
  const used = Number(/used_memory:(\d+)/.exec(cli('INFO', 'memory'))![1]);
  console.log(`${label}: SET ${setUs.toFixed(1)} µs, GET ${getUs.toFixed(1)} µs of Redis's time; GET round trip p50 ${rtt[N >> 1]!.toFixed(3)} ms, p99 ${rtt[Math.floor(N * 0.99)]!.toFixed(3)} ms; ${cli('DBSIZE').trim()} keys, used_memory ${(used / 2 ** 20).toFixed(1)} MiB`);
  await redis.close();
  await server.close();
}

// The response cache's two stores: one contract run against memory and a real Redis (what both
// promise: what fits is given back, past max_size the oldest go first, an entry larger than it
// is never kept), then what only Redis does: one bound for every instance, a byte total that
// stays the sum of what is kept through replacements, expiries, keys gone on their own and a
// clear, bounded work per SET, and a lookup that is one GET.

import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createClient } from 'redis';
import { MemoryStore } from '../src/cache/memory-store.ts';
import { ENTRY_OVERHEAD, MAX_REMOVALS, RedisStore, type RedisSetResult } from '../src/cache/redis-store.ts';
import { encodeEntry, type CacheEntry } from '../src/cache/entry.ts';
import { openRedis, type SharedRedis } from '../src/limits/redis-client.ts';
import { silentLogger } from '../src/core/log.ts';
import { startRedis, type RedisServer } from './support/servers.ts';

const HOUR = 3_600_000;
const entry = (body: string): CacheEntry => ({ body, role: 'chat-fast', backend: 'armitage-qwen', model: 'qwen', usage: undefined, storedAt: 1_700_000_000_000 });
/** Keys as the cache makes them (64 hex digits), in the order of `i`. */
const key = (i: number): string => i.toString(16).padStart(64, '0');
const body = (i: number, n = 1000): string => `${String(i).padStart(6, '0')}${'x'.repeat(n - 6)}`;

/** One store as the contract drives it: each set awaited, and what an entry counts against the bound. */
interface Subject {
  set(k: string, e: CacheEntry, ttlMs?: number): Promise<void>;
  get(k: string): Promise<CacheEntry | undefined>;
  cost(k: string, e: CacheEntry): number;
}

function storeContract(label: string, make: (maxBytes: number) => Promise<Subject>): void {
  test(`${label}: what fits is given back; past max_size the oldest go first`, async () => {
    const probe = await make(1);
    const max = 3 * probe.cost(key(1), entry(body(1)));
    const s = await make(max);
    for (const i of [1, 2, 3]) await s.set(key(i), entry(body(i)));
    for (const i of [1, 2, 3]) assert.equal((await s.get(key(i)))?.body, body(i), `entry ${i} kept`);
    await s.set(key(4), entry(body(4)));
    assert.equal(await s.get(key(1)), undefined, 'the oldest went');
    for (const i of [2, 3, 4]) assert.equal((await s.get(key(i)))?.body, body(i), `entry ${i} kept`);
    await s.set(key(5), entry(body(5)));
    assert.equal(await s.get(key(2)), undefined, 'then the next oldest');
  });

  test(`${label}: an entry larger than max_size is not kept, and nothing goes for it`, async () => {
    const probe = await make(1);
    const max = 3 * probe.cost(key(1), entry(body(1)));
    const s = await make(max);
    await s.set(key(1), entry(body(1)));
    await s.set(key(2), entry(body(2, 10_000)));
    assert.equal(await s.get(key(2)), undefined, 'too large');
    assert.equal((await s.get(key(1)))?.body, body(1), 'nothing evicted for it');
  });
}

storeContract('memory', async (maxBytes) => {
  const s = new MemoryStore(maxBytes);
  return {
    async set(k, e, ttlMs = HOUR) { s.set(k, e, Buffer.byteLength(e.body), ttlMs); },
    async get(k) { return s.get(k); },
    cost: (k, e) => Buffer.byteLength(e.body) + k.length + 256,
  };
});

const redis = await startRedis();
// Stopped by the suite, and here at the end too: a name pattern that skips the suite skips its hooks.
const stopRedis = (): Promise<void> | undefined => (typeof redis === 'string' ? undefined : redis.close());
after(stopRedis);

describe('the cache in Redis', { skip: typeof redis === 'string' ? redis : false }, () => {
  const server = redis as RedisServer;
  const opened: SharedRedis[] = [];
  let uniq = 0;
  const open = async (prefix: string): Promise<SharedRedis> => {
    const r = await openRedis(server.url, { prefix, log: silentLogger, checkPolicy: false });
    opened.push(r);
    return r;
  };
  /** An instance's store, every SET's outcome waited for (an error fails the test). */
  const storeOn = (r: SharedRedis, maxBytes: number): RedisStore => new RedisStore(r, (e) => { throw e; }, maxBytes);
  const put = async (s: RedisStore, k: string, e: CacheEntry, ttlMs = HOUR): Promise<RedisSetResult> => {
    const r = await s.set(k, e, Buffer.byteLength(e.body), ttlMs);
    assert.ok(r !== undefined, 'sent and answered');
    return r;
  };
  const cost = (prefix: string, k: string, e: CacheEntry): number => Buffer.byteLength(encodeEntry(e)) + `${prefix}:cache:${k}`.length + ENTRY_OVERHEAD;
  const raw = createClient({ url: server.url });
  const rawReady = raw.connect();
  /** What Redis holds for the prefix: the total, the index's and the sizes' lengths, the entries' keys. */
  const held = async (prefix: string): Promise<{ total: number; index: number; sizes: number; keys: string[] }> => {
    await rawReady;
    const total = Number(await raw.hGet(`${prefix}:cache-sizes`, 'bytes') ?? 0);
    const keys = (await raw.keys(`${prefix}:cache:*`)).map((k) => k.slice(`${prefix}:cache:`.length)).sort();
    return { total, index: await raw.zCard(`${prefix}:cache-index`), sizes: await raw.hLen(`${prefix}:cache-sizes`), keys };
  };

  after(async () => {
    for (const r of opened) await r.close();
    if (raw.isOpen) await raw.close();
    await stopRedis();
  });

  storeContract('redis', async (maxBytes) => {
    const prefix = `contract-${uniq++}`;
    const s = storeOn(await open(prefix), maxBytes);
    return {
      async set(k, e, ttlMs = HOUR) { await put(s, k, e, ttlMs); },
      get: (k) => s.get(k),
      cost: (k, e) => cost(prefix, k, e),
    };
  });

  test('two instances (each its own connection) share one bound: the oldest go, whoever kept them', async () => {
    const prefix = 'shared';
    const c = cost(prefix, key(0), entry(body(0)));
    const a = storeOn(await open(prefix), 4 * c);
    const b = storeOn(await open(prefix), 4 * c);
    for (let i = 0; i < 10; i++) {
      await put(i % 2 === 0 ? a : b, key(i), entry(body(i)));
      const h = await held(prefix);
      assert.ok(h.total <= 4 * c, `${h.total} bytes held, bound ${4 * c}`);
      assert.deepEqual(h.keys, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9].slice(Math.max(0, i - 3), i + 1).map(key), `after entry ${i}: the last four`);
      assert.deepEqual([h.total, h.index, h.sizes], [h.keys.length * c, h.keys.length, h.keys.length + 1]);
    }
    assert.equal((await b.get(key(8)))?.body, body(8), 'a\'s entry is a hit on b');
  });

  test('the byte total is the sum of what is kept: through an entry kept again, expiries and a clear', async () => {
    const prefix = 'total';
    const s = storeOn(await open(prefix), 2 ** 20);
    const a = entry(body(1));
    const b = entry(body(2, 3000));
    const c = entry(body(3, 2000));
    await put(s, key(1), a);
    await put(s, key(2), b, 200);
    await put(s, key(1), entry(body(11, 1500)));
    let h = await held(prefix);
    assert.equal(h.total, cost(prefix, key(1), entry(body(11, 1500))) + cost(prefix, key(2), b), 'an entry kept again is counted once, at its new size');
    assert.equal(h.index, 2);

    // b expires in Redis on its own; the next SET takes it off the total.
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(await s.get(key(2)), undefined);
    await put(s, key(3), c);
    h = await held(prefix);
    assert.deepEqual(h.keys, [key(1), key(3)]);
    assert.deepEqual([h.total, h.index, h.sizes], [cost(prefix, key(1), entry(body(11, 1500))) + cost(prefix, key(3), c), 2, 3]);

    // A clear takes the index and the total with the entries.
    assert.equal(await s.clear(), 2);
    await rawReady;
    assert.equal(await raw.exists([`${prefix}:cache-index`, `${prefix}:cache-sizes`]), 0, 'no index, no sizes left');
    assert.deepEqual((await held(prefix)).keys, []);
    await put(s, key(4), a);
    h = await held(prefix);
    assert.deepEqual([h.total, h.index, h.keys], [cost(prefix, key(4), a), 1, [key(4)]], 'counted afresh');
  });

  test('entries gone on their own (evicted or deleted, flushed) are taken off when met; an index and sizes that disagree start afresh', async () => {
    const prefix = 'gone';
    const c = cost(prefix, key(0), entry(body(0)));
    const s = storeOn(await open(prefix), 3 * c);
    for (const i of [1, 2, 3]) await put(s, key(i), entry(body(i)));
    await rawReady;
    // As Redis's own eviction (volatile-lru) or an operator would: the key goes, its bookkeeping stays.
    await raw.del(`${prefix}:cache:${key(1)}`);
    assert.equal((await held(prefix)).total, 3 * c, 'still counted: not met yet');
    // Met as the oldest: taken off, and the room it held is the new entry's.
    assert.deepEqual(await put(s, key(4), entry(body(4))), { kept: true, evicted: 1 });
    let h = await held(prefix);
    assert.deepEqual([h.keys, h.total, h.index, h.sizes], [[key(2), key(3), key(4)], 3 * c, 3, 4]);

    // A Redis flushed (or restarted without its data): counted afresh from nothing.
    await raw.flushAll();
    await put(s, key(6), entry(body(6)));
    h = await held(prefix);
    assert.deepEqual([h.keys, h.total, h.index, h.sizes], [[key(6)], c, 1, 2]);

    // The index lost alone (an allkeys policy evicted it): the sizes go too, not counted forever.
    await raw.del(`${prefix}:cache-index`);
    await put(s, key(7), entry(body(7)));
    h = await held(prefix);
    assert.deepEqual([h.total, h.index, h.sizes], [c, 1, 2], 'only the new entry is counted (key 6 lives out its ttl uncounted)');
  });

  test(`a SET removes at most ${MAX_REMOVALS} entries: past that it is not kept, and the next SETs go on`, async () => {
    const prefix = 'cap';
    const e = (i: number): CacheEntry => entry(body(i, 10));
    const c = cost(prefix, key(0), e(0));
    const s = storeOn(await open(prefix), 1000 * c);
    const n = MAX_REMOVALS + 50;
    for (let i = 0; i < n; i++) await put(s, key(i), e(i));
    // A reload makes max_size smaller: ten entries' room.
    s.maxBytes = 10 * c;
    assert.deepEqual(await put(s, key(n), e(n)), { kept: false, evicted: MAX_REMOVALS });
    assert.equal((await held(prefix)).total, 50 * c);
    assert.deepEqual(await put(s, key(n + 1), e(n + 1)), { kept: true, evicted: 41 });
    const h = await held(prefix);
    assert.deepEqual([h.total, h.index], [10 * c, 10]);
    assert.deepEqual(h.keys, [...Array.from({ length: 9 }, (_, i) => key(n - 9 + i)), key(n + 1)], 'the newest nine and the new one');
  });

  test('a Redis that lost its scripts (restarted, SCRIPT FLUSH): the next SET and lookup send them whole, and serve', async () => {
    const prefix = 'noscript';
    const s = storeOn(await open(prefix), 2 ** 20);
    await put(s, key(1), entry(body(1)));
    await rawReady;
    await raw.scriptFlush();
    assert.equal((await s.get(key(1)))?.body, body(1), 'the lookup');
    await raw.scriptFlush();
    assert.deepEqual(await put(s, key(2), entry(body(2))), { kept: true, evicted: 0 }, 'the SET');
    assert.equal((await s.get(key(2)))?.body, body(2));
  });

  test('an entry larger than max_size evicts nothing and is not kept; a lookup is one GET, nothing more', async () => {
    const prefix = 'lookup';
    const small = entry(body(1));
    const s = storeOn(await open(prefix), 2 * cost(prefix, key(1), small));
    await put(s, key(1), small);
    assert.deepEqual(await put(s, key(2), entry(body(2, 10_000))), { kept: false, evicted: 0 });
    assert.deepEqual((await held(prefix)).keys, [key(1)]);

    await rawReady;
    await raw.configResetStat();
    assert.equal((await s.get(key(1)))?.body, body(1));
    const stats = (await raw.info('commandstats')).split('\n').filter((l) => l.startsWith('cmdstat_') && !/^cmdstat_(info|config)/.test(l));
    assert.deepEqual(stats.map((l) => /^cmdstat_([a-z|]+):calls=(\d+)/.exec(l)!.slice(1).join('=')).sort(), ['evalsha=1', 'get=1']);
  });
});

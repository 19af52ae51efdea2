// The rate limiter and the budget ledger each have a per-process and a Redis implementation:
// one contract suite for each interface, run against both (Redis: a real server).

import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { LocalBuckets, RedisBuckets, type RateLimiter } from '../src/limits/buckets.ts';
import { MemoryLedger, RedisLedger, type BudgetScope, type Hold, type Ledger } from '../src/accounting/ledger.ts';
import { openRedis, script, type SharedRedis } from '../src/limits/redis-client.ts';
import { silentLogger } from '../src/core/log.ts';
import { startRedis, type RedisServer } from './support/servers.ts';

let uniq = 0;
const name = (s: string): string => `${s}-${process.pid}-${uniq++}`;

function limiterContract(label: string, make: () => Promise<RateLimiter>): void {
  test(`${label}: a bucket gives its limit at once, then refuses with the wait until one more fits`, async () => {
    const l = await make();
    const k = name('rpm');
    for (let i = 0; i < 5; i++) assert.deepEqual(await l.take([{ key: k, limit: 5, cost: 1 }]), { ok: true });
    const r = await l.take([{ key: k, limit: 5, cost: 1 }]);
    assert.equal(r.ok, false);
    if (!r.ok) assert.ok(r.retryAfterMs > 10_000 && r.retryAfterMs <= 12_000, `${r.retryAfterMs} ms: a 5/min bucket refills one every 12 s`);
    await l.close();
  });

  test(`${label}: all buckets or none; the one that refuses is named`, async () => {
    const l = await make();
    const a = name('a');
    const b = name('b');
    assert.ok((await l.take([{ key: a, limit: 100, cost: 60 }, { key: b, limit: 10, cost: 10 }])).ok);
    const r = await l.take([{ key: a, limit: 100, cost: 10 }, { key: b, limit: 10, cost: 1 }]);
    assert.equal(r.ok, false);
    if (!r.ok) assert.equal(r.index, 1);
    // a was not charged by the refused take: 40 left.
    assert.ok((await l.take([{ key: a, limit: 100, cost: 40 }])).ok);
    await l.close();
  });

  test(`${label}: a reservation settled lower gives tokens back; higher leaves the bucket owing`, async () => {
    const l = await make();
    const k = name('tpm');
    assert.ok((await l.take([{ key: k, limit: 1000, cost: 900 }])).ok);
    assert.equal((await l.take([{ key: k, limit: 1000, cost: 500 }])).ok, false);
    l.adjust(k, 1000, 800);
    await new Promise((r) => setTimeout(r, 50));
    assert.ok((await l.take([{ key: k, limit: 1000, cost: 500 }])).ok);
    l.adjust(k, 1000, -2000);
    await new Promise((r) => setTimeout(r, 50));
    assert.equal((await l.take([{ key: k, limit: 1000, cost: 1 }])).ok, false, 'owing');
    // A request larger than the whole limit still runs when the bucket is full.
    const big = name('big');
    assert.ok((await l.take([{ key: big, limit: 100, cost: 5000 }])).ok);
    await l.close();
  });
}

function ledgerContract(label: string, make: () => Promise<Ledger>): void {
  const scope = (limit: number): BudgetScope => ({ id: name('budget'), limit, period: 'month' });

  test(`${label}: reservations are all-or-none and never exceed the limit; settling frees the rest`, async () => {
    const l = await make();
    const s = scope(1);
    const other = scope(100);
    const holds: Hold[] = [];
    for (let i = 0; i < 4; i++) {
      const r = await l.reserve(name('h'), [other, s], 0.25);
      assert.ok(r.ok);
      if (r.ok) holds.push(r.hold);
    }
    const refused = await l.reserve(name('h'), [other, s], 0.25);
    assert.equal(refused.ok, false);
    if (!refused.ok) {
      assert.equal(refused.scope.id, s.id);
      assert.ok(Math.abs(refused.reserved - 1) < 1e-9);
    }
    for (const h of holds) l.settle(h, 0.1);
    await new Promise((r) => setTimeout(r, 50));
    const v = l.view(s);
    assert.ok(Math.abs(v.spent - 0.4) < 1e-9, `spent ${v.spent}`);
    assert.ok(Math.abs(v.reserved) < 1e-9);
    assert.ok(Math.abs(l.view(other).spent - 0.4) < 1e-9, 'both scopes were charged');
    assert.ok((await l.reserve(name('h'), [s], 0.6)).ok);
    assert.equal((await l.reserve(name('h'), [s], 0.01)).ok, false);
    await l.close();
  });

  test(`${label}: 200 racing reservations: the settled total stays within the limit`, async () => {
    const l = await make();
    const s = scope(5);
    const results = await Promise.all(Array.from({ length: 200 }, async () => {
      const r = await l.reserve(name('h'), [s], 0.1);
      if (!r.ok) return 0;
      await new Promise((res) => setTimeout(res, Math.random() * 20));
      const actual = 0.1 * Math.random();
      l.settle(r.hold, actual);
      return actual;
    }));
    const spent = results.reduce((a, b) => a + b, 0);
    assert.ok(spent <= 5 + 1e-9, `spent ${spent}`);
    assert.ok(results.filter((x) => x > 0).length >= 50);
    await l.close();
  });

  test(`${label}: the store's settled total is the floor of spend (rebase)`, async () => {
    const l = await make();
    const s = scope(10);
    assert.ok((await l.reserve(name('h'), [s], 1)).ok);
    await l.rebase(new Map([[s.id, 9.5]]), l.mark(), [s]);
    assert.ok(l.view(s).spent >= 9.5 - 1e-9);
    assert.equal((await l.reserve(name('h'), [s], 0.6)).ok, false, '9.5 spent + 1 held + 0.6 > 10');
    await l.close();
  });
}

describe('per process', () => {
  limiterContract('local buckets', async () => new LocalBuckets());

  test('local buckets: a bucket that owes is kept until the debt is paid off; a full one is forgotten', () => {
    let now = 1_000_000;
    const l = new LocalBuckets(() => now);
    assert.ok(l.take([{ key: 'tpm', limit: 1000, cost: 900 }, { key: 'rpm', limit: 10, cost: 1 }]).ok);
    l.adjust('tpm', 1000, -6000); // the request used 6,000 tokens more than it reserved: six minutes' worth
    now += 62_000;
    l.sweep();
    const r = l.take([{ key: 'tpm', limit: 1000, cost: 1 }]);
    assert.equal(r.ok, false, 'still owing after a minute');
    if (!r.ok) assert.ok(r.retryAfterMs > 4 * 60_000, `${r.retryAfterMs} ms`);
    now += 6 * 60_000;
    l.sweep();
    assert.ok(l.take([{ key: 'tpm', limit: 1000, cost: 1000 }]).ok, 'paid off');
    l.close();
  });
  ledgerContract('memory ledger', async () => new MemoryLedger());

  test('memory ledger: totals read across a period\'s end stay with the period they were read for, not the new one', () => {
    let now = Date.UTC(2026, 11, 31, 23, 59, 59, 990);
    const l = new MemoryLedger(() => now);
    const s: BudgetScope = { id: 'budget:day', limit: 10, period: 'day' };
    const readAt = now;
    const marks = l.mark();
    now += 20; // midnight passes while the store is read
    l.rebase(new Map([[s.id, 9.5]]), marks, [s], readAt);
    assert.equal(l.view(s).spent, 0, 'the new day starts at nothing');
    assert.ok(l.reserve('h', [s], 1).ok);
  });

  test('memory ledger: committed records move from pending to the store\'s total without counting twice', () => {
    const l = new MemoryLedger();
    const s: BudgetScope = { id: 'budget:x', limit: 10, period: 'month' };
    const r = l.reserve('h1', [s], 2);
    assert.ok(r.ok);
    if (r.ok) l.settle(r.hold, 1.5);
    assert.equal(l.view(s).spent, 1.5);
    const marks = l.mark();
    l.committed([s.id], Date.now(), 1.5, () => 'month');
    assert.equal(l.view(s).spent, 1.5);
    // The store read started before the commit: its total lacks the 1.5, the ledger keeps it.
    l.rebase(new Map([[s.id, 0]]), marks, [s]);
    assert.equal(l.view(s).spent, 1.5);
    // The next read includes it: no double count.
    l.rebase(new Map([[s.id, 1.5]]), l.mark(), [s]);
    assert.equal(l.view(s).spent, 1.5);
  });
});

const redis = await startRedis();
describe('redis', { skip: typeof redis === 'string' ? redis : false }, () => {
  const server = redis as RedisServer;
  const clients: SharedRedis[] = [];
  const client = async (): Promise<SharedRedis> => {
    const c = await openRedis(server.url, { prefix: name('t'), log: silentLogger, timeoutMs: 2000 });
    clients.push(c);
    return c;
  };
  after(async () => {
    for (const c of clients) await c.close();
    await server.close();
  });
  limiterContract('redis buckets', async () => new RedisBuckets(await client()));

  test('redis buckets: a bucket that owes lives until it is full again, not a fixed minute', async () => {
    const c = await client();
    const l = new RedisBuckets(c);
    const k = name('tpm');
    assert.ok((await l.take([{ key: k, limit: 1000, cost: 900 }])).ok);
    l.adjust(k, 1000, -6000);
    await new Promise((r) => setTimeout(r, 50));
    const ttl = Number(await c.run(script("return redis.call('PTTL', KEYS[1])"), [`${c.prefix}:rl:${k}`], []));
    // 100 left - 6,000 owed = -5,900: 6,900 tokens to refill at 1,000 a minute.
    assert.ok(ttl > 6.8 * 60_000 && ttl <= 7 * 60_000, `${ttl} ms`);
    const full = name('rpm');
    assert.ok((await l.take([{ key: full, limit: 60, cost: 1 }])).ok);
    const short = Number(await c.run(script("return redis.call('PTTL', KEYS[1])"), [`${c.prefix}:rl:${full}`], []));
    assert.ok(short > 0 && short <= 2_000, `${short} ms: one request's worth to refill`);
  });
  ledgerContract('redis ledger', async () => new RedisLedger(await client(), { holdTtlMs: 60_000 }));

  test('redis ledger: a request settled after Redis lost the budget (a flush, a restart) does not reset its spend to that request\'s cost', async () => {
    const c = await client();
    const l = new RedisLedger(c, { holdTtlMs: 60_000 });
    const s: BudgetScope = { id: name('budget'), limit: 1, period: 'month' };
    const first = await l.reserve(name('h'), [s], 0.9);
    assert.ok(first.ok);
    if (first.ok) l.settle(first.hold, 0.9);
    const held = await l.reserve(name('h'), [s], 0.05);
    assert.ok(held.ok);
    await new Promise((r) => setTimeout(r, 50));
    // Redis forgets the budget (FLUSHALL, a restart without persistence) while the request runs.
    await c.run(script("for _, k in ipairs(redis.call('KEYS', ARGV[1])) do redis.call('DEL', k) end return 0"), [], [`${c.prefix}:budget:${s.id}:*`]);
    if (held.ok) l.settle(held.hold, 0.05);
    await new Promise((r) => setTimeout(r, 50));
    const next = await l.reserve(name('h'), [s], 0.1);
    assert.equal(next.ok, false, '0.95 of 1 is spent: no room for 0.10');
    assert.ok(Math.abs(l.view(s).spent - 0.95) < 1e-9, `spent ${l.view(s).spent}`);
  });

  test('redis ledger: a reservation that timed out here but ran there is released, not left holding budget for the hold\'s lifetime', async () => {
    const c = await openRedis(server.url, { prefix: name('t'), log: silentLogger, timeoutMs: 60 });
    clients.push(c);
    const { createClient } = await import('redis');
    const admin = createClient({ url: server.url });
    await admin.connect();
    try {
      const l = new RedisLedger(c, { holdTtlMs: 600_000 });
      const s: BudgetScope = { id: name('budget'), limit: 1, period: 'month' };
      // Writes paused for longer than the client waits: the RESERVE runs after it gave up.
      await admin.sendCommand(['CLIENT', 'PAUSE', '300', 'WRITE']);
      const r = await l.reserve(name('h'), [s], 0.4);
      assert.ok(r.ok, 'served from the per-process ledger meanwhile');
      assert.equal(r.ok && r.hold.shared, false);
      await new Promise((res) => setTimeout(res, 500));
      const keys = await admin.keys(`${c.prefix}:budget:${s.id}:*`);
      const main = keys.find((k) => !k.endsWith(':h') && !k.endsWith(':a'));
      assert.ok(main !== undefined, 'the RESERVE did run in Redis');
      assert.equal(Number(await admin.hGet(main, 'reserved')), 0, 'and its hold was released right after');
    } finally {
      await admin.close();
    }
  });

  test('redis ledger: an abandoned hold (a crashed instance) expires and frees its budget', async () => {
    const c = await client();
    const crashed = new RedisLedger(c, { holdTtlMs: 100 });
    const s: BudgetScope = { id: name('budget'), limit: 1, period: 'day' };
    assert.ok((await crashed.reserve('h1', [s], 1)).ok);
    const survivor = new RedisLedger(c, { holdTtlMs: 60_000 });
    assert.equal((await survivor.reserve('h2', [s], 0.5)).ok, false);
    await new Promise((r) => setTimeout(r, 150));
    assert.ok((await survivor.reserve('h3', [s], 0.5)).ok, 'the expired hold was purged');
  });

  test('redis gone: limits and budgets fall back to the process', async () => {
    const c = await openRedis('redis://127.0.0.1:1', { prefix: 'x', log: silentLogger });
    const l = new RedisBuckets(c);
    assert.ok((await l.take([{ key: 'k', limit: 1, cost: 1 }])).ok);
    assert.equal((await l.take([{ key: 'k', limit: 1, cost: 1 }])).ok, false);
    const led = new RedisLedger(c, { holdTtlMs: 1000 });
    const s: BudgetScope = { id: 'b', limit: 1, period: 'day' };
    assert.ok((await led.reserve('h', [s], 1)).ok);
    assert.equal((await led.reserve('h2', [s], 0.1)).ok, false);
    await c.close();
  });
});

// The store contract: one suite, run against every Store implementation (SQLite and a real
// PostgreSQL) by test/store.test.ts. What a store must do, not how.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { keyRevision } from '../../src/store/rows.ts';
import { StoreError, type KeyRecord, type Store, type UsageRecord, type UsageRow } from '../../src/store/types.ts';

export interface StoreFactory {
  /** A store over a fresh, empty database. */
  fresh(): Promise<Store>;
  /** A second store over the same database as the last fresh() one (another instance). */
  another(): Promise<Store>;
}

const DAY = 86_400_000;
const T0 = Date.UTC(2025, 5, 10, 12, 0, 0);

export function key(over: Partial<KeyRecord> = {}): KeyRecord {
  const id = over.id ?? `key_${Math.random().toString(16).slice(2, 14)}`;
  return {
    id, hash: `h-${id}`, hint: 'sk-fabric-abcd…wxyz', name: 'obsidian', metadata: { app: 'obsidian', owner: 'mdt' }, roles: ['local/chat'],
    expiresAt: undefined, budget: { amount: 10, period: 'month' }, rpm: 60, tpm: 10_000, roleLimits: { 'openai/strong': { rpm: 5 } },
    createdAt: T0, updatedAt: T0, revokedAt: undefined, ...over,
  };
}

export function usage(id: string, over: Partial<UsageRecord> = {}): UsageRecord {
  return {
    id, ts: T0, keyId: 'key_a', keyName: 'obsidian', op: 'chat', model: 'local/chat', role: 'chat-fast', backend: 'armitage-qwen',
    upstreamModel: 'Qwen/Qwen2.5-7B-Instruct-AWQ', status: 200, code: undefined, promptTokens: 10, completionTokens: 20, estimated: false,
    latencyMs: 12.5, ttftMs: undefined, attempts: 1, rerouted: false, stream: false, cost: 0, ...over,
  };
}

export function storeContract(name: string, factory: StoreFactory): void {
  test(`${name}: migrations apply once, also when two instances start together`, async () => {
    const a = await factory.fresh();
    const b = await factory.another();
    try {
      const [ra, rb] = await Promise.all([a.migrate(), b.migrate()]);
      assert.deepEqual([...ra, ...rb].sort(), [1, 2, 3], 'each migration applied by exactly one instance');
      assert.deepEqual(await a.migrate(), []);
      await a.ping();
    } finally {
      await a.close();
      await b.close();
    }
  });

  test(`${name}: keys round-trip; lookups by id and hash; updates clear fields and bump the version`, async () => {
    const s = await factory.fresh();
    try {
      await s.migrate();
      const v0 = await s.keysVersion();
      const k = key({ id: 'key_one', expiresAt: T0 + DAY });
      await s.insertKey(k);
      assert.equal(await s.keysVersion(), v0 + 1);
      assert.deepEqual(await s.keyById('key_one'), k);
      assert.deepEqual(await s.keyByHash(k.hash), k);
      assert.equal(await s.keyById('nope'), undefined);
      assert.equal(await s.keyByHash('nope'), undefined);
      await assert.rejects(s.insertKey(key({ id: 'key_two', hash: k.hash })), /UNIQUE|unique|duplicate/i, 'hashes are unique');
      const k2 = key({ id: 'key_two', name: 'trailblazer', roles: undefined, budget: undefined, rpm: undefined, tpm: undefined, roleLimits: {}, metadata: {} });
      await s.insertKey(k2);
      assert.deepEqual((await s.listKeys()).map((x) => x.id), ['key_one', 'key_two']);
      assert.deepEqual(await s.keyById('key_two'), k2);
      const upd = await s.updateKey('key_one', { expiresAt: undefined, budget: { amount: 25, period: 'day' }, updatedAt: T0 + 1 });
      assert.equal(upd?.expiresAt, undefined);
      assert.deepEqual(await s.keyById('key_one'), upd);
      assert.deepEqual(upd?.budget, { amount: 25, period: 'day' });
      const v1 = await s.keysVersion();
      const rev = await s.updateKey('key_one', { revokedAt: T0 + 2 });
      assert.equal(rev?.revokedAt, T0 + 2);
      assert.ok(await s.keysVersion() > v1);
      // Rotation: a new hash, the old one finds nothing.
      await s.updateKey('key_two', { hash: 'h-rotated', hint: 'sk-fabric-new…' });
      assert.equal(await s.keyByHash(k2.hash), undefined);
      assert.equal((await s.keyByHash('h-rotated'))?.id, 'key_two');
      // A rotation that lost a race (the hash it read is gone) changes nothing.
      const v2 = await s.keysVersion();
      assert.equal(await s.updateKey('key_two', { hash: 'h-late', hint: 'x' }, { hash: k2.hash }), null);
      assert.equal((await s.keyByHash('h-rotated'))?.id, 'key_two');
      assert.equal(await s.keysVersion(), v2);
      assert.equal((await s.updateKey('key_two', { hash: 'h-next', hint: 'y' }, { hash: 'h-rotated' }))?.hash, 'h-next');
      assert.equal(await s.updateKey('missing', { name: 'x' }), undefined);
    } finally {
      await s.close();
    }
  });

  test(`${name}: an update conditional on the key's revision: two writers that read the same key, one writes, the other's write is refused and nothing of the first is lost`, async () => {
    const a = await factory.fresh();
    await a.migrate();
    const b = await factory.another();
    try {
      // Keys out of order, nested: PostgreSQL's JSONB gives them back in its own order, which the revision must not see.
      const k = key({ id: 'key_cas', metadata: { zeta: 1, owner: 'mdt', app: 'obsidian', nested: { y: [1, { b: 2, a: 1 }], x: null } }, roleLimits: { 'openai/strong': { tpm: 900, rpm: 5 } } });
      await a.insertKey(k);
      const read = (await a.keyById('key_cas'))!;
      assert.equal(keyRevision(read), keyRevision(k), 'the revision of a key as written is that of the key read back');
      assert.equal(keyRevision((await b.keyById('key_cas'))!), keyRevision(k));
      // Both read it; a writes first (tier), then b (team) with the revision it read.
      const seenByB = (await b.keyById('key_cas'))!;
      const first = await a.updateKey('key_cas', { metadata: { ...read.metadata, tier: 'premium' }, updatedAt: T0 + 1 }, { revision: keyRevision(read) });
      assert.ok(first, 'the first conditional write is made');
      assert.notEqual(keyRevision(first), keyRevision(read), 'a write gives a new revision');
      assert.equal(keyRevision((await b.keyById('key_cas'))!), keyRevision(first), 'the key returned is the key stored: its revision is what the next read gives');
      const v = await b.keysVersion();
      assert.equal(await b.updateKey('key_cas', { metadata: { ...seenByB.metadata, team: 'notes' }, updatedAt: T0 + 2 }, { revision: keyRevision(seenByB) }), null, 'the second, stale, is refused');
      assert.deepEqual(await b.keyById('key_cas'), first, 'and changes nothing');
      assert.equal(await b.keysVersion(), v);
      // Read again, merged again: both fields are kept.
      const again = (await b.keyById('key_cas'))!;
      const second = await b.updateKey('key_cas', { metadata: { ...again.metadata, team: 'notes' }, updatedAt: T0 + 2 }, { revision: keyRevision(again) });
      assert.deepEqual(second?.metadata, { zeta: 1, owner: 'mdt', app: 'obsidian', nested: { y: [1, { b: 2, a: 1 }], x: null }, tier: 'premium', team: 'notes' });
      // A write made without a condition (another instance, an older gateway) is a change all the same.
      const before = (await a.keyById('key_cas'))!;
      await b.updateKey('key_cas', { rpm: 61 });
      assert.equal(await a.updateKey('key_cas', { rpm: 62 }, { revision: keyRevision(before) }), null);
      assert.equal((await a.keyById('key_cas'))?.rpm, 61);
      // updated_at never goes back (a clock behind, or two writes in one millisecond): each write a new revision.
      const late = await a.updateKey('key_cas', { name: 'renamed', updatedAt: T0 });
      assert.equal(late?.updatedAt, T0 + 3);
      const same = await a.updateKey('key_cas', { name: 'renamed', updatedAt: T0 });
      assert.equal(same?.updatedAt, T0 + 4);
      assert.notEqual(keyRevision(same!), keyRevision(late!));
      assert.equal(await a.updateKey('missing', { name: 'x' }, { revision: keyRevision(same!) }), undefined, 'no key: undefined, as unconditionally');
      // At once, both with the revision they read: exactly one is made.
      const now = (await a.keyById('key_cas'))!;
      const race = await Promise.all([
        a.updateKey('key_cas', { metadata: { ...now.metadata, from: 'a' } }, { revision: keyRevision(now) }),
        b.updateKey('key_cas', { metadata: { ...now.metadata, from: 'b' } }, { revision: keyRevision(now) }),
      ]);
      assert.equal(race.filter((r) => r === null).length, 1, 'one of the two is refused');
      const won = race.find((r) => r !== null)!;
      assert.deepEqual((await a.keyById('key_cas'))?.metadata, won.metadata);
    } finally {
      await a.close();
      await b.close();
    }
  });

  test(`${name}: usage is stored once per request id, whatever is retried`, async () => {
    const s = await factory.fresh();
    try {
      await s.migrate();
      const batch = [usage('req_1'), usage('req_2', { stream: true, ttftMs: 3.5, estimated: true, rerouted: true, code: undefined }), usage('req_3', { status: 429, code: 'rate_limit_exceeded', keyId: undefined, keyName: undefined })];
      assert.equal(await s.insertUsage(batch), 3);
      assert.equal(await s.insertUsage(batch), 0, 'a retried batch adds nothing');
      assert.equal(await s.insertUsage([usage('req_3'), usage('req_4')]), 1, 'a batch overlapping a stored one adds only the new');
      assert.equal(await s.insertUsage([]), 0);
      assert.deepEqual(await s.usageById('req_2'), batch[1]);
      assert.deepEqual(await s.usageById('req_3'), batch[2]);
      assert.equal(await s.usageById('req_none'), undefined);
      // A batch larger than one statement's group (SQLite writes 100 rows at a time), overlapping what is stored.
      const big = Array.from({ length: 130 }, (_, i) => usage(`req_big_${i}`, { cost: i % 10 === 0 ? 0.01 : 0, ts: T0 + i }));
      assert.equal(await s.insertUsage(big.slice(0, 40)), 40);
      assert.equal(await s.insertUsage(big), 90, 'only the 90 new of 130');
      assert.deepEqual(await s.usageById('req_big_129'), big[129]);
      assert.deepEqual(await s.usageById('req_big_50'), big[50]);
      const spend = await s.spendSince(T0);
      assert.equal(spend.length, 1);
      assert.ok(Math.abs(spend[0]!.cost - 0.13) < 1e-9, `13 priced rows of 130: ${spend[0]!.cost}`);
    } finally {
      await s.close();
    }
  });

  test(`${name}: a record the database refuses fails its batch as a permanent StoreError, and stores none of it`, async () => {
    const s = await factory.fresh();
    try {
      await s.migrate();
      // A NOT NULL column left empty: the statement is at fault, so retrying it cannot help.
      const bad = usage('req_bad', { op: null as unknown as 'chat' });
      const err = await s.insertUsage([usage('req_ok'), bad]).then(() => undefined, (e: unknown) => e);
      assert.ok(err instanceof StoreError, `a StoreError, not ${String(err)}`);
      assert.equal(err.permanent, true, err.message);
      assert.equal(await s.usageById('req_ok'), undefined, 'the batch is one transaction');
      assert.equal(await s.insertUsage([usage('req_ok')]), 1, 'the store still takes good records');
    } finally {
      await s.close();
    }
  });

  test(`${name}: by key, two keys that share a name are two rows, each with its id`, async () => {
    const s = await factory.fresh();
    try {
      await s.migrate();
      await s.insertUsage([
        usage('d1', { keyId: 'key_a', keyName: 'obsidian', cost: 0.5 }),
        usage('d2', { keyId: 'key_a', keyName: 'obsidian', cost: 0.5 }),
        usage('d3', { keyId: 'key_z', keyName: 'obsidian', cost: 0.25 }),
        usage('d4', { keyId: undefined, keyName: undefined, cost: 0 }),
      ]);
      const rows = await s.usageSummary({ by: 'key' });
      assert.deepEqual(rows.map((r) => [r.group, r.keyId, r.requests]), [['obsidian', 'key_a', 2], ['obsidian', 'key_z', 1], ['(none)', undefined, 1]]);
    } finally {
      await s.close();
    }
  });

  test(`${name}: usage reports by key, role, backend, model, day and status; spend since a time`, async () => {
    const s = await factory.fresh();
    try {
      await s.migrate();
      await s.insertUsage([
        usage('r1', { cost: 0.5, promptTokens: 100, completionTokens: 50, backend: 'openai-strong', role: 'openai/strong', model: 'openai/strong' }),
        usage('r2', { cost: 0.25, ts: T0 + DAY, backend: 'openai-strong', role: 'openai/strong', model: 'openai/strong' }),
        usage('r3', { keyId: 'key_b', keyName: 'trailblazer', ts: T0 + DAY, latencyMs: 30 }),
        usage('r4', { keyId: undefined, keyName: undefined, status: 503, code: 'no_backend_available', promptTokens: 0, completionTokens: 0, ts: T0 + 2 * DAY }),
      ]);
      const byKey = await s.usageSummary({ by: 'key' });
      assert.deepEqual(byKey.map((r) => [r.group, r.requests, r.errors]), [['obsidian', 2, 0], ['(none)', 1, 1], ['trailblazer', 1, 0]]);
      assert.equal(byKey[0]!.cost, 0.75);
      assert.equal(byKey[0]!.promptTokens, 110);
      assert.equal(byKey[0]!.completionTokens, 70);
      const byDay = await s.usageSummary({ by: 'day' });
      assert.deepEqual(byDay.map((r) => [r.group, r.requests]), [['2025-06-10', 1], ['2025-06-11', 2], ['2025-06-12', 1]]);
      const byBackend = await s.usageSummary({ by: 'backend', since: T0 + DAY, until: T0 + 2 * DAY });
      assert.deepEqual(byBackend.map((r) => [r.group, r.requests]), [['openai-strong', 1], ['armitage-qwen', 1]]);
      assert.deepEqual((await s.usageSummary({ by: 'status' })).map((r) => r.group).sort(), ['200', '503']);
      assert.deepEqual((await s.usageSummary({ by: 'model', keyId: 'key_b' })).map((r) => [r.group, r.avgLatencyMs]), [['local/chat', 30]]);
      assert.deepEqual((await s.usageSummary({ by: 'role', since: T0 + 10 * DAY })), []);
      const spend = await s.spendSince(T0 + 1);
      assert.deepEqual(spend, [{ keyId: 'key_a', backend: 'openai-strong', cost: 0.25 }]);
    } finally {
      await s.close();
    }
  });

  test(`${name}: records folded into daily totals report and spend as they did; a late record for a folded day adds to it; two instances folding at once count each record once`, async () => {
    const s = await factory.fresh();
    const other = await factory.another();
    try {
      await s.migrate();
      const mix = (day: number, i: number): UsageRecord => usage(`m${day}_${i}`, {
        ts: T0 - 12 * 3_600_000 + day * DAY + i * 60_000, // from the day's midnight on
        keyId: i % 3 === 0 ? undefined : i % 3 === 1 ? 'key_a' : 'key_b', keyName: i % 3 === 0 ? undefined : i % 3 === 1 ? 'obsidian' : 'trailblazer',
        status: i % 5 === 0 ? 503 : 200, code: i % 5 === 0 ? 'no_backend_available' : i % 7 === 0 ? 'stream_interrupted' : undefined,
        backend: i % 2 === 0 ? 'openai-strong' : 'armitage-qwen', role: i % 2 === 0 ? 'openai/strong' : 'chat-fast',
        model: i % 4 === 0 ? 'local/chat' : 'chat-fast', cost: i % 2 === 0 ? 0.01 * (i + 1) : 0, promptTokens: i, completionTokens: 2 * i, latencyMs: 10 + i,
      });
      const records = [0, 1, 2, 3].flatMap((d) => Array.from({ length: 40 }, (_, i) => mix(d, i)));
      assert.equal(await s.insertUsage(records), 160);
      // Sums in another order may differ in the last bits of a double.
      const rounded = (rows: UsageRow[]): unknown => rows.map((r) => ({ ...r, cost: Math.round(r.cost * 1e9), avgLatencyMs: Math.round(r.avgLatencyMs * 1e6) }));
      const reports = async (): Promise<unknown> => {
        const out: Record<string, unknown> = {};
        for (const by of ['key', 'role', 'backend', 'model', 'day', 'status'] as const) out[by] = rounded(await s.usageSummary({ by }));
        out.keyB = rounded(await s.usageSummary({ by: 'day', keyId: 'key_b' }));
        out.fromDay1 = rounded(await s.usageSummary({ by: 'backend', since: T0 - 12 * 3_600_000 + DAY, until: T0 - 12 * 3_600_000 + 3 * DAY }));
        for (const since of [0, T0 - 12 * 3_600_000 + DAY, T0 - 12 * 3_600_000 + 3 * DAY]) {
          out[`spend${since}`] = (await s.spendSince(since)).map((r) => ({ ...r, cost: Math.round(r.cost * 1e9) }))
            .sort((a, b) => `${a.keyId}/${a.backend}`.localeCompare(`${b.keyId}/${b.backend}`));
        }
        return out;
      };
      const before = await reports();
      const horizon = T0 - 12 * 3_600_000 + 3 * DAY; // days 0, 1 and 2 fold; day 3 stays
      // Small passes, so that a day is folded in several and merged; the two instances race.
      const fold = async (st: Store): Promise<number> => {
        let total = 0;
        for (let n = await st.rollupUsage(horizon, 7); n > 0; n = await st.rollupUsage(horizon, 7)) total += n;
        return total;
      };
      const [a, b] = await Promise.all([fold(s), fold(other)]);
      assert.equal(a + b, 120, `each of the 120 records before the horizon folded once (${a} + ${b})`);
      assert.equal(await s.rollupUsage(horizon, 7), 0, 'nothing left to fold');
      assert.deepEqual(await reports(), before, 'every report and every spend sum the same');
      assert.equal(await s.usageById('m1_5'), undefined, 'a folded record is gone as a record');
      assert.deepEqual(await s.usageById('m3_5'), records[125], 'a record after the horizon is untouched');
      const keyA = (await s.usageSummary({ by: 'key' })).find((r) => r.keyId === 'key_a')!;
      // A record of a folded day arriving late (a spool replayed after an outage) adds to it.
      await s.insertUsage([usage('late', { ts: T0, keyId: 'key_a', cost: 1, backend: 'openai-strong', role: 'openai/strong', model: 'local/chat', code: undefined })]);
      assert.equal(await s.rollupUsage(horizon, 7), 1);
      const after = (await s.usageSummary({ by: 'key' })).find((r) => r.keyId === 'key_a')!;
      assert.deepEqual([after.requests, Math.round((after.cost - keyA.cost) * 1e9)], [keyA.requests + 1, 1e9]);
      assert.equal((await s.usageSummary({ by: 'day' })).find((r) => r.group === '2025-06-10')!.requests, 41);
    } finally {
      await other.close();
      await s.close();
    }
  });

  test(`${name}: a 200 recorded with an error code (a stream that broke after its first byte) counts as an error, its tokens billed`, async () => {
    const s = await factory.fresh();
    try {
      await s.migrate();
      await s.insertUsage([
        usage('ok'),
        usage('cut', { code: 'stream_interrupted', stream: true, completionTokens: 6, estimated: true }),
        usage('gone', { status: 503, code: 'no_backend_available', promptTokens: 0, completionTokens: 0 }),
      ]);
      const byStatus = await s.usageSummary({ by: 'status' });
      assert.deepEqual(byStatus.map((r) => [r.group, r.requests, r.errors, r.completionTokens]).sort(), [['200', 2, 1, 26], ['503', 1, 1, 0]]);
      assert.deepEqual((await s.usageSummary({ by: 'key' })).map((r) => [r.group, r.requests, r.errors]), [['obsidian', 3, 2]]);
      const cut = await s.usageById('cut');
      assert.deepEqual([cut?.status, cut?.code], [200, 'stream_interrupted'], 'the record keeps the status the client had');
    } finally {
      await s.close();
    }
  });

  test(`${name}: request logs are stored, read back, and pruned by age and by size`, async () => {
    const s = await factory.fresh();
    try {
      await s.migrate();
      const mk = (id: string, ts: number, size: number) => ({ id, ts, keyId: 'key_a', status: 200, request: 'q'.repeat(size), response: 'a'.repeat(size) });
      await s.insertRequestLogs([mk('l1', T0, 100), mk('l2', T0 + 1000, 100), mk('l3', T0 + 2000, 100), mk('l4', T0 + 3000, 100)]);
      assert.deepEqual((await s.requestLogs({ limit: 10 })).map((r) => r.id), ['l4', 'l3', 'l2', 'l1']);
      assert.equal((await s.requestLogs({ limit: 10, id: 'l2' }))[0]!.request.length, 100);
      assert.equal(await s.pruneRequestLogs(T0 + 500, 1_000_000), 1, 'older than retention');
      assert.equal(await s.pruneRequestLogs(0, 450), 1, 'oldest dropped until the rest fits');
      assert.deepEqual((await s.requestLogs({ limit: 10 })).map((r) => r.id), ['l4', 'l3']);
    } finally {
      await s.close();
    }
  });

  test(`${name}: a key change made by one instance is seen by another`, async () => {
    const a = await factory.fresh();
    await a.migrate();
    const b = await factory.another();
    let notified = 0;
    const unwatch = b.watchKeys?.(() => { notified++; });
    try {
      const before = await b.keysVersion();
      // A watcher reports once when it starts listening; wait for that before counting.
      if (unwatch !== undefined) await waitUntil(() => notified > 0);
      const start = notified;
      await a.insertKey(key({ id: 'key_seen' }));
      assert.ok(await b.keysVersion() > before);
      assert.equal((await b.keyById('key_seen'))?.name, 'obsidian');
      if (unwatch !== undefined) await waitUntil(() => notified > start);
    } finally {
      unwatch?.();
      await a.close();
      await b.close();
    }
  });
}

async function waitUntil(cond: () => boolean, ms = 5000): Promise<void> {
  const until = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > until) throw new Error('timed out waiting');
    await new Promise((r) => setTimeout(r, 10));
  }
}

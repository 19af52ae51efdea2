// Key lifecycle races, over a real SQLite store.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { rmSync } from 'node:fs';
import { KeyAdmin } from './admin.ts';
import { hashKey } from './token.ts';
import { keyRevision } from '../store/rows.ts';
import { SqliteStore } from '../store/sqlite.ts';
import { FabricError } from '../core/errors.ts';
import { tempDir } from '../../test/support/temp-dir.ts';

test('two rotations that both read the key before either writes: one wins, the other is a 409 conflict, and only the winner\'s secret finds the key', async () => {
  const dir = tempDir('fabric-keys-');
  const sqlite = new SqliteStore(join(dir, 'fabric.db'));
  try {
    await sqlite.migrate();
    // Each update waits until both rotations have read the key: the interleaving two instances race into.
    let reads = 0;
    let bothRead!: () => void;
    const gate = new Promise<void>((r) => { bothRead = r; });
    const store = new Proxy(sqlite, {
      get(target, prop, receiver) {
        if (prop === 'keyById') return async (id: string) => { const k = await target.keyById(id); if (++reads === 2) bothRead(); return k; };
        if (prop === 'updateKey') return async (...a: Parameters<SqliteStore['updateKey']>) => { await gate; return target.updateKey(...a); };
        const v = Reflect.get(target, prop, receiver);
        return typeof v === 'function' ? v.bind(target) : v;
      },
    });
    const admin = new KeyAdmin(store);
    const { record } = await admin.create({ name: 'obsidian' });
    reads = 0; // counted from here: the two rotations' reads
    const results = await Promise.allSettled([admin.rotate(record.id), admin.rotate(record.id)]);
    const won = results.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []));
    const lost = results.flatMap((r) => (r.status === 'rejected' ? [r] : []));
    assert.equal(won.length, 1, JSON.stringify(results.map((r) => r.status)));
    assert.equal(lost.length, 1);
    assert.ok(lost[0]!.reason instanceof FabricError);
    assert.equal((lost[0]!.reason as FabricError).code, 'conflict');
    assert.equal((await sqlite.keyByHash(hashKey(won[0]!.secret)))?.id, record.id);
  } finally {
    await sqlite.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a change made on the key as read (its revision in ifMatch): a write between the read and this one makes it a 412 precondition_failed that changes nothing; made on the key read again, it is kept with the other', async () => {
  const dir = tempDir('fabric-keys-');
  const store = new SqliteStore(join(dir, 'fabric.db'));
  try {
    await store.migrate();
    const admin = new KeyAdmin(store);
    const { record } = await admin.create({ name: 'obsidian', metadata: { owner: 'mdt' } });
    const read = await admin.find('obsidian');
    // Another writer (an operator, a script) between this one's read and its write.
    const other = await admin.update(record.id, { metadata: { ...read.metadata, tier: 'premium' } }, Date.now(), [keyRevision(read)]);
    assert.notEqual(keyRevision(other), keyRevision(read));
    const stale = await admin.update('obsidian', { metadata: { ...read.metadata, app: 'notes' } }, Date.now(), [keyRevision(read)]).catch((e: unknown) => e);
    assert.ok(stale instanceof FabricError);
    assert.equal(stale.code, 'precondition_failed');
    assert.equal(stale.status, 412);
    assert.deepEqual((await admin.find(record.id)).metadata, { owner: 'mdt', tier: 'premium' }, 'the stale write changed nothing');
    for (const change of [() => admin.revoke(record.id, Date.now(), [keyRevision(read)]), () => admin.rotate(record.id, Date.now(), [keyRevision(read)])]) {
      assert.equal(await change().then(() => 'made', (e: FabricError) => e.code), 'precondition_failed');
    }
    const again = await admin.find(record.id);
    // Any of the revisions listed (If-Match may name several) will do.
    const merged = await admin.update(record.id, { metadata: { ...again.metadata, app: 'notes' } }, Date.now(), ['gone', keyRevision(again)]);
    assert.deepEqual(merged.metadata, { owner: 'mdt', tier: 'premium', app: 'notes' });
    // The name check holds as before, conditional or not.
    await admin.create({ name: 'trailblazer' });
    const taken = await admin.update(record.id, { name: 'trailblazer' }, Date.now(), [keyRevision(merged)]).catch((e: unknown) => e);
    assert.equal((taken as FabricError).code, 'conflict');
    const { record: rotated } = await admin.rotate(record.id, Date.now(), [keyRevision(merged)]);
    assert.equal((await admin.revoke(record.id, Date.now(), [keyRevision(rotated)])).revokedAt !== undefined, true);
  } finally {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('the revision is checked again where the key is written: a write that lands after the admin\'s own read and check, before its update, still makes it a 412', async () => {
  const dir = tempDir('fabric-keys-');
  const sqlite = new SqliteStore(join(dir, 'fabric.db'));
  try {
    await sqlite.migrate();
    let cut: (() => Promise<unknown>) | undefined;
    const store = new Proxy(sqlite, {
      get(target, prop, receiver) {
        if (prop === 'updateKey') {
          return async (...a: Parameters<SqliteStore['updateKey']>) => {
            const other = cut;
            cut = undefined;
            await other?.();
            return target.updateKey(...a);
          };
        }
        const v = Reflect.get(target, prop, receiver);
        return typeof v === 'function' ? v.bind(target) : v;
      },
    });
    const admin = new KeyAdmin(store);
    const { record } = await admin.create({ name: 'obsidian', metadata: { owner: 'mdt' } });
    const read = await admin.find(record.id);
    cut = () => sqlite.updateKey(record.id, { metadata: { ...read.metadata, tier: 'premium' }, updatedAt: Date.now() });
    const stale = await admin.update(record.id, { metadata: { ...read.metadata, app: 'notes' } }, Date.now(), [keyRevision(read)]).catch((e: unknown) => e);
    assert.equal((stale as FabricError).code, 'precondition_failed');
    assert.deepEqual((await sqlite.keyById(record.id))?.metadata, { owner: 'mdt', tier: 'premium' });
  } finally {
    await sqlite.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

// Key lifecycle races, over a real SQLite store.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { rmSync } from 'node:fs';
import { KeyAdmin } from './admin.ts';
import { hashKey } from './token.ts';
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

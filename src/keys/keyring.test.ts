import { test } from 'node:test';
import assert from 'node:assert/strict';
import { KeyRing } from './keyring.ts';
import { createLogger } from '../core/log.ts';
import type { KeyRecord, Store } from '../store/types.ts';

const key = (over: Partial<KeyRecord>): KeyRecord => ({
  id: 'key_a', hash: 'h1', hint: 'sk-fabric-…', name: 'obsidian', metadata: {}, roles: undefined, expiresAt: undefined, budget: undefined,
  rpm: undefined, tpm: undefined, roleLimits: {}, createdAt: 1, updatedAt: 1, revokedAt: undefined, ...over,
});

test('put: of two changes to a key answered out of the order they were written in, the older is not put over the newer', () => {
  const ring = new KeyRing({} as Store, { syncIntervalMs: 1000, log: createLogger({ level: 'error', write: () => {} }) });
  ring.put(key({ updatedAt: 1 }));
  // Revoked at 3 and rotated (a new hash) at 3; an update written before both is answered last.
  ring.put(key({ updatedAt: 3, hash: 'h2', revokedAt: 3 }));
  ring.put(key({ updatedAt: 2, hash: 'h1', rpm: 5 }));
  assert.equal(ring.byId('key_a')?.revokedAt, 3);
  assert.equal(ring.byId('key_a')?.hash, 'h2');
  assert.deepEqual(ring.all().map((k) => k.hash), ['h2']);
  // A change at the same instant as the last (a store write that set no updated_at) is put.
  ring.put(key({ updatedAt: 3, hash: 'h2', revokedAt: 3, rpm: 7 }));
  assert.equal(ring.byId('key_a')?.rpm, 7);
});

test('sync: a reload read before a change made on this instance, answered after it, does not put the older key back (a revocation stays one)', async () => {
  let answer!: (all: KeyRecord[]) => void;
  let version = 1;
  const store = {
    keysVersion: async () => version,
    listKeys: () => new Promise<KeyRecord[]>((r) => { answer = r; }),
  } as unknown as Store;
  const ring = new KeyRing(store, { syncIntervalMs: 1000, log: createLogger({ level: 'error', write: () => {} }) });
  // The reload reads the keys as they were (PostgreSQL: on another connection, before the revocation commits)…
  const syncing = ring.sync();
  await new Promise((r) => setImmediate(r));
  // …the revocation is made here and put in the ring, and only then is the reload answered.
  version = 2;
  ring.put(key({ updatedAt: 2, revokedAt: 2 }));
  answer([key({ updatedAt: 1 }), key({ id: 'key_b', hash: 'hb', updatedAt: 1 })]);
  await syncing;
  assert.equal(ring.byId('key_a')?.revokedAt, 2, 'still revoked');
  assert.equal(ring.byId('key_b')?.hash, 'hb', 'the reload\'s other keys are taken');
});

test('sync: a key the store has gone back on (an older gateway writing with a clock behind) is taken as read; only a change made here while the reload ran is kept over it', async () => {
  let version = 1;
  let keys = [key({ updatedAt: 5 })];
  const store = { keysVersion: async () => version, listKeys: async () => keys } as unknown as Store;
  const ring = new KeyRing(store, { syncIntervalMs: 1000, log: createLogger({ level: 'error', write: () => {} }) });
  await ring.sync();
  version = 2;
  keys = [key({ updatedAt: 4, revokedAt: 4 })];
  await ring.sync();
  assert.equal(ring.byId('key_a')?.revokedAt, 4);
});

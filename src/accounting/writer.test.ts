import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SqliteStore } from '../store/sqlite.ts';
import { silentLogger } from '../core/log.ts';
import { UsageWriter } from './writer.ts';
import type { UsageRecord } from '../store/types.ts';

const rec = (i: number): UsageRecord => ({
  id: `req_w${i}`, ts: Date.now(), keyId: undefined, keyName: undefined, op: 'chat', model: 'chat-fast', role: 'chat-fast', backend: 'b',
  upstreamModel: 'm', status: 200, code: undefined, promptTokens: 1, completionTokens: 1, estimated: false, latencyMs: 1, ttftMs: undefined,
  attempts: 1, rerouted: false, stream: false, cost: 0.001,
});

test('a batch written in several commits: idle() resolves only once all of it is reported committed', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'fabric-writer-'));
  const store = new SqliteStore(join(dir, 'fabric.db'));
  try {
    await store.migrate();
    let reported = 0;
    const w = new UsageWriter({ store, spoolDir: undefined, batchSize: 1000, flushIntervalMs: 3_600_000, maxBuffer: 5000, log: silentLogger, onCommitted: (r) => { reported += r.length; } });
    await w.start();
    for (let i = 0; i < 250; i++) w.add(rec(i));
    const flushed = w.flush();
    // SQLite writes 100 rows per commit and lets the event loop run between commits.
    await new Promise((r) => setImmediate(r));
    const inStore = (await store.usageSummary({ by: 'backend' }))[0]?.requests ?? 0;
    assert.ok(inStore > 0 && inStore < 250 && reported === 0, `mid-batch: ${inStore} rows in the store, ${reported} reported`);
    await w.idle();
    assert.equal(reported, 250);
    await flushed;
    await w.close();
  } finally {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

// What a gateway process loses when it dies. SIGKILL right after the answers: every answered
// request's record is in the store or in the spool, and the next start writes what the spool
// holds, each record once. SIGTERM: the queue is written out before the process exits. (Usage
// batches go within 50 ms of their first record, however long flush_interval is, so how many
// records reached the store before the kill depends on timing; what must hold does not.)

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startFleet, type SimFleet } from '../src/sim/fleet.ts';
import { SqliteStore } from '../src/store/sqlite.ts';
import { chat, post } from './helpers.ts';
import { spawnGateway } from './support/proc.ts';
import { DatabaseSync } from 'node:sqlite';
import { tempDir } from './support/temp-dir.ts';

const FAST = { ttftMs: 5, tokensPerSecond: 2000, maxConcurrency: 64, maxQueue: 256 };
const dir = tempDir('fabric-crash-');
const data = join(dir, 'data');
const config = join(dir, 'fabric.yaml');
let fleet: SimFleet;

before(async () => {
  fleet = await startFleet([{ name: 'armitage', protocol: 'vllm', model: 'Qwen/Qwen2.5-7B-Instruct-AWQ', kind: 'chat', timing: FAST }]);
  writeFileSync(config, `
gateway:
  data_dir: ${data}
  accounting: { flush_interval: 1h }
backends:
  armitage-qwen: { engine: vllm, url: ${fleet.get('armitage').url}/v1, model: Qwen/Qwen2.5-7B-Instruct-AWQ }
roles:
  chat-fast: { kind: chat, backends: [armitage-qwen], aliases: [local/chat] }
`);
});

after(async () => {
  await fleet.close();
  rmSync(dir, { recursive: true, force: true });
});

async function load(url: string, n: number): Promise<string[]> {
  const rs = await Promise.all(Array.from({ length: n }, (_, i) => post(url, '/v1/chat/completions', chat('local/chat', `crash ${i}`, i % 2 === 0 ? { stream: true } : {}))));
  assert.ok(rs.every((r) => r.status === 200));
  return rs.map((r) => r.headers.get('x-request-id')!);
}

async function stored(ids: string[]): Promise<number> {
  const s = new SqliteStore(join(data, 'fabric.db'));
  try {
    let n = 0;
    for (const id of ids) if ((await s.usageById(id)) !== undefined) n++;
    return n;
  } finally {
    await s.close();
  }
}

const spoolLines = (): number => readdirSync(join(data, 'spool')).filter((f) => f.startsWith('usage-'))
  .reduce((n, f) => n + readFileSync(join(data, 'spool', f), 'utf8').split('\n').filter((l) => l !== '').length, 0);

/** The request ids in the spool's segments. */
const spooledIds = (): Set<string> => new Set(readdirSync(join(data, 'spool')).filter((f) => f.startsWith('usage-'))
  .flatMap((f) => readFileSync(join(data, 'spool', f), 'utf8').split('\n').filter((l) => l !== ''))
  .map((l) => (JSON.parse(l) as { id: string }).id));

test('SIGKILL loses no answered request: each is in the store or the spool, and the next start writes the spool\'s, once', async () => {
  const g = await spawnGateway(config, {});
  let ids: string[];
  try {
    ids = await load(g.url, 40);
  } finally {
    assert.equal(await g.stop('SIGKILL'), 'SIGKILL');
  }
  const spooled = spooledIds();
  const s0 = new SqliteStore(join(data, 'fabric.db'));
  let lost: string[];
  try {
    lost = [];
    for (const id of ids) if (!spooled.has(id) && (await s0.usageById(id)) === undefined) lost.push(id);
  } finally {
    await s0.close();
  }
  assert.deepEqual(lost, [], 'every answered request is in the store or in the spool');

  const again = await spawnGateway(config, {});
  try {
    // The replay runs before the gateway listens.
    assert.equal(await stored(ids), 40);
    assert.equal(spoolLines(), 0, 'replayed segments are deleted');
    if (spooled.size > 0) assert.ok(again.output.some((l) => l.includes('replaying usage records spooled by a previous run')));
  } finally {
    await again.stop();
  }
  const s = new SqliteStore(join(data, 'fabric.db'));
  try {
    const rows = await s.usageSummary({ by: 'backend' });
    assert.equal(rows[0]!.requests, 40, 'each record once, whether it was written before the kill, replayed, or both');
  } finally {
    await s.close();
  }
});

test('SIGTERM writes the queue out before the process exits', async () => {
  const g = await spawnGateway(config, {});
  // The test holds the database's write lock, so that the records are still queued when the
  // signal comes (batches otherwise go within 50 ms), and lets go once the gateway is draining.
  const lock = new DatabaseSync(join(data, 'fabric.db'));
  try {
    lock.exec('BEGIN IMMEDIATE');
    // A batch in flight (waiting for the lock), and records queued behind it.
    const first = await load(g.url, 10);
    await new Promise((r) => setTimeout(r, 150));
    const ids = [...first, ...await load(g.url, 10)];
    assert.equal(await stored(ids), 0, 'nothing written yet: the records are queued');
    const stopping = g.stop('SIGTERM');
    await new Promise((r) => setTimeout(r, 300));
    lock.exec('ROLLBACK');
    assert.equal(await stopping, 0);
    assert.equal(await stored(ids), 20);
    assert.ok(!existsSync(join(data, 'spool')) || spoolLines() === 0);
  } finally {
    if (lock.isTransaction) lock.exec('ROLLBACK');
    lock.close();
    // A failed assertion must not leave the gateway running (it would hold this file's process open).
    if (g.proc.exitCode === null && g.proc.signalCode === null) g.proc.kill('SIGKILL');
  }
});

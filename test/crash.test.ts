// What a gateway process loses when it dies. SIGKILL with nothing yet written to the store
// (flush interval 1 h): every answered request's record is in the spool, and the next start
// writes them all, once. SIGTERM: the queue is written out before the process exits.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startFleet, type SimFleet } from '../src/sim/fleet.ts';
import { SqliteStore } from '../src/store/sqlite.ts';
import { chat, post } from './helpers.ts';
import { spawnGateway } from './support/proc.ts';

const FAST = { ttftMs: 5, tokensPerSecond: 2000, maxConcurrency: 64, maxQueue: 256 };
const dir = mkdtempSync(join(tmpdir(), 'fabric-crash-'));
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

test('SIGKILL loses no answered request: the spool has every record and the next start writes them, once', async () => {
  const g = await spawnGateway(config, {});
  const ids = await load(g.url, 40);
  assert.equal(await g.stop('SIGKILL'), 'SIGKILL');
  assert.equal(await stored(ids), 0, 'nothing was written before the kill (flush interval 1 h)');
  assert.equal(spoolLines(), 40, 'every answered request is in the spool');

  const again = await spawnGateway(config, {});
  try {
    // The replay runs before the gateway listens.
    assert.equal(await stored(ids), 40);
    assert.equal(spoolLines(), 0, 'replayed segments are deleted');
    assert.ok(again.output.some((l) => l.includes('replaying usage records spooled by a previous run')));
  } finally {
    await again.stop();
  }
  const s = new SqliteStore(join(data, 'fabric.db'));
  try {
    const rows = await s.usageSummary({ by: 'backend' });
    assert.equal(rows[0]!.requests, 40, 'each record once');
  } finally {
    await s.close();
  }
});

test('SIGTERM writes the queue out before the process exits', async () => {
  const g = await spawnGateway(config, {});
  const ids = await load(g.url, 20);
  assert.equal(await stored(ids), 0);
  assert.equal(await g.stop('SIGTERM'), 0);
  assert.equal(await stored(ids), 20);
  assert.ok(!existsSync(join(data, 'spool')) || spoolLines() === 0);
});

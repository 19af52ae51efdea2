// accounting.retention: per-request usage records older than it are folded into daily totals at
// start (and hourly), and reports and budgets — a total budget sums all history — read the same
// before and after, through the admin API, `fabric usage` and the budget checks.

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { writeFileSync } from 'node:fs';
import { startFabric, waitForLog } from './helpers.ts';
import { runFabric } from './support/proc.ts';
import { tempDir } from './support/temp-dir.ts';
import { SqliteStore } from '../src/store/sqlite.ts';
import { usage } from './support/store-contract.ts';
import type { UsageRecord } from '../src/store/types.ts';

const DAY = 86_400_000;
const get = async (url: string, path: string, headers: Record<string, string>): Promise<{ json: any }> => ({ json: await (await fetch(url + path, { headers })).json() });
const MASTER = 'fabric-master-key-for-retention-tests';
const dir = tempDir('fabric-retention-');
after(() => import('node:fs').then((fs) => fs.rmSync(dir, { recursive: true, force: true })));

const yaml = (url: string, retention: string): string => `
gateway:
  master_key: env:FABRIC_MASTER_KEY
  data_dir: ${join(dir, 'data')}
  accounting: { flush_interval: 50ms, sync_interval: 100ms, retention: ${retention} }
backends:
  armitage-qwen: { engine: vllm, url: ${url}/v1, model: Qwen/Qwen2.5-7B-Instruct-AWQ }
  openai-strong: { engine: vllm, url: ${url}/v1, model: Qwen/Qwen2.5-7B-Instruct-AWQ, cloud: true }
roles:
  chat-fast: { kind: chat, backends: [armitage-qwen], aliases: [local/chat] }
  openai/strong: { kind: chat, backends: [openai-strong] }
prices:
  openai-strong: { input: 1, output: 1 }
budgets:
  lifetime: { amount: 1000, period: total, backends: [openai-strong] }
`;

test('records older than accounting.retention are folded into daily totals at start; usage reports and a total budget read the same', async () => {
  // 120 records from 100 to 40 days ago (priced ones among them), and 10 from today.
  const now = Date.now();
  const old: UsageRecord[] = Array.from({ length: 120 }, (_, i) => usage(`old_${i}`, {
    ts: now - 100 * DAY + i * 12 * 3_600_000, keyId: i % 2 === 0 ? 'key_a' : undefined, keyName: i % 2 === 0 ? 'obsidian' : undefined,
    backend: i % 3 === 0 ? 'openai-strong' : 'armitage-qwen', role: i % 3 === 0 ? 'openai/strong' : 'chat-fast', cost: i % 3 === 0 ? 0.25 : 0,
    status: i % 10 === 9 ? 503 : 200, code: i % 10 === 9 ? 'no_backend_available' : undefined,
  }));
  const recent = Array.from({ length: 10 }, (_, i) => usage(`new_${i}`, { ts: now - i * 60_000 }));
  const store = new SqliteStore(join(dir, 'data', 'fabric.db'));
  await store.migrate();
  await store.insertUsage([...old, ...recent]);

  const cfg = join(dir, 'offline.yaml');
  writeFileSync(cfg, yaml('http://127.0.0.1:9', 'forever'));
  const report = async (by: string): Promise<unknown> => {
    const r = await runFabric(['usage', '--config', cfg, '--by', by, '--json'], { ...process.env, FABRIC_DATA_DIR: '' });
    assert.equal(r.code, 0, r.stderr);
    return JSON.parse(r.stdout).data.map((x: Record<string, number>) => ({ ...x, cost_usd: Math.round(x.cost_usd * 1e6), avg_latency_ms: Math.round(x.avg_latency_ms * 1e3) }));
  };
  const before = { day: await report('day'), key: await report('key'), status: await report('status') };
  const days = new Set([...old, ...recent].map((u) => new Date(u.ts).toISOString().slice(0, 10))).size;
  assert.equal((before.day as unknown[]).length, days, 'a row a day');

  const f = await startFabric({
    env: { FABRIC_MASTER_KEY: MASTER }, apiKey: MASTER, dataDir: join(dir, 'data'),
    engines: [{ name: 'armitage', protocol: 'vllm', model: 'Qwen/Qwen2.5-7B-Instruct-AWQ', kind: 'chat' }],
    yaml: (url) => yaml(url('armitage'), '60d'),
  });
  try {
    const line = await waitForLog(f, 0, (r) => r.msg === 'usage: records folded into daily totals', 10_000);
    const horizon = Date.parse(line.before);
    assert.equal(horizon % DAY, 0, 'folded up to a UTC midnight');
    assert.ok(Math.abs(horizon - (now - 60 * DAY)) < DAY, line.before);
    const folded = old.filter((u) => u.ts < horizon);
    assert.equal(line.records, folded.length, 'every record before the horizon, and none after');
    assert.equal(await store.usageById(folded.at(-1)!.id), undefined);
    assert.ok(await store.usageById(old.find((u) => u.ts >= horizon)!.id), 'a record after the horizon is kept as it was');

    assert.deepEqual({ day: await report('day'), key: await report('key'), status: await report('status') }, before, 'fabric usage --config reads the same');
    const api = await get(f.url, '/admin/usage?by=day', { authorization: `Bearer ${MASTER}` });
    assert.equal(api.json.data.length, days, 'and so does the admin API');
    const budget = (await get(f.url, '/admin/budgets', { authorization: `Bearer ${MASTER}` })).json.data.find((b: { name: string }) => b.name === 'lifetime');
    assert.equal(budget.spent, 40 * 0.25, 'the total budget still counts every old priced request');
  } finally {
    await f.close();
    await store.close();
  }
});

test('accounting.retention: a day or more, or forever; anything else is refused by file and key', async () => {
  const cfg = join(dir, 'bad.yaml');
  for (const [v, ok] of [['12h', false], ['soon', false], ['1d', true], ['forever', true], ['400d', true]] as const) {
    writeFileSync(cfg, yaml('http://127.0.0.1:9', v));
    const r = await runFabric(['config', 'check', cfg], { ...process.env, FABRIC_MASTER_KEY: MASTER });
    assert.equal(r.code === 0, ok, `${v}: ${r.stdout}${r.stderr}`);
    if (!ok) assert.match(r.stdout + r.stderr, /bad\.yaml:5:\d+: error: gateway\.accounting\.retention: must be a duration of a day or more .*or forever/);
  }
});

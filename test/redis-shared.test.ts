// Two gateway processes against one real Redis (and one SQLite store): a key's requests per
// minute and its budget hold across both, as if they were one gateway.

import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startFleet, type SimFleet } from '../src/sim/fleet.ts';
import { SqliteStore } from '../src/store/sqlite.ts';
import { chat, post } from './helpers.ts';
import { startRedis, type RedisServer } from './support/servers.ts';
import { spawnGateway, type GatewayProcess } from './support/proc.ts';
import { tempDir } from './support/temp-dir.ts';

const MASTER = 'fabric-master-key-for-redis-tests';
const FAST = { ttftMs: 5, tokensPerSecond: 2000, maxConcurrency: 256, maxQueue: 1024 };
const auth = { authorization: `Bearer ${MASTER}` };

const redis = await startRedis();
// Stopped by its suite, and here at the end too: a name pattern that skips the suite skips its hooks.
const stopRedis = (): Promise<void> | undefined => (typeof redis === 'string' ? undefined : redis.close());
after(stopRedis);

describe('two gateway processes sharing Redis', { skip: typeof redis === 'string' ? redis : false }, () => {
  const server = redis as RedisServer;
  let fleet: SimFleet;
  let a: GatewayProcess;
  let b: GatewayProcess;
  const dir = tempDir('fabric-redis-');

  before(async () => {
    fleet = await startFleet([
      { name: 'armitage', protocol: 'vllm', model: 'Qwen/Qwen2.5-7B-Instruct-AWQ', kind: 'chat', timing: FAST },
      { name: 'cloud', protocol: 'openai', model: 'gpt-4.1-mini', kind: 'chat', timing: FAST },
    ]);
    const config = join(dir, 'fabric.yaml');
    writeFileSync(config, `
gateway:
  master_key: env:FABRIC_MASTER_KEY
  data_dir: ${join(dir, 'data')}
  redis: { url: env:REDIS_URL, prefix: fabric-test }
  accounting: { flush_interval: 50ms, sync_interval: 200ms }
backends:
  armitage-qwen: { engine: vllm, url: ${fleet.get('armitage').url}/v1, model: Qwen/Qwen2.5-7B-Instruct-AWQ }
  cloud-strong: { engine: openai-compatible, url: ${fleet.get('cloud').url}/v1, model: gpt-4.1-mini, cloud: true, max_retries: 0 }
roles:
  chat-fast: { kind: chat, backends: [armitage-qwen], aliases: [local/chat] }
  openai/strong: { kind: chat, backends: [cloud-strong] }
prices:
  cloud-strong: { input: 1000, output: 1000 }
`);
    const env = { FABRIC_MASTER_KEY: MASTER, REDIS_URL: server.url };
    a = await spawnGateway(config, env);
    b = await spawnGateway(config, env);
  });

  after(async () => {
    await a?.stop();
    await b?.stop();
    await fleet.close();
    await stopRedis();
    rmSync(dir, { recursive: true, force: true });
  });

  test('a key\'s requests per minute are counted once across both processes', async () => {
    const k = await post(a.url, '/admin/keys', { name: 'shared', rpm: 10 }, auth);
    assert.equal(k.status, 201);
    const kauth = { authorization: `Bearer ${k.json.key}` };
    const statuses: { via: string; status: number }[] = [];
    await Promise.all(Array.from({ length: 6 }, async (_, w) => {
      for (let i = 0; i < 5; i++) {
        const via = (w + i) % 2 === 0 ? a.url : b.url;
        const r = await post(via, '/v1/chat/completions', chat('local/chat'), kauth);
        statuses.push({ via, status: r.status });
      }
    }));
    const ok = statuses.filter((s) => s.status === 200);
    assert.equal(statuses.filter((s) => s.status !== 200 && s.status !== 429).length, 0);
    assert.ok(ok.length >= 10 && ok.length <= 11, `${ok.length} of 30 served; a per-process limit would serve 20`);
    assert.ok(ok.some((s) => s.via === a.url) && ok.some((s) => s.via === b.url), 'both processes served some');
  });

  test('a key budget holds across both processes under 100 concurrent requests', async () => {
    const budget = 0.3;
    const k = await post(a.url, '/admin/keys', { name: 'shared-budget', budget: { amount: budget, period: 'day' } }, auth);
    const kauth = { authorization: `Bearer ${k.json.key}` };
    const rs = await Promise.all(Array.from({ length: 100 }, (_, i) => post(i % 2 === 0 ? a.url : b.url, '/v1/chat/completions', chat('openai/strong', `race ${i}`), kauth)));
    const ok = rs.filter((r) => r.status === 200).length;
    // Refused: the budget spent (insufficient_quota), or held by requests in flight (a 429 to retry).
    assert.equal(rs.filter((r) => r.status === 429 && (r.json.error.code === 'insufficient_quota' || r.json.error.code === 'rate_limit_exceeded')).length + ok, 100);
    assert.ok(ok >= 5, `${ok} served`);
    // Both processes write the same SQLite file; wait for their records.
    const store = new SqliteStore(join(dir, 'data', 'fabric.db'));
    try {
      let rows = await store.usageSummary({ by: 'key', keyId: k.json.id });
      const until = Date.now() + 5000;
      while ((rows[0]?.requests ?? 0) < 100 && Date.now() < until) {
        await new Promise((r) => setTimeout(r, 50));
        rows = await store.usageSummary({ by: 'key', keyId: k.json.id });
      }
      assert.equal(rows[0]!.requests, 100);
      assert.ok(rows[0]!.cost <= budget + 1e-9, `spent ${rows[0]!.cost} of ${budget} across two processes`);
    } finally {
      await store.close();
    }
  });
});

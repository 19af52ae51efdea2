// The gateway on a real PostgreSQL: two instances share keys (a key made on one works on the
// other; revoked on one, refused by the other at once — NOTIFY); the database stopped mid-load
// and started again loses no record (on_store_down: serve); with on_store_down: refuse the
// gateway answers 503 while the database is down and serves again when it is back.

import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, rmSync, writeFileSync } from 'node:fs';
import pgClient from 'pg';
import { join } from 'node:path';
import { parseFabricText } from '../src/config/load.ts';
import { Secrets } from '../src/config/env-file.ts';
import { createLogger } from '../src/core/log.ts';
import { startGateway, type RunningGateway } from '../src/main.ts';
import { startFleet, type SimFleet } from '../src/sim/fleet.ts';
import { KeyAdmin } from '../src/keys/admin.ts';
import { PostgresStore } from '../src/store/postgres.ts';
import { chat, post } from './helpers.ts';
import { runFabric } from './support/proc.ts';
import { startPostgres, type PgServer } from './support/servers.ts';
import { tempDir } from './support/temp-dir.ts';

const MASTER = 'fabric-master-key-for-postgres-tests';
const FAST = { ttftMs: 5, tokensPerSecond: 2000, maxConcurrency: 256, maxQueue: 1024 };
const auth = { authorization: `Bearer ${MASTER}` };

const pg = await startPostgres();

describe('the gateway on PostgreSQL', { skip: typeof pg === 'string' ? pg : false }, () => {
  const server = pg as PgServer;
  let fleet: SimFleet;
  const dirs: string[] = [];
  const running: RunningGateway[] = [];

  async function gateway(dbUrl: string, onStoreDown: 'serve' | 'refuse'): Promise<RunningGateway & { logs: string[]; dataDir: string }> {
    const { config } = parseFabricText(`
gateway:
  master_key: env:FABRIC_MASTER_KEY
  store: { url: env:DATABASE_URL }
  accounting: { flush_interval: 50ms, sync_interval: 1s, on_store_down: ${onStoreDown} }
backends:
  armitage-qwen: { engine: vllm, url: ${fleet.get('armitage').url}/v1, model: Qwen/Qwen2.5-7B-Instruct-AWQ }
roles:
  chat-fast: { kind: chat, backends: [armitage-qwen], aliases: [local/chat] }
`, 'pg.yaml');
    const logs: string[] = [];
    const dataDir = tempDir('fabric-pg-gw-');
    dirs.push(dataDir);
    const gw = await startGateway(config, new Secrets({ FABRIC_MASTER_KEY: MASTER, DATABASE_URL: dbUrl }), {
      host: '127.0.0.1', port: 0, probe: false, dataDir, log: createLogger({ level: 'debug', write: (s) => logs.push(...s.trimEnd().split('\n')) }),
    });
    running.push(gw);
    return Object.assign(gw, { logs, dataDir });
  }

  before(async () => {
    fleet = await startFleet([{ name: 'armitage', protocol: 'vllm', model: 'Qwen/Qwen2.5-7B-Instruct-AWQ', kind: 'chat', timing: FAST }]);
  });
  after(async () => {
    for (const g of running) await g.close(500).catch(() => {});
    await fleet.close();
    server.close();
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });

  test('two instances share keys: made on one, used on the other; revoked on one, refused by the other at once', async () => {
    const url = await server.createDatabase('shared_keys');
    const a = await gateway(url, 'serve');
    const b = await gateway(url, 'serve');
    const made = await post(a.url, '/admin/keys', { name: 'obsidian', rpm: 1000 }, auth);
    assert.equal(made.status, 201);
    const kauth = { authorization: `Bearer ${made.json.key}` };
    assert.equal((await post(b.url, '/v1/chat/completions', chat('local/chat'), kauth)).status, 200, 'B finds a key it has not loaded in the store');
    await post(a.url, `/admin/keys/${made.json.id}/revoke`, {}, auth);
    const t0 = Date.now();
    let status = 200;
    while (status === 200 && Date.now() - t0 < 3000) {
      status = (await post(b.url, '/v1/chat/completions', chat('local/chat'), kauth)).status;
    }
    const took = Date.now() - t0;
    assert.equal(status, 401);
    assert.ok(took < 500, `revocation reached the other instance in ${took} ms (NOTIFY), well inside the 1 s poll`);
  });

  test('the database stopped mid-load and started again: every request answered, no record lost or doubled', async () => {
    const url = await server.createDatabase('outage_serve');
    const g = await gateway(url, 'serve');
    const before = fleet.get('armitage').stats();
    const ids: string[] = [];
    let statuses: number[] = [];
    let stopped = false;
    const N = 300;
    let sent = 0;
    const worker = async (): Promise<void> => {
      while (sent < N) {
        const i = sent++;
        if (i === 100 && !stopped) {
          stopped = true;
          server.stop();
          setTimeout(() => server.start(), 700);
        }
        const r = await post(g.url, '/v1/chat/completions', chat('local/chat', `outage ${i}`, i % 3 === 0 ? { stream: true, stream_options: { include_usage: true } } : {}), auth);
        statuses.push(r.status);
        ids.push(r.headers.get('x-request-id')!);
      }
    };
    await Promise.all(Array.from({ length: 10 }, worker));
    assert.ok(statuses.every((s) => s === 200), `statuses: ${[...new Set(statuses)].join(',')}`);
    statuses = [];
    // Wait for the store to come back and the writer to catch up.
    const acct = g.app.accounting!;
    const until = Date.now() + 15_000;
    while ((acct.writer.queued > 0 || !acct.writer.storeUp) && Date.now() < until) await new Promise((r) => setTimeout(r, 50));
    await acct.writer.flush();
    assert.ok(acct.writer.stats.failures > 0, 'the outage was seen');
    g.app.log.flush();
    assert.ok(g.logs.some((l) => l.includes('cannot write to the store')));
    const after = fleet.get('armitage').stats();
    const check = new PostgresStore(url);
    try {
      const rows = await check.usageSummary({ by: 'backend' });
      assert.equal(rows.length, 1);
      assert.equal(rows[0]!.requests, N);
      assert.equal(rows[0]!.promptTokens, after.promptTokens - before.promptTokens);
      assert.equal(rows[0]!.completionTokens, after.completionTokens - before.completionTokens);
      for (const id of [ids[0]!, ids[150]!, ids[N - 1]!]) assert.equal((await check.usageById(id))?.status, 200);
    } finally {
      await check.close();
    }
  });

  test('the usage table missing for a while (a restore under way, a rename) is an outage, not bad records: every record waits and is written once it is back; a NUL in a model name is stored, not refused', async () => {
    const url = await server.createDatabase('table_gone');
    const g = await gateway(url, 'serve');
    const admin = new pgClient.Client({ connectionString: url });
    await admin.connect();
    try {
      const ids: string[] = [];
      const N = 120;
      let sent = 0;
      const worker = async (): Promise<void> => {
        while (sent < N) {
          const i = sent++;
          if (i === 40) await admin.query('ALTER TABLE fabric_usage RENAME TO fabric_usage_away');
          if (i === 80) await admin.query('ALTER TABLE fabric_usage_away RENAME TO fabric_usage');
          const r = await post(g.url, '/v1/chat/completions', chat('local/chat', `gone ${i}`), auth);
          assert.equal(r.status, 200);
          ids.push(r.headers.get('x-request-id')!);
          await new Promise((res) => setTimeout(res, 5));
        }
      };
      await Promise.all(Array.from({ length: 4 }, worker));
      const nul = await post(g.url, '/v1/chat/completions', chat('chat-fast\u0000x'), auth);
      assert.equal(nul.status, 404);
      const acct = g.app.accounting!;
      const until = Date.now() + 20_000;
      while ((acct.writer.queued > 0 || !acct.writer.storeUp) && Date.now() < until) await new Promise((r) => setTimeout(r, 50));
      await acct.writer.flush();
      assert.ok(acct.writer.stats.failures > 0, 'the missing table was seen');
      const count = await admin.query('SELECT count(*)::int AS n FROM fabric_usage WHERE id = ANY($1)', [ids]);
      assert.equal(count.rows[0].n, N, 'every answered request has its record');
      const stored = await admin.query('SELECT model FROM fabric_usage WHERE id = $1', [nul.headers.get('x-request-id')]);
      assert.equal(stored.rows[0]?.model, 'chat-fast\uFFFDx');
      assert.equal(existsSync(join(g.dataDir, 'spool', 'rejected.jsonl')), false, 'nothing set aside');
    } finally {
      await admin.end();
    }
  });

  test('fabric keys update --config while another write lands between its read and its write (held at the row lock it takes to write): both kept; it reads, merges and writes again', async () => {
    const url = await server.createDatabase('cli_update_race');
    const store = new PostgresStore(url);
    await store.migrate();
    const { record } = await new KeyAdmin(store).create({ name: 'race-app', metadata: { owner: 'mdt' }, roleLimits: { 'chat-fast': { rpm: 5 } } });
    await store.close();
    const dir = tempDir('fabric-pg-cli-');
    dirs.push(dir);
    const config = join(dir, 'fabric.yaml');
    writeFileSync(config, `
gateway:
  store: { url: env:DATABASE_URL }
backends:
  armitage-qwen: { engine: vllm, url: http://127.0.0.1:9/v1, model: Qwen/Qwen2.5-7B-Instruct-AWQ }
  armitage-llama: { engine: vllm, url: http://127.0.0.1:9/v1, model: meta-llama/Llama-3.1-8B-Instruct }
roles:
  chat-fast: { kind: chat, backends: [armitage-qwen], aliases: [local/chat] }
  chat-deep: { kind: chat, backends: [armitage-llama] }
`);
    const locker = new pgClient.Client({ connectionString: url });
    const watcher = new pgClient.Client({ connectionString: url });
    await locker.connect();
    await watcher.connect();
    try {
      // The key's row locked: the command reads the key (reads do not wait), merges, and waits at its write.
      await locker.query('BEGIN');
      await locker.query('SELECT 1 FROM fabric_keys WHERE id = $1 FOR UPDATE', [record.id]);
      const cli = runFabric(['keys', 'update', 'race-app', '--meta', 'tier=premium', '--role-limit', 'chat-deep:rpm=9', '--json', '--config', config], {
        ...process.env, FABRIC_DATA_DIR: dir, DATABASE_URL: url,
      });
      const until = Date.now() + 15_000;
      const waiting = async (): Promise<boolean> => (await watcher.query(
        "SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock' AND query LIKE '%FOR UPDATE%' AND pid <> pg_backend_pid()",
      )).rows[0].n > 0;
      while (!(await waiting())) {
        assert.ok(Date.now() < until, 'the command waits at its write');
        await new Promise((r) => setTimeout(r, 20));
      }
      // Meanwhile another writer (here by hand) sets the team and a limit for chat-fast, then lets it go.
      await locker.query(`UPDATE fabric_keys SET metadata = metadata || '{"team":"ops"}', role_limits = '{"chat-fast":{"rpm":7}}', updated_at = updated_at + 1 WHERE id = $1`, [record.id]);
      await locker.query('COMMIT');
      const r = await cli;
      assert.equal(r.code, 0, r.stderr);
      const k = JSON.parse(r.stdout);
      assert.deepEqual(k.metadata, { owner: 'mdt', team: 'ops', tier: 'premium' });
      assert.deepEqual(k.role_limits, { 'chat-fast': { rpm: 7 }, 'chat-deep': { rpm: 9 } });
      const stored = (await watcher.query('SELECT metadata, role_limits FROM fabric_keys WHERE id = $1', [record.id])).rows[0];
      assert.deepEqual([stored.metadata, stored.role_limits], [k.metadata, k.role_limits]);
    } finally {
      await locker.query('ROLLBACK').catch(() => {});
      await locker.end();
      await watcher.end();
    }
  });

  test('on_store_down: refuse — 503 while the database is down, served again once it is back', async () => {
    const url = await server.createDatabase('outage_refuse');
    const g = await gateway(url, 'refuse');
    assert.equal((await post(g.url, '/v1/chat/completions', chat('local/chat'), auth)).status, 200);
    server.stop();
    try {
      let r = await post(g.url, '/v1/chat/completions', chat('local/chat'), auth);
      const until = Date.now() + 10_000;
      while (r.status === 200 && Date.now() < until) {
        await new Promise((res) => setTimeout(res, 25));
        r = await post(g.url, '/v1/chat/completions', chat('local/chat'), auth);
      }
      assert.equal(r.status, 503);
      assert.equal(r.json.error.code, 'store_unavailable');
      assert.match(r.json.error.message, /on_store_down: refuse/);
      assert.equal(r.headers.get('retry-after'), '5');
    } finally {
      server.start();
    }
    const until = Date.now() + 15_000;
    let ok = 0;
    while (ok === 0 && Date.now() < until) {
      await new Promise((res) => setTimeout(res, 100));
      if ((await post(g.url, '/v1/chat/completions', chat('local/chat'), auth)).status === 200) ok++;
    }
    assert.equal(ok, 1, 'served again once the database is back');
  });
});

// fabric backup as an operator runs it: a copy of the SQLite store of a gateway that is
// serving (and writing usage) at that moment, consistent and the owner's only; refusals named.

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, readdirSync, statSync, writeFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { startFabric, chat, post } from './helpers.ts';
import { runFabric } from './support/proc.ts';
import { tempDir } from './support/temp-dir.ts';

const dir = tempDir('fabric-backup-');
after(() => rmSync(dir, { recursive: true, force: true }));
const env = { ...process.env, FABRIC_DATA_DIR: '' };
const FAST = { ttftMs: 1, tokensPerSecond: 10_000, maxConcurrency: 32, maxQueue: 64 };

test('fabric backup copies a serving gateway\'s store while it writes: consistent, 0600, every record committed before it; never over a file', async () => {
  const data = join(dir, 'data');
  const f = await startFabric({
    dataDir: data,
    engines: [{ name: 'armitage', protocol: 'vllm', model: 'm', kind: 'chat', timing: FAST }],
    yaml: (url) => `
gateway:
  accounting: { flush_interval: 20ms }
backends:
  armitage-qwen: { engine: vllm, url: ${url('armitage')}/v1, model: m }
roles:
  chat-fast: { kind: chat, backends: [armitage-qwen] }
`,
  });
  const cfg = join(dir, 'fabric.yaml');
  writeFileSync(cfg, `gateway: { data_dir: ${data} }\nbackends:\n  a: { engine: vllm, url: http://127.0.0.1:9/v1, model: m }\nroles:\n  chat-fast: { kind: chat, backends: [a] }\n`);
  try {
    for (let i = 0; i < 20; i++) assert.equal((await post(f.url, '/v1/chat/completions', chat('chat-fast'))).status, 200);
    await new Promise((r) => setTimeout(r, 300)); // the records are committed
    // Traffic goes on while the copy is taken.
    let stop = false;
    const load = (async () => { while (!stop) await post(f.url, '/v1/chat/completions', chat('chat-fast')); })();
    const out = join(dir, 'copy.db');
    const r = await runFabric(['backup', '--config', cfg, '--out', out], env);
    stop = true;
    await load;
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, new RegExp(`^copied ${join(data, 'fabric.db').replace(/[.]/g, '\\.')} to ${out.replace(/[.]/g, '\\.')} \\([\\d.]+ (KiB|MiB|bytes)\\) in [\\d.]+ s\\n$`));
    assert.equal(statSync(out).mode & 0o777, 0o600);
    const copy = new DatabaseSync(out, { readOnly: true });
    try {
      assert.equal(copy.prepare('PRAGMA integrity_check').get()!.integrity_check, 'ok');
      assert.ok(Number(copy.prepare('SELECT COUNT(*) AS n FROM fabric_usage').get()!.n) >= 20);
      assert.deepEqual(copy.prepare('SELECT version FROM fabric_migrations ORDER BY version').all().map((x) => x.version), [1, 2, 3]);
    } finally {
      copy.close();
    }
    // A folder of dated copies, as a daily timer keeps it: the oldest beyond --keep go, other files stay.
    const shelf = join(dir, 'backups');
    mkdirSync(shelf);
    for (const n of ['fabric-20260101-000000.db', 'fabric-20260102-000000.db', 'fabric-20260103-000000.db', 'notes.txt', 'fabric-mine.db']) writeFileSync(join(shelf, n), 'x');
    const dated = await runFabric(['backup', '--config', cfg, '--out', `${shelf}/`, '--keep', '2'], env);
    assert.equal(dated.code, 0, dated.stderr);
    const left = readdirSync(shelf).sort();
    assert.equal(left.length, 4, left.join(' '));
    assert.deepEqual(left.filter((n) => !/^fabric-\d{8}-\d{6}\.db$/.test(n)), ['fabric-mine.db', 'notes.txt'], 'only dated copies are removed');
    assert.equal(left.filter((n) => /^fabric-\d{8}-\d{6}\.db$/.test(n))[0], 'fabric-20260103-000000.db', 'the newest old copy kept, beside the new one');
    assert.match(dated.stdout, /removed .*fabric-20260101-000000\.db \(keeping the newest 2\)\nremoved .*fabric-20260102-000000\.db/);
    const loose = await runFabric(['backup', '--config', cfg, '--out', join(dir, 'one.db'), '--keep', '2'], env);
    assert.equal(loose.code, 2);
    assert.match(loose.stderr, /--keep goes with --out DIR\//);
    const again = await runFabric(['backup', '--config', cfg, '--out', out], env);
    assert.equal(again.code, 2);
    assert.match(again.stderr, /--out .*copy\.db exists: a backup never replaces a file/);
  } finally {
    await f.close();
  }
});

test('fabric backup: no store there, or a PostgreSQL store, is said so (exit 1); --out is required (exit 2)', async () => {
  const nowhere = await runFabric(['backup', '--data-dir', join(dir, 'empty'), '--out', join(dir, 'x.db')], env);
  assert.equal(nowhere.code, 1);
  assert.match(nowhere.stderr, /^fabric backup: no store at .*empty\/fabric\.db; a gateway started without a config keeps it in --data-dir DIR/);
  const pgCfg = join(dir, 'pg.yaml');
  writeFileSync(pgCfg, 'gateway: { store: { url: env:DATABASE_URL } }\nbackends:\n  a: { engine: vllm, url: http://127.0.0.1:9/v1, model: m }\nroles:\n  r: { kind: chat, backends: [a] }\n');
  const pg = await runFabric(['backup', '--config', pgCfg, '--out', join(dir, 'y.db')], { ...env, DATABASE_URL: 'postgresql://fabric:s3cret@db/fabric' });
  assert.equal(pg.code, 1, pg.stderr);
  assert.match(pg.stderr, /keeps its state in PostgreSQL \(postgresql:\/\/fabric:\*\*\*@db\/fabric\): back it up with pg_dump --table 'fabric_\*' "\$DATABASE_URL"/);
  assert.doesNotMatch(pg.stderr, /s3cret/);
  const bare = await runFabric(['backup'], env);
  assert.equal(bare.code, 2);
  assert.match(bare.stderr, /--out FILE or --out DIR\/ is required/);
});

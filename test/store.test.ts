// The store contract against both implementations: SQLite in a temp file, and a real
// PostgreSQL cluster started for this file (test/support/servers.ts).

import { after, describe } from 'node:test';
import { existsSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { SPEND_SQL, SqliteStore } from '../src/store/sqlite.ts';
import { PostgresStore } from '../src/store/postgres.ts';
import { startPostgres, type PgServer } from './support/servers.ts';
import { key, storeContract, usage } from './support/store-contract.ts';
import { tempDir } from './support/temp-dir.ts';

const dir = tempDir('fabric-store-');
after(() => rmSync(dir, { recursive: true, force: true }));

describe('sqlite store', () => {
  let n = 0;
  let last = '';
  storeContract('sqlite', {
    async fresh() {
      last = join(dir, `s${n++}`, 'fabric.db');
      return new SqliteStore(last);
    },
    async another() {
      return new SqliteStore(last);
    },
  });
});

describe('sqlite store, bulk writes on its writer thread', () => {
  let n = 0;
  let last = '';
  storeContract('sqlite+thread', {
    async fresh() {
      last = join(dir, `t${n++}`, 'fabric.db');
      return new SqliteStore(last, { writerThread: true });
    },
    async another() {
      return new SqliteStore(last, { writerThread: true });
    },
  });
});

test('sqlite: the spend query budgets run every second reads the partial index, not every row of the period', async () => {
  const file = join(dir, 'plan', 'fabric.db');
  const s = new SqliteStore(file);
  await s.migrate();
  await s.close();
  const db = new DatabaseSync(file);
  try {
    const plan = db.prepare(`EXPLAIN QUERY PLAN ${SPEND_SQL}`).all(0).map((r) => String(r.detail)).join('; ');
    assert.match(plan, /USING COVERING INDEX fabric_usage_spend/, plan);
    assert.match(plan, /USING COVERING INDEX fabric_usage_daily_spend/, plan);
  } finally {
    db.close();
  }
});

/** A database as a gateway before migration 3 left it: a key and a usage record, schema v2. */
async function olderDatabase(file: string): Promise<void> {
  const s = new SqliteStore(file);
  await s.migrate();
  await s.insertKey(key({ id: 'key_old' }));
  await s.insertUsage([usage('req_old')]);
  await s.close();
  const db = new DatabaseSync(file);
  db.exec('DROP TABLE fabric_usage_daily; DELETE FROM fabric_migrations WHERE version = 3');
  db.close();
}

test('sqlite: before a migration changes an existing database, it is copied (0600) as it was; once, though several processes start at once', async () => {
  const file = join(dir, 'upgrade', 'fabric.db');
  await olderDatabase(file);
  // Three processes migrate it at once, as workers starting together would.
  const script = `import { SqliteStore } from ${JSON.stringify(new URL('../src/store/sqlite.ts', import.meta.url).pathname)};
    const s = new SqliteStore(process.argv[1]); const v = await s.migrate(); console.log(JSON.stringify({ v, b: s.migrationBackup ?? null })); await s.close();`;
  const runs = await Promise.all([0, 1, 2].map(() => new Promise<string>((resolve, reject) => {
    execFile(process.execPath, ['--input-type=module', '-e', script, file], (e, out, err) => (e ? reject(new Error(err)) : resolve(out)));
  })));
  const results = runs.map((o) => JSON.parse(o) as { v: number[]; b: { file: string; error?: string } | null });
  assert.deepEqual(results.map((r) => r.v).flat(), [3], 'migrated once');
  assert.deepEqual(results.filter((r) => r.b !== null).map((r) => r.b), [{ file: `${file}.before-v3` }], 'copied once, by one of them');
  assert.equal(statSync(`${file}.before-v3`).mode & 0o777, 0o600);
  const copy = new DatabaseSync(`${file}.before-v3`, { readOnly: true });
  try {
    assert.deepEqual(copy.prepare('SELECT version FROM fabric_migrations ORDER BY version').all().map((r) => r.version), [1, 2], 'the schema as it was');
    assert.equal(copy.prepare("SELECT COUNT(*) AS n FROM sqlite_master WHERE name = 'fabric_usage_daily'").get()!.n, 0);
    assert.equal(copy.prepare("SELECT id FROM fabric_keys").get()!.id, 'key_old');
    assert.equal(copy.prepare("SELECT id FROM fabric_usage").get()!.id, 'req_old');
  } finally {
    copy.close();
  }
  const again = new SqliteStore(file);
  assert.deepEqual(await again.migrate(), []);
  assert.equal(again.migrationBackup, undefined, 'nothing to migrate, nothing copied');
  await again.close();
  // A copy left by a start whose migration then failed, and one cut short: a new copy is made beside them.
  await olderDatabase(join(dir, 'again', 'fabric.db'));
  const stale = join(dir, 'again', 'fabric.db.before-v3');
  writeFileSync(stale, 'an older copy');
  writeFileSync(`${stale}.partial`, 'cut short');
  const retried = new SqliteStore(join(dir, 'again', 'fabric.db'));
  assert.deepEqual(await retried.migrate(), [3]);
  assert.match(retried.migrationBackup!.file, /fabric\.db\.before-v3\.\d{4}-\d\d-\d\dT[\d-]+Z$/);
  assert.equal(retried.migrationBackup!.error, undefined);
  assert.equal(readFileSync(stale, 'utf8'), 'an older copy', 'left as it was');
  assert.equal(existsSync(`${retried.migrationBackup!.file}.partial`), false);
  await retried.close();
  // A new database has nothing to keep.
  const fresh = new SqliteStore(join(dir, 'new', 'fabric.db'));
  assert.deepEqual(await fresh.migrate(), [1, 2, 3]);
  assert.equal(fresh.migrationBackup, undefined);
  await fresh.close();
});

const pg = await startPostgres();
describe('postgres store', { skip: typeof pg === 'string' ? pg : false }, () => {
  const server = pg as PgServer;
  let n = 0;
  let last = '';
  after(() => server.close());
  storeContract('postgres', {
    async fresh() {
      last = await server.createDatabase(`contract_${n++}`);
      return new PostgresStore(last);
    },
    async another() {
      return new PostgresStore(last);
    },
  });
});

// fabric backup: a consistent copy of the gateway's SQLite store, taken while it runs — before
// an upgrade (whose first start may migrate the schema), before moving hosts, or from a timer.

import { existsSync, statSync } from 'node:fs';
import { ConfigError } from '../config/issues.ts';
import { formatSize } from '../config/units.ts';
import { redactUrl } from '../store/postgres.ts';
import { SqliteStore } from '../store/sqlite.ts';
import { reportConfigError } from './fabric-file.ts';
import { parseCommand, usageError } from './args.ts';
import { outPathUsable } from './out-path.ts';
import { localStore, noStoreText } from './state-target.ts';

const HELP = `Usage: fabric backup --out FILE [--config FILE | --data-dir DIR]

Copies the gateway's SQLite store — virtual keys (their hashes), usage and spend, the request
log — into FILE while the gateway runs: one consistent snapshot (SQLite's VACUUM INTO), taken
without stopping its writes, compacted, in a new file readable by its owner only. The
schema is left as it is (a newer gateway's first start migrates it, after copying it to
fabric.db.before-vN itself).

To restore: stop the gateway, put the copy in place of fabric.db (and delete fabric.db-wal and
fabric.db-shm beside it), start the gateway.

  --out FILE       where the copy goes; it must not exist
  --config FILE    the gateway's config: the store it names, in its data directory
  --data-dir DIR   the gateway's data directory, where its SQLite store is: with --config, when
                   the gateway keeps it elsewhere than the config says; alone, for a gateway
                   started without a config (default: $FABRIC_DATA_DIR, else
                   $XDG_DATA_HOME/ai-fabric, else ~/.local/share/ai-fabric)

With a PostgreSQL store, back up with PostgreSQL's own tools:
  pg_dump --table 'fabric_*' "$DATABASE_URL" > fabric.sql

Exit status: 0 copied; 1 it could not be (the message says why); 2 bad usage.
`;

export async function runBackup(argv: string[]): Promise<number> {
  const parsed = parseCommand('backup', HELP, { args: argv, options: {
    out: { type: 'string', short: 'o' }, config: { type: 'string', short: 'c' }, 'data-dir': { type: 'string' }, help: { type: 'boolean', short: 'h' },
  } });
  if (typeof parsed === 'number') return parsed;
  const v = parsed.values;
  if (v.out === undefined) return usageError('backup', '--out FILE is required', HELP);
  if (existsSync(v.out)) return usageError('backup', `--out ${v.out} exists: a backup never replaces a file; name a new one`);
  if (existsSync(`${v.out}.partial`)) return usageError('backup', `${v.out}.partial exists: a copy is being made there, or one was cut short (remove it)`);
  if (!outPathUsable('backup', v.out, 'file')) return 1;

  let file: string | undefined;
  try {
    const where = localStore(v);
    file = where.file;
    const st = where.config.gateway.store;
    if (st.kind !== 'sqlite') {
      process.stderr.write(`fabric backup: this gateway keeps its state in PostgreSQL (${redactUrl(process.env[st.url.env] ?? `$${st.url.env}`)}): back it up with pg_dump --table 'fabric_*' "$${st.url.env}" > fabric.sql\n`);
      return 1;
    }
  } catch (e) {
    if (e instanceof ConfigError) return reportConfigError('backup', v.config ?? '', e);
    throw e;
  }
  // Opening a path that is not there would make a new, empty store.
  if (file === undefined || !existsSync(file)) {
    process.stderr.write(`fabric backup: ${noStoreText(file ?? '', v.config !== undefined)}\n`);
    return 1;
  }
  const started = performance.now();
  let store: SqliteStore | undefined;
  try {
    store = new SqliteStore(file);
    store.backupTo(v.out);
  } catch (e) {
    process.stderr.write(`fabric backup: cannot copy ${file} to ${v.out}: ${(e as Error).message}\n`);
    return 1;
  } finally {
    await store?.close();
  }
  process.stdout.write(`copied ${file} to ${v.out} (${formatSize(statSync(v.out).size)}) in ${((performance.now() - started) / 1000).toFixed(1)} s\n`);
  return 0;
}

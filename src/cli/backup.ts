// fabric backup: a consistent copy of the gateway's SQLite store, taken while it runs — before
// an upgrade (whose first start may migrate the schema), before moving hosts, or from a timer.

import { existsSync, mkdirSync, readdirSync, rmSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { ConfigError } from '../config/issues.ts';
import { formatSize } from '../config/units.ts';
import { redactUrl } from '../store/postgres.ts';
import { SqliteStore } from '../store/sqlite.ts';
import { reportConfigError } from './fabric-file.ts';
import { parseCommand, usageError } from './args.ts';
import { outPathUsable } from './out-path.ts';
import { localStore, noStoreText } from './state-target.ts';

const HELP = `Usage: fabric backup --out FILE|DIR/ [--keep N] [--config FILE | --data-dir DIR]

Copies the gateway's SQLite store — virtual keys (their hashes), usage and spend, the request
log — into FILE while the gateway runs: one consistent snapshot (SQLite's VACUUM INTO), taken
without stopping its writes, compacted, in a new file readable by its owner only. The
schema is left as it is (a newer gateway's first start migrates it, after copying it to
fabric.db.before-vN itself).

To restore: stop the gateway, put the copy in place of fabric.db (and delete fabric.db-wal and
fabric.db-shm beside it), start the gateway.

  --out FILE       where the copy goes; it must not exist
  --out DIR/       a folder (made if need be, 0700) of dated copies: fabric-YYYYMMDD-HHMMSS.db (UTC)
  --keep N         with --out DIR/: once the new copy is whole, remove the oldest dated copies
                   beyond the newest N (what a daily timer needs)
  --config FILE    the gateway's config: the store it names, in its data directory
  --data-dir DIR   the gateway's data directory, where its SQLite store is: with --config, when
                   the gateway keeps it elsewhere than the config says; alone, for a gateway
                   started without a config (default: $FABRIC_DATA_DIR, else
                   $XDG_DATA_HOME/ai-fabric, else ~/.local/share/ai-fabric)

With a PostgreSQL store, back up with PostgreSQL's own tools:
  pg_dump --table 'fabric_*' "$DATABASE_URL" > fabric.sql

Exit status: 0 copied; 1 it could not be (the message says why); 2 bad usage.
`;

/** Copies in a folder (--out DIR/): fabric-YYYYMMDD-HHMMSS.db, in UTC, so that their names sort by age. */
const COPY = /^fabric-\d{8}-\d{6}\.db$/;
const copyName = (now: Date): string => `fabric-${now.toISOString().slice(0, 19).replace(/[-:]/g, '').replace('T', '-')}.db`;

export async function runBackup(argv: string[]): Promise<number> {
  const parsed = parseCommand('backup', HELP, { args: argv, options: {
    out: { type: 'string', short: 'o' }, keep: { type: 'string' }, config: { type: 'string', short: 'c' }, 'data-dir': { type: 'string' }, help: { type: 'boolean', short: 'h' },
  } });
  if (typeof parsed === 'number') return parsed;
  const v = parsed.values;
  if (v.out === undefined) return usageError('backup', '--out FILE or --out DIR/ is required', HELP);
  // A folder (written with its slash, or one that exists): a new, dated copy in it.
  const folder = v.out.endsWith('/') || (existsSync(v.out) && statSync(v.out).isDirectory()) ? resolve(v.out) : undefined;
  let keep: number | undefined;
  if (v.keep !== undefined) {
    keep = Number(v.keep);
    if (!Number.isInteger(keep) || keep < 1) return usageError('backup', `--keep must be a whole number of copies, at least 1, got ${JSON.stringify(v.keep)}`);
    if (folder === undefined) return usageError('backup', '--keep goes with --out DIR/ (a folder of dated copies)');
  }
  if (folder !== undefined) mkdirSync(folder, { recursive: true, mode: 0o700 });
  const out = folder === undefined ? v.out : join(folder, copyName(new Date()));
  if (existsSync(out)) return usageError('backup', `--out ${out} exists: a backup never replaces a file; name a new one`);
  if (existsSync(`${out}.partial`)) return usageError('backup', `${out}.partial exists: a copy is being made there, or one was cut short (remove it)`);
  if (!outPathUsable('backup', out, 'file')) return 1;

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
    store.backupTo(out);
  } catch (e) {
    process.stderr.write(`fabric backup: cannot copy ${file} to ${out}: ${(e as Error).message}\n`);
    return 1;
  } finally {
    await store?.close();
  }
  process.stdout.write(`copied ${file} to ${out} (${formatSize(statSync(out).size)}) in ${((performance.now() - started) / 1000).toFixed(1)} s\n`);
  if (keep !== undefined) {
    // Only once the new copy is whole, and only the folder's dated copies: the oldest beyond --keep.
    const copies = readdirSync(folder!).filter((n) => COPY.test(n)).sort();
    for (const n of copies.slice(0, Math.max(0, copies.length - keep))) {
      rmSync(join(folder!, n), { force: true });
      process.stdout.write(`removed ${join(folder!, n)} (keeping the newest ${keep})\n`);
    }
  }
  return 0;
}

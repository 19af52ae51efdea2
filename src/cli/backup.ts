// fabric backup: a consistent copy of the gateway's SQLite store, taken while it runs — before
// an upgrade (whose first start may migrate the schema), before moving hosts, or from a timer.

import { existsSync, statSync } from 'node:fs';
import { resolve } from 'node:path';
import { loadFabricConfig, parseFabricText } from '../config/load.ts';
import { ConfigError } from '../config/issues.ts';
import { redactUrl } from '../store/postgres.ts';
import { SqliteStore } from '../store/sqlite.ts';
import { dataDirOf, sqlitePath } from '../main.ts';
import { reportConfigError } from './fabric-file.ts';
import { parseCommand, usageError } from './args.ts';
import { outPathUsable } from './out-path.ts';

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

const mib = (bytes: number): string => `${(bytes / 1024 / 1024).toFixed(1)} MiB`;

export async function runBackup(argv: string[]): Promise<number> {
  const parsed = parseCommand('backup', HELP, { args: argv, options: {
    out: { type: 'string', short: 'o' }, config: { type: 'string', short: 'c' }, 'data-dir': { type: 'string' }, help: { type: 'boolean', short: 'h' },
  } });
  if (typeof parsed === 'number') return parsed;
  const v = parsed.values;
  if (v.out === undefined) return usageError('backup', '--out FILE is required', HELP);
  if (existsSync(v.out)) return usageError('backup', `--out ${v.out} exists: a backup never replaces a file; name a new one`);
  if (!outPathUsable('backup', v.out, 'file')) return 1;

  let file: string;
  try {
    const { config } = v.config !== undefined ? loadFabricConfig(v.config, process.env, 'unused') : parseFabricText('version: 1\n', '(no config)');
    const st = config.gateway.store;
    if (st.kind !== 'sqlite') {
      process.stderr.write(`fabric backup: this gateway keeps its state in PostgreSQL (${redactUrl(process.env[st.url.env] ?? `$${st.url.env}`)}): back it up with pg_dump --table 'fabric_*' "$${st.url.env}" > fabric.sql\n`);
      return 1;
    }
    const dataDir = v['data-dir'] !== undefined ? resolve(v['data-dir']) : dataDirOf(config);
    file = sqlitePath(st.path, dataDir);
  } catch (e) {
    if (e instanceof ConfigError) return reportConfigError('backup', v.config ?? '', e);
    throw e;
  }
  // Opening a path that is not there would make a new, empty store: say where it was looked for.
  if (!existsSync(file)) {
    process.stderr.write(`fabric backup: no store at ${file}; name the gateway's data directory with --data-dir DIR or $FABRIC_DATA_DIR (the unit fabric render writes uses /var/lib/ai-fabric)\n`);
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
  process.stdout.write(`copied ${file} to ${v.out} (${mib(statSync(v.out).size)}) in ${((performance.now() - started) / 1000).toFixed(1)} s\n`);
  return 0;
}

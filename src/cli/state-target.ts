// Where `fabric keys` and `fabric usage` act: a running gateway's admin API (--url,
// $FABRIC_URL, with the master key from --key or $FABRIC_API_KEY), or with --config the
// store itself (the SQLite file or PostgreSQL the config names) — for the gateway host, or
// when no master key is set. Both give the same answers.

import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { loadFabricConfig, parseFabricText } from '../config/load.ts';
import { Secrets } from '../config/env-file.ts';
import { dataDirOf, openStore, sqlitePath } from '../main.ts';
import type { Store } from '../store/types.ts';
import { adminRefusal, authHeaders, gatewayKey, gatewayUrl, netError, UsageError } from './client.ts';
import type { FabricConfig } from '../config/types.ts';

export type Target =
  /** `cmd`: the command acting, which the advice on a refusal names. */
  | { kind: 'api'; url: string; key: string | undefined; cmd: 'keys' | 'usage' }
  | { kind: 'store'; store: Store; config: FabricConfig };

/** Where the store a command acts on without a gateway is, as the gateway has it. */
export interface LocalStore {
  config: FabricConfig;
  secrets: Secrets;
  dataDir: string;
  /** The SQLite file; undefined for PostgreSQL. */
  file: string | undefined;
}

/**
 * The store of --config (its data directory: --data-dir, $FABRIC_DATA_DIR, the config's
 * data_dir) or, without one, of a gateway started without a config (the demo fleet, discovered
 * engines): SQLite in --data-dir, else where such a gateway keeps it.
 */
export function localStore(values: { config?: string; 'data-dir'?: string }): LocalStore {
  const dir = values['data-dir'];
  if (values.config !== undefined) {
    // The store is read directly: the master key is not needed, set or not.
    const { config, secrets } = loadFabricConfig(values.config, process.env, 'unused');
    const dataDir = dir !== undefined ? resolve(dir) : dataDirOf(config);
    const st = config.gateway.store;
    return { config, secrets, dataDir, file: st.kind === 'sqlite' ? sqlitePath(st.path, dataDir) : undefined };
  }
  const { config } = parseFabricText('version: 1\n', '(no config)');
  const dataDir = dir !== undefined ? resolve(dir) : dataDirOf(config);
  const st = config.gateway.store;
  return { config, secrets: new Secrets({}), dataDir, file: sqlitePath(st.kind === 'sqlite' ? st.path : 'fabric.db', dataDir) };
}

/**
 * Why there is no store at `file`: a store in another place (the rendered systemd unit sets
 * FABRIC_DATA_DIR=/var/lib/ai-fabric) or a mistyped directory must not pass unnoticed for a
 * new, empty one that no gateway reads.
 */
export function noStoreText(file: string, viaConfig: boolean): string {
  return viaConfig
    ? `no store at ${file}: no gateway with this config has kept its state there; ${WHERE}`
    : `no store at ${file}; a gateway started without a config keeps it in --data-dir DIR, $FABRIC_DATA_DIR, else $XDG_DATA_HOME/ai-fabric, else ~/.local/share/ai-fabric`;
}

const WHERE = 'name the gateway\'s data directory with --data-dir DIR or $FABRIC_DATA_DIR (the unit fabric render writes uses /var/lib/ai-fabric)';

/**
 * `create`: with --config, a store that does not exist yet is made (keys made before the
 * gateway's first start), and said so on stderr; otherwise there is nothing to act on.
 */
export async function openTarget(cmd: 'keys' | 'usage', values: { url?: string; key?: string; config?: string; 'data-dir'?: string }, create = false): Promise<Target> {
  if (values.config === undefined && values['data-dir'] === undefined) return { kind: 'api', url: gatewayUrl(values.url), key: gatewayKey(values.key), cmd };
  const { config, secrets, dataDir, file } = localStore(values);
  const viaConfig = values.config !== undefined;
  if (file !== undefined && !existsSync(file)) {
    if (!create || !viaConfig) throw new UsageError(noStoreText(file, viaConfig));
    process.stderr.write(`fabric: a new store at ${file}, where a gateway with this config will find it; if the gateway keeps its state elsewhere, ${WHERE}\n`);
  }
  const store = await openStore(config, secrets, dataDir);
  await store.migrate();
  const b = store.migrationBackup;
  if (b !== undefined) process.stderr.write(b.error === undefined ? `fabric: migrated the store's schema; as it was before, it is in ${b.file}\n` : `fabric: migrated the store's schema without a copy to go back to: cannot write ${b.file} (${b.error})\n`);
  return { kind: 'store', store, config };
}

export async function closeTarget(t: Target): Promise<void> {
  if (t.kind === 'store') await t.store.close();
}

/** An error answer of the admin API: the gateway's message, with its status for a command that acts on one (412: a stale If-Match). */
export class ApiRefusal extends UsageError {
  readonly status: number;
  constructor(status: number, message: string) {
    super(message);
    this.status = status;
  }
}

/** One admin API call; an error answer becomes an ApiRefusal carrying the gateway's message. */
export async function api(t: Extract<Target, { kind: 'api' }>, method: string, path: string, body?: unknown): Promise<any> {
  return (await apiCall(t, method, path, body)).json;
}

/** One admin API call with `headers` added, answered with the body and its ETag (one key's revision). */
export async function apiCall(t: Extract<Target, { kind: 'api' }>, method: string, path: string, body?: unknown, headers?: Record<string, string>): Promise<{ json: any; etag: string | undefined }> {
  let res: Response;
  try {
    res = await fetch(t.url + path, {
      method, headers: { ...authHeaders(t.key), 'content-type': 'application/json', ...headers }, body: body === undefined ? undefined : JSON.stringify(body),
      signal: AbortSignal.timeout(30_000),
    });
  } catch (e) {
    throw new UsageError(`cannot reach the gateway at ${t.url}: ${netError(e)}`);
  }
  const text = await res.text();
  let json: any;
  try { json = JSON.parse(text); } catch { json = undefined; }
  if (!res.ok) {
    const instead = `on the gateway host, fabric ${t.cmd} --config FILE reads its store directly (fabric ${t.cmd} --data-dir DIR for a gateway started without a config)`;
    const msg = adminRefusal(res.status, text, t.key, 'the admin API', instead) ?? json?.error?.message ?? text.slice(0, 300);
    throw new ApiRefusal(res.status, `${method} ${path}: ${res.status} ${msg}`);
  }
  return { json: json ?? text, etag: res.headers.get('etag') ?? undefined };
}

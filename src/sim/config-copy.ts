// The config `fabric sim --out` writes: the original fabric, every backend pointed at its
// simulated engine, and changed only where serving it as-is would otherwise fail, reach
// outside the machine, or route and bill differently from the original:
//   - engine: openai becomes openai-compatible: engine openai requires an api_key, and a
//     simulated OpenAI may need none. `cloud: true` keeps what that kind implied (OpenAI's list
//     prices, so budgets fill as they would; smoke checks skip it unless asked).
//   - a budget's `engines:` selector would now match nothing: it names those backends instead.
//   - an api_key whose secret is not set is dropped: its engine then takes no key, and the
//     gateway would otherwise skip the backend. A set one stays, and its engine checks it.
//   - gateway.host and port: loopback and a port of the operator's choosing, not the
//     original's listener, which may be on every interface with no master key.
//   - gateway.env_file: the original's .env, which the copy elsewhere would not find.
//   - serve: blocks go: they describe the real engines' launch (their ports no longer agree
//     with the urls), and the gateway never reads them.

import { dirname, isAbsolute, resolve } from 'node:path';
import { isScalar, parseDocument, type Document } from 'yaml';
import { isCloud } from '../config/cloud.ts';
import type { FabricConfig } from '../config/types.ts';
import type { SecretSource } from './from-config.ts';

/** How every copy begins: fabric sim --out replaces a file that begins so without --force. */
export const SIM_COPY_MARK = '# SIMULATED copy of';

export interface SimConfigCopy {
  /** the original as fabric YAML (a LiteLLM file's fabric translation) */
  yaml: string;
  /** the original, validated */
  config: FabricConfig;
  /** the original as the operator named it, and where the copy goes, for the header */
  source: string;
  out: string;
  /** a backend's simulated server root: http://127.0.0.1:PORT, no path */
  engineUrl: (backend: string) => string;
  secrets: SecretSource;
  /** absolute path of the .env file the original's secrets come from, when there is one */
  envFile: string | undefined;
  /** where the copy's gateway listens */
  host: string;
  port: number;
}

/** Where the store is when it does not move with the copy: an absolute place, or a database. */
function fixedStore(config: FabricConfig): string | undefined {
  const g = config.gateway;
  if (g.store.kind === 'postgres') return 'gateway.store (PostgreSQL)';
  if (isAbsolute(g.store.path)) return `gateway.store ${g.store.path}`;
  if (g.dataDir !== undefined && isAbsolute(g.dataDir)) return `gateway.data_dir ${g.dataDir}`;
  return undefined;
}

/** What the copy shares with the original beyond its engines: simulated traffic lands there too. */
function shared(config: FabricConfig): string[] {
  const g = config.gateway;
  const out: string[] = [];
  const store = fixedStore(config);
  if (store !== undefined) out.push(`${store}: simulated requests are recorded there, and their spend counts against its budgets`);
  if (g.redis !== undefined) out.push('gateway.redis: its rate limits and budget reservations');
  if (g.alerts !== undefined) out.push('gateway.alerts: faults you switch on in the simulator notify its webhook');
  if (g.wake.enabled && [...config.nodes.values()].some((n) => n.wol !== undefined)) out.push('gateway.wake: a simulated engine that is down sends real Wake-on-LAN packets');
  return out;
}

/** Sets a value and says on its line why (any comment the original had there no longer holds). */
function setNoted(doc: Document, path: string[], value: unknown, why: string): void {
  doc.setIn(path, value);
  const node = doc.getIn(path, true);
  if (isScalar(node)) node.comment = ` fabric sim: ${why}`;
}

export function simConfigCopyText(c: SimConfigCopy): string {
  const doc = parseDocument(c.yaml);
  const changes: string[] = [];
  const note = (s: string): void => {
    if (!changes.includes(s)) changes.push(s);
  };

  // Budgets first: the engine selectors are resolved against the original engines.
  for (const budget of c.config.budgets) {
    const engines = doc.getIn(['budgets', budget.name, 'engines']);
    if (engines === undefined) continue;
    const selected = new Set<string>((doc.getIn(['budgets', budget.name, 'backends']) as { toJSON(): string[] } | undefined)?.toJSON() ?? []);
    const kinds = new Set((engines as { toJSON(): string[] }).toJSON());
    for (const b of c.config.backends.values()) if (kinds.has(b.engine)) selected.add(b.name);
    const list = doc.createNode([...selected]);
    list.flow = true;
    list.comment = ` fabric sim: was engines: [${[...kinds].join(', ')}]`;
    doc.setIn(['budgets', budget.name, 'backends'], list);
    doc.deleteIn(['budgets', budget.name, 'engines']);
    note(`budgets.${budget.name}: engines: [${[...kinds].join(', ')}] is now the backends it selected`);
  }

  for (const b of c.config.backends.values()) {
    const at = (key: string): string[] => ['backends', b.name, key];
    const path = new URL(b.url).pathname.replace(/\/+$/, '');
    doc.setIn(at('url'), c.engineUrl(b.name) + path);
    doc.setIn(at('simulated'), true);
    if (b.cloud === undefined && isCloud(b)) {
      doc.setIn(at('cloud'), true);
      note('backends that were cloud APIs say cloud: true, so they are priced and budgeted as before');
    }
    if (b.engine === 'openai') {
      setNoted(doc, at('engine'), 'openai-compatible', 'was openai');
      note('engine: openai is openai-compatible (engine openai requires an api_key)');
    }
    if (b.apiKey !== undefined && c.secrets.get(b.apiKey.env) === undefined) {
      doc.deleteIn(at('api_key'));
      note(`api_key: env:${b.apiKey.env} dropped (not set): the simulated engine takes no key`);
    }
    if (b.serve !== undefined) {
      doc.deleteIn(at('serve'));
      note('serve: blocks dropped (they launch the real engines; the gateway never reads them)');
    }
  }

  // State beside the config (data/, or a relative data_dir): a copy written into the original's
  // directory would share it (keys made in a drill working on the real gateway, simulated spend
  // counted against real budgets), so it gets its own.
  const dd = c.config.gateway.dataDir ?? 'data';
  if (fixedStore(c.config) === undefined && resolve(dirname(c.out), dd) === resolve(dirname(c.source), dd)) {
    const own = `${dd.replace(/\/+$/, '')}-sim`;
    setNoted(doc, ['gateway', 'data_dir'], own, 'apart from the original\'s state in the same directory');
    note(`gateway.data_dir: ${own}, apart from the original's`);
  }
  setNoted(doc, ['gateway', 'host'], c.host, 'the simulated fleet\'s gateway');
  setNoted(doc, ['gateway', 'port'], c.port, 'the simulated fleet\'s gateway');
  if (c.envFile !== undefined) {
    setNoted(doc, ['gateway', 'env_file'], c.envFile, 'the original\'s secrets');
    note(`gateway.env_file is the original's ${c.envFile}`);
  }

  const header = [
    `${SIM_COPY_MARK} ${c.source}, written by fabric sim: every backend is a simulated engine.`,
    `#   fabric serve --config ${c.out}     listens on ${c.host}:${c.port} (fabric sim --gateway-host/--gateway-port)`,
    '# Changed from the original so that it serves as-is and routes and bills as the original would:',
    ...(c.config.gateway.host === c.host && c.config.gateway.port === c.port ? [] : [`#   gateway.host and port: ${c.host}:${c.port}, not the original's listener`]),
    ...changes.map((s) => `#   ${s}`),
  ];
  if (fixedStore(c.config) === undefined) {
    header.push('# Its state (virtual keys, spend) starts empty beside this file, apart from the original\'s');
    header.push('# (unless $FABRIC_DATA_DIR is set where both are served: it overrides data_dir).');
  }
  const sharedWith = shared(c.config);
  if (sharedWith.length > 0) header.push('# Shared with the original fabric:', ...sharedWith.map((s) => `#   ${s}`));
  return `${header.join('\n')}\n${doc.toString()}`;
}

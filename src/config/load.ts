// Reads a fabric config file: YAML → validated FabricConfig, every issue located at
// file:line:col, secrets looked up (never inlined) from the environment and .env.

import { existsSync, readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { LineCounter, parseDocument, isMap, isSeq, isScalar, type Document, type Node } from 'yaml';
import { ConfigError, formatPath, type ConfigIssue, type KeyPath } from './issues.ts';
import { validateFabric, type Reporter } from './schema.ts';
import { readEnvFile, Secrets } from './env-file.ts';
import type { FabricConfig } from './types.ts';

export interface LoadedConfig {
  config: FabricConfig;
  secrets: Secrets;
  /** Warnings only; errors throw ConfigError. */
  issues: ConfigIssue[];
}

type Located = { line: number; col: number };

function locator(doc: Document, lc: LineCounter): (path: KeyPath, onKey: boolean) => Located {
  return (path, onKey) => {
    let node: unknown = doc.contents;
    let best: Located = { line: 1, col: 1 };
    const at = (n: unknown): Located | undefined => {
      const range = (n as Node | null)?.range;
      if (range === undefined || range === null) return undefined;
      const pos = lc.linePos(range[0]);
      return { line: pos.line, col: pos.col };
    };
    best = at(node) ?? best;
    for (let i = 0; i < path.length; i++) {
      const key = path[i]!;
      const last = i === path.length - 1;
      if (isMap(node)) {
        const pair = node.items.find((p) => isScalar(p.key) && String(p.key.value) === String(key));
        if (pair === undefined) return best;
        if (last && onKey) return at(pair.key) ?? best;
        best = at(pair.value) ?? at(pair.key) ?? best;
        node = pair.value;
      } else if (isSeq(node) && typeof key === 'number') {
        const item = node.items[key];
        if (item === undefined) return best;
        best = at(item) ?? best;
        node = item;
      } else {
        return best;
      }
    }
    return best;
  };
}

export function parseFabricText(text: string, file: string): { config: FabricConfig; issues: ConfigIssue[] } {
  const lc = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lc, uniqueKeys: true, prettyErrors: true });
  const issues: ConfigIssue[] = [];
  for (const e of doc.errors) {
    const pos = e.linePos?.[0];
    issues.push({ severity: 'error', file, line: pos?.line ?? 0, col: pos?.col ?? 0, path: '(yaml)', message: e.message.split('\n')[0]! });
  }
  if (issues.length > 0) throw new ConfigError(issues);
  const locate = locator(doc, lc);
  const push = (severity: 'error' | 'warning') => (path: KeyPath, message: string, onKey = false): void => {
    const { line, col } = locate(path, onKey);
    issues.push({ severity, file, line, col, path: formatPath(path), message });
  };
  const reporter: Reporter = { error: push('error'), warn: push('warning') };
  const config = validateFabric(doc.toJS({ maxAliasCount: 100 }), reporter, file);
  issues.sort((a, b) => a.line - b.line || a.col - b.col);
  return { config, issues };
}

/** Secret references not set anywhere: an unset master key is an error, an unset backend key disables that backend. */
export function checkSecrets(config: FabricConfig, secrets: Secrets, file: string): ConfigIssue[] {
  const issues: ConfigIssue[] = [];
  const mk = config.gateway.masterKey;
  if (mk !== undefined && secrets.get(mk.env) === undefined) {
    issues.push({ severity: 'error', file, line: 0, col: 0, path: 'gateway.master_key', message: `environment variable ${mk.env} is not set (nor in the .env file)` });
  }
  for (const b of config.backends.values()) {
    if (b.apiKey !== undefined && secrets.get(b.apiKey.env) === undefined) {
      issues.push({
        severity: 'warning', file, line: 0, col: 0, path: `backends.${b.name}.api_key`,
        message: `environment variable ${b.apiKey.env} is not set; backend ${b.name} will be skipped until it is`,
      });
    }
  }
  return issues;
}

export function loadFabricConfig(path: string, env: NodeJS.ProcessEnv = process.env): LoadedConfig {
  const file = resolve(path);
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new ConfigError([{ severity: 'error', file, line: 0, col: 0, path: '(file)', message: `cannot read: ${(e as NodeJS.ErrnoException).code ?? String(e)}` }]);
  }
  const { config, issues } = parseFabricText(text, file);
  const envPath = config.gateway.envFile !== undefined ? resolve(dirname(file), config.gateway.envFile) : resolve(dirname(file), '.env');
  let fileValues = new Map<string, string>();
  if (existsSync(envPath)) {
    const r = readEnvFile(envPath);
    fileValues = r.values;
    for (const w of r.warnings) issues.push({ severity: 'warning', file: envPath, line: 0, col: 0, path: '(permissions)', message: w });
  } else if (config.gateway.envFile !== undefined) {
    issues.push({ severity: 'error', file, line: 0, col: 0, path: 'gateway.env_file', message: `${envPath} does not exist` });
  }
  const secrets = new Secrets(env, fileValues);
  issues.push(...checkSecrets(config, secrets, file));
  if (issues.some((i) => i.severity === 'error')) throw new ConfigError(issues);
  return { config, secrets, issues };
}

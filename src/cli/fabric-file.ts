// Reading a fabric config for the deploy commands (plan, render): validated like `config
// check`, but secrets are not looked up — planning and rendering never need their values.

import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { parseFabricText } from '../config/load.ts';
import { ConfigError, formatIssue, type ConfigIssue } from '../config/issues.ts';
import type { FabricConfig } from '../config/types.ts';

export interface FabricFile {
  config: FabricConfig;
  text: string;
  warnings: ConfigIssue[];
}

export function readFabricFile(path: string): FabricFile {
  const file = resolve(path);
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new ConfigError([{ severity: 'error', file, line: 0, col: 0, path: '(file)', message: `cannot read: ${(e as NodeJS.ErrnoException).code ?? String(e)}` }]);
  }
  const { config, issues } = parseFabricText(text, file);
  if (issues.some((i) => i.severity === 'error')) throw new ConfigError(issues);
  return { config, text, warnings: issues };
}

/** The config path from a positional, --config, or $FABRIC_CONFIG; undefined when none. */
export function configPath(positional: string | undefined, flag: string | undefined): string | undefined {
  const p = positional ?? flag ?? process.env.FABRIC_CONFIG;
  return p === undefined || p === '' ? undefined : p;
}

/** Prints a ConfigError's issues the way `config check` does; returns the exit code. */
export function reportConfigError(cmd: string, file: string, e: unknown): number {
  if (!(e instanceof ConfigError)) throw e;
  for (const i of e.issues) process.stderr.write(formatIssue(i) + '\n');
  const n = e.issues.filter((i) => i.severity === 'error').length;
  process.stderr.write(`fabric ${cmd}: ${file} is invalid — ${n} error${n === 1 ? '' : 's'} (fabric config check ${file})\n`);
  return 1;
}

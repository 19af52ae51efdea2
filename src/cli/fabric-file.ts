// Reading a fabric config for the deploy commands (plan, render): validated like `config
// check`, but secrets are not looked up — planning and rendering never need their values.

import { parseFabricText, readConfigText } from '../config/load.ts';
import { ConfigError, formatIssue } from '../config/issues.ts';
import type { FabricConfig } from '../config/types.ts';
import { usageError } from './args.ts';

export interface FabricFile {
  /** As the operator named it, for messages. */
  path: string;
  config: FabricConfig;
  text: string;
}

/**
 * The config named by a positional, --config or $FABRIC_CONFIG, read and validated with its
 * warnings printed; or the exit code when there is none (2) or it is invalid (1).
 */
export function openFabricFile(cmd: string, help: string, positional: string | undefined, flag: string | undefined): FabricFile | number {
  const p = positional ?? flag ?? process.env.FABRIC_CONFIG;
  if (p === undefined || p === '') return usageError(cmd, 'a FILE is required', help);
  try {
    const { file, text } = readConfigText(p);
    const { config, issues } = parseFabricText(text, file, p);
    if (issues.some((i) => i.severity === 'error')) throw new ConfigError(issues);
    for (const w of issues) process.stderr.write(formatIssue(w) + '\n');
    return { path: p, config, text };
  } catch (e) {
    return reportConfigError(cmd, p, e);
  }
}

/** Prints a ConfigError's issues the way `config check` does; returns the exit code. */
export function reportConfigError(cmd: string, file: string, e: unknown): number {
  if (!(e instanceof ConfigError)) throw e;
  for (const i of e.issues) process.stderr.write(formatIssue(i) + '\n');
  const n = e.issues.filter((i) => i.severity === 'error').length;
  process.stderr.write(`fabric ${cmd}: ${file} is invalid — ${n} error${n === 1 ? '' : 's'} (fabric config check ${file})\n`);
  return 1;
}

// The argument handling every command shares, so each reads the same way: --help prints the
// command's help and exits 0; a bad option or bad usage prints why, then the help, and exits 2.

import { parseArgs, type ParseArgsConfig } from 'node:util';

/** Writes `fabric CMD: MSG` (and the help, when given) to stderr; returns the bad-usage exit code. */
export function usageError(cmd: string, msg: string, help?: string): 2 {
  process.stderr.write(`fabric ${cmd}: ${msg}\n${help === undefined ? '' : `\n${help}`}`);
  return 2;
}

/** node:util parseArgs for one command; the exit code instead when the command is done (--help, bad option). */
export function parseCommand<T extends ParseArgsConfig>(cmd: string, help: string, config: T): ReturnType<typeof parseArgs<T>> | number {
  let parsed: ReturnType<typeof parseArgs<T>>;
  try {
    parsed = parseArgs(config);
  } catch (e) {
    return usageError(cmd, (e as Error).message, help);
  }
  if ((parsed.values as { help?: unknown }).help === true) {
    process.stdout.write(help);
    return 0;
  }
  return parsed;
}

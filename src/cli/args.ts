// The argument handling every command shares, so each reads the same way: --help prints the
// command's help and exits 0; bad usage prints why, then the help, and exits 2. An option
// node:util cannot parse is one line naming it, pointing at --help, and exit 2.

import { parseArgs, type ParseArgsConfig } from 'node:util';

/** Writes `fabric CMD: MSG` (and the help, when given) to stderr; returns the bad-usage exit code. */
export function usageError(cmd: string, msg: string, help?: string): 2 {
  process.stderr.write(`fabric ${cmd}: ${msg}\n${help === undefined ? '' : `\n${help}`}`);
  return 2;
}

/**
 * node:util parseArgs's refusal in plain words, naming the option by its long name: its own
 * messages speak of an "ambiguous" argument, '-XYZ', and a `-- "--x"` with an unbalanced quote.
 * Anything not recognised is passed on as it came.
 */
export function parseErrorText(cmd: string, e: Error & { code?: string }, config: ParseArgsConfig): string {
  const options = config.options ?? {};
  const args = config.args ?? [];
  const see = `(see fabric ${cmd} --help)`;
  /** -c → --config, as the help lists it. */
  const long = (name: string): string => {
    if (name.startsWith('--')) return name;
    const found = Object.entries(options).find(([, o]) => o.short === name.slice(1));
    return found === undefined ? name : `--${found[0]}`;
  };
  const option = /^Option '(-{1,2}[^\s',]+)/.exec(e.message)?.[1];
  if (e.code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION') {
    const name = /^Unknown option '([^']+)'/.exec(e.message)?.[1];
    if (name !== undefined) return `unknown option ${name} ${see}`;
  } else if (e.code === 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE' && option !== undefined) {
    const flag = long(option);
    if (/argument is ambiguous/.test(e.message)) {
      // What followed the option, as typed: taken for an option of its own, not for its value.
      const at = args.indexOf(option);
      const next = at === -1 ? undefined : args[at + 1];
      const known = next !== undefined && (next.startsWith('--') ? Object.hasOwn(options, next.slice(2).split('=')[0]!) : Object.values(options).some((o) => o.short === next.slice(1)));
      if (next !== undefined && known) return `${flag} needs a value; ${next} is an option of its own ${see}`;
      return `${flag} needs a value; a value starting with '-' is written ${flag}=${next ?? '-VALUE'}`;
    }
    if (/argument missing/.test(e.message)) return `${flag} needs a value ${see}`;
    if (/does not take an argument/.test(e.message)) return `${flag} takes no value ${see}`;
  } else if (e.code === 'ERR_PARSE_ARGS_UNEXPECTED_POSITIONAL') {
    const arg = /^Unexpected argument '(.*)'\. /s.exec(e.message)?.[1];
    if (arg !== undefined) return `unexpected argument ${JSON.stringify(arg)}: fabric ${cmd} takes options only ${see}`;
  }
  return e.message;
}

/** node:util parseArgs for one command; the exit code instead when the command is done (--help, bad option). */
export function parseCommand<T extends ParseArgsConfig>(cmd: string, help: string, config: T): ReturnType<typeof parseArgs<T>> | number {
  let parsed: ReturnType<typeof parseArgs<T>>;
  try {
    parsed = parseArgs(config);
  } catch (e) {
    // One line: the help, several screens for some commands, would push it out of sight.
    return usageError(cmd, parseErrorText(cmd, e as Error & { code?: string }, config));
  }
  if ((parsed.values as { help?: unknown }).help === true) {
    process.stdout.write(help);
    return 0;
  }
  return parsed;
}

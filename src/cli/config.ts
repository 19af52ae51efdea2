// fabric config check FILE: every problem with file:line:col, key path and what is wrong.
// fabric config import FILE: a LiteLLM proxy config → a native one (config-import.ts).

import { loadFabricConfig } from '../config/load.ts';
import { ConfigError, formatIssue } from '../config/issues.ts';
import { runConfigImport } from './config-import.ts';
import { parseCommand, usageError } from './args.ts';

const HELP = `Usage: fabric config check FILE [--json]
       fabric config import FILE [--out FILE] [--force]

check: validates a fabric configuration — or a LiteLLM proxy config, which the gateway
serves as it is. Prints every error and warning as
  FILE:LINE:COL: severity: key.path: message
and exits 0 when the config is valid, 1 when it is not, 2 on bad usage.
Secrets are looked up (environment, then the .env beside the config) but never printed.

import: writes a LiteLLM proxy config as a native fabric config that routes the same way
(fabric config import --help).
`;

export async function runConfig(argv: string[]): Promise<number> {
  const [sub, ...rest] = argv;
  if (sub === undefined || sub === '--help' || sub === '-h') {
    process.stdout.write(HELP);
    return sub === undefined ? 2 : 0;
  }
  if (sub === 'import') return runConfigImport(rest);
  if (sub !== 'check') return usageError('config', `unknown subcommand "${sub}"`, HELP);
  const parsed = parseCommand('config check', HELP, { args: rest, allowPositionals: true, options: { json: { type: 'boolean' }, help: { type: 'boolean', short: 'h' } } });
  if (typeof parsed === 'number') return parsed;
  const file = parsed.positionals[0];
  if (file === undefined) return usageError('config check', 'a FILE is required', HELP);
  try {
    const { config, issues, format } = loadFabricConfig(file);
    if (parsed.values.json === true) {
      process.stdout.write(JSON.stringify({ valid: true, format, issues }, null, 2) + '\n');
    } else {
      for (const i of issues) process.stderr.write(formatIssue(i) + '\n');
      process.stdout.write(`${file}: valid${format === 'litellm' ? ' LiteLLM config (served translated; fabric config import writes the translation)' : ''} — ${config.nodes.size} nodes, ${config.backends.size} backends, ${config.roles.size} roles, ${config.patterns.length} patterns` +
        `${issues.length > 0 ? `, ${issues.length} warning${issues.length === 1 ? '' : 's'}` : ''}\n`);
    }
    return 0;
  } catch (e) {
    if (!(e instanceof ConfigError)) throw e;
    if (parsed.values.json === true) {
      process.stdout.write(JSON.stringify({ valid: false, issues: e.issues }, null, 2) + '\n');
    } else {
      for (const i of e.issues) process.stderr.write(formatIssue(i) + '\n');
      const n = e.issues.filter((i) => i.severity === 'error').length;
      process.stderr.write(`${file}: invalid — ${n} error${n === 1 ? '' : 's'}\n`);
    }
    return 1;
  }
}

// fabric config check FILE...: every problem with file:line:col, key path and what is wrong.
// fabric config import FILE: a LiteLLM proxy config → a native one (config-import.ts).

import { loadFabricConfig } from '../config/load.ts';
import { ConfigError, formatIssue, type ConfigIssue } from '../config/issues.ts';
import { runConfigImport } from './config-import.ts';
import { parseCommand, usageError } from './args.ts';

const HELP = `Usage: fabric config check FILE... [--json]
       fabric config import FILE [--out FILE] [--force]

check: validates fabric configurations — or LiteLLM proxy configs, which the gateway
serves as they are. Checks every FILE given and prints every error and warning as
  FILE:LINE:COL: severity: key.path: message
then one line per file, valid or invalid. Exits 0 when every file is valid, 1 when any
is not, 2 on bad usage. --json prints { valid, issues, files: [{ file, valid, format,
issues }] }: valid and issues cover all the files (each issue names its file).
Secrets are looked up (environment, then the .env beside the config) but never printed.

import: writes a LiteLLM proxy config as a native fabric config that routes the same way
(fabric config import --help).
`;

/** One file's verdict: what --json prints per file, and what the text output is made of. */
interface FileReport {
  file: string;
  valid: boolean;
  /** Absent when the file is invalid: it may not even be YAML. */
  format?: 'fabric' | 'litellm';
  issues: ConfigIssue[];
  summary: string;
}

function counted(n: number, what: string): string {
  return `${n} ${what}${n === 1 ? '' : 's'}`;
}

function checkFile(file: string): FileReport {
  try {
    const { config, issues, format } = loadFabricConfig(file);
    const warnings = issues.length > 0 ? `, ${issues.length} warning${issues.length === 1 ? '' : 's'}` : '';
    const summary = `${file}: valid${format === 'litellm' ? ' LiteLLM config (served translated; fabric config import writes the translation)' : ''} — ` +
      `${counted(config.nodes.size, 'node')}, ${counted(config.backends.size, 'backend')}, ${counted(config.roles.size, 'role')}, ${counted(config.patterns.length, 'pattern')}${warnings}`;
    return { file, valid: true, format, issues, summary };
  } catch (e) {
    if (!(e instanceof ConfigError)) throw e;
    const n = e.issues.filter((i) => i.severity === 'error').length;
    return { file, valid: false, issues: e.issues, summary: `${file}: invalid — ${n} error${n === 1 ? '' : 's'}` };
  }
}

function printText(reports: FileReport[]): void {
  for (const r of reports) {
    for (const i of r.issues) process.stderr.write(formatIssue(i) + '\n');
    (r.valid ? process.stdout : process.stderr).write(r.summary + '\n');
  }
  const bad = reports.filter((r) => !r.valid).length;
  if (reports.length > 1 && bad > 0) process.stderr.write(`fabric config check: ${bad} of ${reports.length} files invalid\n`);
}

/**
 * The single-file shape of old ({ valid, format, issues }) extended with `files`, so a script
 * written for one file reads a run over several the same way: `valid` is every file's,
 * `issues` all of them; `format` stays at the top only when there is one file.
 */
function jsonReport(reports: FileReport[]): unknown {
  const files = reports.map(({ file, valid, format, issues }) => ({ file, valid, ...(format === undefined ? {} : { format }), issues }));
  const single = reports.length === 1 && reports[0]!.format !== undefined ? { format: reports[0]!.format } : {};
  return { valid: reports.every((r) => r.valid), ...single, issues: reports.flatMap((r) => r.issues), files };
}

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
  const files = parsed.positionals;
  if (files.length === 0) return usageError('config check', 'a FILE is required', HELP);
  const reports = files.map(checkFile);
  if (parsed.values.json === true) process.stdout.write(JSON.stringify(jsonReport(reports), null, 2) + '\n');
  else printText(reports);
  return reports.every((r) => r.valid) ? 0 : 1;
}

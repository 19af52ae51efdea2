// fabric config import FILE: a LiteLLM proxy config → a native fabric config with the same
// routing, written with comments where the mapping needed a choice. Secrets stay references.

import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, relative, resolve } from 'node:path';
import { parseFabricText } from '../config/load.ts';
import { ConfigError, formatIssue, type ConfigIssue } from '../config/issues.ts';
import { importLiteLLMText, isLiteLLMText } from '../config/litellm/load.ts';
import { parseCommand, usageError } from './args.ts';
import { outPathUsable, writeFailure } from './out-path.ts';

export const IMPORT_HELP = `Usage: fabric config import FILE [--out FILE] [--force]

Translates a LiteLLM proxy config (model_list, litellm_settings, router_settings,
general_settings) into a native fabric config that routes the same way: the same names,
load balancing, retries, fallbacks and timeouts. Comments in the output say where the
mapping needed a choice; its head lists what was not carried over. Warnings also go to
stderr, as FILE:LINE:COL: warning: key.path: message.
Secrets stay references: os.environ/NAME becomes env:NAME, and no secret value is written.

  --out FILE   write the fabric config here (default: stdout)
  --force      overwrite --out if it exists

Exit status: 0 written; 1 nothing written (FILE cannot be read or is not a valid LiteLLM config, or
--out exists and --force is not given); 2 bad usage.
`;

function printIssues(issues: readonly ConfigIssue[]): void {
  for (const i of issues) process.stderr.write(formatIssue(i) + '\n');
}

export async function runConfigImport(argv: string[]): Promise<number> {
  const parsed = parseCommand('config import', IMPORT_HELP, { args: argv, allowPositionals: true, options: { out: { type: 'string', short: 'o' }, force: { type: 'boolean' }, help: { type: 'boolean', short: 'h' } } });
  if (typeof parsed === 'number') return parsed;
  const [file, ...extra] = parsed.positionals;
  if (file === undefined || extra.length > 0) return usageError('config import', file === undefined ? 'a FILE is required' : 'one FILE at a time', IMPORT_HELP);
  const source = resolve(file);
  let text: string;
  try {
    text = readFileSync(source, 'utf8');
  } catch (e) {
    process.stderr.write(`fabric config import: cannot read ${file}: ${(e as NodeJS.ErrnoException).code ?? String(e)}\n`);
    return 1;
  }
  if (!isLiteLLMText(text)) {
    process.stderr.write(`fabric config import: ${file} is not a LiteLLM proxy config (no model_list); a fabric config needs no import: fabric config check ${file}\n`);
    return 1;
  }
  const out = parsed.values.out === undefined ? undefined : resolve(parsed.values.out);
  if (out !== undefined && existsSync(out) && parsed.values.force !== true) {
    process.stderr.write(`fabric config import: ${parsed.values.out} exists; add --force to overwrite it\n`);
    return 1;
  }
  if (out !== undefined && !outPathUsable('config import', parsed.values.out!, 'file')) return 1;
  // Secrets stay where they are: the .env beside the LiteLLM file, named from the output's directory.
  const dotenv = resolve(dirname(source), '.env');
  const envFile = out !== undefined && dirname(out) !== dirname(source) && existsSync(dotenv) ? relative(dirname(out), dotenv) : undefined;
  let result: { yaml: string; issues: ConfigIssue[] };
  try {
    result = importLiteLLMText(text, source, process.env, { envFile });
  } catch (e) {
    if (!(e instanceof ConfigError)) throw e;
    printIssues(e.issues);
    process.stderr.write(`fabric config import: ${file} is not valid YAML; nothing written\n`);
    return 1;
  }
  printIssues(result.issues);
  const errors = result.issues.filter((i) => i.severity === 'error').length;
  if (errors > 0) {
    process.stderr.write(`fabric config import: ${file} has ${errors} error${errors === 1 ? '' : 's'}; nothing written\n`);
    return 1;
  }
  // What is written must load as a fabric config; anything else is a bug here, not in the user's file.
  let summary: string;
  try {
    const { config } = parseFabricText(result.yaml, out ?? '(imported)');
    summary = `${config.backends.size} backends, ${config.roles.size} roles, ${config.patterns.length} patterns`;
  } catch (e) {
    if (!(e instanceof ConfigError)) throw e;
    printIssues(e.issues);
    process.stderr.write('fabric config import: the translation produced an invalid fabric config (a bug: please report it with the LiteLLM file); nothing written\n');
    return 1;
  }
  const warnings = result.issues.length;
  const noted = warnings === 0 ? '' : `; ${warnings} warning${warnings === 1 ? '' : 's'} (listed at the top of the file)`;
  if (out === undefined) {
    process.stdout.write(result.yaml);
    process.stderr.write(`imported ${file}: ${summary}${noted}\n`);
  } else {
    try {
      writeFileSync(out, result.yaml);
    } catch (e) {
      return writeFailure('config import', parsed.values.out!, e);
    }
    process.stderr.write(`wrote ${parsed.values.out}: ${summary}${noted}\ncheck it with: fabric config check ${parsed.values.out}\n`);
  }
  return 0;
}

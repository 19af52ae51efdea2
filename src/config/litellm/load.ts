// A LiteLLM proxy config read as a fabric config: recognised by its shape, translated, then
// validated by the fabric schema like any native file — with every issue, including the
// schema's, placed at file:line:col of the LiteLLM file the user wrote.

import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { parseDocument } from 'yaml';
import { parseEnvFile } from '../env-file.ts';
import { formatPath, type ConfigIssue, type KeyPath } from '../issues.ts';
import { readYamlSource } from '../locate.ts';
import { validateFabric, type Reporter } from '../schema.ts';
import type { FabricConfig } from '../types.ts';
import { isObj, Translation } from './context.ts';
import { emitNativeYaml } from './emit.ts';
import { TOP_KEYS } from './sections.ts';
import { translateLiteLLM, type TranslateResult } from './translate.ts';

const NATIVE_KEYS = new Set(['version', 'gateway', 'nodes', 'backends', 'roles', 'patterns']);

/** A LiteLLM config has model_list (or its settings sections) at the top, and none of the fabric's own sections. */
function isLiteLLMShape(raw: unknown): boolean {
  if (!isObj(raw)) return false;
  const keys = Object.keys(raw);
  if ('model_list' in raw) return true;
  return keys.some((k) => (TOP_KEYS as readonly string[]).includes(k)) && !keys.some((k) => NATIVE_KEYS.has(k));
}

export function isLiteLLMText(text: string): boolean {
  const doc = parseDocument(text);
  return doc.errors.length === 0 && isLiteLLMShape(doc.toJS({ maxAliasCount: 100 }));
}

export interface LiteLLMParsed {
  config: FabricConfig;
  /** Warnings (and errors: a caller refuses to serve when there are any). */
  issues: ConfigIssue[];
  /** Secrets the file holds literally, by the env name the config refers to them with. */
  literals: Map<string, string>;
  /** Places an issue found later (an unset secret) at its LiteLLM key. */
  relocate(issue: ConfigIssue): ConfigIssue;
  result: TranslateResult;
}

function dotEnvBeside(file: string): Map<string, string> {
  const p = join(dirname(file), '.env');
  try {
    return existsSync(p) ? parseEnvFile(readFileSync(p, 'utf8')) : new Map();
  } catch {
    return new Map(); // the loader reports an unreadable .env
  }
}

export function parseLiteLLMText(text: string, file: string, env: NodeJS.ProcessEnv = process.env): LiteLLMParsed {
  const src = readYamlSource(text, file);
  const dotenv = dotEnvBeside(file);
  // Non-secret os.environ/ values (an api_base) are read now: environment, .env, then environment_variables.
  const lookup = (name: string): string | undefined => {
    const v = env[name] ?? dotenv.get(name) ?? t.literals.get(name);
    return v === '' ? undefined : v;
  };
  const t: Translation = new Translation(src.reporter, lookup);
  const result = translateLiteLLM(src.value, t);
  const mapped: Reporter = {
    error: (p, m) => src.reporter.error(t.origin(p), `${m} (as fabric ${formatPath(p)})`),
    warn: (p, m) => src.reporter.warn(t.origin(p), `${m} (as fabric ${formatPath(p)})`),
  };
  const config = validateFabric(result.doc, mapped, file);
  src.issues.sort((a, b) => a.line - b.line || a.col - b.col);
  const byFormatted = new Map<string, KeyPath>();
  for (const [k, origin] of t.origins()) byFormatted.set(formatPath(JSON.parse(k) as KeyPath), origin);
  const relocate = (issue: ConfigIssue): ConfigIssue => {
    const origin = issue.line === 0 ? byFormatted.get(issue.path) : undefined;
    if (origin === undefined) return issue;
    const { line, col } = src.locate(origin, false);
    return { ...issue, line, col, path: formatPath(origin), message: `${issue.message} (as fabric ${issue.path})` };
  };
  return { config, issues: src.issues, literals: t.literals, relocate, result };
}

export interface ImportOptions {
  /** gateway.env_file for the written config, when it lives away from the LiteLLM file's .env. */
  envFile?: string;
}

/** The LiteLLM file as a commented fabric config (the text `fabric config import` writes). */
export function importLiteLLMText(text: string, file: string, env: NodeJS.ProcessEnv = process.env, opts: ImportOptions = {}): { yaml: string; issues: ConfigIssue[] } {
  const parsed = parseLiteLLMText(text, file, env);
  const { result } = parsed;
  if (opts.envFile !== undefined) {
    result.doc.gateway.env_file = opts.envFile;
    result.t.note(['gateway', 'env_file'], 'the .env beside the LiteLLM file, which holds its secrets');
  }
  return { yaml: emitNativeYaml(result, file, parsed.issues), issues: parsed.issues };
}

// Reads a fabric config file: YAML → validated FabricConfig, every issue located at
// file:line:col, secrets looked up (never inlined) from the environment and .env.
// A LiteLLM proxy config is recognised by its shape and translated (src/config/litellm).

import { existsSync, readFileSync } from 'node:fs';
import { dirname, isAbsolute, join, resolve } from 'node:path';
import { ConfigError, formatPath, inFileOrder, type ConfigIssue, type KeyPath } from './issues.ts';
import { validateFabric } from './schema.ts';
import { tlsIssues } from './tls.ts';
import { readEnvFile, Secrets } from './env-file.ts';
import { readYamlSource, type Located } from './locate.ts';
import { isLiteLLMText, parseLiteLLMText } from './litellm/load.ts';
import type { FabricConfig } from './types.ts';

export interface LoadedConfig {
  config: FabricConfig;
  secrets: Secrets;
  /** Warnings only; errors throw ConfigError. */
  issues: ConfigIssue[];
  /** A fabric config, or a LiteLLM proxy config translated on load (detected from its shape). */
  format: 'fabric' | 'litellm';
}

export interface ParsedFabric {
  config: FabricConfig;
  issues: ConfigIssue[];
  /** A key path's line:col in the text, for issues found after parsing (an unset secret). */
  locate: (path: KeyPath, onKey: boolean) => Located;
}

/** `file` names the config (config.file; relative paths in it resolve beside it); issues name it `shownAs`, by default the same. */
export function parseFabricText(text: string, file: string, shownAs: string = file): ParsedFabric {
  const src = readYamlSource(text, shownAs);
  const config = validateFabric(src.value, src.reporter, file);
  return { config, issues: inFileOrder(src.issues), locate: src.locate };
}

/**
 * Secret references not set anywhere: an unset master key is an error, an unset backend key
 * disables that backend. With `locate`, each issue sits at the value that names the variable.
 */
export function checkSecrets(config: FabricConfig, secrets: Secrets, file: string, locate?: (path: KeyPath, onKey: boolean) => Located, masterKey: 'required' | 'unused' = 'required'): ConfigIssue[] {
  const issues: ConfigIssue[] = [];
  const unset = (severity: ConfigIssue['severity'], path: KeyPath, message: string): void => {
    // The reference is `key: env:NAME` or `key: { env: NAME }`; locate stops at the deepest key that exists.
    const at = locate?.([...path, 'env'], false) ?? { line: 0, col: 0 };
    issues.push({ severity, file, line: at.line, col: at.col, path: formatPath(path), message });
  };
  const notSet = (name: string): string => `environment variable ${name} is not set (nor in the .env file)`;
  const mk = config.gateway.masterKey;
  // Needed to serve; not by a command that reads the store directly (fabric keys/usage --config).
  if (mk !== undefined && secrets.get(mk.env) === undefined && masterKey === 'required') unset('error', ['gateway', 'master_key'], notSet(mk.env));
  const st = config.gateway.store;
  if (st.kind === 'postgres' && secrets.get(st.url.env) === undefined) unset('error', ['gateway', 'store', 'url'], notSet(st.url.env));
  const rd = config.gateway.redis;
  if (rd !== undefined && secrets.get(rd.url.env) === undefined) unset('error', ['gateway', 'redis', 'url'], notSet(rd.url.env));
  for (const [name, v] of config.gateway.tracing?.headers ?? []) {
    if (typeof v !== 'string' && secrets.get(v.env) === undefined) unset('warning', ['gateway', 'tracing', 'headers', name], `${notSet(v.env)}; spans are sent without this header until it is`);
  }
  for (const b of config.backends.values()) {
    if (b.apiKey !== undefined && secrets.get(b.apiKey.env) === undefined) {
      unset('warning', ['backends', b.name, 'api_key'], `environment variable ${b.apiKey.env} is not set; backend ${b.name} will be skipped until it is`);
    }
  }
  return issues;
}

/** A config file's absolute path and text; a file that cannot be read is a ConfigError like any other, named as given. */
export function readConfigText(path: string): { file: string; text: string } {
  const file = resolve(path);
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new ConfigError([{ severity: 'error', file: path, line: 0, col: 0, path: '(file)', message: `cannot read: ${(e as NodeJS.ErrnoException).code ?? String(e)}` }]);
  }
  // No YAML holds a NUL byte: a binary given by mistake is said so, not parsed and quoted back to the terminal.
  if (text.includes('\0')) throw new ConfigError([{ severity: 'error', file: path, line: 0, col: 0, path: '(file)', message: 'not a text file (YAML expected)' }]);
  return { file, text };
}

/**
 * Loads `path`. Issues name the file as the operator wrote it (so `config check` prints the
 * same name on every line it writes); config.file is absolute, since data_dir, env_file and
 * the like resolve beside it whatever the working directory later is.
 */
export function loadFabricConfig(path: string, env: NodeJS.ProcessEnv = process.env, masterKey: 'required' | 'unused' = 'required', secretsNeeded = true): LoadedConfig {
  const { file, text } = readConfigText(path);
  const litellm = isLiteLLMText(text) ? parseLiteLLMText(text, path, env) : undefined;
  const native = litellm === undefined ? parseFabricText(text, file, path) : undefined;
  // A LiteLLM file places its issues itself (relocate): the fabric key paths are not in its text.
  const locate = native?.locate;
  const { config, issues } = native ?? litellm!;
  config.file = file;
  // Beside the config, and named the way the config was: relative to the working directory when it was.
  const envFile = config.gateway.envFile ?? '.env';
  const envPath = isAbsolute(envFile) ? envFile : join(dirname(path), envFile);
  let fileValues = new Map<string, string>();
  if (existsSync(envPath)) {
    const r = readEnvFile(envPath);
    fileValues = r.values;
    for (const w of r.warnings) issues.push({ severity: 'warning', file: envPath, line: 0, col: 0, path: '(permissions)', message: w });
  } else if (config.gateway.envFile !== undefined) {
    const at = locate?.(['gateway', 'env_file'], false) ?? { line: 0, col: 0 };
    issues.push({ severity: 'error', file: path, line: at.line, col: at.col, path: 'gateway.env_file', message: `${envPath} does not exist` });
  }
  // The TLS key is a secret too: a command that needs none (fabric wake) is only warned.
  for (const t of tlsIssues(config)) {
    const at = locate?.(['gateway', 'tls', t.key], false) ?? { line: 0, col: 0 };
    issues.push({ severity: secretsNeeded ? t.severity : 'warning', file: path, line: at.line, col: at.col, path: `gateway.tls.${t.key}`, message: t.message });
  }
  // A LiteLLM file may hold secrets literally: they serve as a last resort, never as config.
  for (const [name, value] of litellm?.literals ?? []) if (!fileValues.has(name)) fileValues.set(name, value);
  const secrets = new Secrets(env, fileValues);
  // A command that uses no secret (fabric wake) reads a config whose secrets are elsewhere.
  const secretIssues = checkSecrets(config, secrets, path, locate, masterKey).map((i) => (secretsNeeded ? i : { ...i, severity: 'warning' as const }));
  issues.push(...(litellm === undefined ? secretIssues : secretIssues.map(litellm.relocate)));
  if (issues.some((i) => i.severity === 'error')) throw new ConfigError(issues);
  return { config, secrets, issues: inFileOrder(issues), format: litellm === undefined ? 'fabric' : 'litellm' };
}

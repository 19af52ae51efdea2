// Reads a fabric config file: YAML → validated FabricConfig, every issue located at
// file:line:col, secrets looked up (never inlined) from the environment and .env.
// A LiteLLM proxy config is recognised by its shape and translated (src/config/litellm).

import { existsSync, readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { ConfigError, type ConfigIssue } from './issues.ts';
import { validateFabric } from './schema.ts';
import { readEnvFile, Secrets } from './env-file.ts';
import { readYamlSource } from './locate.ts';
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

export function parseFabricText(text: string, file: string): { config: FabricConfig; issues: ConfigIssue[] } {
  const src = readYamlSource(text, file);
  const config = validateFabric(src.value, src.reporter, file);
  src.issues.sort((a, b) => a.line - b.line || a.col - b.col);
  return { config, issues: src.issues };
}

/** Secret references not set anywhere: an unset master key is an error, an unset backend key disables that backend. */
export function checkSecrets(config: FabricConfig, secrets: Secrets, file: string): ConfigIssue[] {
  const issues: ConfigIssue[] = [];
  const mk = config.gateway.masterKey;
  if (mk !== undefined && secrets.get(mk.env) === undefined) {
    issues.push({ severity: 'error', file, line: 0, col: 0, path: 'gateway.master_key', message: `environment variable ${mk.env} is not set (nor in the .env file)` });
  }
  const st = config.gateway.store;
  if (st.kind === 'postgres' && secrets.get(st.url.env) === undefined) {
    issues.push({ severity: 'error', file, line: 0, col: 0, path: 'gateway.store.url', message: `environment variable ${st.url.env} is not set (nor in the .env file)` });
  }
  const rd = config.gateway.redis;
  if (rd !== undefined && secrets.get(rd.url.env) === undefined) {
    issues.push({ severity: 'error', file, line: 0, col: 0, path: 'gateway.redis.url', message: `environment variable ${rd.url.env} is not set (nor in the .env file)` });
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

/** A config file's absolute path and text; a file that cannot be read is a ConfigError like any other. */
export function readConfigText(path: string): { file: string; text: string } {
  const file = resolve(path);
  try {
    return { file, text: readFileSync(file, 'utf8') };
  } catch (e) {
    throw new ConfigError([{ severity: 'error', file, line: 0, col: 0, path: '(file)', message: `cannot read: ${(e as NodeJS.ErrnoException).code ?? String(e)}` }]);
  }
}

export function loadFabricConfig(path: string, env: NodeJS.ProcessEnv = process.env): LoadedConfig {
  const { file, text } = readConfigText(path);
  const litellm = isLiteLLMText(text) ? parseLiteLLMText(text, file, env) : undefined;
  const { config, issues } = litellm ?? parseFabricText(text, file);
  const envPath = config.gateway.envFile !== undefined ? resolve(dirname(file), config.gateway.envFile) : resolve(dirname(file), '.env');
  let fileValues = new Map<string, string>();
  if (existsSync(envPath)) {
    const r = readEnvFile(envPath);
    fileValues = r.values;
    for (const w of r.warnings) issues.push({ severity: 'warning', file: envPath, line: 0, col: 0, path: '(permissions)', message: w });
  } else if (config.gateway.envFile !== undefined) {
    issues.push({ severity: 'error', file, line: 0, col: 0, path: 'gateway.env_file', message: `${envPath} does not exist` });
  }
  // A LiteLLM file may hold secrets literally: they serve as a last resort, never as config.
  for (const [name, value] of litellm?.literals ?? []) if (!fileValues.has(name)) fileValues.set(name, value);
  const secrets = new Secrets(env, fileValues);
  const secretIssues = checkSecrets(config, secrets, file);
  issues.push(...(litellm === undefined ? secretIssues : secretIssues.map(litellm.relocate)));
  if (issues.some((i) => i.severity === 'error')) throw new ConfigError(issues);
  return { config, secrets, issues, format: litellm === undefined ? 'fabric' : 'litellm' };
}

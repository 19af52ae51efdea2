// Secrets come from the environment or a .env file beside the config (the seeds keep
// theirs at 0600, synced from a key vault). Values are held here and handed out only to
// the code that sends them upstream; nothing prints them.

import { readFileSync, statSync } from 'node:fs';

export interface EnvFileResult {
  values: Map<string, string>;
  warnings: string[];
}

/** Parses KEY=value lines (optional `export`, quotes, # comments); no interpolation. */
export function parseEnvFile(text: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const rawLine of text.split(/\r?\n/)) {
    const line = rawLine.trim();
    if (line === '' || line.startsWith('#')) continue;
    const m = /^(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*)$/.exec(line);
    if (m === null) continue;
    let value = m[2]!;
    const q = value[0];
    if ((q === '"' || q === "'") && value.length >= 2 && value.endsWith(q)) {
      value = value.slice(1, -1);
      if (q === '"') value = value.replace(/\\n/g, '\n').replace(/\\"/g, '"');
    } else {
      const hash = value.indexOf(' #');
      if (hash >= 0) value = value.slice(0, hash);
      value = value.trim();
    }
    out.set(m[1]!, value);
  }
  return out;
}

export function readEnvFile(path: string): EnvFileResult {
  const warnings: string[] = [];
  const st = statSync(path);
  if ((st.mode & 0o077) !== 0) {
    warnings.push(`${path} is readable by group or others (mode ${(st.mode & 0o777).toString(8)}); it holds secrets: chmod 600 ${path}`);
  }
  return { values: parseEnvFile(readFileSync(path, 'utf8')), warnings };
}

/** Looks secrets up: the process environment first, then the .env file. */
export class Secrets {
  readonly #env: NodeJS.ProcessEnv;
  readonly #file: Map<string, string>;
  constructor(env: NodeJS.ProcessEnv, file: Map<string, string> = new Map()) {
    this.#env = env;
    this.#file = file;
  }
  get(name: string): string | undefined {
    const v = this.#env[name];
    if (v !== undefined && v !== '') return v;
    const f = this.#file.get(name);
    return f === '' ? undefined : f;
  }
  /** Every secret value known, so log output can be scrubbed of them. */
  values(names: Iterable<string>): string[] {
    const out: string[] = [];
    for (const n of names) {
      const v = this.get(n);
      if (v !== undefined && v.length >= 4) out.push(v);
    }
    return out;
  }
}

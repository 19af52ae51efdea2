// Secrets in a LiteLLM config: `os.environ/NAME` becomes the fabric reference env:NAME. A
// value written literally is held in memory for serving under a derived variable name and
// reported; the imported config carries only the reference, never the value.

import type { KeyPath } from '../issues.ts';
import { describe, type Translation } from './context.ts';

const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
/** LiteLLM's form, and the fabric's own two forms, all naming an environment variable. */
const REF_FORMS = [/^os\.environ\/(.+)$/, /^env:(.+)$/, /^\$\{(.+)\}$/];

/** Values people put where a local server wants "some key": sending none is the same to it. */
const PLACEHOLDER = /^(none|null|empty|dummy|fake|na|n\/a|not[-_ ]?needed|no[-_ ]?key|sk-no-key(-required)?|x+|-|ollama|lm-studio|placeholder|unused|anything|token-abc123)$/i;

/** The environment variable an `os.environ/NAME` (or env:NAME, ${NAME}) value names, if it is one. */
export function envRef(v: unknown): string | undefined {
  if (typeof v !== 'string') return undefined;
  for (const re of REF_FORMS) {
    const m = re.exec(v.trim());
    if (m !== null) return m[1]!;
  }
  return undefined;
}

/** An api_key such as "none" or "not-needed": what a local server without auth is given. */
export function isPlaceholder(v: unknown): v is string {
  return typeof v === 'string' && PLACEHOLDER.test(v.trim());
}

/** A secret value → env:NAME for the native document; a literal value is held under `literalName`. */
export function secretRef(t: Translation, path: KeyPath, v: unknown, literalName: string): string | undefined {
  if (v === undefined || v === null || v === '') return undefined;
  const name = envRef(v);
  if (name !== undefined) {
    if (!ENV_NAME.test(name)) {
      t.r.error(path, `must name an environment variable (letters, digits, underscore), got ${JSON.stringify(name)}`);
      return undefined;
    }
    return `env:${name}`;
  }
  if (typeof v !== 'string' && typeof v !== 'number') {
    t.r.error(path, `must be a key or os.environ/NAME, got ${describe(v)}`);
    return undefined;
  }
  const held = holdLiteral(t, literalName, String(v));
  t.r.warn(path, `holds a secret literally: it is used as env:${held} (fabric config import writes only that reference); ` +
    `move the value to the environment or the .env file and write os.environ/${held}`);
  return `env:${held}`;
}

/** Holds a secret value for serving under `name` (or NAME_2, … when taken by another value); returns the name used. */
export function holdLiteral(t: Translation, name: string, value: string): string {
  let held = name;
  for (let n = 2; t.literals.has(held) && t.literals.get(held) !== value; n++) held = `${name}_${n}`;
  t.literals.set(held, value);
  return held;
}

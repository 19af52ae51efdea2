// What the LiteLLM translation accumulates besides the native document: issues at LiteLLM
// key paths, comments for the imported file, where each native key came from, and secret
// values written literally in the LiteLLM file (held for serving, never written out).

import type { KeyPath } from '../issues.ts';
import { describe, type Reporter } from '../schema.ts';
import type { BudgetPeriod, EngineKind, RoleKind, Strategy } from '../types.ts';

export type Obj = Record<string, unknown>;

export function isObj(v: unknown): v is Obj {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** As the native schema words a value: one wording, wherever a config is read. */
export { describe };

// The native document, as the fabric schema validates it (snake_case keys, durations as text).
export interface NativeTimeouts { connect?: string; first_byte?: string; idle?: string; total?: string }
export interface NativeBackend {
  engine: EngineKind;
  url?: string;
  model: string;
  api_key?: string;
  context_window?: number;
  keep_alive?: string | number;
  weight?: number;
  max_retries?: number;
  max_connections?: number;
  timeouts?: NativeTimeouts;
}
export interface NativeRole {
  kind: RoleKind;
  backends: string[];
  aliases?: string[];
  fallbacks?: string[];
  context_window_fallback?: string;
  strategy?: Strategy;
  rules?: { if_input_tokens_over: number; route_to: string }[];
  dimensions?: number;
  cache?: false;
}
export interface NativePattern { match: string; kind: RoleKind; backends: string[]; strategy?: Strategy }
export interface NativeGateway {
  host?: string;
  port?: number;
  master_key?: string;
  env_file?: string;
  health_interval?: string;
  health?: { failure_threshold?: number; cooldown?: string; max_cooldown?: string; slow?: string };
  retry?: { base: string; max: string };
  alerts?: { webhook: string; format: 'slack' | 'json' };
  limits?: { max_attempts: number };
  store?: { url: string };
  redis?: { url: string };
  cache?: NativeCache;
  accounting?: { flush_interval?: string; on_store_down?: 'serve'; retention?: string };
}
export interface NativeCache { ttl: string; when: 'always'; scope: 'shared'; store?: 'memory' | 'redis' }
/** USD per 1M tokens. */
export interface NativePrice { input: number; output: number; audio_minute?: number }
export interface NativeBudget { amount: number; period: BudgetPeriod; engines?: string[]; backends?: string[] }
export interface NativeDoc {
  version: 1;
  gateway: NativeGateway;
  backends: Record<string, NativeBackend>;
  roles: Record<string, NativeRole>;
  patterns?: NativePattern[];
  prices?: Record<string, NativePrice>;
  budgets?: Record<string, NativeBudget>;
}

const key = (p: KeyPath): string => JSON.stringify(p);

export class Translation {
  readonly r: Reporter;
  /** Environment lookups for values that are not secrets (an api_base given as os.environ/NAME). */
  readonly env: (name: string) => string | undefined;
  /** Synthesized env name → a secret the LiteLLM file holds literally. */
  readonly literals = new Map<string, string>();
  /** Comment lines for the imported file, by native key path. */
  readonly notes = new Map<string, { path: KeyPath; lines: string[] }>();
  /** Lines for the head of the imported file. */
  readonly header: string[] = [];
  readonly #origins = new Map<string, KeyPath>();

  constructor(r: Reporter, env: (name: string) => string | undefined) {
    this.r = r;
    this.env = env;
  }

  note(native: KeyPath, text: string): void {
    const k = key(native);
    const n = this.notes.get(k);
    if (n === undefined) this.notes.set(k, { path: native, lines: [text] });
    else if (!n.lines.includes(text)) n.lines.push(text);
  }

  /** Records that a native key came from a LiteLLM key, so later issues point at the user's file. */
  from(native: KeyPath, litellm: KeyPath): void {
    const k = key(native);
    if (!this.#origins.has(k)) this.#origins.set(k, litellm);
  }

  /** The LiteLLM key path a native path came from: the longest recorded prefix, else the top. */
  origin(native: KeyPath): KeyPath {
    for (let n = native.length; n >= 0; n--) {
      const o = this.#origins.get(key(native.slice(0, n)));
      if (o !== undefined) return o;
    }
    return [];
  }

  /** Every recorded native path, for matching issues that carry a formatted path only. */
  origins(): IterableIterator<[string, KeyPath]> {
    return this.#origins.entries();
  }
}

/** A name usable as a backend key and readable in headers: model_name or model_info.id, slugged. */
export function slug(s: string): string {
  const out = s.replace(/\*/g, 'any').replace(/[^A-Za-z0-9._-]+/g, '-').replace(/^-+|-+$/g, '');
  return out === '' ? 'backend' : out;
}

/** An environment variable name derived from a key path, for secrets written literally. */
export function envName(...parts: string[]): string {
  return parts.join('_').toUpperCase().replace(/[^A-Z0-9]+/g, '_').replace(/^_+|_+$/g, '').replace(/^(\d)/, '_$1');
}

/** LiteLLM takes numbers as numbers or numeric strings: the string's number, else the value as given. */
export function numeric(v: unknown): unknown {
  return typeof v === 'string' && v.trim() !== '' ? Number(v) : v;
}

/**
 * A number LiteLLM reads from `v` (unset: undefined). One that fails `ok` is reported as
 * "must be <must>" — an error, or with `ignore` a warning that it is left out.
 */
export function readNumber(
  t: Translation, path: KeyPath, v: unknown, ok: (n: number) => boolean, must: string, ifBad: 'error' | 'ignore' = 'error',
): number | undefined {
  if (v === undefined || v === null) return undefined;
  const n = numeric(v);
  if (typeof n === 'number' && ok(n)) return n;
  if (ifBad === 'error') t.r.error(path, `must be ${must}, got ${describe(v)}`);
  else t.r.warn(path, `must be ${must}, got ${describe(v)}; ignored`);
  return undefined;
}

const isPositive = (n: number): boolean => Number.isFinite(n) && n > 0;

export function seconds(t: Translation, path: KeyPath, v: unknown): number | undefined {
  return readNumber(t, path, v, isPositive, 'a number of seconds');
}

export function nonNegInt(t: Translation, path: KeyPath, v: unknown): number | undefined {
  return readNumber(t, path, v, (n) => Number.isInteger(n) && n >= 0, 'a whole number');
}

export function positive(t: Translation, path: KeyPath, v: unknown): number | undefined {
  return readNumber(t, path, v, isPositive, 'a positive number');
}

/** Milliseconds as the fabric schema writes durations. */
export function duration(ms: number): string {
  return ms % 1000 === 0 ? `${ms / 1000}s` : `${Math.round(ms)}ms`;
}

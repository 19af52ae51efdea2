// What the operator commands that talk to a running gateway share: where it is (--url,
// $FABRIC_URL), its key (--key, env:NAME, $FABRIC_API_KEY), durations, and terminal colour
// (on a TTY unless NO_COLOR; FORCE_COLOR forces it).

import { parseDuration } from '../config/units.ts';
import { errorCode, networkErrorText } from '../core/attempt-error.ts';

export const DEFAULT_URL = 'http://127.0.0.1:4000';

export class UsageError extends Error {}

export function gatewayUrl(flag: string | undefined, env: NodeJS.ProcessEnv = process.env): string {
  const raw = flag ?? env.FABRIC_URL ?? DEFAULT_URL;
  // host:port alone (as curl takes it) is http.
  const withScheme = /^[a-z][a-z0-9+.-]*:\/\//i.test(raw) ? raw : `http://${raw}`;
  let u: URL;
  try {
    u = new URL(withScheme);
  } catch {
    throw new UsageError(`--url must be a URL such as ${DEFAULT_URL}, got ${JSON.stringify(raw)}`);
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new UsageError(`--url must be http:// or https://, got ${JSON.stringify(raw)}`);
  // The base URL clients are given ends in /v1; the gateway's own paths (/health, /admin) are beside it.
  return u.href.replace(/\/+$/, '').replace(/\/v1$/, '');
}

/**
 * A flag's secret value: VALUE, or env:NAME / ${NAME} (which keeps it out of `ps`), read from
 * the environment; an unset variable is a usage error naming the flag.
 */
export function secretFlag(name: string, flag: string, env: NodeJS.ProcessEnv = process.env): string {
  const m = /^(?:env:|\$\{?)([A-Za-z_][A-Za-z0-9_]*)\}?$/.exec(flag);
  if (m === null) return flag;
  const v = env[m[1]!];
  if (v === undefined || v === '') throw new UsageError(`--${name} ${flag}: the environment variable ${m[1]} is not set`);
  return v;
}

/** The gateway key: --key VALUE or --key env:NAME, else $FABRIC_API_KEY. */
export function gatewayKey(flag: string | undefined, env: NodeJS.ProcessEnv = process.env): string | undefined {
  if (flag === undefined) return env.FABRIC_API_KEY === '' ? undefined : env.FABRIC_API_KEY;
  return secretFlag('key', flag, env);
}

/** The gateway a command talks to, from its --url, --key and --timeout (a UsageError naming the flag that is wrong). */
export function gatewayFlags(v: { url?: string; key?: string; timeout?: string }, timeoutMs: number): { url: string; key: string | undefined; timeoutMs: number } {
  return { url: gatewayUrl(v.url), key: gatewayKey(v.key), timeoutMs: durationFlag('timeout', v.timeout, timeoutMs) };
}

export function durationFlag(name: string, v: string | undefined, dflt: number): number {
  if (v === undefined) return dflt;
  // A bare number here means seconds, as operators type it.
  const ms = /^\d+(\.\d+)?$/.test(v.trim()) ? Number(v) * 1000 : parseDuration(v);
  if (ms === undefined || ms <= 0) throw new UsageError(`--${name} must be a duration such as 5s or 500ms, got ${JSON.stringify(v)}`);
  return ms;
}

export function countFlag(name: string, v: string | undefined): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) throw new UsageError(`--${name} must be a positive whole number, got ${JSON.stringify(v)}`);
  return n;
}

export function useColor(stream: NodeJS.WriteStream, env: NodeJS.ProcessEnv = process.env): boolean {
  if (env.NO_COLOR !== undefined && env.NO_COLOR !== '') return false;
  if (env.FORCE_COLOR !== undefined && env.FORCE_COLOR !== '0') return true;
  return stream.isTTY === true;
}

export type Paint = (text: string, ...styles: Style[]) => string;
export type Style = 'red' | 'green' | 'yellow' | 'blue' | 'cyan' | 'dim' | 'bold';
const SGR: Record<Style, number> = { red: 31, green: 32, yellow: 33, blue: 34, cyan: 36, dim: 2, bold: 1 };

export function painter(on: boolean): Paint {
  return on ? (t, ...s) => (s.length === 0 ? t : `\x1b[${s.map((x) => SGR[x]).join(';')}m${t}\x1b[0m`) : (t) => t;
}

/** Visible width, ignoring colour codes. */
export function width(s: string): number {
  // eslint-disable-next-line no-control-regex
  return s.replace(/\x1b\[[0-9;]*m/g, '').length;
}

export function table(rows: string[][], gap = '  '): string {
  const widths: number[] = [];
  for (const r of rows) r.forEach((c, i) => { widths[i] = Math.max(widths[i] ?? 0, width(c)); });
  return rows.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c + ' '.repeat(widths[i]! - width(c)))).join(gap).trimEnd()).join('\n') + '\n';
}

export function authHeaders(key: string | undefined): Record<string, string> {
  return key === undefined ? {} : { authorization: `Bearer ${key}` };
}

/**
 * The admin API's refusals of the key, as the command that met them can act on them; undefined
 * for any other answer, whose own message stands. The gateway cannot know which command asked:
 * `what` is what needed the key (the admin API, --probe), `instead` what this command can do
 * on a gateway with no master key.
 */
export function adminRefusal(status: number, body: string, key: string | undefined, what: string, instead: string): string | undefined {
  let error: { code?: unknown; message?: unknown } | undefined;
  try { error = (JSON.parse(body) as { error?: typeof error }).error; } catch { error = undefined; }
  // Older gateways said it with permission_denied, in these words.
  const noMasterKey = status === 403 && (error?.code === 'no_master_key' || (typeof error?.message === 'string' && error.message.startsWith('the admin API is off')));
  if (noMasterKey) return `this gateway has no master key: set gateway.master_key to use the admin API; ${instead}`;
  if (status !== 401) return undefined;
  return key === undefined ? `${what} needs the master key: pass it with --key or $FABRIC_API_KEY`
    : 'the key given (--key or $FABRIC_API_KEY) was refused: it is not the gateway\'s master key';
}

/** A transport error as an operator reads it. */
/** Node's certificate-verification failures: a gateway with gateway.tls whose certificate this machine does not trust. */
const TLS_TRUST_CODES = new Set(['DEPTH_ZERO_SELF_SIGNED_CERT', 'SELF_SIGNED_CERT_IN_CHAIN', 'UNABLE_TO_VERIFY_LEAF_SIGNATURE', 'UNABLE_TO_GET_ISSUER_CERT_LOCALLY', 'CERT_HAS_EXPIRED', 'ERR_TLS_CERT_ALTNAME_INVALID']);

export function netError(e: unknown): string {
  const err = e as { name?: string; message?: string; cause?: { code?: string; message?: string } };
  if (err.name === 'TimeoutError') return 'no answer before the timeout';
  const code = errorCode(e);
  if (code !== undefined && TLS_TRUST_CODES.has(code)) return `its TLS certificate is not trusted here (${code}): point NODE_EXTRA_CA_CERTS at the certificate, or at the CA that signed it`;
  if (code !== undefined) return networkErrorText(code) ?? code;
  return err.cause?.message ?? err.message ?? String(e);
}

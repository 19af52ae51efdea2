// HTTPS on the gateway's own port: gateway.tls names a PEM certificate (chain) and its private
// key. Paths resolve beside the config file. The files are checked when the config is loaded
// (so `fabric config check` and a reload refuse what the TLS layer would), read again at each
// reload, and watched by `fabric serve`, so a renewed certificate is served without a restart.

import { X509Certificate, createPrivateKey } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import { dirname, isAbsolute, resolve } from 'node:path';
import { createSecureContext } from 'node:tls';
import type { FabricConfig, TlsConfig } from './types.ts';

export interface TlsFiles {
  cert: Buffer;
  key: Buffer;
}

/** The certificate's and key's paths as the gateway opens them. */
export function tlsPaths(config: FabricConfig): { cert: string; key: string } | undefined {
  const t: TlsConfig | undefined = config.gateway.tls;
  if (t === undefined) return undefined;
  const base = config.file === undefined || config.file.startsWith('(') ? process.cwd() : dirname(resolve(config.file));
  const at = (p: string): string => (isAbsolute(p) ? p : resolve(base, p));
  return { cert: at(t.cert), key: at(t.key) };
}

export function readTls(config: FabricConfig): TlsFiles | undefined {
  const p = tlsPaths(config);
  return p === undefined ? undefined : { cert: readFileSync(p.cert), key: readFileSync(p.key) };
}

/** Days before expiry from which loading the config warns. */
const EXPIRY_WARNING_DAYS = 14;

export interface TlsIssue {
  severity: 'error' | 'warning';
  /** Which of gateway.tls's keys it is about. */
  key: 'cert' | 'key';
  message: string;
}

function readable(path: string, what: string): Buffer | string {
  try {
    return readFileSync(path);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    return code === 'ENOENT' ? `${path} does not exist` : code === 'EACCES' ? `${path} cannot be read by this user (permission denied)` : code === 'EISDIR' ? `${path} is a directory, not a PEM ${what}` : `${path} cannot be read: ${code ?? String(e)}`;
  }
}

/** What is wrong with the files: missing, unreadable, not PEM, a key of another certificate; and what to know: an expired or expiring certificate, a key others can read. Never any of the key's content. */
export function tlsIssues(config: FabricConfig, now: number = Date.now()): TlsIssue[] {
  const p = tlsPaths(config);
  if (p === undefined) return [];
  const out: TlsIssue[] = [];
  const cert = readable(p.cert, 'certificate');
  const key = readable(p.key, 'private key');
  if (typeof cert === 'string') out.push({ severity: 'error', key: 'cert', message: cert });
  if (typeof key === 'string') out.push({ severity: 'error', key: 'key', message: key });
  let x509: X509Certificate | undefined;
  if (typeof cert !== 'string') {
    try {
      x509 = new X509Certificate(cert);
    } catch {
      out.push({ severity: 'error', key: 'cert', message: `${p.cert} holds no PEM certificate (-----BEGIN CERTIFICATE-----)` });
    }
  }
  let keyOk = false;
  if (typeof key !== 'string') {
    try {
      createPrivateKey(key);
      keyOk = true;
    } catch {
      out.push({ severity: 'error', key: 'key', message: `${p.key} holds no usable PEM private key (an encrypted key needs its passphrase, which the gateway cannot ask for)` });
    }
    try {
      if ((statSync(p.key).mode & 0o077) !== 0) out.push({ severity: 'warning', key: 'key', message: `${p.key} is readable by group or others (mode ${(statSync(p.key).mode & 0o777).toString(8)}); it is a private key: chmod 600 ${p.key}` });
    } catch {
      // read above; gone since: the next load says so
    }
  }
  if (x509 !== undefined && keyOk) {
    try {
      createSecureContext({ cert: cert as Buffer, key: key as Buffer });
    } catch (e) {
      const msg = /mismatch/i.test((e as Error).message) ? 'is not the private key of that certificate' : `cannot be used with that certificate (${(e as Error).message})`;
      out.push({ severity: 'error', key: 'key', message: `${p.key} ${msg}` });
    }
  }
  if (x509 !== undefined) {
    const until = Date.parse(x509.validTo);
    const days = Math.floor((until - now) / 86_400_000);
    if (until <= now) out.push({ severity: 'warning', key: 'cert', message: `${p.cert} expired on ${new Date(until).toISOString()}: clients will refuse it` });
    else if (days < EXPIRY_WARNING_DAYS) out.push({ severity: 'warning', key: 'cert', message: `${p.cert} expires in ${days} day${days === 1 ? '' : 's'} (${new Date(until).toISOString()}): renew it; the gateway serves the renewed files as soon as they are written` });
  }
  return out;
}

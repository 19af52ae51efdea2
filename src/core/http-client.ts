// The HTTP client the gateway runs on: undici's Pool, loaded by itself. Importing the package
// root also loads fetch, WebSocket, caches and their dependencies — about 14 MiB resident the
// gateway never uses — so the runtime takes the Pool module alone and does its few GETs (probes,
// load, discovery) through dispatch() with the same buffered handler as inference requests.

import { createRequire } from 'node:module';
import type { IncomingHttpHeaders } from 'node:http';
import type { Dispatcher, Pool as UndiciPool } from 'undici';
import { BufferedCall } from './upstream.ts';
import type { UpstreamPool } from './h1-pool.ts';

const require = createRequire(import.meta.url);

export const Pool: typeof UndiciPool = require('undici/lib/dispatcher/pool.js');
export type Pool = UndiciPool;

export interface SimpleResponse {
  status: number;
  headers: IncomingHttpHeaders;
  text: string;
}

const MAX_BODY = 16 * 1024 * 1024;

/** A GET (or other small request) on a pool, whole body as text, bounded by timeoutMs from start to end. */
export function simpleRequest(
  dispatcher: UpstreamPool, path: string,
  opts: { method?: string; headers?: Record<string, string>; body?: string; timeoutMs: number },
): Promise<SimpleResponse> {
  const call = new BufferedCall(MAX_BODY, MAX_BODY);
  const timer = setTimeout(() => call.abort(Object.assign(new Error(`no complete answer within ${opts.timeoutMs} ms`), { name: 'TimeoutError', code: 'TimeoutError' })), opts.timeoutMs);
  call.send(dispatcher, {
    method: (opts.method ?? 'GET') as Dispatcher.HttpMethod, path, headers: opts.headers, body: opts.body,
    headersTimeout: opts.timeoutMs, bodyTimeout: opts.timeoutMs,
  });
  return call.promise.then(
    (r) => { clearTimeout(timer); return { status: r.status, headers: r.headers, text: r.body.toString('utf8') }; },
    (e: unknown) => { clearTimeout(timer); throw e; },
  );
}

/** One GET to a URL on a short-lived connection (discovery of local engines). */
export async function getOnce(url: string, timeoutMs: number): Promise<SimpleResponse> {
  const u = new URL(url);
  const pool = new Pool(u.origin, { connections: 1, connect: { timeout: timeoutMs } });
  try {
    return await simpleRequest(pool, u.pathname + u.search, { timeoutMs });
  } finally {
    void pool.destroy().catch(() => {});
  }
}

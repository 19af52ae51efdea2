// The HTTP clients the gateway runs on, and its few GETs (probes, load, discovery) through the
// same buffered handler as inference requests. Plain-HTTP origins (the fleet's engines, local
// discovery) go through the lean client (h1-pool.ts). HTTPS origins (the cloud) go through
// undici's Client (https-pool.ts), loaded by itself and only when first needed: importing the
// package root also loads fetch, WebSocket, caches and their dependencies, and even the Client
// alone is several MiB resident that a gateway with no cloud backend never uses.

import type { IncomingHttpHeaders } from 'node:http';
import type { Dispatcher } from 'undici';
import { BufferedCall } from './upstream.ts';
import { H1Pool, type UpstreamPool } from './h1-pool.ts';
import { HttpsPool } from './https-pool.ts';

export interface PoolSettings {
  connections: number;
  /** How long an idle connection is kept; 0: closed after its answer. */
  keepAliveMs: number;
  connectMs: number;
  firstByteMs: number;
  idleMs: number;
}

/** The pool for an origin: the lean client for plain HTTP, undici's Clients (loaded on first use) for HTTPS. */
export function poolFor(origin: string, s: PoolSettings): UpstreamPool {
  const o = { connections: s.connections, keepAliveTimeout: s.keepAliveMs, connectTimeout: s.connectMs, headersTimeout: s.firstByteMs, bodyTimeout: s.idleMs };
  return new URL(origin).protocol === 'http:' ? new H1Pool(origin, o) : new HttpsPool(origin, o);
}

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
  const pool = poolFor(u.origin, { connections: 1, keepAliveMs: 0, connectMs: timeoutMs, firstByteMs: timeoutMs, idleMs: timeoutMs });
  try {
    return await simpleRequest(pool, u.pathname + u.search, { timeoutMs });
  } finally {
    void pool.destroy().catch(() => {});
  }
}

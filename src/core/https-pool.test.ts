// The HTTPS client (undici's Clients behind the gateway's own queue) against raw TLS servers
// that answer as each test scripts them: limits and keep-alive, aborts in the queue and while a
// connection is being opened, close and destroy.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer as createTcp, type Server as TcpServer, type Socket } from 'node:net';
import { createServer, type Server, type TLSSocket } from 'node:tls';
import type { Dispatcher } from 'undici';
import { waitFor } from '../sim/test-helpers.ts';
import { trustedCert } from '../../test/support/tls-cert.ts';
import { readRequests } from '../../test/support/raw-http.ts';
import { HttpsPool, type HttpsPoolOptions } from './https-pool.ts';
import type { DispatchOptions, Handler } from './h1-pool.ts';

interface Raw {
  url: string;
  /** Connections accepted so far, and the most open at once. */
  connections: number;
  peak: number;
  /** Request heads received, in order. */
  heads: string[];
  close(): Promise<void>;
}

/** A TLS server that hands every complete request (head and Content-Length body) to `answer`, with the request's number on its connection. */
async function raw(answer: (sock: TLSSocket, head: string, nth: number) => void): Promise<Raw> {
  const { cert, key } = trustedCert();
  const open = new Set<TLSSocket>();
  const r: Raw = { url: '', connections: 0, peak: 0, heads: [], close: async () => {} };
  const server: Server = createServer({ cert, key }, (sock) => {
    r.connections++;
    open.add(sock);
    r.peak = Math.max(r.peak, open.size);
    sock.on('close', () => open.delete(sock));
    sock.on('error', () => {});
    let nth = 0;
    readRequests(sock, (head) => {
      r.heads.push(head);
      answer(sock, head, nth++);
    });
  });
  await new Promise<void>((res) => server.listen(0, '127.0.0.1', res));
  r.url = `https://127.0.0.1:${(server.address() as { port: number }).port}`;
  r.close = () => new Promise<void>((res) => {
    for (const s of open) s.destroy();
    server.close(() => res());
  });
  return r;
}

const OK = 'HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok';

const poolFor = (url: string, over: Partial<HttpsPoolOptions> = {}): HttpsPool =>
  new HttpsPool(url, { connections: 8, keepAliveTimeout: 4000, connectTimeout: 2000, headersTimeout: 2000, bodyTimeout: 2000, ...over });

interface Call { controller: Dispatcher.DispatchController; done: Promise<{ body: string; error: (Error & { code?: string }) | undefined }> }

/** One request through the pool: its controller (given at once, queued or not) and its outcome. */
function call(pool: HttpsPool, opts: Partial<DispatchOptions> = {}): Call {
  let controller!: Dispatcher.DispatchController;
  const done = new Promise<{ body: string; error: Error | undefined }>((resolve) => {
    let body = '';
    const h: Handler = {
      onRequestStart(c) { controller = c; },
      onResponseData(_c, chunk) { body += chunk.toString('utf8'); },
      onResponseEnd() { resolve({ body, error: undefined }); },
      onResponseError(_c, e) { resolve({ body, error: e }); },
    };
    pool.dispatch({ method: 'POST', path: '/v1/chat/completions', headers: { 'content-type': 'application/json' }, body: '{"x":1}', ...opts }, h);
  });
  return { controller, done };
}

async function ok(pool: HttpsPool, opts: Partial<DispatchOptions> = {}): Promise<string> {
  const o = await call(pool, opts).done;
  assert.equal(o.error, undefined, o.error?.message);
  return o.body;
}

test('https pool: at most `connections` at once, kept alive; one aborted while queued leaves the queue at once and never reaches the backend; those behind it are served', async () => {
  const held: TLSSocket[] = [];
  const s = await raw((sock, head) => {
    if (head.includes('/hold')) held.push(sock);
    else setTimeout(() => sock.write(OK), 10);
  });
  const pool = poolFor(s.url, { connections: 2 });
  try {
    const all = await Promise.all(Array.from({ length: 7 }, () => ok(pool)));
    assert.deepEqual(all, Array(7).fill('ok'));
    assert.equal(s.peak, 2);
    assert.equal((await ok(pool)) + (await ok(pool)), 'okok');
    assert.equal(s.connections, 2, 'kept alive and reused');
    const a = call(pool, { path: '/hold/a' });
    const b = call(pool, { path: '/hold/b' });
    const queued = call(pool, { path: '/abandoned', body: 'x'.repeat(200 * 1024) });
    const last = call(pool, { path: '/last' });
    assert.equal(pool.queued, 2);
    await waitFor(() => held.length === 2, 5000, 'both held requests at the backend');
    queued.controller.abort(new Error('client went away (queued)'));
    assert.equal(pool.queued, 1, 'out of the queue at once, with its body');
    assert.equal((await queued.done).error?.message, 'client went away (queued)');
    a.controller.abort(new Error('client went away'));
    assert.equal((await a.done).error?.message, 'client went away');
    assert.equal((await last.done).body, 'ok', 'the request behind the aborted one is served');
    held[1]!.write(OK);
    assert.equal((await b.done).body, 'ok');
    assert.ok(!s.heads.some((h) => h.includes('/abandoned')), 'the aborted request was never sent');
  } finally {
    await pool.destroy();
    await s.close();
  }
});

test('https pool: a request aborted while its connection is being opened ends at once; the connection is still bounded by the connect timeout, and its slot given back', async () => {
  // Takes the TCP connection and never answers the TLS handshake.
  const silent: Socket[] = [];
  const tcp: TcpServer = createTcp((sock) => { silent.push(sock); });
  await new Promise<void>((r) => tcp.listen(0, '127.0.0.1', r));
  const pool = poolFor(`https://127.0.0.1:${(tcp.address() as { port: number }).port}`, { connections: 1, connectTimeout: 300 });
  try {
    const c = call(pool);
    await waitFor(() => silent.length === 1, 3000, 'the connection accepted');
    const t = performance.now();
    c.controller.abort(new Error('client went away'));
    assert.equal((await c.done).error?.message, 'client went away');
    assert.ok(performance.now() - t < 100, 'ended at once, not at the connect timeout');
    const next = await call(pool).done;
    assert.equal(next.error?.code, 'UND_ERR_CONNECT_TIMEOUT', 'the slot came back after the connect timeout; the next request has its own');
  } finally {
    await pool.destroy();
    for (const s of silent) s.destroy();
    tcp.close();
  }
});

test('https pool: a reused connection the backend closes under a new request before any answer is retried once, on a new connection; not a fresh one, nor one the backend held a while', async () => {
  const s = await raw((sock, head, nth) => {
    if (head.includes('/race') && nth > 0) sock.destroy(); // the request arrives as the backend closes the idle connection
    else if (head.includes('/fresh-drop')) sock.destroy();
    else if (head.includes('/slow-reset')) setTimeout(() => sock.destroy(), 150); // worked on it, then died
    else sock.write(OK);
  });
  const count = (path: string): number => s.heads.filter((h) => h.includes(path)).length;
  const pool = poolFor(s.url, { connections: 1 });
  try {
    assert.equal(await ok(pool), 'ok');
    assert.equal(await ok(pool, { path: '/race' }), 'ok', 'retried on a new connection');
    assert.equal(count('/race'), 2);
    assert.equal(s.connections, 2);
    const slow = await call(pool, { path: '/slow-reset' }).done;
    assert.ok(slow.error !== undefined);
    assert.equal(count('/slow-reset'), 1, 'sent once: the backend may have worked on it');
    const fresh = await call(pool, { path: '/fresh-drop' }).done;
    assert.ok(fresh.error !== undefined);
    assert.equal(count('/fresh-drop'), 1, 'a new connection closed under its first request is no keep-alive race: sent once');
  } finally {
    await pool.destroy();
    await s.close();
  }
});

test('https pool: close sends what is queued, then closes; destroy fails the queue; neither takes new requests', async () => {
  const s = await raw((sock) => setTimeout(() => sock.write(OK), 20));
  const pool = poolFor(s.url, { connections: 1 });
  const calls = [call(pool), call(pool), call(pool)];
  assert.equal(pool.queued, 2);
  await pool.close();
  assert.deepEqual(await Promise.all(calls.map(async (c) => (await c.done).body)), ['ok', 'ok', 'ok']);
  assert.throws(() => pool.dispatch({ method: 'GET', path: '/' }, {}), { code: 'UND_ERR_CLOSED' });
  const other = poolFor(s.url, { connections: 1 });
  const first = call(other);
  const queued = call(other);
  await other.destroy();
  assert.equal((await queued.done).error?.code, 'UND_ERR_DESTROYED');
  assert.ok((await first.done).error !== undefined);
  await s.close();
});

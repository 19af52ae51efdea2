// The lean HTTP/1.1 client against raw TCP servers that answer byte by byte as each test
// scripts them: framing, keep-alive, the backend closing idle connections, timeouts, limits,
// backpressure and aborts.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server, type Socket } from 'node:net';
import type { IncomingHttpHeaders } from 'node:http';
import type { Dispatcher } from 'undici';
import { waitFor } from '../sim/test-helpers.ts';
import { H1Pool, type DispatchOptions, type Handler } from './h1-pool.ts';
import { BAD_RESPONSE } from './attempt-error.ts';
import { readRequests } from '../../test/support/raw-http.ts';

interface Raw {
  url: string;
  server: Server;
  /** Connections accepted so far. */
  connections: number;
  /** Most connections open at once. */
  peak: number;
  /** Request heads received, in order. */
  heads: string[];
  close(): Promise<void>;
}

/** A TCP server that hands every complete request (head and Content-Length body) to `answer`. */
async function raw(answer: (sock: Socket, head: string, body: string, n: number) => void): Promise<Raw> {
  const r: Raw = { url: '', server: undefined as never, connections: 0, peak: 0, heads: [], close: async () => {} };
  const open = new Set<Socket>();
  let n = 0;
  r.server = createServer((sock) => {
    r.connections++;
    open.add(sock);
    sock.setNoDelay(true); // split answers really arrive in two reads, without Nagle's 40 ms
    r.peak = Math.max(r.peak, open.size);
    sock.on('close', () => open.delete(sock));
    sock.on('error', () => {});
    readRequests(sock, (head, body) => {
      r.heads.push(head);
      answer(sock, head, body, n++);
    });
  });
  await new Promise<void>((res) => r.server.listen(0, '127.0.0.1', res));
  r.url = `http://127.0.0.1:${(r.server.address() as { port: number }).port}`;
  r.close = () => new Promise<void>((res) => {
    for (const s of open) s.destroy();
    r.server.close(() => res());
  });
  return r;
}

/** A whole 200 answer with the body "ok". */
const OK = 'HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok';

interface Outcome { status: number; headers: IncomingHttpHeaders; body: string; chunks: number; error: (Error & { code?: string }) | undefined }

/** One request through the pool; `onData` may pause or abort through the controller. */
function call(pool: H1Pool, opts: Partial<DispatchOptions> = {}, onData?: (c: Dispatcher.DispatchController, chunk: Buffer) => void): Promise<Outcome> {
  return new Promise((resolve) => {
    const o: Outcome = { status: 0, headers: {}, body: '', chunks: 0, error: undefined };
    const bufs: Buffer[] = [];
    const h: Handler = {
      onResponseStart(_c, status, headers) { o.status = status; o.headers = headers; },
      onResponseData(c, chunk) { bufs.push(Buffer.from(chunk)); o.body = Buffer.concat(bufs).toString('utf8'); o.chunks++; onData?.(c, chunk); },
      onResponseEnd() { resolve(o); },
      onResponseError(_c, e) { o.error = e; resolve(o); },
    };
    pool.dispatch({ method: 'POST', path: '/v1/chat/completions', headers: { 'content-type': 'application/json' }, body: '{"x":1}', ...opts }, h);
  });
}

/** call() for a request that must succeed: a transport error fails the test at once, with its message. */
async function ok(pool: H1Pool, opts: Partial<DispatchOptions> = {}, onData?: (c: Dispatcher.DispatchController, chunk: Buffer) => void): Promise<Outcome> {
  const o = await call(pool, opts, onData);
  assert.equal(o.error, undefined, `${opts.path ?? '/v1/chat/completions'}: ${o.error?.message}`);
  return o;
}

/** Runs fn with a pool on the raw server s; both closed afterwards, whatever happens. */
async function withPool(s: Raw, a: Partial<ConstructorParameters<typeof H1Pool>[1]> | ((pool: H1Pool) => Promise<void>), b?: (pool: H1Pool) => Promise<void>): Promise<void> {
  const pool = poolFor(s.url, typeof a === 'function' ? {} : a);
  try {
    await (typeof a === 'function' ? a : b!)(pool);
  } finally {
    await pool.destroy();
    await s.close();
  }
}

const poolFor = (url: string, over: Partial<ConstructorParameters<typeof H1Pool>[1]> = {}): H1Pool =>
  new H1Pool(url, { connections: 8, keepAliveTimeout: 4000, connectTimeout: 2000, headersTimeout: 2000, bodyTimeout: 2000, ...over });

/** Writes `text` in two writes split at `at`, the second on the next turn. */
function split(sock: Socket, text: string, at: number): void {
  const b = Buffer.from(text, 'latin1');
  sock.write(b.subarray(0, at));
  setImmediate(() => { if (!sock.destroyed) sock.write(b.subarray(at)); });
}

test('h1 pool: the request goes out whole; Content-Length answers split anywhere arrive whole, on one kept-alive connection', async () => {
  const json = Buffer.from('{"answer":"héé"}');
  const bytes = `HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: ${json.length}\r\nx-twice: a\r\nX-Twice: b\r\n__proto__: x\r\n__proto__: y\r\n\r\n${json.toString('latin1')}`;
  const s = await raw((sock, _h, _b, n) => split(sock, bytes, n % bytes.length));
  await withPool(s, async (pool) => {
    for (let i = 0; i < bytes.length; i++) {
      const o = await call(pool);
      assert.equal(o.error, undefined, `split at ${i}: ${o.error?.message}`);
      assert.equal(o.status, 200);
      assert.equal(o.body, '{"answer":"héé"}', `split at ${i}`);
      assert.deepEqual(o.headers['x-twice'], ['a', 'b']);
      assert.deepEqual(o.headers['__proto__'], ['x', 'y'], 'an odd header name is only a header');
      assert.equal(Object.getPrototypeOf(o.headers), null);
    }
    assert.equal(s.connections, 1, 'every request on the same connection');
    assert.match(s.heads[0]!, /^POST \/v1\/chat\/completions HTTP\/1\.1\r\nhost: 127\.0\.0\.1:\d+\r\n/);
    assert.match(s.heads[0]!, /\r\ncontent-length: 7(\r\n|$)/);
  });
});

test('h1 pool: chunked answers (extensions, trailers) split anywhere; interim 1xx skipped; 204 has no body', async () => {
  const two = ' {"delta":"chunk two"}\n\n';
  const chunked = `HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5;ext=1\r\ndata:\r\n${two.length.toString(16)}\r\n${two}\r\n0\r\nx-trailer: t\r\n\r\n`;
  const s = await raw((sock, head, _b, n) => {
    if (head.startsWith('GET /empty')) sock.write('HTTP/1.1 204 No Content\r\n\r\n');
    else split(sock, chunked, n % chunked.length);
  });
  await withPool(s, async (pool) => {
    for (let i = 0; i < chunked.length; i++) {
      const o = await call(pool);
      assert.equal(o.error, undefined, `split at ${i}: ${o.error?.message}`);
      assert.equal(o.status, 200);
      assert.equal(o.body, 'data: {"delta":"chunk two"}\n\n', `split at ${i}`);
    }
    const e = await ok(pool, { method: 'GET', path: '/empty', body: null });
    assert.equal(e.status, 204);
    assert.equal(e.body, '');
    assert.equal(s.connections, 1);
  });
});

test('h1 pool: a connection the backend closed is not reused; one it closes under a new request is retried once on a new connection', async () => {
  let mode: 'close-after' | 'drop-next' | 'normal' = 'close-after';
  const s = await raw((sock) => {
    if (mode === 'close-after') sock.end(OK); // answer, then close: as an engine's keep-alive timeout does
    else if (mode === 'drop-next') {
      mode = 'normal';
      sock.destroy(); // the race: the request arrives as the backend closes the idle connection
    } else sock.write(OK);
  });
  await withPool(s, async (pool) => {
    assert.equal((await ok(pool)).body, 'ok');
    await new Promise((r) => setTimeout(r, 50));
    assert.equal((await ok(pool)).body, 'ok', 'the closed connection was not used');
    assert.equal(s.connections, 2);
    mode = 'normal';
    assert.equal((await ok(pool)).body, 'ok');
    mode = 'drop-next';
    const o = await call(pool);
    assert.equal(o.error, undefined, o.error?.message);
    assert.equal(o.body, 'ok', 'retried on a new connection');
    assert.equal(s.connections, 4);
  });
});

test('h1 pool: a fresh connection closed before any answer fails with UND_ERR_SOCKET, not retried; refused connections fail with ECONNREFUSED', async () => {
  const s = await raw((sock) => sock.destroy());
  const pool = poolFor(s.url);
  const closed = await raw(() => {});
  const deadUrl = closed.url;
  await closed.close();
  const dead = poolFor(deadUrl);
  try {
    const o = await call(pool);
    assert.equal(o.error?.code, 'UND_ERR_SOCKET');
    assert.equal(s.heads.length, 1, 'sent once');
    assert.equal((await call(dead)).error?.code, 'ECONNREFUSED');
  } finally {
    await pool.destroy();
    await dead.destroy();
    await s.close();
  }
});

test('h1 pool: Connection: close and answers without a length end the connection; the body then runs to its end', async () => {
  const s = await raw((sock, head) => {
    if (head.includes('/until-close')) sock.end('HTTP/1.1 200 OK\r\n\r\nall of it, until the end');
    else sock.write('HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: 3\r\n\r\nbye');
  });
  await withPool(s, async (pool) => {
    assert.equal((await ok(pool)).body, 'bye');
    assert.equal((await ok(pool)).body, 'bye');
    assert.equal(s.connections, 2, 'connection: close is honoured');
    assert.equal((await ok(pool, { path: '/until-close' })).body, 'all of it, until the end');
  });
});

test('h1 pool: timeouts carry undici\'s codes: first byte, idle body; an oversized head is a bad response', async () => {
  const s = await raw((sock, head) => {
    if (head.includes('/silent')) return;
    if (head.includes('/stall')) sock.write('HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nabc');
    if (head.includes('/huge')) sock.write(`HTTP/1.1 200 OK\r\nx-big: ${'a'.repeat(70 * 1024)}\r\n\r\n`);
  });
  await withPool(s, { headersTimeout: 150, bodyTimeout: 150 }, async (pool) => {
    assert.equal((await call(pool, { path: '/silent' })).error?.code, 'UND_ERR_HEADERS_TIMEOUT');
    // The head comes at once: only the body timeout can end this one (not the head's, set long).
    const stalled = await call(pool, { path: '/stall', headersTimeout: 10_000 });
    assert.equal(stalled.error?.code, 'UND_ERR_BODY_TIMEOUT');
    assert.equal(stalled.body, 'abc');
    assert.equal((await call(pool, { path: '/huge' })).error?.code, BAD_RESPONSE);
  });
});

test('h1 pool: at most `connections` at once, the rest queued; abort in flight and in the queue', async () => {
  const held: Socket[] = [];
  const s = await raw((sock, head) => {
    if (head.includes('/hold')) held.push(sock);
    else setTimeout(() => sock.write(OK), 10);
  });
  await withPool(s, { connections: 2 }, async (pool) => {
    const all = await Promise.all(Array.from({ length: 7 }, () => call(pool)));
    assert.ok(all.every((o) => o.body === 'ok'));
    assert.equal(s.peak, 2);
    // Abort: one in flight (held by the server), one waiting in the queue behind the two.
    let inFlight!: Dispatcher.DispatchController;
    let queued!: Dispatcher.DispatchController;
    const grab = (set: (c: Dispatcher.DispatchController) => void): Handler & { done: Promise<Error | undefined> } => {
      let resolve!: (e: Error | undefined) => void;
      const done = new Promise<Error | undefined>((r) => { resolve = r; });
      return { done, onRequestStart: (c) => set(c), onResponseEnd: () => resolve(undefined), onResponseError: (_c, e) => resolve(e) };
    };
    const a = grab((c) => { inFlight = c; });
    const b = grab(() => {});
    const q = grab((c) => { queued = c; });
    pool.dispatch({ method: 'POST', path: '/hold', body: '' }, a);
    pool.dispatch({ method: 'POST', path: '/hold', body: '' }, b);
    pool.dispatch({ method: 'POST', path: '/v1', body: '' }, q);
    await waitFor(() => held.length >= 2, 5_000, 'both requests at the backend');
    queued.abort(new Error('client went away (queued)'));
    inFlight.abort(new Error('client went away'));
    assert.equal((await q.done)?.message, 'client went away (queued)');
    assert.equal((await a.done)?.message, 'client went away');
    held[1]!.write(OK);
    assert.equal(await b.done, undefined);
  });
});

test('h1 pool: a paused handler gets nothing until it resumes, then the rest in order', async () => {
  const parts = Array.from({ length: 20 }, (_, i) => `data: {"n":${i}}\n\n`);
  const s = await raw((sock) => {
    sock.write('HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n');
    // All chunks in one write: they arrive in one read, so pausing must hold the rest of it.
    sock.write(parts.map((p) => `${Buffer.byteLength(p).toString(16)}\r\n${p}\r\n`).join('') + '0\r\n\r\n');
  });
  await withPool(s, async (pool) => {
    let paused = false;
    let dataWhilePaused = 0;
    const o = await call(pool, {}, (c) => {
      if (paused) dataWhilePaused++;
      paused = true;
      c.pause();
      setTimeout(() => { paused = false; c.resume(); }, 2);
    });
    assert.equal(o.error, undefined);
    assert.equal(dataWhilePaused, 0);
    assert.equal(o.body, parts.join(''));
    assert.equal(o.chunks, 20);
  });
});

test('h1 pool: malformed answers fail the request and the connection', async () => {
  const s = await raw((sock, head) => {
    if (head.includes('/status')) sock.write('HTTP/1.1 2OO OK\r\n\r\n');
    else if (head.includes('/chunk')) sock.write('HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\nzz\r\nnope\r\n');
    else if (head.includes('/no-size')) sock.write('HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n;ext=1\r\nnope\r\n');
    else sock.write('HTTP/1.1 200 OK\r\ncontent-length: 2\r\ncontent-length: 3\r\n\r\nabc');
  });
  await withPool(s, async (pool) => {
    for (const path of ['/status', '/chunk', '/no-size', '/length']) {
      const o = await call(pool, { path });
      // Not a lost connection (which may be retried): the backend's own broken answer.
      assert.equal(o.error?.code, BAD_RESPONSE, path);
    }
  });
});

test('h1 pool: a handler that throws fails its own request, not the process; the pool goes on', async () => {
  const s = await raw((sock) => sock.write(OK));
  await withPool(s, async (pool) => {
    const failed = await new Promise<Error>((resolve) => {
      pool.dispatch({ method: 'POST', path: '/', body: '' }, {
        onResponseData() { throw new Error('handler bug'); },
        onResponseEnd() { resolve(new Error('ended instead')); },
        onResponseError(_c, e) { resolve(e); },
      });
    });
    assert.equal(failed.message, 'handler bug');
    assert.equal((await ok(pool)).body, 'ok');
  });
});

test('h1 pool: pausing on the last bytes leaves the connection usable; a close while paused loses none of what was sent', async () => {
  const s = await raw((sock, head) => {
    if (head.includes('/closing')) sock.end('HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n');
    else if (head.includes('/chunked')) sock.write('HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n');
    else sock.write(OK);
  });
  const pool = poolFor(s.url, { headersTimeout: 1000 });
  const pauseOnce = (c: Dispatcher.DispatchController): void => {
    c.pause();
    setTimeout(() => c.resume(), 20);
  };
  try {
    for (const path of ['/fixed', '/chunked']) {
      assert.equal((await ok(pool, { path }, pauseOnce)).body, 'ok', path);
      const next = await call(pool, { path });
      assert.equal(next.error, undefined, `${path}: the next request on the connection: ${next.error?.message}`);
      assert.equal(next.body, 'ok');
    }
    assert.equal(s.connections, 1);
    const closing = await call(pool, { path: '/closing' }, pauseOnce);
    assert.equal(closing.error, undefined, closing.error?.message);
    assert.equal(closing.body, 'hello world');
  } finally {
    await pool.destroy();
    await s.close();
  }
});

test('h1 pool: an aborted request in the queue does not strand the ones behind it', { timeout: 5000 }, async () => {
  const s = await raw((sock) => setTimeout(() => sock.end('HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: 2\r\n\r\nok'), 20));
  await withPool(s, { connections: 1 }, async (pool) => {
    const first = call(pool);
    let queued!: Dispatcher.DispatchController;
    const aborted = new Promise<Error>((resolve) => pool.dispatch({ method: 'POST', path: '/', body: '' }, {
      onRequestStart(c) { queued = c; }, onResponseError(_c, e) { resolve(e); },
    }));
    const last = call(pool);
    assert.equal(pool.queued, 2);
    queued.abort(new Error('gone'));
    assert.equal(pool.queued, 1, 'the aborted request left the queue at once, with its body, not when a connection frees up');
    assert.equal((await aborted).message, 'gone');
    assert.equal((await first).body, 'ok');
    assert.equal((await last).body, 'ok', 'the request behind the aborted one is served');
  });
});

test('h1 pool: a POST the backend held a while before resetting is not sent again; unsafe header values are refused', async () => {
  let n = 0;
  const s = await raw((sock) => {
    n++;
    if (n === 1) sock.write(OK);
    else setTimeout(() => sock.resetAndDestroy(), 150); // worked on it, then died
  });
  await withPool(s, async (pool) => {
    assert.equal((await ok(pool)).body, 'ok');
    const o = await call(pool);
    assert.ok(o.error !== undefined);
    assert.equal(s.heads.length, 2, 'sent once, not retried');
    const bad = await call(pool, { headers: { authorization: 'Bearer abc\r\nx-injected: 1' } });
    assert.equal(bad.error?.code, 'UND_ERR_INVALID_ARG');
    assert.equal(s.heads.length, 2, 'nothing written');
  });
});

test('h1 pool: bytes after a bodiless answer are not taken for the next answer', async () => {
  const s = await raw((sock) => sock.write('HTTP/1.1 204 No Content\r\n\r\nHTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nstray'));
  await withPool(s, async (pool) => {
    assert.equal((await ok(pool)).status, 204);
    const next = await ok(pool);
    assert.equal(next.status, 204, 'answered by the backend on a new connection, not by the stray bytes');
    assert.equal(s.connections, 2);
  });
});

test('h1 pool: a backend dying mid-answer fails the request, paused or not; a handler paused for good meets the body timeout; the slot is freed', { timeout: 10_000 }, async () => {
  const s = await raw((sock, head) => {
    if (head.includes('/cut')) sock.end('HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n1'); // dies in a chunk-size line
    else if (head.includes('/closing')) sock.end('HTTP/1.1 200 OK\r\ncontent-length: 10\r\nconnection: close\r\n\r\nhello');
    else sock.write(OK);
  });
  await withPool(s, { connections: 1, bodyTimeout: 200 }, async (pool) => {
    const cut = await call(pool, { path: '/cut' });
    assert.equal(cut.error?.code, 'UND_ERR_SOCKET');
    assert.equal(cut.body, 'hello');
    // Paused on the first bytes, never resumed, and the backend has closed: the body timeout ends it.
    const stuck = await call(pool, { path: '/closing' }, (c) => c.pause());
    assert.equal(stuck.error?.code, 'UND_ERR_BODY_TIMEOUT');
    assert.equal((await ok(pool)).body, 'ok', 'the one connection slot is free again');
  });
});

test('h1 pool: a handler throwing at the end of an answer read to the connection\'s end fails nothing else', { timeout: 10_000 }, async () => {
  const s = await raw((sock, head) => {
    if (head.includes('/until-close')) sock.end('HTTP/1.1 200 OK\r\n\r\nall of it');
    else sock.write(OK);
  });
  await withPool(s, { connections: 1 }, async (pool) => {
    await new Promise<void>((resolve) => {
      pool.dispatch({ method: 'GET', path: '/until-close' }, {
        onResponseEnd() { resolve(); throw new Error('handler bug at the end'); },
        onResponseError() { resolve(); },
      });
    });
    assert.equal((await ok(pool)).body, 'ok');
    const bad = await ok(pool, { method: 'GET', headers: { 'Content-Length': '99' } });
    assert.equal(bad.body, 'ok', 'a caller\'s own Content-Length (any case) is not sent beside the real one');
    assert.deepEqual(s.heads.at(-1)!.match(/content-length: \d+/gi), ['content-length: 7'], 'only the real length of the 7-byte body');
    assert.equal((await call(pool, { headers: { 'bad name': 'x' } })).error?.code, 'UND_ERR_INVALID_ARG');
  });
});

// node:http's side of an exchange: a request body whose client left before the gateway read it.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { createServer } from 'node:http';
import { connect, type AddressInfo } from 'node:net';
import { NodeExchange, bodyTooLarge } from './exchange.ts';

test('a body too large is said in units people read, naming the setting; bytes only where the units would read alike', () => {
  assert.equal(bodyTooLarge(9000063, 8388608, 'gateway.limits.max_body').message, 'request body is 8.6 MiB; the limit is 8 MiB (gateway.limits.max_body)');
  assert.equal(bodyTooLarge(undefined, 8388608, 'gateway.limits.max_body').message, 'request body exceeds the limit of 8 MiB (gateway.limits.max_body)');
  assert.equal(bodyTooLarge(70_000, 65_536, 'fixed for the admin API').message, 'request body is 68.4 KiB; the limit is 64 KiB (fixed for the admin API)');
  assert.equal(bodyTooLarge(8388609, 8388608, 'gateway.limits.max_body').message, 'request body is 8388609 bytes; the limit is 8388608 bytes (gateway.limits.max_body)');
  assert.equal(bodyTooLarge(2000, 1000, undefined).message, 'request body is 2 KiB; the limit is 1000 bytes');
  assert.equal(bodyTooLarge(3 * 2 ** 30, 2 ** 30, undefined).message, 'request body is 3 GiB; the limit is 1 GiB');
});

test('a body read after its client left (whole or cut short) is a 499, never a wait for ever', async () => {
  const outcomes: string[] = [];
  let done!: () => void;
  const all = new Promise<void>((r) => { done = r; });
  let arrived!: () => void;
  const server = createServer((req, res) => {
    arrived();
    // The body is read only after the client has gone, as after a slow key lookup: once its
    // connection has closed (not after a fixed wait, which a loaded machine can outrun).
    const read = (): void => {
      const body = new NodeExchange(req, res).body(1024);
      const timeout = new Promise<string>((r) => setTimeout(() => r('still waiting'), 2000).unref());
      void Promise.race([body.then(() => 'read', (e: { status?: number }) => String(e.status)), timeout]).then((o) => {
        outcomes.push(o);
        if (outcomes.length === 2) done();
      });
    };
    if (req.socket.destroyed) setImmediate(read);
    else req.socket.once('close', () => setImmediate(read));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  try {
    for (const body of ['{"model":"m"}', '{"mod']) {
      const sock = connect(port, '127.0.0.1');
      sock.on('error', () => {});
      await new Promise((r) => sock.once('connect', r));
      const handled = new Promise<void>((r) => { arrived = r; });
      sock.write(`POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 13\r\n\r\n${body}`);
      await handled;
      sock.destroy();
    }
    await all;
    assert.deepEqual(outcomes, ['499', '499'], 'the whole body and the cut one alike');
  } finally {
    server.closeAllConnections();
    await new Promise((r) => server.close(r));
  }
});

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { errorCode } from './attempt-error.ts';
import { getOnce } from './http-client.ts';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const undiciLoaded = (): boolean => require.resolve('undici/lib/dispatcher/client.js') in require.cache;

test('getOnce: plain HTTP through the lean client, HTTPS through undici (loaded on first use); failures carry their codes', async () => {
  const server = createServer((req, res) => {
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify({ path: req.url }));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as { port: number }).port;
  try {
    const r = await getOnce(`http://127.0.0.1:${port}/api/tags?x=1`, 2000);
    assert.equal(r.status, 200);
    assert.deepEqual(JSON.parse(r.text), { path: '/api/tags?x=1' });
    assert.equal(undiciLoaded(), false, 'plain HTTP does not load undici');
    // TLS to a plain-HTTP port: undici's Client is loaded and reports the handshake failure.
    await assert.rejects(getOnce(`https://127.0.0.1:${port}/`, 2000), (e: unknown) => errorCode(e) === 'ERR_SSL_WRONG_VERSION_NUMBER');
    assert.equal(undiciLoaded(), true);
  } finally {
    server.close();
  }
  await assert.rejects(getOnce(`http://127.0.0.1:${port}/`, 2000), (e: unknown) => errorCode(e) === 'ECONNREFUSED');
});

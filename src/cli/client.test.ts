// How the CLI reads --url: as operators type it.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { gatewayUrl, UsageError } from './client.ts';

test('--url: the clients\' base URL (…/v1) and host:port alone are the gateway; other schemes are refused', () => {
  assert.equal(gatewayUrl('http://127.0.0.1:4417/v1'), 'http://127.0.0.1:4417');
  assert.equal(gatewayUrl('https://gw.example.net/v1/'), 'https://gw.example.net');
  assert.equal(gatewayUrl('localhost:4417'), 'http://localhost:4417');
  assert.equal(gatewayUrl('motoko:8000/'), 'http://motoko:8000');
  assert.equal(gatewayUrl('http://proxy.lan/fabric'), 'http://proxy.lan/fabric', 'a gateway behind a path prefix keeps it');
  assert.equal(gatewayUrl(undefined, { FABRIC_URL: 'http://h:1/v1' }), 'http://h:1');
  assert.equal(gatewayUrl(undefined, {}), 'http://127.0.0.1:4000');
  assert.throws(() => gatewayUrl('ftp://h'), (e: unknown) => e instanceof UsageError && e.message === '--url must be http:// or https://, got "ftp://h"');
  assert.throws(() => gatewayUrl('http://'), UsageError);
});

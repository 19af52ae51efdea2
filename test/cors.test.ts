// Browsers (gateway.cors): an allowed origin's page may call the gateway, its preflight is
// answered without a key, and what it may read is exposed; any other origin gets nothing that
// lets a browser show it the answers. On both lanes.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startFabric, type Fabric } from './helpers.ts';
import { parseFabricText } from '../src/config/load.ts';
import { formatIssue } from '../src/config/issues.ts';
import { connect } from 'node:net';
import { hostname } from 'node:os';
import { request } from 'undici';
import { Secrets } from '../src/config/env-file.ts';
import { createLogger } from '../src/core/log.ts';
import { startGateway } from '../src/main.ts';
import { startFleet } from '../src/sim/fleet.ts';
import { tempDir } from './support/temp-dir.ts';

const MASTER = 'fabric-master-key-for-cors-tests-0123456789';
const FAST = { ttftMs: 1, tokensPerSecond: 5000 };
const lanes: Record<string, Fabric> = {};

/** A config of one simulated vLLM backend `v` serving chat-fast, with these `gateway:` lines. */
const oneBackend = (url: string, gateway: string): string => `
gateway:${gateway}
backends:
  v: { engine: vllm, url: ${url}/v1, model: m }
roles:
  chat-fast: { kind: chat, backends: [v] }
`;

before(async () => {
  for (const lane of ['fast', 'node']) {
    lanes[lane] = await startFabric({
      env: { FABRIC_MASTER_KEY: MASTER },
      apiKey: MASTER,
      engines: [{ name: 'v', protocol: 'vllm', model: 'm', kind: 'chat', timing: FAST }],
      yaml: (url) => oneBackend(url('v'), `
  master_key: env:FABRIC_MASTER_KEY
  fast_lane: ${lane === 'fast'}
  cors: { origins: ["http://localhost:3000", "APP://Obsidian.md"] }`),
    });
  }
});

after(async () => {
  for (const f of Object.values(lanes)) await f.close();
});

for (const lane of ['fast', 'node']) {
  test(`${lane} lane: a preflight from an allowed origin is answered without a key; the answer then carries the origin and the exposed headers`, async () => {
    const f = lanes[lane]!;
    const pre = await fetch(`${f.url}/v1/chat/completions`, {
      method: 'OPTIONS',
      headers: { origin: 'http://localhost:3000', 'access-control-request-method': 'POST', 'access-control-request-headers': 'authorization, content-type, x-stainless-os' },
    });
    assert.equal(pre.status, 204);
    assert.equal(pre.headers.get('access-control-allow-origin'), 'http://localhost:3000');
    assert.equal(pre.headers.get('access-control-allow-headers'), 'authorization, content-type, x-stainless-os');
    assert.match(pre.headers.get('access-control-allow-methods')!, /POST/);
    assert.equal(pre.headers.get('access-control-max-age'), '600');
    assert.equal(pre.headers.get('content-length'), null, 'a 204 has no length');
    assert.equal(await pre.text(), '');

    const r = await fetch(`${f.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { origin: 'app://obsidian.md', authorization: `Bearer ${MASTER}`, 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'chat-fast', messages: [{ role: 'user', content: 'hi' }], stream: true }),
    });
    assert.equal(r.status, 200);
    assert.equal(r.headers.get('access-control-allow-origin'), 'app://obsidian.md', 'origins compare without case, as browsers send them');
    // Every x-fabric-* and request-id header the gateway sets is one the page may read (the list is kept by hand in cors.ts).
    const exposed = r.headers.get('access-control-expose-headers')!.split(/\s*,\s*/);
    const own = [...r.headers.keys()].filter((h) => h.startsWith('x-fabric-') || h.endsWith('request-id'));
    assert.ok(own.length >= 4, own.join());
    for (const h of own) assert.ok(exposed.includes(h), `${h} is exposed`);
    // What an SDK in the page decides its retries by.
    for (const h of ['retry-after', 'x-should-retry']) assert.ok(exposed.includes(h), `${h} is exposed`);
    // What Anthropic's SDK reports as the request's id (answers on /v1/messages carry it).
    assert.ok(exposed.includes('request-id'));
    assert.match(r.headers.get('vary')!, /origin/i);
    assert.match(await r.text(), /data: \[DONE\]/);
    // Errors carry them too, or the page could not read why it failed.
    const e = await fetch(`${f.url}/v1/models`, { headers: { origin: 'http://localhost:3000' } });
    assert.equal(e.status, 401);
    assert.equal(e.headers.get('access-control-allow-origin'), 'http://localhost:3000');
  });

  test(`${lane} lane: any other origin gets no CORS headers, and its preflight a 403; requests without an Origin are untouched`, async () => {
    const f = lanes[lane]!;
    const pre = await fetch(`${f.url}/v1/chat/completions`, { method: 'OPTIONS', headers: { origin: 'http://evil.example', 'access-control-request-method': 'POST' } });
    assert.equal(pre.status, 403);
    assert.equal(pre.headers.get('access-control-allow-origin'), null);
    assert.equal(((await pre.json()) as any).error.code, 'permission_denied');
    const r = await fetch(`${f.url}/v1/models`, { headers: { origin: 'http://evil.example', authorization: `Bearer ${MASTER}` } });
    assert.equal(r.status, 200);
    assert.equal(r.headers.get('access-control-allow-origin'), null);
    assert.equal(r.headers.get('vary'), 'origin', 'a shared cache keeps answers to different origins apart');
    const plain = await fetch(`${f.url}/v1/models`, { headers: { authorization: `Bearer ${MASTER}` } });
    assert.equal(plain.headers.get('access-control-allow-origin'), null);
    assert.equal(plain.headers.get('vary'), 'origin', 'without an Origin: only the Vary');
  });
}

test('origins: ["*"]: any page may call, and each is answered with its own origin', async () => {
  const f = await startFabric({
    env: { FABRIC_MASTER_KEY: MASTER },
    apiKey: MASTER,
    engines: [{ name: 'v', protocol: 'vllm', model: 'm', kind: 'chat', timing: FAST }],
    yaml: (url) => oneBackend(url('v'), '\n  master_key: env:FABRIC_MASTER_KEY\n  cors: { origins: ["*"] }'),
  });
  try {
    for (const origin of ['http://anything.example:8080', 'app://obsidian.md']) {
      const pre = await fetch(`${f.url}/v1/chat/completions`, { method: 'OPTIONS', headers: { origin, 'access-control-request-method': 'POST' } });
      assert.equal(pre.status, 204);
      assert.equal(pre.headers.get('access-control-allow-origin'), origin);
      const r = await fetch(`${f.url}/v1/models`, { headers: { origin, authorization: `Bearer ${MASTER}` } });
      assert.equal(r.headers.get('access-control-allow-origin'), origin);
    }
  } finally {
    await f.close();
  }
});

test('config: origins must be scheme://host[:port]; "*" allows any; an empty list is an error', () => {
  const cfg = (cors: string) => `gateway:\n  cors: ${cors}\nbackends:\n  v: { engine: vllm, url: http://127.0.0.1:8000/v1, model: m }\nroles:\n  r: { kind: chat, backends: [v] }\n`;
  assert.equal(parseFabricText(cfg('{ origins: ["*"] }'), 'c.yaml').config.gateway.corsOrigins, '*');
  assert.deepEqual([...(parseFabricText(cfg('{ origins: [http://localhost:3000] }'), 'c.yaml').config.gateway.corsOrigins as Set<string>)], ['http://localhost:3000']);
  const issues = (cors: string) => parseFabricText(cfg(cors), 'c.yaml').issues.filter((i) => i.severity === 'error').map(formatIssue).join('\n');
  assert.match(issues('{ origins: ["http://localhost:3000/"] }'), /c\.yaml:2.*gateway\.cors\.origins\[0\].*drop the trailing "\/": http:\/\/localhost:3000/);
  assert.match(issues('{ origins: [] }'), /gateway\.cors\.origins.*list the browser origins/);
  // The origin file:// pages and sandboxed frames send may be listed on its own; without a master
  // key it would let any site in (sandboxed frames send it too): warned, and refused when serving.
  const withNull = parseFabricText(cfg('{ origins: ["null", "app://obsidian.md"] }'), 'c.yaml');
  assert.deepEqual([...(withNull.config.gateway.corsOrigins as Set<string>)], ['null', 'app://obsidian.md']);
  assert.match(withNull.issues.filter((i) => i.severity === 'warning').map(formatIssue).join('\n'), /gateway\.cors\.origins\[0\].*"null".*any site.*master_key/);
  assert.match(issues('{ origins: ["nul"] }'), /"nul" is not an origin/);
  assert.match(issues('{ origin: ["*"] }'), /gateway\.cors.*origin/);
});

test('an open gateway (no master key) refuses what a web page could make a browser send: an unlisted origin, a name that is not this machine (DNS rebinding); on both lanes', async () => {
  for (const lane of ['fast', 'node']) {
    const f = await startFabric({
      engines: [{ name: 'v', protocol: 'vllm', model: 'm', kind: 'chat', timing: FAST }],
      yaml: (url) => oneBackend(url('v'), `
  fast_lane: ${lane === 'fast'}
  cors: { origins: ["http://localhost:3000", "null"] }`),
    });
    try {
      const port = new URL(f.url).port;
      const body = JSON.stringify({ model: 'chat-fast', messages: [{ role: 'user', content: 'hi' }] });
      const send = async (headers: Record<string, string>) => {
        const r = await request(`${f.url}/v1/chat/completions`, { method: 'POST', headers, body });
        return { status: r.statusCode, json: (await r.body.json()) as any };
      };
      // A "simple" cross-site POST: text/plain needs no preflight, and the gateway reads it as JSON.
      const csrf = await send({ origin: 'https://evil.example', 'content-type': 'text/plain' });
      assert.equal(csrf.status, 403, lane);
      assert.equal(csrf.json.error.code, 'permission_denied');
      assert.match(csrf.json.error.message, /origin "https:\/\/evil\.example" is not allowed.*gateway\.cors\.origins/);
      // A sandboxed frame on any site says "null": listed or not, not enough without a key.
      assert.equal((await send({ origin: 'null', 'content-type': 'text/plain' })).status, 403, lane);
      // DNS rebinding: the page's own name, pointed at 127.0.0.1: same-origin to the browser.
      const rebound = await send({ origin: `http://attacker.example:${port}`, host: `attacker.example:${port}`, 'content-type': 'text/plain' });
      assert.equal(rebound.status, 403, lane);
      assert.match(rebound.json.error.message, /addressed to "attacker\.example:\d+" are refused.*DNS rebinding/);
      const health = await request(`${f.url}/health`, { headers: { host: 'attacker.example' } });
      assert.equal(health.statusCode, 403, 'what /health shows of the fleet too');
      await health.body.text();
      assert.equal(f.fleet.get('v').requests().length, 0, 'nothing reached the backend');
      // This machine, however named; a listed origin; a page of the gateway's own; a client that sends no Origin.
      for (const host of [`localhost:${port}`, `127.0.0.1:${port}`, `LOCALHOST:${port}`, `app.localhost:${port}`, `localhost.:${port}`, `[::1]:${port}`, hostname(),
        // A compose service, a LAN host, a cluster service: names no public DNS gives out.
        `fabric:${port}`, `gpu-box.lan:${port}`, `wintermute.local`, `fabric.default.svc.cluster.local:${port}`]) {
        assert.equal((await send({ host, 'content-type': 'application/json' })).status, 200, `${lane}: ${host}`);
      }
      assert.equal((await send({ origin: 'http://localhost:3000', 'content-type': 'application/json' })).status, 200);
      assert.equal((await send({ origin: `http://localhost:${port}`, host: `localhost:${port}`, 'content-type': 'application/json' })).status, 200);
    } finally {
      await f.close();
    }
  }
});

test('a request without a Host header: HTTP/1.1 gets an OpenAI-shaped 400 with its request id; HTTP/1.0 is served', async () => {
  const f = lanes.fast!;
  const raw = (text: string) => new Promise<string>((resolve, reject) => {
    const s = connect(Number(new URL(f.url).port), '127.0.0.1');
    let out = '';
    s.setEncoding('utf8').on('data', (d: string) => { out += d; }).on('end', () => resolve(out)).on('error', reject);
    s.write(text);
  });
  const noHost = await raw(`GET /v1/models HTTP/1.1\r\nauthorization: Bearer ${MASTER}\r\n\r\n`);
  assert.match(noHost, /^HTTP\/1\.1 400 /);
  assert.match(noHost, /\r\nx-request-id: req_/);
  const json = JSON.parse(noHost.slice(noHost.indexOf('\r\n\r\n') + 4));
  assert.equal(json.error.type, 'invalid_request_error');
  assert.match(json.error.message, /must have a Host header/);
  const old = await raw(`GET /v1/models HTTP/1.0\r\nauthorization: Bearer ${MASTER}\r\n\r\n`);
  assert.match(old, /^HTTP\/1\.1 200 /);
});

test('listening on every interface (as in a container behind a port published on 127.0.0.1), an open gateway still refuses a rebound name, and with it the "same-origin" request a rebinding page sends', async () => {
  const fleet = await startFleet([{ name: 'v', protocol: 'vllm', model: 'm', kind: 'chat', timing: FAST }]);
  const { config } = parseFabricText(oneBackend(fleet.get('v').url, ' {}'), 'open.yaml');
  const gw = await startGateway(config, new Secrets({}), { host: '0.0.0.0', port: 0, probe: false, log: createLogger({ write: () => {} }), dataDir: tempDir('fabric-cors-any-') });
  try {
    const port = gw.port;
    const body = JSON.stringify({ model: 'chat-fast', messages: [{ role: 'user', content: 'hi' }] });
    const send = async (headers: Record<string, string>) => {
      const r = await request(`http://127.0.0.1:${port}/v1/chat/completions`, { method: 'POST', headers, body });
      return { status: r.statusCode, json: (await r.body.json()) as any };
    };
    const rebound = await send({ origin: `http://rebind.attacker.example:${port}`, host: `rebind.attacker.example:${port}`, 'content-type': 'text/plain' });
    assert.equal(rebound.status, 403);
    assert.match(rebound.json.error.message, /DNS rebinding/);
    assert.equal(fleet.get('v').requests().length, 0);
    assert.equal((await send({ host: `127.0.0.1:${port}`, 'content-type': 'application/json' })).status, 200);
    assert.equal((await send({ host: `localhost:${port}`, origin: `http://localhost:${port}`, 'content-type': 'application/json' })).status, 200, 'a page of its own');
  } finally {
    await gw.close(1000);
    await fleet.close();
  }
});

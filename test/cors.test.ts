// Browsers (gateway.cors): an allowed origin's page may call the gateway, its preflight is
// answered without a key, and what it may read is exposed; any other origin gets nothing that
// lets a browser show it the answers. On both lanes.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startFabric, type Fabric } from './helpers.ts';
import { parseFabricText } from '../src/config/load.ts';
import { formatIssue } from '../src/config/issues.ts';

const MASTER = 'fabric-master-key-for-cors-tests-0123456789';
const FAST = { ttftMs: 1, tokensPerSecond: 5000 };
const lanes: Record<string, Fabric> = {};

before(async () => {
  for (const lane of ['fast', 'node']) {
    lanes[lane] = await startFabric({
      env: { FABRIC_MASTER_KEY: MASTER },
      apiKey: MASTER,
      engines: [{ name: 'v', protocol: 'vllm', model: 'm', kind: 'chat', timing: FAST }],
      yaml: (url) => `
gateway:
  master_key: env:FABRIC_MASTER_KEY
  fast_lane: ${lane === 'fast'}
  cors: { origins: ["http://localhost:3000", "APP://Obsidian.md"] }
backends:
  v: { engine: vllm, url: ${url('v')}/v1, model: m }
roles:
  chat-fast: { kind: chat, backends: [v] }
`,
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
    yaml: (url) => `gateway:\n  master_key: env:FABRIC_MASTER_KEY\n  cors: { origins: ["*"] }\nbackends:\n  v: { engine: vllm, url: ${url('v')}/v1, model: m }\nroles:\n  chat-fast: { kind: chat, backends: [v] }\n`,
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
  assert.match(issues('{ origin: ["*"] }'), /gateway\.cors.*origin/);
});

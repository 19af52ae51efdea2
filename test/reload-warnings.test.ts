// A config reload swaps routing, keys and limits at once; what the listening server was built
// with (the fast lane, the header limit, the address) waits for a restart, and says so.

import { test } from 'node:test';
import { request } from 'node:http';
import assert from 'node:assert/strict';
import { parseFabricText } from '../src/config/load.ts';
import { Secrets } from '../src/config/env-file.ts';
import { chat, post, startFabric, eventually } from './helpers.ts';
import { KeyAdmin } from '../src/keys/admin.ts';
import { join } from 'node:path';
import { createLogger } from '../src/core/log.ts';
import { startGateway } from '../src/main.ts';
import { startFleet } from '../src/sim/fleet.ts';
import { tempDir } from './support/temp-dir.ts';

const FAST = { ttftMs: 1, tokensPerSecond: 2000, maxConcurrency: 8, maxQueue: 8 };

test('a reload that changes gateway.fast_lane or limits.max_header warns that it waits for a restart; one that does not, does not', async () => {
  const yaml = (url: string, extra: string): string => `
gateway:
  fast_lane: true
  ${extra}
backends:
  a: { engine: vllm, url: ${url}/v1, model: m }
roles:
  chat: { kind: chat, backends: [a] }
`;
  const f = await startFabric({ engines: [{ name: 'a', protocol: 'vllm', model: 'm', kind: 'chat', timing: FAST }], yaml: (url) => yaml(url('a'), '') });
  try {
    const url = f.fleet.get('a').url;
    const warned = (): string[] => (f.gw.app.log.flush(), f.logs).filter((l) => l.includes('take effect at the next restart'));
    f.gw.reload(parseFabricText(yaml(url, 'retry: { base: 10ms }'), 'test.yaml').config, new Secrets({}));
    assert.deepEqual(warned(), []);
    f.gw.reload(parseFabricText(yaml(url, 'limits: { max_header: 4KiB }').replace('fast_lane: true', 'fast_lane: false'), 'test.yaml').config, new Secrets({}));
    assert.equal(warned().length, 1);
    assert.match(warned()[0]!, /gateway\.fast_lane, gateway\.limits\.max_header changes/);
  } finally {
    await f.close();
  }
});

test('a request whose body is still arriving at a reload is served under the config it came in with; that config\'s keys stay scrubbed from the log until it is done, however many reloads come between', async () => {
  const yaml = (url: string, env: string): string => `
backends:
  a: { engine: vllm, url: ${url}/v1, model: m, api_key: env:${env} }
roles:
  chat: { kind: chat, backends: [a] }
`;
  const keys = { KEY_A: 'key-aaaa-1111-first', KEY_B: 'key-bbbb-2222-second', KEY_C: 'key-cccc-3333-third', KEY_D: 'key-dddd-4444-fourth' };
  // A replaced config's keys stay scrubbed 100 ms past its last request (5 s when serving).
  const f = await startFabric({ engines: [{ name: 'a', protocol: 'vllm', model: 'm', kind: 'chat', timing: FAST }], yaml: (url) => yaml(url('a'), 'KEY_A'), env: { KEY_A: keys.KEY_A }, retiredLogMs: 100 });
  try {
    const url = f.fleet.get('a').url;
    const reload = (env: keyof typeof keys): void => f.gw.reload(parseFabricText(yaml(url, env), 'test.yaml').config, new Secrets({ [env]: keys[env] }));
    reload('KEY_B');
    const body = JSON.stringify({ model: 'chat', messages: [{ role: 'user', content: 'hello there' }], max_tokens: 4 });
    const { port } = new URL(f.url);
    const req = request({ host: '127.0.0.1', port, path: '/v1/chat/completions', method: 'POST', headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) } });
    const answered = new Promise<{ status: number; text: string }>((resolve, reject) => {
      req.on('response', (res) => { let t = ''; res.on('data', (c) => { t += c; }); res.on('end', () => resolve({ status: res.statusCode!, text: t })); });
      req.on('error', reject);
    });
    req.write(body.slice(0, 20));
    const underB = f.gw.app.gateway;
    // Until the gateway has taken it (its body still arriving).
    while (await Promise.race([underB.whenIdle().then(() => true), new Promise((r) => setImmediate(() => r(false)))])) await new Promise((r) => setTimeout(r, 10));
    reload('KEY_C');
    reload('KEY_D');
    const echoed = (): string => {
      f.gw.app.log.info('check', { echoed: `${keys.KEY_B} ${keys.KEY_C} ${keys.KEY_D}` });
      f.gw.app.log.flush();
      return JSON.parse(f.logs.filter((l) => l.includes('"check"')).pop()!).echoed as string;
    };
    // Well past the 100 ms: B's key is still scrubbed, two reloads on, as the request taken under
    // it runs; C's is released (nothing ran under C); D's is in force.
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(echoed(), `[redacted] ${keys.KEY_C} [redacted]`);
    req.end(body.slice(20));
    const r = await answered;
    assert.equal(r.status, 200, r.text);
    assert.equal(f.fleet.get('a').requests().at(-1)!.headers.authorization, `Bearer ${keys.KEY_B}`, 'sent with the key of the config it came under');
    // Once it is done (and 100 ms on), B's key is released; C's was replaced with nothing running; D's is in force.
    await new Promise((r) => setTimeout(r, 400));
    assert.equal(echoed(), `${keys.KEY_B} ${keys.KEY_C} [redacted]`);
  } finally {
    await f.close();
  }
});

test('a reload that moves gateway.data_dir warns that the store and spool stay where they are until a restart', async () => {
  const dir = tempDir('fabric-reload-dd-');
  const fleet = await startFleet([{ name: 'a', protocol: 'vllm', model: 'm', kind: 'chat', timing: FAST }]);
  const yaml = (dd: string): string => `
gateway:
  data_dir: ${dd}
backends:
  a: { engine: vllm, url: ${fleet.get('a').url}/v1, model: m }
roles:
  chat: { kind: chat, backends: [a] }
`;
  const file = join(dir, 'fabric.yaml');
  // The test runner's FABRIC_DATA_DIR would override the config's data_dir.
  const saved = process.env.FABRIC_DATA_DIR;
  delete process.env.FABRIC_DATA_DIR;
  const logs: string[] = [];
  try {
    const gw = await startGateway(parseFabricText(yaml('one'), file).config, new Secrets({}), { host: '127.0.0.1', port: 0, probe: false, log: createLogger({ write: (s) => { logs.push(s); } }) });
    try {
      gw.reload(parseFabricText(yaml('one'), file).config, new Secrets({}));
      gw.reload(parseFabricText(yaml('two'), file).config, new Secrets({}));
      // Reloaded again as it is: the store is still in 'one', so it is still said.
      gw.reload(parseFabricText(yaml('two'), file).config, new Secrets({}));
      gw.app.log.flush();
      const warned = logs.join('').split('\n').filter((l) => l.includes('take effect at the next restart'));
      assert.equal(warned.length, 2, warned.join('\n'));
      assert.match(warned[0]!, /gateway\.data_dir changes/);
    } finally {
      await gw.close(1000);
    }
  } finally {
    if (saved !== undefined) process.env.FABRIC_DATA_DIR = saved;
    await fleet.close();
  }
});

const MASTER = 'fabric-master-key-for-reload-tests-0123456789';
const auth = { authorization: `Bearer ${MASTER}` };

test('a reload that changes gateway.accounting.sync_interval applies it: a key revoked by another process stops working at the new interval', async () => {
  const yaml = (url: string, every: string): string => `
gateway:
  master_key: env:FABRIC_MASTER_KEY
  accounting: { sync_interval: ${every} }
backends:
  a: { engine: vllm, url: ${url}/v1, model: m-a }
roles:
  chat: { kind: chat, backends: [a] }
`;
  const f = await startFabric({ env: { FABRIC_MASTER_KEY: MASTER }, apiKey: MASTER, engines: [{ name: 'a', protocol: 'vllm', model: 'm-a', kind: 'chat', timing: FAST }], yaml: (u) => yaml(u('a'), '1h') });
  try {
    const k = (await post(f.url, '/admin/keys', { name: 'x' }, auth)).json;
    const send = (): Promise<number> => post(f.url, '/v1/chat/completions', chat('chat'), { authorization: `Bearer ${k.key}` }).then((r) => r.status);
    assert.equal(await send(), 200);
    f.gw.reload(parseFabricText(yaml(f.fleet.get('a').url, '100ms'), 'test.yaml').config, new Secrets({ FABRIC_MASTER_KEY: MASTER }));
    // Revoked in the store behind this gateway's back (as fabric keys --config does).
    await new KeyAdmin(f.gw.app.accounting!.store).revoke(k.id);
    assert.equal(await eventually(send, (s) => s === 401, 2000), 401, 'picked up at the new 100 ms poll, not the 1 h one');
  } finally {
    await f.close();
  }
});

test('a reload that changes gateway.workers says it waits for a restart; one that leaves a gateway on a non-loopback address without a master key warns as fabric serve does at start', async () => {
  const fleetF = await startFabric({ engines: [{ name: 'a', protocol: 'vllm', model: 'm-a', kind: 'chat', timing: FAST }], yaml: (u) => `
backends:
  a: { engine: vllm, url: ${u('a')}/v1, model: m-a }
roles:
  chat: { kind: chat, backends: [a] }
` });
  const url = fleetF.fleet.get('a').url;
  const yaml = (extra: string): string => `
gateway:
  ${extra}
backends:
  a: { engine: vllm, url: ${url}/v1, model: m-a }
roles:
  chat: { kind: chat, backends: [a] }
`;
  const logs: string[] = [];
  const secrets = new Secrets({ FABRIC_MASTER_KEY: MASTER });
  // Every interface, as a LAN gateway listens; the key is taken away only at the end.
  const gw = await startGateway(parseFabricText(yaml('master_key: env:FABRIC_MASTER_KEY'), 't.yaml').config, secrets, {
    host: '0.0.0.0', port: 0, probe: false, accounting: false, log: createLogger({ write: (s) => { logs.push(...s.trimEnd().split('\n')); } }),
  });
  try {
    const msgs = (): string[] => (gw.app.log.flush(), logs.map((l) => JSON.parse(l)).filter((r) => r.level === 'warn').map((r) => r.msg as string));
    gw.reload(parseFabricText(yaml('master_key: env:FABRIC_MASTER_KEY\n  workers: 2'), 't.yaml').config, secrets);
    assert.deepEqual(msgs(), ['config reload: gateway.workers changes take effect at the next restart']);
    gw.reload(parseFabricText(yaml('workers: 2'), 't.yaml').config, secrets);
    assert.equal(msgs()[1], 'config reload: listening on 0.0.0.0 with no master key: anyone who can reach this port can use every backend (it answers only requests addressed to an IP address, this machine\'s name, a one-label or a private name such as .local or .internal); set gateway.master_key');
    assert.equal(msgs().length, 2);
  } finally {
    await gw.close(1000);
    await fleetF.close();
  }
});

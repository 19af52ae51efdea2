// Fleet health end to end: a gateway with its probes, load polling, power model and alerts
// running, in front of simulated engines on loopback — a backend killed, hung, slow and
// flapping; a workstation off and woken (the magic packet caught by a UDP listener); traffic
// sent away from a backend whose /metrics shows a queue; the alert webhook; `fabric health`
// and `fabric wake` as an operator runs them.

import { test, before, after, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { createSocket, type Socket } from 'node:dgram';
import { createServer, type Server } from 'node:http';
import { once } from 'node:events';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { AddressInfo } from 'node:net';
import { parseFabricText } from '../src/config/load.ts';
import { Secrets } from '../src/config/env-file.ts';
import { createLogger } from '../src/core/log.ts';
import type { BackendRuntime } from '../src/core/backend.ts';
import { startGateway, type RunningGateway } from '../src/main.ts';
import { startFleet, type SimFleet } from '../src/sim/fleet.ts';
import { magicPacket } from '../src/health/wol.ts';
import { post, chat } from './helpers.ts';
import { freePort } from './support/servers.ts';
import { runFabric } from './support/proc.ts';
import { tempDir } from './support/temp-dir.ts';

const FAST = { ttftMs: 5, tokensPerSecond: 2000, maxConcurrency: 16, maxQueue: 64 };
const ARMITAGE_MAC = '0a:1b:2c:3d:4e:5f';

let fleet: SimFleet;
let gw: RunningGateway;
let udp: Socket;
let packets: Buffer[] = [];
let hook: Server;
let hookBodies: { text: string }[] = [];
const logs: string[] = [];

before(async () => {
  udp = createSocket('udp4');
  udp.on('message', (m) => packets.push(m));
  udp.bind(0, '127.0.0.1');
  await once(udp, 'listening');
  hook = createServer((req, res) => {
    let raw = '';
    req.on('data', (c) => { raw += c; });
    req.on('end', () => { hookBodies.push(JSON.parse(raw)); res.end('ok'); });
  });
  hook.listen(0, '127.0.0.1');
  await once(hook, 'listening');
  fleet = await startFleet([
    { name: 'armitage', protocol: 'vllm', model: 'Qwen/Qwen2.5-7B-Instruct-AWQ', kind: 'chat', timing: FAST },
    { name: 'primary', protocol: 'vllm', model: 'm-primary', kind: 'chat', timing: FAST },
    { name: 'backup', protocol: 'llamacpp', model: 'm-backup', kind: 'chat', timing: FAST },
    { name: 'slowpoke', protocol: 'vllm', model: 'm-slow', kind: 'chat', timing: FAST },
    { name: 'motoko', protocol: 'vllm', model: 'BAAI/bge-base-en-v1.5', kind: 'embeddings', dimensions: 768, timing: FAST },
    { name: 'gpu-a', protocol: 'vllm', model: 'm-shared', kind: 'chat', timing: { ttftMs: 3_000, tokensPerSecond: 50, maxConcurrency: 1, maxQueue: 16 } },
    { name: 'gpu-b', protocol: 'vllm', model: 'm-shared', kind: 'chat', timing: FAST },
  ]);
  const url = (n: string): string => fleet.get(n).url;
  const { config } = parseFabricText(`
gateway:
  health_interval: 300ms
  health: { failure_threshold: 3, cooldown: 400ms, max_cooldown: 2s, probe_timeout: 150ms, load_interval: 0 }
  wake: { enabled: true, min_interval: 1m, boot_timeout: 10s }
  alerts: { webhook: env:ALERT_HOOK, format: slack, interval: 50ms, min_interval: 0ms, notify: warning }
  retry: { base: 5ms, max: 20ms }
nodes:
  armitage: { power: workstation, wol: { mac: "${ARMITAGE_MAC}", broadcast: 127.0.0.1, port: ${(udp.address() as AddressInfo).port} } }
  motoko: { power: always-on }
backends:
  armitage-qwen: { engine: vllm, node: armitage, url: ${url('armitage')}/v1, model: Qwen/Qwen2.5-7B-Instruct-AWQ, health: { cooldown: 1m } }
  primary: { engine: vllm, url: ${url('primary')}/v1, model: m-primary, max_retries: 0 }
  backup: { engine: llamacpp, url: ${url('backup')}/v1, model: m-backup }
  slowpoke: { engine: vllm, url: ${url('slowpoke')}/v1, model: m-slow, max_retries: 0, timeouts: { first_byte: 120ms, total: 300ms } }
  motoko-bge: { engine: vllm, node: motoko, url: ${url('motoko')}/v1, model: BAAI/bge-base-en-v1.5 }
  gpu-a: { engine: vllm, url: ${url('gpu-a')}/v1, model: m-shared }
  gpu-b: { engine: vllm, url: ${url('gpu-b')}/v1, model: m-shared }
roles:
  chat-main: { kind: chat, backends: [primary], fallbacks: [chat-backup] }
  chat-backup: { kind: chat, backends: [backup] }
  chat-slow: { kind: chat, backends: [slowpoke], fallbacks: [chat-backup] }
  only-armitage: { kind: chat, backends: [armitage-qwen], fallbacks: [chat-backup] }
  embeddings-general: { kind: embeddings, backends: [motoko-bge], dimensions: 768 }
  chat-ll: { kind: chat, backends: [gpu-a, gpu-b], strategy: least-loaded }
  chat-sticky: { kind: chat, backends: [gpu-a, gpu-b], strategy: least-loaded, affinity: true }
`, 'health.yaml');
  const log = createLogger({ level: 'debug', write: (s) => { logs.push(...s.trimEnd().split('\n')); } });
  gw = await startGateway(config, new Secrets({ ALERT_HOOK: `http://127.0.0.1:${(hook.address() as AddressInfo).port}/hook` }), { host: '127.0.0.1', port: 0, log, dataDir: tempDir('fabric-health-') });
});

after(async () => {
  await gw.close(500);
  await fleet.close();
  udp.close();
  hook.close();
});

const backend = (name: string): BackendRuntime => gw.app.gateway.backends.get(name)!;

afterEach(async () => {
  for (const e of fleet.engines.values()) await e.setFault(null);
  for (const b of gw.app.gateway.backends.values()) {
    b.consecutiveFailures = 0; b.coolUntil = 0; b.trips = 0; b.state = 'up'; b.wakeRequestedAt = undefined; b.load = undefined;
  }
});

async function until(what: string, cond: () => boolean, ms = 3_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for: ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

async function health(): Promise<any> {
  return (await fetch(`${gw.url}/health`)).json();
}

test('at --log-level debug, each probe that changes nothing is a line of its own (backend, result, time)', async () => {
  await until('a probe line', () => { gw.app.log.flush(); return logs.some((l) => l.includes('"msg":"probe"') && l.includes('"backend":"motoko-bge"')); });
  const line = JSON.parse(logs.find((l) => l.includes('"msg":"probe"') && l.includes('"backend":"motoko-bge"'))!);
  assert.equal(line.level, 'debug');
  assert.equal(line.ok, true);
  assert.equal(typeof line.ms, 'number');
});

test('a killed backend is found by its probes and skipped: the role goes straight to its fallback; with every candidate cooling, a fast 503 with Retry-After', async () => {
  await fleet.get('primary').setFault({ kind: 'down' });
  await until('primary cooled down by its probes', () => backend('primary').state === 'down');
  const r = await post(gw.url, '/v1/chat/completions', chat('chat-main'));
  assert.equal(r.status, 200);
  assert.equal(r.headers.get('x-fabric-backend'), 'backup');
  assert.equal(r.headers.get('x-fabric-rerouted'), 'true');
  assert.equal(r.headers.get('x-fabric-attempts'), '1', 'no attempt was spent on the dead primary');
  const h = await health();
  const p = h.backends.find((b: any) => b.name === 'primary');
  assert.equal(p.status, 'down');
  assert.equal(p.circuit, 'open');
  assert.match(p.last_error, /health check: connection refused/);
  assert.equal(p.latency_ms, null);
  assert.equal(h.roles.find((x: any) => x.name === 'chat-main').serving, 'chat-backup');

  await fleet.get('backup').setFault({ kind: 'down' });
  await until('backup cooled down too', () => backend('backup').state === 'down');
  const started = performance.now();
  const all = await post(gw.url, '/v1/chat/completions', chat('chat-main'));
  const took = performance.now() - started;
  assert.equal(all.status, 503);
  assert.equal(all.json.error.code, 'no_backend_available');
  assert.ok(took < 1000, `answered in ${took.toFixed(0)} ms, without waiting on anything (the timeouts are 60 s)`);
  assert.match(all.headers.get('retry-after') ?? '', /^[1-9]\d*$/);
  assert.match(all.json.error.message, /cooling down/);
  assert.ok(Number(backend('primary').retryAfterSeconds(Date.now())) >= 1);

  await fleet.get('primary').setFault(null);
  await fleet.get('backup').setFault(null);
  await until('both probed back in after their cooldowns', () => backend('primary').state === 'up' && backend('backup').state === 'up');
  const back = await post(gw.url, '/v1/chat/completions', chat('chat-main'));
  assert.equal(back.headers.get('x-fabric-backend'), 'primary');
});

test('a hung backend: its probes time out, it is cooled down, and requests never wait on it', async () => {
  await fleet.get('primary').setFault({ kind: 'hang' });
  await until('primary cooled down after three probe timeouts', () => backend('primary').state === 'down');
  assert.match(backend('primary').lastError!, /timed out after 150 ms/);
  const started = performance.now();
  const r = await post(gw.url, '/v1/chat/completions', chat('chat-main'));
  assert.equal(r.headers.get('x-fabric-backend'), 'backup');
  assert.ok(performance.now() - started < 500);
});

test('a slow backend trips on live traffic, is probed back in after its cooldown, and cools down longer each time it keeps failing (flapping)', async () => {
  const slow = backend('slowpoke');
  await fleet.get('slowpoke').setFault({ kind: 'slow', factor: 100 });
  for (let i = 0; i < 3; i++) {
    const r = await post(gw.url, '/v1/chat/completions', chat('chat-slow'));
    assert.equal(r.headers.get('x-fabric-backend'), 'backup', 'each timed-out request still gets its answer from the fallback');
  }
  assert.equal(slow.state, 'down');
  const firstCooldown = slow.coolUntil - Date.now();
  assert.ok(firstCooldown > 200 && firstCooldown <= 400, `first cooldown ${firstCooldown} ms`);
  const fast = performance.now();
  const skipped = await post(gw.url, '/v1/chat/completions', chat('chat-slow'));
  assert.equal(skipped.headers.get('x-fabric-attempts'), '1');
  // attempts = 1 shows slowpoke was skipped, not tried; the bound is loose for a loaded CI machine.
  assert.ok(performance.now() - fast < 1000, 'no timeout waited while it cools down');
  // Its /health is fine (only generation is slow): the probe-back restores it…
  await until('probed back in', () => slow.state === 'up', 2_000);
  assert.equal(slow.trips, 1, '…but the trip is remembered');
  // Flapping: back in, and failing again (now with errors, which are quicker to see than timeouts).
  await fleet.get('slowpoke').setFault({ kind: 'error', status: 500 });
  for (let i = 0; i < 3; i++) await post(gw.url, '/v1/chat/completions', chat('chat-slow'));
  assert.equal(slow.state, 'down');
  const second = slow.coolUntil - Date.now();
  assert.ok(second > 600, `second cooldown ${second} ms: doubled`);
  await fleet.get('slowpoke').setFault(null);
  await until('back after the longer cooldown', () => slow.state === 'up', 3_000);
  const ok = await post(gw.url, '/v1/chat/completions', chat('chat-slow'));
  assert.equal(ok.headers.get('x-fabric-backend'), 'slowpoke');
  assert.equal(slow.trips, 0, 'a served request starts the escalation over');
});

test('a workstation that is off is "offline (expected)", information only; woken by its magic packet, traffic returns to it once it answers', async () => {
  const a = backend('armitage-qwen');
  await fleet.get('armitage').setFault({ kind: 'down' });
  await until('armitage seen off', () => a.state === 'down');
  let h = await health();
  const row = h.backends.find((b: any) => b.name === 'armitage-qwen');
  assert.equal(row.status, 'offline (expected)');
  assert.equal(row.node_state, 'off');
  assert.equal(h.nodes.find((n: any) => n.name === 'armitage').state, 'off');
  assert.equal(h.alert.level, 'info', 'a workstation off is not an outage');
  assert.match(h.alert.reasons.join(), /armitage-qwen is offline \(workstation off, expected\)/);

  // The request is served from the fallback chain, and on its way the gateway wakes the node.
  packets = [];
  const r = await post(gw.url, '/v1/chat/completions', chat('only-armitage'));
  assert.equal(r.headers.get('x-fabric-backend'), 'backup');
  await until('the magic packet arrives', () => packets.length > 0, 2_000);
  assert.deepEqual(packets, [magicPacket(ARMITAGE_MAC)]);
  const again = await post(gw.url, '/v1/chat/completions', chat('only-armitage'));
  assert.equal(again.headers.get('x-fabric-backend'), 'backup');
  const route = gw.app.gateway.table.resolve('only-armitage')!.route;
  assert.deepEqual(gw.fleet.wakeFor(route.members), [], 'rate-limited: one packet per min_interval');
  await new Promise((res) => setTimeout(res, 100));
  assert.equal(packets.length, 1, 'one packet, however many requests');
  h = await health();
  assert.equal(h.backends.find((b: any) => b.name === 'armitage-qwen').status, 'waking');
  assert.equal(h.nodes.find((n: any) => n.name === 'armitage').state, 'waking');

  // It boots: its cooldown is a minute, but a waking node is probed every few hundred ms.
  await fleet.get('armitage').setFault(null);
  await until('armitage answers its probes', () => a.state === 'up', 2_000);
  const back = await post(gw.url, '/v1/chat/completions', chat('only-armitage'));
  assert.equal(back.headers.get('x-fabric-backend'), 'armitage-qwen');
  assert.equal((await health()).nodes.find((n: any) => n.name === 'armitage').state, 'on');
});

test('a workstation that is on but whose engine answers with errors is down, not "offline (expected)": its machine answered', async () => {
  const a = backend('armitage-qwen');
  await fleet.get('armitage').setFault({ kind: 'error', status: 500 });
  try {
    await until('armitage cooled down', () => a.state === 'down');
    const h = await health();
    const row = h.backends.find((b: any) => b.name === 'armitage-qwen');
    assert.equal(row.status, 'down');
    assert.match(row.last_error ?? '', /answered HTTP 503/);
    assert.equal(h.nodes.find((n: any) => n.name === 'armitage').state, 'down');
    assert.doesNotMatch(h.alert.reasons.join(), /armitage-qwen is offline/);
    assert.match(h.alert.reasons.join(), /armitage-qwen.* is down/);
    // A machine that is on is not woken.
    packets = [];
    const route = gw.app.gateway.table.resolve('only-armitage')!.route;
    assert.deepEqual(gw.fleet.wakeFor(route.members), []);
  } finally {
    await fleet.get('armitage').setFault(null);
    // Its cooldown is a minute: brought back as a forced probe-back would, for the tests after.
    a.recordProbeSuccess(1, Date.now(), true);
  }
  assert.equal(a.state, 'up');
});

test('load-aware routing: least-loaded sends traffic away from a backend whose /metrics shows a queue', async () => {
  const ac = new AbortController();
  try {
    // Someone else's requests on gpu-a: one generating, two queued behind it.
    for (let i = 0; i < 3; i++) {
      void fetch(`${fleet.get('gpu-a').url}/v1/chat/completions`, {
        method: 'POST', headers: { 'content-type': 'application/json' }, signal: ac.signal,
        body: JSON.stringify({ model: 'm-shared', messages: [{ role: 'user', content: 'long job' }], max_tokens: 50 }),
      }).catch(() => {});
    }
    await until('gpu-a has a queue', () => fleet.get('gpu-a').stats().queued === 2);
    await gw.fleet.monitor.pollLoad();
    const h = await health();
    const a = h.backends.find((b: any) => b.name === 'gpu-a');
    assert.deepEqual([a.load.running, a.load.waiting, a.load.overloaded, a.load.source], [1, 2, true, 'vllm /metrics']);
    const served: string[] = [];
    for (let i = 0; i < 6; i++) {
      const r = await post(gw.url, '/v1/chat/completions', chat('chat-ll'));
      assert.equal(r.status, 200);
      served.push(r.headers.get('x-fabric-backend')!);
    }
    assert.deepEqual(served, Array(6).fill('gpu-b'));
  } finally {
    ac.abort();
  }
  await until('gpu-a drained', () => fleet.get('gpu-a').stats().active === 0 && fleet.get('gpu-a').stats().queued === 0);
  await gw.fleet.monitor.pollLoad();
  const bal = gw.app.gateway.table.resolve('chat-ll')!.route.balancer;
  const firsts = new Set([0, 1, 2, 3].map(() => bal.order()[0]!.name));
  assert.deepEqual([...firsts].sort(), ['gpu-a', 'gpu-b'], 'idle again: both share');
});

test('affinity (roles.NAME.affinity): the role\'s balancer keeps a conversation on one backend until it is overloaded', async () => {
  const bal = gw.app.gateway.table.resolve('chat-sticky')!.route.balancer;
  assert.equal(bal.wantsAffinityKey, true);
  const first = bal.order('conversation-1')[0]!;
  for (let i = 0; i < 4; i++) assert.equal(bal.order('conversation-1')[0], first);
  // Through the gateway: the same conversation (later turns repeat its opening) stays on one backend.
  const convo = (turn: number) => ({ model: 'chat-sticky', max_tokens: 3, messages: [
    { role: 'system', content: 'you are terse' }, { role: 'user', content: 'conversation 42' },
    ...Array.from({ length: turn }, (_, i) => [{ role: 'assistant', content: `answer ${i}` }, { role: 'user', content: `question ${i}` }]).flat(),
  ] });
  const servedBy = new Set<string>();
  for (let turn = 0; turn < 4; turn++) servedBy.add((await post(gw.url, '/v1/chat/completions', convo(turn))).headers.get('x-fabric-backend')!);
  assert.equal(servedBy.size, 1, `one backend for the conversation, got ${[...servedBy]}`);
  first.setLoad({ at: Date.now(), running: 1, waiting: 3, kvCacheUsage: 0.5, slots: undefined, loaded: undefined, source: 'test' });
  const moved = bal.order('conversation-1')[0]!;
  assert.notEqual(moved, first);
  assert.equal(bal.order('conversation-1')[0], moved);
});

test('alerts: the webhook is called once when the level changes, and once when it clears', async () => {
  hookBodies = [];
  await fleet.get('motoko').setFault({ kind: 'down' });
  await until('warning sent', () => hookBodies.length >= 1);
  await new Promise((r) => setTimeout(r, 300));
  assert.equal(hookBodies.length, 1, 'once per change, however many evaluations see it');
  assert.match(hookBodies[0]!.text, /WARNING \(was (ok|info)\)/);
  assert.match(hookBodies[0]!.text, /always-on embeddings backend motoko-bge .* is down/);
  await fleet.get('motoko').setFault(null);
  await until('cleared', () => hookBodies.length >= 2);
  assert.match(hookBodies[1]!.text, /(all clear|INFO) \(was warning\)/);
  assert.ok(logs.some((l) => l.includes('webhook called')));
  assert.ok(!logs.some((l) => l.includes('/hook')), 'the webhook URL (a secret) is never logged');
});

const fabric = (args: string[], env: NodeJS.ProcessEnv = {}) => runFabric(args, { PATH: process.env.PATH, ...env });

test('fabric health: one table, plain when piped; exit code by alert level', async () => {
  const ok = await fabric(['health', '--url', gw.url]);
  assert.equal(ok.code, 0, ok.stderr + ok.stdout);
  assert.doesNotMatch(ok.stdout, /\x1b\[/, 'no colour codes when piped');
  assert.match(ok.stdout, new RegExp(`gateway  ${gw.url.replace(/[.]/g, '\\.')}  up`));
  assert.match(ok.stdout, /BACKEND\s+STATUS\s+LATENCY\s+P95 \(5M\)\s+ENGINE\s+MODEL\s+LOAD\s+NODE\s+LAST ERROR/);
  assert.match(ok.stdout, /motoko-bge\s+up\s+\d+ ms\s+(-|[\d.]+ m?s)\s+vllm 0\.11\.0\s+BAAI\/bge-base-en-v1\.5 \(8192 ctx\)/);
  assert.match(ok.stdout, /level: OK/);

  await fleet.get('armitage').setFault({ kind: 'down' });
  await until('armitage off', () => backend('armitage-qwen').state === 'down');
  const off = await fabric(['health', '--url', gw.url]);
  assert.equal(off.code, 0, 'a workstation off is information only');
  assert.match(off.stdout, /armitage-qwen\s+offline \(expected\)/);
  assert.match(off.stdout, /level: INFO/);

  await fleet.get('motoko').setFault({ kind: 'down' });
  await until('motoko down', () => backend('motoko-bge').state === 'down');
  const warn = await fabric(['health', '--url', gw.url, '--json']);
  assert.equal(warn.code, 1, 'the always-on embeddings backend down is a warning');
  const j = JSON.parse(warn.stdout);
  assert.equal(j.alert.level, 'warning');
  assert.equal(j.exit_code, 1);
  assert.equal(j.backends.find((b: any) => b.name === 'motoko-bge').status, 'down');

  // Asked about one backend, it being down is a warning, though one chat backend down is information fleet-wide.
  await fleet.get('primary').setFault({ kind: 'down' });
  await until('primary down', () => backend('primary').state === 'down');
  const picked = await fabric(['health', 'primary'], { FABRIC_URL: gw.url });
  assert.equal(picked.code, 1, 'the gateway from $FABRIC_URL; the one backend asked about is down');
  assert.match(picked.stdout, /primary down/);

  const one = await fabric(['health', 'armitage', '--url', gw.url, '--json', '--watch', '--count', '2', '--interval', '100ms']);
  assert.equal(one.code, 0);
  const frames = one.stdout.trim().split('\n').map((l) => JSON.parse(l));
  assert.equal(frames.length, 2, 'two refreshes, one JSON line each');
  assert.deepEqual(frames[0].backends.map((b: any) => b.name), ['armitage-qwen'], 'a node name selects its backends');

  const port = await freePort();
  const down = await fabric(['health', '--url', `http://127.0.0.1:${port}`, '--timeout', '2s']);
  assert.equal(down.code, 2, 'gateway down is critical');
  assert.match(down.stdout, /level: CRITICAL/);
  assert.match(down.stdout, new RegExp(`gateway http://127\\.0\\.0\\.1:${port} is down: connection refused`));

  const byDefault = await fabric(['health', '--timeout', '2s']);
  assert.match(byDefault.stdout, /gateway {1,2}http:\/\/127\.0\.0\.1:4000 /, 'no --url, no $FABRIC_URL: the default address');

  const bad = await fabric(['health', 'nope', '--url', gw.url]);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /no backend or node named "nope"/);
});

test('fabric wake NODE sends the configured magic packet; --wait watches the node come up; usage errors exit 2', async () => {
  const dir = tempDir('fabric-wake-');
  const file = join(dir, 'fabric.yaml');
  writeFileSync(file, `
nodes:
  armitage: { power: workstation, wol: { mac: "${ARMITAGE_MAC}", broadcast: 127.0.0.1, port: ${(udp.address() as AddressInfo).port} } }
  motoko: { power: always-on }
backends:
  armitage-qwen: { engine: vllm, node: armitage, url: ${fleet.get('armitage').url}/v1, model: Qwen/Qwen2.5-7B-Instruct-AWQ }
roles:
  chat: { kind: chat, backends: [armitage-qwen] }
`);
  packets = [];
  const r = await fabric(['wake', 'armitage', '--config', file, '--wait', '--timeout', '5s']);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, new RegExp(`magic packet for armitage \\(${ARMITAGE_MAC}\\) sent to 127\\.0\\.0\\.1:\\d+`));
  assert.match(r.stdout, /armitage is up after [\d.]+s: armitage-qwen answering/);
  await until('packet seen', () => packets.length === 1);
  assert.deepEqual(packets[0], magicPacket(ARMITAGE_MAC));
  // From a machine of the LAN that holds none of the gateway's secrets (the master key, a cloud key).
  writeFileSync(file, readFileSync(file, 'utf8').replace('nodes:', 'gateway: { master_key: env:FABRIC_MASTER_KEY_NOT_HERE }\nnodes:')
    .replace('backends:\n', 'backends:\n  cloud: { engine: openai, url: https://api.openai.com/v1, model: gpt-4.1-mini, api_key: env:OPENAI_KEY_NOT_HERE }\n'));
  packets = [];
  const lan = await fabric(['wake', 'armitage', '--config', file]);
  assert.equal(lan.code, 0, lan.stderr);
  assert.match(lan.stdout, /magic packet for armitage/);
  await until('packet seen', () => packets.length === 1);

  const byMac = await fabric(['wake', '--mac', 'aa-bb-cc-dd-ee-ff', '--broadcast', '127.0.0.1', '--port', String((udp.address() as AddressInfo).port), '--json']);
  assert.equal(byMac.code, 0, byMac.stderr);
  assert.equal(JSON.parse(byMac.stdout).sent, true);
  await until('second packet', () => packets.length === 2);
  const plainMac = await fabric(['wake', '--mac', 'aa-bb-cc-dd-ee-ff', '--broadcast', '127.0.0.1', '--port', String((udp.address() as AddressInfo).port)]);
  assert.match(plainMac.stdout, /^magic packet for aa-bb-cc-dd-ee-ff sent to 127\.0\.0\.1:\d+\n$/, 'the MAC once');
  await until('third packet', () => packets.length === 3);

  const noWol = await fabric(['wake', 'motoko', '--config', file]);
  assert.equal(noWol.code, 2);
  assert.match(noWol.stderr, /node motoko has no wol block/);
  const unknown = await fabric(['wake', 'nowhere', '--config', file]);
  assert.equal(unknown.code, 2);
  assert.match(unknown.stderr, /no node named "nowhere"/);
});

test('fabric health, smoke and wake --help; listed in fabric --help', async () => {
  const top = await fabric(['--help']);
  for (const cmd of ['health', 'smoke', 'wake']) {
    assert.match(top.stdout, new RegExp(`^  ${cmd}\\s`, 'm'));
    const h = await fabric([cmd, '--help']);
    assert.equal(h.code, 0);
    assert.match(h.stdout, new RegExp(`^Usage: fabric ${cmd}`));
  }
  const bad = await fabric(['health', '--no-such-flag']);
  assert.equal(bad.code, 2);
  assert.equal(bad.stderr, 'fabric health: unknown option --no-such-flag (see fabric health --help)\n');
});

test('a gateway that cannot listen (the port is taken) stops its probes and store: nothing of it goes on running', async () => {
  // A backend that counts what reaches it: probes included.
  let hits = 0;
  const counter = createServer((_req, res) => { hits++; res.writeHead(200, { 'content-type': 'application/json' }).end('{"object":"list","data":[{"id":"m","object":"model"}]}'); });
  counter.listen(0, '127.0.0.1');
  await once(counter, 'listening');
  try {
    const { config } = parseFabricText(`
gateway:
  health_interval: 50ms
backends:
  counted: { engine: vllm, url: http://127.0.0.1:${(counter.address() as AddressInfo).port}/v1, model: m }
roles:
  chat: { kind: chat, backends: [counted] }
`, 'taken.yaml');
    const dataDir = tempDir('fabric-taken-');
    await assert.rejects(startGateway(config, new Secrets({}), { host: '127.0.0.1', port: gw.port, log: createLogger({ level: 'error', write: () => {} }), dataDir }), /EADDRINUSE/);
    const before = hits;
    await new Promise((r) => setTimeout(r, 400));
    assert.equal(hits, before, 'no probe ran after the failed start');
  } finally {
    counter.close();
  }
});

test('each engine\'s version and served context are shown in /health; a context_window past what the engine serves, and an Ollama older than 0.12.6 (which cuts long prompts in silence), are warned about', async () => {
  // The newer one has the model loaded, at 4,096 tokens (by some other client, at the server's default).
  let newLoaded = true;
  const versionReads = new Map<string, number>();
  const ollama = (version: string): Server => createServer((req, res) => {
    if (req.url === '/api/version') versionReads.set(version, (versionReads.get(version) ?? 0) + 1);
    const ps = version === '0.12.5' || !newLoaded ? [] : [{ name: 'qwen2.5:7b', model: 'qwen2.5:7b', context_length: 4096 }];
    const body = req.url === '/api/version' ? { version } : req.url === '/api/tags' ? { models: [{ name: 'qwen2.5:7b', model: 'qwen2.5:7b' }] } : req.url === '/api/ps' ? { models: ps } : undefined;
    if (body === undefined) res.writeHead(404).end('404 page not found');
    else res.writeHead(200, { 'content-type': 'application/json; charset=utf-8' }).end(JSON.stringify(body));
  }).listen(0, '127.0.0.1');
  const [old, current] = [ollama('0.12.5'), ollama('0.13.1')];
  await Promise.all([once(old, 'listening'), once(current, 'listening')]);
  const port = (s: Server): number => (s.address() as AddressInfo).port;
  const { config } = parseFabricText(`
gateway: { health_interval: 1h, health: { load_interval: 0 } }
backends:
  old-ollama: { engine: ollama, url: http://127.0.0.1:${port(old)}, model: "qwen2.5:7b" }
  new-ollama: { engine: ollama, url: http://127.0.0.1:${port(current)}, model: "qwen2.5:7b", context_window: 8192 }
  vllm: { engine: vllm, url: ${fleet.get('primary').url}/v1, model: m-primary, context_window: 32768 }
  llamacpp: { engine: llamacpp, url: ${fleet.get('backup').url}/v1, model: m-backup, context_window: 4096 }
roles:
  r: { kind: chat, backends: [old-ollama, new-ollama, vllm, llamacpp] }
`, 'versions.yaml');
  const lines: string[] = [];
  const g = await startGateway(config, new Secrets({}), { host: '127.0.0.1', port: 0, dataDir: tempDir('fabric-health-'), log: createLogger({ write: (s) => { lines.push(...s.trimEnd().split('\n')); } }) });
  try {
    await until('every backend probed', () => [...g.app.gateway.backends.values()].every((b) => b.engineVersion !== undefined));
    const h = (await (await fetch(`${g.url}/health`)).json()) as { backends: { name: string; engine_version: string | null; served_context: number | null }[] };
    assert.deepEqual(Object.fromEntries(h.backends.map((b) => [b.name, [b.engine_version, b.served_context]])), {
      'old-ollama': ['0.12.5', null], 'new-ollama': ['0.13.1', 4096], vllm: ['0.11.0', 8192], llamacpp: ['b7149-134e6940c', 8192],
    });
    // Ollama loads the model with what each request asks (num_ctx): its 4,096 now is no limit on the 8,192 configured.
    assert.equal(g.app.gateway.backends.get('new-ollama')!.contextWindow(), 8192);
    // The vLLM engine serves 8,192 tokens where the config says 32,768: said once; llama.cpp's 4,096 is within its 8,192.
    await until('the context warning written', () => lines.some((l) => /context_window is 32768/.test(l)));
    assert.match(lines.find((l) => /context_window is 32768/.test(l))!, /backend vllm: .*at most 8192 tokens per request \(max_model_len\).*set context_window to 8192/);
    // Probed and asked again: nothing new, nothing said again.
    const vllm = g.app.gateway.backends.get('vllm')!;
    const oldOllama = g.app.gateway.backends.get('old-ollama')!;
    await g.fleet.monitor.probe(vllm);
    const reads = versionReads.get('0.12.5')!;
    oldOllama.describedAt = undefined;
    await g.fleet.monitor.probe(oldOllama);
    await until('the old Ollama asked its version again', () => versionReads.get('0.12.5')! > reads);
    await new Promise((r) => setTimeout(r, 50));
    g.app.log.flush();
    assert.equal(lines.filter((l) => /context_window is \d+ but/.test(l)).length, 1);
    assert.equal(lines.filter((l) => /ignores truncate and shift/.test(l)).length, 1);
    assert.equal(vllm.contextWindow(), 8192, 'the engine\'s own figure is the one held to');
    // The Ollama model unloaded: nothing loaded, nothing shown.
    newLoaded = false;
    await g.fleet.monitor.probe(g.app.gateway.backends.get('new-ollama')!);
    assert.equal(g.app.gateway.backends.get('new-ollama')!.servedContext, undefined);
    await until('the warning written', () => lines.some((l) => /ignores truncate and shift/.test(l)));
    const warned = lines.filter((l) => /ignores truncate and shift/.test(l));
    assert.equal(warned.length, 1, lines.join('\n'));
    assert.match(warned[0]!, /old-ollama: Ollama 0\.12\.5 .*upgrade it to 0\.12\.6 or later/);
    // A reload builds new runtimes, which learn the same facts: not said again.
    g.reload(config, new Secrets({}));
    await until('the reloaded backends probed', () => [...g.app.gateway.backends.values()].every((b) => b.engineVersion !== undefined && (b.config.engine === 'ollama' || b.servedContext !== undefined)));
    await new Promise((r) => setTimeout(r, 50));
    g.app.log.flush();
    assert.equal(lines.filter((l) => /context_window is \d+ but/.test(l)).length, 1, 'the context warning, once across the reload');
    assert.equal(lines.filter((l) => /ignores truncate and shift/.test(l)).length, 1, 'the version warning, once across the reload');
  } finally {
    await g.close(200);
    old.close();
    current.close();
  }
});

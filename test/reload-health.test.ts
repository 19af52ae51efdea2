// A config reload builds new backend runtimes; a backend the reload leaves as it was (same
// name, engine, URL, model and key) keeps what the gateway knew of it: down and cooling
// (a hung one is not waited on again), rate limited by its Retry-After, its requests in
// flight; the fleet's alert level does not flip. A backend whose URL changed starts fresh.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { parseFabricText } from '../src/config/load.ts';
import { Secrets } from '../src/config/env-file.ts';
import type { BackendRuntime } from '../src/core/backend.ts';
import { Gateway } from '../src/core/gateway.ts';
import { createLogger } from '../src/core/log.ts';
import { FleetHealth } from '../src/health/fleet.ts';
import { startFabric, post, chat, type Fabric } from './helpers.ts';

const FAST = { ttftMs: 1, tokensPerSecond: 2000, maxConcurrency: 8, maxQueue: 8 };

const runtime = (f: Fabric, name: string): BackendRuntime => f.gw.app.gateway.backends.get(name)!;
const reload = (f: Fabric, yaml: string, env: Record<string, string> = {}): void => f.gw.reload(parseFabricText(yaml, 'test.yaml').config, new Secrets(env));
const healthOf = async (f: Fabric, name: string): Promise<any> => ((await (await fetch(`${f.url}/health`)).json()) as { backends: { name: string }[] }).backends.find((b) => b.name === name);

async function until(what: string, cond: () => boolean, ms = 5_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for: ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

test('a hung backend cooled down stays cooled down across a reload that leaves it as it was: the next stream goes straight to the fallback, without waiting out first_byte', async () => {
  const yaml = (url: (n: string) => string): string => `
gateway:
  health: { failure_threshold: 2, cooldown: 1m }
backends:
  hung: { engine: vllm, url: ${url('hung')}/v1, model: m, max_retries: 0, timeouts: { first_byte: 1500ms } }
  spare: { engine: vllm, url: ${url('spare')}/v1, model: m }
roles:
  chat: { kind: chat, backends: [hung], fallbacks: [chat-spare] }
  chat-spare: { kind: chat, backends: [spare] }
`;
  const f = await startFabric({ engines: [{ name: 'hung', protocol: 'vllm', model: 'm', kind: 'chat', timing: FAST }, { name: 'spare', protocol: 'vllm', model: 'm', kind: 'chat', timing: FAST }], yaml });
  try {
    const url = (n: string): string => f.fleet.get(n).url;
    await f.fleet.get('hung').setFault({ kind: 'hang' });
    for (let i = 0; i < 2; i++) {
      const r = await post(f.url, '/v1/chat/completions', chat('chat', 'hi', { stream: true }));
      assert.equal(r.headers.get('x-fabric-backend'), 'spare', 'after first_byte, from the fallback');
    }
    assert.equal(runtime(f, 'hung').state, 'down');
    const sent = f.fleet.get('hung').stats().requests;
    // The same config, a comment added (as an editor's save, or SIGHUP, would reload it).
    reload(f, `${yaml(url)}# reviewed\n`);
    const started = performance.now();
    const r = await post(f.url, '/v1/chat/completions', chat('chat', 'hi', { stream: true }));
    const took = performance.now() - started;
    assert.equal(r.status, 200, r.text);
    assert.equal(r.headers.get('x-fabric-backend'), 'spare');
    assert.equal(r.headers.get('x-fabric-attempts'), '1', 'the cooled-down backend was skipped, not tried');
    assert.equal(f.fleet.get('hung').stats().requests, sent, 'nothing sent to the hung backend after the reload');
    assert.ok(took < 1_000, `answered in ${took.toFixed(0)} ms, without waiting out the 1.5 s first_byte`);
    const h = await healthOf(f, 'hung');
    assert.equal(h.status, 'down');
    assert.equal(h.circuit, 'open');
    assert.equal(h.consecutive_failures, 2);
    assert.ok(h.cooldown_remaining_s > 50, `still cooling: ${h.cooldown_remaining_s} s left`);
    assert.match(h.last_error, /first-byte timeout/);
  } finally {
    await f.close();
  }
});

test('a backend that answered 429 with Retry-After: 300 is still skipped after a reload; a reload that lowers max_cooldown cuts the wait to it', async () => {
  const yaml = (url: (n: string) => string, health = ''): string => `
gateway:
  ${health}
backends:
  limited: { engine: vllm, url: ${url('limited')}/v1, model: m }
  spare: { engine: vllm, url: ${url('spare')}/v1, model: m }
roles:
  chat: { kind: chat, backends: [limited], fallbacks: [chat-spare] }
  chat-spare: { kind: chat, backends: [spare] }
`;
  const f = await startFabric({ engines: [{ name: 'limited', protocol: 'vllm', model: 'm', kind: 'chat', timing: FAST }, { name: 'spare', protocol: 'vllm', model: 'm', kind: 'chat', timing: FAST }], yaml });
  try {
    const url = (n: string): string => f.fleet.get(n).url;
    await f.fleet.get('limited').setFault({ kind: 'rate-limit', retryAfterS: 300 });
    const first = await post(f.url, '/v1/chat/completions', chat('chat'));
    assert.equal(first.headers.get('x-fabric-backend'), 'spare');
    assert.equal(f.fleet.get('limited').stats().requests, 1);
    reload(f, `${yaml(url)}# reviewed\n`);
    const r = await post(f.url, '/v1/chat/completions', chat('chat'));
    assert.equal(r.status, 200, r.text);
    assert.equal(r.headers.get('x-fabric-backend'), 'spare');
    assert.equal(r.headers.get('x-fabric-attempts'), '1');
    assert.equal(f.fleet.get('limited').stats().requests, 1, 'not asked again after the reload: it asked for 300 s');
    const h = await healthOf(f, 'limited');
    assert.ok(h.rate_limited_remaining_s > 290 && h.rate_limited_remaining_s <= 300, `rate limited for ${h.rate_limited_remaining_s} s more`);
    assert.equal(h.consecutive_failures, 0);
    // The new policy caps what a backend may ask for at 10 s: the carried wait is cut to it.
    reload(f, yaml(url, 'health: { max_cooldown: 10s }'));
    const cut = await healthOf(f, 'limited');
    assert.ok(cut.rate_limited_remaining_s > 0 && cut.rate_limited_remaining_s <= 10, `rate limited for ${cut.rate_limited_remaining_s} s more`);
  } finally {
    await f.close();
  }
});

test('a reload that points a backend at another URL starts it fresh; a backend it leaves as it was stays down', async () => {
  const yaml = (url: (n: string) => string, aAt: string): string => `
gateway:
  health: { failure_threshold: 1, cooldown: 1m }
backends:
  a: { engine: vllm, url: ${url(aAt)}/v1, model: m, max_retries: 0 }
  keep: { engine: vllm, url: ${url('keep')}/v1, model: m, max_retries: 0 }
  spare: { engine: vllm, url: ${url('spare')}/v1, model: m }
roles:
  chat-a: { kind: chat, backends: [a], fallbacks: [chat-spare] }
  chat-keep: { kind: chat, backends: [keep], fallbacks: [chat-spare] }
  chat-spare: { kind: chat, backends: [spare] }
`;
  const engines = ['a1', 'a2', 'keep', 'spare'].map((name) => ({ name, protocol: 'vllm' as const, model: 'm', kind: 'chat' as const, timing: FAST }));
  const f = await startFabric({ engines, yaml: (url) => yaml(url, 'a1') });
  try {
    const url = (n: string): string => f.fleet.get(n).url;
    await f.fleet.get('a1').setFault({ kind: 'down' });
    await f.fleet.get('keep').setFault({ kind: 'down' });
    for (const role of ['chat-a', 'chat-keep']) assert.equal((await post(f.url, '/v1/chat/completions', chat(role))).headers.get('x-fabric-backend'), 'spare');
    assert.deepEqual([runtime(f, 'a').state, runtime(f, 'keep').state], ['down', 'down']);
    // a moves to another server (a1 is still down; a2 answers).
    reload(f, yaml(url, 'a2'));
    const a = runtime(f, 'a');
    assert.deepEqual([a.state, a.consecutiveFailures, a.coolUntil, a.trips, a.lastError], ['unknown', 0, 0, 0, undefined], 'another server: nothing known of it');
    assert.equal(runtime(f, 'keep').state, 'down');
    const toA = await post(f.url, '/v1/chat/completions', chat('chat-a'));
    assert.equal(toA.headers.get('x-fabric-backend'), 'a');
    assert.equal(f.fleet.get('a2').stats().requests, 1, 'served by the new URL at once');
    const toKeep = await post(f.url, '/v1/chat/completions', chat('chat-keep'));
    assert.equal(toKeep.headers.get('x-fabric-backend'), 'spare');
    assert.equal(toKeep.headers.get('x-fabric-attempts'), '1');
  } finally {
    await f.close();
  }
});

test('a reload that changes nothing about the backends calls no alert webhook: two backends down are still a warning', async () => {
  const bodies: { level: string }[] = [];
  const hook = createServer((req, res) => {
    let raw = '';
    req.on('data', (c) => { raw += c; });
    req.on('end', () => { bodies.push(JSON.parse(raw)); res.end('ok'); });
  });
  hook.listen(0, '127.0.0.1');
  await once(hook, 'listening');
  const env = { ALERT_HOOK: `http://127.0.0.1:${(hook.address() as AddressInfo).port}/hook` };
  const yaml = (url: (n: string) => string): string => `
gateway:
  health: { failure_threshold: 1, cooldown: 1m }
  alerts: { webhook: env:ALERT_HOOK, format: json, interval: 20ms, min_interval: 0ms, notify: warning }
backends:
  x: { engine: vllm, url: ${url('x')}/v1, model: m, max_retries: 0 }
  y: { engine: vllm, url: ${url('y')}/v1, model: m, max_retries: 0 }
  spare: { engine: vllm, url: ${url('spare')}/v1, model: m }
roles:
  chat-x: { kind: chat, backends: [x], fallbacks: [chat-spare] }
  chat-y: { kind: chat, backends: [y], fallbacks: [chat-spare] }
  chat-spare: { kind: chat, backends: [spare] }
`;
  const engines = ['x', 'y', 'spare'].map((name) => ({ name, protocol: 'vllm' as const, model: 'm', kind: 'chat' as const, timing: FAST }));
  const f = await startFabric({ engines, yaml, env });
  try {
    const url = (n: string): string => f.fleet.get(n).url;
    await f.fleet.get('x').setFault({ kind: 'down' });
    await f.fleet.get('y').setFault({ kind: 'down' });
    for (const role of ['chat-x', 'chat-y']) await post(f.url, '/v1/chat/completions', chat(role));
    await until('the warning reported', () => bodies.length === 1);
    assert.equal(bodies[0]!.level, 'warning');
    reload(f, `${yaml(url)}# reviewed\n`, env);
    // Many times the alert interval: a false "ok (was warning)" would have been called by now.
    await new Promise((r) => setTimeout(r, 500));
    assert.deepEqual(bodies.map((b) => b.level), ['warning'], 'no webhook call for the reload');
    assert.equal(f.gw.fleet.alertState().level, 'warning');
  } finally {
    await f.close();
    hook.close();
  }
});

test('requests in flight at a reload count on the new runtime until they end: least-outstanding sends the next request to the idle backend', async () => {
  const yaml = (url: (n: string) => string): string => `
backends:
  busy: { engine: vllm, url: ${url('busy')}/v1, model: m }
  idle: { engine: vllm, url: ${url('idle')}/v1, model: m }
roles:
  chat: { kind: chat, backends: [busy, idle], strategy: least-outstanding }
`;
  const f = await startFabric({
    engines: [{ name: 'busy', protocol: 'vllm', model: 'm', kind: 'chat', timing: { ...FAST, ttftMs: 1_500 } }, { name: 'idle', protocol: 'vllm', model: 'm', kind: 'chat', timing: FAST }],
    yaml,
  });
  try {
    const url = (n: string): string => f.fleet.get(n).url;
    // Equal loads: a fresh balancer tries busy first.
    const slow = post(f.url, '/v1/chat/completions', chat('chat'));
    await until('the slow request running on busy', () => runtime(f, 'busy').outstanding === 1);
    const old = runtime(f, 'busy');
    reload(f, `${yaml(url)}# reviewed\n`);
    assert.notEqual(runtime(f, 'busy'), old, 'new runtimes');
    assert.equal(runtime(f, 'busy').outstanding, 1, 'the old runtime\'s request counts on the new one');
    const next = await post(f.url, '/v1/chat/completions', chat('chat'));
    assert.equal(next.headers.get('x-fabric-backend'), 'idle');
    const r = await slow;
    assert.equal(r.headers.get('x-fabric-backend'), 'busy');
    await until('the count back to 0 when it ends', () => runtime(f, 'busy').outstanding === 0);
  } finally {
    await f.close();
  }
});

test('a node being woken is still probed often after a reload (its backends that stayed as they were)', async () => {
  const yaml = (bAt: number): string => `
backends:
  a: { engine: vllm, url: http://127.0.0.1:9/v1, model: m }
  b: { engine: vllm, url: http://127.0.0.1:${bAt}/v1, model: m }
roles:
  chat: { kind: chat, backends: [a, b] }
`;
  const secrets = new Secrets({});
  const g1 = new Gateway(parseFabricText(yaml(9), 'test.yaml').config, secrets);
  const g2 = new Gateway(parseFabricText(yaml(7), 'test.yaml').config, secrets);
  const fleet = new FleetHealth(g1, secrets, { log: createLogger({ write: () => {} }), alerts: false });
  try {
    fleet.monitor.expedite(g1.backends.values(), 60_000);
    g2.carryOver(g1);
    fleet.attach(g2, secrets);
    assert.ok(fleet.monitor.expeditedFor(g2.backends.get('a')!) > 50_000, 'the same server: still expedited');
    assert.equal(fleet.monitor.expeditedFor(g2.backends.get('b')!), 0, 'moved elsewhere: not');
  } finally {
    fleet.stop();
    await g1.close();
    await g2.close();
  }
});

test('conversations pinned by affinity stay on their backend across a reload that leaves it as it was (its prefix cache is there); one whose backend changed starts afresh', async () => {
  const yaml = (url: (n: string) => string, gpuB = 'm'): string => `
backends:
  gpu-a: { engine: vllm, url: ${url('gpu-a')}/v1, model: m }
  gpu-b: { engine: vllm, url: ${url('gpu-b')}/v1, model: ${gpuB} }
roles:
  chat: { kind: chat, backends: [gpu-a, gpu-b], affinity: true }
`;
  const f = await startFabric({ engines: [{ name: 'gpu-a', protocol: 'vllm', model: 'm', kind: 'chat', timing: FAST }, { name: 'gpu-b', protocol: 'vllm', model: 'm', extraModels: ['m2'], kind: 'chat', timing: FAST }], yaml });
  try {
    const url = (n: string): string => f.fleet.get(n).url;
    const served = async (conv: string): Promise<string> => {
      const r = await post(f.url, '/v1/chat/completions', chat('chat', `conversation ${conv}`));
      assert.equal(r.status, 200, r.text);
      return r.headers.get('x-fabric-backend')!;
    };
    const convs = ['one', 'two', 'three', 'four', 'five', 'six'];
    const before = new Map<string, string>();
    for (const c of convs) before.set(c, await served(c));
    assert.deepEqual(new Set(before.values()), new Set(['gpu-a', 'gpu-b']), 'spread over both');
    reload(f, `${yaml(url)}# reviewed\n`);
    for (const c of convs) assert.equal(await served(c), before.get(c), `${c} stays where it was`);
    // gpu-b now serves another model: another server as far as affinity goes; its conversations are placed afresh.
    reload(f, yaml(url, 'm2'));
    const onA = convs.filter((c) => before.get(c) === 'gpu-a');
    for (const c of onA) assert.equal(await served(c), 'gpu-a', `${c} stays on gpu-a`);
  } finally {
    await f.close();
  }
});

// `fabric serve` as a process under a steady load: config reloads (SIGHUP and file change)
// and SIGTERM drains fail no request; several workers share one port and a dead one is
// replaced. Loads are bounded: a few concurrent clients for a few seconds, on loopback.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Agent, request } from 'undici';
import { startFleet, type SimFleet } from '../src/sim/fleet.ts';
import { schedulingOf } from '../src/core/scheduling.ts';
import { tempDir } from './support/temp-dir.ts';

const MAIN = new URL('../src/cli/main.ts', import.meta.url).pathname;
const FAST = { ttftMs: 2, tokensPerSecond: 500, maxConcurrency: 64, maxQueue: 256 };

let fleet: SimFleet;
let dir: string;

before(async () => {
  fleet = await startFleet([
    { name: 'blue', protocol: 'vllm', model: 'blue-model', kind: 'chat', timing: FAST },
    { name: 'green', protocol: 'vllm', model: 'green-model', kind: 'chat', timing: FAST },
    { name: 'slow', protocol: 'vllm', model: 'slow-model', kind: 'chat', timing: { ttftMs: 50, tokensPerSecond: 20, maxConcurrency: 64, maxQueue: 256 } },
  ]);
  dir = tempDir('fabric-serve-');
});

after(async () => { await fleet.close(); });

function configYaml(chatBackend: 'blue' | 'green', extra = ''): string {
  return `
gateway:
  health_interval: 1h
backends:
  blue: { engine: vllm, url: ${fleet.get('blue').url}/v1, model: blue-model }
  green: { engine: vllm, url: ${fleet.get('green').url}/v1, model: green-model }
  slow: { engine: vllm, url: ${fleet.get('slow').url}/v1, model: slow-model }
roles:
  chat: { kind: chat, backends: [${chatBackend}] }
  slow-chat: { kind: chat, backends: [slow] }
${extra}`;
}

interface Served { proc: ChildProcess; url: string; out: () => string; waitFor: (re: RegExp, ms?: number) => Promise<RegExpExecArray> }

/** `fabric serve` started, not yet waited for (`url` is empty until it listens). */
function start(file: string, args: string[] = [], env: Record<string, string> = {}): Served {
  const proc = spawn(process.execPath, [MAIN, 'serve', '--config', file, '--port', '0', ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, FABRIC_CONFIG: '', ...env } });
  let out = '';
  proc.stdout!.setEncoding('utf8');
  proc.stderr!.setEncoding('utf8');
  proc.stdout!.on('data', (c: string) => { out += c; });
  proc.stderr!.on('data', (c: string) => { out += c; });
  const waitFor = async (re: RegExp, ms = 15_000): Promise<RegExpExecArray> => {
    const until = Date.now() + ms;
    for (;;) {
      const m = re.exec(out);
      if (m !== null) return m;
      if (Date.now() > until || proc.exitCode !== null) throw new Error(`no ${re} in:\n${out}`);
      await new Promise((r) => setTimeout(r, 20));
    }
  };
  return { proc, url: '', out: () => out, waitFor };
}

async function serve(file: string, args: string[] = [], env: Record<string, string> = {}): Promise<Served> {
  const s = start(file, args, env);
  const m = await s.waitFor(/listening on (http:\/\/[\d.:]+)/);
  return { ...s, url: m[1]! };
}

const body = (model: string, maxTokens = 4, stream = false): string => JSON.stringify({ model, messages: [{ role: 'user', content: 'hi' }], max_tokens: maxTokens, stream });

/** Closed-loop clients: each sends its next request when the last one answers, until stopped. */
function steadyLoad(url: string, clients: number, model = 'chat'): { stop: () => Promise<{ ok: number; failed: string[]; backends: Map<string, number> }> } {
  const dispatcher = new Agent({ connections: clients, keepAliveTimeout: 10_000 });
  let running = true;
  const failed: string[] = [];
  const backends = new Map<string, number>();
  let ok = 0;
  const loop = async (): Promise<void> => {
    while (running) {
      try {
        const r = await request(`${url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: body(model), dispatcher });
        const text = await r.body.text();
        if (r.statusCode !== 200) failed.push(`${r.statusCode} ${text.slice(0, 200)}`);
        else {
          ok++;
          const b = String(r.headers['x-fabric-backend']);
          backends.set(b, (backends.get(b) ?? 0) + 1);
        }
      } catch (e) {
        failed.push(String(e));
      }
    }
  };
  const loops = Array.from({ length: clients }, loop);
  let stopped: Promise<{ ok: number; failed: string[]; backends: Map<string, number> }> | undefined;
  return {
    stop() {
      return stopped ??= (async () => {
        running = false;
        await Promise.all(loops);
        await dispatcher.close();
        return { ok, failed, backends };
      })();
    },
  };
}

const pause = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

test('reloads under a steady load fail no request: SIGHUP, a file change, and an invalid config refused while the old one keeps serving', async () => {
  const file = join(dir, 'reload.yaml');
  writeFileSync(file, configYaml('blue'));
  const s = await serve(file);
  const load = steadyLoad(s.url, 6);
  try {
    await pause(500);
    // With a warning: said on reload as at start.
    writeFileSync(file, configYaml('green', '  ruled: { kind: chat, backends: [blue], rules: [{ if_input_has: tools, route_to: chat }, { if_input_has: [tools, image], route_to: chat }] }\n'));
    s.proc.kill('SIGHUP');
    await s.waitFor(/config reloaded/);
    await s.waitFor(/warning: roles\.ruled\.rules\[1\]: never applies: rules\[0\] comes first/);
    await pause(500);
    // A broken file: refused, with its reason; the previous config keeps serving.
    writeFileSync(file, configYaml('green', 'roles:\n  oops: {}\n'));
    s.proc.kill('SIGHUP');
    await s.waitFor(/config reload refused/);
    // Until a reload takes, the refusal shows where monitoring looks: /health (its reason, by
    // file:line), the alert level (a warning: a restart would refuse the file), /metrics, fabric health.
    const health = (await (await fetch(`${s.url}/health`)).json()) as { config: { reload_refused: string; loaded_at: string }; alert: { level: string; reasons: string[] } };
    assert.match(health.config.reload_refused, /reload\.yaml:\d+:\d+: error: .*duplicate key "roles"/);
    assert.equal(health.alert.level, 'warning');
    assert.match(health.alert.reasons[0]!, /^config reload refused at .*; still serving the config loaded at /);
    assert.match(await (await fetch(`${s.url}/metrics`)).text(), /^fabric_config_reload_refused 1$/m);
    // Not spawnSync: this process must go on reading the gateway's log pipe meanwhile.
    const cli = await new Promise<{ code: number | null; out: string }>((resolve) => {
      execFile(process.execPath, [MAIN, 'health', '--url', s.url], { encoding: 'utf8' }, (e, stdout, stderr) => resolve({ code: e === null ? 0 : (e as { code?: number }).code ?? null, out: stdout + stderr }));
    });
    assert.equal(cli.code, 1, cli.out);
    assert.match(cli.out, /config reload refused at/);
    await pause(300);
    // Back to blue by a change of the file alone (the watcher), no signal.
    writeFileSync(file, configYaml('blue'));
    const reloads = (s.out().match(/config reloaded/g) ?? []).length;
    await s.waitFor(new RegExp(`(config reloaded[\\s\\S]*){${reloads + 1}}`));
    const mended = (await (await fetch(`${s.url}/health`)).json()) as { config: { reload_refused: string | null } };
    assert.equal(mended.config.reload_refused, null);
    assert.match(await (await fetch(`${s.url}/metrics`)).text(), /^fabric_config_reload_refused 0$/m);
    await pause(500);
    // Saved as editors save: a new file renamed over the old one, twice (a watch on the first
    // inode would see the first replacement only).
    for (const [i, color] of (['green', 'blue'] as const).entries()) {
      writeFileSync(`${file}.tmp`, configYaml(color));
      renameSync(`${file}.tmp`, file);
      await s.waitFor(new RegExp(`(config reloaded[\\s\\S]*){${reloads + 2 + i}}`));
      await pause(300);
    }
    const r = await load.stop();
    assert.deepEqual(r.failed, [], 'no request failed across the reloads');
    assert.ok(r.ok > 100, `a steady load ran (${r.ok} requests)`);
    assert.ok((r.backends.get('green') ?? 0) > 0 && (r.backends.get('blue') ?? 0) > 0, 'traffic moved to green and back to blue');
    const last = await request(`${s.url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: body('chat') });
    await last.body.text();
    assert.equal(last.headers['x-fabric-backend'], 'blue');
  } finally {
    await load.stop();
    s.proc.kill('SIGTERM');
    await once(s.proc, 'exit');
  }
});

const canRaise = process.platform === 'linux' && process.getuid?.() === 0;

test('gateway.realtime: serve raises its event loop to SCHED_FIFO 1 and says so; a reload that turns it off lowers it', { skip: canRaise ? false : 'Linux, as root (CAP_SYS_NICE)' }, async () => {
  const file = join(dir, 'realtime.yaml');
  const withRealtime = (on: boolean): string => configYaml('blue').replace('gateway:\n', `gateway:\n  realtime: ${on}\n`);
  writeFileSync(file, withRealtime(true));
  const s = await serve(file);
  try {
    await s.waitFor(/gateway\.realtime: the event loop runs at SCHED_FIFO 1/);
    const pid = s.proc.pid!;
    assert.deepEqual(schedulingOf(pid), { policy: 1, priority: 1 });
    const gauge = async (): Promise<string | undefined> => /^fabric_event_loop_realtime (\d)$/m.exec(await (await fetch(`${s.url}/metrics`)).text())?.[1];
    assert.equal(await gauge(), '1', 'the metrics say so');
    const r = await request(`${s.url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: body('chat') });
    assert.equal(r.statusCode, 200, await r.body.text());
    writeFileSync(file, withRealtime(false));
    s.proc.kill('SIGHUP');
    await s.waitFor(/gateway\.realtime: the event loop is back at normal priority/);
    assert.deepEqual(schedulingOf(pid), { policy: 0, priority: 0 });
    assert.equal(await gauge(), '0');
  } finally {
    s.proc.kill('SIGTERM');
    await once(s.proc, 'exit');
  }
});

test('SIGTERM drains: readiness fails at once, in-flight streams finish, the process exits 0', async () => {
  const file = join(dir, 'drain.yaml');
  writeFileSync(file, configYaml('blue'));
  const s = await serve(file, ['--grace', '10']);
  // Ten streams of 20 tokens at 20 tokens/s: about a second each, all in flight at SIGTERM.
  const streams = Array.from({ length: 10 }, async () => {
    const r = await request(`${s.url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: body('slow-chat', 20, true) });
    return { status: r.statusCode, text: await r.body.text() };
  });
  await s.waitFor(/./);
  for (let i = 0; i < 100 && fleet.get('slow').stats().active < 10; i++) await pause(20);
  assert.equal(fleet.get('slow').stats().active, 10, 'all ten streams are running');
  const exited = once(s.proc, 'exit');
  const sigterm = Date.now();
  s.proc.kill('SIGTERM');
  await s.waitFor(/draining/);
  // No new connections once draining.
  await assert.rejects(request(`${s.url}/health/ready`), /ECONNREFUSED|ECONNRESET|other side closed|SocketError/);
  const done = await Promise.all(streams);
  for (const d of done) {
    assert.equal(d.status, 200);
    assert.ok(d.text.trimEnd().endsWith('data: [DONE]'), `stream finished: ${d.text.slice(-120)}`);
    assert.ok(!d.text.includes('"error"'));
  }
  const [code] = await exited;
  assert.equal(code, 0);
  assert.ok(Date.now() - sigterm < 8_000, `exited once the streams were done, not at the end of the 10 s grace (${Date.now() - sigterm} ms)`);
});

test('SIGTERM past the grace: what is still running is cut, logged and recorded as the gateway\'s 503 (shutting_down), not as a client that left', async () => {
  const file = join(dir, 'drain-cut.yaml');
  writeFileSync(file, configYaml('blue'));
  const s = await serve(file, ['--grace', '1']);
  // A backend that never answers: the stream waits for its first byte far past the grace.
  await fleet.get('slow').setFault({ kind: 'hang' });
  after(() => fleet.get('slow').setFault(null));
  const before = fleet.get('slow').requests().length;
  const stream = request(`${s.url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: body('slow-chat', 200, true) })
    .then(async (r) => { await r.body.text(); }, () => undefined).catch(() => undefined);
  for (let i = 0; i < 100 && fleet.get('slow').requests().length === before; i++) await pause(20);
  const exited = once(s.proc, 'exit');
  s.proc.kill('SIGTERM');
  const [code] = await exited;
  await stream;
  await fleet.get('slow').setFault(null);
  assert.equal(code, 0);
  assert.match(s.out(), /drain: the grace of 1s ran out/);
  const line = s.out().split('\n').find((l) => l.includes('"msg":"request"') && l.includes('slow-chat'));
  assert.ok(line !== undefined, s.out());
  const rec = JSON.parse(line) as { status: number; code: string; level: string };
  assert.deepEqual([rec.status, rec.code, rec.level], [503, 'shutting_down', 'warn']);
});

test('SIGTERM past the grace: a stream already begun ends with a shutting_down error event (Anthropic\'s error event in a Messages stream), recorded as its 200 with that code', async () => {
  const file = join(dir, 'drain-cut-stream.yaml');
  writeFileSync(file, configYaml('blue'));
  const s = await serve(file, ['--grace', '1']);
  // A stream that stalls after its first chunks (the idle timeout, 30 s, is far past the grace).
  await fleet.get('slow').setFault({ kind: 'stall', afterChunks: 3 });
  after(() => fleet.get('slow').setFault(null));
  const open = (path: string, b: string): Promise<{ status: number; text: string }> => request(`${s.url}${path}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: b })
    .then(async (r) => ({ status: r.statusCode, text: await r.body.text().catch((e: Error) => `(body failed: ${e.message})`) }));
  const stream = open('/v1/chat/completions', body('slow-chat', 400, true));
  const messages = open('/v1/messages', JSON.stringify({ model: 'slow-chat', max_tokens: 400, stream: true, messages: [{ role: 'user', content: 'hi' }] }));
  for (let i = 0; i < 100 && fleet.get('slow').stats().active < 2; i++) await pause(20);
  await pause(300);
  const exited = once(s.proc, 'exit');
  s.proc.kill('SIGTERM');
  const m = await messages;
  assert.equal(m.status, 200);
  assert.match(m.text, /"type":"text_delta"/, 'tokens came first');
  assert.match(m.text, /event: error\ndata: \{"type":"error","error":\{"type":"overloaded_error","message":"the gateway is shutting down[^"]*"\}\}\n\n$/, m.text.slice(-300));
  assert.doesNotMatch(m.text, /message_stop/);
  const got = await stream;
  assert.equal((await exited)[0], 0);
  await fleet.get('slow').setFault(null);
  assert.equal(got.status, 200);
  assert.match(got.text, /"delta":\{"content"/, 'tokens came first');
  assert.match(got.text, /data: \{"error":\{"message":"the gateway is shutting down[^"]*","type":"server_error","param":null,"code":"shutting_down"\}\}\n\n$/, got.text.slice(-300));
  assert.doesNotMatch(got.text, /\[DONE\]/, 'never a stream that looks complete');
  assert.match(s.out(), /2 streams ended with a shutting_down error event/);
  const line = s.out().split('\n').find((l) => l.includes('"msg":"request"') && l.includes('slow-chat'));
  assert.ok(line !== undefined, s.out());
  const rec = JSON.parse(line) as { status: number; code: string };
  assert.deepEqual([rec.status, rec.code], [200, 'shutting_down']);
});

test('--workers 2: two processes share the port; a killed worker is replaced; SIGHUP reaches every worker; SIGTERM stops all', async () => {
  const file = join(dir, 'workers.yaml');
  writeFileSync(file, configYaml('blue'));
  const s = await serve(file, ['--workers', '2']);
  try {
    await s.waitFor(/(listening on http:\/\/[\d.:]+[\s\S]*){2}/);
    const pids = [...s.out().matchAll(/listening on [^\n]*"pid":(\d+)/g)].map((m) => Number(m[1]));
    assert.equal(new Set(pids).size, 2, `two worker pids: ${pids}`);
    // Each worker's lines say which worker wrote them.
    assert.deepEqual(new Set([...s.out().matchAll(/"worker":"(\d)","msg":"AI Fabric gateway listening/g)].map((m) => m[1])), new Set(['0', '1']));
    // Each process mints request ids with its own random prefix.
    const prefixes = new Set<string>();
    for (let i = 0; i < 40 && prefixes.size < 2; i++) {
      const r = await onNewConnection(`${s.url}/v1/chat/completions`, { method: 'POST', body: body('chat') });
      assert.equal(r.status, 200);
      prefixes.add(r.worker);
    }
    assert.equal(prefixes.size, 2, 'requests were answered by both workers');

    process.kill(pids[0]!, 'SIGKILL');
    await s.waitFor(/exited \(SIGKILL\); starting a new one/);
    await s.waitFor(/(listening on http:\/\/[\d.:]+[\s\S]*){3}/);
    const after = await request(`${s.url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: body('chat') });
    await after.body.text();
    assert.equal(after.statusCode, 200);

    writeFileSync(file, configYaml('green'));
    s.proc.kill('SIGHUP');
    await s.waitFor(/(config reloaded[\s\S]*){2}/);
  } finally {
    const exited = once(s.proc, 'exit');
    const t = Date.now();
    s.proc.kill('SIGTERM');
    const [code] = await exited;
    assert.equal(code, 0);
    assert.match(s.out(), /all workers stopped/);
    // Idle workers exit once drained, not when the primary kills them after the 30 s grace.
    assert.ok(Date.now() - t < 10_000, `stopped after ${Date.now() - t} ms`);
  }
});

test('--workers: dead workers are replaced until the fifth death within a minute; then the primary stops the rest and exits 1', async () => {
  const file = join(dir, 'crashing.yaml');
  writeFileSync(file, configYaml('blue'));
  const s = await serve(file, ['--workers', '2']);
  const exited = once(s.proc, 'exit');
  const count = (re: RegExp): number => [...s.out().matchAll(re)].length;
  const until = async (what: string, ok: () => boolean): Promise<void> => {
    for (const end = Date.now() + 20_000; !ok();) {
      if (Date.now() > end || s.proc.exitCode !== null) throw new Error(`${what}; output:\n${s.out()}`);
      await new Promise((r) => setTimeout(r, 20));
    }
  };
  const killed = new Set<number>();
  try {
    for (let death = 1; death <= 5; death++) {
      await until(`${death + 1} workers listening`, () => count(/listening on http:/g) >= death + 1);
      const live = [...s.out().matchAll(/listening on [^\n]*"pid":(\d+)/g)].map((m) => Number(m[1])).filter((p) => !killed.has(p));
      killed.add(live[0]!);
      process.kill(live[0]!, 'SIGKILL');
      if (death < 5) await until(`restart ${death}`, () => count(/exited \(SIGKILL\); starting a new one/g) >= death);
    }
    const t = Date.now();
    const [code] = await Promise.race([exited, new Promise<never>((_, reject) => setTimeout(() => reject(new Error(`the primary did not stop within 15 s:\n${s.out()}`)), 15_000).unref())]);
    assert.ok(Date.now() - t < 10_000, `the last worker stopped after ${Date.now() - t} ms`);
    assert.equal(code, 1);
    assert.match(s.out(), /5 exits within a minute: stopping/);
    assert.equal(count(/starting a new one/g), 4);
  } finally {
    // Whatever happened, no process of this test outlives it (workers first: they are the primary's children).
    for (const m of s.out().matchAll(/"pid":(\d+)/g)) {
      try { process.kill(Number(m[1]), 'SIGKILL'); } catch { /* gone */ }
    }
    if (s.proc.exitCode === null) s.proc.kill('SIGKILL');
  }
});

/** `n` streams of 20 tokens from the slow backend (about a second each), running once this resolves. */
async function slowStreams(url: string, n: number): Promise<Promise<{ status: number; text: string }>[]> {
  const before = fleet.get('slow').stats().active;
  const streams = Array.from({ length: n }, async () => {
    const r = await request(`${url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: body('slow-chat', 20, true) });
    return { status: r.statusCode, text: await r.body.text() };
  });
  for (let i = 0; i < 200 && fleet.get('slow').stats().active < before + n; i++) await pause(20);
  return streams;
}

function assertFinished(done: { status: number; text: string }[]): void {
  for (const d of done) {
    assert.equal(d.status, 200);
    assert.ok(d.text.trimEnd().endsWith('data: [DONE]'), `stream finished: ${d.text.slice(-120)}`);
  }
}

test('a SIGTERM more while draining changes nothing (it is logged): in-flight streams finish, exit 0', async () => {
  const file = join(dir, 'twice.yaml');
  writeFileSync(file, configYaml('blue'));
  const s = await serve(file, ['--grace', '10']);
  const streams = await slowStreams(s.url, 4);
  const exited = once(s.proc, 'exit');
  s.proc.kill('SIGTERM');
  await s.waitFor(/draining/);
  s.proc.kill('SIGTERM');
  await s.waitFor(/SIGTERM again: already draining/);
  assertFinished(await Promise.all(streams));
  assert.equal((await exited)[0], 0);
});

test('--workers 2: SIGTERM to the primary and to every worker at once (a control-group kill) still drains: streams finish, exit 0', async () => {
  const file = join(dir, 'group-kill.yaml');
  writeFileSync(file, configYaml('blue'));
  const s = await serve(file, ['--workers', '2', '--grace', '10']);
  try {
    await s.waitFor(/(listening on http:\/\/[\d.:]+[\s\S]*){2}/);
    const pids = [...s.out().matchAll(/listening on [^\n]*"pid":(\d+)/g)].map((m) => Number(m[1]));
    const streams = await slowStreams(s.url, 6);
    const exited = once(s.proc, 'exit');
    for (const pid of [s.proc.pid!, ...pids]) process.kill(pid, 'SIGTERM');
    assertFinished(await Promise.all(streams));
    assert.equal((await exited)[0], 0);
    assert.match(s.out(), /all workers stopped/);
  } finally {
    if (s.proc.exitCode === null) s.proc.kill('SIGKILL');
  }
});

test('a SIGHUP while the gateway starts is taken once it runs, not the end of the process', async () => {
  const file = join(dir, 'early-hup.yaml');
  // Its first health probes wait a second on a wedged backend before it listens: a window.
  writeFileSync(file, configYaml('blue').replace('health_interval: 1h', 'health_interval: 1h\n  health: { probe_timeout: 1500ms }'));
  await fleet.get('green').setFault({ kind: 'hang' });
  const s = start(file);
  try {
    // Started (the config read, the store opened), not yet listening.
    await s.waitFor(/"msg":"state"/);
    await pause(200);
    assert.doesNotMatch(s.out(), /listening on/);
    s.proc.kill('SIGHUP');
    await s.waitFor(/listening on/);
    await s.waitFor(/config reloaded/);
    assert.equal(s.proc.exitCode, null);
  } finally {
    s.proc.kill('SIGKILL');
    await fleet.get('green').setFault(null);
  }
});

test('--workers: a port already taken, or workers that cannot start, stop the gateway with exit 1 (no process left waiting)', async () => {
  const taken = createServer();
  await new Promise<void>((r) => taken.listen(0, '127.0.0.1', () => r()));
  const port = (taken.address() as AddressInfo).port;
  const file = join(dir, 'taken.yaml');
  writeFileSync(file, configYaml('blue'));
  try {
    const s = start(file, ['--workers', '2', '--port', String(port)]);
    const [code] = await once(s.proc, 'exit');
    assert.equal(code, 1);
    assert.match(s.out(), /cannot listen on 127\.0\.0\.1:\d+: EADDRINUSE/);
    assert.doesNotMatch(s.out(), /started 2 worker processes/, 'checked before forking');
  } finally {
    taken.close();
  }
  // A data directory that is a file (as $FABRIC_DATA_DIR, which `npm test` sets and which
  // overrides the config's): each worker refuses it; the primary says so and exits 1.
  const notDir = join(dir, 'not-a-dir');
  writeFileSync(notDir, '');
  writeFileSync(file, configYaml('blue'));
  const s = start(file, ['--workers', '2'], { FABRIC_DATA_DIR: notDir });
  try {
    const exited = once(s.proc, 'exit');
    const [code] = await Promise.race([exited, pause(20_000).then(() => [`still running:\n${s.out()}`])]);
    assert.equal(code, 1, s.out());
    assert.match(s.out(), /could not start \(exit code 1\): stopping/);
  } finally {
    for (const m of s.out().matchAll(/"pid":(\d+)/g)) {
      try { process.kill(Number(m[1]), 'SIGKILL'); } catch { /* gone */ }
    }
    if (s.proc.exitCode === null) s.proc.kill('SIGKILL');
  }
});

test('--workers 2: a new worker that cannot start (the config on disk refused) is tried again while the other serves; mended, it starts; all killed at once, all come back', { timeout: 60_000 }, async () => {
  const file = join(dir, 'respawn.yaml');
  writeFileSync(file, configYaml('blue'));
  const s = await serve(file, ['--workers', '2']);
  try {
    await s.waitFor(/(listening on http:\/\/[\d.:]+[\s\S]*){2}/);
    const pids = (): number[] => [...s.out().matchAll(/listening on [^\n]*"pid":(\d+)/g)].map((m) => Number(m[1]));
    writeFileSync(file, configYaml('blue').replace('roles:', 'roles:\n  broken: { kind: chat, backends: [nope] }'));
    await s.waitFor(/(config reload refused[\s\S]*){2}/);
    process.kill(pids()[0]!, 'SIGKILL');
    await s.waitFor(/a new worker could not start \(exit code 1; its message is above\); 1 of 2 serving; trying again in 1s/);
    for (let i = 0; i < 5; i++) assert.equal((await onNewConnection(`${s.url}/v1/chat/completions`, { method: 'POST', body: body('chat') })).status, 200, 'the other worker serves');
    writeFileSync(file, configYaml('blue'));
    await s.waitFor(/(listening on http:\/\/[\d.:]+[\s\S]*){3}/, 30_000);
    // Every worker at once: the primary stays and starts them again.
    const live = pids().slice(-2);
    for (const p of live) process.kill(p, 'SIGKILL');
    await s.waitFor(/(listening on http:\/\/[\d.:]+[\s\S]*){5}/, 20_000);
    assert.equal(s.proc.exitCode, null);
    // With every worker gone the shared port closed; on port 0 the new ones got another.
    const url = [...s.out().matchAll(/listening on (http:\/\/[\d.:]+)/g)].at(-1)![1]!;
    assert.equal((await onNewConnection(`${url}/v1/chat/completions`, { method: 'POST', body: body('chat') })).status, 200);
  } finally {
    const exited = once(s.proc, 'exit');
    s.proc.kill('SIGTERM');
    await exited;
  }
});

/** `fabric serve --workers 2` on `yaml`, once both workers listen; stopped (SIGTERM) after `fn`. */
async function withTwoWorkers(name: string, yaml: string, fn: (s: Served) => Promise<void>, env: Record<string, string> = {}): Promise<void> {
  const file = join(dir, name);
  writeFileSync(file, yaml);
  const s = await serve(file, ['--workers', '2'], env);
  try {
    await s.waitFor(/(listening on http:\/\/[\d.:]+[\s\S]*){2}/);
    await fn(s);
  } finally {
    const exited = once(s.proc, 'exit');
    s.proc.kill('SIGTERM');
    await exited;
  }
}

/** A request on a connection of its own, so that either worker may take it; `worker`: the prefix of its request id, which each worker mints its own. */
async function onNewConnection(url: string, init: { method?: 'GET' | 'POST'; body?: string } = {}): Promise<{ status: number; worker: string; text: string }> {
  const dispatcher = new Agent({ connections: 1 });
  try {
    const r = await request(url, { method: init.method ?? 'GET', headers: { 'content-type': 'application/json' }, body: init.body, dispatcher });
    return { status: r.statusCode, worker: String(r.headers['x-request-id']).slice(0, 16), text: await r.body.text() };
  } finally {
    await dispatcher.close();
  }
}

test('--workers 2: an item_reference to an item another worker returned is resolved through the primary', async () => {
  await withTwoWorkers('workers-items.yaml', configYaml('blue'), async (s) => {
    const post = async (payload: unknown): Promise<{ status: number; worker: string; json: any }> => {
      const r = await onNewConnection(`${s.url}/v1/responses`, { method: 'POST', body: JSON.stringify(payload) });
      return { ...r, json: JSON.parse(r.text) };
    };
    const first = await post({ model: 'chat', input: 'hello', max_output_tokens: 8 });
    assert.equal(first.status, 200, JSON.stringify(first.json));
    const message = first.json.output.find((i: any) => i.type === 'message');
    const text: string = message.content[0].text;
    assert.ok(text.length > 0);
    const ref = { model: 'chat', input: [{ role: 'user', content: 'hello' }, { type: 'item_reference', id: message.id }, { role: 'user', content: 'again' }], max_output_tokens: 4 };
    let other: { status: number; worker: string; json: any } | undefined;
    for (let i = 0; i < 40 && other === undefined; i++) {
      const r = await post(ref);
      assert.equal(r.status, 200, `worker ${r.worker}: ${JSON.stringify(r.json)}`);
      if (r.worker !== first.worker) other = r;
    }
    assert.ok(other !== undefined, 'a request landed on the other worker');
    const reqs = fleet.get('blue').requests();
    const sent = reqs[reqs.length - 1]!.body as { messages: { role: string; content: unknown }[] };
    assert.deepEqual(sent.messages.map((m) => m.role), ['user', 'assistant', 'user']);
    assert.equal(sent.messages[1]!.content, text, 'the referenced reply was sent upstream as it was returned');
    // An id no worker returned is still refused, once every worker has been asked.
    const unknown = await post({ ...ref, input: [{ type: 'item_reference', id: 'msg_nobody' }, { role: 'user', content: 'x' }] });
    assert.equal(unknown.status, 400);
    assert.equal(unknown.json.error.param, 'input[0].id');
  });
});

test('--workers 2: the alert webhook is called once per change of level, not once per worker', async () => {
  const bodies: string[] = [];
  const hook = createServer((req, res) => {
    let raw = '';
    req.setEncoding('utf8').on('data', (c: string) => { raw += c; }).on('end', () => { bodies.push(raw); res.end('ok'); });
  });
  hook.listen(0, '127.0.0.1');
  await once(hook, 'listening');
  // A backend on a closed port: each worker's first probe finds it down (info, which is notified here).
  const yaml = configYaml('blue', `
  down-chat: { kind: chat, backends: [gone] }
`).replace('backends:\n', 'backends:\n  gone: { engine: vllm, url: http://127.0.0.1:9/v1, model: gone-model }\n').replace('gateway:\n', `gateway:
  # Port 9 refuses at once; a timeout this long keeps a loaded machine's slow probe of a live
  # engine from reading as down (a second change of level: a second call).
  health: { failure_threshold: 1, probe_timeout: 5s }
  alerts: { webhook: env:ALERT_HOOK, format: slack, interval: 100ms, min_interval: 0ms, notify: info }
`);
  try {
    await withTwoWorkers('workers-alerts.yaml', yaml, async (s) => {
      await s.waitFor(/alert: info/);
      // Both workers have probed and evaluated many times over by now.
      await new Promise((r) => setTimeout(r, 1000));
      assert.equal(bodies.length, 1, `one call: ${bodies.join('\n')}`);
      assert.equal(s.out().match(/webhook called/g)?.length, 1);
    }, { ALERT_HOOK: `http://127.0.0.1:${(hook.address() as AddressInfo).port}/hook` });
  } finally {
    hook.close();
  }
});

test('--workers 2: each worker keeps its own cache answers; fabric cache clear (DELETE /admin/cache) forgets every worker\'s', async () => {
  const KEY = 'fabric-master-key-for-workers-cache-test';
  const yaml = configYaml('blue').replace('gateway:\n', 'gateway:\n  master_key: env:FABRIC_MASTER_KEY\n  cache: true\n');
  await withTwoWorkers('workers-cache.yaml', yaml, async (s) => {
    const ask = async (init: { method: 'POST' | 'DELETE'; path: string; body?: string }): Promise<{ worker: string; cache: string | undefined; json: any }> => {
      const dispatcher = new Agent({ connections: 1 });
      try {
        const r = await request(`${s.url}${init.path}`, { method: init.method, headers: { 'content-type': 'application/json', authorization: `Bearer ${KEY}` }, body: init.body, dispatcher });
        return { worker: String(r.headers['x-request-id']).slice(0, 16), cache: r.headers['x-fabric-cache'] as string | undefined, json: await r.body.json() };
      } finally {
        await dispatcher.close();
      }
    };
    const same = JSON.stringify({ model: 'chat', messages: [{ role: 'user', content: 'the same question' }], max_tokens: 4, temperature: 0 });
    // Until each worker has answered it from its own cache.
    const hitBy = new Set<string>();
    for (let i = 0; i < 40 && hitBy.size < 2; i++) {
      const r = await ask({ method: 'POST', path: '/v1/chat/completions', body: same });
      if (r.cache === 'hit') hitBy.add(r.worker);
    }
    assert.equal(hitBy.size, 2, 'both workers answered from their cache');
    const cleared = await ask({ method: 'DELETE', path: '/admin/cache' });
    assert.equal(cleared.json.memory_entries, 2, 'one answer in each worker\'s memory');
    const after = new Map<string, string>();
    for (let i = 0; i < 40 && after.size < 2; i++) {
      const r = await ask({ method: 'POST', path: '/v1/chat/completions', body: same });
      if (!after.has(r.worker)) after.set(r.worker, r.cache!);
    }
    assert.deepEqual([...after.values()], ['miss', 'miss'], 'each worker\'s first answer after the clear was made again');
  }, { FABRIC_MASTER_KEY: KEY });
});

test('--workers 2: /metrics shows every worker\'s series, each labelled with its worker, whichever worker answers the scrape', async () => {
  await withTwoWorkers('workers-metrics.yaml', configYaml('blue'), async (s) => {
    const workers = new Set<string>();
    for (let i = 0; i < 20; i++) workers.add((await onNewConnection(`${s.url}/v1/chat/completions`, { method: 'POST', body: body('chat') })).worker);
    assert.equal(workers.size, 2, 'both workers served requests');
    const scrapers = new Set<string>();
    for (let i = 0; i < 8; i++) {
      const m = await onNewConnection(`${s.url}/metrics`);
      scrapers.add(m.worker);
      const served = [...m.text.matchAll(/^fabric_requests_total\{op="chat",role="chat",backend="blue",status="200",worker="(\d)"\} (\d+)$/gm)];
      assert.deepEqual(served.map((x) => x[1]).sort(), ['0', '1'], `scrape ${i} by ${m.worker}: both workers`);
      assert.equal(served.reduce((n, x) => n + Number(x[2]), 0), 20, `scrape ${i}: every request, once`);
      const durations = [...m.text.matchAll(/^fabric_request_duration_seconds_count\{[^}]*role="chat"[^}]*\} (\d+)$/gm)];
      assert.equal(durations.reduce((n, x) => n + Number(x[1]), 0), 20);
    }
    assert.equal(scrapers.size, 2, 'both workers answered scrapes');
  });
});

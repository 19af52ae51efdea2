// fabric sim as an operator runs it: a child process, the config it writes with --out served
// by a real gateway on loopback, keys checked by the simulated engines, busy ports reported.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { readFileSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { join } from 'node:path';
import { loadFabricConfig } from '../src/config/load.ts';
import { PriceTable } from '../src/accounting/prices.ts';
import { createLogger } from '../src/core/log.ts';
import { startGateway, type RunningGateway } from '../src/main.ts';
import { tempDir } from './support/temp-dir.ts';

const MAIN = new URL('../src/cli/main.ts', import.meta.url).pathname;
const SEEDS = new URL('../examples/seeds.fabric.yaml', import.meta.url).pathname;
const quiet = createLogger({ level: 'error', write: () => {} });

function cleanEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env = { ...process.env, ...extra };
  delete env.FABRIC_CONFIG;
  if (extra.OPENAI_API_KEY === undefined) delete env.OPENAI_API_KEY;
  return env;
}


interface RunningSim {
  child: ChildProcess;
  stdout: string;
  controlUrl: string;
  stop(): Promise<void>;
}

/** Starts `fabric sim` and waits until it has written --out. */
async function startSim(args: string[], env: NodeJS.ProcessEnv): Promise<RunningSim> {
  const child = spawn(process.execPath, [MAIN, 'sim', ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stderr!.on('data', (c: Buffer) => { stderr += c.toString(); });
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`fabric sim did not write its config:\n${stdout}\n${stderr}`)), 15_000);
    child.stdout!.on('data', (c: Buffer) => {
      stdout += c.toString();
      if (/^wrote /m.test(stdout)) { clearTimeout(timer); resolve(); }
    });
    child.once('exit', (code) => { clearTimeout(timer); reject(new Error(`fabric sim exited ${code}:\n${stdout}\n${stderr}`)); });
  });
  const controlUrl = /fault control: (\S+)/.exec(stdout)![1]!;
  return {
    child, stdout, controlUrl,
    async stop() {
      if (child.exitCode !== null) return;
      child.kill('SIGTERM');
      await once(child, 'exit');
    },
  };
}

async function gatewayFor(file: string, env: NodeJS.ProcessEnv, dataDir: string): Promise<RunningGateway> {
  const { config, secrets } = loadFabricConfig(file, env);
  // The config's own host and port are checked apart; here any free loopback port serves.
  return startGateway(config, secrets, { host: '127.0.0.1', port: 0, log: quiet, dataDir });
}

function chatBody(model: string): string {
  return JSON.stringify({ model, messages: [{ role: 'user', content: 'hello' }], max_tokens: 5 });
}

test('the seeds: --out writes a config fabric serve takes as-is, on loopback, every backend up, budget intact', async () => {
  const dir = tempDir('fabric-sim-cli-');
  const out = join(dir, 'sim.fabric.yaml');
  const env = cleanEnv();
  const sim = await startSim(['--config', SEEDS, '--out', out, '--control-port', '0'], env);
  let gw: RunningGateway | undefined;
  try {
    // Valid as written (it used to keep `engines: [openai]` with no openai backend left).
    const { config } = loadFabricConfig(out, env);
    assert.equal(config.gateway.host, '127.0.0.1');
    assert.equal(config.gateway.port, 4000);
    assert.match(readFileSync(out, 'utf8'), /^# SIMULATED copy of .*\n#.*listens on 127\.0\.0\.1:4000/);
    // The budget covers the same backends and still sees their spend at OpenAI's prices.
    assert.deepEqual(config.budgets[0]!.backends.sort(), ['openai-cheap', 'openai-strong']);
    const prices = new PriceTable(config);
    assert.equal(prices.of('openai-cheap').source, 'builtin');
    assert.equal(prices.of('armitage-qwen').source, 'free');

    gw = await gatewayFor(out, env, join(dir, 'data'));
    // Every backend's model is served by the engine it points at: the first probes find all up.
    const states = Object.fromEntries([...gw.app.gateway.backends.values()].map((b) => [b.name, `${b.state} ${b.lastError ?? ''}`.trim()]));
    assert.deepEqual(states, {
      'armitage-qwen': 'up', 'wintermute-llama': 'up', 'motoko-bge': 'up', 'openai-strong': 'up', 'openai-cheap': 'up',
    });
    const res = await fetch(`${gw.url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: chatBody('openai/cheap') });
    assert.equal(res.status, 200);
    assert.equal(((await res.json()) as { model: string }).model, 'gpt-4o-mini');
    assert.match(sim.stdout, /openai-strong .* gpt-4\.1-mini, gpt-4o-mini/);
  } finally {
    await gw?.close(100);
    await sim.stop();
  }
});

test('backend keys: engines require a set key, the copy keeps it and the .env, the gateway sends each backend its own', async () => {
  const dir = tempDir('fabric-sim-cli-');
  const cfg = join(dir, 'fabric.yaml');
  writeFileSync(cfg, `version: 1
gateway: { host: 0.0.0.0, port: 8000 }
backends:
  vllm-a: { engine: vllm, url: 'http://vllm-a.lan:8000/v1', model: qwen, api_key: env:VLLM_A_KEY }
  cloud: { engine: openai, model: gpt-4o-mini, api_key: env:OPENAI_API_KEY }
roles:
  chat: { kind: chat, backends: [vllm-a] }
  cloud: { kind: chat, backends: [cloud] }
budgets:
  cloud: { amount: 10, period: month, engines: [openai], fallback: chat }
`);
  // One key in the environment, the other only in the .env beside the config.
  writeFileSync(join(dir, '.env'), 'VLLM_A_KEY=vllm-secret\n', { mode: 0o600 });
  const out = join(tempDir('fabric-sim-cli-'), 'sim.fabric.yaml');
  const env = cleanEnv({ OPENAI_API_KEY: 'sk-sim-test' });
  const sim = await startSim(['--config', cfg, '--out', out, '--control-port', '0'], env);
  let gw: RunningGateway | undefined;
  try {
    const { config } = loadFabricConfig(out, env);
    assert.equal(config.gateway.envFile, join(dir, '.env'));
    const vllmUrl = config.backends.get('vllm-a')!.url;
    const cloudUrl = config.backends.get('cloud')!.url;
    assert.deepEqual(config.backends.get('cloud')!.apiKey, { env: 'OPENAI_API_KEY' });

    // Each engine answers a missing or wrong key in its own shape (vLLM's middleware: {"error":"Unauthorized"}).
    const none = await fetch(`${vllmUrl}/chat/completions`, { method: 'POST', body: chatBody('qwen') });
    assert.equal(none.status, 401);
    assert.deepEqual(await none.json(), { error: 'Unauthorized' });
    const wrong = await fetch(`${cloudUrl}/chat/completions`, { method: 'POST', headers: { authorization: 'Bearer vllm-secret' }, body: chatBody('gpt-4o-mini') });
    assert.equal(wrong.status, 401);
    assert.equal(((await wrong.json()) as { error: { code: string } }).error.code, 'invalid_api_key');

    gw = await gatewayFor(out, env, join(dir, 'data'));
    for (const role of ['chat', 'cloud']) {
      const r = await fetch(`${gw.url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: chatBody(role) });
      assert.equal(r.status, 200, `${role}: ${await r.clone().text()}`);
    }
    // The last request each engine saw came from the gateway, with that backend's own key.
    const lastKey = async (engine: string): Promise<string | undefined> => {
      const recs = (await (await fetch(`${sim.controlUrl}/engines/${engine}/requests`)).json()) as { headers: { authorization?: string } }[];
      return recs.at(-1)?.headers.authorization;
    };
    assert.equal(await lastKey('vllm-a'), 'Bearer vllm-secret');
    assert.equal(await lastKey('cloud'), 'Bearer sk-sim-test');
  } finally {
    await gw?.close(100);
    await sim.stop();
  }
});

async function busyPort(): Promise<{ port: number; server: Server }> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { port: (server.address() as { port: number }).port, server };
}

test('a busy port is one line and exit 1, as with serve: the control API and an engine', async () => {
  const { port, server } = await busyPort();
  try {
    const control = spawnSync(process.execPath, [MAIN, 'sim', '--config', SEEDS, '--control-port', String(port)], { env: cleanEnv(), encoding: 'utf8', timeout: 15_000 });
    assert.equal(control.status, 1);
    assert.match(control.stderr, new RegExp(`^fabric sim: cannot listen on 127\\.0\\.0\\.1:${port} for the control API: EADDRINUSE`));
    assert.equal(control.stderr.trim().split('\n').length, 1, control.stderr);

    const dir = tempDir('fabric-sim-cli-');
    const cfg = join(dir, 'fabric.yaml');
    writeFileSync(cfg, `backends:\n  local: { engine: vllm, url: 'http://127.0.0.1:${port}/v1', model: m }\nroles:\n  chat: { kind: chat, backends: [local] }\n`);
    const engine = spawnSync(process.execPath, [MAIN, 'sim', '--config', cfg, '--control-port', '0'], { env: cleanEnv(), encoding: 'utf8', timeout: 15_000 });
    assert.equal(engine.status, 1);
    assert.match(engine.stderr, new RegExp(`^fabric sim: cannot listen on 127\\.0\\.0\\.1:${port} for engine local: EADDRINUSE`));
    assert.doesNotMatch(engine.stderr, /\n\s+at /);

    const bad = spawnSync(process.execPath, [MAIN, 'sim', '--config', cfg, '--control-port', 'x'], { env: cleanEnv(), encoding: 'utf8', timeout: 15_000 });
    assert.equal(bad.status, 2);
  } finally {
    server.close();
  }
});

test('--out where it cannot write: one line naming the path and why, exit 1, and no stack trace', () => {
  const dir = tempDir('fabric-sim-out-');
  const file = join(dir, 'a-file');
  writeFileSync(file, 'not a folder\n');
  const run = (out: string) => spawnSync(process.execPath, [MAIN, 'sim', '--config', SEEDS, '--control-port', '0', '--out', out], { env: cleanEnv(), encoding: 'utf8', timeout: 15_000 });
  // Told before any engine starts.
  const under = run(join(file, 'fabric.yaml'));
  assert.equal(under.status, 1, under.stderr);
  assert.equal(under.stderr, `fabric sim: cannot write ${join(file, 'fabric.yaml')}: ${file} is a file, not a folder\n`);
  assert.equal(under.stdout, '', 'no fleet was started');
  const folder = run(dir);
  assert.equal(folder.status, 1);
  assert.equal(folder.stderr, `fabric sim: cannot write ${dir}: it is a folder\n`);
  // A write that fails once the fleet is up: the fleet is closed, the command ends.
  if (process.platform === 'linux') {
    const full = run('/dev/full');
    assert.equal(full.signal, null, 'fabric sim ended');
    assert.equal(full.status, 1, full.stderr);
    assert.equal(full.stderr, 'fabric sim: cannot write /dev/full: no space left on device (ENOSPC)\n');
  }
});

test('--out replaces a copy fabric sim wrote before, but not another file (a config a gateway may serve) without --force, and never the config it simulates', async () => {
  const dir = tempDir('fabric-sim-keep-');
  const mine = join(dir, 'fabric.yaml');
  writeFileSync(mine, 'gateway: { port: 4000 }   # my own config\n');
  const refused = spawnSync(process.execPath, [MAIN, 'sim', '--config', SEEDS, '--control-port', '0', '--out', mine], { env: cleanEnv(), encoding: 'utf8', timeout: 15_000 });
  assert.equal(refused.status, 1, refused.stderr);
  assert.equal(refused.stderr, `fabric sim: --out ${mine} exists and is not a copy fabric sim wrote; add --force to replace it\n`);
  assert.equal(refused.stdout, '', 'no fleet was started');
  assert.equal(readFileSync(mine, 'utf8'), 'gateway: { port: 4000 }   # my own config\n', 'left as it was');

  const forced = await startSim(['--config', SEEDS, '--control-port', '0', '--out', mine, '--force'], cleanEnv());
  await forced.stop();
  assert.match(readFileSync(mine, 'utf8'), /^# SIMULATED copy of /);
  // Its own copy, written again: no --force needed.
  writeFileSync(mine, readFileSync(mine, 'utf8') + '# an older copy\n');
  const again = await startSim(['--config', SEEDS, '--control-port', '0', '--out', mine], cleanEnv());
  await again.stop();
  assert.doesNotMatch(readFileSync(mine, 'utf8'), /an older copy/);

  const itself = spawnSync(process.execPath, [MAIN, 'sim', '--config', mine, '--control-port', '0', '--out', mine, '--force'], { env: cleanEnv(), encoding: 'utf8', timeout: 15_000 });
  assert.equal(itself.status, 1);
  assert.equal(itself.stderr, `fabric sim: --out ${mine} is the config being simulated: write the copy elsewhere\n`);
});

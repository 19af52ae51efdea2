// Coming from LiteLLM: the example LiteLLM configs served as they are and imported as
// native configs, both in front of the same simulated fleet. The same requests must route,
// fall back and fail the same way through either file — and as LiteLLM would.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { parseDocument } from 'yaml';
import { loadFabricConfig } from '../src/config/load.ts';
import { importLiteLLMText, parseLiteLLMText } from '../src/config/litellm/load.ts';
import { Secrets } from '../src/config/env-file.ts';
import type { FabricConfig } from '../src/config/types.ts';
import { createLogger } from '../src/core/log.ts';
import { startGateway, type RunningGateway } from '../src/main.ts';
import { startFleet, type SimEngineSpec, type SimFault, type SimFleet, type SimProtocol } from '../src/sim/fleet.ts';
import { post, chat } from './helpers.ts';
import { spawnGateway } from './support/proc.ts';
import { tempDir } from './support/temp-dir.ts';

const EXAMPLES = new URL('../examples/litellm/', import.meta.url).pathname;
const MAIN = new URL('../src/cli/main.ts', import.meta.url).pathname;
const FAST = { ttftMs: 2, tokensPerSecond: 5000, maxConcurrency: 16, maxQueue: 64 };

// Distinctive values, so any leak into a written file or a log is unmistakable.
const ENV = {
  OPENAI_API_KEY: 'sk-openai-DISTINCTIVE-4f1c9e',
  LITELLM_TOKEN: 'litellm-token-DISTINCTIVE-7a2b3d',
  REDIS_PASSWORD: 'redis-pass-DISTINCTIVE-0c9d8e',
};
const PATTERN_MODEL = 'meta-llama/Llama-3.1-8B-Instruct';
const dir = tempDir('fabric-litellm-');

const PROTOCOL: Record<string, SimProtocol> = { vllm: 'vllm', ollama: 'ollama', llamacpp: 'llamacpp' };

interface Pair {
  fleet: SimFleet;
  /** backend name → the simulated engine serving it */
  engineOf: Map<string, string>;
  litellm: RunningGateway;
  native: RunningGateway;
  litellmConfig: FabricConfig;
  nativeConfig: FabricConfig;
  importedYaml: string;
  close(): Promise<void>;
}

/**
 * A simulated engine per backend (Ollama models share their server), then the example with
 * every api_base pointed at the simulator — the only edit — served as written and imported.
 */
async function startPair(example: string, variant?: { name: string; edit: (text: string) => string }): Promise<Pair> {
  const path = join(EXAMPLES, example);
  const text = variant === undefined ? readFileSync(path, 'utf8') : variant.edit(readFileSync(path, 'utf8'));
  if (variant !== undefined) example = variant.name;
  const { config, result } = parseLiteLLMText(text, path, ENV);
  const specs = new Map<string, SimEngineSpec>();
  const engineOf = new Map<string, string>();
  for (const b of config.backends.values()) {
    const role = [...config.roles.values()].find((r) => r.backends.includes(b.name));
    const pattern = config.patterns.find((p) => p.backends.includes(b.name));
    const kind = role?.kind ?? pattern?.kind ?? 'chat';
    const model = b.model.includes('*') ? PATTERN_MODEL : b.model;
    const origin = new URL(b.url).origin;
    const key = b.engine === 'ollama' ? origin : b.name;
    const existing = specs.get(key);
    if (existing !== undefined) {
      (existing.extraModels ??= []).push(model);
    } else {
      specs.set(key, {
        name: b.name, protocol: PROTOCOL[b.engine] ?? 'openai', model, kind, timing: FAST, contextWindow: b.contextWindow,
        ...(role?.dimensions === undefined ? {} : { dimensions: role.dimensions }),
      });
    }
    engineOf.set(b.name, specs.get(key)!.name);
  }
  const fleet = await startFleet([...specs.values()]);
  const doc = parseDocument(text);
  result.deploymentBackends.forEach((name, i) => {
    if (name === undefined) return;
    const b = config.backends.get(name)!;
    const suffix = b.engine === 'ollama' ? '' : new URL(b.url).pathname.replace(/\/+$/, '');
    doc.setIn(['model_list', i, 'litellm_params', 'api_base'], fleet.get(engineOf.get(name)!).url + suffix);
  });
  const litellmPath = join(dir, example);
  writeFileSync(litellmPath, doc.toString());
  const imported = importLiteLLMText(doc.toString(), litellmPath, ENV);
  const nativePath = join(dir, example.replace('.litellm.yaml', '.imported.fabric.yaml'));
  writeFileSync(nativePath, imported.yaml);

  const quiet = createLogger({ write: () => {}, secrets: Object.values(ENV) });
  const serve = async (file: string): Promise<{ gw: RunningGateway; config: FabricConfig }> => {
    const loaded = loadFabricConfig(file, ENV);
    assert.ok(!loaded.issues.some((i) => i.severity === 'error'));
    const gw = await startGateway(loaded.config, new Secrets(ENV), { host: '127.0.0.1', port: 0, probe: false, log: quiet, dataDir: tempDir('fabric-litellm-gw-') });
    return { gw, config: loaded.config };
  };
  const a = await serve(litellmPath);
  const n = await serve(nativePath);
  return {
    fleet, engineOf, litellm: a.gw, native: n.gw, litellmConfig: a.config, nativeConfig: n.config, importedYaml: imported.yaml,
    async close() {
      await a.gw.close(500);
      await n.gw.close(500);
      await fleet.close();
    },
  };
}

interface Case {
  name: string;
  path?: '/v1/chat/completions' | '/v1/embeddings';
  body: Record<string, unknown>;
  /** backend name → fault on the engine serving it, for this request only */
  faults?: Record<string, SimFault>;
  auth?: string | null;
  expect: { status: number; role?: string; backend?: string; attempts?: number; code?: string; rerouted?: boolean };
}

interface Observed { status: number; role: string | null; backend: string | null; attempts: string | null; rerouted: string | null; code: string | undefined }

async function runCase(p: Pair, gw: RunningGateway, c: Case, token: string | undefined): Promise<Observed> {
  // Passive health must not carry over from one request to the next.
  for (const b of gw.app.gateway.backends.values()) b.recordSuccess(0);
  // Routing is what these cases test: no answer from the response cache (lab's litellm_settings.cache), none kept for the next case.
  const headers: Record<string, string> = { 'cache-control': 'no-cache, no-store' };
  const auth = c.auth === undefined ? token : c.auth;
  if (auth !== undefined && auth !== null) headers.authorization = `Bearer ${auth}`;
  const r = await post(gw.url, c.path ?? '/v1/chat/completions', c.body, headers);
  return {
    status: r.status, role: r.headers.get('x-fabric-role'), backend: r.headers.get('x-fabric-backend'), attempts: r.headers.get('x-fabric-attempts'),
    rerouted: r.headers.get('x-fabric-rerouted'), code: r.json?.error?.code ?? undefined,
  };
}

/** Each case through the LiteLLM file and through its import: the same answer, and the expected one. */
async function runTable(p: Pair, cases: Case[], token?: string): Promise<void> {
  for (const c of cases) {
    const engines = Object.entries(c.faults ?? {}).map(([backend, fault]) => [p.fleet.get(p.engineOf.get(backend)!), fault] as const);
    for (const [e, fault] of engines) await e.setFault(fault);
    try {
      const viaLiteLLM = await runCase(p, p.litellm, c, token);
      const viaNative = await runCase(p, p.native, c, token);
      assert.deepEqual(viaNative, viaLiteLLM, `${c.name}: the imported config answers as the LiteLLM one`);
      assert.equal(viaLiteLLM.status, c.expect.status, `${c.name}: status`);
      if (c.expect.role !== undefined) assert.equal(viaLiteLLM.role, c.expect.role, `${c.name}: role`);
      if (c.expect.backend !== undefined) assert.equal(viaLiteLLM.backend, c.expect.backend, `${c.name}: backend`);
      if (c.expect.attempts !== undefined) assert.equal(viaLiteLLM.attempts, String(c.expect.attempts), `${c.name}: attempts`);
      if (c.expect.code !== undefined) assert.equal(viaLiteLLM.code, c.expect.code, `${c.name}: error code`);
      if (c.expect.rerouted !== undefined) assert.equal(viaLiteLLM.rerouted, String(c.expect.rerouted), `${c.name}: rerouted`);
    } finally {
      for (const [e] of engines) await e.setFault(null);
    }
  }
}

/** FabricConfig without where it was read from: what serving either file runs on. */
function routing(c: FabricConfig): FabricConfig {
  return { ...c, file: undefined, gateway: { ...c.gateway, envFile: undefined } };
}

let motoko: Pair;
let lab: Pair;

before(async () => {
  motoko = await startPair('motoko.litellm.yaml');
  lab = await startPair('lab.litellm.yaml');
});

after(async () => {
  await motoko?.close();
  await lab?.close();
});

test('motoko: the LiteLLM file and its import are the same fabric', () => {
  assert.deepEqual(routing(motoko.nativeConfig), routing(motoko.litellmConfig));
  const c = motoko.litellmConfig;
  assert.deepEqual([...c.roles.keys()], ['chat-fast', 'chat-deep', 'embeddings-general', 'qwen2.5-7b-armitage', 'llama31-8b-wintermute', 'openai/strong', 'openai/cheap']);
  const fast = c.roles.get('chat-fast')!;
  assert.deepEqual(fast.aliases, ['local/chat']);
  assert.deepEqual(fast.fallbacks, ['chat-deep', 'openai/strong'], 'chat-deep\'s own fallback is unrolled after it');
  assert.equal(fast.contextWindowFallback, 'openai/strong');
  assert.deepEqual(fast.rules, [{ inputTokensOver: 8192, routeTo: 'openai/strong' }]);
  assert.deepEqual(c.roles.get('qwen2.5-7b-armitage')!.backends, ['armitage-qwen'], 'the physical alias shares the deployment');
  assert.equal(c.roles.get('embeddings-general')!.kind, 'embeddings');
  assert.equal(c.roles.get('embeddings-general')!.dimensions, 768);
  assert.deepEqual(c.gateway.masterKey, { env: 'LITELLM_TOKEN' });
  const h = c.backends.get('armitage-qwen')!.health!;
  assert.deepEqual([h.failureThreshold, h.cooldownMs], [4, 30_000], 'allowed_fails 3, cooldown_time 30');
  assert.equal(c.gateway.healthIntervalMs, 300_000);
  assert.deepEqual(c.prices.get('openai-strong'), { input: 0.4, output: 1.6, gpuHour: undefined, audioMinute: undefined }, 'model_info costs per token, per 1M tokens');
  // As written (here every api_base points at the simulator, so no backend is api.openai.com):
  const asWritten = parseLiteLLMText(readFileSync(join(EXAMPLES, 'motoko.litellm.yaml'), 'utf8'), join(EXAMPLES, 'motoko.litellm.yaml'), ENV).config;
  assert.deepEqual(asWritten.budgets, [{ name: 'openai', amount: 150, period: 'month', backends: ['openai-strong', 'openai-cheap'], fallback: undefined }],
    '"monthly OpenAI spend > $150 → stay local": provider_budget_config over OpenAI\'s own backends, not armitage');
});

test('motoko with the OpenAI budget spent: OpenAI is passed over, the workstations serve, the same through both files', async () => {
  // A budget no request fits in: every OpenAI request finds it spent.
  const spent = await startPair('motoko.litellm.yaml', { name: 'motoko-spent.litellm.yaml', edit: (t) => t.replace('budget_limit: 150', 'budget_limit: 0.000001') });
  try {
    assert.equal(spent.litellmConfig.budgets[0]!.amount, 0.000001);
    // openai-strong is priced (model_info costs); the local servers cost nothing, so the budget never stops them.
    await runTable(spent, [
      { name: 'chat-fast serves from armitage', body: chat('local/chat'), expect: { status: 200, role: 'chat-fast', backend: 'armitage-qwen', attempts: 1 } },
      {
        name: 'armitage off: chat-deep serves; OpenAI would be next', body: chat('chat-fast'), faults: { 'armitage-qwen': { kind: 'down' } },
        expect: { status: 200, role: 'chat-deep', backend: 'wintermute-llama' },
      },
      {
        name: 'both workstations off: OpenAI is over budget, so nothing serves', body: chat('chat-fast'),
        faults: { 'armitage-qwen': { kind: 'down' }, 'wintermute-llama': { kind: 'down' } }, expect: { status: 503, code: 'no_backend_available' },
      },
      { name: 'asked for OpenAI directly: no fallback of its own, so OpenAI\'s quota error', body: chat('openai/strong'), expect: { status: 429, code: 'insufficient_quota' } },
    ], ENV.LITELLM_TOKEN);
    assert.equal(spent.fleet.get(spent.engineOf.get('openai-strong')!).requests().length, 0, 'nothing was sent to OpenAI');
  } finally {
    await spent.close();
  }
});

test('motoko: roles, aliases, fallbacks, context-window routing and errors answer the same through both files', async () => {
  const long = Array.from({ length: 9000 }, (_, i) => `w${i % 89}`).join(' ');
  await runTable(motoko, [
    { name: 'role', body: chat('chat-fast'), expect: { status: 200, role: 'chat-fast', backend: 'armitage-qwen', attempts: 1 } },
    { name: 'legacy alias', body: chat('local/chat'), expect: { status: 200, role: 'chat-fast', backend: 'armitage-qwen' } },
    { name: 'second role', body: chat('local/reasoner'), expect: { status: 200, role: 'chat-deep', backend: 'wintermute-llama' } },
    { name: 'physical alias', body: chat('llama31-8b-wintermute'), expect: { status: 200, role: 'llama31-8b-wintermute', backend: 'wintermute-llama' } },
    { name: 'cloud role', body: chat('openai/cheap'), expect: { status: 200, role: 'openai/cheap', backend: 'openai-cheap' } },
    { name: 'embeddings', path: '/v1/embeddings', body: { model: 'embeddings-general', input: 'hello' }, expect: { status: 200, role: 'embeddings-general', backend: 'motoko-bge' } },
    { name: 'embeddings alias', path: '/v1/embeddings', body: { model: 'local/embed', input: ['a', 'b'] }, expect: { status: 200, backend: 'motoko-bge' } },
    {
      name: 'armitage off: chat-deep serves after one retry', body: chat('chat-fast'), faults: { 'armitage-qwen': { kind: 'down' } },
      expect: { status: 200, role: 'chat-deep', backend: 'wintermute-llama', attempts: 3, rerouted: true },
    },
    {
      name: 'both workstations off: OpenAI serves', body: chat('local/chat'), faults: { 'armitage-qwen': { kind: 'down' }, 'wintermute-llama': { kind: 'error', status: 500 } },
      expect: { status: 200, role: 'openai/strong', backend: 'openai-strong', attempts: 4 },
    },
    {
      name: 'everything down: one 503 listing the attempts', body: chat('chat-fast'),
      faults: { 'armitage-qwen': { kind: 'down' }, 'wintermute-llama': { kind: 'down' }, 'openai-strong': { kind: 'error', status: 500 } },
      expect: { status: 503, code: 'no_backend_available' },
    },
    {
      name: 'a physical alias has no fallback', body: chat('qwen2.5-7b-armitage'), faults: { 'armitage-qwen': { kind: 'down' } },
      expect: { status: 503, code: 'no_backend_available' },
    },
    {
      name: 'context length exceeded: the context-window fallback serves', body: chat('chat-fast'), faults: { 'armitage-qwen': { kind: 'context-length' } },
      expect: { status: 200, role: 'openai/strong', rerouted: true },
    },
    { name: 'over max_input_tokens: straight to the fallback (pre-call check)', body: chat('chat-fast', long), expect: { status: 200, role: 'openai/strong', attempts: 1 } },
    { name: 'unknown model', body: chat('chat-fsat'), expect: { status: 404, code: 'model_not_found' } },
    { name: 'embeddings model on the chat endpoint', body: chat('embeddings-general'), expect: { status: 400 } },
    { name: 'no key', body: chat('chat-fast'), auth: null, expect: { status: 401 } },
    { name: 'wrong key', body: chat('chat-fast'), auth: 'sk-wrong', expect: { status: 401 } },
  ], ENV.LITELLM_TOKEN);
  const cloud = motoko.fleet.get(motoko.engineOf.get('openai-strong')!).requests().at(-1)!;
  assert.equal(cloud.headers.authorization, `Bearer ${ENV.OPENAI_API_KEY}`, 'os.environ/OPENAI_API_KEY reached OpenAI');
  const local = motoko.fleet.get(motoko.engineOf.get('armitage-qwen')!).requests().at(-1)!;
  assert.equal(local.headers.authorization, undefined, 'the "not-needed" placeholder is not sent');
});

test('lab: Ollama, llama.cpp, vLLM, pattern route and fallbacks answer the same through both files', async () => {
  assert.deepEqual(routing(lab.nativeConfig), routing(lab.litellmConfig));
  assert.deepEqual(lab.litellmConfig.patterns.map((p) => p.match), ['meta-llama/*']);
  assert.equal(lab.litellmConfig.roles.get('qwen-coder')!.strategy, 'round-robin');
  await runTable(lab, [
    { name: 'vLLM', body: chat('qwen-coder'), expect: { status: 200, role: 'qwen-coder', backend: 'qwen-coder', attempts: 1 } },
    { name: 'same deployment, second name', body: chat('qwen-math'), expect: { status: 200, role: 'qwen-math', backend: 'qwen-coder' } },
    { name: 'ollama/ and ollama_chat/ share the Ollama server', body: chat('llama3.1:8b'), expect: { status: 200, role: 'llama3.1:8b', backend: 'llama3.1-ollama' } },
    { name: 'llama.cpp', body: chat('llama-cpp-native'), expect: { status: 200, backend: 'llama-cpp-native' } },
    { name: 'pattern route', body: chat(PATTERN_MODEL), expect: { status: 200, role: 'meta-llama/*', backend: 'meta-llama-any' } },
    {
      name: 'vLLM down: Ollama serves after num_retries', body: chat('qwen-coder'), faults: { 'qwen-coder': { kind: 'down' } },
      expect: { status: 200, role: 'qwen-coder-ollama', backend: 'qwen-coder-ollama', attempts: 4, rerouted: true },
    },
    { name: 'unknown model', body: chat('qwen-cooder'), expect: { status: 404, code: 'model_not_found' } },
  ]);
  const ollama = lab.fleet.get(lab.engineOf.get('llama3.1-ollama')!).requests().at(-1)!;
  assert.equal(ollama.path, '/api/chat', 'Ollama through its native chat API');
  const meta = lab.fleet.get(lab.engineOf.get('meta-llama-any')!).requests().at(-1)!;
  assert.equal((meta.body as { model: string }).model, PATTERN_MODEL, 'the pattern passes the requested name through');
  // litellm_settings.cache: true keeps every answer, a sampled one too, through either file.
  assert.equal(lab.litellmConfig.gateway.cache?.when, 'always');
  for (const gw of [lab.litellm, lab.native]) {
    const sampled = { ...chat('qwen-math'), temperature: 0.9 };
    const seen = [];
    for (let i = 0; i < 2; i++) seen.push((await post(gw.url, '/v1/chat/completions', sampled)).headers.get('x-fabric-cache'));
    assert.deepEqual(seen, ['miss', 'hit']);
  }
});

test('imported configs keep secrets as references and never hold their values', () => {
  for (const p of [motoko, lab]) {
    for (const v of Object.values(ENV)) assert.ok(!p.importedYaml.includes(v), 'no secret value in the imported file');
  }
  assert.match(motoko.importedYaml, /master_key: env:LITELLM_TOKEN/);
  assert.match(motoko.importedYaml, /api_key: env:OPENAI_API_KEY/);
  // What LiteLLM cannot say: which machines are workstations, often off.
  assert.match(motoko.importedYaml, /^# LiteLLM knows no machines: add `nodes:` \(GPUs, `power: workstation`/m);
  assert.match(lab.importedYaml, /router_settings\.redis_host: not mapped: .*set REDIS_URL=redis:\/\/:<REDIS_PASSWORD>@127\.0\.0\.1:6379 /);
  assert.match(lab.importedYaml, /router_settings\.redis_password: not mapped/);
  assert.ok(!/^ {2}redis:/m.test(lab.importedYaml), 'no gateway.redis without a REDIS_URL to name');
});

// ---- the CLI, as an operator runs it ----

const cliEnv = (): NodeJS.ProcessEnv => {
  const env: NodeJS.ProcessEnv = { ...process.env, ...ENV };
  delete env.FABRIC_CONFIG;
  return env;
};
function fabric(args: string[], env = cliEnv()) {
  return spawnSync(process.execPath, [MAIN, ...args], { encoding: 'utf8', env, timeout: 20_000 });
}

test('fabric config import: stdout or --out, exit codes, never a secret value', () => {
  const src = join(EXAMPLES, 'motoko.litellm.yaml');
  const help = fabric(['config', 'import', '--help']);
  assert.equal(help.status, 0);
  assert.match(help.stdout, /Usage: fabric config import FILE/);
  assert.equal(fabric(['config', 'import']).status, 2, 'FILE is required');
  assert.equal(fabric(['config', 'import', src, '--bogus']).status, 2);

  const r = fabric(['config', 'import', src]);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /^# AI Fabric config imported from motoko\.litellm\.yaml/);
  assert.match(r.stderr, /motoko\.litellm\.yaml:\d+:\d+: warning: router_settings\.provider_budget_config\.openai: covers OpenAI's own backends \(engines: \[openai\]\)\. .*\(armitage-qwen\)/);
  assert.match(r.stdout, /\nprices:\n(.*\n)* {2}openai-strong: \{input: 0\.4, output: 1\.6\}\n/);
  assert.match(r.stdout, /\nbudgets:\n(.*\n)* {2}openai:\n {4}amount: 150\n(.*\n)* {4}period: month\n(.*\n)* {4}engines: \[openai\]\n/);
  for (const v of Object.values(ENV)) assert.ok(!(r.stdout + r.stderr).includes(v));

  const out = join(dir, 'cli-import.fabric.yaml');
  const w = fabric(['config', 'import', src, '--out', out]);
  assert.equal(w.status, 0, w.stderr);
  assert.equal(readFileSync(out, 'utf8'), r.stdout, '--out writes what stdout would show');
  assert.match(w.stderr, /wrote .*cli-import\.fabric\.yaml: 5 backends, 7 roles/);
  assert.equal(fabric(['config', 'import', src, '--out', out]).status, 1, 'no overwrite without --force');
  assert.equal(fabric(['config', 'import', src, '--out', out, '--force']).status, 0);
  const check = fabric(['config', 'check', out]);
  assert.equal(check.status, 0, check.stderr);

  assert.equal(fabric(['config', 'import', join(EXAMPLES, '..', 'seeds.fabric.yaml')]).status, 1, 'a fabric config is not imported');
  assert.equal(fabric(['config', 'import', join(dir, 'missing.yaml')]).status, 1);
  const bad = join(dir, 'bad.litellm.yaml');
  writeFileSync(bad, 'model_list:\n  - model_name: x\n    litellm_params: { api_base: "http://127.0.0.1:1/v1" }\n');
  const b = fabric(['config', 'import', bad, '--out', join(dir, 'never.yaml')]);
  assert.equal(b.status, 1);
  assert.match(b.stderr, /bad\.litellm\.yaml:3:\d+: error: model_list\[0\]\.litellm_params/);
  assert.ok(!existsSync(join(dir, 'never.yaml')), 'nothing written');
});

test('fabric config import --out where it cannot write: one line naming the path and why, exit 1, and no stack trace', () => {
  const src = join(EXAMPLES, 'motoko.litellm.yaml');
  const file = join(dir, 'import-a-file');
  writeFileSync(file, 'not a folder\n');
  const cases: [string, string][] = [
    [join(file, 'x.yaml'), `${file} is a file, not a folder`],
    [dir, 'it is a folder'],
  ];
  if (process.platform === 'linux') cases.push(['/proc/fabric-import-test.yaml', 'it is under /proc, a kernel file system: choose another file'], ['/dev/full', 'no space left on device (ENOSPC)']);
  for (const [out, why] of cases) {
    const r = fabric(['config', 'import', src, '--out', out, '--force']);
    assert.equal(r.status, 1, r.stderr);
    const lines = r.stderr.trimEnd().split('\n');
    assert.equal(lines.at(-1), `fabric config import: cannot write ${out}: ${why}`);
    assert.ok(lines.slice(0, -1).every((l) => / warning: /.test(l)), r.stderr);
  }
});

test('fabric config check on a LiteLLM file prints its warnings with file:line:col', () => {
  const r = fabric(['config', 'check', join(EXAMPLES, 'lab.litellm.yaml')]);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /valid LiteLLM config/);
  for (const [key, what] of [['litellm_settings.cache_params.type', 'LiteLLM keeps it in Redis'], ['litellm_settings.cache_params.namespace', 'not carried over'],
    ['router_settings.redis_host', 'not mapped'], ['router_settings.redis_port', 'not mapped'], ['router_settings.redis_password', 'not mapped']]) {
    assert.match(r.stderr, new RegExp(`lab\\.litellm\\.yaml:\\d+:\\d+: warning: ${key!.replace('.', '\\.')}: ${what}`), key);
  }
  const json = JSON.parse(fabric(['config', 'check', join(EXAMPLES, 'lab.litellm.yaml'), '--json']).stdout);
  assert.equal(json.format, 'litellm');
});

test('fabric serve --config runs a LiteLLM file unchanged, reporting what it does not support at start', async () => {
  const gw = await spawnGateway(join(EXAMPLES, 'lab.litellm.yaml'), ENV);
  try {
    assert.match(gw.output.join('\n'), /router_settings\.redis_host: not mapped/);
    const models = await (await fetch(`${gw.url}/v1/models`)).json() as { data: { id: string }[] };
    const ids = models.data.map((m) => m.id);
    for (const id of ['qwen-coder', 'llama3.1:8b', 'llama-cpp-native']) assert.ok(ids.includes(id), id);
  } finally {
    await gw.stop();
  }
});

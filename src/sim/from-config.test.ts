// The fleet a fabric config describes, and the copy of the config that points at it.

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { parseFabricText } from '../config/load.ts';
import type { FabricConfig } from '../config/types.ts';
import { simConfigCopyText, type SimConfigCopy } from './config-copy.ts';
import { simFleetPlan } from './from-config.ts';

const SEEDS_PATH = new URL('../../examples/seeds.fabric.yaml', import.meta.url).pathname;
const SEEDS = readFileSync(SEEDS_PATH, 'utf8');
const noSecrets = { get: (): undefined => undefined };
const secretsOf = (env: Record<string, string>) => ({ get: (name: string): string | undefined => env[name] });

function seeds(): FabricConfig {
  return parseFabricText(SEEDS, SEEDS_PATH).config;
}

test('the seeds: one engine per server, and the OpenAI one serves both OpenAI models', () => {
  const { specs, engineOf } = simFleetPlan(seeds(), noSecrets);
  assert.deepEqual(specs.map((s) => s.name), ['armitage-qwen', 'wintermute-llama', 'motoko-bge', 'openai-strong']);
  assert.equal(engineOf.get('openai-cheap'), 'openai-strong');
  const openai = specs.find((s) => s.name === 'openai-strong')!;
  assert.equal(openai.protocol, 'openai');
  assert.deepEqual(openai.extraModels, [{ model: 'gpt-4o-mini', kind: 'chat', contextWindow: 128000 }]);
  const bge = specs.find((s) => s.name === 'motoko-bge')!;
  assert.deepEqual([bge.kind, bge.dimensions, bge.contextWindow, bge.port], ['embeddings', 768, 512, 0]);
  assert.equal(openai.apiKey, undefined);
});

test('vLLM engines take tools as their rendered launch would: a serve block with a tool_parser, or none (not launched by this config)', () => {
  const { specs } = simFleetPlan(seeds(), noSecrets);
  assert.equal(specs.find((s) => s.name === 'armitage-qwen')!.autoToolChoice, true, 'serve.tool_parser: hermes');
  const without = parseFabricText(SEEDS.replace('      tool_parser: hermes                   # not in the seeds: vLLM refuses requests with tools without one\n', ''), SEEDS_PATH).config;
  assert.equal(simFleetPlan(without, noSecrets).specs.find((s) => s.name === 'armitage-qwen')!.autoToolChoice, false, 'a launch without a parser refuses tool_choice auto');
  assert.equal(specs.find((s) => s.name === 'openai-strong')!.autoToolChoice, undefined, 'not vLLM');
  const byArgs = parseFabricText(SEEDS.replace('      tool_parser: hermes                   # not in the seeds: vLLM refuses requests with tools without one\n', '      extra_args: [--enable-auto-tool-choice, --tool-call-parser, hermes]\n'), SEEDS_PATH).config;
  assert.equal(simFleetPlan(byArgs, noSecrets).specs.find((s) => s.name === 'armitage-qwen')!.autoToolChoice, true, 'the flags given in extra_args count too');
  const halfArgs = parseFabricText(SEEDS.replace('      tool_parser: hermes                   # not in the seeds: vLLM refuses requests with tools without one\n', '      extra_args: [--enable-auto-tool-choice]\n'), SEEDS_PATH).config;
  assert.equal(simFleetPlan(halfArgs, noSecrets).specs.find((s) => s.name === 'armitage-qwen')!.autoToolChoice, false, 'not without a parser, which vLLM would refuse to start without');
});

test('llama.cpp engines take tools unless their launch passes --no-jinja (the last of --jinja and --no-jinja wins)', () => {
  const path = new URL('../../examples/lab.fabric.yaml', import.meta.url).pathname;
  const lab = readFileSync(path, 'utf8');
  const jinja = (serve: string): boolean | undefined => {
    const { config, issues } = parseFabricText(lab.replace('    model: llama-cpp-native\n', `    model: llama-cpp-native\n${serve}`), path);
    assert.deepEqual(issues.filter((i) => i.severity === 'error'), []);
    return simFleetPlan(config, noSecrets).specs.find((s) => s.name === 'llamacpp-native')!.jinja;
  };
  assert.equal(jinja(''), true, 'not launched by this config');
  assert.equal(jinja('    serve: { model: /models/native.gguf }\n'), true, 'on by default in llama-server');
  assert.equal(jinja('    serve: { model: /models/native.gguf, extra_args: [--no-jinja] }\n'), false);
  assert.equal(jinja('    serve: { model: /models/native.gguf, extra_args: [--no-jinja, --jinja] }\n'), true);
  assert.equal(simFleetPlan(seeds(), noSecrets).specs.find((s) => s.name === 'armitage-qwen')!.jinja, undefined, 'not llama.cpp');
});

test('a backend whose key is set has its engine require it', () => {
  const { specs, keyEnvs } = simFleetPlan(seeds(), secretsOf({ OPENAI_API_KEY: 'sk-test' }));
  assert.deepEqual(specs.find((s) => s.name === 'openai-strong')!.apiKey, ['sk-test']);
  assert.deepEqual(keyEnvs.get('openai-strong'), ['OPENAI_API_KEY']);
  assert.equal(specs.find((s) => s.name === 'armitage-qwen')!.apiKey, undefined);
});

test('loopback backends keep their port, localhost and 127.0.0.1 being one server; SGLang speaks like vLLM', () => {
  const { config } = parseFabricText(`
backends:
  a: { engine: ollama, url: 'http://localhost:11434', model: 'qwen2.5:7b' }
  b: { engine: ollama, url: 'http://127.0.0.1:11434', model: nomic-embed-text }
  c: { engine: sglang, url: 'http://127.0.0.1:30000/v1', model: m, api_key: env:SGL_KEY }
roles:
  chat: { kind: chat, backends: [a, c] }
  embed: { kind: embeddings, backends: [b], dimensions: 16 }
`, 'x.yaml');
  const { specs, engineOf } = simFleetPlan(config, secretsOf({ SGL_KEY: 'k1' }));
  assert.equal(specs.length, 2);
  assert.equal(engineOf.get('b'), 'a');
  assert.equal(specs[0]!.port, 11434);
  assert.deepEqual(specs[0]!.extraModels, [{ model: 'nomic-embed-text', kind: 'embeddings', dimensions: 16 }]);
  assert.deepEqual([specs[1]!.protocol, specs[1]!.port, specs[1]!.apiKey], ['vllm', 30000, ['k1']]);
});

test('a rerank role\'s backends become rerank models: the engine\'s main one, or an extra one on a shared server', () => {
  const { config, issues } = parseFabricText(`
backends:
  v: { engine: vllm, url: 'http://127.0.0.1:8010/v1', model: BAAI/bge-reranker-v2-m3 }
  l: { engine: llamacpp, url: 'http://127.0.0.1:8011', model: bge-reranker-v2-m3-q8_0 }
  c: { engine: vllm, url: 'http://127.0.0.1:8012/v1', model: qwen }
  d: { engine: vllm, url: 'http://127.0.0.1:8012/v1', model: jina-reranker, context_window: 1024 }
roles:
  rerank: { kind: rerank, backends: [v, l, d] }
  chat: { kind: chat, backends: [c] }
`, 'x.yaml');
  assert.deepEqual(issues.filter((i) => i.severity === 'error'), []);
  const { specs } = simFleetPlan(config, noSecrets);
  assert.deepEqual(specs.map((s) => [s.name, s.protocol, s.kind]), [['v', 'vllm', 'rerank'], ['l', 'llamacpp', 'rerank'], ['c', 'vllm', 'chat']]);
  assert.deepEqual(specs[2]!.extraModels, [{ model: 'jina-reranker', kind: 'rerank', contextWindow: 1024 }]);
});

function copy(over: Partial<SimConfigCopy> = {}): { text: string; config: FabricConfig } {
  const text = simConfigCopyText({
    yaml: SEEDS, config: seeds(), source: 'examples/seeds.fabric.yaml', out: '/tmp/sim.fabric.yaml',
    engineUrl: (b) => `http://127.0.0.1:${10_000 + b.length}`, secrets: noSecrets, envFile: undefined, host: '127.0.0.1', port: 4000,
    ...over,
  });
  const parsed = parseFabricText(text, '/tmp/sim.fabric.yaml');
  const errors = parsed.issues.filter((i) => i.severity === 'error');
  assert.deepEqual(errors, [], 'the copy validates');
  return { text, config: parsed.config };
}

test('the copy of the seeds is valid, and its budget still covers the (simulated) OpenAI backends', () => {
  const { config } = copy();
  assert.deepEqual(config.budgets.map((b) => [b.name, b.backends.sort(), b.fallback]), [['openai', ['openai-cheap', 'openai-strong'], 'local/chat']]);
  assert.equal(config.simulated, true);
  for (const b of config.backends.values()) assert.match(b.url, /^http:\/\/127\.0\.0\.1:\d+(\/v1)?$/);
  assert.equal(config.backends.get('openai-cheap')!.url, 'http://127.0.0.1:10012/v1');
  for (const name of ['openai-strong', 'openai-cheap']) {
    const b = config.backends.get(name)!;
    assert.deepEqual([b.engine, b.cloud, b.apiKey], ['openai-compatible', true, undefined]);
  }
  assert.equal(config.backends.get('armitage-qwen')!.cloud, undefined);
  for (const b of config.backends.values()) assert.equal(b.serve, undefined);
});

test('the copy listens on loopback, says so at the top, and says what changed', () => {
  const { text, config } = copy();
  assert.equal(config.gateway.host, '127.0.0.1');
  assert.equal(config.gateway.port, 4000);
  const head = text.split('\n').slice(0, 12).join('\n');
  assert.match(head, /^# SIMULATED copy of examples\/seeds\.fabric\.yaml/);
  assert.match(head, /listens on 127\.0\.0\.1:4000/);
  assert.match(head, /budgets\.openai: engines: \[openai\]/);
  assert.match(text, /host: 127\.0\.0\.1 # fabric sim/);
  assert.doesNotMatch(text, /0\.0\.0\.0|port: 8000/);
  const other = copy({ host: '::1', port: 4100 }).config.gateway;
  assert.deepEqual([other.host, other.port], ['::1', 4100]);
});

test('a key that is set stays, for the gateway to send and the engine to check; the .env comes along', () => {
  const { config } = copy({ secrets: secretsOf({ OPENAI_API_KEY: 'sk-test' }), envFile: '/srv/fabric/.env' });
  assert.deepEqual(config.backends.get('openai-strong')!.apiKey, { env: 'OPENAI_API_KEY' });
  assert.equal(config.gateway.envFile, '/srv/fabric/.env');
});

test('a copy written beside the original gets its own state directory; one written elsewhere keeps data/ beside itself', () => {
  const beside = copy({ out: 'examples/sim.fabric.yaml' });
  assert.equal(beside.config.gateway.dataDir, 'data-sim');
  assert.match(beside.text, /gateway\.data_dir: data-sim, apart from the original's/);
  assert.equal(copy().config.gateway.dataDir, undefined, '/tmp is not the original\'s directory');
});

test('a copy elsewhere whose relative data_dir still lands on the original\'s state gets its own too', () => {
  const yaml = SEEDS.replace(/^gateway:\n/m, 'gateway:\n  data_dir: ../state\n');
  assert.notEqual(yaml, SEEDS);
  const parsed = parseFabricText(yaml, '/srv/prod/fabric.yaml');
  const shared = copy({ yaml, config: parsed.config, source: '/srv/prod/fabric.yaml', out: '/srv/drill/sim.fabric.yaml' });
  assert.equal(shared.config.gateway.dataDir, '../state-sim');
  const apart = copy({ yaml, config: parsed.config, source: '/srv/prod/fabric.yaml', out: '/srv/drill/deeper/sim.fabric.yaml' });
  assert.equal(apart.config.gateway.dataDir, '../state', '/srv/drill/state is not /srv/state');
});

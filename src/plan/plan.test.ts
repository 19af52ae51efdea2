// The planner on whole fabrics: the seeds' own, and misconfigurations it must flag.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseFabricText } from '../config/load.ts';
import type { FabricConfig } from '../config/types.ts';
import { planFabric, type EnginePlan, type Plan } from './plan.ts';
import { formatPlan } from './table.ts';
import { GiB } from './memory.ts';
import { tempDir } from '../../test/support/temp-dir.ts';

const EXAMPLES = new URL('../../examples/', import.meta.url).pathname;

function load(text: string, file = join(tmpdir(), 'plan-test.yaml')): FabricConfig {
  const { config, issues } = parseFabricText(text, file);
  const errors = issues.filter((i) => i.severity === 'error');
  assert.deepEqual(errors, [], 'the test config is valid');
  return config;
}

const example = (name: string): Plan => {
  const path = join(EXAMPLES, name);
  return planFabric(load(readFileSync(path, 'utf8'), path));
};

const engine = (plan: Plan, backend: string): EnginePlan => {
  const e = plan.gpus.flatMap((g) => g.engines).find((x) => x.backend === backend);
  assert.ok(e !== undefined, `${backend} is planned`);
  return e;
};

const codes = (plan: Plan): string[] => plan.findings.map((f) => `${f.code} ${f.where}`);

function fabric(nodes: string, backends: string | string[], roles = ''): string {
  const list = typeof backends === 'string' ? backends : backends.join('\n');
  return `version: 1\nnodes:\n${nodes}\nbackends:\n${list}\nroles:\n${roles || '  r:\n    kind: chat\n    backends: [a]\n'}`;
}

/** One vLLM backend as YAML under backends:, served on NODE at PORT; `more` adds keys such as serve and aliases. */
function vllm(name: string, node: string, port: number, model: string, more: Record<string, string> = {}): string {
  return [`  ${name}:`, '    engine: vllm', `    node: ${node}`, `    url: http://${node}:${port}/v1`, `    model: ${model}`,
    ...Object.entries(more).map(([k, v]) => `    ${k}: ${v}`)].join('\n');
}

const NODE_8G = '  box:\n    power: always-on\n    gpus: [{ model: RTX 4070, memory: 8GiB }]';

test('the seeds\' lab: Qwen2.5-Coder-7B AWQ at 0.90 of the Quadro RTX 5000 reproduces the logged 7.36 GB and 33.63x', () => {
  const plan = example('lab.fabric.yaml');
  const e = engine(plan, 'vllm-qwen-coder');
  assert.equal(e.kvBytesPerToken, 56 * 1024);
  assert.equal(e.maxModelLen, 4096);
  assert.ok(Math.abs(e.kvCacheBytes / GiB - 7.36) / 7.36 < 0.05, `KV ${e.kvCacheBytes / GiB} GiB`);
  assert.ok(Math.abs(e.maxConcurrency! - 33.63) / 33.63 < 0.05, `concurrency ${e.maxConcurrency}`);
  // …and what the lab's authors found by hand: Llama 2 13B does not fit beside it ("requires 24GB+ VRAM"),
  // the pattern route asks the one vLLM server for a model it does not serve, Ollama has no room left.
  assert.ok(codes(plan).includes('not-served-sizing backends.vllm-passthrough'));
  assert.match(plan.findings.find((f) => f.code === 'not-served-sizing')!.message, /more than lab's 16\.00 GiB/);
  assert.ok(codes(plan).includes('one-server-two-models backends.vllm-passthrough'));
  assert.ok(codes(plan).includes('gpu-shared-offload backends.ollama-qwen-coder'));
  assert.equal(plan.errors, 0);
});

test('the seeds\' motoko plan: a 7B AWQ reasoning model does not fit 45% of 8 GB next to embeddings at 30%', () => {
  const plan = example('motoko-2080.fabric.yaml');
  const reasoning = engine(plan, 'motoko-reasoning');
  assert.equal(reasoning.shareBytes, Math.round(0.45 * 8 * GiB));
  assert.ok(reasoning.weightsBytes > reasoning.shareBytes, 'weights alone exceed the share');
  assert.ok(codes(plan).includes('weights-do-not-fit backends.motoko-reasoning'));
  assert.equal(plan.errors, 1);
  const f = plan.findings.find((x) => x.code === 'weights-do-not-fit')!;
  assert.match(f.message, /weights alone take 3\.8\d GiB but its share is 3\.60 GiB/);
  assert.match(f.message, /at max_model_len 4,096 it needs gpu_memory_utilization ≥ 0\.\d\d/);
  // The embeddings model reserves 2.4 GiB and needs a fraction of it.
  const bge = engine(plan, 'motoko-bge');
  assert.equal(bge.arch?.kind, 'encoder');
  assert.equal(bge.maxConcurrency, undefined);
  assert.ok(bge.needBytes < 0.5 * GiB);
  assert.ok(codes(plan).includes('share-mostly-unused backends.motoko-bge'));
  assert.equal(plan.gpus[0]!.utilizationSum.toFixed(2), '0.75');
});

test('the seeds\' deployed fabric plans without errors and says where it is tight', () => {
  const plan = example('seeds.fabric.yaml');
  assert.equal(plan.errors, 0, formatPlan(plan, 'seeds'));
  const llama = engine(plan, 'wintermute-llama');
  assert.equal(llama.kvBytesPerToken, 128 * 1024);
  assert.ok(llama.maxConcurrency! > 2 && llama.maxConcurrency! < 6);
  // Qwen2.5-7B AWQ at 8192 tokens on an 8 GB card is on the edge: a warning, since the overhead is an estimate.
  assert.ok(codes(plan).includes('kv-cache-tight backends.armitage-qwen'));
  for (const r of plan.roles) assert.equal(r.alwaysOn, true, r.role);
  assert.equal(plan.roles.find((r) => r.role === 'chat-fast')!.via, 'openai/strong');
});

test('utilization fractions past 1 on one GPU are an error', () => {
  const plan = planFabric(load(fabric(NODE_8G, [
    vllm('a', 'box', 8000, 'Qwen/Qwen2.5-0.5B-Instruct', { serve: '{ gpu_memory_utilization: 0.6, max_model_len: 4096 }' }),
    vllm('b', 'box', 8001, 'BAAI/bge-small-en-v1.5', { aliases: '[emb]', serve: '{ gpu_memory_utilization: 0.5 }' }),
  ])));
  assert.ok(codes(plan).includes('gpu-overcommitted nodes.box.gpus[0]'), codes(plan).join('\n'));
  assert.match(plan.findings[0]!.message, /a 0\.60 \+ b 0\.50 = 1\.10, past 1/);
});

test('shares that fit but leave no room for each process\'s CUDA context and graphs are a warning', () => {
  const plan = planFabric(load(fabric(NODE_8G, [
    vllm('a', 'box', 8000, 'Qwen/Qwen2.5-0.5B-Instruct', { serve: '{ gpu_memory_utilization: 0.5, max_model_len: 4096 }' }),
    vllm('b', 'box', 8001, 'Qwen/Qwen2.5-0.5B-Instruct', { aliases: '[b1]', serve: '{ gpu_memory_utilization: 0.45, max_model_len: 4096 }' }),
  ])));
  assert.deepEqual(codes(plan).filter((c) => c.startsWith('gpu-')), ['gpu-startup-tight nodes.box.gpus[0]']);
  assert.equal(plan.errors, 0);
});

test('a share that holds the weights but not one full-length request is an error, with the way out', () => {
  const plan = planFabric(load(fabric(NODE_8G, vllm('a', 'box', 8000, 'meta-llama/Llama-3.1-8B-Instruct-AWQ', { serve: '{ gpu_memory_utilization: 0.85 }' }))));
  const f = plan.findings.find((x) => x.code === 'kv-cache-too-small');
  assert.ok(f !== undefined, codes(plan).join('\n'));
  assert.match(f.message, /one 131,072-token request \(the model's own; set serve\.max_model_len to serve less\) needs 16\.00 GiB/);
  assert.match(f.message, /set max_model_len ≤ [\d,]+/);
  assert.equal(engine(plan, 'a').ok, false);
});

test('a max model length beyond the model\'s is an error', () => {
  const plan = planFabric(load(fabric('  big:\n    power: always-on\n    gpus: [{ model: RTX 4090, memory: 24GiB }]', vllm('a', 'big', 8000, 'casperhansen/llama-3-8b-instruct-awq', { serve: '{ max_model_len: 16384 }' }))));
  assert.ok(codes(plan).includes('max-len-beyond-model backends.a'), codes(plan).join('\n'));
  assert.match(plan.findings.find((f) => f.code === 'max-len-beyond-model')!.message, /16,384 is beyond Llama 3 8B's 8,192/);
});

test('a role served only by workstations with no always-on fallback is flagged; one reaching the cloud is not', () => {
  const nodes = '  ws:\n    power: workstation\n    gpus: [{ model: RTX 4070, memory: 12GiB }]\n  ws2:\n    power: workstation';
  const backends = [
    vllm('a', 'ws', 8000, 'm'),
    vllm('b', 'ws2', 8000, 'm'),
    `  cloud:
    engine: openai
    model: gpt-4o-mini
    api_key: env:OPENAI_API_KEY`,
  ];
  const plan = planFabric(load(fabric(nodes, backends, `  fast:
    kind: chat
    backends: [a]
    fallbacks: [deep]
  deep:
    kind: chat
    backends: [b]
  safe:
    kind: chat
    backends: [a]
    fallbacks: [deep, openai]
  openai:
    kind: chat
    backends: [cloud]
`)));
  assert.deepEqual(codes(plan).filter((c) => c.startsWith('no-always-on')).sort(), ['no-always-on-fallback roles.deep', 'no-always-on-fallback roles.fast']);
  assert.equal(plan.roles.find((r) => r.role === 'safe')!.via, 'openai');
});

test('a model outside the catalogue is sized from serve.hf_config, relative to the config file', () => {
  const dir = tempDir('fabric-plan-');
  writeFileSync(join(dir, 'config.json'), JSON.stringify({
    model_type: 'llama', hidden_size: 2048, intermediate_size: 5632, num_attention_heads: 32, num_key_value_heads: 4,
    num_hidden_layers: 22, vocab_size: 32000, max_position_embeddings: 2048, torch_dtype: 'bfloat16',
  }));
  const backends = [
    vllm('a', 'box', 8000, 'acme/tiny-llama-1.1b', { serve: '{ hf_config: config.json }' }),
    vllm('b', 'box', 8001, 'acme/unknown-model', { aliases: '[u]', serve: '{ gpu_memory_utilization: 0.1 }' }),
  ];
  const plan = planFabric(load(fabric(NODE_8G, backends), join(dir, 'fabric.yaml')));
  const a = engine(plan, 'a');
  assert.equal(a.arch?.source, 'hf-config');
  assert.equal(a.kvBytesPerToken, 22 * 4 * 64 * 2 * 2);
  assert.equal(a.maxModelLen, 2048);
  assert.ok(codes(plan).includes('unknown-model backends.b'));
  assert.equal(plan.findings.find((f) => f.code === 'unknown-model')!.severity, 'warning');
});

test('vLLM on a GPU older than compute capability 7.0 is an error: its kernels are not built for it', () => {
  const pascal = '  p:\n    power: always-on\n    gpus: [{ model: GTX 1080 Ti, memory: 11GiB }]';
  const plan = planFabric(load(fabric(pascal, vllm('a', 'p', 8000, 'Qwen/Qwen2.5-1.5B-Instruct', { serve: '{ max_model_len: 4096 }' }))));
  assert.ok(codes(plan).includes('gpu-too-old-for-vllm backends.a'), codes(plan).join('\n'));
  assert.match(plan.findings.find((f) => f.code === 'gpu-too-old-for-vllm')!.message, /compute capability 7\.0 or later; GTX 1080 Ti has 6\.1/);
  assert.ok(plan.errors > 0);
  // A Turing card is fine.
  const turing = planFabric(load(fabric('  t:\n    power: always-on\n    gpus: [{ model: RTX 2080 Ti, memory: 11GiB }]', vllm('a', 't', 8000, 'Qwen/Qwen2.5-1.5B-Instruct', { serve: '{ max_model_len: 4096 }' }))));
  assert.ok(!codes(turing).some((c) => c.startsWith('gpu-too-old')));
});

test('a workstation\'s GPU whose vLLM share leaves under 1 GiB for the desktop is a warning, until memory is reserved for it', () => {
  const desk = (reserved: string, power = 'workstation'): string => `  desk:\n    power: ${power}\n    gpus: [{ model: RTX 4070, memory: 12GiB${reserved} }]`;
  const backend = vllm('a', 'desk', 8000, 'Qwen/Qwen2.5-1.5B-Instruct', { serve: '{ gpu_memory_utilization: 0.9, max_model_len: 4096 }' });
  const tight = planFabric(load(fabric(desk(''), backend)));
  assert.ok(codes(tight).includes('desktop-headroom nodes.desk.gpus[0]'), codes(tight).join('\n'));
  assert.match(tight.findings.find((f) => f.code === 'desktop-headroom')!.message, /leaves about 0\.\d\d GiB for its desktop/);
  // An always-on server has no desktop; a reservation says how much it holds, and the shares are checked against the rest.
  assert.ok(!codes(planFabric(load(fabric(desk('', 'always-on'), backend)))).some((c) => c.startsWith('desktop-headroom')));
  const reserved = planFabric(load(fabric(desk(', reserved: 1GiB'), backend)));
  assert.ok(!codes(reserved).some((c) => c.startsWith('desktop-headroom')));
  assert.ok(codes(reserved).includes('gpu-startup-tight nodes.desk.gpus[0]'), 'the reserved GiB does not fit beside a 0.9 share');
  // A share that leaves room is quiet.
  const roomy = planFabric(load(fabric(desk(''), vllm('a', 'desk', 8000, 'Qwen/Qwen2.5-1.5B-Instruct', { serve: '{ gpu_memory_utilization: 0.75, max_model_len: 4096 }' }))));
  assert.ok(!codes(roomy).some((c) => c.startsWith('desktop-headroom')));
});

test('bfloat16 on a pre-Ampere GPU: explicit is an error, auto falls back to float16', () => {
  const turing = '  t:\n    power: always-on\n    gpus: [{ model: RTX 2080 Ti, memory: 11GiB }]';
  const plan = planFabric(load(fabric(turing, [
    vllm('a', 't', 8000, 'Qwen/Qwen2.5-1.5B-Instruct', { serve: '{ dtype: bfloat16, max_model_len: 4096 }' }),
    vllm('b', 't', 8001, 'Qwen/Qwen2.5-0.5B-Instruct', { aliases: '[bb]', serve: '{ max_model_len: 4096, gpu_memory_utilization: 0.2 }' }),
  ])));
  assert.ok(codes(plan).includes('dtype-unsupported backends.a'));
  assert.ok(codes(plan).includes('dtype-fallback backends.b'));
  assert.equal(engine(plan, 'b').dtype, 'float16');
});

test('the gateway\'s context window longer than the engine\'s max length is flagged', () => {
  const plan = planFabric(load(fabric(NODE_8G, vllm('a', 'box', 8000, 'Qwen/Qwen2.5-0.5B-Instruct', { context_window: '32768', serve: '{ max_model_len: 8192 }' }))));
  assert.ok(codes(plan).includes('context-window-mismatch backends.a.context_window'));
});

test('an Ollama backend is planned with the context the gateway asks for (num_ctx: context_window, else serve.max_model_len)', () => {
  const ollama = (ctx: string, serve: string): string => ['  a:', '    engine: ollama', '    node: box', '    url: http://box:11434', '    model: qwen2.5:7b', ctx, `    serve: ${serve}`].filter((l) => l !== '').join('\n');
  const wide = planFabric(load(fabric(NODE_8G, ollama('    context_window: 32768', '{ max_model_len: 8192 }'))));
  const e = engine(wide, 'a');
  assert.equal(e.maxModelLen, 32768);
  assert.equal(e.kvCacheBytes, e.kvBytesPerToken! * 32768);
  assert.ok(!codes(wide).some((c) => c.startsWith('context-window-mismatch')), 'Ollama loads what the gateway asks: no mismatch');
  assert.ok(codes(wide).includes('ollama-max-len-unused backends.a.serve.max_model_len'), 'the max_model_len beside it is not what is used');
  const beyond = planFabric(load(fabric(NODE_8G, ollama('    context_window: 65536', '{}'))));
  assert.match(beyond.findings.find((f) => f.code === 'max-len-beyond-model' && f.where === 'backends.a.context_window')?.message ?? codes(beyond).join('\n'), /is 65,536, beyond Qwen2\.5 7B's 32,768: .*set context_window to 32,768 or less/);
  assert.equal(engine(planFabric(load(fabric(NODE_8G, ollama('', '{ max_model_len: 8192 }')))), 'a').maxModelLen, 8192);
  assert.equal(engine(planFabric(load(fabric(NODE_8G, ollama('', '{}')))), 'a').maxModelLen, 4096);
});

test('a llama.cpp engine: without max_num_seqs, llama-server\'s 4 slots share max_model_len tokens; with it, each slot has them', () => {
  const llama = (serve: string): string => ['  a:', '    engine: llamacpp', '    node: box', '    url: http://box:8080/v1', '    model: qwen', `    serve: ${serve}`].join('\n');
  const shared = engine(planFabric(load(fabric(NODE_8G, llama('{ model: /m/qwen2.5-7b-instruct-q4_k_m.gguf, max_model_len: 8192 }')))), 'a');
  assert.deepEqual([shared.kvTokens, shared.maxConcurrency], [8192, 4]);
  const four = engine(planFabric(load(fabric(NODE_8G, llama('{ model: /m/qwen2.5-7b-instruct-q4_k_m.gguf, max_model_len: 8192, max_num_seqs: 2 }')))), 'a');
  assert.deepEqual([four.kvTokens, four.maxConcurrency, four.kvCacheBytes], [16384, 2, shared.kvCacheBytes * 2]);
});

test('tensor parallelism plans each GPU with half the weights and KV heads', () => {
  const two = '  duo:\n    power: always-on\n    gpus: [{ model: RTX 3090, memory: 24GiB }, { model: RTX 3090, memory: 24GiB }]';
  const plan = planFabric(load(fabric(two, vllm('a', 'duo', 8000, 'Qwen/Qwen2.5-14B-Instruct', { serve: '{ gpu: [0, 1], max_model_len: 16384 }' }))));
  assert.equal(plan.gpus[0]!.engines.length, 1);
  assert.equal(plan.gpus[1]!.engines.length, 1);
  const e = plan.gpus[0]!.engines[0]!;
  assert.equal(e.kvBytesPerToken, 48 * 4 * 128 * 2 * 2);
  assert.ok(e.weightsBytes < 14 * GiB && e.weightsBytes > 13 * GiB, `${e.weightsBytes / GiB}`);
  assert.equal(plan.errors, 0, codes(plan).join('\n'));
});

test('the table spells out each figure; the JSON carries bytes', () => {
  const plan = example('seeds.fabric.yaml');
  const text = formatPlan(plan, 'seeds.fabric.yaml');
  assert.match(text, /per token 56 KiB = 28 layers × 4 KV heads × 128 head dim × 2 × 2 B/);
  assert.match(text, /share {5}0\.30 × 8\.00 GiB = 2\.40 GiB/);
  assert.match(text, /Findings: 0 errors, 3 warnings/);
  const json = JSON.parse(JSON.stringify(plan)) as Plan;
  assert.equal(json.gpus[0]!.engines[0]!.shareBytes, Math.round(0.3 * 8 * GiB));
  assert.equal(json.assumptions.blockSize, 16);
});

test('a reranker beside embeddings on one card: sized as the encoder it is (no KV cache, its weights in float16), no errors', () => {
  const plan = planFabric(load(fabric(NODE_8G, [
    vllm('emb', 'box', 8200, 'BAAI/bge-base-en-v1.5', { serve: '{ gpu_memory_utilization: 0.3 }' }),
    vllm('rr', 'box', 8400, 'BAAI/bge-reranker-v2-m3', { serve: '{ gpu_memory_utilization: 0.3 }' }),
  ], '  e:\n    kind: embeddings\n    backends: [emb]\n  r:\n    kind: rerank\n    backends: [rr]\n')));
  const rr = engine(plan, 'rr');
  assert.equal(rr.arch?.kind, 'encoder');
  assert.equal(rr.kvBytesPerToken, 0);
  // vLLM's dtype auto serves a float32 checkpoint in float16.
  assert.ok(rr.weightsBytes > 1.0 * GiB && rr.weightsBytes < 1.1 * GiB, `568M parameters in float16: ${rr.weightsBytes / GiB} GiB`);
  assert.equal(plan.errors, 0, formatPlan(plan, 'rerank'));
});

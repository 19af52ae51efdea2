// The planner's arithmetic against vLLM's own formulas and numbers vLLM logged for known models.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { lookupModel, type ModelArch } from './catalogue.ts';
import { ASSUMPTIONS, GiB, kvBlocks, kvBytesPerToken, longestFittingLen, maxConcurrency, paramCounts, vllmActivation, weights } from './memory.ts';
import { QUANTS, kvElementBytes, resolveQuant } from './quantization.ts';
import { computeCapability } from './gpus.ts';

const arch = (id: string): ModelArch => {
  const a = lookupModel(id);
  assert.ok(a !== undefined, `${id} is in the catalogue`);
  return a;
};

const within = (actual: number, expected: number, fraction: number, what: string): void => {
  assert.ok(Math.abs(actual - expected) <= Math.abs(expected) * fraction, `${what}: ${actual} is not within ${fraction * 100}% of ${expected}`);
};

test('bytes per cached token: layers × KV heads × head dim × 2 × dtype size', () => {
  // Qwen2.5-7B: 28 × 4 × 128 × 2 × 2 B = 56 KiB (the worked example).
  assert.equal(kvBytesPerToken(arch('Qwen/Qwen2.5-7B-Instruct-AWQ'), 2), 56 * 1024);
  assert.equal(kvBytesPerToken(arch('Qwen/Qwen2.5-Coder-7B-Instruct-AWQ'), 2), 56 * 1024);
  // Llama 3 8B / Mistral 7B: 32 × 8 × 128 × 2 × 2 = 128 KiB; Llama 2 13B has no GQA: 40 × 40 × 128 × 2 × 2.
  assert.equal(kvBytesPerToken(arch('casperhansen/llama-3-8b-instruct-awq'), 2), 128 * 1024);
  assert.equal(kvBytesPerToken(arch('mistralai/Mistral-7B-Instruct-v0.2-AWQ'), 2), 128 * 1024);
  assert.equal(kvBytesPerToken(arch('meta-llama/Llama-2-13b-chat-hf'), 2), 800 * 1024);
  // Gemma 2 9B: head dim 256 → 42 × 8 × 256 × 2 × 2 = 336 KiB.
  assert.equal(kvBytesPerToken(arch('google/gemma-2-9b-it-AWQ'), 2), 336 * 1024);
  // An fp8 KV cache halves it; tensor parallelism splits the KV heads.
  assert.equal(kvBytesPerToken(arch('Qwen/Qwen2.5-7B-Instruct'), kvElementBytes('fp8', 2)), 28 * 1024);
  assert.equal(kvBytesPerToken(arch('meta-llama/Llama-3.1-8B-Instruct'), 2, 2), 64 * 1024);
  // Encoders cache nothing.
  assert.equal(kvBytesPerToken(arch('BAAI/bge-base-en-v1.5'), 2), 0);
});

test('parameter counts match the published model sizes', () => {
  within(paramCounts(arch('Qwen/Qwen2.5-7B-Instruct')).total, 7.62e9, 0.01, 'Qwen2.5-7B');
  within(paramCounts(arch('meta-llama/Meta-Llama-3-8B-Instruct')).total, 8.03e9, 0.01, 'Llama 3 8B');
  within(paramCounts(arch('mistralai/Mistral-7B-Instruct-v0.2')).total, 7.24e9, 0.01, 'Mistral 7B');
  within(paramCounts(arch('meta-llama/Llama-2-13b-chat-hf')).total, 13.0e9, 0.01, 'Llama 2 13B');
  within(paramCounts(arch('google/gemma-2-9b-it')).total, 9.24e9, 0.01, 'Gemma 2 9B');
  within(paramCounts(arch('BAAI/bge-base-en-v1.5')).total, 109.5e6, 0.01, 'BGE base');
  within(paramCounts(arch('BAAI/bge-large-en-v1.5')).total, 335e6, 0.01, 'BGE large');
  within(paramCounts(arch('BAAI/bge-reranker-base')).total, 278e6, 0.01, 'BGE reranker base');
  within(paramCounts(arch('BAAI/bge-reranker-v2-m3')).total, 568e6, 0.01, 'BGE reranker v2 m3');
  within(paramCounts(arch('Qwen/Qwen2.5-0.5B-Instruct')).total, 0.494e9, 0.01, 'Qwen2.5-0.5B');
});

test('weights: parameters × bits of the quantization; embeddings stay 16-bit under AWQ', () => {
  // vLLM logs "model weights take 5.20GiB" for Qwen2.5-7B-Instruct-AWQ (vllm-project/vllm#13882).
  const qwen = weights(arch('Qwen/Qwen2.5-7B-Instruct-AWQ'), QUANTS.awq, 2);
  within(qwen.bytes / GiB, 5.20, 0.01, 'Qwen2.5-7B AWQ weights (GiB)');
  assert.equal(qwen.linearBits, 4 + 16 / 128 + 4 / 128);
  assert.equal(qwen.otherBits, 16);
  // Llama 3.1 8B in bf16: vLLM logs 14.99 GiB.
  within(weights(arch('meta-llama/Llama-3.1-8B-Instruct'), QUANTS.none, 2).bytes / GiB, 14.99, 0.01, 'Llama 3.1 8B bf16');
  // Llama 2 13B at fp16: the seeds' "requires 24GB+ VRAM".
  assert.ok(weights(arch('meta-llama/Llama-2-13b-chat-hf'), QUANTS.none, 2).bytes > 24 * GiB);
  // Tensor parallelism halves each GPU's part.
  const whole = weights(arch('meta-llama/Llama-3.1-8B-Instruct'), QUANTS.none, 2).bytes;
  within(weights(arch('meta-llama/Llama-3.1-8B-Instruct'), QUANTS.none, 2, 2).bytes, whole / 2, 0.001, 'TP 2');
  // GGUF averages over every tensor: Ollama's qwen2.5-coder:7b (Q4_K_M) is a 4.7 GB download.
  within(weights(arch('qwen2.5-coder:7b'), QUANTS.q4_k_m, 2).bytes / 1e9, 4.68, 0.03, 'Q4_K_M file size (GB)');
});

test('blocks and "Maximum concurrency for N tokens per request" as vLLM computes them', () => {
  // The seeds' Quadro RTX 5000 log: "KV Cache: 7.36GB available", "33.63x for 4096-token requests".
  const blocks = kvBlocks(7.36 * GiB, 56 * 1024);
  within(maxConcurrency(blocks, 4096), 33.63, 0.002, 'Qwen2.5-Coder-7B at 4096');
  // vLLM V1 logs: "GPU KV cache size: 417,136 tokens" → "Maximum concurrency for 131,072 tokens per request: 3.18x".
  assert.equal(maxConcurrency(417_136 / 16, 131_072).toFixed(2), '3.18');
  // "# GPU blocks: 1381" → "Maximum concurrency for 2048 tokens per request: 10.79x" (vllm-project/vllm#12569).
  assert.equal(maxConcurrency(1381, 2048).toFixed(2), '10.79');
  // A partial block still takes a whole block.
  assert.equal(maxConcurrency(100, 17), 50);
  assert.equal(longestFittingLen(198), 3168);
  assert.equal(kvBlocks(-1, 1024), 0);
});

test('KV cache = total × utilization − weights − activation − non-torch (vLLM V1 on an H100)', () => {
  // llm-d's measured Llama-3.1-8B run: 79.18 GiB, util 0.9, weights 14.99, activation 4.76, non-torch 0.13 → 51.38 GiB.
  const kv = 0.9 * 79.18 - 14.99 - 4.76 - 0.13;
  assert.equal(kv.toFixed(2), '51.38');
  // The activation estimate at that run's 8192 batched tokens × 1024 sequences is close to the measured 4.76 GiB.
  const act = vllmActivation(arch('meta-llama/Llama-3.1-8B-Instruct'), { batchedTokens: 8192, maxNumSeqs: 1024, actBytes: 2, dequant: false, tp: 1 });
  within(act.total / GiB, 4.76, 0.1, 'activation estimate');
  within(ASSUMPTIONS.nonTorchBytes / GiB, 0.13, 0.001, 'non-torch');
});

test('quantization is read from the name, or the engine default', () => {
  assert.equal(resolveQuant('vllm', 'Qwen/Qwen2.5-7B-Instruct-AWQ', undefined).spec.name, 'awq');
  assert.equal(resolveQuant('vllm', 'Qwen/Qwen2.5-7B-Instruct-GPTQ-Int4', undefined).spec.name, 'gptq');
  assert.equal(resolveQuant('vllm', 'neuralmagic/Meta-Llama-3.1-8B-Instruct-FP8', undefined).spec.name, 'fp8');
  assert.equal(resolveQuant('vllm', 'meta-llama/Llama-2-13b-chat-hf', undefined).spec.name, 'none');
  assert.equal(resolveQuant('vllm', 'x/awq-not-really', 'none').source, 'config');
  assert.equal(resolveQuant('ollama', 'qwen2.5-coder:7b', undefined).spec.name, 'q4_k_m');
  assert.equal(resolveQuant('ollama', 'llama3.1:8b-instruct-q8_0', undefined).spec.name, 'q8_0');
  assert.equal(resolveQuant('llamacpp', '/models/Meta-Llama-3.1-8B-Instruct-Q5_K_M.gguf', undefined).spec.name, 'q5_k_m');
  assert.equal(resolveQuant('llamacpp', '/models/qwen2.5-7b-instruct-q4_0.gguf', undefined).spec.name, 'q4_0');
});

test('the catalogue knows the seeds\' models and their neighbours, by repo id or Ollama tag', () => {
  const cases: [string, string][] = [
    ['Qwen/Qwen2.5-7B-Instruct-AWQ', 'Qwen2.5 7B'],
    ['Qwen/Qwen2.5-Coder-7B-Instruct-AWQ', 'Qwen2.5-Coder 7B'],
    ['qwen2.5-coder:7b', 'Qwen2.5-Coder 7B'],
    ['casperhansen/llama-3-8b-instruct-awq', 'Llama 3 8B'],
    ['meta-llama/Meta-Llama-3.1-8B-Instruct-AWQ', 'Llama 3.1 8B'],
    ['llama3.1:8b', 'Llama 3.1 8B'],
    ['meta-llama/Llama-2-13b-chat-hf', 'Llama 2 13B'],
    ['mistralai/Mistral-7B-Instruct-v0.2-AWQ', 'Mistral 7B'],
    ['mistralai/Mistral-7B-Instruct-v0.3', 'Mistral 7B v0.3'],
    ['google/gemma-2-9b-it-AWQ', 'Gemma 2 9B'],
    ['gemma2:9b', 'Gemma 2 9B'],
    ['BAAI/bge-base-en-v1.5', 'BGE base en v1.5'],
    ['BAAI/bge-large-en-v1.5', 'BGE large en v1.5'],
    ['BAAI/bge-reranker-v2-m3', 'BGE reranker v2 m3'],
    ['BAAI/bge-reranker-base', 'BGE reranker base'],
    ['BAAI/bge-m3', 'BGE-M3'],
  ];
  for (const [id, name] of cases) assert.equal(lookupModel(id)?.name, name, id);
  assert.equal(lookupModel('acme/totally-new-model'), undefined);
  assert.equal(arch('meta-llama/Meta-Llama-3-8B').maxPositions, 8192);
  assert.equal(arch('meta-llama/Llama-3.1-8B').maxPositions, 131_072);
});

test('compute capability by GPU name', () => {
  assert.equal(computeCapability('RTX 2080'), 7.5);
  assert.equal(computeCapability('Quadro RTX 5000'), 7.5);
  assert.equal(computeCapability('NVIDIA GeForce RTX 4070 Super'), 8.9);
  assert.equal(computeCapability('RTX 3090'), 8.6);
  assert.equal(computeCapability('A100 80GB'), 8.0);
  assert.equal(computeCapability('H100'), 9.0);
  assert.equal(computeCapability('RTX 5090'), 12.0);
  assert.equal(computeCapability('Mystery Accelerator'), undefined);
});

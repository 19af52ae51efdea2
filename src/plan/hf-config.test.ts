import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { HfConfigError, parseHfConfig, readHfConfig } from './hf-config.ts';
import { lookupModel } from './catalogue.ts';
import { kvBytesPerToken, paramCounts } from './memory.ts';
import { tempDir } from '../../test/support/temp-dir.ts';

// Qwen/Qwen2.5-7B-Instruct's config.json, as published.
const QWEN25_7B = {
  architectures: ['Qwen2ForCausalLM'], model_type: 'qwen2', hidden_size: 3584, intermediate_size: 18944, max_position_embeddings: 32768,
  num_attention_heads: 28, num_hidden_layers: 28, num_key_value_heads: 4, rms_norm_eps: 1e-6, rope_theta: 1000000.0, sliding_window: 131072,
  tie_word_embeddings: false, torch_dtype: 'bfloat16', vocab_size: 152064,
};

test('a config.json gives the same shape as the catalogue entry', () => {
  const { arch, quantization } = parseHfConfig(JSON.stringify(QWEN25_7B), 'config.json');
  const cat = lookupModel('Qwen/Qwen2.5-7B-Instruct')!;
  assert.equal(quantization, undefined);
  assert.equal(arch.kind, 'decoder');
  assert.equal(arch.headDim, 128);
  assert.equal(kvBytesPerToken(arch, 2), kvBytesPerToken(cat, 2));
  assert.equal(paramCounts(arch).total, paramCounts(cat).total);
  assert.equal(arch.maxPositions, 32768);
  assert.equal(arch.dtype, 'bfloat16');
});

test('quantization_config, explicit head_dim, MoE and MLA are read', () => {
  const awq = parseHfConfig(JSON.stringify({ ...QWEN25_7B, torch_dtype: 'float16', quantization_config: { quant_method: 'awq', bits: 4, group_size: 128 } }), 'c.json');
  assert.equal(awq.quantization, 'awq');
  const gemma = parseHfConfig(JSON.stringify({ model_type: 'gemma2', hidden_size: 3584, intermediate_size: 14336, num_attention_heads: 16, num_key_value_heads: 8, head_dim: 256, num_hidden_layers: 42, vocab_size: 256000, max_position_embeddings: 8192 }), 'g.json');
  assert.equal(gemma.arch.headDim, 256);
  assert.equal(gemma.arch.tiedEmbeddings, true, 'Gemma ties its embeddings by default');
  const mixtral = parseHfConfig(JSON.stringify({ model_type: 'mixtral', hidden_size: 4096, intermediate_size: 14336, num_attention_heads: 32, num_key_value_heads: 8, num_hidden_layers: 32, vocab_size: 32000, num_local_experts: 8 }), 'm.json');
  assert.equal(mixtral.arch.experts, 8);
  assert.ok(paramCounts(mixtral.arch).total > 46e9 && paramCounts(mixtral.arch).total < 47.5e9, 'Mixtral 8x7B ≈ 46.7B');
  const mla = parseHfConfig(JSON.stringify({ model_type: 'deepseek_v2', hidden_size: 2048, intermediate_size: 10944, num_attention_heads: 16, num_hidden_layers: 27, vocab_size: 102400, kv_lora_rank: 512, qk_rope_head_dim: 64 }), 'd.json');
  // MLA caches one latent (512 + 64) per layer and token instead of K and V per head.
  assert.equal(kvBytesPerToken(mla.arch, 2), 27 * 576 * 2);
});

test('encoders (BERT, XLM-RoBERTa) are recognised and cache nothing', () => {
  const bge = parseHfConfig(JSON.stringify({ architectures: ['BertModel'], model_type: 'bert', hidden_size: 768, intermediate_size: 3072, num_attention_heads: 12, num_hidden_layers: 12, vocab_size: 30522, max_position_embeddings: 512, type_vocab_size: 2, torch_dtype: 'float32' }), 'bge.json');
  assert.equal(bge.arch.kind, 'encoder');
  assert.equal(kvBytesPerToken(bge.arch, 2), 0);
  assert.equal(paramCounts(bge.arch).total, paramCounts(lookupModel('BAAI/bge-base-en-v1.5')!).total);
  const m3 = parseHfConfig(JSON.stringify({ architectures: ['XLMRobertaModel'], model_type: 'xlm-roberta', hidden_size: 1024, intermediate_size: 4096, num_attention_heads: 16, num_hidden_layers: 24, vocab_size: 250002, max_position_embeddings: 8194 }), 'm3.json');
  assert.equal(m3.arch.maxPositions, 8192);
});

test('a folder with config.json is read; bad files say what is wrong', () => {
  const dir = tempDir('fabric-hf-');
  mkdirSync(join(dir, 'model'));
  writeFileSync(join(dir, 'model', 'config.json'), JSON.stringify(QWEN25_7B));
  assert.equal(readHfConfig(join(dir, 'model')).arch.layers, 28);
  assert.throws(() => readHfConfig(join(dir, 'missing')), (e: unknown) => e instanceof HfConfigError && /cannot read \(ENOENT\)/.test(e.message));
  writeFileSync(join(dir, 'bad.json'), '{ not json');
  assert.throws(() => readHfConfig(join(dir, 'bad.json')), /not JSON/);
  writeFileSync(join(dir, 'partial.json'), JSON.stringify({ model_type: 'x', hidden_size: 8 }));
  assert.throws(() => readHfConfig(join(dir, 'partial.json')), /has no num_hidden_layers/);
});

// A model the catalogue lacks is sized from its Hugging Face config.json: the same fields
// vLLM reads (num_hidden_layers, num_key_value_heads, head_dim, …), with the same defaults.

import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { Quantization } from '../config/types.ts';
import type { ModelArch } from './catalogue.ts';

export class HfConfigError extends Error {
  override name = 'HfConfigError';
}

const ENCODER_TYPES = new Set(['bert', 'roberta', 'xlm-roberta', 'nomic_bert', 'distilbert', 'electra', 'mpnet']);
const TIED_BY_DEFAULT = new Set(['gemma', 'gemma2', 'gemma3_text', 'bert', 'roberta', 'xlm-roberta']);

type Json = Record<string, unknown>;

function num(c: Json, ...keys: string[]): number | undefined {
  for (const k of keys) {
    const v = c[k];
    if (typeof v === 'number' && Number.isFinite(v)) return v;
  }
  return undefined;
}

function need(c: Json, file: string, ...keys: string[]): number {
  const v = num(c, ...keys);
  if (v === undefined) throw new HfConfigError(`${file}: has no ${keys.join(' or ')}; is it a transformer's config.json?`);
  return v;
}

export interface HfModel {
  arch: ModelArch;
  /** quantization_config.quant_method, when the checkpoint says it is quantized. */
  quantization: Quantization | undefined;
}

const QUANT_METHODS: Record<string, Quantization> = {
  awq: 'awq', gptq: 'gptq', fp8: 'fp8', 'compressed-tensors': 'int8', bitsandbytes: 'bitsandbytes',
};

/** Parses a config.json text; `file` names it in errors. */
export function parseHfConfig(text: string, file: string): HfModel {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    throw new HfConfigError(`${file}: not JSON (${(e as Error).message})`);
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw new HfConfigError(`${file}: not a JSON object`);
  const top = raw as Json;
  // Multimodal configs nest the language model under text_config.
  const c: Json = typeof top.text_config === 'object' && top.text_config !== null ? { ...top, ...(top.text_config as Json) } : top;
  const modelType = typeof c.model_type === 'string' ? c.model_type : '';
  const archs = Array.isArray(top.architectures) ? top.architectures.filter((a): a is string => typeof a === 'string') : [];
  const encoder = ENCODER_TYPES.has(modelType) || archs.some((a) => /^(Bert|XLMRoberta|Roberta)(Model|ForMaskedLM)$/.test(a));
  const hidden = need(c, file, 'hidden_size', 'd_model', 'n_embd');
  const layers = need(c, file, 'num_hidden_layers', 'n_layer', 'num_layers');
  const heads = need(c, file, 'num_attention_heads', 'n_head');
  const kvHeads = num(c, 'num_key_value_heads', 'num_kv_heads', 'multi_query_group_num') ?? heads;
  const dtypeName = typeof c.torch_dtype === 'string' ? c.torch_dtype : typeof c.dtype === 'string' ? c.dtype : 'float16';
  const dtype = dtypeName === 'bfloat16' ? 'bfloat16' : dtypeName === 'float32' ? 'float32' : 'float16';
  const experts = num(c, 'num_local_experts', 'num_experts', 'n_routed_experts');
  const intermediate = experts !== undefined ? (num(c, 'moe_intermediate_size', 'intermediate_size') ?? 4 * hidden) : (num(c, 'intermediate_size', 'ffn_dim', 'n_inner') ?? 4 * hidden);
  const maxPositions = num(c, 'max_position_embeddings', 'n_positions', 'max_sequence_length', 'seq_length') ?? 2048;
  const kvLoraRank = num(c, 'kv_lora_rank');
  const arch: ModelArch = {
    name: typeof top._name_or_path === 'string' && top._name_or_path !== '' ? top._name_or_path : `${modelType || 'model'} (${file})`,
    kind: encoder ? 'encoder' : 'decoder',
    layers,
    hiddenSize: hidden,
    intermediateSize: intermediate,
    attentionHeads: heads,
    kvHeads,
    headDim: num(c, 'head_dim') ?? hidden / heads,
    vocabSize: need(c, file, 'vocab_size', 'padded_vocab_size'),
    tiedEmbeddings: typeof c.tie_word_embeddings === 'boolean' ? c.tie_word_embeddings : TIED_BY_DEFAULT.has(modelType),
    // XLM-RoBERTa offsets positions by the padding index: 514 positions serve 512 tokens.
    maxPositions: modelType === 'xlm-roberta' || modelType === 'roberta' ? maxPositions - 2 : maxPositions,
    dtype,
    ...(modelType === 'qwen2' ? { qkvBias: true } : {}),
    ...(experts !== undefined && experts > 1 ? { experts } : {}),
    ...(kvLoraRank !== undefined ? { mla: { kvLoraRank, ropeHeadDim: num(c, 'qk_rope_head_dim') ?? 64 } } : {}),
    ...(typeof c.sliding_window === 'number' ? { slidingWindow: c.sliding_window } : {}),
    ...(encoder ? { typeVocabSize: num(c, 'type_vocab_size') ?? 0 } : {}),
  };
  const qc = c.quantization_config as Json | undefined;
  const method = typeof qc?.quant_method === 'string' ? QUANT_METHODS[qc.quant_method] : undefined;
  return { arch, quantization: method };
}

/** Reads `path`: a config.json, or a model folder holding one. */
export function readHfConfig(path: string): HfModel {
  let file = path;
  if (existsSync(path) && statSync(path).isDirectory()) file = join(path, 'config.json');
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new HfConfigError(`${file}: cannot read (${(e as NodeJS.ErrnoException).code ?? String(e)})`);
  }
  return parseHfConfig(text, file);
}

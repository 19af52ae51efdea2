// What a weight costs in each format, and how to read the format from a model's name.

import { GGUF_QUANTIZATIONS, type KvCacheDtype, type Quantization, type ServedEngine } from '../config/types.ts';

export interface QuantSpec {
  name: Quantization;
  /** Bits per weight of the quantized tensors, scales and zero points included. */
  bitsPerWeight: number;
  /**
   * vLLM's methods quantize the linear layers and keep the token embeddings and the LM head
   * at the activation dtype; a GGUF file quantizes every tensor (its average is what is listed).
   */
  scope: 'linear' | 'all';
  /** Lowest CUDA compute capability whose kernels vLLM has for it. */
  minCapability?: number;
  /** Dequantizes a whole weight matrix for batches of 256+ tokens (vLLM's AWQ and GPTQ GEMM paths), which the activation peak must hold. */
  dequantScratch?: boolean;
  how: string;
}

/** 4-bit weights in groups of 128, each group with an fp16 scale and a 4-bit zero point: 4 + 16/128 + 4/128. */
const INT4_G128 = 4 + 16 / 128 + 4 / 128;

export const QUANTS: Readonly<Record<Quantization, QuantSpec>> = {
  none: { name: 'none', bitsPerWeight: 16, scope: 'all', how: 'unquantized, at the model dtype' },
  awq: { name: 'awq', bitsPerWeight: INT4_G128, scope: 'linear', minCapability: 7.5, dequantScratch: true, how: 'AWQ 4-bit, groups of 128 with an fp16 scale and 4-bit zero' },
  awq_marlin: { name: 'awq_marlin', bitsPerWeight: INT4_G128, scope: 'linear', minCapability: 8.0, how: 'AWQ 4-bit on Marlin kernels' },
  gptq: { name: 'gptq', bitsPerWeight: INT4_G128, scope: 'linear', minCapability: 6.0, dequantScratch: true, how: 'GPTQ 4-bit, groups of 128 with an fp16 scale and 4-bit zero' },
  gptq_marlin: { name: 'gptq_marlin', bitsPerWeight: INT4_G128, scope: 'linear', minCapability: 8.0, how: 'GPTQ 4-bit on Marlin kernels' },
  fp8: { name: 'fp8', bitsPerWeight: 8, scope: 'linear', minCapability: 8.0, how: 'FP8 weights with per-tensor scales' },
  int8: { name: 'int8', bitsPerWeight: 8, scope: 'linear', minCapability: 7.5, how: 'INT8 weights (W8A8)' },
  bitsandbytes: { name: 'bitsandbytes', bitsPerWeight: 4.5, scope: 'linear', minCapability: 7.0, how: 'bitsandbytes NF4, blocks of 64 with an fp32 absmax' },
  // GGUF averages over a whole file (llama.cpp's block layouts; the K-quant mixes from published 7–8B file sizes).
  f16: { name: 'f16', bitsPerWeight: 16, scope: 'all', how: 'GGUF F16' },
  q8_0: { name: 'q8_0', bitsPerWeight: 8.5, scope: 'all', how: 'GGUF Q8_0, blocks of 32 with an fp16 scale' },
  q6_k: { name: 'q6_k', bitsPerWeight: 6.5625, scope: 'all', how: 'GGUF Q6_K' },
  q5_k_m: { name: 'q5_k_m', bitsPerWeight: 5.7, scope: 'all', how: 'GGUF Q5_K_M, file average' },
  q5_0: { name: 'q5_0', bitsPerWeight: 5.5, scope: 'all', how: 'GGUF Q5_0' },
  q4_k_m: { name: 'q4_k_m', bitsPerWeight: 4.89, scope: 'all', how: 'GGUF Q4_K_M, file average' },
  q4_k_s: { name: 'q4_k_s', bitsPerWeight: 4.58, scope: 'all', how: 'GGUF Q4_K_S, file average' },
  q4_0: { name: 'q4_0', bitsPerWeight: 4.5, scope: 'all', how: 'GGUF Q4_0, blocks of 32 with an fp16 scale' },
  q3_k_m: { name: 'q3_k_m', bitsPerWeight: 3.9, scope: 'all', how: 'GGUF Q3_K_M, file average' },
  q2_k: { name: 'q2_k', bitsPerWeight: 3.2, scope: 'all', how: 'GGUF Q2_K, file average' },
};

const VLLM_BY_NAME: readonly [RegExp, Quantization][] = [
  [/(^|[-_/.])awq([-_/.]|$)/, 'awq'],
  [/gptq/, 'gptq'],
  [/(^|[-_/.])fp8([-_/.]|$)/, 'fp8'],
  [/w8a8|(^|[-_/.])int8([-_/.]|$)/, 'int8'],
  [/bnb|nf4|4bit/, 'bitsandbytes'],
];

export interface ResolvedQuant {
  spec: QuantSpec;
  /** config: serve.quantization; name: read from the model name; default: the engine's default. */
  source: 'config' | 'name' | 'default';
}

/**
 * The weight format an engine will load. Ollama's plain tags (qwen2.5-coder:7b) are Q4_K_M;
 * a GGUF file names its type (…-Q4_K_M.gguf); a vLLM repo says AWQ/GPTQ/FP8 in its name or is
 * unquantized.
 */
export function resolveQuant(engine: ServedEngine, model: string, configured: Quantization | undefined): ResolvedQuant {
  if (configured !== undefined) return { spec: QUANTS[configured], source: 'config' };
  const n = model.toLowerCase();
  if (engine === 'vllm') {
    for (const [re, q] of VLLM_BY_NAME) if (re.test(n)) return { spec: QUANTS[q], source: 'name' };
    return { spec: QUANTS.none, source: 'default' };
  }
  const flat = n.replace(/-/g, '_');
  // Longest names first, so q4_k_m is not read as q4_k_s's prefix or q4_0.
  const found = [...GGUF_QUANTIZATIONS].sort((a, b) => b.length - a.length).find((q) => new RegExp(`(^|[^a-z0-9])${q}([^a-z0-9]|$)`).test(flat));
  if (found !== undefined) return { spec: QUANTS[found], source: 'name' };
  return { spec: QUANTS.q4_k_m, source: 'default' };
}

/** Bytes per cached K or V element. GGUF's q8_0/q4_0 carry an fp16 scale per 32. */
export function kvElementBytes(kv: KvCacheDtype | undefined, modelDtypeBytes: number): number {
  switch (kv) {
    case 'fp8': case 'fp8_e4m3': case 'fp8_e5m2': return 1;
    case 'q8_0': return 34 / 32;
    case 'q4_0': return 18 / 32;
    case 'f16': return 2;
    default: return Math.min(modelDtypeBytes, 2);
  }
}

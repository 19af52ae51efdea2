// The arithmetic of GPU memory, one formula per function, each the one vLLM (or llama.cpp)
// uses where it has one, and a stated estimate where it measures instead of computing:
//
//   vLLM   KV cache = total × gpu_memory_utilization − weights − activation peak − non-torch
//          (vllm/v1/worker/gpu_worker.py determine_available_memory), then
//          blocks = KV cache ÷ (block_size × bytes per token)  (kv_cache_utils.get_num_blocks)
//          concurrency = blocks ÷ ceil(max_model_len ÷ block_size)
//          (kv_cache_utils.get_max_concurrency_for_kv_cache_config: "Maximum concurrency for
//          N tokens per request"). vLLM refuses to start when one max_model_len request does
//          not fit (check_enough_kv_cache_memory).
//   bytes per token = layers × KV heads × head dim × 2 (K and V) × dtype size
//          (FullAttentionSpec.page_size_bytes ÷ block_size).
//
// vLLM measures the activation peak with a dummy forward pass; the planner estimates it (see
// ASSUMPTIONS), so KV figures are estimates within a few hundred MiB, the rest exact.

import type { ModelArch } from './catalogue.ts';
import type { QuantSpec } from './quantization.ts';

export const GiB = 1024 ** 3;
export const MiB = 1024 ** 2;

/** Every constant the figures rest on, shown by `fabric plan --json` and in the README. */
export const ASSUMPTIONS = {
  /** vLLM's --block-size on CUDA. */
  blockSize: 16,
  /** vLLM's --gpu-memory-utilization default. */
  defaultUtilization: 0.9,
  /** vLLM V1's --max-num-batched-tokens and --max-num-seqs defaults for the OpenAI server. */
  defaultBatchedTokens: 2048,
  defaultMaxNumSeqs: 256,
  /**
   * Activation peak of the profiling pass, per batched token: the gated MLP (gate+up, then
   * act) and a handful of hidden-size buffers, 3 × intermediate + 6 × hidden elements.
   */
  activationElementsPerToken: '3 × intermediate + 6 × hidden',
  /**
   * The sampler's dummy run over max_num_seqs sequences holds fp32 logits, probabilities,
   * log-probabilities and sort scratch: 32 bytes per vocabulary entry per sequence, fitted to
   * vLLM V1 profiling logs (Llama 3.1 8B: 4.76 GiB at 8192 tokens × 1024 seqs).
   */
  samplerBytesPerLogit: 32,
  /** A share that fits one request only if the activation peak is this fraction of the estimate or less is "tight", not "too small". */
  overheadLowFactor: 0.6,
  /** Memory outside PyTorch counted in the share (cuBLAS workspaces, NCCL): 0.13 GiB in vLLM V1 logs. */
  nonTorchBytes: 0.13 * GiB,
  /** Per engine process and outside its share: the CUDA context. */
  cudaContextBytes: 0.4 * GiB,
  /** Per vLLM process and outside its share unless --enforce-eager: captured CUDA graphs (0.1–0.65 GiB logged). */
  cudaGraphBytes: 0.3 * GiB,
  /** Ollama's context when none is set (its default below 24 GiB of VRAM; older versions used 2048). */
  ollamaDefaultContext: 4096,
  /** llama-server's --ctx-size default. */
  llamacppDefaultContext: 4096,
  /** llama.cpp's micro-batch: its compute buffer holds fp32 logits and MLP activations for this many tokens. */
  ggufMicroBatch: 512,
} as const;

export function dtypeBytes(dtype: 'float16' | 'bfloat16' | 'float32'): number {
  return dtype === 'float32' ? 4 : 2;
}

export interface ParamCounts {
  /** Attention and MLP projections: what AWQ/GPTQ/FP8 quantize. */
  linear: number;
  /** Embeddings, LM head, norms, biases. */
  other: number;
  total: number;
}

export function paramCounts(a: ModelArch): ParamCounts {
  const h = a.hiddenSize;
  if (a.kind === 'encoder') {
    // BERT: Q, K, V, O (h×h each, biased) and a two-matrix MLP per layer, two LayerNorms.
    const perLayer = 4 * h * h + 2 * h * a.intermediateSize;
    const perLayerOther = 4 * h + a.intermediateSize + h + 4 * h;
    const embeddings = (a.vocabSize + a.maxPositions + (a.typeVocabSize ?? 0)) * h + 2 * h;
    const pooler = h * h + h;
    const linear = a.layers * perLayer;
    const other = a.layers * perLayerOther + embeddings + pooler;
    return { linear, other, total: linear + other };
  }
  const q = a.attentionHeads * a.headDim;
  const kv = a.kvHeads * a.headDim;
  const attention = a.mla === undefined ? h * q + 2 * h * kv + q * h : h * q + h * (a.mla.kvLoraRank + a.mla.ropeHeadDim) + a.mla.kvLoraRank * 2 * q + q * h;
  const mlp = 3 * h * a.intermediateSize * (a.experts ?? 1) + (a.experts === undefined ? 0 : h * a.experts);
  const linear = a.layers * (attention + mlp);
  const embeddings = a.vocabSize * h * (a.tiedEmbeddings ? 1 : 2);
  const other = embeddings + a.layers * 2 * h + h + (a.qkvBias === true ? a.layers * (q + 2 * kv) : 0);
  return { linear, other, total: linear + other };
}

export interface Weights {
  bytes: number;
  params: ParamCounts;
  /** Bits per parameter of the linear layers and of the rest. */
  linearBits: number;
  otherBits: number;
}

/**
 * Weight bytes on one GPU: parameters × bits of their format. vLLM quantizes the linear layers
 * and keeps embeddings and LM head at the model dtype; GGUF averages over every tensor.
 * Tensor parallelism splits all of it across `tp` GPUs.
 */
export function weights(a: ModelArch, quant: QuantSpec, modelDtypeBytes: number, tp = 1): Weights {
  const params = paramCounts(a);
  const dtypeBits = modelDtypeBytes * 8;
  const linearBits = quant.name === 'none' ? dtypeBits : quant.bitsPerWeight;
  const otherBits = quant.scope === 'all' && quant.name !== 'none' ? quant.bitsPerWeight : dtypeBits;
  const bytes = (params.linear * linearBits + params.other * otherBits) / 8 / tp;
  return { bytes: Math.round(bytes), params, linearBits, otherBits };
}

/** Bytes one cached token takes on one GPU, across all layers: layers × KV heads × head dim × 2 × dtype size. Encoders cache nothing. */
export function kvBytesPerToken(a: ModelArch, elementBytes: number, tp = 1): number {
  if (a.kind === 'encoder') return 0;
  if (a.mla !== undefined) return a.layers * (a.mla.kvLoraRank + a.mla.ropeHeadDim) * elementBytes;
  const heads = Math.max(1, Math.ceil(a.kvHeads / tp));
  return a.layers * heads * a.headDim * 2 * elementBytes;
}

export interface Activation {
  tokens: number;
  dequant: number;
  sampler: number;
  total: number;
  batchedTokens: number;
  maxNumSeqs: number;
}

/** vLLM's profiled activation peak, estimated (see ASSUMPTIONS). */
export function vllmActivation(a: ModelArch, opts: { batchedTokens: number; maxNumSeqs: number; actBytes: number; dequant: boolean; tp: number }): Activation {
  const t = opts.batchedTokens;
  const seqs = Math.min(opts.maxNumSeqs, t);
  const mlpWidth = a.kind === 'encoder' ? a.intermediateSize : 3 * a.intermediateSize;
  const tokens = (t * (mlpWidth + 6 * a.hiddenSize) * opts.actBytes) / opts.tp;
  // AWQ/GPTQ GEMM paths dequantize the weight to fp16 for 256+ tokens: the largest, gate+up, is hidden × 2·intermediate.
  const dequant = opts.dequant && t >= 256 ? (a.hiddenSize * 2 * a.intermediateSize * opts.actBytes) / opts.tp : 0;
  const sampler = a.kind === 'encoder' ? 0 : seqs * a.vocabSize * ASSUMPTIONS.samplerBytesPerLogit;
  const total = Math.round(tokens + dequant + sampler);
  return { tokens: Math.round(tokens), dequant: Math.round(dequant), sampler, total, batchedTokens: t, maxNumSeqs: seqs };
}

/** KV blocks vLLM allocates: floor(KV bytes ÷ (block size × bytes per token)). */
export function kvBlocks(kvCacheBytes: number, bytesPerToken: number, blockSize: number = ASSUMPTIONS.blockSize): number {
  if (kvCacheBytes <= 0 || bytesPerToken <= 0) return 0;
  return Math.floor(kvCacheBytes / (blockSize * bytesPerToken));
}

/** vLLM's "Maximum concurrency for N tokens per request": blocks ÷ blocks one full-length request needs. */
export function maxConcurrency(blocks: number, maxModelLen: number, blockSize: number = ASSUMPTIONS.blockSize): number {
  return blocks / Math.ceil(maxModelLen / blockSize);
}

/** The longest max_model_len whose one request fits in `blocks` (vLLM's estimate_max_model_len). */
export function longestFittingLen(blocks: number, blockSize: number = ASSUMPTIONS.blockSize): number {
  return blocks * blockSize;
}

/** llama.cpp's compute buffer: fp32 logits and MLP activations for one micro-batch. */
export function ggufComputeBytes(a: ModelArch): number {
  return ASSUMPTIONS.ggufMicroBatch * (a.vocabSize + 4 * a.intermediateSize) * 4;
}

// fabric plan: for every GPU of every node, what each served engine gets, what its weights
// take, the KV cache left and the concurrency that gives; and what will not work. Pure:
// config in, plan out (reading a config.json named by serve.hf_config is its only I/O).

import { existsSync } from 'node:fs';
import { dirname, isAbsolute, resolve } from 'node:path';
import { ollamaNumCtx, roleByName, type BackendConfig, type FabricConfig, type GpuSpec, type NodeConfig, type RoleConfig, type ServeConfig, type ServedEngine } from '../config/types.ts';
import { lookupModel, type ModelArch } from './catalogue.ts';
import { HfConfigError, readHfConfig } from './hf-config.ts';
import { computeCapability } from './gpus.ts';
import {
  ASSUMPTIONS, GiB, dtypeBytes, ggufComputeBytes, kvBlocks, kvBytesPerToken, longestFittingLen, maxConcurrency, vllmActivation, weights,
} from './memory.ts';
import { QUANTS, kvElementBytes, resolveQuant, type QuantSpec } from './quantization.ts';
import { finding, type Finding } from './findings.ts';
import { count, fixed, gib, params, size } from './format.ts';

export interface ArchInfo {
  name: string;
  source: 'catalogue' | 'hf-config';
  kind: ModelArch['kind'];
  layers: number;
  kvHeads: number;
  headDim: number;
  hiddenSize: number;
  intermediateSize: number;
  vocabSize: number;
  maxPositions: number;
  params: number;
}

export interface EnginePlan {
  backend: string;
  engine: ServedEngine;
  node: string;
  gpus: number[];
  port: number;
  model: string;
  arch: ArchInfo | undefined;
  quantization: { name: string; source: 'config' | 'name' | 'hf-config' | 'default'; bitsPerWeight: number; how: string } | undefined;
  dtype: string | undefined;
  kvCacheDtype: string | undefined;
  maxModelLen: number | undefined;
  /** vLLM only. */
  utilization: number | undefined;
  /** Per GPU: vLLM's util × total; Ollama's and llama.cpp's estimated need. */
  shareBytes: number;
  weightsBytes: number;
  activationBytes: number;
  nonTorchBytes: number;
  kvCacheBytes: number;
  kvBytesPerToken: number;
  kvBlocks: number;
  kvTokens: number;
  /** Requests at maxModelLen the KV cache holds at once; Ollama and llama.cpp: their parallel slots. */
  maxConcurrency: number | undefined;
  /** Per GPU, outside the share: CUDA context, CUDA graphs. */
  outsideShareBytes: number;
  /** The least memory that runs one request at maxModelLen. */
  needBytes: number;
  /** vLLM: the utilization `needBytes` comes to on this GPU. */
  minUtilization: number | undefined;
  ok: boolean;
  /** How each figure came about, one line each, for the table. */
  explain: string[];
}

export interface GpuPlan {
  node: string;
  power: NodeConfig['power'];
  index: number;
  model: string;
  memoryBytes: number;
  reservedBytes: number;
  computeCapability: number | undefined;
  engines: EnginePlan[];
  utilizationSum: number;
  sharesBytes: number;
  outsideBytes: number;
  freeBytes: number;
}

export interface RolePlan {
  role: string;
  /** backend → its node's power ("cloud" for a backend on no node). */
  backends: { name: string; node: string | undefined; power: NodeConfig['power'] | 'cloud' }[];
  alwaysOn: boolean;
  /** The role (itself or a fallback) that makes it always-on. */
  via: string | undefined;
}

export interface Plan {
  file: string | undefined;
  gpus: GpuPlan[];
  roles: RolePlan[];
  notServed: { backend: string; reason: string }[];
  findings: Finding[];
  errors: number;
  warnings: number;
  assumptions: typeof ASSUMPTIONS;
}

export interface PlanOptions {
  /** Where relative hf_config paths start; default: the config file's folder, else the working directory. */
  baseDir?: string;
}

const up2 = (x: number): number => Math.ceil(x * 100 - 1e-9) / 100;

interface ResolvedArch { arch: ModelArch; source: ArchInfo['source']; quantization?: QuantSpec }

function resolveArch(b: BackendConfig, serve: ServeConfig, baseDir: string, findings: Finding[]): ResolvedArch | undefined {
  const where = `backends.${b.name}`;
  let hfPath = serve.hfConfig === undefined ? undefined : (isAbsolute(serve.hfConfig) ? serve.hfConfig : resolve(baseDir, serve.hfConfig));
  // A model served from a local folder brings its own config.json.
  if (hfPath === undefined && serve.engine === 'vllm' && (serve.model.startsWith('/') || serve.model.startsWith('.'))) {
    const local = resolve(baseDir, serve.model, 'config.json');
    if (existsSync(local)) hfPath = local;
  }
  if (hfPath !== undefined) {
    try {
      const m = readHfConfig(hfPath);
      return { arch: m.arch, source: 'hf-config', ...(m.quantization === undefined ? {} : { quantization: QUANTS[m.quantization] }) };
    } catch (e) {
      if (!(e instanceof HfConfigError)) throw e;
      findings.push(finding('model-config-unreadable', where, e.message));
      return undefined;
    }
  }
  const entry = lookupModel(serve.model) ?? lookupModel(b.model);
  if (entry !== undefined) return { arch: entry, source: 'catalogue' };
  findings.push(finding('unknown-model', where,
    `cannot size ${serve.model}: not in the built-in catalogue; point serve.hf_config at its config.json (or the model folder)`));
  return undefined;
}

function archInfo(r: ResolvedArch, totalParams: number): ArchInfo {
  const a = r.arch;
  return {
    name: a.name, source: r.source, kind: a.kind, layers: a.layers, kvHeads: a.kvHeads, headDim: a.headDim, hiddenSize: a.hiddenSize,
    intermediateSize: a.intermediateSize, vocabSize: a.vocabSize, maxPositions: a.maxPositions, params: totalParams,
  };
}

function emptyEngine(b: BackendConfig, serve: ServeConfig, node: string): EnginePlan {
  return {
    backend: b.name, engine: serve.engine, node, gpus: serve.gpus, port: serve.port, model: serve.model, arch: undefined, quantization: undefined,
    dtype: undefined, kvCacheDtype: undefined, maxModelLen: serve.maxModelLen, utilization: serve.engine === 'vllm' ? (serve.gpuMemoryUtilization ?? ASSUMPTIONS.defaultUtilization) : undefined,
    shareBytes: 0, weightsBytes: 0, activationBytes: 0, nonTorchBytes: 0, kvCacheBytes: 0, kvBytesPerToken: 0, kvBlocks: 0, kvTokens: 0,
    maxConcurrency: undefined, outsideShareBytes: ASSUMPTIONS.cudaContextBytes, needBytes: 0, minUtilization: undefined, ok: false, explain: [],
  };
}

/** vLLM's dtype under --dtype auto: the checkpoint's, float32 run as float16, AWQ/GPTQ as float16, bfloat16 without Ampere as float16. */
function resolveDtype(serve: ServeConfig, arch: ModelArch, quant: QuantSpec, cc: number | undefined, where: string, findings: Finding[]): 'float16' | 'bfloat16' | 'float32' {
  if (serve.dtype !== 'auto') {
    if (serve.dtype === 'bfloat16' && cc !== undefined && cc < 8.0) {
      findings.push(finding('dtype-unsupported', where, `dtype bfloat16 needs compute capability 8.0; this GPU has ${cc.toFixed(1)}: use float16`));
    }
    return serve.dtype;
  }
  if (serve.engine !== 'vllm') return 'float16';
  if (quant.dequantScratch === true || quant.name === 'awq_marlin' || quant.name === 'gptq_marlin') return 'float16';
  if (arch.dtype === 'float32') return 'float16';
  if (arch.dtype === 'bfloat16' && cc !== undefined && cc < 8.0) {
    findings.push(finding('dtype-fallback', where, `${arch.name} is published in bfloat16, which needs compute capability 8.0; this GPU has ${cc.toFixed(1)}, so vLLM runs it in float16`));
    return 'float16';
  }
  return arch.dtype;
}

const VLLM_MIN_CAPABILITY = 7.0;
/**
 * What a desktop session commonly holds on its GPU (the display server, a browser, the compositor):
 * 0.5 to 1.5 GiB. On a workstation with nothing reserved, vLLM's shares should leave this much.
 */
const DESKTOP_BYTES = 1024 ** 3;

function planVllm(e: EnginePlan, b: BackendConfig, serve: ServeConfig, gpu: GpuSpec, r: ResolvedArch, findings: Finding[]): void {
  const where = `backends.${b.name}`;
  const a = r.arch;
  const cc = computeCapability(gpu.model);
  let quant = serve.quantization !== undefined ? QUANTS[serve.quantization] : (r.quantization ?? resolveQuant('vllm', serve.model, undefined).spec);
  const qSource = serve.quantization !== undefined ? 'config' : r.quantization !== undefined ? 'hf-config' : quant.name === 'none' ? 'default' : 'name';
  // Without an explicit --quantization vLLM picks the Marlin kernels where the GPU has them.
  if (qSource !== 'config' && cc !== undefined && cc >= 8.0 && (quant.name === 'awq' || quant.name === 'gptq')) quant = QUANTS[`${quant.name}_marlin`];
  if (qSource === 'config' && cc !== undefined && cc >= 8.0 && (quant.name === 'awq' || quant.name === 'gptq')) {
    findings.push(finding('slower-kernel', where, `quantization ${quant.name} is explicit, so vLLM keeps its ${quant.name.toUpperCase()} GEMM kernels on this compute ${cc.toFixed(1)} GPU; ${quant.name}_marlin (or leaving quantization out) is faster and needs no dequantization scratch`));
  }
  // vLLM's CUDA kernels are built for compute capability 7.0 (Volta) and later.
  if (cc !== undefined && cc < VLLM_MIN_CAPABILITY) {
    findings.push(finding('gpu-too-old-for-vllm', where, `vLLM needs a GPU of compute capability ${VLLM_MIN_CAPABILITY.toFixed(1)} or later; ${gpu.model} has ${cc.toFixed(1)}: serve this model with llama.cpp or Ollama there`));
  }
  if (quant.minCapability !== undefined && cc !== undefined && cc < quant.minCapability) {
    findings.push(finding('quantization-unsupported', where, `${quant.name} needs compute capability ${quant.minCapability.toFixed(1)}; ${gpu.model} has ${cc.toFixed(1)}`));
  }
  const dtype = resolveDtype(serve, a, quant, cc, where, findings);
  const tp = serve.gpus.length;
  const util = e.utilization!;
  const share = Math.round(util * gpu.memoryBytes);
  const w = weights(a, quant, dtypeBytes(dtype), tp);
  const act = vllmActivation(a, {
    batchedTokens: serve.maxNumBatchedTokens ?? ASSUMPTIONS.defaultBatchedTokens,
    maxNumSeqs: serve.maxNumSeqs ?? ASSUMPTIONS.defaultMaxNumSeqs,
    actBytes: dtypeBytes(dtype),
    dequant: quant.dequantScratch === true,
    tp,
  });
  const nonTorch = ASSUMPTIONS.nonTorchBytes;
  const elem = kvElementBytes(serve.kvCacheDtype, dtypeBytes(dtype));
  const perToken = kvBytesPerToken(a, elem, tp);
  const maxLen = serve.maxModelLen ?? a.maxPositions;
  const kv = share - w.bytes - act.total - nonTorch;
  const blocks = kvBlocks(kv, perToken);
  const requestBlocks = Math.ceil(maxLen / ASSUMPTIONS.blockSize);
  const oneRequest = requestBlocks * ASSUMPTIONS.blockSize * perToken;
  const need = w.bytes + act.total + nonTorch + oneRequest;

  Object.assign(e, {
    arch: archInfo(r, w.params.total),
    quantization: { name: quant.name, source: qSource, bitsPerWeight: quant.name === 'none' ? dtypeBytes(dtype) * 8 : quant.bitsPerWeight, how: quant.how },
    dtype, kvCacheDtype: serve.kvCacheDtype ?? 'auto', maxModelLen: maxLen, shareBytes: share, weightsBytes: w.bytes, activationBytes: act.total,
    nonTorchBytes: nonTorch, kvCacheBytes: Math.max(0, kv), kvBytesPerToken: perToken, kvBlocks: blocks, kvTokens: blocks * ASSUMPTIONS.blockSize,
    maxConcurrency: a.kind === 'encoder' ? undefined : maxConcurrency(blocks, maxLen),
    outsideShareBytes: ASSUMPTIONS.cudaContextBytes + (serve.enforceEager ? 0 : ASSUMPTIONS.cudaGraphBytes),
    needBytes: need, minUtilization: up2(need / gpu.memoryBytes), ok: true,
  } satisfies Partial<EnginePlan>);

  const tpNote = tp > 1 ? `, ÷ ${tp} GPUs (tensor parallel)` : '';
  e.explain.push(`share     ${fixed(util)} × ${gib(gpu.memoryBytes)} = ${gib(share)}`);
  const wq = w.linearBits === w.otherBits
    ? `${params(w.params.total)} params × ${+w.linearBits.toFixed(3)} bits`
    : `${params(w.params.linear)} linear params × ${+w.linearBits.toFixed(3)} bits (${quant.how}) + ${params(w.params.other)} embedding/other × ${w.otherBits} bits`;
  e.explain.push(`weights   ${gib(w.bytes)} = ${wq}${tpNote}`);
  e.explain.push(`overhead  ${gib(act.total + nonTorch)} (estimate) = activations ${size(act.tokens)} for ${count(act.batchedTokens)} batched tokens`
    + `${act.dequant > 0 ? ` + ${size(act.dequant)} dequantized weight` : ''}${act.sampler > 0 ? ` + sampler ${size(act.sampler)} for ${act.maxNumSeqs} seqs × ${count(a.vocabSize)} vocab` : ''} + ${size(nonTorch)} non-torch`);

  if (a.kind === 'encoder') {
    e.explain.push(`KV cache  none: ${a.name} is an encoder; it needs about ${gib(need)} (utilization ${fixed(up2(need / gpu.memoryBytes))})`);
    if (share > 2 * need && share - need > 0.5 * GiB) {
      findings.push(finding('share-mostly-unused', where,
        `reserves ${gib(share)} (${fixed(util)}) but an encoder needs about ${gib(need)}: gpu_memory_utilization ${fixed(Math.max(0.01, up2(need / gpu.memoryBytes)))} would do and frees ${gib(share - need)} for the GPU's other engines`));
    }
  } else {
    const perTokenHow = a.mla !== undefined
      ? `${a.layers} layers × (${a.mla.kvLoraRank} + ${a.mla.ropeHeadDim}) latent × ${elem} B`
      : `${a.layers} layers × ${Math.ceil(a.kvHeads / tp)} KV heads × ${a.headDim} head dim × 2 × ${+elem.toFixed(4)} B`;
    e.explain.push(`per token ${size(perToken)} = ${perTokenHow}`);
    if (kv > 0) {
      e.explain.push(`KV cache  ${gib(kv)} = share − weights − overhead → ${count(blocks)} blocks × ${ASSUMPTIONS.blockSize} = ${count(blocks * ASSUMPTIONS.blockSize)} tokens`);
      e.explain.push(`max len   ${count(maxLen)}${serve.maxModelLen === undefined ? ' (the model\'s own)' : ''} → concurrency ${fixed(maxConcurrency(blocks, maxLen))}x (${count(blocks)} ÷ ${count(requestBlocks)} blocks per request)`);
    } else {
      e.explain.push(`KV cache  none left: share − weights − overhead = ${gib(kv)}`);
    }
  }

  if (maxLen > a.maxPositions) {
    e.ok = false;
    findings.push(finding('max-len-beyond-model', where, `max_model_len ${count(maxLen)} is beyond ${a.name}'s ${count(a.maxPositions)}; vLLM refuses to start`));
  }
  const minUtil = up2(need / gpu.memoryBytes);
  // What a shorter max_model_len would take, when the configured one cannot be had.
  const shorter = Math.min(maxLen, 4096);
  const needShorter = w.bytes + act.total + nonTorch + Math.ceil(shorter / ASSUMPTIONS.blockSize) * ASSUMPTIONS.blockSize * perToken;
  const alternative = shorter < maxLen && up2(needShorter / gpu.memoryBytes) <= 1
    ? `; at max_model_len ${count(shorter)} it needs gpu_memory_utilization ≥ ${fixed(up2(needShorter / gpu.memoryBytes))}` : '';
  const lenNote = serve.maxModelLen === undefined ? ` (the model's own; set serve.max_model_len to serve less)` : '';
  if (w.bytes > share) {
    e.ok = false;
    findings.push(finding('weights-do-not-fit', where,
      `weights alone take ${gib(w.bytes)} but its share is ${gib(share)} (${fixed(util)} × ${gib(gpu.memoryBytes)} ${gpu.model}); `
      + (minUtil <= 1 ? `one ${count(maxLen)}-token request${lenNote} needs gpu_memory_utilization ≥ ${fixed(minUtil)}` : `with max_model_len ${count(maxLen)}${lenNote} it needs ${gib(need)}, more than the GPU has`)
      + alternative));
  } else if (a.kind !== 'encoder' && blocks < requestBlocks) {
    e.ok = false;
    const fits = longestFittingLen(blocks);
    // The overhead is an estimate: if one request fits with a much smaller one, say "may not", not "will not".
    const optimistic = kvBlocks(share - w.bytes - act.total * ASSUMPTIONS.overheadLowFactor - nonTorch, perToken) >= requestBlocks;
    const fixes = [
      minUtil <= 1 ? `raise gpu_memory_utilization to ≥ ${fixed(minUtil)}` : undefined,
      fits >= 256 ? `set max_model_len ≤ ${count(fits)}` : undefined,
      act.sampler > 0.25 * GiB ? `lower max_num_seqs (the sampler's scratch, ${size(act.sampler)}, grows with it)` : undefined,
    ].filter((x) => x !== undefined);
    findings.push(finding(optimistic ? 'kv-cache-tight' : 'kv-cache-too-small', where,
      `after weights (${gib(w.bytes)}) and ~${gib(act.total + nonTorch)} overhead its ${gib(share)} share leaves ~${gib(Math.max(0, kv))} of KV cache, `
      + `but one ${count(maxLen)}-token request${lenNote} needs ${gib(oneRequest)}`
      + (optimistic ? ', so vLLM may refuse to start (the overhead is an estimate)' : ', so vLLM refuses to start')
      + (fixes.length > 0 ? `: ${fixes.join(', or ')}` : '') + alternative));
  }
}

/** llama-server's slots when it is given no --parallel: 4, sharing one unified cache. */
const LLAMACPP_SHARED_SLOTS = 4;

function planGguf(e: EnginePlan, b: BackendConfig, serve: ServeConfig, gpu: GpuSpec, r: ResolvedArch, findings: Finding[]): void {
  const where = `backends.${b.name}`;
  const a = r.arch;
  const q = resolveQuant(serve.engine, serve.model, serve.quantization);
  const w = weights(a, q.spec, 2);
  // Ollama loads the model with the num_ctx the gateway sends.
  const maxLen = serve.engine === 'ollama' ? ollamaNumCtx(b) ?? ASSUMPTIONS.ollamaDefaultContext : serve.maxModelLen ?? ASSUMPTIONS.llamacppDefaultContext;
  // llama-server without --parallel runs 4 slots sharing one cache of -c tokens (unified);
  // with --parallel N, N slots of max_model_len each (render gives -c = N × max_model_len).
  const shared = serve.engine === 'llamacpp' && serve.maxNumSeqs === undefined;
  const parallel = serve.maxNumSeqs ?? 1;
  const elem = kvElementBytes(serve.kvCacheDtype ?? 'f16', 2);
  const perToken = kvBytesPerToken(a, elem);
  const kv = perToken * maxLen * parallel;
  const compute = a.kind === 'encoder' ? 0 : ggufComputeBytes(a);
  const need = w.bytes + kv + compute;
  Object.assign(e, {
    arch: archInfo(r, w.params.total),
    quantization: { name: q.spec.name, source: q.source, bitsPerWeight: q.spec.bitsPerWeight, how: q.spec.how },
    dtype: 'float16', kvCacheDtype: serve.kvCacheDtype ?? 'f16', maxModelLen: maxLen, shareBytes: need, weightsBytes: w.bytes, activationBytes: compute,
    kvCacheBytes: kv, kvBytesPerToken: perToken, kvBlocks: 0, kvTokens: maxLen * parallel, maxConcurrency: shared ? LLAMACPP_SHARED_SLOTS : parallel,
    outsideShareBytes: ASSUMPTIONS.cudaContextBytes, needBytes: need, ok: true,
  } satisfies Partial<EnginePlan>);
  const label = serve.engine === 'ollama' ? 'Ollama' : 'llama.cpp';
  e.explain.push(`needs     ${gib(need)} = weights + KV cache + compute buffer (${label} takes what it needs, no share)`);
  e.explain.push(`weights   ${gib(w.bytes)} = ${params(w.params.total)} params × ${q.spec.bitsPerWeight} bits (${q.spec.how}${q.source === 'default' ? `, ${label}'s default` : ''})`);
  e.explain.push(`per token ${size(perToken)} = ${a.layers} layers × ${a.kvHeads} KV heads × ${a.headDim} head dim × 2 × ${+elem.toFixed(4)} B`);
  e.explain.push(shared
    ? `KV cache  ${gib(kv)} = ${count(maxLen)} context, shared by llama-server's ${LLAMACPP_SHARED_SLOTS} default slots (together at most ${count(maxLen)} tokens); compute buffer ${size(compute)} (estimate)`
    : `KV cache  ${gib(kv)} = ${count(maxLen)} context × ${parallel} parallel slot${parallel === 1 ? '' : 's'}; compute buffer ${size(compute)} (estimate)`);
  if (maxLen > a.maxPositions) {
    e.ok = false;
    if (serve.engine === 'ollama' && b.contextWindow !== undefined) {
      findings.push(finding('max-len-beyond-model', `${where}.context_window`, `is ${count(maxLen)}, beyond ${a.name}'s ${count(a.maxPositions)}: Ollama would load it at ${count(a.maxPositions)}, and prompts in between would be refused; set context_window to ${count(a.maxPositions)} or less`));
    } else {
      findings.push(finding('max-len-beyond-model', where, `context ${count(maxLen)} is beyond ${a.name}'s ${count(a.maxPositions)}; set serve.max_model_len to ${count(a.maxPositions)} or less`));
    }
  }
  if (serve.engine === 'ollama' && b.contextWindow !== undefined && serve.maxModelLen !== undefined && serve.maxModelLen !== b.contextWindow) {
    findings.push(finding('ollama-max-len-unused', `${where}.serve.max_model_len`, `is ${count(serve.maxModelLen)}, but the gateway asks Ollama for the context_window, ${count(b.contextWindow)}, on every request (num_ctx): remove it or make them agree`));
  }
}

function planRoles(cfg: FabricConfig, findings: Finding[]): RolePlan[] {
  const powerOf = (b: string): RolePlan['backends'][number] => {
    const be = cfg.backends.get(b);
    const node = be?.node === undefined ? undefined : cfg.nodes.get(be.node);
    return { name: b, node: be?.node, power: node === undefined ? 'cloud' : node.power };
  };
  const alwaysOnVia = (role: RoleConfig, seen: Set<string>): string | undefined => {
    if (seen.has(role.name)) return undefined;
    seen.add(role.name);
    if (role.backends.some((b) => powerOf(b).power !== 'workstation')) return role.name;
    for (const f of role.fallbacks) {
      const fr = roleByName(cfg.roles, f);
      const via = fr === undefined ? undefined : alwaysOnVia(fr, seen);
      if (via !== undefined) return via;
    }
    return undefined;
  };
  const out: RolePlan[] = [];
  for (const role of cfg.roles.values()) {
    const via = alwaysOnVia(role, new Set());
    out.push({ role: role.name, backends: role.backends.map(powerOf), alwaysOn: via !== undefined, via });
    if (via === undefined && role.backends.length > 0) {
      const machines = [...new Set(role.backends.map((b) => powerOf(b).node ?? b))].join(', ');
      findings.push(finding('no-always-on-fallback', `roles.${role.name}`,
        `every backend is on a workstation (${machines}) and no fallback reaches an always-on node or a cloud API: requests fail while ${role.backends.length === 1 ? 'it is' : 'they are'} off`));
    }
  }
  return out;
}

/** Backends that point at one vLLM server but ask it for different models: a vLLM server serves one. */
function sharedServers(cfg: FabricConfig, findings: Finding[]): void {
  const byOrigin = new Map<string, BackendConfig[]>();
  for (const b of cfg.backends.values()) {
    if (b.engine !== 'vllm') continue;
    let origin: string;
    try { origin = new URL(b.url).origin; } catch { continue; }
    byOrigin.set(origin, [...(byOrigin.get(origin) ?? []), b]);
  }
  for (const [origin, list] of byOrigin) {
    const served = list.find((b) => b.serve !== undefined);
    const models = new Set(list.map((b) => b.model));
    if (models.size < 2) continue;
    const names = list.map((b) => b.name).join(', ');
    const serving = served === undefined ? '' : ` (it runs ${served.serve!.model} for ${served.name})`;
    findings.push(finding('one-server-two-models', `backends.${list[1]!.name}`,
      `backends ${names} all point at ${origin}, one vLLM server${serving}, with different models (${[...models].join(', ')}): `
      + 'a vLLM server serves one model, so requests for the others fail with 404'));
  }
}

/** A vLLM backend on a GPU node that the fabric does not launch: would its model fit there at all? */
function sizeNotServed(b: BackendConfig, node: NodeConfig, findings: Finding[]): void {
  const gpu = node.gpus[0];
  const entry = lookupModel(b.model);
  if (gpu === undefined || entry === undefined || b.engine !== 'vllm') return;
  const quant = resolveQuant('vllm', b.model, undefined).spec;
  const dtype = quant.name === 'none' ? (entry.dtype === 'float32' ? 'float16' : entry.dtype) : 'float16';
  const w = weights(entry, quant, dtypeBytes(dtype));
  const act = vllmActivation(entry, { batchedTokens: ASSUMPTIONS.defaultBatchedTokens, maxNumSeqs: ASSUMPTIONS.defaultMaxNumSeqs, actBytes: 2, dequant: quant.dequantScratch === true, tp: 1 });
  const len = Math.min(b.contextWindow ?? entry.maxPositions, entry.maxPositions);
  const oneRequest = kvBytesPerToken(entry, 2) * len;
  const need = w.bytes + act.total + ASSUMPTIONS.nonTorchBytes + oneRequest;
  const fits = need <= ASSUMPTIONS.defaultUtilization * gpu.memoryBytes;
  findings.push(finding('not-served-sizing', `backends.${b.name}`,
    `${b.model} (not launched by the fabric: no serve block) needs about ${gib(need)} at ${quant.name === 'none' ? dtype : quant.name}`
    + ` (weights ${gib(w.bytes)}, one ${count(len)}-token request ${gib(oneRequest)}): `
    + (fits ? `fits ${node.name}'s ${gib(gpu.memoryBytes)} ${gpu.model}` : `more than ${node.name}'s ${gib(gpu.memoryBytes)} ${gpu.model} can give (${fixed(ASSUMPTIONS.defaultUtilization)} × ${gib(gpu.memoryBytes)} = ${gib(ASSUMPTIONS.defaultUtilization * gpu.memoryBytes)})`)));
}

function contextCheck(b: BackendConfig, e: EnginePlan, findings: Finding[]): void {
  if (b.contextWindow === undefined || e.maxModelLen === undefined || e.arch?.kind === 'encoder') return;
  if (b.contextWindow > e.maxModelLen) {
    findings.push(finding('context-window-mismatch', `backends.${b.name}.context_window`,
      `is ${count(b.contextWindow)} but the engine is launched with max length ${count(e.maxModelLen)}: requests in between pass the gateway's context fallback and fail at the engine; set context_window to ${count(e.maxModelLen)}`));
  }
}

export function planFabric(cfg: FabricConfig, opts: PlanOptions = {}): Plan {
  const baseDir = opts.baseDir ?? (cfg.file === undefined ? process.cwd() : dirname(cfg.file));
  const findings: Finding[] = [];
  const notServed: Plan['notServed'] = [];
  const gpus: GpuPlan[] = [];
  const gpuOf = new Map<string, GpuPlan>();
  for (const node of cfg.nodes.values()) {
    node.gpus.forEach((g, index) => {
      const gp: GpuPlan = {
        node: node.name, power: node.power, index, model: g.model, memoryBytes: g.memoryBytes, reservedBytes: g.reservedBytes ?? 0,
        computeCapability: computeCapability(g.model), engines: [], utilizationSum: 0, sharesBytes: 0, outsideBytes: 0, freeBytes: 0,
      };
      gpus.push(gp);
      gpuOf.set(`${node.name}#${index}`, gp);
    });
  }

  for (const b of cfg.backends.values()) {
    const node = b.node === undefined ? undefined : cfg.nodes.get(b.node);
    if (b.serve === undefined) {
      if (node !== undefined && node.gpus.length > 0 && (b.engine === 'vllm' || b.engine === 'ollama' || b.engine === 'llamacpp')) {
        notServed.push({ backend: b.name, reason: 'no serve block: the fabric neither sizes nor launches it' });
        sizeNotServed(b, node, findings);
      }
      continue;
    }
    if (node === undefined) continue;
    const serve = b.serve;
    for (const index of serve.gpus) {
      const gp = gpuOf.get(`${node.name}#${index}`);
      const gpu = node.gpus[index];
      if (gp === undefined || gpu === undefined) continue;
      const e = emptyEngine(b, serve, node.name);
      const r = resolveArch(b, serve, baseDir, index === serve.gpus[0] ? findings : []);
      if (r !== undefined) {
        const scoped: Finding[] = [];
        if (serve.engine === 'vllm') planVllm(e, b, serve, gpu, r, scoped);
        else planGguf(e, b, serve, gpu, r, scoped);
        // A tensor-parallel engine is planned once per GPU; report its findings once.
        if (index === serve.gpus[0]) {
          findings.push(...scoped);
          contextCheck(b, e, findings);
        }
      } else if (serve.engine === 'vllm') {
        e.shareBytes = Math.round(e.utilization! * gpu.memoryBytes);
      }
      gp.engines.push(e);
    }
  }

  for (const gp of gpus) {
    if (gp.engines.length === 0) continue;
    const where = `nodes.${gp.node}.gpus[${gp.index}]`;
    const vllm = gp.engines.filter((e) => e.engine === 'vllm');
    gp.utilizationSum = vllm.reduce((s, e) => s + (e.utilization ?? 0), 0);
    const vllmShares = vllm.reduce((s, e) => s + e.shareBytes, 0);
    // One Ollama server swaps its models in and out: it needs room for the largest.
    const ollama = new Map<number, number>();
    for (const e of gp.engines) if (e.engine === 'ollama') ollama.set(e.port, Math.max(ollama.get(e.port) ?? 0, e.shareBytes));
    const others = [...ollama.values()].reduce((s, x) => s + x, 0) + gp.engines.filter((e) => e.engine === 'llamacpp').reduce((s, e) => s + e.shareBytes, 0);
    const processes = vllm.length + ollama.size + gp.engines.filter((e) => e.engine === 'llamacpp').length;
    gp.outsideBytes = vllm.reduce((s, e) => s + e.outsideShareBytes, 0) + (processes - vllm.length) * ASSUMPTIONS.cudaContextBytes;
    gp.sharesBytes = vllmShares + others;
    gp.freeBytes = gp.memoryBytes - gp.sharesBytes - gp.outsideBytes - gp.reservedBytes;
    const label = `${gp.node} GPU ${gp.index} (${gp.model}, ${gib(gp.memoryBytes)})`;
    if (gp.utilizationSum > 1 + 1e-9) {
      findings.push(finding('gpu-overcommitted', where,
        `${label}: gpu_memory_utilization of ${vllm.map((e) => `${e.backend} ${fixed(e.utilization ?? 0)}`).join(' + ')} = ${fixed(gp.utilizationSum)}, past 1: the engine started last cannot get its share`));
    } else if (vllm.length > 0 && vllmShares + vllm.reduce((s, e) => s + e.outsideShareBytes, 0) + gp.reservedBytes > gp.memoryBytes) {
      findings.push(finding('gpu-startup-tight', where,
        `${label}: vLLM shares ${gib(vllmShares)} + about ${gib(vllm.reduce((s, e) => s + e.outsideShareBytes, 0))} per-process overhead outside them (CUDA context, graphs)`
        + `${gp.reservedBytes > 0 ? ` + ${gib(gp.reservedBytes)} reserved` : ''} exceed ${gib(gp.memoryBytes)}: vLLM checks at startup that its share is free, so the engine started last may refuse to start; lower a gpu_memory_utilization`));
    } else if (others > 0 && gp.freeBytes < 0) {
      const left = gp.memoryBytes - vllmShares - gp.outsideBytes - gp.reservedBytes;
      for (const e of gp.engines.filter((x) => x.engine !== 'vllm')) {
        findings.push(finding('gpu-shared-offload', `backends.${e.backend}`,
          `needs about ${gib(e.shareBytes)} on ${label} but only about ${gib(Math.max(0, left))} is left beside vLLM's ${gib(vllmShares)}: ${e.engine === 'ollama' ? 'Ollama' : 'llama.cpp'} will put layers on the CPU (slow) or fail to load`));
      }
    }
  }

  // A workstation is someone's desktop: vLLM checks at startup that its whole share is free, so
  // the memory the desktop holds when the engine starts must fit beside the shares.
  for (const gp of gpus) {
    const vllm = gp.engines.filter((e) => e.engine === 'vllm');
    if (gp.power !== 'workstation' || gp.reservedBytes > 0 || vllm.length === 0) continue;
    const left = gp.memoryBytes - vllm.reduce((s, e) => s + e.shareBytes + e.outsideShareBytes, 0);
    if (left >= DESKTOP_BYTES) continue;
    findings.push(finding('desktop-headroom', `nodes.${gp.node}.gpus[${gp.index}]`,
      `${gp.node} is a workstation, and its ${gp.model}'s vLLM share${vllm.length === 1 ? '' : 's'} (${vllm.map((e) => `${e.backend} ${fixed(e.utilization ?? 0)}`).join(' + ')}) and overhead leave${vllm.length === 1 ? 's' : ''} about ${gib(Math.max(0, left))} for its desktop, `
      + `which commonly holds 0.5–1.5 GiB of GPU memory (the display, a browser): vLLM refuses to start when its share is not free. Set reserved on this GPU to what the desktop uses (nvidia-smi shows it), so that plan checks the shares against what is left, or lower gpu_memory_utilization`));
  }

  sharedServers(cfg, findings);
  const roles = planRoles(cfg, findings);
  const order = { error: 0, warning: 1, note: 2 } as const;
  findings.sort((a, b) => order[a.severity] - order[b.severity]);
  return {
    file: cfg.file,
    gpus,
    roles,
    notServed,
    findings,
    errors: findings.filter((f) => f.severity === 'error').length,
    warnings: findings.filter((f) => f.severity === 'warning').length,
    assumptions: ASSUMPTIONS,
  };
}


// Model architectures the planner knows without a config.json: the families the seeds run
// (Qwen2.5 7B and Coder, Llama 3/3.1 8B, Llama 2 13B, Mistral 7B, Gemma 2 9B, BGE) and their
// neighbours. Figures are the models' Hugging Face config.json values; a quantized repo
// (…-AWQ, …-GPTQ, an Ollama tag) has its base model's shape, so one entry serves them all.

/** The shape of a model, as far as memory is concerned. */
export interface ModelArch {
  /** The catalogue entry or the config.json it came from. */
  name: string;
  /** decoder: a generative model with a KV cache; encoder: a BERT-style embedding model (none). */
  kind: 'decoder' | 'encoder';
  layers: number;
  hiddenSize: number;
  intermediateSize: number;
  attentionHeads: number;
  kvHeads: number;
  headDim: number;
  vocabSize: number;
  tiedEmbeddings: boolean;
  /** The longest sequence the model takes (vLLM's derived max_model_len). */
  maxPositions: number;
  /** torch_dtype of the published weights. */
  dtype: 'float16' | 'bfloat16' | 'float32';
  /** Query, key and value projections carry biases (Qwen2). */
  qkvBias?: boolean;
  /** Mixture of experts: experts per layer, each an MLP of intermediateSize. */
  experts?: number;
  /** Multi-head latent attention (DeepSeek): the cached latent per token and layer replaces K and V. */
  mla?: { kvLoraRank: number; ropeHeadDim: number };
  /** Sliding-window attention on some layers; the planner budgets full attention (an upper bound). */
  slidingWindow?: number;
  /** Encoders: learned position and token-type embeddings. */
  typeVocabSize?: number;
}

export interface CatalogueEntry extends ModelArch {
  /** Matched against the lower-cased model id with ":" and "_" read as "-", org included. */
  match: RegExp;
}

const qwen25 = (name: string, match: RegExp, s: Pick<ModelArch, 'layers' | 'hiddenSize' | 'intermediateSize' | 'attentionHeads' | 'kvHeads' | 'headDim' | 'vocabSize' | 'tiedEmbeddings'>): CatalogueEntry => ({
  name, match, kind: 'decoder', maxPositions: 32_768, dtype: 'bfloat16', qkvBias: true, ...s,
});

const llama3 = (name: string, match: RegExp, maxPositions: number, s: Pick<ModelArch, 'layers' | 'hiddenSize' | 'intermediateSize' | 'attentionHeads' | 'kvHeads' | 'headDim' | 'tiedEmbeddings'>): CatalogueEntry => ({
  name, match, kind: 'decoder', vocabSize: 128_256, maxPositions, dtype: 'bfloat16', ...s,
});

const bert = (name: string, match: RegExp, s: Pick<ModelArch, 'layers' | 'hiddenSize' | 'intermediateSize' | 'attentionHeads'> & { vocabSize?: number; maxPositions?: number; typeVocabSize?: number }): CatalogueEntry => ({
  name, match, kind: 'encoder', kvHeads: s.attentionHeads, headDim: s.hiddenSize / s.attentionHeads, vocabSize: 30_522, tiedEmbeddings: true,
  maxPositions: 512, dtype: 'float32', typeVocabSize: 2, ...s,
});

/** First match wins: more specific patterns (3.1 before 3, Coder before base) come first. */
export const CATALOGUE: readonly CatalogueEntry[] = [
  qwen25('Qwen2.5 0.5B', /qwen2\.5-(coder-)?0\.5b/, { layers: 24, hiddenSize: 896, intermediateSize: 4864, attentionHeads: 14, kvHeads: 2, headDim: 64, vocabSize: 151_936, tiedEmbeddings: true }),
  qwen25('Qwen2.5 1.5B', /qwen2\.5-(coder-|math-)?1\.5b/, { layers: 28, hiddenSize: 1536, intermediateSize: 8960, attentionHeads: 12, kvHeads: 2, headDim: 128, vocabSize: 151_936, tiedEmbeddings: true }),
  qwen25('Qwen2.5 3B', /qwen2\.5-(coder-)?3b/, { layers: 36, hiddenSize: 2048, intermediateSize: 11_008, attentionHeads: 16, kvHeads: 2, headDim: 128, vocabSize: 151_936, tiedEmbeddings: true }),
  qwen25('Qwen2.5-Coder 7B', /qwen2\.5-coder-7b/, { layers: 28, hiddenSize: 3584, intermediateSize: 18_944, attentionHeads: 28, kvHeads: 4, headDim: 128, vocabSize: 152_064, tiedEmbeddings: false }),
  qwen25('Qwen2.5 7B', /qwen2\.5-(math-)?7b/, { layers: 28, hiddenSize: 3584, intermediateSize: 18_944, attentionHeads: 28, kvHeads: 4, headDim: 128, vocabSize: 152_064, tiedEmbeddings: false }),
  qwen25('Qwen2.5 14B', /qwen2\.5-(coder-)?14b/, { layers: 48, hiddenSize: 5120, intermediateSize: 13_824, attentionHeads: 40, kvHeads: 8, headDim: 128, vocabSize: 152_064, tiedEmbeddings: false }),
  qwen25('Qwen2.5 32B', /qwen2\.5-(coder-)?32b/, { layers: 64, hiddenSize: 5120, intermediateSize: 27_648, attentionHeads: 40, kvHeads: 8, headDim: 128, vocabSize: 152_064, tiedEmbeddings: false }),
  llama3('Llama 3.2 1B', /llama-?3\.2-1b/, 131_072, { layers: 16, hiddenSize: 2048, intermediateSize: 8192, attentionHeads: 32, kvHeads: 8, headDim: 64, tiedEmbeddings: true }),
  llama3('Llama 3.2 3B', /llama-?3\.2-3b/, 131_072, { layers: 28, hiddenSize: 3072, intermediateSize: 8192, attentionHeads: 24, kvHeads: 8, headDim: 128, tiedEmbeddings: true }),
  llama3('Llama 3.1 8B', /llama-?3\.1-8b/, 131_072, { layers: 32, hiddenSize: 4096, intermediateSize: 14_336, attentionHeads: 32, kvHeads: 8, headDim: 128, tiedEmbeddings: false }),
  llama3('Llama 3.1/3.3 70B', /llama-?3\.[13]-70b/, 131_072, { layers: 80, hiddenSize: 8192, intermediateSize: 28_672, attentionHeads: 64, kvHeads: 8, headDim: 128, tiedEmbeddings: false }),
  llama3('Llama 3 8B', /llama-?3-8b/, 8192, { layers: 32, hiddenSize: 4096, intermediateSize: 14_336, attentionHeads: 32, kvHeads: 8, headDim: 128, tiedEmbeddings: false }),
  llama3('Llama 3 70B', /llama-?3-70b/, 8192, { layers: 80, hiddenSize: 8192, intermediateSize: 28_672, attentionHeads: 64, kvHeads: 8, headDim: 128, tiedEmbeddings: false }),
  {
    name: 'Llama 2 7B', match: /llama-?2-7b/, kind: 'decoder', layers: 32, hiddenSize: 4096, intermediateSize: 11_008, attentionHeads: 32, kvHeads: 32,
    headDim: 128, vocabSize: 32_000, tiedEmbeddings: false, maxPositions: 4096, dtype: 'float16',
  },
  {
    name: 'Llama 2 13B', match: /llama-?2-13b/, kind: 'decoder', layers: 40, hiddenSize: 5120, intermediateSize: 13_824, attentionHeads: 40, kvHeads: 40,
    headDim: 128, vocabSize: 32_000, tiedEmbeddings: false, maxPositions: 4096, dtype: 'float16',
  },
  {
    name: 'Mistral 7B v0.3', match: /mistral-7b(-instruct)?-v0\.3/, kind: 'decoder', layers: 32, hiddenSize: 4096, intermediateSize: 14_336, attentionHeads: 32,
    kvHeads: 8, headDim: 128, vocabSize: 32_768, tiedEmbeddings: false, maxPositions: 32_768, dtype: 'bfloat16',
  },
  {
    name: 'Mistral 7B', match: /mistral-7b/, kind: 'decoder', layers: 32, hiddenSize: 4096, intermediateSize: 14_336, attentionHeads: 32,
    kvHeads: 8, headDim: 128, vocabSize: 32_000, tiedEmbeddings: false, maxPositions: 32_768, dtype: 'bfloat16',
  },
  {
    name: 'Mistral Nemo 12B', match: /mistral-nemo/, kind: 'decoder', layers: 40, hiddenSize: 5120, intermediateSize: 14_336, attentionHeads: 32,
    kvHeads: 8, headDim: 128, vocabSize: 131_072, tiedEmbeddings: false, maxPositions: 1_024_000, dtype: 'bfloat16',
  },
  {
    name: 'Gemma 2 2B', match: /gemma-?2-2b/, kind: 'decoder', layers: 26, hiddenSize: 2304, intermediateSize: 9216, attentionHeads: 8, kvHeads: 4,
    headDim: 256, vocabSize: 256_000, tiedEmbeddings: true, maxPositions: 8192, dtype: 'bfloat16', slidingWindow: 4096,
  },
  {
    name: 'Gemma 2 9B', match: /gemma-?2-9b/, kind: 'decoder', layers: 42, hiddenSize: 3584, intermediateSize: 14_336, attentionHeads: 16, kvHeads: 8,
    headDim: 256, vocabSize: 256_000, tiedEmbeddings: true, maxPositions: 8192, dtype: 'bfloat16', slidingWindow: 4096,
  },
  {
    name: 'Gemma 2 27B', match: /gemma-?2-27b/, kind: 'decoder', layers: 46, hiddenSize: 4608, intermediateSize: 36_864, attentionHeads: 32, kvHeads: 16,
    headDim: 128, vocabSize: 256_000, tiedEmbeddings: true, maxPositions: 8192, dtype: 'bfloat16', slidingWindow: 4096,
  },
  {
    name: 'Phi-3 mini 4k', match: /phi-3-mini(-4k)?/, kind: 'decoder', layers: 32, hiddenSize: 3072, intermediateSize: 8192, attentionHeads: 32, kvHeads: 32,
    headDim: 96, vocabSize: 32_064, tiedEmbeddings: false, maxPositions: 4096, dtype: 'bfloat16',
  },
  // Rerankers (cross-encoders on XLM-RoBERTa): a classification head where BERT has its pooler, the same size.
  bert('BGE reranker v2 m3', /bge-reranker-v2-m3/, { layers: 24, hiddenSize: 1024, intermediateSize: 4096, attentionHeads: 16, vocabSize: 250_002, maxPositions: 8192, typeVocabSize: 1 }),
  bert('BGE reranker base', /bge-reranker-base/, { layers: 12, hiddenSize: 768, intermediateSize: 3072, attentionHeads: 12, vocabSize: 250_002, typeVocabSize: 1 }),
  bert('BGE reranker large', /bge-reranker-large/, { layers: 24, hiddenSize: 1024, intermediateSize: 4096, attentionHeads: 16, vocabSize: 250_002, typeVocabSize: 1 }),
  bert('BGE small en v1.5', /bge-small/, { layers: 12, hiddenSize: 384, intermediateSize: 1536, attentionHeads: 12 }),
  bert('BGE base en v1.5', /bge-base/, { layers: 12, hiddenSize: 768, intermediateSize: 3072, attentionHeads: 12 }),
  bert('BGE large en v1.5', /bge-large/, { layers: 24, hiddenSize: 1024, intermediateSize: 4096, attentionHeads: 16 }),
  bert('BGE-M3', /bge-m3/, { layers: 24, hiddenSize: 1024, intermediateSize: 4096, attentionHeads: 16, vocabSize: 250_002, maxPositions: 8192, typeVocabSize: 1 }),
  bert('all-MiniLM-L6-v2', /all-minilm-l6/, { layers: 6, hiddenSize: 384, intermediateSize: 1536, attentionHeads: 12 }),
];

/** Ollama tags (qwen2.5-coder:7b) and repo ids (Qwen/Qwen2.5-Coder-7B-Instruct-AWQ) in one form. */
export function normaliseModelId(id: string): string {
  return id.toLowerCase().replace(/[:_\s]+/g, '-');
}

export function lookupModel(id: string): CatalogueEntry | undefined {
  const n = normaliseModelId(id);
  return CATALOGUE.find((e) => e.match.test(n));
}

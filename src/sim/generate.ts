// Deterministic stand-ins for what a model computes: the reply text, token counts and
// embedding vectors are pure functions of the request, so tests can assert exact values
// and two engines given the same request answer alike.

import { isRecord } from './protocol.ts';

/** FNV-1a, 32-bit: cheap, stable across runs and platforms. */
export function hash32(text: string, seed = 0x811c9dc5): number {
  let h = seed >>> 0;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

const SENTENCES: readonly string[] = [
  'The quick brown fox jumps over the lazy dog near the quiet river bank.',
  'Inference engines turn prompts into tokens one step at a time.',
  'A gateway spreads requests across many backends and retries the ones that fail.',
  'Every large model is only as fast as the memory that feeds it.',
  'Clouds drift slowly over the mountains while the valley wakes up.',
  'Good logs explain why something happened, not only what happened.',
  'The simulator answers with the same words for the same question.',
  'Caching the key value tensors lets long conversations stay responsive.',
  'Small steady improvements usually beat one heroic rewrite.',
  'When the queue grows faster than it drains, latency climbs without bound.',
  'Tea tastes better when the water is not quite boiling.',
  'A healthy backend answers its probe quickly and its users even faster.',
];

// Words after the first carry their leading space, as BPE tokenizers emit them, so that
// joining any prefix of the tokens gives readable text.
const SENTENCE_TOKENS: readonly (readonly string[])[] = SENTENCES.map((s) =>
  s.split(' ').map((w, i) => (i === 0 ? w : ` ${w}`)),
);

/**
 * The reply tokens a model would produce for this prompt text. `sample` numbers the choices
 * of one request (`n`): each gets the next sentence, so they differ as sampled answers do.
 */
export function replyTokens(promptText: string, sample = 0): readonly string[] {
  return SENTENCE_TOKENS[(hash32(promptText) + sample) % SENTENCE_TOKENS.length]!;
}

/** Count of whitespace-separated words: the simulator's notion of a token. */
export function countWords(text: string): number {
  let n = 0;
  let inWord = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    const space = c === 32 || c === 10 || c === 9 || c === 13;
    if (space) inWord = false;
    else if (!inWord) {
      inWord = true;
      n++;
    }
  }
  return n;
}

/** Per-message framing a chat template adds (role markers, separators). */
const CHAT_MESSAGE_OVERHEAD = 4;
/** Tokens that prime the assistant turn. */
const CHAT_REPLY_PRIMING = 3;

export interface ChatText {
  /** text of the last user message (or last message), which seeds the reply */
  seed: string;
  promptTokens: number;
  /** all message texts joined, for protocols that echo the rendered prompt */
  rendered: string;
}

/** Text of an OpenAI/Ollama message content: a string, or an array of parts. */
function contentText(content: unknown): string {
  if (typeof content === 'string') return content;
  if (!Array.isArray(content)) return '';
  let out = '';
  for (const part of content) {
    if (isRecord(part) && typeof part.text === 'string') out = out === '' ? part.text : `${out}\n${part.text}`;
  }
  return out;
}

/** Reads a messages array; undefined when it is not an array of objects. */
export function chatText(messages: unknown): ChatText | undefined {
  if (!Array.isArray(messages)) return undefined;
  let tokens = CHAT_REPLY_PRIMING;
  let seed = '';
  let lastAny = '';
  let rendered = '';
  for (const m of messages) {
    if (!isRecord(m)) return undefined;
    const text = contentText(m.content);
    tokens += countWords(text) + CHAT_MESSAGE_OVERHEAD;
    lastAny = text;
    if (m.role === 'user') seed = text;
    rendered = rendered === '' ? text : `${rendered}\n${text}`;
  }
  return { seed: seed === '' ? lastAny : seed, promptTokens: tokens, rendered };
}

/** Prompt in any of the shapes completions/embeddings accept, reduced to text + token count. */
export interface PromptItem {
  text: string;
  tokens: number;
}

/**
 * A string, a token-id array, or (when `allowList`) an array of either. Returns undefined
 * for shapes no engine accepts.
 */
export function promptItems(input: unknown, allowList = true): PromptItem[] | undefined {
  if (typeof input === 'string') return [{ text: input, tokens: countWords(input) }];
  if (!Array.isArray(input) || input.length === 0) return undefined;
  if (input.every((x) => typeof x === 'number')) return [{ text: input.join(' '), tokens: input.length }];
  if (!allowList) return undefined;
  const out: PromptItem[] = [];
  for (const x of input) {
    if (typeof x === 'string') out.push({ text: x, tokens: countWords(x) });
    else if (Array.isArray(x) && x.length > 0 && x.every((t) => typeof t === 'number')) out.push({ text: x.join(' '), tokens: x.length });
    else return undefined;
  }
  return out;
}

/** A text's words, lower-cased: runs of letters and digits in any script. */
function lowerWords(text: string): string[] {
  return text.toLowerCase().split(/[^\p{L}\p{N}]+/u);
}

/**
 * How relevant a document is to a query, as a reranker scores it: the share of the query's
 * distinct words (lower-cased) the document holds, squashed by a logistic into (0, 1) so it
 * looks like a cross-encoder's sigmoid (0.0025 for none, 0.5 for half, 0.9975 for all).
 * Deterministic and monotonic in the share, so tests can assert an order.
 */
export function relevance(query: string, document: string): number {
  const asked = new Set(lowerWords(query));
  asked.delete('');
  let found = 0;
  if (asked.size > 0) {
    const held = new Set(lowerWords(document));
    for (const w of asked) if (held.has(w)) found++;
  }
  const share = asked.size === 0 ? 0 : found / asked.size;
  return 1 / (1 + Math.exp(6 - 12 * share));
}

/** Deterministic token ids for a text, for the engines that return ids. */
export function tokenIds(text: string, count: number): number[] {
  const ids = new Array<number>(count);
  let h = hash32(text);
  for (let i = 0; i < count; i++) {
    h = Math.imul(h ^ (h >>> 15), 0x2c1b3c6d) >>> 0;
    ids[i] = 100 + (h % 32000);
  }
  return ids;
}

/** mulberry32: a tiny seeded PRNG; quality is irrelevant, determinism is the point. */
function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** L2-normalised, hash-seeded vector; float32 so base64 and float forms agree exactly. */
export function embedding(text: string, dimensions: number): Float32Array {
  const rand = mulberry32(hash32(text));
  const v = new Float32Array(dimensions);
  let sum = 0;
  for (let i = 0; i < dimensions; i++) {
    const x = rand() * 2 - 1;
    v[i] = x;
    sum += x * x;
  }
  const norm = Math.sqrt(sum) || 1;
  for (let i = 0; i < dimensions; i++) v[i] = v[i]! / norm;
  return v;
}

/** Little-endian float32 bytes, base64: the encoding OpenAI-style APIs use for `encoding_format: base64`. */
export function embeddingBase64(v: Float32Array): string {
  const buf = Buffer.allocUnsafe(v.length * 4);
  for (let i = 0; i < v.length; i++) buf.writeFloatLE(v[i]!, i * 4);
  return buf.toString('base64');
}

/** Plain number array of the float32 values (JSON cannot carry a typed array). */
export function embeddingFloats(v: Float32Array): number[] {
  return Array.from(v);
}

/** One generated token's made-up log probability, and the `top` most likely tokens at its place. */
export interface SimLogprob {
  token: string;
  logprob: number;
  bytes: number[];
  /** the generated token first, then alternatives less likely by 0.75 each */
  top: { token: string; logprob: number; bytes: number[] }[];
}

/**
 * Stable made-up log probabilities for tokens generated from position `from` (the simulator
 * samples nothing): each engine shapes them as its API does.
 */
export function simLogprobs(tokens: readonly string[], from: number, top: number): SimLogprob[] {
  return tokens.map((token, k) => {
    const logprob = -(hash32(token, from + k + 1) % 2000) / 1000;
    const bytes = [...Buffer.from(token, 'utf8')];
    const alternatives = Array.from({ length: top }, (_, r) => {
      if (r === 0) return { token, logprob, bytes };
      const alt = `${token.trim() || '·'}~${r}`;
      return { token: alt, logprob: logprob - r * 0.75, bytes: [...Buffer.from(alt, 'utf8')] };
    });
    return { token, logprob, bytes, top: alternatives };
  });
}

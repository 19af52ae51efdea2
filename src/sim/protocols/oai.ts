// Request parsing shared by every OpenAI-style endpoint (vLLM, llama.cpp, Ollama's /v1,
// OpenAI itself). Only reading requests is shared: each engine shapes its own responses.

import { chatText, embedding, promptItems, replyTokens } from '../generate.ts';
import type { ChatText, PromptItem } from '../generate.ts';
import { hexId, intField, isRecord, limitTokens, nowSeconds } from '../protocol.ts';
import type { Plan, PlannedChoice, SimError } from '../protocol.ts';

export interface ChatRequest {
  model: string | undefined;
  text: ChatText;
  maxTokens: number | undefined;
  stream: boolean;
  includeUsage: boolean;
}

export interface CompletionRequest {
  model: string | undefined;
  prompts: PromptItem[];
  maxTokens: number | undefined;
  stream: boolean;
  includeUsage: boolean;
}

export interface EmbeddingsRequest {
  model: string | undefined;
  inputs: PromptItem[];
  base64: boolean;
  dimensions: number | undefined;
}

function badRequest(message: string, param?: string): SimError {
  return { kind: 'bad-request', message, param };
}

function modelOf(body: Record<string, unknown>): string | undefined {
  return typeof body.model === 'string' && body.model !== '' ? body.model : undefined;
}

function includeUsage(body: Record<string, unknown>): boolean {
  return isRecord(body.stream_options) && body.stream_options.include_usage === true;
}

export function wantsStream(body: unknown): boolean {
  return isRecord(body) && body.stream === true;
}

export function parseChatRequest(body: unknown): ChatRequest | SimError {
  if (!isRecord(body)) return badRequest('request body must be a JSON object');
  const text = chatText(body.messages);
  if (text === undefined) return badRequest("'messages' is a required property and must be an array of message objects", 'messages');
  return {
    model: modelOf(body),
    text,
    maxTokens: intField(body.max_completion_tokens) ?? intField(body.max_tokens),
    stream: body.stream === true,
    includeUsage: includeUsage(body),
  };
}

export function parseCompletionRequest(body: unknown): CompletionRequest | SimError {
  if (!isRecord(body)) return badRequest('request body must be a JSON object');
  const prompts = promptItems(body.prompt);
  if (prompts === undefined) return badRequest("'prompt' must be a string, an array of strings, or an array of token ids", 'prompt');
  return {
    model: modelOf(body),
    prompts,
    maxTokens: intField(body.max_tokens),
    stream: body.stream === true,
    includeUsage: includeUsage(body),
  };
}

export function parseEmbeddingsRequest(body: unknown): EmbeddingsRequest | SimError {
  if (!isRecord(body)) return badRequest('request body must be a JSON object');
  const inputs = promptItems(body.input);
  if (inputs === undefined) return badRequest("'input' must be a string, an array of strings, or an array of token ids", 'input');
  const format = body.encoding_format;
  if (format !== undefined && format !== null && format !== 'float' && format !== 'base64') {
    return badRequest(`Invalid value for 'encoding_format' = ${String(format)}. Supported values: ['float', 'base64'].`, 'encoding_format');
  }
  return {
    model: modelOf(body),
    inputs,
    base64: format === 'base64',
    dimensions: intField(body.dimensions),
  };
}

export interface TextItem {
  seed: string;
  promptTokens: number;
  promptText: string;
}

export interface TextPlanArgs {
  model: string;
  stream: boolean;
  includeUsage: boolean;
  items: TextItem[];
  maxTokens: number | undefined;
  idPrefix: string;
  id?: string;
  extra?: Record<string, unknown>;
}

export function textPlan(a: TextPlanArgs): Plan {
  const choices: PlannedChoice[] = [];
  let promptTokens = 0;
  let completionTokens = 0;
  let steps = 0;
  for (let i = 0; i < a.items.length; i++) {
    const item = a.items[i]!;
    const { tokens, finish } = limitTokens(replyTokens(item.seed), a.maxTokens);
    choices.push({ index: i, tokens, finish, promptTokens: item.promptTokens, promptText: item.promptText });
    promptTokens += item.promptTokens;
    completionTokens += tokens.length;
    if (tokens.length > steps) steps = tokens.length;
  }
  return {
    id: a.id ?? `${a.idPrefix}${hexId()}`,
    created: nowSeconds(),
    model: a.model,
    stream: a.stream,
    includeUsage: a.includeUsage,
    promptTokens,
    completionTokens,
    choices,
    steps,
    vectors: null,
    base64: false,
    extra: a.extra ?? {},
  };
}

export function chatItems(text: ChatText): TextItem[] {
  return [{ seed: text.seed, promptTokens: text.promptTokens, promptText: text.rendered }];
}

export function promptTextItems(prompts: PromptItem[]): TextItem[] {
  return prompts.map((p) => ({ seed: p.text, promptTokens: p.tokens, promptText: p.text }));
}

export interface EmbeddingPlanArgs {
  model: string;
  inputs: PromptItem[];
  dimensions: number;
  base64: boolean;
  idPrefix: string;
  /** input tokens beyond this are cut off, as engines that truncate do */
  truncateAt?: number;
}

export function embeddingPlan(a: EmbeddingPlanArgs): Plan {
  let promptTokens = 0;
  const vectors: Float32Array[] = [];
  for (const input of a.inputs) {
    promptTokens += a.truncateAt === undefined ? input.tokens : Math.min(input.tokens, a.truncateAt);
    vectors.push(embedding(input.text, a.dimensions));
  }
  return {
    id: `${a.idPrefix}${hexId()}`,
    created: nowSeconds(),
    model: a.model,
    stream: false,
    includeUsage: false,
    promptTokens,
    completionTokens: 0,
    choices: [],
    steps: 0,
    vectors,
    base64: a.base64,
    extra: {},
  };
}

/** The largest prompt among the plan's choices: what a context check compares. */
export function largestPrompt(items: readonly { promptTokens: number }[]): number {
  let m = 0;
  for (const i of items) if (i.promptTokens > m) m = i.promptTokens;
  return m;
}

export function largestInput(items: readonly PromptItem[]): number {
  let m = 0;
  for (const i of items) if (i.tokens > m) m = i.tokens;
  return m;
}

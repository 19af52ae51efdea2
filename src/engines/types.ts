// What an engine adapter does: translate one OpenAI-shaped operation to the engine's wire
// format and back. Adapters know nothing of routing, health, credentials or accounting.

import type { EngineKind } from '../config/types.ts';

export type Operation = 'chat' | 'completions' | 'embeddings' | 'rerank' | AudioOperation;
/** /v1/audio/transcriptions and /v1/audio/translations: a multipart upload, served by transcription roles. */
export type AudioOperation = 'transcriptions' | 'translations';
export const isAudioOp = (op: Operation): op is AudioOperation => op === 'transcriptions' || op === 'translations';
/** Embeddings and reranking (vLLM's pooling models): one whole answer, nothing generated, never streamed. */
export const isPoolingOp = (op: Operation): boolean => op === 'embeddings' || op === 'rerank';
export type JsonObject = Record<string, unknown>;

/**
 * Set (as a symbol: never sent, never part of a cache key) on a chat request whose last turn, the
 * assistant's, is to be continued: Anthropic's prefill. llama.cpp and Ollama continue such a turn
 * as it is; vLLM starts a new one unless asked (continue_final_message).
 */
export const CONTINUE_FINAL_TURN: unique symbol = Symbol('continue the final assistant turn');

export interface PreparedRequest {
  /** Appended to the backend's base URL path. */
  path: string;
  body: string;
  /** The gateway asked the backend for stream usage the client did not ask for; strip it on the way out. */
  injectedUsage: boolean;
  /** Streamed chat with logprobs from an engine whose logprobs object lacks OpenAI's required `refusal` (vLLM's): the relay adds it. */
  logprobsRefusal?: boolean;
  /** Ollama: the tool call the request forces, asked of the engine as JSON output (its `format`) and turned back into the call. */
  forcedTool?: ForcedTool;
}

/** A forced tool call: `name` of the one function the output gives the arguments of, or undefined when the output names the tool too. */
export interface ForcedTool {
  name: string | undefined;
}

export interface Usage {
  prompt_tokens: number;
  completion_tokens: number;
  total_tokens: number;
  /** Audio transcribed or translated, in seconds, when the engine counts it so (Whisper's duration usage). */
  audio_seconds?: number;
}

export interface UpstreamErrorInfo {
  message: string;
  type: string | undefined;
  code: string | undefined;
  /** The request field the engine names as wrong (OpenAI's `param`), when it names one. */
  param?: string;
  contextLength: boolean;
  /**
   * The engine refused a field the gateway translated for it (Ollama: `think` for a model that
   * cannot think): the request's field to name if no other backend takes it; this backend is
   * passed over, not blamed.
   */
  unsupportedParam?: string;
}

export interface PrepareOptions {
  /** Physical model id sent upstream (the role name never reaches a backend). */
  model: string;
  /** Stream: ask the engine to report usage at the end. */
  wantStreamUsage: boolean;
  /** The client itself asked for stream usage (stream_options.include_usage), so it must see it. */
  clientWantsUsage: boolean;
}

export interface EngineAdapter {
  readonly kind: EngineKind;
  /** 'sse' streams are relayed byte for byte; 'ndjson' streams are translated to SSE chunks. */
  readonly streamFormat: 'sse' | 'ndjson';
  prepare(op: Operation, body: JsonObject, opts: PrepareOptions): PreparedRequest;
  /** A 2xx body as the OpenAI response object, or undefined if it is not a usable answer. */
  normalize(op: Operation, json: unknown, body: JsonObject, ctx: NormalizeContext): JsonObject | undefined;
  parseError(status: number, text: string): UpstreamErrorInfo;
  /** For ndjson engines: a translator turning the engine's stream into OpenAI SSE event strings. */
  streamTranslator?(op: Operation, ctx: NormalizeContext, includeUsage: boolean, prepared?: PreparedRequest): StreamTranslator;
}

export interface NormalizeContext {
  requestId: string;
  /** The model name the client asked for, echoed back as OpenAI does. */
  model: string;
  created: number;
}

export interface StreamTranslator {
  /** One NDJSON line in, zero or more complete SSE events out ("data: …\n\n"). */
  line(text: string): string;
  /** Usage seen so far, if the engine reported it. */
  usage(): Usage | undefined;
  /** True once the engine said it is done. */
  done(): boolean;
  /** The upstream ended: what is left to send (a whole answer kept until now), if anything. */
  end?(): string;
}

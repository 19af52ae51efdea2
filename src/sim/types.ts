// The simulator's public shapes. fleet.ts re-exports them; they live here so the engine
// internals can use them without importing the module that builds fleets.

export type SimProtocol = 'vllm' | 'ollama' | 'llamacpp' | 'openai';
export type SimModelKind = 'chat' | 'embeddings' | 'transcription' | 'rerank';

export interface SimTiming {
  ttftMs: number;
  tokensPerSecond: number;
  maxConcurrency: number;
  /**
   * Requests waiting for a slot before the engine refuses more: Ollama's OLLAMA_MAX_QUEUE (503
   * "server busy", 512 by default), OpenAI's "engine overloaded" (503). vLLM and llama-server
   * queue without limit (a request waits until the client gives up), so it does not apply to them.
   */
  maxQueue: number;
}

/** A model an engine serves besides its main one: several backends at one origin share a server. */
export interface SimModelSpec {
  model: string;
  /** default: rerank when the name says "rerank", embeddings when it says "embed", else chat */
  kind?: SimModelKind;
  /** default: the engine's */
  contextWindow?: number;
  /** embeddings only; default: the engine's */
  dimensions?: number;
}

export interface SimEngineSpec {
  name: string;
  protocol: SimProtocol;
  /** default 127.0.0.1 */
  host?: string;
  /** 0 or absent = ephemeral */
  port?: number;
  model: string;
  kind: SimModelKind;
  /** embeddings only, default 768 */
  dimensions?: number;
  /** default 8192 */
  contextWindow?: number;
  timing?: Partial<SimTiming>;
  /**
   * If set, requests must carry `Authorization: Bearer <key>` (any of them, when several
   * backends with their own keys share the server), else 401 in the engine's own error shape.
   */
  apiKey?: string | readonly string[];
  /**
   * More models the server lists and answers for: Ollama's other pulled models, vLLM's other
   * served names, OpenAI's other models. llama.cpp answers for any name and lists only `model`.
   */
  extraModels?: (string | SimModelSpec)[];
  /**
   * vLLM: started with --enable-auto-tool-choice and a --tool-call-parser, without which it
   * refuses tool_choice "auto" (its default when a request sends tools). Default false, as vLLM's.
   */
  autoToolChoice?: boolean;
  /**
   * llama.cpp: started with its Jinja chat templates, which tool calling needs: llama-server
   * refuses `tools` without them. On by default, as in builds since late 2025 (ggml-org/llama.cpp#17524);
   * false is a server started with --no-jinja.
   */
  jinja?: boolean;
  /**
   * llama.cpp: started with --metrics, without which /metrics answers 501 and only /slots tells
   * its load. On by default, as `fabric render` starts it; off is llama-server's own default.
   */
  metrics?: boolean;
  /**
   * llama.cpp: --ubatch-size, the physical batch (default 512, llama-server's). An embeddings input
   * or a rerank pair is evaluated in one batch, so a longer one is refused with a 500 even within
   * the context window.
   */
  physicalBatch?: number;
}

export type SimFault =
  | { kind: 'down' }
  | { kind: 'slow'; factor?: number }
  | { kind: 'error'; status?: number }
  | { kind: 'rate-limit'; retryAfterS?: number }
  | { kind: 'hang' }
  | { kind: 'drop'; afterChunks?: number }
  /** streaming: send afterChunks tokens, then nothing more, the connection left open */
  | { kind: 'stall'; afterChunks?: number }
  /**
   * streaming: send afterChunks tokens, then the engine's own report of a failed generation,
   * in its stream, as when its model runner dies (vLLM: an error event and [DONE]; Ollama: an
   * error line). A non-streamed request gets the engine's 500.
   */
  | { kind: 'stream-error'; afterChunks?: number }
  | { kind: 'garbage' }
  | { kind: 'context-length' };

export interface SimFaultState {
  fault: SimFault;
  /** apply to the next N requests only; undefined = until cleared */
  remaining?: number;
}

export interface SimRequestRecord {
  method: string;
  path: string;
  headers: Record<string, string | string[] | undefined>;
  body: unknown;
}

export interface SimEngineStats {
  requests: number;
  active: number;
  queued: number;
  completed: number;
  promptTokens: number;
  completionTokens: number;
}

export interface SimEngine {
  readonly name: string;
  readonly protocol: SimProtocol;
  /** http://host:port, no trailing slash, no /v1 */
  readonly url: string;
  readonly port: number;
  /** the main model */
  readonly model: string;
  /** every model it serves, the main one first */
  readonly models: readonly string[];
  setFault(fault: SimFault | null, remaining?: number): Promise<void>;
  stats(): SimEngineStats;
  /** inference requests received (last 100), for tests to check what the gateway sent */
  requests(): SimRequestRecord[];
  close(): Promise<void>;
}

export interface SimFleet {
  engines: Map<string, SimEngine>;
  get(name: string): SimEngine;
  controlUrl?: string;
  close(): Promise<void>;
}

export const DEFAULT_TIMING: Readonly<SimTiming> = Object.freeze({
  ttftMs: 120,
  tokensPerSecond: 60,
  maxConcurrency: 8,
  maxQueue: 512,
});

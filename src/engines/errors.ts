// Reading engines' error bodies: OpenAI's {"error":{…}}, vLLM's {"object":"error",…},
// llama.cpp's {"error":{"code","message","type"}}, Ollama's {"error":"…"}, or plain text.

import type { UpstreamErrorInfo } from './types.ts';

/** Engines' messages about one request field that their body does not name (vLLM sends param null). */
const FIELD_PATTERNS: readonly [RegExp, string][] = [
  [/matryoshka representation|changing output dimensions/i, 'dimensions'],
];
/**
 * Refusals that come from how a server was started, not from the request: another backend may
 * take the request as it is (the backend is passed over, not blamed; alone, a 400 naming the
 * field). llama-server answers these with a 500, as if it had failed.
 */
const SERVER_SETUP: readonly [RegExp, string, string][] = [
  // vLLM without --enable-auto-tool-choice (a 400).
  [/"auto" tool choice requires --enable-auto-tool-choice/, 'tool_choice', 'serve.tool_parser starts vLLM with both flags'],
  // llama-server with --no-jinja, or a build from before Jinja templates were its default (late 2025).
  [/^tools param requires --jinja flag/, 'tools', 'start llama-server with --jinja'],
  [/^tool_choice param requires --jinja flag/, 'tool_choice', 'start llama-server with --jinja'],
];

/** A field path as OpenAI names one (messages[0].content), not free text. */
const PARAM = /^[A-Za-z_][\w.[\]-]{0,99}$/;

const CONTEXT_PATTERNS = /context[_ ]length|maximum context|context window|exceed_context_size|exceeds the available context|too many tokens|prompt is too long|input length .* exceeds/i;
/**
 * llama-server's refusal of an embedding input or a rerank pair longer than its physical batch
 * (--ubatch-size, 512 unless set: a reranker's query and document pass it often), a 500. Too
 * long for that server, as past its context: not a failure of the server.
 */
const PHYSICAL_BATCH = /too large to process\. increase the physical batch size/;

export function parseEngineError(status: number, text: string): UpstreamErrorInfo {
  let message = text.trim().slice(0, 2000);
  let type: string | undefined;
  let code: string | undefined;
  let param: string | undefined;
  try {
    const j = JSON.parse(text) as unknown;
    if (typeof j === 'object' && j !== null) {
      const o = j as Record<string, unknown>;
      const e = o.error;
      if (typeof e === 'string') {
        message = e;
      } else if (typeof e === 'object' && e !== null) {
        const eo = e as Record<string, unknown>;
        if (typeof eo.message === 'string') message = eo.message;
        if (typeof eo.type === 'string') type = eo.type;
        if (eo.code !== undefined && eo.code !== null) code = String(eo.code);
        if (typeof eo.param === 'string' && PARAM.test(eo.param)) param = eo.param;
      } else if (typeof o.message === 'string') {
        message = o.message;
        if (typeof o.type === 'string') type = o.type;
        if (o.code !== undefined && o.code !== null) code = String(o.code);
        if (typeof o.param === 'string' && PARAM.test(o.param)) param = o.param;
      } else if (typeof o.detail === 'string') {
        message = o.detail;
      }
    }
  } catch {
    // not JSON: keep the text
  }
  if (message === '') message = `HTTP ${status}`;
  if (status === 500 && PHYSICAL_BATCH.test(message)) {
    return { message: `${message} (start llama-server with --ubatch-size as large as its context size)`, type, code, param, contextLength: true };
  }
  const contextLength = (status === 400 || status === 413 || status === 422)
    && (code === 'context_length_exceeded' || type === 'exceed_context_size_error' || CONTEXT_PATTERNS.test(message));
  param ??= FIELD_PATTERNS.find(([re]) => re.test(message))?.[1];
  const setup = status === 400 || status === 500 ? SERVER_SETUP.find(([re]) => re.test(message)) : undefined;
  if (setup !== undefined) return { message: `${message} (${setup[2]})`, type, code, param, contextLength, unsupportedParam: setup[1] };
  return { message, type, code, param, contextLength };
}

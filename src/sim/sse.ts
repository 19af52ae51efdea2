// Stream framings the engines use: SSE `data:` events (OpenAI-style APIs, llama.cpp's
// native /completion) and newline-delimited JSON (Ollama's native API).

export const SSE_CONTENT_TYPE = 'text/event-stream; charset=utf-8';
export const NDJSON_CONTENT_TYPE = 'application/x-ndjson';
export const SSE_DONE = 'data: [DONE]\n\n';

export function sseEvent(payload: unknown): string {
  return `data: ${JSON.stringify(payload)}\n\n`;
}

export function ndjsonLine(payload: unknown): string {
  return `${JSON.stringify(payload)}\n`;
}

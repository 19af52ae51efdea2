// Ollama's OpenAI-compatible layer under /v1: the same engine behind it, errors rewrapped
// as `{"error":{message,type,param,code}}`, ids like `chatcmpl-123`, and every object signed
// with `system_fingerprint: "fp_ollama"`. Requests are translated to /api/chat as
// openai/openai.go FromChatRequest does (tools as they are, response_format as `format`, no
// tool_choice), answers back as its ToChatCompletion and ToChunk do.

import { promptItems } from '../generate.ts';
import { choiceText, intField, isRecord, isSimError, jsonReply } from '../protocol.ts';
import type { EngineView, InferenceRoute, Plan, PlannedChoice } from '../protocol.ts';
import { replyShape } from '../structured.ts';
import { chatItems, encodeVector, parseChatRequest, sseStream, textPlan, tokenUsage, wantsStream } from './oai.ts';
import {
  FINGERPRINT, compatError, contextWindow, fitChat, generationLimit, goJson, planEmbeddings, requireChatModel, toolCallId,
} from './ollama-shared.ts';
import type { Library } from './ollama-shared.ts';
import { sseEvent } from '../sse.ts';

/** Ollama's ids are a random number below 999, not a UUID. */
function compatId(prefix: string): string {
  return `${prefix}${Math.floor(Math.random() * 999)}`;
}

/** openai.go FromChatRequest: response_format as /api/chat's `format`: json_object is "json", json_schema its schema, any other type none. */
function formatOf(rf: unknown): unknown {
  if (!isRecord(rf) || typeof rf.type !== 'string') return undefined;
  switch (rf.type.trim().toLowerCase()) {
    case 'json_object':
      return 'json';
    case 'json_schema':
      return isRecord(rf.json_schema) ? rf.json_schema.schema : undefined;
    default:
      return undefined;
  }
}

/**
 * openai.go ToToolCalls: the call /api/chat sent whole, as {id, index, type, function: {name,
 * arguments}}, its arguments (a Go map) marshalled back to JSON text. None for a reply cut short
 * mid-call: its text comes as content.
 */
function v1ToolCalls(c: PlannedChoice): Record<string, unknown>[] | undefined {
  if (c.toolCall === undefined || c.finish !== 'tool_calls') return undefined;
  return [{ id: c.toolCall.id, index: 0, type: 'function', function: { name: c.toolCall.name, arguments: goJson(JSON.parse(choiceText(c))) } }];
}

/** Whether /api/chat would send this choice as one complete tool call rather than as text. */
function sentWhole(c: PlannedChoice): boolean {
  return c.toolCall !== undefined && c.finish === 'tool_calls';
}

export function v1Chat(view: EngineView, lib: Library): InferenceRoute {
  const chunk = (p: Plan, choices: unknown[]): Record<string, unknown> => ({
    id: p.id, object: 'chat.completion.chunk', created: p.created, model: p.model, system_fingerprint: FINGERPRINT, choices,
  });
  const stream = sseStream({
    // The OpenAI layer reads the error line /api/chat sends mid-stream as one more response
    // (its status is already 200): an empty chunk, and the stream ends without [DONE].
    failure: (p) => sseEvent({ ...chunk(p, [{ index: 0, delta: { role: 'assistant', content: '' }, finish_reason: null }]), model: '' }),
    // /api/chat sends a tool call whole, on one line with no text, once the model has finished writing it.
    token(p, c, i) {
      if (!sentWhole(c)) return chunk(p, [{ index: 0, delta: { role: 'assistant', content: c.tokens[i] }, finish_reason: null }]);
      return i === c.tokens.length - 1 ? chunk(p, [{ index: 0, delta: { role: 'assistant', content: '', tool_calls: v1ToolCalls(c) }, finish_reason: null }]) : undefined;
    },
    finish: (p, c) => chunk(p, [{ index: 0, delta: { role: 'assistant', content: '' }, finish_reason: c.finish }]),
    usage: (p) => ({ ...chunk(p, []), usage: tokenUsage(p) }),
  });
  return {
    kind: 'inference',
    wantsStream,
    plan(body) {
      if (isRecord(body) && Array.isArray(body.messages) && body.messages.length === 0) {
        return { kind: 'bad-request', message: "[] is too short - 'messages'" };
      }
      const r = parseChatRequest(body);
      if (isSimError(r)) return r;
      const bad = requireChatModel(lib, r.model, 'chat');
      if (bad) return bad;
      // The layer sets neither num_ctx nor truncate: the server's default context, and what
      // does not fit is dropped in silence.
      const m = lib.find(r.model!)!;
      const ctx = contextWindow(m, {});
      const held = lib.hold(m, ctx, undefined);
      if (held !== undefined) return held;
      const b = body as Record<string, unknown>;
      const text = r.text.promptTokens > ctx && Array.isArray(b.messages) ? fitChat(b.messages as unknown[], ctx) : r.text;
      return textPlan({
        model: r.model!, stream: r.stream, includeUsage: r.includeUsage, items: chatItems(text),
        maxTokens: generationLimit(r.maxTokens, Infinity, text.promptTokens), idPrefix: '', id: compatId('chatcmpl-'),
        shape: replyShape({ messages: b.messages, tools: b.tools, format: formatOf(b.response_format) }, r.text.seed, 'ollama'), toolCallId,
      });
    },
    error: compatError,
    reply(p) {
      const c = p.choices[0]!;
      const calls = v1ToolCalls(c);
      return jsonReply(200, {
        id: p.id, object: 'chat.completion', created: p.created, model: p.model, system_fingerprint: FINGERPRINT,
        choices: [{ index: 0, message: { role: 'assistant', content: calls === undefined ? choiceText(c) : '', ...(calls === undefined ? {} : { tool_calls: calls }) }, finish_reason: c.finish }],
        usage: tokenUsage(p),
      });
    },
    stream,
  };
}

export function v1Completions(view: EngineView, lib: Library): InferenceRoute {
  // Ollama attaches an all-zero usage to every chunk once usage was asked for.
  const zero = { prompt_tokens: 0, completion_tokens: 0, total_tokens: 0 };
  const chunk = (p: Plan, choices: unknown[], usage: unknown): Record<string, unknown> => {
    const c: Record<string, unknown> = { id: p.id, object: 'text_completion', created: p.created, choices, model: p.model, system_fingerprint: FINGERPRINT };
    if (usage !== undefined) c.usage = usage;
    return c;
  };
  const stream = sseStream({
    failure: (p) => sseEvent({ ...chunk(p, [{ text: '', index: 0, finish_reason: null }], undefined), model: '' }),
    token: (p, c, i) => chunk(p, [{ text: c.tokens[i], index: 0, finish_reason: null }], p.includeUsage ? zero : undefined),
    finish: (p, c) => chunk(p, [{ text: '', index: 0, finish_reason: c.finish }], p.includeUsage ? zero : undefined),
    usage: (p) => chunk(p, [], tokenUsage(p)),
  });
  return {
    kind: 'inference',
    wantsStream,
    plan(body) {
      if (!isRecord(body)) return { kind: 'bad-request', message: 'invalid request body' };
      if (body.prompt !== undefined && typeof body.prompt !== 'string') {
        return { kind: 'bad-request', message: `json: cannot unmarshal ${Array.isArray(body.prompt) ? 'array' : typeof body.prompt} into Go struct field CompletionRequest.prompt of type string` };
      }
      const bad = requireChatModel(lib, body.model, 'generate');
      if (bad) return bad;
      const name = body.model as string;
      const prompt = typeof body.prompt === 'string' ? body.prompt : '';
      const items = promptItems(prompt, false) ?? [{ text: '', tokens: 0 }];
      const m = lib.find(name)!;
      const ctx = contextWindow(m, {});
      const held = lib.hold(m, ctx, undefined);
      if (held !== undefined) return held;
      const promptTokens = Math.min(items[0]!.tokens, ctx);
      return textPlan({
        model: name, stream: body.stream === true,
        includeUsage: isRecord(body.stream_options) && body.stream_options.include_usage === true,
        items: [{ seed: prompt, promptTokens, promptText: prompt }],
        maxTokens: generationLimit(intField(body.max_tokens), Infinity, promptTokens), idPrefix: '', id: compatId('cmpl-'),
      });
    },
    error: compatError,
    reply(p) {
      const c = p.choices[0]!;
      return jsonReply(200, {
        id: p.id, object: 'text_completion', created: p.created, model: p.model, system_fingerprint: FINGERPRINT,
        choices: [{ text: choiceText(c), index: 0, finish_reason: c.finish }],
        usage: tokenUsage(p),
      });
    },
    stream,
  };
}

export function v1Embeddings(view: EngineView, lib: Library): InferenceRoute {
  return {
    kind: 'inference',
    wantsStream: () => false,
    plan(body) {
      if (!isRecord(body)) return { kind: 'bad-request', message: 'invalid request body' };
      const format = body.encoding_format;
      if (typeof format === 'string' && format.toLowerCase() !== 'float' && format.toLowerCase() !== 'base64') {
        return { kind: 'bad-request', message: `Invalid value for 'encoding_format' = ${format}. Supported values: ['float', 'base64'].` };
      }
      if (body.input === undefined || body.input === null || (Array.isArray(body.input) && body.input.length === 0)) {
        return { kind: 'bad-request', message: 'invalid input' };
      }
      const input = body.input === '' ? [''] : body.input;
      return planEmbeddings(view, lib, { ...body, input }, 'input', typeof format === 'string' && format.toLowerCase() === 'base64');
    },
    error: compatError,
    reply(p) {
      return jsonReply(200, {
        object: 'list',
        data: (p.vectors ?? []).map((v, index) => ({ object: 'embedding', embedding: encodeVector(p, v), index })),
        model: p.model,
        usage: { prompt_tokens: p.promptTokens, total_tokens: p.promptTokens },
      });
    },
    stream: null,
  };
}

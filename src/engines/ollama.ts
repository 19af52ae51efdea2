// Ollama through its native API (/api/chat, /api/generate, /api/embed), translated both
// ways: OpenAI request → Ollama request, Ollama JSON / NDJSON stream → OpenAI objects / SSE.

import { FabricError } from '../core/errors.ts';
import { Unsupported } from '../core/attempt-error.ts';
import { parseEngineError } from './errors.ts';
import { callIn, forcedTool } from './ollama-forced-tool.ts';
import { namedFunction, refuseToolChoiceKinds, toolsNamed } from './tool-choice.ts';
import type {
  EngineAdapter, JsonObject, NormalizeContext, Operation, PrepareOptions, PreparedRequest, StreamTranslator, Usage, UpstreamErrorInfo,
} from './types.ts';

function isObj(v: unknown): v is JsonObject {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

const OPTION_MAP: Record<string, string> = {
  temperature: 'temperature',
  top_p: 'top_p',
  seed: 'seed',
  frequency_penalty: 'frequency_penalty',
  presence_penalty: 'presence_penalty',
  max_tokens: 'num_predict',
  max_completion_tokens: 'num_predict',
  top_k: 'top_k',
  min_p: 'min_p',
  repeat_penalty: 'repeat_penalty',
};

function options(body: JsonObject): JsonObject {
  const o: JsonObject = {};
  for (const k in OPTION_MAP) if (body[k] !== undefined && body[k] !== null) o[OPTION_MAP[k]!] = body[k];
  if (typeof body.stop === 'string') o.stop = [body.stop];
  else if (Array.isArray(body.stop)) o.stop = body.stop;
  return o;
}

function format(body: JsonObject): unknown {
  const rf = body.response_format;
  if (!isObj(rf)) return undefined;
  if (rf.type === 'json_object') return 'json';
  if (rf.type === 'json_schema' && isObj(rf.json_schema)) return rf.json_schema.schema;
  return undefined;
}

// Ollama's own OpenAI layer also takes a blank media type ("data:;base64,").
const DATA_URL = /^data:[^;,]*;base64,/;

/**
 * OpenAI roles Ollama's templates do not know: they render only system, user, assistant and
 * tool messages and silently drop the rest, so a developer message's instructions would vanish.
 */
const ROLE_MAP = new Map([['developer', 'system'], ['function', 'tool']]);

/** The function name of the assistant tool call `id` answers (the last one wins, as in Ollama's openai.go). */
function toolNameFor(messages: unknown[], before: number, id: string): string | undefined {
  for (let j = before - 1; j >= 0; j--) {
    const m = messages[j];
    if (!isObj(m) || !Array.isArray(m.tool_calls)) continue;
    for (const tc of m.tool_calls) {
      if (isObj(tc) && tc.id === id && isObj(tc.function) && typeof tc.function.name === 'string') return tc.function.name;
    }
  }
  return undefined;
}

function message(m: unknown, i: number, all: unknown[]): JsonObject {
  if (!isObj(m)) throw new FabricError('invalid_request', `messages[${i}] must be an object`, { param: `messages[${i}]` });
  const role = typeof m.role === 'string' ? ROLE_MAP.get(m.role) ?? m.role : m.role;
  const out: JsonObject = { role };
  if (typeof m.content === 'string' || m.content === null || m.content === undefined) {
    out.content = m.content ?? '';
  } else if (Array.isArray(m.content)) {
    const text: string[] = [];
    const images: string[] = [];
    for (const part of m.content) {
      if (!isObj(part)) continue;
      if (part.type === 'text') {
        if (typeof part.text === 'string') text.push(part.text);
      } else if (part.type === 'image_url') {
        const u = isObj(part.image_url) ? part.image_url.url : part.image_url;
        if (typeof u !== 'string' || !DATA_URL.test(u)) {
          throw new Unsupported(`messages[${i}]: Ollama backends take images only as data: URLs`, `messages[${i}].content`);
        }
        images.push(u.slice(u.indexOf(',') + 1));
      } else {
        // Audio, files…: dropping them would answer a different question (Ollama's own layer refuses them too).
        throw new Unsupported(`messages[${i}]: Ollama backends take only text and image_url content parts, not ${JSON.stringify(part.type)}`, `messages[${i}].content`);
      }
    }
    out.content = text.join('\n');
    if (images.length > 0) out.images = images;
  }
  const reasoning = m.reasoning_content ?? m.reasoning;
  if (typeof reasoning === 'string' && reasoning !== '') out.thinking = reasoning;
  if (Array.isArray(m.tool_calls)) {
    out.tool_calls = m.tool_calls.map((tc, j) => {
      const fn = isObj(tc) && isObj(tc.function) ? tc.function : {};
      let args: unknown = fn.arguments;
      if (typeof args === 'string') {
        // Ollama takes the arguments as an object: text that is not JSON cannot be sent as it
        // was written (Ollama's own OpenAI layer answers 400 "invalid tool call arguments").
        try {
          args = JSON.parse(args);
        } catch {
          throw new Unsupported(`messages[${i}].tool_calls[${j}].function.arguments is not JSON, which Ollama backends need`, `messages[${i}].tool_calls[${j}].function.arguments`);
        }
      }
      return { function: { name: fn.name, arguments: args } };
    });
  }
  if (role === 'tool') {
    if (typeof m.tool_call_id === 'string') out.tool_call_id = m.tool_call_id;
    // Templates name the tool a result came from by tool_name; OpenAI clients send only tool_call_id.
    const name = typeof m.name === 'string' ? m.name : typeof m.tool_call_id === 'string' ? toolNameFor(all, i, m.tool_call_id) : undefined;
    if (name !== undefined) out.tool_name = name;
  }
  return out;
}

const EFFORTS = new Set(['high', 'medium', 'low', 'none']);

/** reasoning_effort (or reasoning.effort) as Ollama's `think`, as Ollama's openai.go maps it. */
function think(body: JsonObject): unknown {
  const effort = isObj(body.reasoning) && body.reasoning.effort !== undefined ? body.reasoning.effort : body.reasoning_effort;
  if (effort === undefined || effort === null) return undefined;
  if (typeof effort !== 'string' || !EFFORTS.has(effort)) {
    throw new Unsupported(`Ollama backends take reasoning_effort "high", "medium", "low" or "none", not ${JSON.stringify(effort)}`, 'reasoning_effort');
  }
  return effort === 'none' ? false : effort;
}

/**
 * Log probabilities (Ollama 0.12.11+: `logprobs` and `top_logprobs` on /api/chat and
 * /api/generate, answered as a top-level `logprobs` list, one entry per token of the line).
 * Chat asks with logprobs: true and top_logprobs: N; legacy completions with logprobs: N.
 */
function askLogprobs(op: Operation, body: JsonObject, req: JsonObject): void {
  if (op === 'chat') {
    if (body.logprobs !== true) return;
    req.logprobs = true;
    if (typeof body.top_logprobs === 'number' && body.top_logprobs > 0) req.top_logprobs = body.top_logprobs;
  } else if (typeof body.logprobs === 'number') {
    req.logprobs = true;
    if (body.logprobs > 0) req.top_logprobs = body.logprobs;
  }
}

interface TokenLogprob { token: string; logprob: number; bytes: number[] | null }

function tokenLogprob(v: unknown): TokenLogprob {
  const o = isObj(v) ? v : {};
  return {
    token: typeof o.token === 'string' ? o.token : '',
    // Go's encoding leaves out nothing here, but a zero may be omitted by other servers.
    logprob: typeof o.logprob === 'number' ? o.logprob : 0,
    bytes: Array.isArray(o.bytes) ? (o.bytes as number[]) : null,
  };
}

/** Ollama's list as OpenAI's chat `logprobs` ({content, refusal}); null when it sent none. */
function chatLogprobs(list: unknown): JsonObject | null {
  if (!Array.isArray(list) || list.length === 0) return null;
  return {
    content: list.map((e) => ({ ...tokenLogprob(e), top_logprobs: isObj(e) && Array.isArray(e.top_logprobs) ? e.top_logprobs.map(tokenLogprob) : [] })),
    refusal: null,
  };
}

/** Characters as OpenAI counts them in text_offset (code points, not UTF-16 units). */
function codePoints(s: string): number {
  let n = 0;
  for (const _ of s) n++;
  return n;
}

/** Ollama's list as a legacy completion's `logprobs`; `offset` is where this text starts in the whole answer. */
function completionLogprobs(list: unknown, offset: number): JsonObject | null {
  if (!Array.isArray(list) || list.length === 0) return null;
  const tokens: string[] = [];
  const tokenLogprobs: number[] = [];
  const top: Record<string, number>[] = [];
  const textOffset: number[] = [];
  let at = offset;
  for (const e of list) {
    const t = tokenLogprob(e);
    tokens.push(t.token);
    tokenLogprobs.push(t.logprob);
    // With logprobs: 0 Ollama sends no alternatives: the place holds the generated token alone, as vLLM's does.
    const alts: Record<string, number> = {};
    if (isObj(e) && Array.isArray(e.top_logprobs) && e.top_logprobs.length > 0) for (const a of e.top_logprobs) { const x = tokenLogprob(a); alts[x.token] = x.logprob; }
    else alts[t.token] = t.logprob;
    top.push(alts);
    textOffset.push(at);
    at += codePoints(t.token);
  }
  return { tokens, token_logprobs: tokenLogprobs, top_logprobs: top, text_offset: textOffset };
}

function hasEntries(v: unknown): boolean {
  return Array.isArray(v) && v.length > 0;
}

function usageOf(j: JsonObject): Usage {
  const p = typeof j.prompt_eval_count === 'number' ? j.prompt_eval_count : 0;
  const c = typeof j.eval_count === 'number' ? j.eval_count : 0;
  return { prompt_tokens: p, completion_tokens: c, total_tokens: p + c };
}

/** Ollama's tool calls as OpenAI's; `first` numbers them on from the calls already sent in a stream. */
function toolCalls(msg: JsonObject, requestId: string, first: number): JsonObject[] | undefined {
  if (!Array.isArray(msg.tool_calls) || msg.tool_calls.length === 0) return undefined;
  return msg.tool_calls.map((tc, i) => {
    const o = isObj(tc) ? tc : {};
    const fn = isObj(o.function) ? o.function : {};
    return {
      // Recent Ollama gives each call its own id (call_xxxxxxxx); older versions send none.
      id: typeof o.id === 'string' && o.id !== '' ? o.id : `call_${requestId}_${first + i}`,
      type: 'function',
      function: { name: String(fn.name ?? ''), arguments: typeof fn.arguments === 'string' ? fn.arguments : JSON.stringify(fn.arguments ?? {}) },
    };
  });
}

/**
 * The tools to offer: Ollama has no tool_choice, so "none" offers none and a named function offers
 * that one alone (the nearest Ollama comes to forcing it); "required" cannot be said, and the
 * model decides.
 */
function toolsFor(body: JsonObject): unknown[] | undefined {
  const tools = body.tools;
  if (!Array.isArray(tools) || tools.length === 0) return undefined;
  if (body.tool_choice === 'none') return undefined;
  const name = namedFunction(body.tool_choice);
  return name === undefined ? tools : toolsNamed(tools, name);
}

/** A reply cut by num_predict is "length", a call cut so too, as on OpenAI. */
function finish(j: JsonObject, hasTools: boolean): string {
  if (j.done_reason === 'length') return 'length';
  return hasTools ? 'tool_calls' : 'stop';
}

function float32Base64(v: number[]): string {
  const f = new Float32Array(v);
  return Buffer.from(f.buffer, f.byteOffset, f.byteLength).toString('base64');
}

/**
 * Fields Ollama has no way to honour, which its own OpenAI layer drops without a word (openai.go
 * reads no echo, best_of or logit_bias): an answer without them is not the one asked for, so the
 * backend is passed over, as llama.cpp's refusal does. Values that ask for nothing pass.
 */
function refuseUnhonoured(body: JsonObject): void {
  refuseToolChoiceKinds(body, 'Ollama');
  if (body.echo !== undefined && body.echo !== null && body.echo !== false) {
    throw new Unsupported('Ollama backends do not echo the prompt (`echo`)', 'echo');
  }
  const bestOf = body.best_of;
  if (bestOf !== undefined && bestOf !== null && bestOf !== 1) {
    throw new Unsupported(`\`best_of\` is ${JSON.stringify(bestOf)}, but Ollama backends generate one answer per request and cannot pick the best of several`, 'best_of');
  }
  const bias = body.logit_bias;
  if (bias !== undefined && bias !== null && !(isObj(bias) && Object.keys(bias).length === 0)) {
    throw new Unsupported('Ollama backends take no `logit_bias`: they cannot weigh tokens up or down', 'logit_bias');
  }
}

/** What an Ollama backend's config asks of every request it is sent. */
export interface OllamaSettings {
  /**
   * options.num_ctx: the context the model is loaded with. Without it Ollama uses its server's
   * default (4,096 tokens on GPUs under 24 GiB, or OLLAMA_CONTEXT_LENGTH), whatever the
   * backend's configured context_window says. The same value on every request: a different
   * one makes Ollama reload the model.
   */
  numCtx?: number;
  /** keep_alive in seconds; -1 keeps the model loaded, 0 unloads it after the request. */
  keepAliveSeconds?: number;
}

export class OllamaEngine implements EngineAdapter {
  readonly kind = 'ollama' as const;
  readonly streamFormat = 'ndjson' as const;
  readonly #numCtx: number | undefined;
  readonly #keepAlive: number | undefined;

  constructor(settings: OllamaSettings = {}) {
    this.#numCtx = settings.numCtx;
    this.#keepAlive = settings.keepAliveSeconds;
  }

  /** num_ctx into the request's options (an object of this request's own), keep_alive beside them. */
  #settings(req: JsonObject): void {
    if (this.#numCtx !== undefined) ((req.options ??= {}) as JsonObject).num_ctx = this.#numCtx;
    if (this.#keepAlive !== undefined) req.keep_alive = this.#keepAlive;
  }

  prepare(op: Operation, body: JsonObject, opts: PrepareOptions): PreparedRequest {
    // fabric config check keeps Ollama out of rerank roles and patterns; passed over if one gets here.
    if (op === 'rerank') throw new Unsupported('Ollama has no reranking endpoint', 'model');
    if (op === 'embeddings') {
      const input = body.input;
      const ok = typeof input === 'string' || (Array.isArray(input) && input.every((x) => typeof x === 'string'));
      if (!ok) throw new Unsupported('Ollama backends take embeddings input as a string or a list of strings, not token ids', 'input');
      // truncate: false: an input longer than the model's context is refused (a context-length
      // error the gateway can fall back on), where Ollama would embed its first part alone, as
      // if it were the whole (OpenAI and vLLM refuse it too).
      const req: JsonObject = { model: opts.model, input, truncate: false };
      if (typeof body.dimensions === 'number') req.dimensions = body.dimensions;
      this.#settings(req);
      return { path: '/api/embed', body: JSON.stringify(req), injectedUsage: false };
    }
    // Ollama generates one answer per request; a silent single choice would be a wrong answer.
    if (typeof body.n === 'number' && body.n > 1) {
      throw new Unsupported(`\`n\` is ${body.n}, but Ollama backends return one choice per request; send n requests instead`, 'n');
    }
    refuseUnhonoured(body);
    const stream = body.stream === true;
    // truncate: false: a prompt longer than the context is refused with a context-length error
    // (which the gateway falls back on), where Ollama would silently drop the oldest messages, or
    // the start of the prompt, and answer as if it had read everything. shift: false: a reply
    // that fills the context stops there with finish_reason "length", as on OpenAI and vLLM,
    // rather than going on after discarding the start of the conversation. Ollama versions
    // before these fields ignore them.
    const req: JsonObject = { model: opts.model, stream, truncate: false, shift: false };
    const o = options(body);
    if (Object.keys(o).length > 0) req.options = o;
    this.#settings(req);
    const f = format(body);
    if (f !== undefined) req.format = f;
    askLogprobs(op, body, req);
    if (op === 'chat') {
      const msgs = body.messages as unknown[];
      const out: JsonObject[] = new Array(msgs.length);
      for (let i = 0; i < msgs.length; i++) out[i] = message(msgs[i], i, msgs);
      req.messages = out;
      const tools = toolsFor(body);
      if (tools !== undefined) req.tools = tools;
      const forced = forcedTool(body);
      if (forced !== undefined) req.format = forced.schema;
      const t = think(body);
      if (t !== undefined) req.think = t;
      return { path: '/api/chat', body: JSON.stringify(req), injectedUsage: false, ...(forced === undefined ? {} : { forcedTool: forced.forced }) };
    }
    let prompt = body.prompt;
    if (Array.isArray(prompt)) {
      if (prompt.length !== 1 || typeof prompt[0] !== 'string') {
        throw new Unsupported('Ollama backends take one prompt string per completion request', 'prompt');
      }
      prompt = prompt[0];
    }
    req.prompt = prompt;
    if (typeof body.suffix === 'string') req.suffix = body.suffix;
    return { path: '/api/generate', body: JSON.stringify(req), injectedUsage: false };
  }

  normalize(op: Operation, json: unknown, body: JsonObject, ctx: NormalizeContext): JsonObject | undefined {
    if (!isObj(json)) return undefined;
    if (op === 'embeddings') {
      if (!Array.isArray(json.embeddings)) return undefined;
      const b64 = body.encoding_format === 'base64';
      const p = typeof json.prompt_eval_count === 'number' ? json.prompt_eval_count : 0;
      return {
        object: 'list',
        data: json.embeddings.map((e, index) => ({ object: 'embedding', index, embedding: b64 ? float32Base64(e as number[]) : e })),
        model: typeof json.model === 'string' ? json.model : ctx.model,
        usage: { prompt_tokens: p, total_tokens: p },
      };
    }
    if (op === 'chat') {
      if (!isObj(json.message)) return undefined;
      let tc = toolCalls(json.message, ctx.requestId, 0);
      const msg: JsonObject = { role: 'assistant', content: typeof json.message.content === 'string' ? json.message.content : null, refusal: null };
      // A forced call asked of the engine as JSON output; if it made the call itself, that one
      // is the call, and the JSON beside it no prose.
      const forced = typeof msg.content === 'string' && msg.content !== '' ? forcedTool(body)?.forced : undefined;
      if (forced !== undefined) {
        const call = tc === undefined ? callIn(forced, msg.content as string) : undefined;
        if (call !== undefined) tc = [{ id: `call_${ctx.requestId}_0`, type: 'function', function: call }];
        if (tc !== undefined) msg.content = null;
      }
      // A thinking model's reasoning, under the name vLLM and DeepSeek give it.
      if (typeof json.message.thinking === 'string' && json.message.thinking !== '') msg.reasoning_content = json.message.thinking;
      if (tc !== undefined) msg.tool_calls = tc;
      return {
        id: 'chatcmpl-' + ctx.requestId,
        object: 'chat.completion',
        created: ctx.created,
        model: typeof json.model === 'string' ? json.model : ctx.model,
        choices: [{ index: 0, message: msg, logprobs: chatLogprobs(json.logprobs), finish_reason: finish(json, tc !== undefined) }],
        usage: usageOf(json),
      };
    }
    if (typeof json.response !== 'string') return undefined;
    return {
      id: 'cmpl-' + ctx.requestId,
      object: 'text_completion',
      created: ctx.created,
      model: typeof json.model === 'string' ? json.model : ctx.model,
      choices: [{ index: 0, text: json.response, logprobs: completionLogprobs(json.logprobs, 0), finish_reason: finish(json, false) }],
      usage: usageOf(json),
    };
  }

  parseError(status: number, text: string): UpstreamErrorInfo {
    const info = parseEngineError(status, text);
    // server/routes.go: `"qwen2.5:7b" does not support thinking` when `think` (reasoning_effort) asks a model without it.
    if (status === 400 && /does not support thinking/i.test(info.message)) info.unsupportedParam = 'reasoning_effort';
    return info;
  }

  streamTranslator(op: Operation, ctx: NormalizeContext, includeUsage: boolean, prepared?: PreparedRequest): StreamTranslator {
    const chat = op === 'chat';
    const id = (chat ? 'chatcmpl-' : 'cmpl-') + ctx.requestId;
    const object = chat ? 'chat.completion.chunk' : 'text_completion';
    let first = true;
    let usage: Usage | undefined;
    let finished = false;
    /** Tool calls sent so far: Ollama sends each in its own line, and each needs its own index. */
    let toolCount = 0;
    /** Characters of completion text sent so far (a legacy completion's text_offset). */
    let sent = 0;
    // A forced call: one function's arguments stream as they come (under the index the call
    // took); a choice of several is read whole at the end, for its name comes inside.
    const forced = prepared?.forcedTool;
    let forcedAt = -1;
    let forcedText = '';
    /** The engine's own calls, held while a choice of several is still JSON. */
    const held: JsonObject[] = [];
    const event = (model: string, choice: JsonObject): string =>
      `data: ${JSON.stringify({ id, object, created: ctx.created, model, choices: [choice] })}\n\n`;
    return {
      line(text: string): string {
        if (finished || text.trim() === '') return '';
        let j: unknown;
        try {
          j = JSON.parse(text);
        } catch {
          throw new FabricError('bad_upstream_response', 'Ollama sent a stream line that is not JSON');
        }
        if (!isObj(j)) throw new FabricError('bad_upstream_response', 'Ollama sent a stream line that is not an object');
        if (typeof j.error === 'string') throw new FabricError('bad_upstream_response', `Ollama: ${j.error}`);
        const model = typeof j.model === 'string' ? j.model : ctx.model;
        let out = '';
        if (chat) {
          const m = isObj(j.message) ? j.message : {};
          const delta: JsonObject = {};
          if (first) { delta.role = 'assistant'; first = false; }
          if (typeof m.thinking === 'string' && m.thinking !== '') delta.reasoning_content = m.thinking;
          const calls: JsonObject[] = [];
          // A forced call is one call. The engine's own, if it comes before any JSON (then the
          // JSON beside it is dropped, as in a whole answer); else the one made of its JSON. A
          // call of its own while a choice of several is still JSON waits: it stands in if that
          // JSON proves no call.
          let tc = forced !== undefined && forcedAt >= 0 ? undefined : toolCalls(m, ctx.requestId, toolCount);
          if (tc !== undefined && forcedText !== '') {
            held.push(...tc);
            tc = undefined;
          }
          if (tc !== undefined) {
            for (let i = 0; i < tc.length; i++) calls.push({ index: toolCount + i, ...tc[i] });
            toolCount += tc.length;
          }
          const native = forced !== undefined && forcedAt < 0 && forcedText === '' && toolCount > 0;
          if (typeof m.content === 'string' && m.content !== '' && !native) {
            if (forced === undefined) delta.content = m.content;
            else if (forced.name === undefined) forcedText += m.content;
            else if (forcedAt >= 0) calls.push({ index: forcedAt, function: { arguments: m.content } });
            else {
              forcedAt = toolCount++;
              calls.push({ index: forcedAt, id: `call_${ctx.requestId}_${forcedAt}`, type: 'function', function: { name: forced.name, arguments: m.content } });
            }
          }
          if (calls.length > 0) delta.tool_calls = calls;
          // The done line may carry the last tokens' logprobs with no text of their own.
          if (Object.keys(delta).length > 0 || j.done !== true || hasEntries(j.logprobs)) out += event(model, { index: 0, delta, logprobs: chatLogprobs(j.logprobs), finish_reason: null });
          if (j.done === true && forcedText !== '') {
            const call = callIn(forced!, forcedText);
            let whole: JsonObject;
            if (call !== undefined) whole = { tool_calls: [{ index: toolCount++, id: `call_${ctx.requestId}_${toolCount - 1}`, type: 'function', function: call }] };
            else if (held.length > 0) {
              whole = { tool_calls: held.map((t, i) => ({ index: toolCount + i, ...t })) };
              toolCount += held.length;
            } else whole = { content: forcedText };
            out += event(model, { index: 0, delta: whole, logprobs: null, finish_reason: null });
          }
          if (j.done === true) out += event(model, { index: 0, delta: {}, logprobs: null, finish_reason: finish(j, toolCount > 0) });
        } else {
          if (typeof j.response === 'string' && (j.response !== '' || j.done !== true || hasEntries(j.logprobs))) {
            out += event(model, { index: 0, text: j.response, logprobs: completionLogprobs(j.logprobs, sent), finish_reason: null });
            // Counted only where logprobs come (then on every line): no per-chunk cost otherwise.
            if (Array.isArray(j.logprobs)) sent += codePoints(j.response);
          }
          if (j.done === true) out += event(model, { index: 0, text: '', logprobs: null, finish_reason: finish(j, false) });
        }
        if (j.done === true) {
          finished = true;
          usage = usageOf(j);
          if (includeUsage) out += `data: ${JSON.stringify({ id, object, created: ctx.created, model, choices: [], usage })}\n\n`;
          out += 'data: [DONE]\n\n';
        }
        return out;
      },
      usage: () => usage,
      done: () => finished,
    };
  }
}

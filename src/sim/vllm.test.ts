// vLLM's shapes, quirks and errors.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { startFleet } from './fleet.ts';
import type { SimFleet } from './fleet.ts';
import { embedding, relevance, replyTokens } from './generate.ts';
import { FAST, at, decodeBase64Floats, parseSse, post } from './test-helpers.ts';

const CHAT = 'meta-llama/Llama-3.1-8B-Instruct';
const EMBED = 'BAAI/bge-base-en-v1.5';
const RERANK = 'BAAI/bge-reranker-v2-m3';

describe('vllm', () => {
  let fleet: SimFleet;
  let chatUrl: string;
  let embedUrl: string;
  let rerankUrl: string;

  before(async () => {
    fleet = await startFleet([
      { name: 'chat', protocol: 'vllm', model: CHAT, kind: 'chat', contextWindow: 100, timing: FAST, apiKey: 'k' },
      { name: 'embed', protocol: 'vllm', model: EMBED, kind: 'embeddings', dimensions: 16, timing: FAST },
      { name: 'rerank', protocol: 'vllm', model: RERANK, kind: 'rerank', contextWindow: 30, timing: FAST, apiKey: 'k' },
    ]);
    chatUrl = fleet.get('chat').url;
    embedUrl = fleet.get('embed').url;
    rerankUrl = fleet.get('rerank').url;
  });
  after(() => fleet.close());
  const auth = { authorization: 'Bearer k' };

  test('health, version and model list', async () => {
    const health = await fetch(`${chatUrl}/health`);
    assert.equal(health.status, 200);
    assert.equal(await health.text(), '');
    assert.deepEqual(await (await fetch(`${chatUrl}/version`)).json(), { version: '0.11.0' });
    const models: unknown = await (await fetch(`${chatUrl}/v1/models`, { headers: auth })).json();
    assert.equal(at(models, 'object'), 'list');
    const card = at(models, 'data', 0);
    assert.equal(at(card, 'id'), CHAT);
    assert.equal(at(card, 'owned_by'), 'vllm');
    assert.equal(at(card, 'root'), CHAT);
    assert.equal(at(card, 'max_model_len'), 100);
    assert.equal(at(card, 'permission', 0, 'object'), 'model_permission');
    assert.match(String(at(card, 'permission', 0, 'id')), /^modelperm-/);
  });

  test('chat: a stop string ends the reply before it, finish_reason stop and the string as stop_reason (no EOS token), streamed and not', async () => {
    const whole = replyTokens('why').join('');
    const stop = whole.split(' ').slice(2, 4).join(' ');
    const cut = whole.slice(0, whole.indexOf(stop));
    const json: unknown = await (await post(`${chatUrl}/v1/chat/completions`, { model: CHAT, messages: [{ role: 'user', content: 'why' }], stop: ['never there', stop] }, auth)).json();
    assert.equal(at(json, 'choices', 0, 'message', 'content'), cut);
    assert.equal(at(json, 'choices', 0, 'finish_reason'), 'stop');
    assert.equal(at(json, 'choices', 0, 'stop_reason'), stop);
    // The tokens begun before the stop string (the last one cut inside), and no EOS token.
    let begun = 0;
    for (let i = 0, pos = 0; i < replyTokens('why').length && pos < cut.length; pos += replyTokens('why')[i]!.length, i++) begun++;
    assert.equal(at(json, 'usage', 'completion_tokens'), begun, 'no EOS token counted');
    const events = parseSse(await (await post(`${chatUrl}/v1/chat/completions`, { model: CHAT, messages: [{ role: 'user', content: 'why' }], stop, stream: true }, auth)).text()).events;
    assert.equal(events.map((e) => at(e, 'choices', 0, 'delta', 'content') ?? '').join(''), cut);
    assert.equal(at(events.at(-1), 'choices', 0, 'stop_reason'), stop);
    const none: unknown = await (await post(`${chatUrl}/v1/chat/completions`, { model: CHAT, messages: [{ role: 'user', content: 'why' }], stop: ['never there'] }, auth)).json();
    assert.equal(at(none, 'choices', 0, 'message', 'content'), whole);
    assert.equal(at(none, 'choices', 0, 'stop_reason'), null);
  });

  test('chat: every ChatMessage and ChatCompletionResponse field, serialised in full (model_dump)', async () => {
    const res = await post(`${chatUrl}/v1/chat/completions`, { model: CHAT, messages: [{ role: 'user', content: 'why' }] }, auth);
    assert.equal(res.headers.get('content-type'), 'application/json');
    const json: unknown = await res.json();
    assert.match(String(at(json, 'id')), /^chatcmpl-[0-9a-f]{32}$/);
    assert.equal(at(json, 'object'), 'chat.completion');
    assert.equal(at(json, 'model'), CHAT);
    // vLLM 0.11 protocol.py: ChatCompletionResponse, ChatCompletionResponseChoice, ChatMessage.
    assert.deepEqual(Object.keys(json as object), [
      'id', 'object', 'created', 'model', 'choices', 'service_tier', 'system_fingerprint', 'usage',
      'prompt_logprobs', 'prompt_token_ids', 'kv_transfer_params',
    ]);
    const message = at(json, 'choices', 0, 'message') as Record<string, unknown>;
    assert.deepEqual(message, {
      role: 'assistant', content: replyTokens('why').join(''), refusal: null, annotations: null, audio: null,
      function_call: null, tool_calls: [], reasoning_content: null,
    });
    assert.deepEqual(Object.keys(message), ['role', 'content', 'refusal', 'annotations', 'audio', 'function_call', 'tool_calls', 'reasoning_content']);
    assert.deepEqual(Object.keys(at(json, 'choices', 0) as object), ['index', 'message', 'logprobs', 'finish_reason', 'stop_reason', 'token_ids']);
    assert.equal(at(json, 'choices', 0, 'stop_reason'), null);
    assert.equal(at(json, 'choices', 0, 'token_ids'), null);
    assert.deepEqual(at(json, 'usage'), {
      // The EOS token that ends the reply counts (len(output.token_ids)).
      prompt_tokens: 8, total_tokens: 9 + replyTokens('why').length, completion_tokens: replyTokens('why').length + 1, prompt_tokens_details: null,
    });
    assert.equal(at(json, 'prompt_logprobs'), null);
    assert.equal(at(json, 'system_fingerprint'), null);
    assert.equal(at(json, 'kv_transfer_params'), null);
  });

  test('completions: CompletionResponse serialised in full', async () => {
    const json: unknown = await (await post(`${chatUrl}/v1/completions`, { model: CHAT, prompt: 'one', max_tokens: 2 }, auth)).json();
    assert.deepEqual(Object.keys(json as object), ['id', 'object', 'created', 'model', 'choices', 'service_tier', 'system_fingerprint', 'usage', 'kv_transfer_params']);
  });

  test('the model field may be left out', async () => {
    const res = await post(`${chatUrl}/v1/chat/completions`, { messages: [{ role: 'user', content: 'x' }] }, auth);
    assert.equal(res.status, 200);
    await res.text();
  });

  test('chat stream: role chunk first; EOS gets a chunk of its own with empty content, max_tokens its last token; usage chunk with empty choices', async () => {
    const res = await post(`${chatUrl}/v1/chat/completions`, {
      model: CHAT, messages: [{ role: 'user', content: 'why' }], stream: true, stream_options: { include_usage: true },
    }, auth);
    const { events, done } = parseSse(await res.text());
    assert.equal(done, true);
    const n = replyTokens('why').length;
    assert.equal(events.length, n + 3);
    assert.deepEqual(at(events[0], 'choices', 0, 'delta'), { role: 'assistant', content: '' });
    assert.equal('usage' in events[1]!, false, 'chunks carry no usage key unless continuous usage was asked');
    assert.equal(at(events[n], 'choices', 0, 'finish_reason'), null);
    assert.equal(at(events[n], 'choices', 0, 'delta', 'content'), replyTokens('why')[n - 1]);
    assert.deepEqual(at(events[n + 1], 'choices', 0), { index: 0, delta: { content: '' }, logprobs: null, finish_reason: 'stop', stop_reason: null });
    assert.deepEqual(at(events[n + 2], 'choices'), []);
    assert.deepEqual(at(events[n + 2], 'usage'), { prompt_tokens: 8, total_tokens: 9 + n, completion_tokens: n + 1 }, 'the EOS token counts');

    const cut = parseSse(await (await post(`${chatUrl}/v1/chat/completions`, {
      model: CHAT, messages: [{ role: 'user', content: 'why' }], stream: true, max_tokens: 2,
    }, auth)).text());
    assert.equal(cut.events.length, 3, 'role chunk and two tokens; no usage unless asked');
    assert.equal(at(cut.events[2], 'choices', 0, 'finish_reason'), 'length');
    assert.equal(at(cut.events[2], 'choices', 0, 'delta', 'content'), replyTokens('why')[1]);
  });

  test('a max_tokens the reply exactly fills stops at length: the EOS token needs a step of its own', async () => {
    const n = replyTokens('why').length;
    const ask = async (max: number) => (await (await post(`${chatUrl}/v1/chat/completions`, { model: CHAT, messages: [{ role: 'user', content: 'why' }], max_tokens: max }, auth)).json()) as any;
    const exact = await ask(n);
    assert.deepEqual([exact.choices[0].finish_reason, exact.usage.completion_tokens], ['length', n]);
    const room = await ask(n + 1);
    assert.deepEqual([room.choices[0].finish_reason, room.usage.completion_tokens], ['stop', n + 1], 'room for EOS: stop, EOS counted');
  });

  test('stream_options: include_usage defaults to true; continuous_usage_stats puts usage on every chunk', async () => {
    // protocol.py StreamOptions(include_usage=True, continuous_usage_stats=False); utils.py should_include_usage.
    const n = replyTokens('why').length;
    const dflt = parseSse(await (await post(`${chatUrl}/v1/chat/completions`, {
      model: CHAT, messages: [{ role: 'user', content: 'why' }], stream: true, stream_options: {},
    }, auth)).text());
    assert.deepEqual(at(dflt.events.at(-1), 'usage'), { prompt_tokens: 8, total_tokens: 9 + n, completion_tokens: n + 1 });

    const { events } = parseSse(await (await post(`${chatUrl}/v1/chat/completions`, {
      model: CHAT, messages: [{ role: 'user', content: 'why' }], stream: true, stream_options: { include_usage: true, continuous_usage_stats: true },
    }, auth)).text());
    assert.equal(events.length, n + 3);
    assert.deepEqual(at(events[0], 'usage'), { prompt_tokens: 8, total_tokens: 8, completion_tokens: 0 });
    assert.deepEqual(at(events[1], 'usage'), { prompt_tokens: 8, total_tokens: 9, completion_tokens: 1 });
    assert.deepEqual(at(events[n], 'usage'), { prompt_tokens: 8, total_tokens: 8 + n, completion_tokens: n });
    assert.deepEqual(at(events[n + 1], 'usage'), { prompt_tokens: 8, total_tokens: 9 + n, completion_tokens: n + 1 }, 'the EOS chunk counts the EOS token');
    assert.deepEqual(at(events[n + 2], 'choices'), []);

    const notAsked = parseSse(await (await post(`${chatUrl}/v1/chat/completions`, {
      model: CHAT, messages: [{ role: 'user', content: 'why' }], stream: true, stream_options: { include_usage: false, continuous_usage_stats: true },
    }, auth)).text());
    assert.equal(notAsked.events.some((e) => 'usage' in e), false);
  });

  test('logprobs: chat {content} (no refusal, as protocol.py has it), streamed per token, the EOS token\'s last; legacy completions per place; top_logprobs needs logprobs; at most 20', async () => {
    const chat = (extra: Record<string, unknown>) => post(`${chatUrl}/v1/chat/completions`, { model: CHAT, messages: [{ role: 'user', content: 'why' }], ...extra }, auth);
    const json = (await (await chat({ logprobs: true, top_logprobs: 2 })).json()) as any;
    const lp = json.choices[0].logprobs;
    assert.deepEqual(Object.keys(lp), ['content']);
    // Per sampled token: the EOS token (Llama 3's <|eot_id|>) has an entry though it adds no text.
    assert.deepEqual(lp.content.map((e: any) => e.token), [...replyTokens('why'), '<|eot_id|>']);
    assert.equal(lp.content[0].top_logprobs.length, 2);
    assert.deepEqual(lp.content[0].bytes, [...Buffer.from(lp.content[0].token, 'utf8')]);
    const only = (await (await chat({ logprobs: true })).json()) as any;
    assert.deepEqual(only.choices[0].logprobs.content[0].top_logprobs, [], 'top_logprobs 0: an empty list');
    assert.equal(((await (await chat({})).json()) as any).choices[0].logprobs, null);
    const streamed = parseSse(await (await chat({ logprobs: true, stream: true })).text()).events;
    assert.deepEqual(streamed.flatMap((e) => at(e, 'choices', 0, 'logprobs', 'content') as any[] ?? []).map((e: any) => e.token), [...replyTokens('why'), '<|eot_id|>']);
    const eosChunk = streamed.find((e) => at(e, 'choices', 0, 'finish_reason') === 'stop');
    assert.equal(at(eosChunk, 'choices', 0, 'delta', 'content'), '', 'the EOS chunk carries its logprobs and no text');
    assert.deepEqual(at(eosChunk, 'choices', 0, 'logprobs', 'content', 0, 'logprob'), lp.content.at(-1).logprob, 'streamed and whole agree');
    const cut = (await (await chat({ logprobs: true, max_tokens: 2 })).json()) as any;
    assert.equal(cut.choices[0].logprobs.content.length, 2, 'a choice cut at max_tokens sampled no EOS');
    const refused = await chat({ top_logprobs: 2 });
    assert.equal(refused.status, 400);
    assert.match(String(at(await refused.json(), 'error', 'message')), /`logprobs` must be set to true/);
    const tooMany = await chat({ logprobs: true, top_logprobs: 21 });
    assert.equal(tooMany.status, 400);
    assert.equal(at(await tooMany.json(), 'error', 'message'), 'Requested sample logprobs of 21, which is greater than max allowed: 20');
    assert.equal((await chat({ logprobs: true, top_logprobs: 20 })).status, 200);

    const text = (await (await post(`${chatUrl}/v1/completions`, { model: CHAT, prompt: 'one', max_tokens: 3, logprobs: 2 }, auth)).json()) as any;
    const c = text.choices[0].logprobs;
    assert.deepEqual(c.tokens, replyTokens('one').slice(0, 3));
    assert.deepEqual(c.text_offset, [0, c.tokens[0].length, c.tokens[0].length + c.tokens[1].length]);
    assert.equal(Object.keys(c.top_logprobs[0]).length, 2);
    const zero = (await (await post(`${chatUrl}/v1/completions`, { model: CHAT, prompt: 'one', max_tokens: 2, logprobs: 0 }, auth)).json()) as any;
    assert.deepEqual(Object.keys(zero.choices[0].logprobs.top_logprobs[0]), [zero.choices[0].logprobs.tokens[0]], 'N = 0: the generated token alone');
    const whole = (await (await post(`${chatUrl}/v1/completions`, { model: CHAT, prompt: 'one', max_tokens: 60, logprobs: 1 }, auth)).json()) as any;
    const w = whole.choices[0];
    assert.deepEqual(w.logprobs.tokens, [...replyTokens('one'), '<|eot_id|>']);
    assert.equal(w.logprobs.text_offset.at(-1), [...w.text].length, 'the EOS token sits where the text ends');
    const wholeStream = parseSse(await (await post(`${chatUrl}/v1/completions`, { model: CHAT, prompt: 'one', max_tokens: 60, logprobs: 1, stream: true }, auth)).text()).events;
    assert.deepEqual(at(wholeStream.at(-1), 'choices', 0, 'logprobs', 'tokens'), ['<|eot_id|>']);
    assert.deepEqual(at(wholeStream.at(-1), 'choices', 0, 'logprobs', 'text_offset'), [[...w.text].length]);
    assert.equal((await post(`${chatUrl}/v1/completions`, { model: CHAT, prompt: 'one', logprobs: 21 }, auth)).status, 400);
  });

  test('completions: a prompt list gives one choice each; max_tokens defaults to 16', async () => {
    const json: unknown = await (await post(`${chatUrl}/v1/completions`, { model: CHAT, prompt: ['one', 'two'], max_tokens: 2 }, auth)).json();
    assert.equal(at(json, 'object'), 'text_completion');
    assert.equal(at(json, 'choices', 0, 'text'), replyTokens('one').slice(0, 2).join(''));
    assert.equal(at(json, 'choices', 1, 'text'), replyTokens('two').slice(0, 2).join(''));
    assert.equal(at(json, 'choices', 1, 'index'), 1);
    assert.equal(at(json, 'choices', 0, 'finish_reason'), 'length');
    assert.equal(at(json, 'usage', 'completion_tokens'), 4);
    const tokens: unknown = await (await post(`${chatUrl}/v1/completions`, { model: CHAT, prompt: [1, 2, 3] }, auth)).json();
    assert.equal(at(tokens, 'usage', 'prompt_tokens'), 3);
    const streamed = parseSse(await (await post(`${chatUrl}/v1/completions`, { model: CHAT, prompt: 'one', stream: true }, auth)).text());
    assert.equal(streamed.done, true);
    assert.equal(streamed.events.map((e) => at(e, 'choices', 0, 'text')).join(''), replyTokens('one').slice(0, 16).join(''));
    const whole = parseSse(await (await post(`${chatUrl}/v1/completions`, { model: CHAT, prompt: 'one', stream: true, max_tokens: 60 }, auth)).text());
    assert.equal(whole.events.length, replyTokens('one').length + 1, 'a chunk per token, then the EOS chunk');
    assert.deepEqual(at(whole.events.at(-1), 'choices', 0), { index: 0, text: '', logprobs: null, finish_reason: 'stop', stop_reason: null });
    assert.equal(at(whole.events.at(-2), 'choices', 0, 'finish_reason'), null);
  });

  test('embeddings: floats, base64 of the same float32 values, strings and token arrays', async () => {
    const float: unknown = await (await post(`${embedUrl}/v1/embeddings`, { model: EMBED, input: ['alpha', 'beta'] })).json();
    const b64: unknown = await (await post(`${embedUrl}/v1/embeddings`, { model: EMBED, input: ['alpha', 'beta'], encoding_format: 'base64' })).json();
    assert.match(String(at(float, 'id')), /^embd-/);
    assert.equal(at(float, 'object'), 'list');
    const v = at(float, 'data', 1, 'embedding') as number[];
    assert.equal(v.length, 16);
    assert.deepEqual(v, Array.from(embedding('beta', 16)));
    assert.deepEqual(decodeBase64Floats(String(at(b64, 'data', 1, 'embedding'))), v);
    assert.ok(Math.abs(Math.hypot(...v) - 1) < 1e-6);
    assert.deepEqual(at(float, 'usage'), { prompt_tokens: 2, total_tokens: 2, completion_tokens: 0, prompt_tokens_details: null });
    const ids: unknown = await (await post(`${embedUrl}/v1/embeddings`, { model: EMBED, input: [[1, 2, 3], [4]] })).json();
    assert.equal(at(ids, 'usage', 'prompt_tokens'), 4);
  });

  test('errors in the nested {"error":{message,type,param,code}} shape of vLLM 0.10.1+', async () => {
    const missing = await post(`${chatUrl}/v1/chat/completions`, { model: 'nope', messages: [] }, auth);
    assert.equal(missing.status, 404);
    assert.deepEqual(await missing.json(), { error: { message: 'The model `nope` does not exist.', type: 'NotFoundError', param: null, code: 404 } });

    const chatOnEmbed = await post(`${embedUrl}/v1/chat/completions`, { model: EMBED, messages: [{ role: 'user', content: 'x' }] });
    assert.equal(chatOnEmbed.status, 400);
    assert.equal(at(await chatOnEmbed.json(), 'error', 'message'), 'The model does not support Chat Completions API');

    const embedOnChat = await post(`${chatUrl}/v1/embeddings`, { model: CHAT, input: 'x' }, auth);
    assert.equal(embedOnChat.status, 400);
    assert.equal(at(await embedOnChat.json(), 'error', 'message'), 'The model does not support Embeddings API');

    const bad = await post(`${chatUrl}/v1/chat/completions`, '{not json', auth);
    assert.equal(bad.status, 400);
    assert.equal(at(await bad.json(), 'error', 'code'), 400);

    // protocol.py validate_stream_options: a non-empty stream_options needs stream: true.
    for (const path of ['/v1/chat/completions', '/v1/completions']) {
      const base = path.endsWith('chat/completions') ? { model: CHAT, messages: [{ role: 'user', content: 'x' }] } : { model: CHAT, prompt: 'x' };
      const unstreamed = await post(`${chatUrl}${path}`, { ...base, stream_options: { include_usage: true } }, auth);
      assert.equal(unstreamed.status, 400, path);
      const err = at(await unstreamed.json(), 'error') as Record<string, unknown>;
      assert.deepEqual([err.type, err.param, err.code], ['Bad Request', null, 400], 'FastAPI\'s RequestValidationError handler');
      assert.match(String(err.message), /Value error, Stream options can only be defined when `stream=True`\./);
      const unknownModel = await post(`${chatUrl}${path}`, { ...base, model: 'nope', stream_options: { include_usage: true } }, auth);
      assert.equal(unknownModel.status, 400, 'validated while parsing, before the model is looked up');
      const empty = await post(`${chatUrl}${path}`, { ...base, stream_options: {} }, auth);
      assert.equal(empty.status, 200, `${path}: an empty stream_options is falsy to Python`);
      await empty.body?.cancel();
    }

    const route = await fetch(`${chatUrl}/v1/nope`, { headers: auth });
    assert.equal(route.status, 404);
    assert.deepEqual(await route.json(), { detail: 'Not Found' });
  });

  test('context overflow: the v0.10+ _validate_input wording; the chat route appends " None"', async () => {
    // serving_engine.py _validate_input; serving_chat.py create_chat_completion returns f"{e} {e.__cause__}".
    const long = await post(`${chatUrl}/v1/chat/completions`, { model: CHAT, messages: [{ role: 'user', content: 'w '.repeat(200) }] }, auth);
    assert.equal(long.status, 400);
    assert.deepEqual(await long.json(), { error: {
      message: "This model's maximum context length is 100 tokens. However, your request has 207 input tokens. Please reduce the length of the input messages. None",
      type: 'BadRequestError', param: null, code: 400,
    } });

    const tooMany = await post(`${chatUrl}/v1/chat/completions`, { model: CHAT, messages: [{ role: 'user', content: 'x' }], max_tokens: 99 }, auth);
    assert.equal(tooMany.status, 400);
    assert.equal(at(await tooMany.json(), 'error', 'message'),
      "'max_tokens' or 'max_completion_tokens' is too large: 99. This model's maximum context length is 100 tokens and your request has 8 input tokens (99 > 100 - 8). None");

    // serving_completion.py passes str(e): no suffix. The default max_tokens of 16 counts.
    const completion = await post(`${chatUrl}/v1/completions`, { model: CHAT, prompt: 'w '.repeat(90) }, auth);
    assert.equal(completion.status, 400);
    assert.equal(at(await completion.json(), 'error', 'message'),
      "'max_tokens' or 'max_completion_tokens' is too large: 16. This model's maximum context length is 100 tokens and your request has 90 input tokens (16 > 100 - 90).");
  });

  test('rerank: RerankResponse serialised in full (model_dump), each document echoed beside multi_modal null; usage is total_tokens alone', async () => {
    const docs = ['the capital is Paris', 'a city'];
    const res = await post(`${rerankUrl}/rerank`, { model: RERANK, query: 'capital city', documents: docs });
    assert.equal(res.headers.get('content-type'), 'application/json');
    const json: unknown = await res.json();
    // serving_score.py request_output_to_rerank_response; protocol.py RerankResponse, RerankResult, RerankDocument.
    assert.deepEqual(Object.keys(json as object), ['id', 'model', 'usage', 'results']);
    assert.match(String(at(json, 'id')), /^rerank-[0-9a-f]{32}$/);
    assert.equal(at(json, 'model'), RERANK);
    assert.deepEqual(at(json, 'usage'), { total_tokens: (2 + 4 + 4) + (2 + 2 + 4) });
    assert.deepEqual(at(json, 'results'), [
      { index: 0, document: { text: docs[0], multi_modal: null }, relevance_score: relevance('capital city', docs[0]!) },
      { index: 1, document: { text: docs[1], multi_modal: null }, relevance_score: relevance('capital city', docs[1]!) },
    ]);
    assert.deepEqual(Object.keys(at(json, 'results', 0) as object), ['index', 'document', 'relevance_score']);

    const count = async (extra: Record<string, unknown>): Promise<[number, unknown]> => {
      const j: unknown = await (await post(`${rerankUrl}/rerank`, { query: 'capital city', documents: docs, ...extra })).json();
      return [(at(j, 'results') as unknown[]).length, at(j, 'usage', 'total_tokens')];
    };
    assert.deepEqual(await count({ top_n: 0 }), [2, 18], 'top_n 0, its default, is every document');
    assert.deepEqual(await count({ top_n: -3 }), [2, 18], 'and so is less');
    assert.deepEqual(await count({ top_n: 1 }), [1, 18]);
    assert.deepEqual(await count({ truncate_prompt_tokens: 5 }), [2, 10], 'each pair cut to 5 tokens');
    assert.deepEqual(await count({ truncate_prompt_tokens: -1 }), [2, 18], '-1: the model\'s length, which both pairs fit');
  });

  test('rerank and score stand outside the API key\'s /v1 guard, /v2/rerank too', async () => {
    const body = { query: 'q', documents: ['q'] };
    for (const path of ['/rerank', '/v2/rerank']) assert.equal((await post(`${rerankUrl}${path}`, body)).status, 200, path);
    assert.equal((await post(`${rerankUrl}/score`, { text_1: 'q', text_2: 'q' })).status, 200);
    const guarded = await post(`${rerankUrl}/v1/rerank`, body);
    assert.equal(guarded.status, 401);
    assert.deepEqual(await guarded.json(), { error: 'Unauthorized' });
    assert.equal((await post(`${rerankUrl}/v1/rerank`, body, auth)).status, 200);
  });

  test('rerank errors: request validation, the model, the documents, the context', async () => {
    const ask = async (body: unknown, url = rerankUrl): Promise<[number, unknown]> => {
      const r = await post(`${url}/rerank`, body);
      return [r.status, await r.json()];
    };
    const err = (message: string, code = 400, type = 'BadRequestError', param: string | null = null): unknown => ({ error: { message, type, param, code } });
    assert.deepEqual(await ask({ documents: ['a'] }), [400, err("1 validation error:\n  {'type': 'missing', 'loc': ('body', 'query'), 'msg': 'Field required'}", 400, 'Bad Request', 'body.query')]);
    const objects = await ask({ query: 'q', documents: [{ text: 'a' }] });
    assert.equal(objects[0], 400, 'documents are strings: Jina\'s {text} objects do not validate');
    assert.deepEqual(objects[1], err("1 validation error:\n  {'type': 'string_type', 'loc': ('body', 'documents', 'list[str]', 0), 'msg': 'Input should be a valid string'}", 400, 'Bad Request', 'body.documents'));
    assert.deepEqual(await ask({ query: 'q', documents: [] }), [400, err('At least one text_pair element must be given')]);
    assert.deepEqual(await ask({ model: 'nope', query: 'q', documents: ['a'] }), [404, err('The model `nope` does not exist.', 404, 'NotFoundError')]);
    assert.deepEqual(await ask({ query: 'q', documents: { content: [{ type: 'image_url', image_url: { url: 'x' } }] } }), [400, err('MultiModalParam is not supported for XLMRobertaForSequenceClassification')]);
    assert.deepEqual(await ask({ query: 'q', documents: ['a'], truncate_prompt_tokens: 31 }), [400, err('truncate_prompt_tokens value (31) is greater than max_model_len (30). Please, select a smaller truncation size.')]);
    // _validate_input, per pair: 3 + 40 words and the 4 special tokens.
    assert.deepEqual(await ask({ query: 'one two three', documents: ['a', 'w '.repeat(40)] }), [400, err("This model's maximum context length is 30 tokens. However, you requested 47 tokens in the input for embedding generation. Please reduce the length of the input.")]);
    assert.equal((await ask({ query: 'one two three', documents: ['w '.repeat(40)], truncate_prompt_tokens: 30 }))[0], 200, 'truncated, it fits');

    assert.deepEqual(await ask({ query: 'q', documents: ['a'] }, chatUrl), [400, err('The model does not support Rerank (Score) API')], 'a chat model has no ServingScores');
    assert.deepEqual(await ask({ model: 'nope', query: 'q', documents: ['a'] }, chatUrl), [400, err('The model does not support Rerank (Score) API')], 'checked before the model\'s name');
    const score = await post(`${chatUrl}/score`, { text_1: 'q', text_2: 'a' });
    assert.deepEqual([score.status, at(await score.json(), 'error', 'message')], [400, 'The model does not support Score API']);
    const chat = await post(`${rerankUrl}/v1/chat/completions`, { model: RERANK, messages: [{ role: 'user', content: 'x' }] }, auth);
    assert.deepEqual([chat.status, at(await chat.json(), 'error', 'message')], [400, 'The model does not support Chat Completions API']);
    const embed = await post(`${rerankUrl}/v1/embeddings`, { model: RERANK, input: 'x' }, auth);
    assert.deepEqual([embed.status, at(await embed.json(), 'error', 'message')], [400, 'The model does not support Embeddings API']);
  });

  test('an embedding model reranks too (ServingScores serves "embed"): its two texts joined by a pad token', async () => {
    const json: unknown = await (await post(`${embedUrl}/v2/rerank`, { query: 'capital city', documents: ['a city', 'the capital city'] })).json();
    assert.deepEqual((at(json, 'results') as { index: number }[]).map((r) => r.index), [1, 0]);
    assert.deepEqual(at(json, 'usage'), { total_tokens: (2 + 2 + 1) + (2 + 3 + 1) });
  });

  test('score: ScoreResponse in the request\'s order, 1:N or N:N, with the full usage', async () => {
    const json: unknown = await (await post(`${rerankUrl}/v1/score`, { model: RERANK, text_1: 'capital', text_2: ['a city', 'the capital'] }, auth)).json();
    assert.deepEqual(Object.keys(json as object), ['id', 'object', 'created', 'model', 'data', 'usage']);
    assert.match(String(at(json, 'id')), /^score-[0-9a-f]{32}$/);
    assert.deepEqual(at(json, 'data'), [
      { index: 0, object: 'score', score: relevance('capital', 'a city') },
      { index: 1, object: 'score', score: relevance('capital', 'the capital') },
    ]);
    assert.deepEqual(at(json, 'usage'), { prompt_tokens: 14, total_tokens: 14, completion_tokens: 0, prompt_tokens_details: null });
    const pairs: unknown = await (await post(`${rerankUrl}/score`, { text_1: ['a', 'b'], text_2: ['b', 'b'] })).json();
    assert.deepEqual((at(pairs, 'data') as { score: number }[]).map((d) => d.score), [relevance('a', 'b'), relevance('b', 'b')]);
    const uneven = await post(`${rerankUrl}/score`, { text_1: ['a', 'b'], text_2: ['a', 'b', 'c'] });
    assert.deepEqual([uneven.status, at(await uneven.json(), 'error', 'message')], [400, 'Input lengths must be either 1:1, 1:N or N:N']);
  });

  test('the API key guards /v1 only, answering {"error":"Unauthorized"}', async () => {
    const res = await fetch(`${chatUrl}/v1/models`);
    assert.equal(res.status, 401);
    assert.deepEqual(await res.json(), { error: 'Unauthorized' });
    assert.equal((await fetch(`${chatUrl}/metrics`)).status, 200);
  });

  test('Prometheus metrics with the vllm: names and model_name label', async () => {
    const text = await (await fetch(`${chatUrl}/metrics`)).text();
    for (const name of [
      'vllm:num_requests_running', 'vllm:num_requests_waiting', 'vllm:gpu_cache_usage_perc', 'vllm:kv_cache_usage_perc',
      'vllm:prompt_tokens_total', 'vllm:generation_tokens_total',
    ]) {
      assert.match(text, new RegExp(`^# TYPE ${name} (gauge|counter)$`, 'm'));
      assert.match(text, new RegExp(`^${name}\\{engine="0",model_name="${CHAT.replaceAll('.', '\\.')}"\\} \\d+\\.\\d$`, 'm'));
    }
    const prompt = /^vllm:prompt_tokens_total\{[^}]*\} (\d+)/m.exec(text);
    assert.ok(Number(prompt?.[1]) > 0);
    assert.match(text, /^# TYPE vllm:time_to_first_token_seconds histogram$/m);
    assert.match(text, /^# TYPE vllm:e2e_request_latency_seconds histogram$/m);
  });

  test('tools: tool_choice "auto" (what sending tools means) needs --enable-auto-tool-choice, as serving_chat.py has it; required and named are served without', async () => {
    const tools = [{ type: 'function', function: { name: 'get_time', parameters: { type: 'object', properties: {} } } }];
    const ask = (extra: Record<string, unknown>) => post(`${chatUrl}/v1/chat/completions`, { model: CHAT, messages: [{ role: 'user', content: 'call get_time' }], tools, ...extra }, auth);
    for (const extra of [{}, { tool_choice: 'auto' }]) {
      const r = await ask(extra);
      assert.equal(r.status, 400);
      assert.equal(at(await r.json(), 'error', 'message'), '"auto" tool choice requires --enable-auto-tool-choice and --tool-call-parser to be set');
    }
    const required = (await (await ask({ tool_choice: 'required' })).json()) as any;
    assert.equal(required.choices[0].message.tool_calls[0].function.name, 'get_time');
    assert.equal(required.choices[0].finish_reason, 'tool_calls');
    assert.equal((await ask({ tool_choice: 'none' })).status, 200);
    assert.equal((await ask({ tool_choice: null })).status, 200, 'defaulted to auto only when absent');
    const parser = await startFleet([{ name: 'p', protocol: 'vllm', model: CHAT, kind: 'chat', timing: FAST, autoToolChoice: true }]);
    try {
      const r = (await (await post(`${parser.get('p').url}/v1/chat/completions`, { model: CHAT, messages: [{ role: 'user', content: 'call get_time' }], tools })).json()) as any;
      assert.equal(r.choices[0].message.tool_calls[0].function.name, 'get_time', 'with a tool parser, auto calls the tool the user names');
    } finally {
      await parser.close();
    }
  });

  test('time to first token and end-to-end latency histograms, streamed or not, with loggers.py\'s buckets', async () => {
    const slow = await startFleet([{ name: 'slow', protocol: 'vllm', model: CHAT, kind: 'chat', timing: { ttftMs: 60, tokensPerSecond: 200 } }]);
    try {
      const url = slow.get('slow').url;
      const sample = async (): Promise<(name: string, le?: string) => number> => {
        const text = await (await fetch(`${url}/metrics`)).text();
        return (name, le) => {
          const labels = `engine="0",model_name="${CHAT}"${le === undefined ? '' : `,le="${le}"`}`;
          const line = text.split('\n').find((l) => l.startsWith(`${name}{${labels}} `));
          assert.ok(line !== undefined, `${name} ${labels}`);
          return Number(line.slice(line.lastIndexOf(' ') + 1));
        };
      };
      const before = await sample();
      assert.equal(before('vllm:time_to_first_token_seconds_count'), 0, 'the series is there before any request, as vLLM makes it at start');
      assert.equal(before('vllm:time_to_first_token_seconds_bucket', '2560'), 0);
      await (await post(`${url}/v1/chat/completions`, { model: CHAT, messages: [{ role: 'user', content: 'why' }], max_tokens: 10 })).json();
      await (await post(`${url}/v1/chat/completions`, { model: CHAT, messages: [{ role: 'user', content: 'why' }], max_tokens: 10, stream: true })).text();
      const m = await sample();
      for (const h of ['vllm:time_to_first_token_seconds', 'vllm:e2e_request_latency_seconds']) {
        assert.equal(m(`${h}_count`), 2, h);
        assert.equal(m(`${h}_bucket`, '+Inf'), 2, h);
      }
      // Each first token came some 60 ms after arrival, and each end 10 tokens at 5 ms later
      // still. A timer may fire up to a millisecond before performance.now() says its time has
      // come (libuv's loop clock is in whole milliseconds), hence the slack.
      const slack = 0.004;
      assert.equal(m('vllm:time_to_first_token_seconds_bucket', '0.04'), 0, 'no first token within 40 ms');
      assert.ok(m('vllm:time_to_first_token_seconds_sum') >= 0.12 - slack, String(m('vllm:time_to_first_token_seconds_sum')));
      assert.ok(m('vllm:e2e_request_latency_seconds_sum') >= m('vllm:time_to_first_token_seconds_sum') + 2 * 0.045 - slack);
    } finally {
      await slow.close();
    }
  });
});

// The clients apps are written with, besides the official openai SDK: LangChain's ChatOpenAI and
// OpenAIEmbeddings, and the Vercel AI SDK's OpenAI provider (its default, the Responses API, and
// its chat completions model). Each is used as an app uses it, against every engine kind the
// gateway translates for: vLLM, Ollama's native API, llama.cpp. What the client reports (text,
// usage, tool calls, parsed objects, error types) is checked against what the gateway recorded.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { ChatOpenAI, OpenAIEmbeddings } from '@langchain/openai';
import { tool as langchainTool } from '@langchain/core/tools';
import { createOpenAI } from '@ai-sdk/openai';
import { createOpenAICompatible } from '@ai-sdk/openai-compatible';
import { APICallError, embed, embedMany, generateText, Output, stepCountIs, streamText, tool } from 'ai';
import { z } from 'zod';
import { startFabric, waitForLog, lastBody, type Fabric } from './helpers.ts';

const FAST = { ttftMs: 2, tokensPerSecond: 5000, maxConcurrency: 16, maxQueue: 64 };
const KEY = 'clients-test-master-key';

let f: Fabric;
let base: string;

before(async () => {
  f = await startFabric({
    engines: [
      { name: 'fast', protocol: 'vllm', model: 'Qwen/Qwen2.5-7B-Instruct-AWQ', kind: 'chat', timing: FAST, autoToolChoice: true },
      { name: 'deep', protocol: 'ollama', model: 'llama3.1:8b', kind: 'chat', timing: FAST },
      { name: 'cpp', protocol: 'llamacpp', model: 'qwen2.5-7b-instruct-q4_k_m', kind: 'chat', timing: FAST },
      { name: 'emb', protocol: 'vllm', model: 'BAAI/bge-base-en-v1.5', kind: 'embeddings', dimensions: 768, timing: FAST },
    ],
    env: { FABRIC_MASTER_KEY: KEY },
    apiKey: KEY,
    yaml: (url) => `
gateway: { master_key: env:FABRIC_MASTER_KEY }
backends:
  fast: { engine: vllm, url: ${url('fast')}/v1, model: Qwen/Qwen2.5-7B-Instruct-AWQ, serve: { tool_parser: hermes } }
  deep: { engine: ollama, url: ${url('deep')}, model: "llama3.1:8b" }
  cpp: { engine: llamacpp, url: ${url('cpp')}/v1, model: qwen2.5-7b-instruct-q4_k_m }
  emb: { engine: vllm, url: ${url('emb')}/v1, model: BAAI/bge-base-en-v1.5 }
roles:
  chat-fast: { kind: chat, backends: [fast], aliases: [local/chat] }
  chat-deep: { kind: chat, backends: [deep], aliases: [local/reasoner] }
  chat-cpp: { kind: chat, backends: [cpp] }
  embeddings-general: { kind: embeddings, backends: [emb], aliases: [local/embed], dimensions: 768 }
`,
  });
  base = `${f.url}/v1`;
});

after(async () => { await f.close(); });

let tags = 0;
/** A request id to send (x-request-id), and the gateway's log line of the request that carried it. */
const tagged = (): { headers: Record<string, string>; line: () => Promise<any> } => {
  const id = `clients-${++tags}`;
  return { headers: { 'x-request-id': id }, line: () => waitForLog(f, 0, (r) => r.msg === 'request' && r.client_id === id) };
};
const langchain = (role: string, over: Record<string, unknown> = {}, headers: Record<string, string> = {}): ChatOpenAI =>
  new ChatOpenAI({ model: role, apiKey: KEY, configuration: { baseURL: base, defaultHeaders: headers }, maxRetries: 0, ...over });

const ENGINES = [
  { role: 'chat-fast', engine: 'vLLM', backend: 'fast', model: 'Qwen/Qwen2.5-7B-Instruct-AWQ' },
  { role: 'chat-deep', engine: 'Ollama, native API', backend: 'deep', model: 'llama3.1:8b' },
  { role: 'chat-cpp', engine: 'llama.cpp', backend: 'cpp', model: 'qwen2.5-7b-instruct-q4_k_m' },
] as const;

const PERSON = z.object({ name: z.string(), age: z.number().int() });

for (const { role, engine, backend, model } of ENGINES) {
  test(`LangChain's ChatOpenAI on ${role} (${engine}): invoke and stream agree, usage as recorded, tool calls and structured output parsed, the Responses API too`, async () => {
    const t = tagged();
    const whole = await langchain(role, {}, t.headers).invoke('Say something about memory bandwidth.');
    const line = await t.line();
    assert.equal(typeof whole.content, 'string');
    assert.ok((whole.content as string).length > 0);
    assert.equal(whole.response_metadata.model_name, model, 'the backend\'s model, not the role, is what answered');
    assert.equal(line.backend, backend);
    assert.equal(whole.usage_metadata?.input_tokens, line.prompt_tokens);
    assert.equal(whole.usage_metadata?.output_tokens, line.completion_tokens);

    // LangChain asks for usage in the stream (stream_options.include_usage) and reads it from the last chunk.
    const ts = tagged();
    let text = '';
    let usage;
    for await (const chunk of await langchain(role, {}, ts.headers).stream('Say something about memory bandwidth.')) {
      text += chunk.content as string;
      usage = chunk.usage_metadata ?? usage;
    }
    const streamLine = await ts.line();
    assert.equal(streamLine.stream, true);
    assert.equal(text, whole.content, 'the simulated model is deterministic: the same words streamed as whole');
    assert.equal(usage?.output_tokens, streamLine.completion_tokens);
    assert.equal(usage?.input_tokens, streamLine.prompt_tokens);

    const getWeather = langchainTool(async ({ city }: { city: string }) => `sunny in ${city}`, { name: 'get_weather', description: 'The weather in a city', schema: z.object({ city: z.string() }) });
    const lc = langchain(role);
    const called = await lc.bindTools([getWeather]).invoke('Call get_weather for Paris.');
    assert.equal(called.tool_calls?.length, 1, JSON.stringify(called));
    assert.equal(called.tool_calls[0]!.name, 'get_weather');
    assert.deepEqual(called.tool_calls[0]!.args, { city: 'Paris' });
    assert.ok(called.tool_calls[0]!.id, 'a call id the tool message can answer');

    const person = await lc.withStructuredOutput(PERSON).invoke('Describe a person.');
    assert.deepEqual(Object.keys(person).sort(), ['age', 'name']);
    assert.ok(Number.isInteger(person.age));
    // The other method: a forced call of a tool named for the schema (tool_choice naming it).
    const viaCall = await lc.withStructuredOutput(PERSON, { method: 'functionCalling', name: 'record_person' }).invoke('Describe a person.');
    assert.deepEqual(Object.keys(viaCall).sort(), ['age', 'name']);

    const tr = tagged();
    const r = await langchain(role, { useResponsesApi: true }, tr.headers).invoke('Say something about memory bandwidth.');
    const responsesLine = await tr.line();
    assert.equal(responsesLine.api, 'responses');
    assert.ok(Array.isArray(r.content));
    assert.deepEqual(r.content.map((p: any) => [p.type, p.text]), [['text', whole.content]]);
    assert.equal(r.usage_metadata?.output_tokens, responsesLine.completion_tokens);
  });

  test(`The Vercel AI SDK on ${role} (${engine}): text whole and streamed, a tool loop of two steps, an object, over both the Responses API (its default) and chat completions`, async () => {
    const provider = createOpenAI({ baseURL: base, apiKey: KEY });
    for (const [api, languageModel] of [['responses', provider(role)], ['chat', provider.chat(role)]] as const) {
      const t = tagged();
      const whole = await generateText({ model: languageModel, prompt: 'Say something about memory bandwidth.', maxRetries: 0, headers: t.headers });
      const line = await t.line();
      assert.equal(line.api ?? 'chat', api === 'responses' ? 'responses' : 'chat');
      assert.ok(whole.text.length > 0, api);
      assert.equal(whole.finishReason, 'stop', api);
      assert.equal(whole.usage.inputTokens, line.prompt_tokens, api);
      assert.equal(whole.usage.outputTokens, line.completion_tokens, api);
      assert.equal(whole.response.headers?.['x-fabric-backend'], backend, api);

      const streamed = streamText({ model: languageModel, prompt: 'Say something about memory bandwidth.', maxRetries: 0, onError: ({ error }) => { throw error; } });
      let text = '';
      for await (const delta of streamed.textStream) text += delta;
      assert.equal(text, whole.text, api);
      assert.equal((await streamed.usage).outputTokens, whole.usage.outputTokens, `${api}: usage read from the stream`);

      // A tool loop: the model calls get_weather, the SDK runs it and sends the result back
      // (over the Responses API, the earlier call as an item_reference), the model answers.
      const cities: string[] = [];
      const weather = tool({ description: 'The weather in a city', inputSchema: z.object({ city: z.string() }), execute: async ({ city }) => { cities.push(city); return `sunny in ${city}`; } });
      const loop = await generateText({ model: languageModel, prompt: 'Call get_weather for Paris.', tools: { get_weather: weather }, stopWhen: stepCountIs(3), maxRetries: 0 });
      assert.deepEqual(cities, ['Paris'], api);
      assert.equal(loop.steps.length, 2, `${api}: a call, then an answer`);
      assert.equal(loop.steps[0]!.finishReason, 'tool-calls', api);
      assert.ok(loop.text.length > 0, api);
      const sentBack = lastBody(f, backend);
      assert.ok(JSON.stringify(sentBack).includes('sunny in Paris'), `${api}: the tool's result reached the engine`);

      const streamedLoop = streamText({ model: languageModel, prompt: 'Call get_weather for Paris.', tools: { get_weather: weather }, stopWhen: stepCountIs(3), maxRetries: 0, onError: ({ error }) => { throw error; } });
      let loopText = '';
      for await (const delta of streamedLoop.textStream) loopText += delta;
      assert.equal((await streamedLoop.steps).length, 2, `${api}: streamed tool loop`);
      assert.equal(loopText, loop.text, api);

      const object = await generateText({ model: languageModel, prompt: 'Describe a person.', output: Output.object({ schema: PERSON }), maxRetries: 0 });
      assert.deepEqual(Object.keys(object.output).sort(), ['age', 'name'], api);

      // Token logprobs: the SDK asks (top_logprobs, and include on the Responses API) and reads them back.
      const withLogprobs = await generateText({ model: languageModel, prompt: 'Say something about memory bandwidth.', providerOptions: { openai: { logprobs: 2 } }, maxRetries: 0 });
      const tokens = JSON.stringify(withLogprobs.providerMetadata?.openai?.logprobs ?? []).match(/"token":/g)?.length ?? 0;
      assert.ok(tokens >= 3 * (withLogprobs.usage.outputTokens ?? 1), `${api}: each output token with its two alternatives: ${tokens}`);

      // toolChoice 'required': words that name no tool still get a call (the SDK throws otherwise).
      const forced = await generateText({ model: languageModel, prompt: 'I am off to Lisbon.', toolChoice: 'required', tools: { get_weather: tool({ description: 'The weather in a city', inputSchema: z.object({ city: z.string() }) }) }, maxRetries: 0 });
      assert.deepEqual(forced.toolCalls.map((c) => [c.toolName, c.input]), [['get_weather', { city: 'Lisbon' }]], api);
    }
  });
}

test('the Vercel AI SDK\'s OpenAI-compatible provider (what local-model apps often use), set as the README says: text with usage streamed, a tool loop, an object held to its schema, embeddings', async () => {
  const provider = createOpenAICompatible({ name: 'fabric', baseURL: base, apiKey: KEY, includeUsage: true, supportsStructuredOutputs: true });
  for (const { role, backend } of ENGINES) {
    const streamed = streamText({ model: provider(role), prompt: 'Say something about memory bandwidth.', maxRetries: 0, onError: ({ error }) => { throw error; } });
    let text = '';
    for await (const delta of streamed.textStream) text += delta;
    assert.ok(text.length > 0, role);
    assert.ok(((await streamed.usage).outputTokens ?? 0) > 0, `${role}: usage asked for (stream_options) and read from the stream`);

    const cities: string[] = [];
    const loop = await generateText({
      model: provider(role), prompt: 'Call get_weather for Paris.', stopWhen: stepCountIs(3), maxRetries: 0,
      tools: { get_weather: tool({ description: 'The weather in a city', inputSchema: z.object({ city: z.string() }), execute: async ({ city }) => { cities.push(city); return `sunny in ${city}`; } }) },
    });
    assert.deepEqual(cities, ['Paris'], role);
    assert.equal(loop.steps.length, 2, role);

    const object = await generateText({ model: provider(role), prompt: 'Describe a person.', output: Output.object({ schema: PERSON }), maxRetries: 0 });
    assert.deepEqual(Object.keys(object.output).sort(), ['age', 'name'], role);
    assert.ok(JSON.stringify(lastBody(f, backend)).includes('"age"'), `${role}: the schema reached the engine (json_schema, or Ollama's format)`);
  }
  const many = await embedMany({ model: provider.textEmbeddingModel('local/embed'), values: ['a', 'b'], maxRetries: 0 });
  assert.deepEqual(many.embeddings.map((e) => e.length), [768, 768]);
});

test('embeddings from both clients: the same vectors (LangChain reads base64, the AI SDK floats), aliases, usage, and a backend\'s refusal of dimensions', async () => {
  const lc = new OpenAIEmbeddings({ model: 'embeddings-general', apiKey: KEY, configuration: { baseURL: base }, maxRetries: 0 });
  const provider = createOpenAI({ baseURL: base, apiKey: KEY });

  const [lcQuery, lcDocs] = [await lc.embedQuery('the fabric'), await lc.embedDocuments(['a', 'b'])];
  const lcFormat = lastBody(f, 'emb').encoding_format;
  const one = await embed({ model: provider.embedding('local/embed'), value: 'the fabric', maxRetries: 0 });
  const aiFormat = lastBody(f, 'emb').encoding_format;
  const many = await embedMany({ model: provider.embedding('embeddings-general'), values: ['a', 'b'], maxRetries: 0 });

  assert.equal(lcQuery.length, 768);
  assert.deepEqual(one.embedding, lcQuery, `same text, same vector (LangChain asked for ${lcFormat ?? 'float'}, the AI SDK for ${aiFormat ?? 'float'})`);
  assert.deepEqual(many.embeddings, lcDocs);
  assert.ok((one.usage.tokens ?? 0) > 0);
  assert.notDeepEqual(lcDocs[0], lcDocs[1]);

  // vLLM refuses dimensions for a model without Matryoshka training; the client sees its words as a 400.
  const sized = new OpenAIEmbeddings({ model: 'embeddings-general', dimensions: 256, apiKey: KEY, configuration: { baseURL: base }, maxRetries: 0 });
  await assert.rejects(sized.embedQuery('x'), (e: any) => e.status === 400 && /matryoshka/i.test(e.message));
});

test('errors reach both clients as their own error types, with the status and the gateway\'s message: unknown model, wrong key, invalid field', async () => {
  const provider = createOpenAI({ baseURL: base, apiKey: KEY });
  await assert.rejects(generateText({ model: provider.chat('no-such-role'), prompt: 'x', maxRetries: 0 }), (e: unknown) => {
    assert.ok(APICallError.isInstance(e));
    assert.equal(e.statusCode, 404);
    assert.match(e.message, /`no-such-role` does not exist/);
    assert.equal(e.isRetryable, false);
    return true;
  });
  const wrongKey = createOpenAI({ baseURL: base, apiKey: 'not-the-key' });
  await assert.rejects(generateText({ model: wrongKey('chat-fast'), prompt: 'x', maxRetries: 0 }), (e: unknown) => APICallError.isInstance(e) && e.statusCode === 401 && !e.message.includes(KEY));

  const t = tagged();
  const lc = new ChatOpenAI({ model: 'chat-fast', apiKey: 'not-the-key', configuration: { baseURL: base, defaultHeaders: t.headers } });
  await assert.rejects(lc.invoke('x'), (e: any) => e.status === 401 && /API key/.test(e.message) && !e.message.includes('not-the-key'));
  await t.line();
  await new Promise((r) => setTimeout(r, 300));
  const tries = f.logs.map((l) => JSON.parse(l)).filter((r) => r.msg === 'request' && r.client_id === t.headers['x-request-id']);
  assert.equal(tries.length, 1, 'LangChain (6 retries by default) does not retry a 401');
  assert.equal(tries[0].status, 401);

  await assert.rejects(langchain('chat-fast', { temperature: 9 }).invoke('x'), (e: any) => e.status === 400 && /temperature/.test(e.message));
});

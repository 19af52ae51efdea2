// A generation that fails after its stream began, as each engine reports it (the simulator's
// stream-error fault): vLLM's error event and [DONE], Ollama's error line, llama-server's and
// OpenAI's error event with no [DONE], Ollama's OpenAI layer ending with an empty chunk and no
// [DONE]. Through the gateway, the client of every one gets the tokens made so far and then an
// error event naming the backend — never a stream that looks complete — and the backend is
// counted as failing.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startFabric, post, chat, waitForLog, type Fabric } from './helpers.ts';
import { replyTokens } from '../src/sim/generate.ts';

const TIMING = { ttftMs: 1, tokensPerSecond: 2000 };

let f: Fabric;

before(async () => {
  f = await startFabric({
    engines: [
      { name: 'vllm', protocol: 'vllm', model: 'Qwen/Qwen2.5-7B-Instruct-AWQ', kind: 'chat', timing: TIMING },
      { name: 'ollama', protocol: 'ollama', model: 'qwen2.5:7b', kind: 'chat', timing: TIMING },
      { name: 'cpp', protocol: 'llamacpp', model: 'qwen2.5-7b', kind: 'chat', timing: TIMING },
      { name: 'cloud', protocol: 'openai', model: 'gpt-4.1-mini', kind: 'chat', apiKey: 'sk-cloud-test', timing: TIMING },
    ],
    env: { CLOUD_KEY: 'sk-cloud-test' },
    yaml: (url) => `
backends:
  vllm-qwen: { engine: vllm, url: ${url('vllm')}/v1, model: Qwen/Qwen2.5-7B-Instruct-AWQ, max_retries: 0 }
  ollama-qwen: { engine: ollama, url: ${url('ollama')}, model: "qwen2.5:7b", max_retries: 0 }
  ollama-v1: { engine: openai-compatible, url: ${url('ollama')}/v1, model: "qwen2.5:7b", max_retries: 0 }
  cpp-qwen: { engine: llamacpp, url: ${url('cpp')}/v1, model: qwen2.5-7b, max_retries: 0 }
  cloud: { engine: openai, url: ${url('cloud')}/v1, model: gpt-4.1-mini, api_key: env:CLOUD_KEY, max_retries: 0 }
roles:
  r-vllm: { kind: chat, backends: [vllm-qwen] }
  r-ollama: { kind: chat, backends: [ollama-qwen] }
  r-ollama-v1: { kind: chat, backends: [ollama-v1] }
  r-cpp: { kind: chat, backends: [cpp-qwen] }
  r-cloud: { kind: chat, backends: [cloud] }
`,
  });
});

after(() => f.close());

/** What the client's stream ends with: the engine's own error event as it sent it (OpenAI-style engines), then the gateway's when the engine gave no [DONE]. */
interface Ending {
  engineEvent?: Record<string, unknown>;
  /** the gateway's stream_interrupted event, when the engine did not end the stream itself */
  interrupted?: RegExp;
}

const cases: Array<[role: string, engine: string, backend: string, ending: Ending]> = [
  // vLLM ends the stream itself ([DONE]): its event is the client's error.
  ['r-vllm', 'vllm', 'vllm-qwen', { engineEvent: { error: { message: 'EngineCore encountered an issue. See stack trace (above) for the root cause.', type: 'BadRequestError', param: null, code: 400 } } }],
  // Ollama's error line has no SSE form: the gateway's event carries its text.
  ['r-ollama', 'ollama', 'ollama-qwen', { interrupted: /interrupted: Ollama: an error was encountered while running the model: unexpected EOF$/ }],
  // Ollama's OpenAI layer turns the error line into an empty chunk: only the missing [DONE] tells.
  ['r-ollama-v1', 'ollama', 'ollama-v1', { interrupted: /interrupted: the backend ended the stream without \[DONE\]$/ }],
  ['r-cpp', 'cpp', 'cpp-qwen', { engineEvent: { error: { code: 500, message: 'Internal Server Error', type: 'server_error' } }, interrupted: /without \[DONE\]$/ }],
  ['r-cloud', 'cloud', 'cloud', { engineEvent: { error: { message: 'The server had an error while processing your request. Sorry about that!', type: 'server_error', param: null, code: null } }, interrupted: /without \[DONE\]$/ }],
];

for (const [role, engine, backend, ending] of cases) {
  test(`${role}: a generation that fails mid-stream reaches the client as the tokens made and an error, and counts against ${backend}`, async () => {
    const sim = f.fleet.get(engine);
    await sim.setFault({ kind: 'stream-error', afterChunks: 3 }, 1);
    const from = f.logs.length;
    const r = await post(f.url, '/v1/chat/completions', chat(role, 'hello there', { stream: true, max_tokens: 50 }));
    assert.equal(r.status, 200);
    const events = r.text.split('\n\n').filter((e) => e.startsWith('data: ')).map((e) => e.slice(6));
    const tail: unknown[] = [];
    if (ending.engineEvent !== undefined) tail.push(ending.engineEvent);
    if (ending.interrupted === undefined) tail.push('[DONE]');
    else {
      const last = JSON.parse(events.at(-1)!) as { error: { code: string; message: string; type: string } };
      assert.equal(last.error.code, 'stream_interrupted');
      assert.equal(last.error.type, 'server_error');
      assert.match(last.error.message, new RegExp(`^stream from ${backend} interrupted: `));
      assert.match(last.error.message, ending.interrupted);
      tail.push(last);
    }
    const got = events.slice(-tail.length).map((e) => (e === '[DONE]' ? e : JSON.parse(e)));
    assert.deepEqual(got, tail);
    // Before the failure: the tokens made, and nothing that says the answer was complete.
    const chunks = events.slice(0, -tail.length).map((e) => JSON.parse(e) as { choices?: Array<{ delta?: { content?: string }; finish_reason?: string | null }> });
    assert.equal(chunks.map((c) => c.choices?.[0]?.delta?.content ?? '').join(''), replyTokens('hello there').slice(0, 3).join(''));
    assert.ok(chunks.every((c) => (c.choices?.[0]?.finish_reason ?? null) === null), 'no finish_reason before the failure');
    const line = await waitForLog(f, from, (l) => l.msg === 'request' && l.model === role);
    assert.equal(line.status, 200);
    assert.equal(typeof line.stream_error, 'string', 'the log line says the stream failed');
    const h = await (await fetch(`${f.url}/health`)).json() as { backends: Array<{ name: string; consecutive_failures: number }> };
    assert.equal(h.backends.find((x) => x.name === backend)?.consecutive_failures, 1);
  });
}

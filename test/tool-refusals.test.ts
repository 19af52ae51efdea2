// Backends whose servers were started without tool calling (vLLM without a tool parser, a
// llama-server without Jinja templates) refuse a request with tools: the request goes on to a
// backend that can take it, the refusing ones are not counted as failing, and when none can,
// the client gets a 400 naming the field and what to start the server with.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startFabric, post, type Fabric } from './helpers.ts';

const FAST = { ttftMs: 1, tokensPerSecond: 2000, maxConcurrency: 8, maxQueue: 16 };
let f: Fabric;

before(async () => {
  f = await startFabric({
    engines: [
      { name: 'nojinja', protocol: 'llamacpp', model: 'q.gguf', kind: 'chat', timing: FAST, jinja: false },
      { name: 'noparser', protocol: 'vllm', model: 'Qwen/Qwen2.5-7B-Instruct', kind: 'chat', timing: FAST, autoToolChoice: false },
      { name: 'tools', protocol: 'vllm', model: 'Qwen/Qwen2.5-7B-Instruct', kind: 'chat', timing: FAST, autoToolChoice: true },
    ],
    yaml: (url) => `
backends:
  nojinja: { engine: llamacpp, url: ${url('nojinja')}/v1, model: q.gguf }
  noparser: { engine: vllm, url: ${url('noparser')}/v1, model: Qwen/Qwen2.5-7B-Instruct }
  tools: { engine: vllm, url: ${url('tools')}/v1, model: Qwen/Qwen2.5-7B-Instruct }
roles:
  agent: { kind: chat, backends: [nojinja], fallbacks: [agent-b, agent-c] }
  agent-b: { kind: chat, backends: [noparser] }
  agent-c: { kind: chat, backends: [tools] }
  llama-only: { kind: chat, backends: [nojinja] }
  vllm-only: { kind: chat, backends: [noparser] }
`,
  });
});

after(async () => { await f.close(); });

const tools = [{ type: 'function', function: { name: 'get_time', parameters: { type: 'object', properties: {} } } }];
const ask = (model: string, stream = false) => ({ model, messages: [{ role: 'user', content: 'call get_time' }], tools, stream });
const failures = (name: string): number => f.gw.app.gateway.backends.get(name)!.consecutiveFailures;

test('a request with tools passes over the backends started without tool calling, streamed or not, and none of them is blamed', async () => {
  for (const stream of [false, true]) {
    const r = await post(f.url, '/v1/chat/completions', ask('agent', stream));
    assert.equal(r.status, 200, r.text);
    assert.equal(r.headers.get('x-fabric-backend'), 'tools');
    assert.match(r.text, /get_time/);
  }
  assert.equal(f.fleet.get('nojinja').requests().length, 2, 'each was tried');
  assert.equal(failures('nojinja'), 0);
  assert.equal(failures('noparser'), 0);
  // Without tools, the first backend serves as usual.
  const plain = await post(f.url, '/v1/chat/completions', { model: 'agent', messages: [{ role: 'user', content: 'hi' }] });
  assert.equal(plain.headers.get('x-fabric-backend'), 'nojinja');
});

test('alone, the refusal is a 400 naming the field and what the server needs', async () => {
  const llama = await post(f.url, '/v1/chat/completions', ask('llama-only'));
  assert.equal(llama.status, 400, llama.text);
  assert.equal(llama.json.error.param, 'tools');
  assert.match(llama.json.error.message, /nojinja cannot take `tools`: tools param requires --jinja flag \(start llama-server with --jinja\)/);
  const vllm = await post(f.url, '/v1/chat/completions', ask('vllm-only', true));
  assert.equal(vllm.status, 400, vllm.text);
  assert.equal(vllm.json.error.param, 'tool_choice');
  assert.match(vllm.json.error.message, /noparser cannot take `tool_choice`: .*--enable-auto-tool-choice.* \(serve\.tool_parser starts vLLM with both flags\)/);
  assert.equal(failures('nojinja'), 0);
  assert.equal(failures('noparser'), 0);
});

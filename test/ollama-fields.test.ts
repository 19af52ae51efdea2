// Fields an Ollama backend cannot honour, over real loopback HTTP against the simulated fleet:
// `echo`, `best_of` and a non-empty `logit_bias`, which Ollama's own OpenAI layer drops without a
// word (openai/openai.go reads none of them), pass the Ollama backend over for the next one of
// the chain, unsent and not blamed; with no other backend, the request is a 400 naming the field.
// Values that ask for nothing (false, 1, {}, null) are served by Ollama as usual.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startFabric, post, chat, type Fabric } from './helpers.ts';

const FAST = { ttftMs: 2, tokensPerSecond: 5000 };

let f: Fabric;

before(async () => {
  f = await startFabric({
    engines: [
      { name: 'ollama', protocol: 'ollama', model: 'qwen2.5:7b', kind: 'chat', timing: FAST },
      { name: 'vllm', protocol: 'vllm', model: 'Qwen/Qwen2.5-7B-Instruct', kind: 'chat', timing: FAST },
    ],
    yaml: (url) => `
gateway:
  fast_lane: ${process.env.FABRIC_TEST_FAST_LANE !== '0'}
backends:
  ollama-qwen: { engine: ollama, url: ${url('ollama')}, model: "qwen2.5:7b", max_retries: 0 }
  vllm-qwen: { engine: vllm, url: ${url('vllm')}/v1, model: Qwen/Qwen2.5-7B-Instruct, max_retries: 0 }
roles:
  ollama-only: { kind: chat, backends: [ollama-qwen] }
  ollama-then-vllm: { kind: chat, backends: [ollama-qwen], fallbacks: [vllm-role] }
  vllm-role: { kind: chat, backends: [vllm-qwen] }
`,
  });
});

after(() => f.close());

const sent = (engine: string): number => f.fleet.get(engine).requests().length;
const completion = (model: string, extra: Record<string, unknown>) => ({ model, prompt: 'Once upon a time', max_tokens: 8, ...extra });

const REFUSED: Array<[string, Record<string, unknown>, RegExp]> = [
  ['echo', { echo: true }, /do not echo the prompt/],
  ['best_of', { best_of: 2 }, /`best_of` is 2, but Ollama backends generate one answer per request/],
  ['logit_bias', { logit_bias: { '50256': -100 } }, /take no `logit_bias`/],
];

test('alone, an Ollama backend refuses echo, best_of > 1 and a non-empty logit_bias with a 400 naming the field, sending nothing', async () => {
  for (const [param, extra, message] of REFUSED) {
    for (const [path, body] of [['/v1/completions', completion('ollama-only', extra)], ['/v1/chat/completions', chat('ollama-only', 'hi', extra)]] as const) {
      const before = sent('ollama');
      const r = await post(f.url, path, body);
      assert.equal(r.status, 400, `${param} on ${path}: ${r.text}`);
      assert.equal(r.json.error.code, 'invalid_request');
      assert.equal(r.json.error.param, param);
      assert.match(r.json.error.message, message);
      assert.equal(r.json.error.attempts[0].failure, 'unsupported');
      assert.equal(sent('ollama'), before, 'nothing sent to Ollama');
    }
  }
  assert.equal(f.gw.app.gateway.backends.get('ollama-qwen')!.consecutiveFailures, 0, 'the backend is not blamed');
});

test('in a chain, the Ollama backend is passed over for one that can take the field', async () => {
  for (const [param, extra] of REFUSED) {
    const before = sent('ollama');
    const r = await post(f.url, '/v1/completions', completion('ollama-then-vllm', extra));
    assert.equal(r.status, 200, `${param}: ${r.text}`);
    assert.equal(r.headers.get('x-fabric-backend'), 'vllm-qwen');
    assert.equal(r.headers.get('x-fabric-attempts'), '1', 'the Ollama backend was no attempt');
    assert.equal(sent('ollama'), before);
  }
});

test('values that ask for nothing (echo false, best_of 1, logit_bias {} or null) are served by Ollama', async () => {
  for (const extra of [{ echo: false }, { best_of: 1 }, { logit_bias: {} }, { logit_bias: null, echo: null, best_of: null }]) {
    const before = sent('ollama');
    const r = await post(f.url, '/v1/completions', completion('ollama-only', extra));
    assert.equal(r.status, 200, `${JSON.stringify(extra)}: ${r.text}`);
    assert.equal(r.headers.get('x-fabric-backend'), 'ollama-qwen');
    assert.equal(sent('ollama'), before + 1);
  }
  // The SDK's chat call with an empty logit_bias: served by Ollama.
  const { response } = await f.client.chat.completions.create({ model: 'ollama-only', messages: [{ role: 'user', content: 'hi' }], max_tokens: 8, logit_bias: {} }).withResponse();
  assert.equal(response.headers.get('x-fabric-backend'), 'ollama-qwen');
});

// `n`: several choices from one request, where the real engine serves them (vLLM, OpenAI),
// refused where it does not (llama-server), ignored where the API has no such field (Ollama).

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { startFleet } from './fleet.ts';
import type { SimFleet, SimProtocol } from './fleet.ts';
import { replyTokens } from './generate.ts';
import { EOS_TOKENS, FAST, at, parseSse, post } from './test-helpers.ts';

const MODEL = 'm';
const chat = (extra: Record<string, unknown>): Record<string, unknown> => ({ model: MODEL, messages: [{ role: 'user', content: 'why' }], ...extra });

/** Each choice's streamed text and finish reason, by the index its chunks carried. */
function streamedChoices(events: Record<string, unknown>[], field: 'delta' | 'text'): Map<number, { text: string; finish: unknown }> {
  const out = new Map<number, { text: string; finish: unknown }>();
  for (const e of events) {
    for (const c of (e.choices as Record<string, unknown>[] | undefined) ?? []) {
      const i = c.index as number;
      const got = out.get(i) ?? { text: '', finish: null };
      const piece = field === 'delta' ? at(c, 'delta', 'content') : c.text;
      if (typeof piece === 'string') got.text += piece;
      if (c.finish_reason !== null && c.finish_reason !== undefined) got.finish = c.finish_reason;
      out.set(i, got);
    }
  }
  return out;
}

describe('n choices', () => {
  let fleet: SimFleet;
  const url = (name: string): string => fleet.get(name).url;

  before(async () => {
    fleet = await startFleet([
      { name: 'vllm', protocol: 'vllm', model: MODEL, kind: 'chat', timing: FAST },
      { name: 'openai', protocol: 'openai', model: MODEL, kind: 'chat', timing: FAST },
      // a token rate the engine paces with timers, so streams go out one step at a time
      { name: 'vllm-paced', protocol: 'vllm', model: MODEL, kind: 'chat', timing: { ttftMs: 0, tokensPerSecond: 2000 } },
      { name: 'llamacpp', protocol: 'llamacpp', model: MODEL, kind: 'chat', timing: FAST },
      { name: 'ollama', protocol: 'ollama', model: MODEL, kind: 'chat', timing: FAST },
    ]);
  });
  after(() => fleet.close());

  for (const name of ['vllm', 'openai'] as const satisfies readonly SimProtocol[]) {
    test(`${name} chat: n choices indexed 0..n-1, distinct samples, prompt counted once`, async () => {
      const one: unknown = await (await post(`${url(name)}/v1/chat/completions`, chat({}))).json();
      const json: unknown = await (await post(`${url(name)}/v1/chat/completions`, chat({ n: 3 }))).json();
      const choices = at(json, 'choices') as Record<string, unknown>[];
      assert.deepEqual(choices.map((c) => c.index), [0, 1, 2]);
      const texts = choices.map((c) => at(c, 'message', 'content'));
      assert.equal(texts[0], replyTokens('why').join(''));
      assert.equal(new Set(texts).size, 3);
      assert.equal(at(json, 'usage', 'prompt_tokens'), at(one, 'usage', 'prompt_tokens'));
      const generated = [0, 1, 2].reduce((sum, j) => sum + replyTokens('why', j).length, 0);
      assert.equal(at(json, 'usage', 'completion_tokens'), generated + 3 * EOS_TOKENS[name]);
    });

    test(`${name} chat stream: every chunk's choice carries its index, each choice finishes`, async () => {
      const { events, done } = parseSse(await (await post(`${url(name)}/v1/chat/completions`, chat({ n: 2, stream: true, stream_options: { include_usage: true } }))).text());
      assert.equal(done, true);
      for (const e of events) assert.ok((e.choices as unknown[]).length <= 1, 'one choice per chunk');
      const got = streamedChoices(events, 'delta');
      assert.deepEqual([...got.keys()].sort(), [0, 1]);
      assert.equal(got.get(0)!.text, replyTokens('why').join(''));
      assert.equal(got.get(1)!.text, replyTokens('why', 1).join(''));
      assert.equal(got.get(0)!.finish, 'stop');
      assert.equal(got.get(1)!.finish, 'stop');
      assert.equal(at(events.at(-1), 'usage', 'completion_tokens'), replyTokens('why').length + replyTokens('why', 1).length + 2 * EOS_TOKENS[name]);
    });

    test(`${name} completions: choice i*n+j is prompt i's sample j, streamed or not`, async () => {
      const body = { model: MODEL, prompt: ['alpha', 'beta'], n: 2, max_tokens: 50 };
      const json: unknown = await (await post(`${url(name)}/v1/completions`, body)).json();
      const choices = at(json, 'choices') as Record<string, unknown>[];
      assert.deepEqual(choices.map((c) => c.index), [0, 1, 2, 3]);
      assert.deepEqual(choices.map((c) => c.text), [
        replyTokens('alpha').join(''), replyTokens('alpha', 1).join(''), replyTokens('beta').join(''), replyTokens('beta', 1).join(''),
      ]);
      assert.equal(at(json, 'usage', 'prompt_tokens'), 2);

      const { events } = parseSse(await (await post(`${url(name)}/v1/completions`, { ...body, stream: true })).text());
      const got = streamedChoices(events, 'text');
      assert.deepEqual([...got.keys()].sort(), [0, 1, 2, 3]);
      assert.equal(got.get(3)!.text, replyTokens('beta', 1).join(''));
      assert.equal(got.get(2)!.finish, 'stop');
    });
  }

  test('vllm paced stream with n: each step sends one chunk per choice still generating', async () => {
    const { events } = parseSse(await (await post(`${url('vllm-paced')}/v1/chat/completions`, chat({ n: 2, stream: true }))).text());
    const got = streamedChoices(events, 'delta');
    assert.equal(got.get(1)!.text, replyTokens('why', 1).join(''));
    assert.equal(got.get(0)!.finish, 'stop');
  });

  test('n below the range: vLLM and OpenAI refuse it in their own words', async () => {
    const v = await post(`${url('vllm')}/v1/chat/completions`, chat({ n: 0 }));
    assert.equal(v.status, 400);
    assert.equal(at(await v.json(), 'error', 'message'), 'n must be at least 1, got 0.');
    const o = await post(`${url('openai')}/v1/chat/completions`, chat({ n: 0 }));
    assert.equal(o.status, 400);
    const oj: unknown = await o.json();
    assert.equal(at(oj, 'error', 'param'), 'n');
    assert.equal(at(oj, 'error', 'code'), 'integer_below_min_value');
    const big = await post(`${url('openai')}/v1/completions`, { model: MODEL, prompt: 'x', n: 129 });
    assert.equal(at(await big.json(), 'error', 'code'), 'integer_above_max_value');
  });

  test('llama-server: n other than 1 is a 500 "Only one completion choice is allowed"; n: 1 is fine', async () => {
    for (const path of ['/v1/chat/completions', '/v1/completions']) {
      const body = path === '/v1/completions' ? { prompt: 'why', n: 2 } : chat({ n: 2 });
      const r = await post(`${url('llamacpp')}${path}`, body);
      assert.equal(r.status, 500, path);
      assert.deepEqual(await r.json(), { error: { code: 500, message: 'Only one completion choice is allowed', type: 'server_error' } });
    }
    const ok = await post(`${url('llamacpp')}/v1/chat/completions`, chat({ n: 1 }));
    assert.equal((at(await ok.json(), 'choices') as unknown[]).length, 1);
  });

  test('Ollama has no n: one choice', async () => {
    const json: unknown = await (await post(`${url('ollama')}/v1/chat/completions`, chat({ n: 3 }))).json();
    assert.equal((at(json, 'choices') as unknown[]).length, 1);
  });
});

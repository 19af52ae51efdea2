// One suite, run against every protocol through the OpenAI-style chat endpoint all four
// serve: generation, streaming, limits, auth and every fault kind.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { startFleet } from './fleet.ts';
import type { SimFleet, SimProtocol } from './fleet.ts';
import { replyTokens } from './generate.ts';
import { EOS_TOKENS, FAST, at, parseSse, post, waitFor } from './test-helpers.ts';

const MODELS: Record<SimProtocol, string> = {
  vllm: 'Qwen/Qwen2.5-7B-Instruct',
  ollama: 'qwen2.5:7b',
  llamacpp: 'qwen2.5-7b-instruct',
  openai: 'gpt-4o-mini',
};
const PROMPT = 'hello there';
const EXPECTED = replyTokens(PROMPT);
const KEY = 'sk-sim-test-key';

function errorMessage(json: unknown): string {
  const e = at(json, 'error');
  if (typeof e === 'string') return e;
  const m = at(e, 'message') ?? at(json, 'message');
  return typeof m === 'string' ? m : '';
}

function streamText(events: Record<string, unknown>[]): string {
  let s = '';
  for (const e of events) {
    const c = at(e, 'choices', 0, 'delta', 'content');
    if (typeof c === 'string') s += c;
  }
  return s;
}

for (const protocol of ['vllm', 'ollama', 'llamacpp', 'openai'] as const) {
  describe(`${protocol} engine contract`, () => {
    let fleet: SimFleet;
    const model = MODELS[protocol];
    const auth = { authorization: `Bearer ${KEY}` };
    const chat = (extra: Record<string, unknown> = {}, signal?: AbortSignal): Promise<Response> => post(
      `${fleet.get('e').url}/v1/chat/completions`,
      { model, messages: [{ role: 'user', content: PROMPT }], ...extra },
      auth,
      signal,
    );

    before(async () => {
      fleet = await startFleet([
        { name: 'e', protocol, model, kind: 'chat', contextWindow: 64, apiKey: KEY, timing: { ttftMs: 2, tokensPerSecond: 2000 } },
        { name: 'fast', protocol, model, kind: 'chat', timing: FAST },
      ]);
    });
    after(() => fleet.close());

    test('answers a chat with the deterministic reply and its usage', async () => {
      const res = await chat();
      assert.equal(res.status, 200);
      const json: unknown = await res.json();
      assert.equal(at(json, 'choices', 0, 'message', 'content'), EXPECTED.join(''));
      assert.equal(at(json, 'choices', 0, 'finish_reason'), 'stop');
      assert.equal(at(json, 'usage', 'completion_tokens'), EXPECTED.length + EOS_TOKENS[protocol]);
      assert.equal(at(json, 'usage', 'prompt_tokens'), 9);
    });

    test('streams one chunk per token, usage last, then [DONE]', async () => {
      for (const name of ['e', 'fast']) {
        const res = await post(`${fleet.get(name).url}/v1/chat/completions`, {
          model, messages: [{ role: 'user', content: PROMPT }], stream: true, stream_options: { include_usage: true },
        }, auth);
        assert.equal(res.status, 200);
        assert.match(res.headers.get('content-type') ?? '', /^text\/event-stream/);
        const { events, done } = parseSse(await res.text());
        assert.equal(done, true);
        assert.equal(streamText(events), EXPECTED.join(''));
        const last = events.at(-1);
        assert.deepEqual(at(last, 'choices'), []);
        assert.equal(at(last, 'usage', 'completion_tokens'), EXPECTED.length + EOS_TOKENS[protocol]);
        const finishes = events.map((e) => at(e, 'choices', 0, 'finish_reason')).filter((f) => typeof f === 'string');
        assert.deepEqual(finishes, ['stop']);
      }
    });

    test('max_tokens cuts the reply with finish_reason length', async () => {
      const json: unknown = await (await chat({ max_tokens: 3 })).json();
      assert.equal(at(json, 'choices', 0, 'message', 'content'), EXPECTED.slice(0, 3).join(''));
      assert.equal(at(json, 'choices', 0, 'finish_reason'), 'length');
      assert.equal(at(json, 'usage', 'completion_tokens'), 3);
    });

    test('a prompt longer than the context window gets the context-length error (Ollama\'s /v1 layer cuts it)', async () => {
      const res = await post(`${fleet.get('e').url}/v1/chat/completions`, {
        model, messages: [{ role: 'user', content: 'word '.repeat(100) }],
      }, auth);
      if (protocol === 'ollama') {
        // Ollama's OpenAI layer sends neither num_ctx nor truncate: the prompt is cut to the
        // context and answered as if whole (why the gateway speaks Ollama's native API).
        assert.equal(res.status, 200);
        assert.equal(at(await res.json(), 'usage', 'prompt_tokens'), 64);
        return;
      }
      assert.equal(res.status, 400);
      assert.match(errorMessage(await res.json()), /context/);
    });

    test('an API key is required and checked', async () => {
      const res = await post(`${fleet.get('e').url}/v1/chat/completions`, { model, messages: [{ role: 'user', content: 'x' }] });
      assert.equal(res.status, 401);
      const text = await res.text();
      assert.doesNotThrow(() => JSON.parse(text));
      const wrong = await post(`${fleet.get('e').url}/v1/chat/completions`, { model, messages: [] }, { authorization: 'Bearer nope' });
      assert.equal(wrong.status, 401);
      await wrong.body?.cancel();
    });

    test('unknown paths are 404', async () => {
      const res = await fetch(`${fleet.get('fast').url}/v1/nothing-here`);
      assert.equal(res.status, 404);
      await res.body?.cancel();
    });

    test('error fault: the status and an error body in the engine shape', async () => {
      const e = fleet.get('e');
      await e.setFault({ kind: 'error', status: 502 });
      const res = await chat();
      assert.equal(res.status, 502);
      assert.notEqual(errorMessage(await res.json()), '');
      await e.setFault({ kind: 'error' });
      const res500 = await chat();
      assert.equal(res500.status, 500);
      assert.notEqual(errorMessage(await res500.json()), '');
      await e.setFault(null);
      assert.equal((await chat()).status, 200);
    });

    test('rate-limit fault: 429 with Retry-After', async () => {
      const e = fleet.get('e');
      await e.setFault({ kind: 'rate-limit', retryAfterS: 7 });
      const res = await chat();
      assert.equal(res.status, 429);
      assert.equal(res.headers.get('retry-after'), '7');
      assert.notEqual(errorMessage(await res.json()), '');
      await e.setFault(null);
    });

    test('context-length fault: the real overflow error', async () => {
      const e = fleet.get('e');
      await e.setFault({ kind: 'context-length' });
      const res = await chat();
      assert.equal(res.status, 400);
      assert.match(errorMessage(await res.json()), /context/);
      await e.setFault(null);
    });

    test('garbage fault: 200 that does not parse, streamed or not', async () => {
      const e = fleet.get('e');
      await e.setFault({ kind: 'garbage' });
      const res = await chat();
      assert.equal(res.status, 200);
      const body = await res.text();
      assert.throws(() => JSON.parse(body));
      const streamed = await chat({ stream: true });
      assert.equal(streamed.status, 200);
      const text = await streamed.text();
      assert.throws(() => parseSse(text));
      await e.setFault(null);
    });

    test('drop fault: a stream is cut after N chunks; a plain request never answers', async () => {
      const e = fleet.get('e');
      await e.setFault({ kind: 'drop', afterChunks: 2 });
      const res = await chat({ stream: true });
      assert.equal(res.status, 200);
      let received = '';
      const decoder = new TextDecoder();
      await assert.rejects(async () => {
        for await (const chunk of res.body!) received += decoder.decode(chunk as Uint8Array, { stream: true });
      });
      assert.equal(streamText(parseSse(received).events), EXPECTED.slice(0, 2).join(''));
      await assert.rejects(chat());
      await e.setFault(null);
      await waitFor(() => e.stats().active === 0, 1000, 'the dropped stream to free its slot');
    });

    test('stream-error fault: N chunks, then the engine\'s own report of a failed generation, as it frames it; a plain request gets its 500', async () => {
      const e = fleet.get('e');
      await e.setFault({ kind: 'stream-error', afterChunks: 2 });
      const res = await chat({ stream: true });
      assert.equal(res.status, 200);
      const text = await res.text();
      const events = text.split('\n\n').filter((x) => x !== '').map((x) => x.replace(/^data: /, ''));
      const tokens = events.slice(0, -1).map((x) => JSON.parse(x) as Record<string, unknown>);
      assert.equal(streamText(tokens), EXPECTED.slice(0, 2).join(''));
      const ends: Record<SimProtocol, [unknown, boolean]> = {
        // serving_chat.py's create_streaming_error_response(str(e)), then [DONE]
        vllm: [{ error: { message: 'EngineCore encountered an issue. See stack trace (above) for the root cause.', type: 'BadRequestError', param: null, code: 400 } }, true],
        // the runner's {"error"} line read by the OpenAI layer as one more (empty) response
        ollama: [{ model: '', content: '' }, false],
        llamacpp: [{ error: { code: 500, message: 'Internal Server Error', type: 'server_error' } }, false],
        openai: [{ error: { message: 'The server had an error while processing your request. Sorry about that!', type: 'server_error', param: null, code: null } }, false],
      };
      const [last, done] = ends[protocol];
      assert.equal(events.at(-1) === '[DONE]', done);
      const failure = JSON.parse(events.at(done ? -2 : -1)!) as Record<string, unknown>;
      if (protocol === 'ollama') assert.deepEqual({ model: failure.model, content: at(failure, 'choices', 0, 'delta', 'content') }, last);
      else assert.deepEqual(failure, last);
      const plain = await chat();
      assert.equal(plain.status, 500);
      await e.setFault(null);
      await waitFor(() => e.stats().active === 0, 1000, 'the failed stream to free its slot');
      if (protocol === 'ollama') {
        // Ollama's own API: the error as one more line.
        await e.setFault({ kind: 'stream-error', afterChunks: 1 });
        const native = await post(`${e.url}/api/chat`, { model, messages: [{ role: 'user', content: PROMPT }] }, auth);
        const lines = (await native.text()).trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
        assert.deepEqual(lines.map((l) => Object.keys(l).includes('error')), [false, true]);
        assert.deepEqual(lines[1], { error: 'an error was encountered while running the model: unexpected EOF' });
        await e.setFault(null);
      }
    });

    test('hang fault: no answer until the client gives up; the slot is not held', async () => {
      const e = fleet.get('e');
      await e.setFault({ kind: 'hang' });
      await assert.rejects(chat({}, AbortSignal.timeout(100)), { name: 'TimeoutError' });
      assert.equal(e.stats().active, 0);
      await e.setFault(null);
      assert.equal((await chat()).status, 200);
    });

    test('slow fault multiplies the delays', async () => {
      const e = fleet.get('e');
      await e.setFault({ kind: 'slow', factor: 20 });
      const t0 = performance.now();
      await (await chat()).text();
      // ttft 2ms and 0.5ms per token, times 20: at least 40ms + 10ms per token
      assert.ok(performance.now() - t0 >= 40 + 10 * EXPECTED.length - 5);
      await e.setFault(null);
    });

    test('down fault refuses connections; clearing it reopens the same port', async () => {
      const e = fleet.get('e');
      const port = e.port;
      await e.setFault({ kind: 'down' });
      await assert.rejects(chat(), TypeError);
      await e.setFault(null);
      assert.equal(e.port, port);
      assert.equal((await chat()).status, 200);
    });

    test('a fault with remaining applies to the next N inference requests only', async () => {
      const e = fleet.get('e');
      await e.setFault({ kind: 'error', status: 503 }, 2);
      assert.equal((await chat()).status, 503);
      assert.equal((await chat()).status, 503);
      assert.equal((await chat()).status, 200);
    });
  });
}

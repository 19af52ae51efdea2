// A backend that answers, but slowly: /health reports every backend's live traffic of the last
// minutes (p50/p95 of answers' latency and of streams' time to first token, errors), and one
// whose p95 passes its health policy's `slow` threshold raises a warning — in /health's alert,
// in `fabric health` (exit 1) — where before it showed "up" until it timed out.

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { startFabric, chat, post } from './helpers.ts';
import { runFabric } from './support/proc.ts';
import { parseFabricText } from '../src/config/load.ts';

const FAST = { ttftMs: 2, tokensPerSecond: 5000, maxConcurrency: 32, maxQueue: 64 };
const SLOW = { ttftMs: 300, tokensPerSecond: 5000, maxConcurrency: 32, maxQueue: 64 };

const yaml = (url: (n: string) => string): string => `
gateway:
  health: { slow: 200ms }
backends:
  quick: { engine: vllm, url: ${url('quick')}/v1, model: m-quick }
  sluggish: { engine: vllm, url: ${url('sluggish')}/v1, model: m-sluggish }
  exempt: { engine: vllm, url: ${url('exempt')}/v1, model: m-exempt, health: { slow: off } }
roles:
  chat-fast: { kind: chat, backends: [quick] }
  chat-deep: { kind: chat, backends: [sluggish] }
  chat-batch: { kind: chat, backends: [exempt] }
`;

const f = await startFabric({
  engines: [
    { name: 'quick', protocol: 'vllm', model: 'm-quick', kind: 'chat', timing: FAST },
    { name: 'sluggish', protocol: 'vllm', model: 'm-sluggish', kind: 'chat', timing: SLOW },
    { name: 'exempt', protocol: 'vllm', model: 'm-exempt', kind: 'chat', timing: SLOW },
  ],
  yaml,
});
after(() => f.close());

async function traffic(model: string, n: number): Promise<void> {
  await Promise.all(Array.from({ length: n }, async () => {
    const r = await post(f.url, '/v1/chat/completions', chat(model));
    assert.equal(r.status, 200);
    const s = await f.client.chat.completions.create({ model, messages: [{ role: 'user', content: 'hello there' }], max_tokens: 12, stream: true });
    for await (const _ of s) { /* read to the end */ }
  }));
}

test('/health: each backend\'s recent traffic; one whose p95 passes its slow threshold is a warning, also in fabric health (exit 1); slow: off exempts one', async () => {
  const fresh = (await (await fetch(`${f.url}/health`)).json()) as any;
  assert.equal(fresh.backends.find((b: any) => b.name === 'sluggish').recent.requests, 0);
  assert.equal(fresh.alert.level, 'ok');

  await traffic('chat-deep', 3);
  const early = (await (await fetch(`${f.url}/health`)).json()) as any;
  assert.equal(early.backends.find((b: any) => b.name === 'sluggish').slow, null, 'three answers are not enough to call it slow');

  await Promise.all([traffic('chat-deep', 3), traffic('chat-fast', 6), traffic('chat-batch', 6)]);
  const h = (await (await fetch(`${f.url}/health`)).json()) as any;
  const by = (n: string): any => h.backends.find((b: any) => b.name === n);
  const s = by('sluggish').recent;
  assert.deepEqual([s.requests, s.errors, s.latency_samples, s.ttft_samples], [12, 0, 6, 6]);
  assert.ok(s.ttft_p95_ms >= 300 && s.latency_p95_ms >= 300, JSON.stringify(s));
  assert.ok(by('quick').recent.latency_p95_ms < 200 && by('quick').recent.ttft_p95_ms < 200, JSON.stringify(by('quick').recent));
  assert.match(by('sluggish').slow, /^p95 latency \d+ ms over 6 answers and p95 time to first token \d+ ms over 6 streams in the last 5 min, above its slow threshold \(200 ms\)$/);
  assert.equal(by('quick').slow, null);
  assert.equal(by('exempt').slow, null, 'slow: off');
  assert.ok(by('exempt').recent.ttft_p95_ms >= 300, 'its figures are still reported');
  assert.equal(h.alert.level, 'warning');
  assert.deepEqual(h.alert.reasons.filter((r: string) => r.includes('slow')).map((r: string) => r.split(':')[0]), ['sluggish is slow']);
  assert.equal(h.status, 'ok', 'slow is not down');

  const cli = await runFabric(['health', '--url', f.url], { ...process.env, FABRIC_API_KEY: '' });
  assert.equal(cli.code, 1, cli.stdout + cli.stderr);
  assert.match(cli.stdout, /P95 \(5M\)/);
  assert.match(cli.stdout, /sluggish +up +- +\d+ ms, ttft \d+ ms +vllm/, 'probes are off here: no probe latency, the p95 beside it');
  assert.match(cli.stdout, /level: WARNING\n {2}sluggish is slow: p95 latency/);
});

test('health.slow: a duration above 0, or off; a backend\'s own overrides the gateway\'s', () => {
  const base = (slow: string, own = ''): string => `
gateway:
  health: { slow: ${slow} }
backends:
  a: { engine: vllm, url: http://127.0.0.1:9/v1, model: m${own === '' ? '' : `, health: { slow: ${own} }`} }
roles:
  r: { kind: chat, backends: [a] }
`;
  assert.equal(parseFabricText(base('10s'), 'f.yaml').config.backends.get('a')!.health!.slowMs, 10_000);
  assert.equal(parseFabricText(base('10s', '30s'), 'f.yaml').config.backends.get('a')!.health!.slowMs, 30_000);
  assert.equal(parseFabricText(base('10s', 'off'), 'f.yaml').config.backends.get('a')!.health!.slowMs, undefined);
  assert.equal(parseFabricText(base('off'), 'f.yaml').config.backends.get('a')!.health!.slowMs, undefined);
  const bad = parseFabricText(base('0'), 'f.yaml').issues.filter((i) => i.severity === 'error');
  assert.match(bad.map((i) => `${i.line}: ${i.message}`).join('\n'), /^3: must be a duration above 0 such as 10s, or off$/);
  assert.match(parseFabricText(base('soon'), 'f.yaml').issues.map((i) => i.message).join('\n'), /must be a duration such as 500ms/);
});

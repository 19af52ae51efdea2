// A workstation's backend that fails: down when the machine answered (an HTTP error, a stream
// broken by its engine, another model served), offline (expected) when it did not (a refused
// connection): what /health, fabric health and the dashboard show, and what the alerts make of it.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startFabric, post, chat, seedEngine, type Fabric } from './helpers.ts';

const MASTER = 'fabric-master-key-for-workstation-tests';
const FAST = { ttftMs: 5, tokensPerSecond: 2000, maxConcurrency: 16, maxQueue: 64 };
const auth = { authorization: `Bearer ${MASTER}` };

let f: Fabric;

before(async () => {
  f = await startFabric({
    env: { FABRIC_MASTER_KEY: MASTER },
    apiKey: MASTER,
    engines: [
      seedEngine('armitage', FAST),
      seedEngine('wintermute', FAST),
    ],
    yaml: (url) => `
gateway:
  master_key: env:FABRIC_MASTER_KEY
  health: { failure_threshold: 1, cooldown: 100ms, max_cooldown: 100ms }
nodes:
  armitage: { power: workstation }
  wintermute: { power: workstation }
backends:
  armitage-qwen: { engine: vllm, node: armitage, url: ${url('armitage')}/v1, model: Qwen/Qwen2.5-7B-Instruct-AWQ, max_retries: 0 }
  # The engine serves another model than the config names: it answers 404.
  wintermute-llama: { engine: vllm, node: wintermute, url: ${url('wintermute')}/v1, model: meta-llama/Llama-3.1-8B-Instruct, max_retries: 0 }
roles:
  chat-fast: { kind: chat, backends: [armitage-qwen] }
  chat-deep: { kind: chat, backends: [wintermute-llama] }
`,
  });
});

after(async () => {
  await f.close();
});

const status = async (name: string): Promise<{ status: string; node_state: string }> => {
  const h = (await (await fetch(`${f.url}/health`, { headers: auth })).json()) as { backends: Array<{ name: string; status: string; node_state: string }> };
  return h.backends.find((b) => b.name === name)!;
};
const cooled = (): Promise<void> => new Promise((r) => setTimeout(r, 150));

test('an HTTP error from a workstation\'s engine: down, the machine on; then a refused connection: offline (expected)', async () => {
  const e = f.fleet.get('armitage');
  await e.setFault({ kind: 'error', status: 500 });
  assert.equal((await post(f.url, '/v1/chat/completions', chat('chat-fast'), auth)).status, 503);
  const down = await status('armitage-qwen');
  assert.equal(down.status, 'down');
  assert.equal(down.node_state, 'down');

  await cooled();
  await e.setFault({ kind: 'down' });
  assert.equal((await post(f.url, '/v1/chat/completions', chat('chat-fast'), auth)).status, 503);
  const off = await status('armitage-qwen');
  assert.equal(off.status, 'offline (expected)');
  assert.equal(off.node_state, 'off');

  // Its engine breaks a stream: the machine is on again, and down.
  await cooled();
  await e.setFault({ kind: 'stream-error', afterChunks: 1 });
  const s = await post(f.url, '/v1/chat/completions', { ...chat('chat-fast'), stream: true }, auth);
  assert.equal(s.status, 200);
  assert.equal((await status('armitage-qwen')).status, 'down');
  await e.setFault(null);
});

test('a workstation whose engine serves another model (a 404): down, not switched off', async () => {
  assert.equal((await post(f.url, '/v1/chat/completions', chat('chat-deep'), auth)).status, 503);
  assert.equal((await status('wintermute-llama')).status, 'down');
});

// Engines close keep-alive connections on their own terms, and the gateway's pool must take that
// in its stride: llama-server's cpp-httplib closes a connection after its 100th request (and after
// 5 s idle), vLLM's uvicorn after 5 s idle. Hundreds of requests through the gateway in a row all
// succeed on their first attempt, and none is logged as a backend failure.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { request } from 'node:http';
import { startFabric, post, chat, type Fabric } from './helpers.ts';

const FAST = { ttftMs: 0, tokensPerSecond: 1e6 };

let f: Fabric;

before(async () => {
  f = await startFabric({
    engines: [
      { name: 'cpp', protocol: 'llamacpp', model: 'qwen2.5-7b', kind: 'chat', timing: FAST },
      { name: 'vllm', protocol: 'vllm', model: 'Qwen/Qwen2.5-7B-Instruct-AWQ', kind: 'chat', timing: FAST },
    ],
    yaml: (url) => `
backends:
  cpp-qwen: { engine: llamacpp, url: ${url('cpp')}/v1, model: qwen2.5-7b, max_connections: 1, max_retries: 0 }
  vllm-qwen: { engine: vllm, url: ${url('vllm')}/v1, model: Qwen/Qwen2.5-7B-Instruct-AWQ, max_connections: 1, max_retries: 0 }
roles:
  chat-cpp: { kind: chat, backends: [cpp-qwen] }
  chat-vllm: { kind: chat, backends: [vllm-qwen] }
`,
  });
});

after(() => f.close());

/** The response head of one request on a connection of its own. */
function head(url: string, path: string, agent: import('node:http').Agent): Promise<import('node:http').IncomingHttpHeaders> {
  return new Promise((resolve, reject) => {
    const req = request(url + path, { agent }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.headers));
    });
    req.on('error', reject);
    req.end();
  });
}

test('the llama.cpp simulator keeps a connection for 100 requests and 5 s, as cpp-httplib does, and says so', async () => {
  const { Agent } = await import('node:http');
  const agent = new Agent({ keepAlive: true, maxSockets: 1 });
  try {
    const first = await head(f.fleet.get('cpp').url, '/health', agent);
    assert.equal(first['keep-alive'], 'timeout=5, max=100');
    let last = first;
    for (let i = 1; i < 100; i++) last = await head(f.fleet.get('cpp').url, '/health', agent);
    assert.equal(last.connection, 'close', 'the 100th answer closes its connection');
  } finally {
    agent.destroy();
  }
});

test('through the gateway, 250 requests in a row to llama.cpp (its connection closed every 100) and vLLM all succeed at the first attempt', async () => {
  const from = f.logs.length;
  for (const model of ['chat-cpp', 'chat-vllm']) {
    const statuses = new Map<string, number>();
    for (let i = 0; i < 250; i++) {
      const r = await post(f.url, '/v1/chat/completions', chat(model, `request ${i}`, { max_tokens: 2 }));
      const key = `${r.status} ${r.headers.get('x-fabric-attempts')}`;
      statuses.set(key, (statuses.get(key) ?? 0) + 1);
    }
    assert.deepEqual([...statuses], [['200 1', 250]], model);
  }
  const failures = f.logs.slice(from).filter((l) => /"level":"(warn|error)"/.test(l));
  assert.deepEqual(failures, []);
});

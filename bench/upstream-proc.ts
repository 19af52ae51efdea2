// The upstream for the benchmark, in its own process (pinned by the orchestrator to the load
// generator's core):
//
//   fast    simulated vLLM engine that answers at once (no artificial delay)
//   stream  simulated vLLM: first token at once, then one token per millisecond (time to first byte)
//   slow    simulated vLLM: 50 ms to the first token, then 3 tokens/s (streams open for seconds)
//   fixed   a bare TCP server replaying, byte for byte, the answer `fast` gave to the benchmark's
//           request: the same vLLM-shaped body for a fraction of the CPU
//
// Why `fixed`: the load generator and the upstream share one core. The simulator spends about
// 60 µs of CPU per request, the generator about 30: together they top out near 9,000 req/s,
// below the 10,000 req/s the gateway is to be measured at. The fixed upstream spends ~15 µs,
// which leaves core 0 room for ~20,000 req/s, so the gateway, not the harness, is the limit.

import { createServer, type Socket } from 'node:net';
import { request } from 'undici';
import { startFleet } from '../src/sim/fleet.ts';
import type { SimEngineSpec } from '../src/sim/fleet.ts';
import { UPSTREAM_MODELS } from './shared.ts';

const UNBOUNDED = { maxConcurrency: 100_000, maxQueue: 100_000 };

const specs: SimEngineSpec[] = [
  { name: 'fast', protocol: 'vllm', model: UPSTREAM_MODELS.fast, kind: 'chat', port: 0, timing: { ttftMs: 0, tokensPerSecond: 1e9, ...UNBOUNDED } },
  { name: 'stream', protocol: 'vllm', model: UPSTREAM_MODELS.stream, kind: 'chat', port: 0, timing: { ttftMs: 0, tokensPerSecond: 1000, ...UNBOUNDED } },
  { name: 'slow', protocol: 'vllm', model: UPSTREAM_MODELS.slow, kind: 'chat', port: 0, timing: { ttftMs: 50, tokensPerSecond: 3, ...UNBOUNDED } },
];

const HEADER_END = Buffer.from('\r\n\r\n');
/** Requests larger than this are not the benchmark's: the connection is dropped. */
const MAX_REQUEST = 1024 * 1024;

/**
 * An HTTP/1.1 keep-alive server that answers every POST with one fixed response and every
 * GET (the gateway's health probe) with a small 200. It understands exactly what undici and
 * the load generator send — Content-Length bodies, no chunked uploads, one request at a time
 * per connection — and drops anything else.
 */
function startFixed(answer: Buffer, gets: Map<string, { type: string; body: Buffer }>): Promise<{ url: string; close: () => void }> {
  const reply = (type: string, body: Buffer): Buffer => Buffer.concat([
    Buffer.from(`HTTP/1.1 200 OK\r\ncontent-type: ${type}\r\ncontent-length: ${body.length}\r\nconnection: keep-alive\r\n\r\n`),
    body,
  ]);
  const post = reply('application/json', answer);
  // The gateway's probes (GET /health, /v1/models, /metrics) get what the simulated engine answered.
  const getReplies = new Map([...gets].map(([path, r]) => [path, reply(r.type, r.body)]));
  const get = reply('application/json', Buffer.from('{}'));
  const sockets = new Set<Socket>();
  const server = createServer((sock) => {
    sockets.add(sock);
    sock.setNoDelay(true);
    let buf: Buffer | undefined;
    sock.on('data', (chunk: Buffer) => {
      buf = buf === undefined ? chunk : Buffer.concat([buf, chunk]);
      for (;;) {
        const end = buf.indexOf(HEADER_END);
        if (end < 0) {
          if (buf.length > MAX_REQUEST) sock.destroy();
          return;
        }
        const head = buf.toString('latin1', 0, end).toLowerCase();
        if (head.includes('transfer-encoding:')) {
          sock.destroy();
          return;
        }
        const m = /\r\ncontent-length:\s*(\d+)/.exec(head);
        const total = end + 4 + (m === null ? 0 : Number(m[1]));
        if (total > MAX_REQUEST) {
          sock.destroy();
          return;
        }
        if (buf.length < total) return;
        if (head.startsWith('get ')) {
          const path = head.slice(4, head.indexOf(' ', 4));
          sock.write(getReplies.get(path) ?? get);
        } else sock.write(post);
        if (buf.length === total) {
          buf = undefined;
          return;
        }
        buf = buf.subarray(total);
      }
    });
    sock.on('error', () => {});
    sock.on('close', () => sockets.delete(sock));
  });
  return new Promise((resolve) => {
    server.listen(0, '127.0.0.1', () => {
      const addr = server.address();
      const port = addr !== null && typeof addr === 'object' ? addr.port : 0;
      resolve({
        url: `http://127.0.0.1:${port}`,
        close: () => {
          server.close();
          for (const s of sockets) s.destroy();
        },
      });
    });
  });
}

if (process.send === undefined) {
  process.stderr.write('bench/upstream-proc.ts runs as a child of bench/run.ts (it needs an IPC channel)\n');
  process.exit(2);
}

// The orchestrator passes the benchmark's request body; the fixed answer is the simulator's answer to it.
const benchBody = process.argv[2] ?? '{}';
const fleet = await startFleet(specs, { host: '127.0.0.1' });
const sample = await request(`${fleet.get('fast').url}/v1/chat/completions`, {
  method: 'POST', headers: { 'content-type': 'application/json' }, body: benchBody,
});
const answer = Buffer.from(await sample.body.arrayBuffer());
if (sample.statusCode !== 200) {
  process.stderr.write(`upstream: the simulator answered the benchmark request with ${sample.statusCode}: ${answer.toString()}\n`);
  process.exit(1);
}
const gets = new Map<string, { type: string; body: Buffer }>();
for (const path of ['/health', '/v1/models', '/metrics']) {
  const r = await request(`${fleet.get('fast').url}${path}`);
  gets.set(path, { type: String(r.headers['content-type'] ?? 'application/json'), body: Buffer.from(await r.body.arrayBuffer()) });
}
const fixed = await startFixed(answer, gets);

const stop = (): void => {
  fixed.close();
  void fleet.close().finally(() => process.exit(0));
};
process.on('message', (m: { type: string }) => {
  if (m.type === 'exit') stop();
});
process.on('disconnect', stop);
process.on('SIGTERM', stop);
process.send({
  type: 'ready',
  pid: process.pid,
  urls: { fast: fleet.get('fast').url, stream: fleet.get('stream').url, slow: fleet.get('slow').url, fixed: fixed.url },
  answerBytes: answer.length,
});

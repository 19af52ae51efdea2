// The reference point: the least a Node reverse proxy can do per request — node:http in,
// undici Pool out, body buffered and passed back — with no auth, routing, validation,
// normalization or logging. Run in the gateway's place (same core, same upstream), it shows
// how much of the gateway's cost is Node and HTTP themselves and how much is the gateway.
//
//   node bench/bare-proxy.ts <upstream origin>    (as a child of bench/run.ts, with IPC)

import { createServer } from 'node:http';
import { Pool } from 'undici';
import { GcWatch } from './gc-watch.ts';
import { serveOrchestrator } from './child-ipc.ts';

const origin = process.argv[2];
if (process.send === undefined || origin === undefined) {
  process.stderr.write('usage: node bench/bare-proxy.ts <upstream origin>   (as a child of bench/run.ts, with IPC)\n');
  process.exit(2);
}

const gc = new GcWatch();
const pool = new Pool(origin, { connections: 256, pipelining: 1, keepAliveTimeout: 30_000 });

const server = createServer({ keepAliveTimeout: 65_000 }, (req, res) => {
  const chunks: Buffer[] = [];
  req.on('data', (c: Buffer) => chunks.push(c));
  req.on('end', () => {
    pool.request({
      method: 'POST',
      path: req.url ?? '/',
      headers: { 'content-type': 'application/json' },
      body: chunks.length === 1 ? chunks[0] : Buffer.concat(chunks),
    }).then(async (up) => {
      const body = Buffer.from(await up.body.arrayBuffer());
      res.writeHead(up.statusCode, { 'content-type': 'application/json', 'content-length': body.length });
      res.end(body);
    }, (e: unknown) => {
      res.writeHead(502, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ error: { message: String(e) } }));
    });
  });
});

serveOrchestrator(server, gc, () => {
  server.close();
  server.closeAllConnections();
  void pool.close().finally(() => process.exit(0));
});

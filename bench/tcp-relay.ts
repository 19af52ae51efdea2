// The floor under any proxy in this harness: a process on the gateway's core that relays
// bytes between each client connection and a connection of its own to the upstream, without
// reading them. What it adds to latency is the extra hop itself (two more loopback sends and
// two more wake-ups on the other core), which no HTTP proxy can avoid. `--rate-only` runs it
// beside the gateway and the bare proxy, so a tail figure can be read against it.
//
//   node bench/tcp-relay.ts <upstream origin>    (as a child of bench/run.ts, with IPC)

import { connect, createServer } from 'node:net';
import { GcWatch } from './gc-watch.ts';
import { serveOrchestrator } from './child-ipc.ts';

const origin = process.argv[2];
if (process.send === undefined || origin === undefined) {
  process.stderr.write('usage: node bench/tcp-relay.ts <upstream origin>   (as a child of bench/run.ts, with IPC)\n');
  process.exit(2);
}
const up = new URL(origin);
const gc = new GcWatch();

const server = createServer({ noDelay: true }, (client) => {
  const upstream = connect({ host: up.hostname, port: Number(up.port), noDelay: true });
  client.pipe(upstream);
  upstream.pipe(client);
  const close = (): void => {
    client.destroy();
    upstream.destroy();
  };
  client.on('error', close).on('close', close);
  upstream.on('error', close).on('close', close);
});

serveOrchestrator(server, gc, () => {
  server.close();
  process.exit(0);
});

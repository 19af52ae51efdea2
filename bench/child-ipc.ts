// The reference processes' side of the orchestrator's IPC (bare-proxy.ts, tcp-relay.ts): listen
// on a free loopback port, answer `gc-pauses`, stop on `exit`, a lost channel or SIGTERM, and
// say `ready` with the address.

import type { Server } from 'node:net';
import type { GcWatch } from './gc-watch.ts';

export function serveOrchestrator(server: Server, gc: GcWatch, stop: () => void): void {
  server.listen(0, '127.0.0.1', () => {
    const addr = server.address();
    const port = addr !== null && typeof addr === 'object' ? addr.port : 0;
    process.on('message', (m: { type: string; sinceMs?: number }) => {
      if (m.type === 'exit') stop();
      else if (m.type === 'gc-pauses') process.send!({ type: 'gc-pauses', pauses: gc.since(m.sinceMs ?? 0) });
    });
    process.on('disconnect', stop);
    process.on('SIGTERM', stop);
    process.send!({ type: 'ready', pid: process.pid, url: `http://127.0.0.1:${port}` });
  });
}

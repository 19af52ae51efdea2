// Scripted HTTP/1.1 servers for client tests: the requests a raw socket receives, framed by
// their head and Content-Length body, whatever the reads split them into.

import type { Socket } from 'node:net';

/** Calls `onRequest` with each complete request's head (without its blank line) and body, in order. */
export function readRequests(sock: Socket, onRequest: (head: string, body: string) => void): void {
  let buf = '';
  sock.on('data', (c: Buffer) => {
    buf += c.toString('latin1');
    for (;;) {
      const end = buf.indexOf('\r\n\r\n');
      if (end === -1) return;
      const head = buf.slice(0, end);
      const len = Number(/\r\ncontent-length: (\d+)/i.exec(head)?.[1] ?? 0);
      if (buf.length < end + 4 + len) return;
      const body = buf.slice(end + 4, end + 4 + len);
      buf = buf.slice(end + 4 + len);
      onRequest(head, body);
    }
  });
}

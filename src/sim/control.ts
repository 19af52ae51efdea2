// The operator's control plane for a running fleet: list engines, switch faults on and off.
//   GET    /engines                 → [{name, protocol, url, model, models, fault, stats}]
//   GET    /engines/{name}          → one of those
//   GET    /engines/{name}/requests → the engine's recent inference requests
//   PUT    /engines/{name}/fault    ← a SimFault as JSON, plus optional "remaining": N
//   DELETE /engines/{name}/fault

import { createServer } from 'node:http';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { hostForUrl } from './engine.ts';
import type { SimEngineImpl } from './engine.ts';
import { parseFault } from './faults.ts';
import type { SimFaultState } from './types.ts';

function reply(res: ServerResponse, status: number, payload?: unknown): void {
  const body = payload === undefined ? '' : `${JSON.stringify(payload, null, 2)}\n`;
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
  res.end(body);
}

/** The fault on, in the shape a PUT takes: the SimFault, with `remaining` when it counts down. */
function faultJson(s: SimFaultState | null): Record<string, unknown> | null {
  if (s === null) return null;
  return s.remaining === undefined ? { ...s.fault } : { ...s.fault, remaining: s.remaining };
}

function describe(e: SimEngineImpl): Record<string, unknown> {
  return { name: e.name, protocol: e.protocol, url: e.url, model: e.model, models: e.models, fault: faultJson(e.fault), stats: e.stats() };
}

export class ControlServer {
  readonly #server: Server;
  readonly #engines: ReadonlyMap<string, SimEngineImpl>;
  readonly #sockets = new Set<Socket>();
  #port = 0;

  constructor(engines: ReadonlyMap<string, SimEngineImpl>) {
    this.#engines = engines;
    this.#server = createServer((req, res) => {
      let raw = '';
      req.setEncoding('utf8');
      req.on('data', (c: string) => {
        raw += c;
      });
      req.on('end', () => {
        this.#handle(req, res, raw).catch((err: unknown) => reply(res, 500, { error: String(err) }));
      });
    });
    this.#server.on('connection', (s: Socket) => {
      this.#sockets.add(s);
      s.once('close', () => this.#sockets.delete(s));
    });
  }

  listen(port: number, host: string): Promise<string> {
    return new Promise((resolve, reject) => {
      this.#server.once('error', reject);
      this.#server.listen(port, host, () => {
        this.#server.off('error', reject);
        const addr = this.#server.address();
        if (addr !== null && typeof addr === 'object') this.#port = addr.port;
        resolve(`http://${hostForUrl(host)}:${this.#port}`);
      });
    });
  }

  close(): Promise<void> {
    return new Promise((resolve) => {
      this.#server.close(() => resolve());
      for (const s of this.#sockets) s.destroy();
    });
  }

  async #handle(req: IncomingMessage, res: ServerResponse, raw: string): Promise<void> {
    const path = (req.url ?? '/').split('?')[0]!;
    const parts = path.split('/').filter((p) => p !== '').map(decodeURIComponent);
    const method = req.method ?? 'GET';
    if (parts[0] !== 'engines') {
      reply(res, 404, { error: 'not found; try GET /engines' });
      return;
    }
    if (parts.length === 1) {
      if (method !== 'GET') return reply(res, 405, { error: 'method not allowed' });
      reply(res, 200, [...this.#engines.values()].map(describe));
      return;
    }
    const engine = this.#engines.get(parts[1]!);
    if (engine === undefined) {
      reply(res, 404, { error: `no engine named ${parts[1]}`, engines: [...this.#engines.keys()] });
      return;
    }
    if (parts.length === 2 && method === 'GET') {
      reply(res, 200, describe(engine));
      return;
    }
    if (parts.length === 3 && parts[2] === 'requests' && method === 'GET') {
      reply(res, 200, engine.requests());
      return;
    }
    if (parts.length !== 3 || parts[2] !== 'fault') {
      reply(res, 404, { error: 'not found' });
      return;
    }
    if (method === 'DELETE') {
      await engine.setFault(null);
      reply(res, 200, describe(engine));
      return;
    }
    if (method !== 'PUT' && method !== 'POST') {
      reply(res, 405, { error: 'method not allowed' });
      return;
    }
    let input: unknown;
    try {
      input = JSON.parse(raw);
    } catch {
      reply(res, 400, { error: 'body must be a JSON fault, e.g. {"kind":"down"}' });
      return;
    }
    const fault = parseFault(input);
    if (typeof fault === 'string') {
      reply(res, 400, { error: fault });
      return;
    }
    const remaining = (input as Record<string, unknown>).remaining;
    if (remaining !== undefined && (typeof remaining !== 'number' || !Number.isInteger(remaining) || remaining < 1)) {
      reply(res, 400, { error: 'remaining must be a positive integer' });
      return;
    }
    await engine.setFault(fault, remaining);
    reply(res, 200, describe(engine));
  }
}

// Relays an engine's SSE stream to the client with as little per-chunk work as possible:
// complete events are forwarded as the bytes that arrived (one native search for the last
// event boundary per chunk); only a chunk that carries a usage object is parsed, to record
// usage and — when the gateway asked for usage the client did not — to drop the usage-only
// event so the client receives exactly what it asked for.

import type { Usage } from '../engines/types.ts';

const LF2 = Buffer.from('\n\n');
const CRLF2 = Buffer.from('\r\n\r\n');
const USAGE = Buffer.from('"usage"');
const DONE = Buffer.from('[DONE]');
const COLON = 0x3a;
const BRACE = 0x7b;

function isWs(b: number): boolean {
  return b === 0x20 || b === 0x09 || b === 0x0a || b === 0x0d;
}

/** Index just past the last event boundary, or -1. */
function lastBoundary(buf: Buffer): number {
  const a = buf.lastIndexOf(LF2);
  const b = buf.lastIndexOf(CRLF2);
  if (a === -1 && b === -1) return -1;
  return Math.max(a === -1 ? -1 : a + 2, b === -1 ? -1 : b + 4);
}

/** True if some `"usage"` key in buf has an object value (not null). */
function hasUsageObject(buf: Buffer): boolean {
  let from = 0;
  for (;;) {
    const i = buf.indexOf(USAGE, from);
    if (i === -1) return false;
    let j = i + USAGE.length;
    while (j < buf.length && isWs(buf[j]!)) j++;
    if (buf[j] === COLON) {
      j++;
      while (j < buf.length && isWs(buf[j]!)) j++;
      if (buf[j] === BRACE) return true;
    }
    from = i + USAGE.length;
  }
}

export class SseRelay {
  usage: Usage | undefined;
  sawDone = false;
  /** Bytes forwarded so far (0 means the client has received nothing). */
  forwarded = 0;
  readonly #stripUsage: boolean;
  #pending: Buffer | undefined;

  constructor(stripInjectedUsage: boolean) {
    this.#stripUsage = stripInjectedUsage;
  }

  /** Feed one upstream chunk; returns the bytes to send to the client now, if any. */
  push(chunk: Buffer): Buffer | undefined {
    const buf = this.#pending === undefined ? chunk : Buffer.concat([this.#pending, chunk]);
    const end = lastBoundary(buf);
    if (end === -1) {
      this.#pending = buf;
      return undefined;
    }
    let out = end === buf.length ? buf : buf.subarray(0, end);
    this.#pending = end === buf.length ? undefined : buf.subarray(end);
    if (hasUsageObject(out)) out = this.#takeUsage(out);
    if (!this.sawDone && out.indexOf(DONE) !== -1) this.sawDone = true;
    this.forwarded += out.length;
    return out.length === 0 ? undefined : out;
  }

  /** Whatever is left when the upstream ends (a final event without its blank line). */
  flush(): Buffer | undefined {
    const rest = this.#pending;
    this.#pending = undefined;
    if (rest === undefined || rest.length === 0) return undefined;
    let out = rest;
    if (hasUsageObject(out)) out = this.#takeUsage(out);
    if (!this.sawDone && out.indexOf(DONE) !== -1) this.sawDone = true;
    this.forwarded += out.length;
    return out.length === 0 ? undefined : out;
  }

  #takeUsage(buf: Buffer): Buffer {
    const text = buf.toString('utf8');
    const events = text.split(/(?<=\r?\n\r?\n)/);
    let dropped = false;
    const kept: string[] = [];
    for (const ev of events) {
      const data = dataOf(ev);
      if (data !== undefined && data.includes('"usage"')) {
        try {
          const j = JSON.parse(data) as { usage?: Usage | null; choices?: unknown[] };
          if (j.usage !== null && typeof j.usage === 'object') {
            this.usage = j.usage;
            if (this.#stripUsage && Array.isArray(j.choices) && j.choices.length === 0) {
              dropped = true;
              continue;
            }
          }
        } catch {
          // not JSON: forward untouched
        }
      }
      kept.push(ev);
    }
    return dropped ? Buffer.from(kept.join(''), 'utf8') : buf;
  }
}

function dataOf(event: string): string | undefined {
  let data: string | undefined;
  for (const line of event.split(/\r?\n/)) {
    if (line.startsWith('data:')) {
      const v = line.charCodeAt(5) === 0x20 ? line.slice(6) : line.slice(5);
      data = data === undefined ? v : `${data}\n${v}`;
    }
  }
  return data;
}

/** Splits an NDJSON byte stream into lines, carrying partial lines across chunks. */
export class LineSplitter {
  #pending = '';
  push(chunk: Buffer): string[] {
    const text = this.#pending + chunk.toString('utf8');
    const lines = text.split('\n');
    this.#pending = lines.pop() ?? '';
    return lines;
  }
  flush(): string {
    const rest = this.#pending;
    this.#pending = '';
    return rest;
  }
}

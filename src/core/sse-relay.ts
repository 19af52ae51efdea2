// Relays an engine's SSE stream to the client with as little per-chunk work as possible:
// complete events are forwarded as the bytes that arrived; a partial one is held until its
// blank line comes. Two things are parsed, and only when they occur:
//   - the first data event, once: the stream is committed to the client only when that is a
//     real chunk (or [DONE]), so an engine that answers 200 with garbage or with its error
//     event is an attempt failure the gateway can fall back from, not a stream it relays;
//   - a chunk that carries a usage object, to record usage and — when the client did not ask
//     for usage — to remove it (the usage-only event, or the usage key of a normal chunk).
// Comments before the first data event (`: ping` keep-alives) are dropped: they are not the
// first token. The closing `data: [DONE]` is recognised only as a whole event at the end of
// what arrived, never as text inside a token.
// Per chunk: one native search per line break (a single one for a chunk holding one event),
// one for a usage key, and a look at the last bytes. A native search for a Buffer needle costs
// ~100 ns of call overhead, and a needle starting with `"` several times that (measured on
// Node 24: 190 ns per one-event chunk here, against 660 ns for two boundary searches, a usage
// search and a [DONE] search).

import { StringDecoder } from 'node:string_decoder';
import type { Usage } from '../engines/types.ts';

const LF = 0x0a;
const CR = 0x0d;
const QUOTE = 0x22;
// Searched without its leading quote: `"` is everywhere in JSON and slows the native search
// down several times; the quote is checked after a hit.
const USAGE_KEY = Buffer.from('usage"');
const DONE_SPACED = Buffer.from('data: [DONE]');
const DONE_TIGHT = Buffer.from('data:[DONE]');
/** The closing event as the client receives it (and as the HTTP sink recognises it). */
const DONE_EVENT = Buffer.from('data: [DONE]\n\n');
const COLON = 0x3a;
/** A backend's key as bytes to look for in what it relays, and how text is rid of it. */
export interface BackendSecret {
  bytes: Buffer;
  redact: (text: string) => string;
}

/** An engine's error event (vLLM sends one mid-stream when generation fails, then [DONE]). */
const ERROR_EVENT = Buffer.from('data: {"error"');
/**
 * Longest event (or Ollama line) held while waiting for its end. Real chunks are a few hundred
 * bytes, a large tool call some kilobytes; a backend that sends bytes without ever ending an
 * event would otherwise grow the gateway's memory until a timeout ends the stream.
 */
export const MAX_EVENT_BYTES = 8 * 1024 * 1024;

function tooLong(): Error {
  return new Error(`sent more than ${MAX_EVENT_BYTES / 1024 / 1024} MiB without ending an event`);
}
const BRACE = 0x7b;
const BRACKET_CLOSE = 0x5d;
const BRACE_CLOSE = 0x7d;

function isWs(b: number): boolean {
  return b === 0x20 || b === 0x09 || b === LF || b === CR;
}

/** If the line ended by the LF at i is followed by a blank line (an event boundary), the index just past it; else -1. */
function boundaryAt(buf: Buffer, i: number): number {
  const next = buf[i + 1];
  if (next === LF) return i + 2;
  if (next === CR && buf[i + 2] === LF) return i + 3;
  return -1;
}

const NL_DATA = Buffer.from('\ndata:');

/**
 * Whether the event in buf[start, stop) has a data line (a keep-alive comment is no token). An
 * engine's event starts with it: one byte decides. Blank lines before it, or `id:`/`event:`
 * lines first, take a search within the event.
 */
function carriesData(buf: Buffer, start: number, stop: number): boolean {
  let b = buf[start];
  while ((b === LF || b === CR) && start < stop) b = buf[++start];
  if (start >= stop) return false; // blank lines only
  if (b === 0x64) return buf[start + 4] === COLON; // "data:"
  if (b === COLON) return false;
  const at = buf.indexOf(NL_DATA, start);
  return at !== -1 && at < stop;
}

/** Whether buf[end - needle.length, end) is needle: a byte loop, cheaper than Buffer#compare's call for 12 bytes. */
function endsWithAt(buf: Buffer, end: number, needle: Buffer): boolean {
  const start = end - needle.length;
  if (start < 0) return false;
  for (let k = 0; k < needle.length; k++) if (buf[start + k] !== needle[k]) return false;
  return true;
}

/**
 * Where buf's closing `data: [DONE]` event starts, if buf ends with one (trailing line breaks
 * aside), else -1. It must begin a line: JSON cannot hold a raw line break, so a token whose
 * text is "[DONE]" or "data: [DONE]" never matches. A normal chunk costs one byte comparison.
 */
function doneEventAt(buf: Buffer): number {
  let end = buf.length;
  while (end > 0 && (buf[end - 1] === LF || buf[end - 1] === CR)) end--;
  if (end === 0) return -1;
  // A chunk's JSON ends in `}`: one comparison for every normal chunk. Anything else may be
  // [DONE] followed by lines that carry no data (a comment, an id:), which are looked past.
  if (buf[end - 1] !== BRACKET_CLOSE) {
    if (buf[end - 1] === BRACE_CLOSE) return -1;
    end = beforeTrailingNonData(buf, end);
    if (end === 0 || buf[end - 1] !== BRACKET_CLOSE) return -1;
  }
  let start: number;
  if (endsWithAt(buf, end, DONE_SPACED)) start = end - DONE_SPACED.length;
  else if (endsWithAt(buf, end, DONE_TIGHT)) start = end - DONE_TIGHT.length;
  else return -1;
  return start === 0 || buf[start - 1] === LF || buf[start - 1] === CR ? start : -1;
}

/** The end of buf[0, end) once its last lines that carry no data (comments, id:, event:, retry:, blank) are set aside. */
function beforeTrailingNonData(buf: Buffer, end: number): number {
  for (;;) {
    while (end > 0 && (buf[end - 1] === LF || buf[end - 1] === CR)) end--;
    if (end === 0) return 0;
    const start = buf.lastIndexOf(LF, end - 1) + 1;
    const first = buf[start];
    const isData = first === 0x64 && buf[start + 1] === 0x61 && buf[start + 2] === 0x74 && buf[start + 3] === 0x61 && buf[start + 4] === COLON; // "data:"
    if (isData) return end;
    if (first !== COLON && first !== 0x69 && first !== 0x65 && first !== 0x72) return end; // ':', id:, event:, retry:
    end = start;
  }
}

/** True if some `"usage"` key in buf has an object value (not null). */
function hasUsageObject(buf: Buffer): boolean {
  let from = 0;
  for (;;) {
    const i = buf.indexOf(USAGE_KEY, from);
    if (i === -1) return false;
    from = i + USAGE_KEY.length;
    if (i === 0 || buf[i - 1] !== QUOTE) continue;
    let j = from;
    while (j < buf.length && isWs(buf[j]!)) j++;
    if (buf[j] === COLON) {
      j++;
      while (j < buf.length && isWs(buf[j]!)) j++;
      if (buf[j] === BRACE) return true;
    }
  }
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/**
 * The stream's first data event makes it unusable: not a chunk, or the engine's own error
 * event (vLLM: `{"error":{…}}`; some servers: `{"object":"error",…}`). Nothing has reached the
 * client: the attempt fails and the gateway may fall back.
 */
export class UnusableStart extends Error {
  /** The event's data as sent. */
  readonly data: string;
  /** The parsed event, when it was the engine's error event. */
  readonly errorEvent: Record<string, unknown> | undefined;
  constructor(message: string, data: string, errorEvent?: Record<string, unknown>) {
    super(message);
    this.data = data;
    this.errorEvent = errorEvent;
  }
}

function preview(s: string): string {
  return JSON.stringify(s.length > 120 ? `${s.slice(0, 120)}…` : s);
}

/** Checks the first data event; throws UnusableStart if the stream cannot be committed on it. */
function checkFirst(data: string): void {
  if (data.trim() === '[DONE]') return;
  let j: unknown;
  try {
    j = JSON.parse(data);
  } catch {
    throw new UnusableStart(`sent a first event that is not JSON: ${preview(data)}`, data);
  }
  if (!isObject(j)) throw new UnusableStart(`sent a first event that is not a JSON object: ${preview(data)}`, data);
  if ((j.error !== undefined && j.error !== null) || j.object === 'error') {
    throw new UnusableStart(`sent an error event instead of its first chunk: ${preview(data)}`, data, j);
  }
  if (!Array.isArray(j.choices)) throw new UnusableStart(`sent a first event that is not a completion chunk (no choices): ${preview(data)}`, data);
}

export class SseRelay {
  usage: Usage | undefined;
  /** The first data event has been checked: the stream may reach the client. */
  started = false;
  /** The closing `data: [DONE]` has been relayed: the stream is complete. */
  done = false;
  /** Events relayed (each of an engine's chunks is about one token): an estimate when no usage comes. */
  events = 0;
  /**
   * The engine's own error event, relayed after the stream started (it reaches the client as
   * sent): the stream failed though it ends with [DONE]. Looked for at the start of each relayed
   * block only (a byte comparison), where an engine's error arrives on its own.
   */
  engineError: string | undefined;
  readonly #stripUsage: boolean;
  readonly #logprobsRefusal: boolean;
  readonly #secret: BackendSecret | undefined;
  #pending: Buffer | undefined;
  /** Set by #scan: just past the last event boundary found. */
  #end = 0;
  /** Set by #scan: how many of the events it found carry data. */
  #data = 0;

  /**
   * stripUsage: the client did not ask for usage, so none reaches it. logprobsRefusal: a chat
   * stream with logprobs from an engine whose logprobs object has no `refusal` (vLLM's), which
   * OpenAI's chunk schema requires: it is added (only such streams pay for the look). secret:
   * the backend's own key, which an engine may quote (in an error event, say): an event that
   * holds it reaches the client redacted (only backends with a key pay for the look).
   */
  constructor(stripUsage: boolean, logprobsRefusal = false, secret?: BackendSecret) {
    this.#stripUsage = stripUsage;
    this.#logprobsRefusal = logprobsRefusal;
    this.#secret = secret;
  }

  /** Chunks relayed, [DONE] aside. */
  get dataEvents(): number {
    return this.done ? this.events - 1 : this.events;
  }

  /**
   * Feed one upstream chunk; returns the bytes to send to the client now, if any. Before the
   * stream has started, throws UnusableStart if its first data event is unusable.
   */
  push(chunk: Buffer): Buffer | undefined {
    const held = this.#pending;
    const buf = held === undefined ? chunk : Buffer.concat([held, chunk]);
    // Held bytes contain no boundary, though one may begin in their last two.
    const n = this.#scan(buf, held === undefined ? 0 : Math.max(0, held.length - 2), 0);
    const end = this.#end;
    if (n === 0) {
      if (buf.length > MAX_EVENT_BYTES) throw tooLong();
      this.#pending = buf;
      return undefined;
    }
    this.#pending = end === buf.length ? undefined : buf.subarray(end);
    if (this.started) return this.#relay(end === buf.length ? buf : buf.subarray(0, end));
    const from = this.#start(buf, end);
    if (from === -1) return undefined;
    this.#scan(buf, from, from);
    return this.#relay(buf.subarray(from, end));
  }

  /**
   * The upstream ended. What is left is an event without its blank line: a closing [DONE] is
   * finished and relayed; anything else is half an event, dropped so that the client's parser
   * never joins it to what the gateway writes next.
   */
  flush(): Buffer | undefined {
    const rest = this.#pending;
    this.#pending = undefined;
    if (rest === undefined || this.done || doneEventAt(rest) !== 0) return undefined;
    this.started = true;
    this.done = true;
    this.events++;
    return DONE_EVENT;
  }

  /**
   * Event boundaries in buf from `from` (the first event starts at `start`): their count, with
   * #end set just past the last and #data the number of those events that carry data (a
   * keep-alive comment is no token). A native search per line break (an engine's event is one
   * data line: two per event), so a chunk holding one event costs a single search.
   */
  #scan(buf: Buffer, from: number, start: number): number {
    let n = 0;
    let data = 0;
    let i = buf.indexOf(LF, from);
    while (i !== -1) {
      const stop = boundaryAt(buf, i);
      if (stop !== -1) {
        n++;
        if (carriesData(buf, start, stop)) data++;
        start = stop;
        this.#end = stop;
        i = stop - 1;
      }
      if (i + 1 >= buf.length) break;
      i = buf.indexOf(LF, i + 1);
    }
    this.#data = data;
    return n;
  }

  /** Before the start: where the first data event begins (it has been checked), or -1 if there is none yet. */
  #start(buf: Buffer, end: number): number {
    for (let at = 0; at < end;) {
      let stop = -1;
      for (let i = buf.indexOf(LF, at); i !== -1 && i < end && stop === -1; i = buf.indexOf(LF, i + 1)) stop = boundaryAt(buf, i);
      if (stop === -1) stop = end;
      const data = dataOf(buf.toString('utf8', at, stop));
      if (data !== undefined) {
        checkFirst(data);
        this.started = true;
        return at;
      }
      at = stop;
    }
    return -1;
  }

  /** Complete events, as #scan (just run over them) found them: to the client, usage taken out where it must be. */
  #relay(events: Buffer): Buffer | undefined {
    let out = events;
    if (out[8] === 0x65 && out[7] === QUOTE && this.engineError === undefined && endsWithAt(out, ERROR_EVENT.length, ERROR_EVENT)) this.engineError = engineErrorText(out);
    if (hasUsageObject(out)) out = this.#takeUsage(out);
    if (this.#logprobsRefusal && out.indexOf(LOGPROBS_CONTENT) !== -1) out = withLogprobsRefusal(out);
    if (this.#secret !== undefined && out.indexOf(this.#secret.bytes) !== -1) out = Buffer.from(this.#secret.redact(out.toString('utf8')), 'utf8');
    this.events += this.#data;
    const d = doneEventAt(out);
    if (d !== -1) {
      this.done = true;
      // The client receives the closing event in one spelling, which the HTTP layer recognises.
      if (out.length - d !== DONE_EVENT.length || out[d + 5] !== 0x20 || out[out.length - 2] !== LF) {
        out = d === 0 ? DONE_EVENT : Buffer.concat([out.subarray(0, d), DONE_EVENT]);
      }
    }
    return out.length === 0 ? undefined : out;
  }

  #takeUsage(buf: Buffer): Buffer {
    const text = buf.toString('utf8');
    const events = text.split(/(?<=\r?\n\r?\n)/);
    let changed = false;
    const kept: string[] = [];
    for (const ev of events) {
      const data = dataOf(ev);
      if (data !== undefined && data.includes('"usage"')) {
        try {
          const j = JSON.parse(data) as unknown;
          if (isObject(j) && isObject(j.usage)) {
            this.usage = j.usage as unknown as Usage;
            if (this.#stripUsage) {
              changed = true;
              // The usage-only event the gateway asked for goes; a chunk that carries usage
              // beside its choices (llama.cpp's last chunk, asked or not) loses only the key.
              if (Array.isArray(j.choices) && j.choices.length === 0) continue;
              delete j.usage;
              const json = JSON.stringify(j);
              const i = ev.indexOf(data);
              kept.push(i === -1 ? `data: ${json}\n\n` : ev.slice(0, i) + json + ev.slice(i + data.length));
              continue;
            }
          }
        } catch {
          // not JSON: forward untouched
        }
      }
      kept.push(ev);
    }
    return changed ? Buffer.from(kept.join(''), 'utf8') : buf;
  }
}

const LOGPROBS_OPEN = '"logprobs":{"content":';
const LOGPROBS_CONTENT = Buffer.from(LOGPROBS_OPEN);
const LOGPROBS_WITH_REFUSAL = '"logprobs":{"refusal":null,"content":';

/**
 * Each event whose logprobs object (as a compact JSON writer spells it) has no refusal gets
 * `"refusal":null` as its first key. An event that names a refusal anywhere is left alone (a
 * quote inside a JSON string is escaped, so text cannot look like either key).
 */
function withLogprobsRefusal(buf: Buffer): Buffer {
  const events = buf.toString('utf8').split(/(?<=\r?\n\r?\n)/);
  let changed = false;
  for (let i = 0; i < events.length; i++) {
    const ev = events[i]!;
    if (!ev.includes(LOGPROBS_OPEN) || ev.includes('"refusal"')) continue;
    events[i] = ev.replaceAll(LOGPROBS_OPEN, LOGPROBS_WITH_REFUSAL);
    changed = true;
  }
  return changed ? Buffer.from(events.join(''), 'utf8') : buf;
}

/** What an engine's error event says, for the log and the backend's health. */
function engineErrorText(buf: Buffer): string {
  const end = buf.indexOf(LF);
  const data = dataOf(buf.toString('utf8', 0, end === -1 ? buf.length : end)) ?? '';
  try {
    const j = JSON.parse(data) as { error?: { message?: unknown } | string };
    const m = typeof j.error === 'string' ? j.error : j.error?.message;
    if (typeof m === 'string') return `the engine sent an error event: ${m.slice(0, 300)}`;
  } catch {
    // fall through: not JSON
  }
  return `the engine sent an error event: ${data.slice(0, 300)}`;
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
  /** A character split between two reads is decoded once whole (chunk.toString would make two U+FFFD of it). */
  readonly #decoder = new StringDecoder('utf8');
  push(chunk: Buffer): string[] {
    const text = this.#pending + this.#decoder.write(chunk);
    const lines = text.split('\n');
    this.#pending = lines.pop() ?? '';
    if (this.#pending.length > MAX_EVENT_BYTES) throw tooLong();
    return lines;
  }
  flush(): string {
    const rest = this.#pending + this.#decoder.end();
    this.#pending = '';
    return rest;
  }
}

// OpenAI's audio endpoints, /v1/audio/transcriptions and /v1/audio/translations, toward a
// backend: the upload written anew for each one, with its model and the format the gateway asks
// for, and its answer written as the client asked. vLLM answers `text` with JSON and refuses
// `srt` and `vtt`, so the gateway asks every backend for JSON or verbose JSON and writes the
// client's format itself (subtitles from the segments).

import { AttemptError } from '../core/attempt-error.ts';
import type { EngineKind } from '../config/types.ts';
import type { AudioOperation, StreamTranslator, Usage } from './types.ts';

export const AUDIO_FORMATS = ['json', 'text', 'srt', 'verbose_json', 'vtt'] as const;
export type AudioFormat = typeof AUDIO_FORMATS[number];

/** A checked upload (src/http/audio.ts): what routing needs, and the parts to send on. */
export interface AudioRequest {
  op: AudioOperation;
  model: string;
  format: AudioFormat;
  /** The text as it is made, as OpenAI's transcript.text.delta events (json or text only). */
  stream: boolean;
  /** The client's boundary: it occurs in none of its parts, so the parts go on under it. */
  boundary: string;
  /** The parts sent on as they came (the file among them): all but those the gateway writes itself. */
  parts: ReadonlyArray<{ readonly name: string; readonly raw: Buffer }>;
  /** The audio file's size, for the log. */
  fileBytes: number;
  /** The body sent, by engine and model: an attempt on another backend of the same model sends the same bytes. */
  encoded?: Map<string, { body: readonly Buffer[]; contentType: string }>;
}

/** Fields the gateway writes into each backend's form itself. */
export const REWRITTEN_FIELDS: ReadonlySet<string> = new Set(['model', 'response_format', 'stream', 'stream_include_usage']);

/** An answer as the client gets it. */
export interface AudioAnswer {
  contentType: string;
  text: string;
  usage: Usage | undefined;
}

/**
 * What the gateway asks the backend for: JSON, or verbose JSON when the client wants segments.
 * A whole translation is always asked verbose: its JSON carries no usage, and the duration is
 * what whisper-1 bills by (only Whisper models translate, and every Whisper server answers
 * verbose). A stream is JSON (vLLM streams no verbose JSON).
 */
export function upstreamFormat(op: AudioOperation, f: AudioFormat, stream: boolean): 'json' | 'verbose_json' {
  if (stream) return 'json';
  return (f === 'json' || f === 'text') && op === 'transcriptions' ? 'json' : 'verbose_json';
}

/** The form for one backend: its model, the format the gateway reads, the client's other parts as sent (views of its body). */
export function upstreamBody(req: AudioRequest, model: string, engine: EngineKind): { body: readonly Buffer[]; contentType: string } {
  const memo = `${engine}\u0000${model}`;
  const done = req.encoded?.get(memo);
  if (done !== undefined) return done;
  const b = req.boundary;
  const fields: [string, string][] = [['model', model], ['response_format', upstreamFormat(req.op, req.format, req.stream)]];
  if (req.stream) {
    fields.push(['stream', 'true']);
    // vLLM reports a stream's usage only when asked, in a field of its own (OpenAI's API refuses unknown fields).
    if (engine === 'vllm') fields.push(['stream_include_usage', 'true']);
  }
  const chunks: Buffer[] = [];
  for (const [name, value] of fields) {
    // A model id holding the boundary would end the part early: no engine's does, but none is sent so.
    if (value.includes(b)) throw new AttemptError('malformed', `the model id ${JSON.stringify(value.slice(0, 80))} contains the upload's multipart boundary`);
    chunks.push(Buffer.from(`--${b}\r\nContent-Disposition: form-data; name="${name}"\r\n\r\n${value}\r\n`));
  }
  const open = Buffer.from(`--${b}\r\n`);
  for (const p of req.parts) chunks.push(open, p.raw, CRLF);
  chunks.push(Buffer.from(`--${b}--\r\n`));
  // Pieces, not joined: the file part is a view of the client's body, and copying 25 MiB would
  // fault in as much fresh memory (tens of milliseconds on the event loop here).
  const out = { body: chunks as readonly Buffer[], contentType: `multipart/form-data; boundary=${b}` };
  (req.encoded ??= new Map()).set(memo, out);
  return out;
}

const CRLF = Buffer.from('\r\n');

const isObj = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** A backend's JSON answer as the client asked for it; an answer without its text is the backend's failure (malformed). */
export function audioAnswer(op: AudioOperation, format: AudioFormat, json: unknown, status: number): AudioAnswer {
  if (!isObj(json) || typeof json.text !== 'string') throw new AttemptError('malformed', `answered ${status} with JSON that is not a ${op.slice(0, -1)}`, status);
  // vLLM writes a verbose answer's duration as a string ("4.07"); OpenAI's clients read a number.
  const d = typeof json.duration === 'string' ? Number(json.duration) : json.duration;
  const duration = typeof d === 'number' && Number.isFinite(d) && d >= 0 ? d : undefined;
  // The audio's length counts where tokens do not (whisper-1 bills by the minute).
  const usage = usageOf(json.usage) ?? (duration === undefined ? undefined : { prompt_tokens: 0, completion_tokens: 0, total_tokens: 0, audio_seconds: duration });
  if (format === 'json') return { contentType: JSON_TYPE, text: JSON.stringify(duration === undefined ? json : { text: json.text }), usage };
  if (format === 'text') return { contentType: TEXT_TYPE, text: json.text, usage };
  // vLLM's `words` are null (OpenAI's, when asked for, a list) and its segments' no_speech_prob
  // too: Whisper's probability that a segment is silence, which vLLM does not compute, given as
  // 0 (OpenAI's schema wants a number).
  const verbose: Record<string, unknown> = { ...json, ...(duration === undefined ? {} : { duration }) };
  if (verbose.words === null) delete verbose.words;
  if (Array.isArray(verbose.segments)) verbose.segments = verbose.segments.map((g: unknown) => (isObj(g) && g.no_speech_prob === null ? { ...g, no_speech_prob: 0 } : g));
  // OpenAI's verbose transcription says what was billed: the audio's length (vLLM leaves it out).
  if (op === 'transcriptions' && verbose.usage === undefined && typeof verbose.duration === 'number') verbose.usage = { type: 'duration', seconds: Math.ceil(verbose.duration) };
  if (format === 'verbose_json') return { contentType: JSON_TYPE, text: JSON.stringify(verbose), usage };
  return { contentType: format === 'srt' ? TEXT_TYPE : VTT_TYPE, text: subtitles(format, cues(verbose)), usage };
}

/** Subtitles: numbered SRT cues, or a WebVTT file. */
export function subtitles(format: 'srt' | 'vtt', cues: readonly Cue[]): string {
  return format === 'srt'
    ? cues.map((c, i) => `${i + 1}\n${stamp(c.start, ',')} --> ${stamp(c.end, ',')}\n${c.text}\n`).join('\n')
    : `WEBVTT\n\n${cues.map((c) => `${stamp(c.start, '.')} --> ${stamp(c.end, '.')}\n${c.text}\n`).join('\n')}`;
}

const JSON_TYPE = 'application/json';
const TEXT_TYPE = 'text/plain; charset=utf-8';
const VTT_TYPE = 'text/vtt; charset=utf-8';

/** Token usage (gpt-4o-transcribe's) as the gateway counts it; a duration (Whisper's) counts no tokens. */
function usageOf(u: unknown): Usage | undefined {
  if (!isObj(u)) return undefined;
  if (u.type === 'tokens' && typeof u.input_tokens === 'number' && typeof u.output_tokens === 'number') {
    return { prompt_tokens: u.input_tokens, completion_tokens: u.output_tokens, total_tokens: u.input_tokens + u.output_tokens };
  }
  if (u.type === 'duration') return { prompt_tokens: 0, completion_tokens: 0, total_tokens: 0, ...(typeof u.seconds === 'number' && u.seconds >= 0 ? { audio_seconds: u.seconds } : {}) };
  return undefined;
}

export interface Cue { start: number; end: number; text: string }

/** The answer's segments as subtitle cues; one cue for the whole text when it has none. */
function cues(v: Record<string, unknown>): Cue[] {
  const out: Cue[] = [];
  if (Array.isArray(v.segments)) {
    for (const s of v.segments) {
      if (!isObj(s) || typeof s.text !== 'string' || typeof s.start !== 'number' || typeof s.end !== 'number') continue;
      out.push({ start: s.start, end: s.end, text: s.text.trim() });
    }
  }
  if (out.length === 0 && typeof v.text === 'string' && v.text.trim() !== '') {
    out.push({ start: 0, end: typeof v.duration === 'number' ? v.duration : 0, text: v.text.trim() });
  }
  return out;
}

/** 3725.5 s → 01:02:05,500 (SRT) or 01:02:05.500 (WebVTT). */
function stamp(seconds: number, sep: ',' | '.'): string {
  const ms = Math.max(0, Math.round(seconds * 1000));
  const p = (n: number, w = 2): string => String(n).padStart(w, '0');
  return `${p(Math.floor(ms / 3_600_000))}:${p(Math.floor(ms / 60_000) % 60)}:${p(Math.floor(ms / 1000) % 60)}${sep}${p(ms % 1000, 3)}`;
}

const MAX_WHOLE_ANSWER = 1 << 20;
const event = (e: Record<string, unknown>): string => `data: ${JSON.stringify(e)}\n\n`;

/**
 * A backend's audio stream as OpenAI's events: transcript.text.delta for each piece of text,
 * transcript.text.done with the whole text (and usage in tokens, when the engine gave it) at the
 * end. vLLM streams chat-like `transcription.chunk` objects, then [DONE]; OpenAI's own events
 * pass as they are; a server that answers the stream request whole (OpenAI's whisper-1 does)
 * gives one delta and the end.
 */
export class AudioStreamTranslator implements StreamTranslator {
  #text = '';
  #usage: Usage | undefined;
  #done = false;
  /** Lines of a whole JSON answer, read once the upstream ends. */
  #whole = '';

  line(raw: string): string {
    const line = raw.endsWith('\r') ? raw.slice(0, -1) : raw;
    if (this.#done || line === '' || line.startsWith(':') || /^(event|id|retry):/.test(line)) return '';
    if (!line.startsWith('data:')) return this.#wholeAnswer(line);
    const data = line.slice(5).trim();
    if (data === '[DONE]') return this.#finish();
    let ev: unknown;
    try {
      ev = JSON.parse(data);
    } catch {
      throw new Error(`a stream event is not JSON: ${data.slice(0, 100)}`);
    }
    if (!isObj(ev)) throw new Error(`a stream event is not an object: ${data.slice(0, 100)}`);
    if (ev.error !== undefined) {
      const e = ev.error;
      throw new Error(`the engine sent an error event: ${isObj(e) && typeof e.message === 'string' ? e.message : JSON.stringify(e).slice(0, 200)}`);
    }
    if (typeof ev.type === 'string' && ev.type.startsWith('transcript.text.')) {
      if (ev.type === 'transcript.text.delta' && typeof ev.delta === 'string') this.#text += ev.delta;
      if (ev.type === 'transcript.text.done') {
        this.#done = true;
        this.#usage = usageOf(ev.usage) ?? this.#usage;
        // Written as the gateway writes its own: the closing event, held until the usage record is spooled, is found by its start.
        const { type: _, ...rest } = ev;
        return event({ type: 'transcript.text.done', ...rest });
      }
      return `data: ${data}\n\n`;
    }
    if (!Array.isArray(ev.choices)) throw new Error(`a stream event that is no transcription chunk: ${data.slice(0, 100)}`);
    // vLLM's usage chunk (stream_include_usage): counted in tokens, its prompt the audio's.
    if (isObj(ev.usage) && typeof ev.usage.prompt_tokens === 'number' && typeof ev.usage.completion_tokens === 'number') {
      this.#usage = { prompt_tokens: ev.usage.prompt_tokens, completion_tokens: ev.usage.completion_tokens, total_tokens: ev.usage.prompt_tokens + ev.usage.completion_tokens };
    }
    let out = '';
    for (const c of ev.choices) {
      const delta = isObj(c) && isObj(c.delta) ? c.delta.content : undefined;
      if (typeof delta === 'string' && delta !== '') {
        this.#text += delta;
        out += event({ type: 'transcript.text.delta', delta });
      }
    }
    return out;
  }

  /** A line of a whole JSON answer: kept, and read once the upstream ends (end()). */
  #wholeAnswer(line: string): string {
    if (this.#whole === '' && !line.trimStart().startsWith('{')) throw new Error(`the backend answered neither a stream nor JSON: ${line.slice(0, 100)}`);
    if (this.#whole.length + line.length > MAX_WHOLE_ANSWER) throw new Error('the backend answered neither a stream nor JSON of a size a transcription has');
    this.#whole += `${line}\n`;
    return '';
  }

  end(): string {
    if (this.#done || this.#whole === '') return '';
    let whole: unknown;
    try {
      whole = JSON.parse(this.#whole);
    } catch {
      throw new Error(`the backend answered neither a stream nor JSON: ${this.#whole.slice(0, 100)}`);
    }
    if (!isObj(whole) || typeof whole.text !== 'string') throw new Error(`the backend answered JSON that is not a transcription: ${this.#whole.slice(0, 100)}`);
    this.#text = whole.text;
    this.#usage = usageOf(whole.usage) ?? this.#usage;
    return (whole.text === '' ? '' : event({ type: 'transcript.text.delta', delta: whole.text })) + this.#finish();
  }

  #finish(): string {
    this.#done = true;
    const u = this.#usage;
    // OpenAI's done event reports tokens; a duration (whisper-1's) is kept for billing, not sent as tokens.
    return event({
      type: 'transcript.text.done', text: this.#text,
      ...(u === undefined || u.total_tokens === 0 ? {} : { usage: { type: 'tokens', input_tokens: u.prompt_tokens, output_tokens: u.completion_tokens, total_tokens: u.total_tokens } }),
    });
  }

  usage(): Usage | undefined {
    return this.#usage;
  }

  done(): boolean {
    return this.#done;
  }
}

// Counts prompt tokens for routing rules ("input over 12,000 tokens goes to openai/strong")
// with a real BPE tokenizer (o200k_base, OpenAI's), not characters. A byte-level BPE token
// covers at least one byte, so a prompt of fewer UTF-8 bytes than the threshold is under it
// without tokenizing: long prompts are rare and only they pay for the count.

//
// What a count may cost is bounded, since any client can send the text. BPE merging is quadratic
// in the length of one pre-tokenized piece, and a run of one letter (or of spaces, or of
// punctuation) is one piece: 1 MB of "a" took minutes and froze the event loop. So the text is
// counted in segments: a run of RUN characters without a break between spaces and the rest is
// cut there, and long text is cut before a space every SEGMENT characters. A cut can add one
// token (the pieces on either side no longer merge): under 1% for text without spaces (CJK,
// minified code), nothing for prose. Between segments the count gives the event loop its turn
// every few milliseconds, and it stops as soon as the limit is passed. The tokenizer's cache of
// merged pieces is emptied after each count: its keys can be slices that keep a whole prompt alive.

import { BYTES_PER_TOKEN } from './estimate.ts';

type Encoding = typeof import('gpt-tokenizer/encoding/o200k_base');

const PER_MESSAGE_OVERHEAD = 4;

/** A client's "<|endoftext|>" is text to count, not a special token (the tokenizer would throw). */
const AS_TEXT = { disallowedSpecial: new Set<string>() };

/** The longest run of spaces, or of anything else, merged as one piece (256 random letters cost 0.2 ms). */
const RUN = 256;
/** Text is cut before the next space past this many characters, so that the loop can be yielded between. */
const SEGMENT = 16_384;
/** The longest the count holds the event loop before yielding it (ms). */
const SLICE_MS = 5;

/** Whitespace as the tokenizer's pattern reads \s. */
function isSpace(c: number): boolean {
  return c === 32 || (c >= 9 && c <= 13) || (c >= 0x80 && (c === 0x85 || c === 0xa0 || c === 0x1680 || (c >= 0x2000 && c <= 0x200a) || c === 0x2028 || c === 0x2029 || c === 0x202f || c === 0x205f || c === 0x3000 || c === 0xfeff));
}

/** The text in segments whose BPE cost stays linear: cut inside runs of RUN characters, and before a space past SEGMENT. */
export function* segments(text: string): Generator<string> {
  let start = 0;
  let runStart = 0;
  let space = text.length > 0 && isSpace(text.charCodeAt(0));
  for (let i = 1; i < text.length; i++) {
    const s = isSpace(text.charCodeAt(i));
    if (s !== space) {
      space = s;
      runStart = i;
      // Before a space: " word" stays whole, the token prose is made of.
      if (s && i - start >= SEGMENT) {
        yield text.slice(start, i);
        start = i;
      }
    } else if (i - runStart >= RUN && !((text.charCodeAt(i) & 0xfc00) === 0xdc00 && (text.charCodeAt(i - 1) & 0xfc00) === 0xd800)) {
      // Never between the halves of one character (an emoji): one position on, then. A lone
      // half is no character, and is cut like any other.
      yield text.slice(start, i);
      start = runStart = i;
    }
  }
  if (start < text.length) yield text.slice(start);
}

const turn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

export class TokenCounter {
  #enc: Promise<Encoding> | undefined;
  #ready = false;

  /** Loading the tokenizer takes a few hundred ms and some 70 MiB: do it at start when rules need it. */
  preload(): void {
    this.#enc ??= import('gpt-tokenizer/encoding/o200k_base').then((e) => { this.#ready = true; return e; });
  }

  /** Whether the tokenizer is loaded: counting costs no load. */
  get ready(): boolean {
    return this.#ready;
  }

  /** The prompt's texts (message contents, text parts, tool arguments, or completion prompt). */
  static texts(body: Record<string, unknown>): string[] {
    const out: string[] = [];
    const messages = body.messages;
    if (Array.isArray(messages)) {
      for (const m of messages) {
        if (typeof m !== 'object' || m === null) continue;
        const c = (m as { content?: unknown }).content;
        if (typeof c === 'string') out.push(c);
        else if (Array.isArray(c)) {
          for (const p of c) if (typeof p === 'object' && p !== null && typeof (p as { text?: unknown }).text === 'string') out.push((p as { text: string }).text);
        }
        // An assistant turn's calls: their arguments (a file an agent wrote, say) are prompt too.
        const calls = (m as { tool_calls?: unknown }).tool_calls;
        if (Array.isArray(calls)) {
          for (const tc of calls) {
            const args = (tc as { function?: { arguments?: unknown } } | null)?.function?.arguments;
            if (typeof args === 'string') out.push(args);
          }
        }
      }
    }
    const prompt = body.prompt;
    if (typeof prompt === 'string') out.push(prompt);
    else if (Array.isArray(prompt)) for (const p of prompt) if (typeof p === 'string') out.push(p);
    if (Array.isArray(body.tools)) out.push(JSON.stringify(body.tools));
    return out;
  }

  /** Whether the prompt is over `limit` tokens. */
  async exceeds(body: Record<string, unknown>, limit: number): Promise<boolean> {
    const texts = TokenCounter.texts(body);
    const overhead = Array.isArray(body.messages) ? body.messages.length * PER_MESSAGE_OVERHEAD : 0;
    let bytes = overhead;
    for (const t of texts) bytes += Buffer.byteLength(t, 'utf8');
    if (bytes <= limit) return false;
    return (await this.#count(texts, Math.max(0, limit - overhead))) === undefined;
  }

  /**
   * Embeddings and reranking: whether any one text the model reads at once is over `limit`
   * tokens. Each input is embedded on its own (a token-id list counts its length), and a reranker
   * reads the query beside each document in turn: a batch's sum says nothing of the window.
   */
  async anyOver(body: Record<string, unknown>, limit: number): Promise<boolean> {
    const long: string[] = [];
    const text = (t: string): void => { if (Buffer.byteLength(t, 'utf8') > limit) long.push(t); };
    const input = body.input;
    if (typeof input === 'string') text(input);
    else if (Array.isArray(input)) {
      if (input.length > limit && typeof input[0] === 'number') return true;
      for (const x of input) {
        if (typeof x === 'string') text(x);
        else if (Array.isArray(x) && x.length > limit) return true;
      }
    }
    const query = body.query;
    if (typeof query === 'string' && Array.isArray(body.documents)) {
      for (const d of body.documents) if (typeof d === 'string') text(`${query}\n${d}`);
    }
    for (const t of long) if ((await this.#count([t], limit)) === undefined) return true;
    return false;
  }

  async count(body: Record<string, unknown>): Promise<number> {
    const overhead = Array.isArray(body.messages) ? body.messages.length * PER_MESSAGE_OVERHEAD : 0;
    return (await this.#count(TokenCounter.texts(body), Infinity))! + overhead;
  }

  /**
   * The prompt's tokens, counted up to `exact`; past it, estimated by bytes (BYTES_PER_TOKEN a
   * token, never fewer than `exact`): what a count costs is bounded by `exact`, not by the body
   * limit, where any caller may ask for it.
   */
  async estimate(body: Record<string, unknown>, exact: number): Promise<number> {
    const overhead = Array.isArray(body.messages) ? body.messages.length * PER_MESSAGE_OVERHEAD : 0;
    const texts = TokenCounter.texts(body);
    const n = await this.#count(texts, exact);
    if (n !== undefined) return n + overhead;
    let bytes = 0;
    for (const t of texts) bytes += Buffer.byteLength(t, 'utf8');
    return Math.max(exact, Math.ceil(bytes / BYTES_PER_TOKEN)) + overhead;
  }

  /** The tokens of the texts (joined by newlines), or undefined as soon as they pass `limit`. */
  async #count(texts: string[], limit: number): Promise<number | undefined> {
    this.preload();
    const enc = await this.#enc!;
    let total = 0;
    let since = performance.now();
    try {
      for (const segment of segments(texts.join('\n'))) {
        const n = enc.isWithinTokenLimit(segment, limit - total, AS_TEXT);
        if (n === false) return undefined;
        total += n;
        if (performance.now() - since > SLICE_MS) {
          await turn();
          since = performance.now();
        }
      }
      return total;
    } finally {
      enc.clearMergeCache();
    }
  }
}

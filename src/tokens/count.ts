// Counts prompt tokens for routing rules ("input over 12,000 tokens goes to openai/strong")
// with a real BPE tokenizer (o200k_base, OpenAI's), not characters. A byte-level BPE token
// covers at least one byte, so a prompt of fewer UTF-8 bytes than the threshold is under it
// without tokenizing: long prompts are rare and only they pay for the count.

type Encoding = typeof import('gpt-tokenizer/encoding/o200k_base');

const PER_MESSAGE_OVERHEAD = 4;

/** A client's "<|endoftext|>" is text to count, not a special token (the tokenizer would throw). */
const AS_TEXT = { disallowedSpecial: new Set<string>() };

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
    this.preload();
    const enc = await this.#enc!;
    const within = enc.isWithinTokenLimit(texts.join('\n'), Math.max(0, limit - overhead), AS_TEXT);
    return within === false;
  }

  async count(body: Record<string, unknown>): Promise<number> {
    this.preload();
    const enc = await this.#enc!;
    const overhead = Array.isArray(body.messages) ? body.messages.length * PER_MESSAGE_OVERHEAD : 0;
    return enc.countTokens(TokenCounter.texts(body).join('\n'), AS_TEXT) + overhead;
  }
}

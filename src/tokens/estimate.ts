// Tokens the gateway estimates where a backend reports none, without a tokenizer (loading one
// costs some 70 MiB): about four UTF-8 bytes a token, for the prompt (src/accounting/account.ts)
// and for a whole answer's text alike. A stream's answer is estimated by its chunks instead,
// about one token each (src/core/stream-attempt.ts).

/** UTF-8 bytes per token in English text with a BPE vocabulary: what estimates divide by. */
export const BYTES_PER_TOKEN = 4;

function utf8(v: unknown): number {
  return typeof v === 'string' ? Buffer.byteLength(v, 'utf8') : 0;
}

/**
 * The completion tokens of a chat or legacy completion answer, from what every choice generated:
 * its text or content, reasoning, refusal and tool calls (names and arguments).
 */
export function answerTokensEstimate(response: Record<string, unknown>): number {
  const choices = response.choices;
  if (!Array.isArray(choices)) return 0;
  let bytes = 0;
  for (const c of choices) {
    if (typeof c !== 'object' || c === null) continue;
    const choice = c as { text?: unknown; message?: unknown };
    bytes += utf8(choice.text);
    const m = choice.message;
    if (typeof m !== 'object' || m === null) continue;
    const msg = m as { content?: unknown; reasoning_content?: unknown; reasoning?: unknown; refusal?: unknown; tool_calls?: unknown };
    bytes += utf8(msg.content) + utf8(msg.reasoning_content ?? msg.reasoning) + utf8(msg.refusal);
    if (Array.isArray(msg.tool_calls)) {
      for (const tc of msg.tool_calls) {
        const fn = typeof tc === 'object' && tc !== null ? (tc as { function?: { name?: unknown; arguments?: unknown } }).function : undefined;
        if (fn !== undefined && fn !== null) bytes += utf8(fn.name) + utf8(fn.arguments);
      }
    }
  }
  return Math.ceil(bytes / BYTES_PER_TOKEN);
}

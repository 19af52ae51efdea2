// What reads as a credential in text the gateway did not write (an engine's error body, a
// logged request body): taken out before the text reaches a client, /health or a log.

/** API keys, bearer tokens, and JSON fields named like secrets (the field's quotes kept). */
export const KEY_PATTERNS: readonly RegExp[] = [
  /\bsk-[A-Za-z0-9_-]{12,}/g,
  /\bBearer\s+[A-Za-z0-9._~+/=-]{8,}/gi,
  /("(?:api[_-]?key|apikey|password|passwd|secret|token|access_token|refresh_token|authorization)"\s*:\s*")(?:[^"\\]|\\.)*(")/gi,
];

/** text with each of `known` (secret values) and whatever `patterns` match replaced by [redacted]. */
export function redact(text: string, known: readonly string[] = [], patterns: readonly RegExp[] = KEY_PATTERNS): string {
  let s = text;
  for (const k of known) if (k.length >= 4 && s.includes(k)) s = s.split(k).join('[redacted]');
  for (const re of patterns) {
    re.lastIndex = 0;
    s = s.replace(re, (m: string, open?: string, close?: string) => (typeof open === 'string' && typeof close === 'string' && m.startsWith(open) ? `${open}[redacted]${close}` : '[redacted]'));
  }
  return s;
}

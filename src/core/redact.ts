// What reads as a credential in text the gateway did not write (an engine's error body, a
// logged request body): taken out before the text reaches a client, /health or a log.

/** API keys, bearer tokens, and JSON fields named like secrets (the field's quotes kept). */
export const KEY_PATTERNS: readonly RegExp[] = [
  /\bsk-[A-Za-z0-9_-]{12,}/g,
  /\bBearer\s+[A-Za-z0-9._~+/=-]{8,}/gi,
  /("(?:api[_-]?key|apikey|password|passwd|secret|token|access_token|refresh_token|authorization)"\s*:\s*")(?:[^"\\]|\\.)*(")/gi,
];

/** How much of a known secret's start, quoted alone (an echo cut short: "key abc…"), is taken for it. */
const KNOWN_PREFIX = 12;

/** s with every run of 12 or more of the secret's first characters replaced (a secret of 16 or more). */
function withoutPrefixes(s: string, k: string): string {
  if (k.length < 16) return s;
  const head = k.slice(0, KNOWN_PREFIX);
  let at = s.indexOf(head);
  if (at === -1) return s;
  let out = '';
  let from = 0;
  while (at !== -1) {
    let end = at + KNOWN_PREFIX;
    while (end < s.length && end - at < k.length && s[end] === k[end - at]) end++;
    out += `${s.slice(from, at)}[redacted]`;
    from = end;
    at = s.indexOf(head, end);
  }
  return out + s.slice(from);
}

/** text with each of `known` (secret values, and their starts quoted alone) and whatever `patterns` match replaced by [redacted]. */
export function redact(text: string, known: readonly string[] = [], patterns: readonly RegExp[] = KEY_PATTERNS): string {
  let s = text;
  for (const k of known) {
    if (k.length >= 4 && s.includes(k)) s = s.split(k).join('[redacted]');
    s = withoutPrefixes(s, k);
  }
  for (const re of patterns) {
    re.lastIndex = 0;
    s = s.replace(re, (m: string, open?: string, close?: string) => (typeof open === 'string' && typeof close === 'string' && m.startsWith(open) ? `${open}[redacted]${close}` : '[redacted]'));
  }
  return s;
}

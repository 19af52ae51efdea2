// Whether a backend is a cloud API billed per token: one rule for smoke checks (never bill
// unless asked), health reports and the price table's warnings.

import type { BackendConfig } from './types.ts';

const PRIVATE_V4 = [/^127\./, /^10\./, /^192\.168\./, /^172\.(1[6-9]|2\d|3[01])\./, /^169\.254\./, /^100\.(6[4-9]|[7-9]\d|1[01]\d|12[0-7])\./];
const PRIVATE_SUFFIX = ['.local', '.lan', '.internal', '.home.arpa', '.ts.net', '.localhost'];

/** A host on the public internet (as opposed to loopback, a LAN, a tailnet or a bare machine name). */
function isPublicHost(hostname: string): boolean {
  const h = hostname.replace(/^\[|\]$/g, '').toLowerCase();
  if (h === 'localhost' || h === '::1' || h.startsWith('fc') || h.startsWith('fd') || h.startsWith('fe80')) return false;
  if (PRIVATE_V4.some((re) => re.test(h))) return false;
  if (!h.includes('.') && !h.includes(':')) return false;
  return !PRIVATE_SUFFIX.some((s) => h.endsWith(s));
}

/** Billed per token: OpenAI itself, or an OpenAI-compatible API on a public host; `cloud:` in the config decides when set. Self-hosted engines never are. */
export function isCloud(b: BackendConfig): boolean {
  if (b.cloud !== undefined) return b.cloud;
  if (b.simulated) return false;
  if (b.engine === 'openai') return true;
  return b.engine === 'openai-compatible' && isPublicHost(new URL(b.url).hostname);
}

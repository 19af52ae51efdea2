// HTTP/1.1 grammar both of the gateway's own HTTP parsers use: the client for backends
// (h1-pool.ts) and the server's fast lane (src/http/fast-lane.ts).

/** A header name (RFC 9110 token). */
export const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;

/** Where toLowerCase() may change something: capitals, and anything past ASCII and Latin-1's symbols. */
const MAYBE_UPPER = /[A-Z\xc0-\uffff]/;

/**
 * s.toLowerCase(), but s itself when nothing in it has a lower case: toLowerCase() copies even a
 * string that is in lower case already, as header names nearly always are (a few strings fewer
 * to collect per request).
 */
export function toLower(s: string): string {
  return MAYBE_UPPER.test(s) ? s.toLowerCase() : s;
}

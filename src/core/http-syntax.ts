// HTTP/1.1 grammar both of the gateway's own HTTP parsers use: the client for backends
// (h1-pool.ts) and the server's fast lane (src/http/fast-lane.ts).

/** A header name (RFC 9110 token). */
export const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;

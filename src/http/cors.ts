// Cross-origin requests from browsers (gateway.cors): web apps on another origin may call the
// gateway when their origin is listed. Off by default: without it browsers refuse to show a
// page's scripts the gateway's answers. A request without an Origin header (every request but
// a browser's) gets only the server's Vary: Origin.

import type { IncomingHttpHeaders } from 'node:http';
import { isIP } from 'node:net';
import { hostname } from 'node:os';
import { FabricError } from '../core/errors.ts';

/** What a page's scripts may read of an answer besides the basic headers (an SDK in the page reads retry-after and x-should-retry; Anthropic's, request-id). */
const EXPOSED = 'x-request-id, x-client-request-id, x-fabric-role, x-fabric-backend, x-fabric-attempts, x-fabric-rerouted, x-fabric-simulated, x-fabric-budget-exceeded, retry-after, x-should-retry, request-id';
/** The headers clients send (the SDKs add their x-stainless-* and openai-* ones). */
const HEADER_LIST = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+(?:\s*,\s*[!#$%&'*+.^_`|~0-9A-Za-z-]+)*$/;
const PREFLIGHT_MAX_AGE = '600';

/** The origin of a request when it is allowed, else undefined. */
export function allowedOrigin(headers: IncomingHttpHeaders, allowed: ReadonlySet<string> | '*' | undefined): string | undefined {
  if (allowed === undefined) return undefined;
  const origin = headers.origin;
  if (origin === undefined) return undefined;
  return allowed === '*' || allowed.has(origin.toLowerCase()) ? origin : undefined;
}

/** Headers every answer to an allowed origin carries. */
export function corsHeaders(h: string[], origin: string): string[] {
  h.push('access-control-allow-origin', origin, 'access-control-expose-headers', EXPOSED, 'vary', 'origin');
  return h;
}

/** What a preflight's answer adds to corsHeaders(): the methods and headers allowed, for how long. */
export function preflightHeaders(headers: IncomingHttpHeaders): string[] {
  const asked = headers['access-control-request-headers'];
  const allowHeaders = typeof asked === 'string' && HEADER_LIST.test(asked) ? asked : 'authorization, content-type';
  return [
    'access-control-allow-methods', 'GET, HEAD, POST, OPTIONS',
    'access-control-allow-headers', allowHeaders,
    'access-control-max-age', PREFLIGHT_MAX_AGE,
    'vary', 'access-control-request-headers',
  ];
}

/** A browser asking whether it may send a request (OPTIONS with Access-Control-Request-Method). */
export function isPreflight(method: string, headers: IncomingHttpHeaders): boolean {
  return method === 'OPTIONS' && headers.origin !== undefined && headers['access-control-request-method'] !== undefined;
}

// An open gateway (no master key) and web pages. A page on any site can make its visitor's
// browser send the gateway a request it cannot read the answer of (a "simple" POST, its body
// sent as text/plain, needs no preflight), and, by DNS rebinding (its own name pointed at the
// gateway's address), requests it can read. Without a key to stop them, the gateway refuses a
// request addressed to a public name (one a site could point at it), and a browser's request
// from an origin it does not list (but for its own).

/** Whether an Origin is the gateway itself, as the Host header names it (a page it served). */
function isSameOrigin(origin: string, host: string | undefined): boolean {
  if (host === undefined) return false;
  const at = origin.indexOf('://');
  return at !== -1 && origin.slice(at + 3).toLowerCase() === host.toLowerCase();
}

const THIS_MACHINE = hostname().toLowerCase();
/** Names no public DNS gives out, so no site can point one of its own at the gateway. */
const PRIVATE_SUFFIXES = ['.localhost', '.local', '.internal', '.lan', '.home.arpa', '.localdomain'];

/**
 * Whether a Host header names the gateway as no rebinding page can: localhost, an IP address,
 * this machine's host name, a name of one label (a container's service name, a LAN host) or
 * one under a private suffix (.local, .internal, .lan, .home.arpa, a cluster's .svc.cluster.local).
 */
function isLocalHostHeader(host: string): boolean {
  let name = host.toLowerCase();
  if (name.startsWith('[')) name = name.slice(1, name.indexOf(']') === -1 ? undefined : name.indexOf(']'));
  else if (name.indexOf(':') !== name.lastIndexOf(':')) return isIP(name) === 6;
  else if (name.includes(':')) name = name.slice(0, name.indexOf(':'));
  // A fully qualified name may end with a dot (localhost.).
  if (name.endsWith('.')) name = name.slice(0, -1);
  return !name.includes('.') || isIP(name) !== 0 || name === THIS_MACHINE || PRIVATE_SUFFIXES.some((s) => name.endsWith(s));
}

/** The checks, for a gateway without a master key; it remembers the last Host that passed (most requests repeat it). */
export class OpenGatewayGuard {
  #localHost: string | undefined;

  /** Throws a 403 for a request addressed to a public name, or from an origin neither listed nor the gateway's own. */
  check(headers: IncomingHttpHeaders, corsOrigins: ReadonlySet<string> | '*' | undefined): void {
    const { origin, host } = headers;
    // First, however the gateway listens (a container binds 0.0.0.0 behind a port published on
    // 127.0.0.1): a same-origin request is then the gateway's own.
    if (host !== undefined && host !== this.#localHost) {
      if (!isLocalHostHeader(host)) {
        throw new FabricError('permission_denied', `requests addressed to ${JSON.stringify(host).slice(0, 200)} are refused: without a master key, the gateway answers only requests addressed to an IP address, localhost, this machine's name, a one-label name or a private one (.local, .internal, .lan, .home.arpa) (a site could otherwise reach it by DNS rebinding); set a master key, or have a proxy in front send its own Host`);
      }
      this.#localHost = host;
    }
    // "null" (file:// pages, sandboxed frames) could be any site's: never enough without a key.
    if (origin !== undefined && (origin === 'null' || allowedOrigin(headers, corsOrigins) === undefined) && !isSameOrigin(origin, host)) {
      throw new FabricError('permission_denied', `the origin ${JSON.stringify(origin).slice(0, 200)} is not allowed to call this gateway: without a master key, it answers web pages only from the origins gateway.cors.origins lists (any site could otherwise use it through its visitors' browsers)`);
    }
  }
}


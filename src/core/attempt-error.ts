// How one attempt against one backend failed, from a transport error or an upstream answer.
// The attempt loop decides from the class whether to retry, fall back, or stop.

import type { IncomingHttpHeaders } from 'node:http';
import type { BackendRuntime } from './backend.ts';
import type { FailureClass } from './errors.ts';
import { redact } from './redact.ts';

/** The code of an answer that breaks HTTP/1.1 (a bad status line, header, length or chunk): the backend's fault, not the connection's. */
export const BAD_RESPONSE = 'FABRIC_BAD_RESPONSE';
/** The code of an answer whose connection ended after its head and before its end. */
export const TRUNCATED = 'FABRIC_TRUNCATED';

export class AttemptError extends Error {
  readonly failure: FailureClass;
  readonly status: number | undefined;
  readonly retryAfter: string | undefined;
  /**
   * A 429 that waiting will not cure: the account's quota or credit is spent (OpenAI's
   * `insufficient_quota`). Not retried, and counted against the backend so that it cools down.
   */
  quotaSpent = false;
  /** The request field a refusal names (client errors), for the client's error. */
  param: string | undefined = undefined;
  /** The gateway's own machine failed the call (out of file descriptors or memory): no backend's fault. */
  local = false;
  constructor(failure: FailureClass, message: string, status?: number, retryAfter?: string) {
    super(message);
    this.failure = failure;
    this.status = status;
    this.retryAfter = retryAfter;
  }
}

/**
 * A backend whose engine cannot take the request as asked (Ollama has no `n`, no token-id
 * input): nothing is sent, the backend is not at fault, and the next one may serve it. When no
 * backend can, the request is a 400 naming `param`.
 */
export class Unsupported extends AttemptError {
  override readonly param: string;
  constructor(message: string, param: string) {
    super('unsupported', message);
    this.param = param;
  }
}

/** Bytes of an error answer kept to read the engine's message. */
export const MAX_ERROR_BODY = 64 * 1024;
/** A successful non-streamed answer larger than this is refused as unusable. */
export const MAX_RESPONSE_BODY = 256 * 1024 * 1024;

const NETWORK_CODES: Record<string, string> = {
  ECONNREFUSED: 'connection refused',
  ECONNRESET: 'connection reset',
  EHOSTUNREACH: 'host unreachable',
  ENETUNREACH: 'network unreachable',
  ENOTFOUND: 'host not found',
  EAI_AGAIN: 'DNS lookup failed',
  EPIPE: 'connection closed',
  UND_ERR_SOCKET: 'connection closed by the backend',
  UND_ERR_CLOSED: 'connection closed',
};

/** Transport errors of the gateway's own machine, not of the backend it was calling. */
const LOCAL_CODES = new Set(['EMFILE', 'ENFILE', 'ENOMEM', 'ENOBUFS']);

/** Whether a transport error's code is the gateway's own machine's (descriptors, memory), not the peer's. */
export function isLocalError(code: string | undefined): boolean {
  return code !== undefined && LOCAL_CODES.has(code);
}

/** A transport error's code (its own, or its cause's, as undici and fetch wrap them). */
export function errorCode(e: unknown): string | undefined {
  const err = e as { code?: unknown; cause?: { code?: unknown } } | null;
  return typeof err?.code === 'string' ? err.code : typeof err?.cause?.code === 'string' ? err.cause.code : undefined;
}

/** What a network error code means, in words, when it is one of the usual ones. */
export function networkErrorText(code: string | undefined): string | undefined {
  return code === undefined ? undefined : NETWORK_CODES[code];
}

/** A Retry-After value (seconds, or an HTTP date) as milliseconds from now; undefined when it is neither. */
export function retryAfterMs(value: string, now: number): number | undefined {
  const s = Number(value);
  if (value.trim() !== '' && Number.isFinite(s)) return s >= 0 ? s * 1000 : undefined;
  const at = Date.parse(value);
  return Number.isNaN(at) ? undefined : Math.max(0, at - now);
}

export function secs(ms: number): string {
  return ms >= 1000 ? `${+(ms / 1000).toFixed(1)}s` : `${ms}ms`;
}

/** A failure below HTTP: refused, reset, timed out. `timedOut` is the gateway's own deadline message, if that fired. */
export function transportError(backend: BackendRuntime, e: unknown, timedOut: string | undefined): AttemptError {
  if (timedOut !== undefined) return new AttemptError('timeout', timedOut);
  const code = errorCode(e);
  const t = backend.config.timeouts;
  if (code === 'UND_ERR_CONNECT_TIMEOUT') return new AttemptError('timeout', `connect timeout after ${secs(t.connectMs)}`);
  if (code === 'UND_ERR_HEADERS_TIMEOUT') return new AttemptError('timeout', `no response within the first-byte timeout (${secs(t.firstByteMs)})`);
  if (code === 'UND_ERR_BODY_TIMEOUT') return new AttemptError('timeout', `response stalled past the idle timeout (${secs(t.idleMs)})`);
  const message = (e as { message?: string } | null)?.message;
  if (code === 'FABRIC_RESPONSE_TOO_LARGE') return new AttemptError('malformed', message ?? 'response too large');
  // A broken answer (h1-pool's BAD_RESPONSE, undici's parser errors) or one cut off after its
  // head: the backend answered, and badly. Not retried on it, unlike a lost connection.
  if (code === BAD_RESPONSE || code?.startsWith('HPE_') === true) return new AttemptError('malformed', `sent a malformed HTTP answer: ${message ?? code}`);
  if (code === TRUNCATED) return new AttemptError('malformed', message ?? 'the answer was cut off');
  if (isLocalError(code)) {
    const local = new AttemptError('connect', `the gateway could not open a connection: ${code} (${code === 'EMFILE' || code === 'ENFILE' ? 'out of file descriptors: raise LimitNOFILE / ulimit -n' : 'out of memory or buffers'})`);
    local.local = true;
    return local;
  }
  return new AttemptError('connect', networkErrorText(code) ?? `request failed: ${code ?? message ?? 'unknown error'}`);
}

/** Text from a backend (an error body, an error event) without its own key or anything that reads as a key. */
export function withoutKeys(backend: BackendRuntime, text: string): string {
  return backend.secret === undefined ? redact(text) : backend.secret.redact(text);
}

/**
 * A non-2xx answer, classified with the engine's own error format. Its text reaches the client
 * (the 502/503 names what each backend said), /health and the logs: the backend's own key,
 * which some servers echo ("Invalid API key provided: Bearer sk-…"), and anything that reads
 * as a key are taken out first, before the message is cut to length.
 */
export function upstreamError(backend: BackendRuntime, status: number, headers: IncomingHttpHeaders, text: string): AttemptError {
  if (status >= 300 && status < 400) {
    return new AttemptError('malformed', `answered with a redirect (${status}), which the gateway does not follow`, status);
  }
  const info = backend.engine.parseError(status, withoutKeys(backend, text));
  // An empty body's message is the status alone: not "HTTP 503: HTTP 503".
  const msg = info.message === `HTTP ${status}` ? info.message : `HTTP ${status}: ${info.message}`;
  if (status === 429) {
    if (info.code === 'insufficient_quota' || info.type === 'insufficient_quota') {
      const e = new AttemptError('quota_exceeded', `${msg} (the account's quota is spent: not retried)`, status);
      e.quotaSpent = true;
      return e;
    }
    const ra = headers['retry-after'];
    return new AttemptError('rate_limited', msg, status, typeof ra === 'string' ? ra : undefined);
  }
  if (info.contextLength) return new AttemptError('context_length', info.message, status);
  if (info.unsupportedParam !== undefined) return new Unsupported(`${backend.name} cannot take \`${info.unsupportedParam}\`: ${info.message}`, info.unsupportedParam);
  if (status === 401 || status === 403 || status === 404 || status === 405) return new AttemptError('misconfigured', msg, status);
  if (status >= 500) return new AttemptError('upstream_5xx', msg, status);
  const refused = new AttemptError('client_error', info.message, status);
  refused.param = info.param;
  return refused;
}

// The one error family. Every failure the gateway reports has a code here, with its
// HTTP status and OpenAI error type, so handlers never invent statuses ad hoc.

export const ErrorCatalogue = {
  invalid_request: { status: 400, type: 'invalid_request_error' },
  invalid_json: { status: 400, type: 'invalid_request_error' },
  forbidden_parameter: { status: 400, type: 'invalid_request_error' },
  parameter_out_of_range: { status: 400, type: 'invalid_request_error' },
  wrong_model_kind: { status: 400, type: 'invalid_request_error' },
  context_length_exceeded: { status: 400, type: 'invalid_request_error' },
  upstream_rejected: { status: 400, type: 'invalid_request_error' },
  invalid_api_key: { status: 401, type: 'authentication_error' },
  // A virtual key asking for a role it may not use: OpenAI answers a project key without access to a model the same way (403).
  model_not_allowed: { status: 403, type: 'invalid_request_error' },
  permission_denied: { status: 403, type: 'invalid_request_error' },
  // The admin API of a gateway with no master key: no key would open it. Its own code, so a
  // client (fabric keys, usage, health --probe) tells it from a key refused.
  no_master_key: { status: 403, type: 'invalid_request_error' },
  model_not_found: { status: 404, type: 'invalid_request_error' },
  key_not_found: { status: 404, type: 'invalid_request_error' },
  not_found: { status: 404, type: 'invalid_request_error' },
  method_not_allowed: { status: 405, type: 'invalid_request_error' },
  unsupported_media_type: { status: 415, type: 'invalid_request_error' },
  expectation_failed: { status: 417, type: 'invalid_request_error' },
  // A request whose head or body did not arrive in time (the client's answer, and its log line).
  request_timeout: { status: 408, type: 'invalid_request_error' },
  body_too_large: { status: 413, type: 'invalid_request_error' },
  rate_limit_exceeded: { status: 429, type: 'rate_limit_error' },
  // A change that lost a race with another (two rotations of one key at once).
  conflict: { status: 409, type: 'invalid_request_error' },
  // A change conditional on a key's revision (If-Match: its ETag) to a key changed since: read it again.
  precondition_failed: { status: 412, type: 'invalid_request_error' },
  // nginx's 499: never sent (the client is gone), but counted and logged as what it is.
  client_closed_request: { status: 499, type: 'invalid_request_error' },
  // A key over its budget, or every backend's account spent: OpenAI's "exceeded your current
  // quota" (429, insufficient_quota). Waiting will not cure it, but the official SDKs retry every
  // 429 unless the answer says not to (x-should-retry: false).
  insufficient_quota: { status: 429, type: 'insufficient_quota', retry: false },
  internal_error: { status: 500, type: 'server_error' },
  bad_upstream_response: { status: 502, type: 'server_error' },
  no_backend_available: { status: 503, type: 'server_error' },
  shutting_down: { status: 503, type: 'server_error' },
  // The gateway's own machine ran out of file descriptors or memory while calling a backend.
  gateway_overloaded: { status: 503, type: 'server_error' },
  store_unavailable: { status: 503, type: 'server_error' },
  upstream_timeout: { status: 504, type: 'server_error' },
} as const;

export type ErrorCode = keyof typeof ErrorCatalogue;

/**
 * The code of a stream that broke after its first byte: no status of its own (the client had its
 * 200), but the error event it ends with, its usage record and its log line carry it.
 */
export const STREAM_INTERRUPTED = 'stream_interrupted';

/** Why one attempt against one backend failed; the gateway lists these when all fail. */
export type FailureClass =
  | 'connect'          // could not connect / connection reset before a response
  | 'timeout'          // connect, first-byte, idle or total timeout
  | 'upstream_5xx'
  | 'rate_limited'     // upstream 429
  | 'quota_exceeded'   // upstream 429 for a spent account (OpenAI's insufficient_quota): waiting will not cure it
  | 'malformed'        // 2xx with a body we cannot use
  | 'context_length'   // the prompt does not fit this backend
  | 'client_error'     // upstream 400/422: the request itself is at fault
  | 'misconfigured'    // upstream 401/403/404: wrong key or model not served there
  | 'model_not_found'  // upstream 404 for a model the client named on a pattern route: not served there
  | 'unavailable'      // skipped without sending: cooled down, node asleep
  | 'unsupported'      // this backend's engine cannot take the request as asked (Ollama and n > 1)
  | 'aborted';         // the client went away

export interface AttemptFailure {
  backend: string;
  role: string;
  failure: FailureClass;
  status?: number;
  message: string;
  retryAfter?: string;
  /** Judged without sending (a prompt far past the backend's known window): no attempt to count. */
  judged?: boolean;
  /** Passed over because this budget is spent (or cannot cover the request). */
  budget?: string;
}

/** An attempt as error bodies show it: snake_case like the rest of the API. */
function wireAttempt(a: AttemptFailure): AttemptFailure {
  if (a.retryAfter === undefined && a.judged === undefined) return a;
  const { retryAfter, judged: _judged, ...rest } = a;
  return (retryAfter === undefined ? rest : { ...rest, retry_after: retryAfter }) as AttemptFailure;
}

/** An attempt that reached the backend: not skipped (unavailable) nor passed over before sending (unsupported). */
export function wasSent(f: AttemptFailure): boolean {
  return f.failure !== 'unavailable' && f.failure !== 'unsupported' && f.judged !== true;
}

/** The backend a failed request last reached ('' when none was), as its usage record and metrics name it. */
export function lastSentBackend(attempts: readonly AttemptFailure[] | undefined): string {
  if (attempts !== undefined) for (let i = attempts.length - 1; i >= 0; i--) if (wasSent(attempts[i]!)) return attempts[i]!.backend;
  return '';
}

export class FabricError extends Error {
  readonly code: ErrorCode;
  readonly status: number;
  readonly type: string;
  readonly param: string | null;
  readonly attempts: AttemptFailure[] | undefined;
  readonly headers: Record<string, string> | undefined;

  constructor(
    code: ErrorCode,
    message: string,
    opts: { param?: string | null; attempts?: AttemptFailure[]; headers?: Record<string, string>; status?: number; cause?: unknown } = {},
  ) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = 'FabricError';
    this.code = code;
    const entry = ErrorCatalogue[code];
    this.status = opts.status ?? entry.status;
    this.type = entry.type;
    this.param = opts.param ?? null;
    this.attempts = opts.attempts;
    // The official SDKs retry 408, 409, 429 and 5xx unless told not to; where a retry cannot
    // help, the answer says so.
    this.headers = 'retry' in entry ? { ...opts.headers, 'x-should-retry': 'false' } : opts.headers;
  }

  toBody(): { error: { message: string; type: string; param: string | null; code: string; attempts?: AttemptFailure[] } } {
    const error: { message: string; type: string; param: string | null; code: string; attempts?: AttemptFailure[] } = {
      message: this.message,
      type: this.type,
      param: this.param,
      code: this.code,
    };
    if (this.attempts !== undefined && this.attempts.length > 0) error.attempts = this.attempts.map(wireAttempt);
    return { error };
  }
}

/** Any thrown value as a FabricError: unknown failures become a 500 without leaking internals. */
export function toFabricError(e: unknown): FabricError {
  if (e instanceof FabricError) return e;
  return new FabricError('internal_error', 'internal error', { cause: e });
}

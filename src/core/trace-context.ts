// W3C Trace Context (https://www.w3.org/TR/trace-context/). A client's traceparent and
// tracestate go on to each backend: as they came when the gateway records no spans (it then
// forwards the parent id unchanged, as the specification asks of a hop that does not trace),
// or naming the gateway's own attempt span as the parent when it does (gateway.tracing,
// src/tracing). Either way an engine that traces (vLLM with --otlp-traces-endpoint) puts its
// spans in the client's trace, and the request's log line names the trace.

export interface TraceContext {
  /** What goes to the backend now. */
  readonly traceparent: string;
  readonly tracestate: string | undefined;
  /** The 32 hex digits that name the trace: what the log line carries. */
  readonly traceId: string;
  /** Set when the gateway records spans: an attempt begins (its span becomes the backend's parent), and ends. */
  attempt?(a: AttemptStart): void;
  attemptEnd?(failure: string | undefined, message?: string, sent?: boolean): void;
}

export interface AttemptStart {
  op: string;
  backend: string;
  role: string;
  engine: string;
  url: string;
  model: string;
  retry: boolean;
}

/** A client's trace context as it came. */
export interface IncomingTrace extends TraceContext {
  /** The client's span: the parent of the gateway's own. */
  readonly parentId: string;
  /** The client's sampled flag: a trace it records is recorded here too. */
  readonly sampled: boolean;
}

// version-traceid-parentid-flags; a later version may append fields after a dash.
const TRACEPARENT = /^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-[\x21-\x7e]*)?$/;
const ZERO_TRACE = '0'.repeat(32);
const ZERO_PARENT = '0'.repeat(16);
/** The specification's list of at most 32 members, each of at most 256 characters; printable, without control characters. */
const TRACESTATE = /^[\x20-\x7e]{0,512}$/;
const MAX_TRACEPARENT = 256;

/**
 * The trace context of an incoming request, or undefined without a valid traceparent. An
 * invalid one (the version ff, an all-zero id, version 00 with extra fields, a header sent twice)
 * is dropped, with its tracestate, as the specification says: the backend then starts its own.
 */
export function traceContext(traceparent: string | string[] | undefined, tracestate: string | string[] | undefined): IncomingTrace | undefined {
  if (typeof traceparent !== 'string' || traceparent.length > MAX_TRACEPARENT) return undefined;
  const m = TRACEPARENT.exec(traceparent);
  if (m === null) return undefined;
  const [, version, traceId, parentId, flags, rest] = m;
  if (version === 'ff' || (version === '00' && rest !== undefined) || traceId === ZERO_TRACE || parentId === ZERO_PARENT) return undefined;
  // A tracestate sent in several headers is one list, joined by commas (RFC 9110 list syntax).
  const joined = Array.isArray(tracestate) ? tracestate.join(',') : tracestate;
  const state = joined !== undefined && joined.trim() !== '' && TRACESTATE.test(joined) ? joined : undefined;
  return { traceparent, tracestate: state, traceId: traceId!, parentId: parentId!, sampled: (parseInt(flags!, 16) & 1) === 1 };
}

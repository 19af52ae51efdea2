// Fault injection state: which fault is on, and how many more inference requests it
// applies to. Validation lives here too so the control server and the API agree.

import type { SimFault, SimFaultState } from './types.ts';

const KINDS = new Set(['down', 'slow', 'error', 'rate-limit', 'hang', 'drop', 'stall', 'stream-error', 'garbage', 'context-length']);

function optionalNumber(o: Record<string, unknown>, key: string, min: number, integer: boolean): number | undefined | string {
  const v = o[key];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'number' || !Number.isFinite(v) || v < min || (integer && !Number.isInteger(v))) {
    return `${key} must be ${integer ? 'an integer' : 'a number'} >= ${min}`;
  }
  return v;
}

/** A SimFault from untrusted JSON, or a message saying what is wrong with it. */
export function parseFault(input: unknown): SimFault | string {
  if (typeof input !== 'object' || input === null || Array.isArray(input)) return 'fault must be a JSON object';
  const o = input as Record<string, unknown>;
  const kind = o.kind;
  if (typeof kind !== 'string' || !KINDS.has(kind)) return `kind must be one of: ${[...KINDS].join(', ')}`;
  switch (kind) {
    case 'slow': {
      const factor = optionalNumber(o, 'factor', 0, false);
      if (typeof factor === 'string') return factor;
      return factor === undefined ? { kind } : { kind, factor };
    }
    case 'error': {
      const status = optionalNumber(o, 'status', 400, true);
      if (typeof status === 'string') return status;
      if (status !== undefined && status > 599) return 'status must be an HTTP status between 400 and 599';
      return status === undefined ? { kind } : { kind, status };
    }
    case 'rate-limit': {
      const retryAfterS = optionalNumber(o, 'retryAfterS', 0, true);
      if (typeof retryAfterS === 'string') return retryAfterS;
      return retryAfterS === undefined ? { kind } : { kind, retryAfterS };
    }
    case 'drop':
    case 'stall':
    case 'stream-error': {
      const afterChunks = optionalNumber(o, 'afterChunks', 0, true);
      if (typeof afterChunks === 'string') return afterChunks;
      return afterChunks === undefined ? { kind } : { kind, afterChunks };
    }
    case 'down':
    case 'hang':
    case 'garbage':
    case 'context-length':
      return { kind };
    default:
      return `unknown fault kind ${kind}`;
  }
}

export class FaultState {
  #state: SimFaultState | null = null;

  get current(): SimFaultState | null {
    return this.#state;
  }

  /** The fault now on, without counting a request against it. */
  peek(): SimFault | null {
    return this.#state?.fault ?? null;
  }

  set(fault: SimFault | null, remaining?: number): void {
    if (fault === null || (remaining !== undefined && remaining <= 0)) {
      this.#state = null;
      return;
    }
    this.#state = remaining === undefined ? { fault } : { fault, remaining };
  }

  /**
   * The fault that applies to this inference request, counting it against `remaining`.
   * Only inference requests count, so health probes cannot use up a "next N requests" fault.
   */
  take(): SimFault | null {
    const s = this.#state;
    if (s === null) return null;
    if (s.remaining !== undefined) {
      s.remaining--;
      if (s.remaining <= 0) this.#state = null;
    }
    return s.fault;
  }
}

// Bytes of request bodies still arriving, across every connection and both parsers. A body is
// held whole until it has all come; a client that sends most of one and stalls would hold it
// for the request timeout (300 s), and many such would run the process out of memory. Past
// gateway.limits.max_body_in_flight, a new body is refused (503, Retry-After) instead of read.
// An audio upload counts again while it is being transcribed (it is held until answered, and a
// slow Whisper could otherwise gather gigabytes of them).

import { FabricError } from '../core/errors.ts';

export class BodyBudget {
  #held = 0;
  readonly #limit: () => number;

  constructor(limit: () => number) {
    this.#limit = limit;
  }

  /** Room for `n` more bytes: takes them and says true; else false, and takes nothing. */
  take(n: number): boolean {
    if (n > 0 && this.#held + n > this.#limit()) return false;
    this.#held += n;
    return true;
  }

  give(n: number): void {
    this.#held -= n;
  }

  /** `holders`: what holds the bytes now (bodies still arriving, by default; audio uploads held until answered). */
  refusal(holders = 'request bodies still arriving'): FabricError {
    const mib = (b: number): string => `${+(b / 2 ** 20).toFixed(1)} MiB`;
    return new FabricError('gateway_overloaded', `${holders} hold ${mib(this.#held)} of the ${mib(this.#limit())} the gateway buffers at once (gateway.limits.max_body_in_flight): retry shortly`, {
      headers: { 'retry-after': '1', connection: 'close' },
    });
  }
}

// The log lines of requests refused before anyone is known: a bad or missing key, a path that
// is no route. Anyone who can reach the port can make them, thousands a second, so at most
// `perSecond` are written each second; past that, one line says how many were left out.
// Metrics count every one (fabric_errors_total, fabric_http_requests_total).

import type { Logger } from '../core/log.ts';

export class RefusalLines {
  readonly #log: Logger;
  readonly #perSecond: number;
  #second = 0;
  #written = 0;
  #leftOut = 0;
  #timer: NodeJS.Timeout | undefined;

  constructor(log: Logger, perSecond = 20) {
    this.#log = log;
    this.#perSecond = perSecond;
  }

  /** Whether this refusal gets its line; if not, it is counted for the summary. */
  allow(now: number = Date.now()): boolean {
    const s = Math.floor(now / 1000);
    if (s !== this.#second) {
      this.#second = s;
      this.#written = 0;
    }
    if (this.#written < this.#perSecond) {
      this.#written++;
      return true;
    }
    this.#leftOut++;
    // The summary follows within a second, whether or not more refusals come.
    this.#timer ??= setTimeout(() => this.flush(), 1000).unref();
    return false;
  }

  flush(): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
    if (this.#leftOut === 0) return;
    this.#log.warn(`requests refused: ${this.#leftOut} more line${this.#leftOut === 1 ? '' : 's'} left out (at most ${this.#perSecond} a second are written; fabric_errors_total counts them all)`, { left_out: this.#leftOut });
    this.#leftOut = 0;
  }
}

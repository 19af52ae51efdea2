// GC pauses of the process under test, stamped on the machine-wide monotonic clock
// (process.hrtime, CLOCK_MONOTONIC) that the load generator stamps requests with, so the
// orchestrator can tell which slow requests overlapped a pause.

import { PerformanceObserver, constants } from 'node:perf_hooks';

export interface GcPause {
  /** monotonic ms (process.hrtime.bigint() / 1e6) */
  startMs: number;
  durMs: number;
  kind: 'minor' | 'major' | 'other';
}

export interface GcTotals {
  count: number;
  ms: number;
  maxMs: number;
}

const KEEP = 20_000;

export class GcWatch {
  readonly totals: GcTotals = { count: 0, ms: 0, maxMs: 0 };
  readonly #pauses: GcPause[] = [];
  /** performance.now() 0 on the monotonic clock, ms */
  readonly #originMs: number;

  constructor() {
    this.#originMs = Number(process.hrtime.bigint()) / 1e6 - performance.now();
    new PerformanceObserver((list) => {
      for (const e of list.getEntries()) {
        const t = this.totals;
        t.count++;
        t.ms += e.duration;
        if (e.duration > t.maxMs) t.maxMs = e.duration;
        const k = (e as unknown as { detail?: { kind?: number } }).detail?.kind;
        const kind = k === constants.NODE_PERFORMANCE_GC_MINOR ? 'minor' : k === constants.NODE_PERFORMANCE_GC_MAJOR ? 'major' : 'other';
        if (this.#pauses.length >= KEEP) this.#pauses.shift();
        this.#pauses.push({ startMs: this.#originMs + e.startTime, durMs: e.duration, kind });
      }
    }).observe({ entryTypes: ['gc'] });
  }

  /** Pauses that ended after `sinceMs` (monotonic ms). */
  since(sinceMs: number): GcPause[] {
    return this.#pauses.filter((p) => p.startMs + p.durMs >= sinceMs);
  }
}

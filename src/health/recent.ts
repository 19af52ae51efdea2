// What a backend's live traffic looked like lately: its requests and errors, and the p50 and
// p95 of its answers' latency (whole answers) and of its streams' time to first token, over the
// last few minutes. /health reports it for every backend, and a backend whose p95 passes its
// health policy's `slow` threshold raises a warning (alerts.ts): the runbook's "requests take
// more than 10 s" is then seen before users report it.
//
// Per request: three typed-array writes into a ring of the last SAMPLES outcomes, stamped on
// performance.now()'s clock (which the request path reads anyway). The percentiles are computed
// only when /health is read, from at most SAMPLES values.

import { formatMs } from '../config/units.ts';

/** How far back the figures look. */
export const RECENT_WINDOW_MS = 5 * 60_000;

/** Outcomes remembered; at a higher rate than this many in RECENT_WINDOW_MS, the window is shorter. */
const SAMPLES = 512;

/** A slow verdict needs this many samples in the window: one slow answer is not a slow backend. */
export const SLOW_MIN_SAMPLES = 5;

const UNARY = 0;
const STREAM = 1;
const FAILED = 2;

export interface RecentFigures {
  /** Seconds the figures cover: the window, or less when the ring holds less time than that. */
  window_s: number;
  requests: number;
  errors: number;
  /** Whole answers that were not streamed (chat, completions, embeddings), ms. */
  latency_p50_ms: number | null;
  latency_p95_ms: number | null;
  latency_samples: number;
  /** Streams: time to their first token, ms. */
  ttft_p50_ms: number | null;
  ttft_p95_ms: number | null;
  ttft_samples: number;
}

export class RecentTraffic {
  readonly #at = new Float64Array(SAMPLES);
  readonly #ms = new Float64Array(SAMPLES);
  readonly #kind = new Uint8Array(SAMPLES);
  /** Outcomes ever recorded; the next one goes to #n % SAMPLES. */
  #n = 0;

  #push(now: number, ms: number, kind: number): void {
    const i = this.#n++ % SAMPLES;
    this.#at[i] = now;
    this.#ms[i] = ms;
    this.#kind[i] = kind;
  }

  /** An answer: `ms` is its latency, or for a stream its time to first token. */
  succeeded(now: number, ms: number, stream: boolean): void {
    this.#push(now, ms, stream ? STREAM : UNARY);
  }

  failed(now: number): void {
    this.#push(now, 0, FAILED);
  }

  figures(now: number): RecentFigures {
    const unary: number[] = [];
    const ttft: number[] = [];
    let errors = 0;
    let oldest = now;
    const held = Math.min(this.#n, SAMPLES);
    for (let k = 0; k < held; k++) {
      const at = this.#at[k]!;
      if (now - at > RECENT_WINDOW_MS) continue;
      if (at < oldest) oldest = at;
      const kind = this.#kind[k];
      if (kind === FAILED) errors++;
      else (kind === STREAM ? ttft : unary).push(this.#ms[k]!);
    }
    // The ring has dropped outcomes that were still inside the window: it covers less than the window.
    const full = this.#n > SAMPLES && now - this.#at[this.#n % SAMPLES]! <= RECENT_WINDOW_MS;
    return {
      window_s: Math.round((full ? now - oldest : RECENT_WINDOW_MS) / 1000),
      requests: unary.length + ttft.length + errors,
      errors,
      latency_p50_ms: percentile(unary, 0.5),
      latency_p95_ms: percentile(unary, 0.95),
      latency_samples: unary.length,
      ttft_p50_ms: percentile(ttft, 0.5),
      ttft_p95_ms: percentile(ttft, 0.95),
      ttft_samples: ttft.length,
    };
  }
}

/** Nearest-rank percentile, rounded to 0.1 ms; null without samples. Sorts `xs`. */
function percentile(xs: number[], p: number): number | null {
  if (xs.length === 0) return null;
  xs.sort((a, b) => a - b);
  return Math.round(xs[Math.min(xs.length - 1, Math.ceil(p * xs.length) - 1)]! * 10) / 10;
}

/**
 * Why a backend counts as slow under `thresholdMs`, or null: the p95 of its answers' latency or
 * of its streams' time to first token over the window, each with enough samples to mean it.
 */
export function slowReason(f: RecentFigures, thresholdMs: number | undefined): string | null {
  if (thresholdMs === undefined) return null;
  const parts: string[] = [];
  if (f.latency_samples >= SLOW_MIN_SAMPLES && f.latency_p95_ms! > thresholdMs) parts.push(`p95 latency ${formatMs(f.latency_p95_ms!)} over ${f.latency_samples} answers`);
  if (f.ttft_samples >= SLOW_MIN_SAMPLES && f.ttft_p95_ms! > thresholdMs) parts.push(`p95 time to first token ${formatMs(f.ttft_p95_ms!)} over ${f.ttft_samples} streams`);
  if (parts.length === 0) return null;
  return `${parts.join(' and ')} in the last ${Math.round(f.window_s / 60) || 1} min, above its slow threshold (${formatMs(thresholdMs)})`;
}


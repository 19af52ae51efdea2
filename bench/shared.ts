// Shapes shared by the orchestrator and the load generator, and the arithmetic on samples.
// Kept free of I/O so both processes can import it.

/** The V8 flags `bin/fabric` runs the gateway with (test/cli.test.ts checks they agree). */
export const RUNTIME_NODE_FLAGS = ['--max-semi-space-size=8', '--heap-growing-percent=50'];

export interface Percentiles {
  count: number;
  p50: number;
  p90: number;
  p99: number;
  max: number;
  mean: number;
}

/** Nearest-rank percentiles of samples in milliseconds; sorts `ms` in place. */
export function percentiles(ms: Float64Array): Percentiles {
  const n = ms.length;
  if (n === 0) return { count: 0, p50: NaN, p90: NaN, p99: NaN, max: NaN, mean: NaN };
  ms.sort();
  let sum = 0;
  for (let i = 0; i < n; i++) sum += ms[i]!;
  const at = (q: number): number => ms[Math.min(n - 1, Math.max(0, Math.ceil(q * n) - 1))]!;
  return { count: n, p50: at(0.5), p90: at(0.9), p99: at(0.99), max: ms[n - 1]!, mean: sum / n };
}

/** What the orchestrator asks the load generator to do; one job at a time. */
export interface TargetSpec {
  /** http://127.0.0.1:PORT */
  origin: string;
  path: string;
  headers: Record<string, string>;
  body: string;
}

export type Job =
  | {
    kind: 'open';
    target: TargetSpec;
    /** requests per second, evenly spaced */
    rate: number;
    durationMs: number;
    connections: number;
  }
  | {
    kind: 'closed';
    target: TargetSpec;
    concurrency: number;
    durationMs: number;
  }
  | {
    kind: 'streams';
    target: TargetSpec;
    count: number;
    /** how fast the streams are opened, per second */
    rampRate: number;
    timeoutMs: number;
  };

export interface PhaseResult {
  kind: Job['kind'];
  /** requests started */
  sent: number;
  /** answered 200 with a complete body */
  ok: number;
  /** non-200, transport errors, or (streams) a body without [DONE] or with an error event */
  errors: number;
  /** still outstanding when the phase's hard deadline passed */
  unfinished: number;
  firstError: string | undefined;
  /** wall time from first send to last completion, ms */
  elapsedMs: number;
  /** open: achieved send rate; closed: completions per second within the timed window */
  throughput: number;
  /** send → last body byte, ms */
  latency: Percentiles;
  /** send → first body byte, ms */
  ttfb: Percentiles;
  /** open loop only: how late sends left against their schedule, ms (generator health) */
  lag: Percentiles;
  /** open loop only: scheduled time → last body byte, ms (coordinated-omission-corrected) */
  corrected: Percentiles;
  /** open loop only: requests over SLOW_MS, as [send, end] on the monotonic clock in ms (at most MAX_SLOW) */
  slow: [number, number][];
}

/** A request slower than this is kept for the stall analysis (which pauses it overlapped). */
export const SLOW_MS = 2;
export const MAX_SLOW = 20_000;

/** Sent by the load generator in a streams job once every stream has its first byte. */
export interface StreamsOpen {
  type: 'streams-open';
  open: number;
}

export const EMPTY: Percentiles = { count: 0, p50: NaN, p90: NaN, p99: NaN, max: NaN, mean: NaN };

/** The benchmark's chat request (each phase names its model, some add stream options). */
export function payload(model: string, extra: Record<string, unknown> = {}): string {
  const messages = [{ role: 'system', content: 'You are a helpful assistant.' }, { role: 'user', content: 'Say hello to the benchmark in one short sentence.' }];
  return JSON.stringify({ model, messages, max_tokens: 16, temperature: 0, ...extra });
}

/** The simulated engines' model names (bench/upstream-proc.ts), as the direct phases ask for them. */
export const UPSTREAM_MODELS = { fast: 'bench/fast', stream: 'bench/stream', slow: 'bench/slow' } as const;

/**
 * The gateway config a benchmark run writes: the master key from BENCH_MASTER_KEY, a role per
 * upstream engine (chat-fast, and chat-stream / chat-slow when given), and extra lines for the
 * gateway: section (e.g. "accounting: { enabled: false }", to price one feature).
 */
export function fabricYaml(o: { fast: string; stream?: string; slow?: string; slowConnections?: number; gateway?: string[] }): string {
  const backends: string[] = [];
  const roles: string[] = [];
  const add = (name: string, role: string, url: string, model: string, extra = ''): void => {
    backends.push(`  ${name}: { engine: vllm, url: ${url}/v1, model: ${model}${extra} }`);
    roles.push(`  ${role}: { kind: chat, backends: [${name}] }`);
  };
  add('bench-fast', 'chat-fast', o.fast, UPSTREAM_MODELS.fast);
  if (o.stream !== undefined) add('bench-stream', 'chat-stream', o.stream, UPSTREAM_MODELS.stream);
  if (o.slow !== undefined) add('bench-slow', 'chat-slow', o.slow, UPSTREAM_MODELS.slow, o.slowConnections === undefined ? '' : `, max_connections: ${o.slowConnections}`);
  return [
    '# Written by the benchmark for one run; the upstream ports change every run.',
    'version: 1',
    'gateway:',
    '  host: 127.0.0.1',
    '  master_key: env:BENCH_MASTER_KEY',
    ...(o.gateway ?? []).map((l) => `  ${l}`),
    'backends:', ...backends,
    'roles:', ...roles,
    '',
  ].join('\n');
}

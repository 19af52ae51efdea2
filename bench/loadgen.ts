// The load generator: a child process (pinned beside the upstream) that runs one job at a
// time for the orchestrator over IPC. Requests go through undici's dispatch() with a bare
// handler, not fetch() or request(), so the generator's own cost per request stays small
// and the core it shares with the upstream has room left for the upstream.
//
// Open-loop jobs send on a fixed schedule whatever the answers do, so a slow answer does not
// delay the next request (no coordinated omission); the lateness of each send against its
// schedule is recorded too, and is the check that the generator itself kept up.

import { Pool } from 'undici';
import type { Dispatcher } from 'undici';
import { EMPTY, MAX_SLOW, SLOW_MS, percentiles } from './shared.ts';
import type { Job, PhaseResult, StreamsOpen, TargetSpec } from './shared.ts';

const REQUEST_TIMEOUT_MS = 15_000;
/** After a job's scheduled end, how long outstanding requests may take before they count as unfinished. */
const DRAIN_MS = 15_000;

const SLOW_NS = BigInt(SLOW_MS * 1_000_000);

const pools = new Map<string, Pool>();

function poolFor(origin: string, connections: number): Pool {
  const key = `${origin} ${connections}`;
  let p = pools.get(key);
  if (p === undefined) {
    p = new Pool(origin, {
      connections,
      pipelining: 1,
      keepAliveTimeout: 60_000,
      keepAliveMaxTimeout: 120_000,
      headersTimeout: REQUEST_TIMEOUT_MS,
      bodyTimeout: REQUEST_TIMEOUT_MS,
    });
    pools.set(key, p);
  }
  return p;
}

type Done = (call: Call) => void;

/** One request in flight: a dispatch handler that only timestamps and counts. */
class Call implements Dispatcher.DispatchHandler {
  scheduled = 0n;
  sent = 0n;
  firstByte = 0n;
  ended = 0n;
  status = 0;
  bytes = 0;
  error: string | undefined = undefined;
  /** streams only: the body, to check it ended with [DONE] and carried no error event */
  text: string | undefined;
  readonly #done: Done;

  constructor(done: Done, keepText: boolean) {
    this.#done = done;
    this.text = keepText ? '' : undefined;
  }

  onRequestStart(): void {}

  onResponseStart(_c: Dispatcher.DispatchController, statusCode: number): void {
    this.status = statusCode;
  }

  onResponseData(_c: Dispatcher.DispatchController, chunk: Buffer): void {
    if (this.firstByte === 0n) this.firstByte = process.hrtime.bigint();
    this.bytes += chunk.length;
    if (this.text !== undefined) this.text += chunk.toString('utf8');
  }

  onResponseEnd(): void {
    this.ended = process.hrtime.bigint();
    if (this.firstByte === 0n) this.firstByte = this.ended;
    if (this.status !== 200) this.error = `HTTP ${this.status}`;
    else if (this.text !== undefined && (!this.text.includes('data: [DONE]') || this.text.includes('"error"'))) {
      this.error = `stream incomplete or with an error event: ${this.text.slice(-200)}`;
    }
    this.#done(this);
  }

  onResponseError(_c: Dispatcher.DispatchController, err: Error): void {
    this.ended = process.hrtime.bigint();
    this.error = `${(err as { code?: string }).code ?? err.name}: ${err.message}`;
    this.#done(this);
  }
}

/** A streaming call that reports its first body byte, so the orchestrator knows when all are open. */
class StreamCall extends Call {
  readonly #onOpen: () => void;
  constructor(done: Done, onOpen: () => void) {
    super(done, true);
    this.#onOpen = onOpen;
  }
  override onResponseData(c: Dispatcher.DispatchController, chunk: Buffer): void {
    const first = this.firstByte === 0n;
    super.onResponseData(c, chunk);
    if (first && this.status === 200) {
      this.#onOpen();
    }
  }
}

function fire(pool: Pool, t: TargetSpec, body: Buffer, call: Call): void {
  call.sent = process.hrtime.bigint();
  if (call.scheduled === 0n) call.scheduled = call.sent;
  pool.dispatch({ method: 'POST', path: t.path, headers: t.headers, body }, call);
}

/** Growable sample buffer of milliseconds. */
class Samples {
  #a: Float64Array;
  #n = 0;
  constructor(capacity: number) {
    this.#a = new Float64Array(Math.max(16, capacity));
  }
  push(ns: bigint): void {
    if (this.#n === this.#a.length) {
      const b = new Float64Array(this.#a.length * 2);
      b.set(this.#a);
      this.#a = b;
    }
    this.#a[this.#n++] = Number(ns) / 1e6;
  }
  get length(): number {
    return this.#n;
  }
  view(): Float64Array {
    return this.#a.subarray(0, this.#n);
  }
}

interface Tally {
  sent: number;
  ok: number;
  errors: number;
  firstError: string | undefined;
  latency: Samples;
  ttfb: Samples;
  lag: Samples;
  corrected: Samples;
  firstSent: bigint;
  lastEnded: bigint;
  slow: [number, number][];
}

function tally(capacity: number): Tally {
  return {
    sent: 0, ok: 0, errors: 0, firstError: undefined,
    latency: new Samples(capacity), ttfb: new Samples(capacity), lag: new Samples(capacity), corrected: new Samples(capacity),
    firstSent: 0n, lastEnded: 0n, slow: [],
  };
}

function record(t: Tally, c: Call, open: boolean): void {
  if (c.ended > t.lastEnded) t.lastEnded = c.ended;
  if (c.error !== undefined) {
    t.errors++;
    t.firstError ??= c.error;
    return;
  }
  t.ok++;
  t.latency.push(c.ended - c.sent);
  t.ttfb.push(c.firstByte - c.sent);
  if (open) {
    t.lag.push(c.sent - c.scheduled);
    t.corrected.push(c.ended - c.scheduled);
    if (c.ended - c.sent > SLOW_NS && t.slow.length < MAX_SLOW) t.slow.push([Number(c.sent) / 1e6, Number(c.ended) / 1e6]);
  }
}

function result(kind: Job['kind'], t: Tally, inFlight: number, throughput: number): PhaseResult {
  return {
    kind,
    sent: t.sent,
    ok: t.ok,
    errors: t.errors,
    unfinished: inFlight,
    firstError: t.firstError,
    elapsedMs: t.firstSent === 0n ? 0 : Number(t.lastEnded - t.firstSent) / 1e6,
    throughput,
    latency: t.latency.length > 0 ? percentiles(t.latency.view()) : EMPTY,
    ttfb: t.ttfb.length > 0 ? percentiles(t.ttfb.view()) : EMPTY,
    lag: t.lag.length > 0 ? percentiles(t.lag.view()) : EMPTY,
    corrected: t.corrected.length > 0 ? percentiles(t.corrected.view()) : EMPTY,
    slow: t.slow,
  };
}

/** Waits until nothing is in flight or the drain deadline passes; resolves with what is still out. */
function drained(inFlight: () => number, deadline: number): Promise<number> {
  return new Promise((resolve) => {
    const check = (): void => {
      if (inFlight() === 0 || Date.now() >= deadline) resolve(inFlight());
      else setTimeout(check, 5);
    };
    check();
  });
}

async function openLoop(job: Extract<Job, { kind: 'open' }>): Promise<PhaseResult> {
  const pool = poolFor(job.target.origin, job.connections);
  const body = Buffer.from(job.target.body);
  const total = Math.round((job.rate * job.durationMs) / 1000);
  const intervalNs = 1e9 / job.rate;
  const t = tally(total);
  let inFlight = 0;
  const done: Done = (c) => {
    inFlight--;
    record(t, c, true);
  };
  const start = process.hrtime.bigint() + 1_000_000n;
  t.firstSent = start;
  let i = 0;
  await new Promise<void>((resolve) => {
    // Timers fire at ~1 ms granularity: each tick sends every request now due, stamped with its
    // own scheduled time. A busy-wait would be more exact but would steal the upstream's core.
    const tick = (): void => {
      const now = process.hrtime.bigint();
      while (i < total) {
        const due = start + BigInt(Math.round(i * intervalNs));
        if (due > now) break;
        const c = new Call(done, false);
        c.scheduled = due;
        inFlight++;
        t.sent++;
        i++;
        fire(pool, job.target, body, c);
      }
      if (i >= total) resolve();
      else setTimeout(tick, 1);
    };
    setTimeout(tick, 1);
  });
  const left = await drained(() => inFlight, Date.now() + DRAIN_MS);
  const sendSpanS = Number(BigInt(Math.round((total - 1) * intervalNs))) / 1e9;
  return result('open', t, left, sendSpanS > 0 ? total / sendSpanS : total);
}

async function closedLoop(job: Extract<Job, { kind: 'closed' }>): Promise<PhaseResult> {
  const pool = poolFor(job.target.origin, job.concurrency);
  const body = Buffer.from(job.target.body);
  const t = tally(job.durationMs * 20);
  const start = process.hrtime.bigint();
  const end = start + BigInt(job.durationMs) * 1_000_000n;
  t.firstSent = start;
  let inFlight = 0;
  let withinWindow = 0;
  const next = (): void => {
    const c = new Call(done, false);
    inFlight++;
    t.sent++;
    fire(pool, job.target, body, c);
  };
  const done: Done = (c) => {
    inFlight--;
    record(t, c, false);
    if (c.ended <= end) {
      if (c.error === undefined) withinWindow++;
      next();
    }
  };
  for (let i = 0; i < job.concurrency; i++) next();
  await new Promise((r) => setTimeout(r, job.durationMs));
  const left = await drained(() => inFlight, Date.now() + DRAIN_MS);
  return result('closed', t, left, withinWindow / (job.durationMs / 1000));
}

async function streams(job: Extract<Job, { kind: 'streams' }>, notify: (m: StreamsOpen) => void): Promise<PhaseResult> {
  const pool = poolFor(job.target.origin, job.count);
  const body = Buffer.from(job.target.body);
  const t = tally(job.count);
  let inFlight = 0;
  let opened = 0;
  let announced = false;
  const done: Done = (c) => {
    inFlight--;
    record(t, c, false);
  };
  const deadline = Date.now() + job.timeoutMs;
  t.firstSent = process.hrtime.bigint();
  // Opened in batches every 10 ms at the ramp rate, so the gateway sees a burst, not a wall.
  const batch = Math.max(1, Math.ceil(job.rampRate / 100));
  for (let i = 0; i < job.count; i++) {
    const c = new StreamCall(done, () => {
      opened++;
      if (!announced && opened === job.count) {
        announced = true;
        notify({ type: 'streams-open', open: opened });
      }
    });
    inFlight++;
    t.sent++;
    fire(pool, job.target, body, c);
    if ((i + 1) % batch === 0) await new Promise((r) => setTimeout(r, 10));
  }
  const left = await drained(() => inFlight, deadline);
  if (!announced) notify({ type: 'streams-open', open: opened });
  return result('streams', t, left, 0);
}

async function run(job: Job, notify: (m: StreamsOpen) => void): Promise<PhaseResult> {
  switch (job.kind) {
    case 'open': return openLoop(job);
    case 'closed': return closedLoop(job);
    case 'streams': return streams(job, notify);
  }
}

if (process.send === undefined) {
  process.stderr.write('bench/loadgen.ts runs as a child of bench/run.ts (it needs an IPC channel)\n');
  process.exit(2);
}
const send = (m: unknown): void => {
  process.send!(m);
};
process.on('message', (m: { type: 'job'; job: Job } | { type: 'exit' }) => {
  if (m.type === 'exit') {
    void Promise.all([...pools.values()].map((p) => p.destroy())).finally(() => process.exit(0));
    return;
  }
  run(m.job, send).then(
    (r) => send({ type: 'result', result: r }),
    (e: unknown) => send({ type: 'failed', error: String((e as Error)?.stack ?? e) }),
  );
});
// The orchestrator gone means nobody wants the answers: stop.
process.on('disconnect', () => process.exit(0));
send({ type: 'ready', pid: process.pid });

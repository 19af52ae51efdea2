// The event loop's scheduling class (gateway.realtime).
//
// A gateway process has more threads than its event loop: V8's GC and compiler helpers, the
// SQLite writer, libuv's pool. Where they share a core with the event loop, Linux's scheduler
// (EEVDF) lets a running helper finish its slice before a woken event loop gets the core, even
// at nice 19: a request arriving then waits up to ~3 ms (bench/README.md, "The latency tail": measured on this
// VM with a C loop and a bursting thread, and in `npm run bench -- --rate-only`). SCHED_FIFO on
// the event-loop thread alone makes it preempt them the moment it wakes. The helpers stay as
// they are, and threads created later start at normal priority (SCHED_RESET_ON_FORK), so only
// the thread that answers requests is raised. Linux keeps 5% of each second for normal threads
// (sched_rt_runtime_us), so a loop gone wrong cannot freeze its core, and a loop that is
// saturated gives real-time priority up until it has headroom again (EventLoopPriority).
//
// Node has no sched_setscheduler(2): chrt(1), from util-linux (on every Debian and most
// images), sets it. Raising needs CAP_SYS_NICE or an RLIMIT_RTPRIO of at least 1 (systemd:
// LimitRTPRIO=1, which `fabric render` writes when the config asks for it).

import { execFile, spawnSync } from 'node:child_process';
import { performance } from 'node:perf_hooks';
import { readProcStat } from './proc-stat.ts';
import { Coalescer } from './coalesce.ts';

/** SCHED_FIFO's priority for the event loop: the lowest real-time one, above every normal thread. */
export const REALTIME_PRIORITY = 1;

const SCHED_OTHER = 0;
const SCHED_FIFO = 1;

/** A thread's scheduling policy and real-time priority (/proc/PID/task/TID/stat, fields 41 and 40). */
export function schedulingOf(pid: number, tid = pid): { policy: number; priority: number } | undefined {
  const st = readProcStat(`/proc/${pid}/task/${tid}/stat`);
  if (st === undefined) return undefined;
  return { policy: Number(st.fields[38]), priority: Number(st.fields[37]) };
}

function chrtArgs(on: boolean, pid: number): string[] | undefined {
  const now = schedulingOf(pid);
  if (now !== undefined && (now.policy === SCHED_FIFO) === on && (!on || now.priority === REALTIME_PRIORITY)) return undefined;
  // Without --all-tasks, chrt --pid changes the one thread whose id is PID: the main thread.
  return on
    ? ['--fifo', '--reset-on-fork', '--pid', String(REALTIME_PRIORITY), String(pid)]
    // Lowering keeps SCHED_RESET_ON_FORK set: a process without CAP_SYS_NICE may not clear it,
    // and would be refused its own way back to normal priority.
    : ['--other', '--reset-on-fork', '--pid', '0', String(pid)];
}

function outcome(on: boolean, pid: number, r: { error?: Error | null; status: number | null; stderr: string; stdout: string }): string | undefined {
  if (r.error) {
    const code = (r.error as NodeJS.ErrnoException).code;
    return code === 'ENOENT' ? 'chrt (util-linux) is not installed' : `chrt failed: ${code ?? r.error.message}`;
  }
  if (r.status !== 0) {
    const said = (r.stderr || r.stdout).trim().replace(/^chrt: /, '');
    const denied = on && /not permitted|permission denied/i.test(said);
    return denied ? `${said} (raising it needs CAP_SYS_NICE, or an RLIMIT_RTPRIO of 1: LimitRTPRIO=1 in a systemd unit, ulimits rtprio: 1 in compose)` : said || `chrt exited with ${r.status}`;
  }
  const after = schedulingOf(pid);
  if (after !== undefined && after.policy !== (on ? SCHED_FIFO : SCHED_OTHER)) return `chrt succeeded but the policy is ${after.policy}`;
  return undefined;
}

const NOT_LINUX = `real-time scheduling is set on Linux only (this is ${process.platform})`;

/**
 * Puts a process's main thread (its event loop) at SCHED_FIFO priority 1, or back to normal,
 * and waits for chrt. Returns undefined when done, or why it could not be.
 */
export function setEventLoopRealtime(on: boolean, pid = process.pid): string | undefined {
  if (process.platform !== 'linux') return NOT_LINUX;
  const args = chrtArgs(on, pid);
  if (args === undefined) return undefined;
  const r = spawnSync('chrt', args, { encoding: 'utf8', timeout: 5_000 });
  return outcome(on, pid, { error: r.error, status: r.status, stderr: r.stderr ?? '', stdout: r.stdout ?? '' });
}

/** The same without blocking the event loop on chrt (for a serving process). */
export function setEventLoopRealtimeAsync(on: boolean, pid = process.pid): Promise<string | undefined> {
  if (process.platform !== 'linux') return Promise.resolve(NOT_LINUX);
  const args = chrtArgs(on, pid);
  if (args === undefined) return Promise.resolve(undefined);
  return new Promise((resolve) => {
    execFile('chrt', args, { encoding: 'utf8', timeout: 5_000 }, (error, stdout, stderr) => {
      // A non-zero exit comes as an error whose code is the status.
      const status = error === null ? 0 : typeof error.code === 'number' ? error.code : null;
      resolve(outcome(on, pid, { error: status === null ? error : undefined, status, stdout, stderr }));
    });
  });
}

/** At or above this event-loop utilization over a second, the loop gives real-time priority up. */
export const SATURATED_ELU = 0.8;
/** It takes it back after this many seconds in a row at or below CALM_ELU. */
export const CALM_ELU = 0.6;
export const CALM_SECONDS = 3;

export interface PriorityLog {
  info(msg: string): void;
  warn(msg: string): void;
}

/**
 * gateway.realtime, kept up while the process runs. Real-time priority is for a loop with
 * headroom: a saturated loop on SCHED_FIFO would take its core from its own GC and SQLite
 * threads (the rest of each second is all Linux leaves them), and its heap and usage backlog
 * would grow. So each second it looks at the loop's utilization: at SATURATED_ELU or more it
 * goes back to normal priority, and after CALM_SECONDS at CALM_ELU or less it is raised again.
 * Under a saturating load the latency is queueing's anyway.
 *
 * What is wanted (the config, the loop's load) and what is (the thread's policy) are kept
 * apart: one chrt at a time brings the second to the first, and goes again if what is wanted
 * changed meanwhile, so a reload during a change cannot leave the loop at the wrong priority.
 */
export class EventLoopPriority {
  #wanted = false;
  #saturated = false;
  #calm = 0;
  #raised = false;
  /** The raise was refused: not retried until the next configure(). */
  #refused = false;
  /** Why the next change is made, for its log line. */
  #why = '';
  #elu = performance.eventLoopUtilization();
  #timer: NodeJS.Timeout | undefined;
  readonly #log: PriorityLog;
  readonly #pid: number;
  readonly #utilization: () => number;
  readonly #changed: ((raised: boolean) => void) | undefined;

  constructor(log: PriorityLog, opts: { pid?: number; utilization?: () => number; changed?: (raised: boolean) => void } = {}) {
    this.#log = log;
    this.#pid = opts.pid ?? process.pid;
    this.#changed = opts.changed;
    this.#utilization = opts.utilization ?? (() => {
      const now = performance.eventLoopUtilization();
      const u = performance.eventLoopUtilization(now, this.#elu).utilization;
      this.#elu = now;
      return u;
    });
  }

  /** Whether the event loop is at real-time priority now. */
  get raised(): boolean {
    return this.#raised;
  }

  /** What the config asks for (at start and on every reload; a refused raise is tried again). */
  configure(want: boolean): Promise<void> {
    if (want !== this.#wanted || this.#refused) {
      this.#wanted = want;
      this.#refused = false;
      this.#saturated = false;
      this.#calm = 0;
      this.#elu = performance.eventLoopUtilization();
      this.#why = 'config';
    }
    if (want) this.#timer ??= setInterval(() => void this.tick(), 1_000).unref();
    else this.stop();
    return this.#reconcile();
  }

  /** One second's look at the loop (public for tests, which pass their own utilization). */
  tick(): Promise<void> {
    if (!this.#wanted || this.#refused) return this.#reconciler.running ?? Promise.resolve();
    const u = this.#utilization();
    const pct = Math.round(u * 100);
    if (!this.#saturated && u >= SATURATED_ELU) {
      this.#saturated = true;
      this.#calm = 0;
      this.#why = `the event loop is saturated (${pct}% busy): normal priority while it is, so its GC and writer threads keep up`;
    } else if (this.#saturated) {
      this.#calm = u <= CALM_ELU ? this.#calm + 1 : 0;
      if (this.#calm >= CALM_SECONDS) {
        this.#saturated = false;
        this.#why = `the event loop has headroom again (${pct}% busy): SCHED_FIFO ${REALTIME_PRIORITY}`;
      }
    }
    return this.#reconcile();
  }

  stop(): void {
    clearInterval(this.#timer);
    this.#timer = undefined;
  }

  /** Brings the thread's policy to what is wanted now, one chrt at a time. */
  #reconcile(): Promise<void> {
    return this.#reconciler.run();
  }

  readonly #reconciler = new Coalescer(async () => {
    const want = this.#wanted && !this.#saturated && !this.#refused;
    if (want === this.#raised && this.#why === '') return;
    const why = this.#why;
    this.#why = '';
    const failed = await setEventLoopRealtimeAsync(want, this.#pid);
    if (failed === undefined) {
      const changed = want !== this.#raised;
      this.#raised = want;
      if (changed) this.#changed?.(want);
      if (why === 'config') this.#log.info(want ? `gateway.realtime: the event loop runs at SCHED_FIFO ${REALTIME_PRIORITY}` : 'gateway.realtime: the event loop is back at normal priority');
      else if (changed) this.#log.info(`gateway.realtime: ${why}`);
    } else {
      if (want) this.#refused = true;
      this.#log.warn(`gateway.realtime: cannot ${want ? 'raise' : 'lower'} the event loop's priority: ${failed}; serving at ${this.#raised ? 'real-time' : 'normal'} priority`);
    }
  });

}

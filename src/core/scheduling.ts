// The event loop's scheduling class (gateway.realtime).
//
// A gateway process has more threads than its event loop: V8's GC and compiler helpers, the
// SQLite writer, libuv's pool. Where they share a core with the event loop, Linux's scheduler
// (EEVDF) lets a running helper finish its slice before a woken event loop gets the core, even
// at nice 19: a request arriving then waits up to ~3 ms (README, Performance: measured on this
// VM with a C loop and a bursting thread, and in `npm run bench -- --rate-only`). SCHED_FIFO on
// the event-loop thread alone makes it preempt them the moment it wakes. The helpers stay as
// they are, and threads created later start at normal priority (SCHED_RESET_ON_FORK), so only
// the thread that answers requests is raised. Linux keeps 5% of each second for normal threads
// (sched_rt_runtime_us), so a loop gone wrong cannot freeze its core.
//
// Node has no sched_setscheduler(2): chrt(1), from util-linux (on every Debian and most
// images), sets it. Raising needs CAP_SYS_NICE or an RLIMIT_RTPRIO of at least 1 (systemd:
// LimitRTPRIO=1, which `fabric render` writes when the config asks for it).

import { spawnSync } from 'node:child_process';
import { readProcStat } from './proc-stat.ts';

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

/**
 * Puts this process's main thread (its event loop) at SCHED_FIFO priority 1, or back to
 * normal. Returns undefined when done, or why it could not be (to log: serving goes on).
 */
export function setEventLoopRealtime(on: boolean, pid = process.pid): string | undefined {
  if (process.platform !== 'linux') return `real-time scheduling is set on Linux only (this is ${process.platform})`;
  const now = schedulingOf(pid);
  if (now !== undefined && (now.policy === SCHED_FIFO) === on && (!on || now.priority === REALTIME_PRIORITY)) return undefined;
  // Without --all-tasks, chrt --pid changes the one thread whose id is PID: the main thread.
  const args = on
    ? ['--fifo', '--reset-on-fork', '--pid', String(REALTIME_PRIORITY), String(pid)]
    : ['--other', '--pid', '0', String(pid)];
  const r = spawnSync('chrt', args, { encoding: 'utf8', timeout: 5_000 });
  if (r.error !== undefined) {
    const code = (r.error as NodeJS.ErrnoException).code;
    return code === 'ENOENT' ? 'chrt (util-linux) is not installed' : `chrt failed: ${code ?? r.error.message}`;
  }
  if (r.status !== 0) {
    const said = (r.stderr || r.stdout).trim().replace(/^chrt: /, '');
    const denied = /not permitted|permission denied/i.test(said);
    return denied ? `${said} (it needs CAP_SYS_NICE, or LimitRTPRIO=1 in a systemd unit)` : said || `chrt exited with ${r.status}`;
  }
  const after = schedulingOf(pid);
  if (after !== undefined && after.policy !== (on ? SCHED_FIFO : SCHED_OTHER)) return `chrt succeeded but the policy is ${after.policy}`;
  return undefined;
}

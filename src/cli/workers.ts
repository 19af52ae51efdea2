// Several gateway processes sharing one port (node:cluster): the primary only forks, forwards
// signals and restarts a worker that dies; each worker is a whole gateway (config, health
// probes, passive health, limits without Redis are per worker); the primary also relays
// what workers ask each other (siblings.ts: Responses items, metrics).

import cluster, { type Worker } from 'node:cluster';
import { availableParallelism } from 'node:os';
import type { Logger } from '../core/log.ts';
import { relaySiblings } from './siblings.ts';

/** `--workers auto` or a count; undefined when the value is not one. */
export function parseWorkers(v: string): number | undefined {
  if (v === 'auto') return availableParallelism();
  const n = Number(v);
  return Number.isInteger(n) && n >= 1 && n <= 64 ? n : undefined;
}

export function isWorker(): boolean {
  return cluster.isWorker;
}

/**
 * This worker's place among the N (0 to N-1), kept by the worker that replaces it; undefined
 * outside a cluster. Worker 0 does what must happen once for the fleet (the alert webhook).
 */
export function workerIndex(): number | undefined {
  const i = process.env.FABRIC_WORKER_INDEX;
  return cluster.isWorker && i !== undefined && i !== '' ? Number(i) : undefined;
}

/** This many worker deaths within the window make the primary give up instead of restarting. */
const CRASH_WINDOW_MS = 60_000;
const MAX_CRASHES = 5;
/** A replacement that cannot start (the config on disk refused, say) is tried again after this, doubling, up to the longest. */
const START_RETRY_MS = 1_000;
const START_RETRY_MAX_MS = 30_000;
/** With no worker serving, this many replacements in a row that cannot start make the primary give up. */
const MAX_START_FAILURES = 5;

/**
 * Runs the primary: forks `count` workers running the same command and forwards SIGHUP (reload)
 * and SIGTERM/SIGINT (a drain of every worker). A worker that dies is replaced (the primary gives
 * up at the MAX_CRASHES-th death within a minute). A worker that exits before it ever listened
 * could not start: at start, that stops the gateway (exit 1, as one process would); later, its
 * replacement is tried again with a growing wait while the others serve, unless none does.
 * Resolves with the exit code.
 */
export function runPrimary(count: number, graceMs: number, log: Logger): Promise<number> {
  return new Promise((resolve) => {
    let stopping = false;
    let exitCode = 0;
    const crashes: number[] = [];
    /** Workers that have listened (served), by cluster id. */
    const serving = new Set<number>();
    let startedOnce = false;
    let startFailures = 0;
    /** Each worker's index (workerIndex()), which the worker that replaces it takes over. */
    const indexOf = new Map<number, number>();
    const fork = (index: number): Worker => {
      const w = cluster.fork({ FABRIC_WORKER: '1', FABRIC_WORKER_INDEX: String(index) });
      indexOf.set(w.id, index);
      return w;
    };
    relaySiblings();
    for (let i = 0; i < count; i++) fork(i);
    log.info(`started ${count} worker processes sharing the port`, { pid: process.pid });
    log.flush();

    const live = (): Worker[] => Object.values(cluster.workers ?? {}).filter((w): w is Worker => w !== undefined);
    const stopAll = (signal: NodeJS.Signals): void => {
      for (const w of live()) w.process.kill(signal);
      // Workers drain within their grace; past it (and a margin) they are killed.
      setTimeout(() => { for (const w of live()) w.process.kill('SIGKILL'); }, graceMs + 5_000).unref();
    };
    const giveUp = (why: string): void => {
      log.error(why);
      log.flush();
      stopping = true;
      exitCode = 1;
      if (live().length === 0) resolve(exitCode);
      else stopAll('SIGTERM');
    };

    cluster.on('listening', (worker) => {
      serving.add(worker.id);
      startFailures = 0;
      if (serving.size === count) startedOnce = true;
    });

    cluster.on('exit', (worker, code, signal) => {
      const served = serving.delete(worker.id);
      const index = indexOf.get(worker.id) ?? 0;
      indexOf.delete(worker.id);
      if (stopping) {
        if (live().length === 0) {
          log.info('all workers stopped');
          log.flush();
          resolve(exitCode);
        }
        return;
      }
      const how = signal ?? `exit code ${code}`;
      if (!served) {
        // It never listened: it could not start (its own message is above).
        if (!startedOnce) return giveUp(`worker ${worker.process.pid} could not start (${how}): stopping`);
        startFailures++;
        if (serving.size === 0 && startFailures >= MAX_START_FAILURES) return giveUp(`no worker is serving and ${startFailures} new ones in a row could not start (${how}): stopping`);
        const wait = Math.min(START_RETRY_MAX_MS, START_RETRY_MS * 2 ** (startFailures - 1));
        log.error(`a new worker could not start (${how}; its message is above); ${serving.size} of ${count} serving; trying again in ${wait / 1000}s`);
        log.flush();
        // Not unref'd: with no worker alive, this timer is what keeps the primary going.
        setTimeout(() => { if (!stopping) fork(index); }, wait);
        return;
      }
      const now = Date.now();
      crashes.push(now);
      while (crashes.length > 0 && crashes[0]! < now - CRASH_WINDOW_MS) crashes.shift();
      if (crashes.length >= MAX_CRASHES) return giveUp(`worker ${worker.process.pid} exited (${how}); ${crashes.length} exits within a minute: stopping`);
      log.warn(`worker ${worker.process.pid} exited (${how}); starting a new one`);
      log.flush();
      // Not unref'd: with every worker dead, this timer is what keeps the primary going.
      setTimeout(() => { if (!stopping) fork(index); }, 500 * crashes.length);
    });

    // Workers still starting take a reload once they run (serve.ts): every one is told.
    process.on('SIGHUP', () => {
      log.info('SIGHUP: every worker reloads its config');
      for (const w of live()) w.process.kill('SIGHUP');
    });
    const stop = (sig: NodeJS.Signals): void => {
      if (stopping) {
        // A second Ctrl-C means now (the workers, in the same terminal, had it too).
        if (sig === 'SIGINT') {
          log.warn('SIGINT again: stopping every worker at once');
          log.flush();
          for (const w of live()) w.process.kill('SIGKILL');
          resolve(130);
        }
        return;
      }
      stopping = true;
      log.info(`${sig}: draining every worker (grace ${graceMs / 1000}s)`);
      log.flush();
      if (live().length === 0) resolve(exitCode);
      else stopAll('SIGTERM');
    };
    process.on('SIGTERM', () => stop('SIGTERM'));
    process.on('SIGINT', () => stop('SIGINT'));
  });
}

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

/**
 * Runs the primary: forks `count` workers running the same command, restarts one that exits
 * unexpectedly (giving up at the MAX_CRASHES-th death within a minute), forwards SIGHUP (reload) and turns
 * SIGTERM/SIGINT into a drain of every worker. Resolves with the exit code.
 */
export function runPrimary(count: number, graceMs: number, log: Logger): Promise<number> {
  return new Promise((resolve) => {
    let stopping = false;
    let exitCode = 0;
    const crashes: number[] = [];
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

    cluster.on('exit', (worker, code, signal) => {
      if (stopping) {
        if (live().length === 0) {
          log.info('all workers stopped');
          log.flush();
          resolve(exitCode);
        }
        return;
      }
      const now = Date.now();
      crashes.push(now);
      while (crashes.length > 0 && crashes[0]! < now - CRASH_WINDOW_MS) crashes.shift();
      if (crashes.length >= MAX_CRASHES) {
        log.error(`worker ${worker.process.pid} exited (${signal ?? code}); ${crashes.length} exits within a minute: stopping`);
        stopping = true;
        exitCode = 1;
        if (live().length === 0) resolve(exitCode);
        else stopAll('SIGTERM');
        return;
      }
      log.warn(`worker ${worker.process.pid} exited (${signal ?? code}); starting a new one`);
      const index = indexOf.get(worker.id) ?? 0;
      indexOf.delete(worker.id);
      setTimeout(() => { if (!stopping) fork(index); }, 500 * crashes.length).unref();
    });

    process.on('SIGHUP', () => {
      log.info('SIGHUP: every worker reloads its config');
      for (const w of live()) w.process.kill('SIGHUP');
    });
    const stop = (sig: NodeJS.Signals): void => {
      if (stopping) return;
      stopping = true;
      log.info(`${sig}: draining every worker (grace ${graceMs / 1000}s)`);
      log.flush();
      if (live().length === 0) resolve(exitCode);
      else stopAll('SIGTERM');
    };
    process.once('SIGTERM', () => stop('SIGTERM'));
    process.once('SIGINT', () => stop('SIGINT'));
  });
}

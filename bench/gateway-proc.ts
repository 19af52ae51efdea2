// The gateway under test, in its own process (pinned by the orchestrator to its own core),
// started through the same composition root as `fabric serve`: startGateway() with the config
// the orchestrator wrote, the master key from the environment, health probes on, and the
// per-request log line written for real: to stdout, as `fabric serve` does, which the
// orchestrator points at BENCH_GATEWAY_LOG (/dev/null by default).
//
//   node bench/gateway-proc.ts <config.yaml>     (as a child of bench/run.ts, with IPC)

import { readFileSync, writeFileSync } from 'node:fs';
import { Session } from 'node:inspector/promises';
import { parseFabricText } from '../src/config/load.ts';
import { Secrets } from '../src/config/env-file.ts';
import { createLogger } from '../src/core/log.ts';
import { secretNames, startGateway } from '../src/main.ts';
import { EventLoopPriority, setEventLoopRealtime } from '../src/core/scheduling.ts';
import { GcWatch } from './gc-watch.ts';

export interface GatewayStats {
  type: 'stats';
  rssBytes: number;
  heapUsedBytes: number;
  heapTotalBytes: number;
  externalBytes: number;
  /** cumulative since start */
  gcCount: number;
  gcMs: number;
  gcMaxMs: number;
}

const file = process.argv[2];
if (process.send === undefined || file === undefined) {
  process.stderr.write('usage: node bench/gateway-proc.ts <config.yaml>   (as a child of bench/run.ts, with IPC)\n');
  process.exit(2);
}

const { config } = parseFabricText(readFileSync(file, 'utf8'), file);
const secrets = new Secrets(process.env);
// The logger's default sink is process.stdout, as in `fabric serve`; stdout is the log file.
const log = createLogger({ secrets: secrets.values(secretNames(config)) });

const gc = new GcWatch();

const gw = await startGateway(config, secrets, { host: '127.0.0.1', port: 0, log, probe: true });
// As `fabric serve` does with gateway.realtime: true (bench --realtime), saturation included.
let realtimeFailed: string | undefined;
const priority = new EventLoopPriority({ info: (m) => log.info(m), warn: (m) => { realtimeFailed = m; log.warn(m); } });
await priority.configure(config.gateway.realtime);

let closing = false;
const stop = (): void => {
  if (closing) return;
  closing = true;
  void gw.close(1000).finally(() => process.exit(0));
};
// --profile and --alloc: the orchestrator brackets a phase with *-start / *-stop, so the
// profile holds that phase only, not start-up and idle time.
let session: Session | undefined;
type Post = (method: string, params?: object) => Promise<{ profile?: unknown }>;
async function sessionStart(...calls: [method: string, params?: object][]): Promise<void> {
  session = new Session();
  session.connect();
  for (const [method, params] of calls) await (session.post as Post)(method, params);
}
async function sessionStop(method: string, file: string): Promise<void> {
  if (session === undefined) return;
  const { profile } = await (session.post as Post)(method);
  writeFileSync(file, JSON.stringify(profile));
  session.disconnect();
  session = undefined;
}
// CPU: sampled every 200 µs.
const profileStart = (): Promise<void> => sessionStart(['Profiler.enable'], ['Profiler.setSamplingInterval', { interval: 200 }], ['Profiler.start']);
// Allocations: 1 in each 8 KiB, garbage included, for bytes per request by function.
const allocStart = (): Promise<void> => sessionStart(['HeapProfiler.enable'],
  ['HeapProfiler.startSampling', { samplingInterval: 8192, includeObjectsCollectedByMajorGC: true, includeObjectsCollectedByMinorGC: true }]);

process.on('message', (m: { type: string; file?: string; sinceMs?: number }) => {
  if (m.type === 'alloc-start') {
    void allocStart().then(() => process.send!({ type: 'alloc-started' }));
  } else if (m.type === 'alloc-stop') {
    void sessionStop('HeapProfiler.stopSampling', m.file!).then(() => process.send!({ type: 'alloc-stopped', file: m.file }));
  } else if (m.type === 'gc-pauses') {
    process.send!({ type: 'gc-pauses', pauses: gc.since(m.sinceMs ?? 0) });
  } else if (m.type === 'profile-start') {
    void profileStart().then(() => process.send!({ type: 'profile-started' }));
  } else if (m.type === 'profile-stop') {
    void sessionStop('Profiler.stop', m.file!).then(() => process.send!({ type: 'profile-stopped', file: m.file }));
  } else if (m.type === 'stats') {
    const mem = process.memoryUsage();
    const s: GatewayStats = {
      type: 'stats', rssBytes: mem.rss, heapUsedBytes: mem.heapUsed, heapTotalBytes: mem.heapTotal, externalBytes: mem.external,
      gcCount: gc.totals.count, gcMs: gc.totals.ms, gcMaxMs: gc.totals.maxMs,
    };
    process.send!(s);
  } else if (m.type === 'realtime') {
    // --rate-only --realtime-ab: the same process, alternately at normal and real-time priority.
    process.send!({ type: 'realtime-set', failed: setEventLoopRealtime((m as { on?: boolean }).on === true) });
  } else if (m.type === 'exit') stop();
});
process.on('disconnect', stop);
process.on('SIGTERM', stop);
process.send({ type: 'ready', pid: process.pid, url: gw.url, realtimeFailed });

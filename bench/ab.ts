// `npm run bench:ab`: CPU per request of the bare proxy and of one or more gateway builds, measured in alternating short closed-loop rounds, so that the VM's
// drifting speed hits every contender alike. The figure to read is each gateway's CPU per
// request as a multiple of the bare proxy's in the same rounds: it moves far less than
// req/s between runs, and it is what a change to the request path changes.
//
//   node bench/ab.ts [--rounds N] [--seconds S] [--gateway LABEL=path/to/gateway-proc.js ...]
//
// Without --gateway it builds the working tree (as bench/run.ts does) and compares that with
// the bare proxy. To compare against an older commit, build it first (bench/README.md).
// Gateways are called with the master key: no key lookup, token buckets or budget check, which
// `npm run bench` includes (a virtual key).

import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { fileURLToPath } from 'node:url';
import { Child, buildGatewayProc, canPin, cpuSecondsOf, envNodeFlags, killOnExit, memoryOf, pinPid, startServerProc } from './procs.ts';
import { RUNTIME_NODE_FLAGS, UPSTREAM_MODELS, fabricYaml, payload } from './shared.ts';
import type { Job, PhaseResult, TargetSpec } from './shared.ts';

const HERE = dirname(fileURLToPath(import.meta.url));
const { values } = parseArgs({
  options: {
    rounds: { type: 'string', default: '5' },
    seconds: { type: 'string', default: '3' },
    gateway: { type: 'string', multiple: true },
    'node-flags': { type: 'string', multiple: true },
    concurrency: { type: 'string', default: '64' },
    help: { type: 'boolean', short: 'h' },
  },
});
if (values.help === true) {
  process.stdout.write('usage: node bench/ab.ts [--rounds N] [--seconds S] [--concurrency C] [--gateway LABEL=gateway-proc.js[@gateway-yaml] ...] [--node-flags LABEL=FLAGS ...]\n');
  process.exit(0);
}
const rounds = Number(values.rounds);
const seconds = Number(values.seconds);
const concurrency = Number(values.concurrency);

const pinned = cpus().length >= 2 && canPin([0, 1]);
if (pinned) pinPid(process.pid, 0);
const children: Child[] = [];
killOnExit(children);
const say = (s: string): void => void process.stderr.write(`ab: ${s}\n`);

// LABEL=SCRIPT[@YAML]: YAML is extra lines for the config's gateway: section (e.g.
// "accounting: { enabled: false }"), to measure what one feature costs.
let gateways = (values.gateway ?? []).map((g) => {
  const i = g.indexOf('=');
  const at = g.indexOf('@', i);
  return { label: g.slice(0, i), script: resolve(g.slice(i + 1, at === -1 ? undefined : at)), extra: at === -1 ? '' : g.slice(at + 1) };
});
if (gateways.length === 0) gateways = [{ label: 'gateway', script: buildGatewayProc(), extra: '' }];

const upstream = new Child('upstream', join(HERE, 'upstream-proc.ts'), [payload(UPSTREAM_MODELS.fast)], { cpu: pinned ? 0 : undefined });
children.push(upstream);
const up = await upstream.waitFor('ready', 15_000);
upstream.pid = up.pid as number;
const fixed = (up.urls as { fixed: string }).fixed;

const masterKey = randomBytes(24).toString('base64url');
mkdirSync(join(HERE, 'results'), { recursive: true });
const configFor = (label: string, extra: string): string => {
  const file = join(HERE, 'results', `ab.${label.replace(/[^\w-]/g, '_')}.fabric.yaml`);
  writeFileSync(file, fabricYaml({ fast: fixed, gateway: extra === '' ? [] : [extra] }));
  return file;
};
const logFd = openSync(process.env.BENCH_GATEWAY_LOG ?? '/dev/null', 'a');
const extraFlags = envNodeFlags();
const headers = { 'content-type': 'application/json', authorization: `Bearer ${masterKey}` };

interface Contender { label: string; child: Child; target: TargetSpec; cpuUs: number[]; rps: number[]; rss: number; rssAtRound: number; heap?: string; sys: number[] }
const contenders: Contender[] = [];
// --node-flags LABEL=FLAGS: V8/node flags for one contender, after the runtime's own.
const flagsOf = new Map((values['node-flags'] ?? []).map((f) => [f.slice(0, f.indexOf('=')), f.slice(f.indexOf('=') + 1).split(/\s+/).filter((x) => x !== '')]));
async function start(label: string, script: string, args: string[], model: string): Promise<void> {
  // Each contender on its own empty store, so none inherits another's (or an earlier run's) data.
  const dataDir = mkdtempSync(join(tmpdir(), 'fabric-ab-'));
  process.on('exit', () => rmSync(dataDir, { recursive: true, force: true }));
  const { child, url } = await startServerProc(children, label, script, args, {
    cpu: pinned ? 1 : undefined, env: { ...process.env, BENCH_MASTER_KEY: masterKey, FABRIC_DATA_DIR: dataDir },
    nodeFlags: [...RUNTIME_NODE_FLAGS, ...extraFlags, ...(flagsOf.get(label) ?? [])], stdout: logFd,
  });
  contenders.push({ label, child, target: { origin: url, path: '/v1/chat/completions', headers, body: payload(model) }, cpuUs: [], rps: [], rss: 0, rssAtRound: 0, sys: [] });
}
await start('bare proxy', join(HERE, 'bare-proxy.ts'), [fixed], UPSTREAM_MODELS.fast);
for (const g of gateways) await start(g.label, g.script, [configFor(g.label, g.extra)], 'chat-fast');

const loadgen = new Child('loadgen', join(HERE, 'loadgen.ts'), [], { cpu: pinned ? 0 : undefined });
children.push(loadgen);
loadgen.pid = (await loadgen.waitFor('ready', 15_000)).pid as number;

/** read(2)- and write(2)-family system calls the process has made (/proc/PID/io). */
function syscallsOf(pid: number): number {
  const io = readFileSync(`/proc/${pid}/io`, 'utf8');
  return Number(/syscr: (\d+)/.exec(io)?.[1]) + Number(/syscw: (\d+)/.exec(io)?.[1]);
}

async function run(c: Contender, ms: number): Promise<{ cpuUs: number; rps: number; sys: number }> {
  const job: Job = { kind: 'closed', target: c.target, concurrency, durationMs: ms };
  const cpu0 = cpuSecondsOf(c.child.pid);
  const sys0 = syscallsOf(c.child.pid);
  loadgen.send({ type: 'job', job });
  const reply = await loadgen.waitFor(['result', 'failed'], ms + 30_000);
  if (reply.type === 'failed') throw new Error(String(reply.error));
  const r = reply.result as PhaseResult;
  if (r.errors > 0) throw new Error(`${c.label}: ${r.errors} errors (${r.firstError})`);
  // Peak RSS over the process's life (VmHWM); the heap as it is after the round with the largest resident size.
  const { rssBytes, hwmBytes } = memoryOf(c.child.pid);
  if (rssBytes > c.rssAtRound && c.label !== 'bare proxy') {
    // Where a gateway's memory is at its largest: V8 heap, memory outside it (buffers), the rest.
    const st = await c.child.request({ type: 'stats' }, 'stats', 5000);
    const mib = (b: unknown): string => ((b as number) / 2 ** 20).toFixed(0);
    c.heap = `heap ${mib(st.heapUsedBytes)}/${mib(st.heapTotalBytes)} MiB, external ${mib(st.externalBytes)} MiB`;
    c.rssAtRound = rssBytes;
  }
  c.rss = hwmBytes;
  return { cpuUs: ((cpuSecondsOf(c.child.pid) - cpu0) * 1e6) / r.ok, rps: r.throughput, sys: (syscallsOf(c.child.pid) - sys0) / r.ok };
}

for (const c of contenders) await run(c, 1500); // JIT warm-up
for (let i = 0; i < rounds; i++) {
  // Rotate the order each round, so no contender always follows the same one.
  for (let j = 0; j < contenders.length; j++) {
    const c = contenders[(i + j) % contenders.length]!;
    const m = await run(c, seconds * 1000);
    c.cpuUs.push(m.cpuUs);
    c.rps.push(m.rps);
    c.sys.push(m.sys);
  }
  say(`round ${i + 1}: ${contenders.map((c) => `${c.label} ${c.cpuUs.at(-1)!.toFixed(0)} µs/req ${c.rps.at(-1)!.toFixed(0)} req/s`).join(' · ')}`);
}
const median = (a: number[]): number => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)]!;
const bareC = contenders[0]!;
process.stdout.write(`\n${'contender'.padEnd(14)} ${'CPU µs/req (median)'.padStart(20)} ${'× bare (median of rounds)'.padStart(26)} ${'req/s (median)'.padStart(15)} ${'read+write calls/req'.padStart(21)} ${'peak RSS'.padStart(9)}\n`);
for (const c of contenders) {
  const ratios = c.cpuUs.map((v, i) => v / bareC.cpuUs[i]!);
  process.stdout.write(`${c.label.padEnd(14)} ${median(c.cpuUs).toFixed(1).padStart(20)} ${median(ratios).toFixed(2).padStart(26)} ${median(c.rps).toFixed(0).padStart(15)} ${median(c.sys).toFixed(2).padStart(21)} ${`${(c.rss / 2 ** 20).toFixed(0)} MiB`.padStart(9)}${c.heap === undefined ? '' : `  (at its largest round: ${c.heap})`}\n`);
}
// The figures, kept: bench/results/ab.json (git-ignored, like every run's results).
writeFileSync(join(HERE, 'results', 'ab.json'), JSON.stringify({
  date: new Date().toISOString(), rounds, seconds, concurrency, pinned,
  contenders: contenders.map((c) => ({
    label: c.label, cpuUsPerRequest: c.cpuUs, requestsPerSecond: c.rps, syscallsPerRequest: c.sys, peakRssBytes: c.rss,
    medianCpuUs: median(c.cpuUs), medianRatioToBare: median(c.cpuUs.map((v, i) => v / bareC.cpuUs[i]!)),
  })),
}, null, 2) + '\n');
for (const c of [...children].reverse()) await c.stop();

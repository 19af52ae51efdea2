// `npm run bench`: the gateway's added latency, throughput, streaming time to first byte and
// memory, each against the same upstream called directly in the same run. See bench/README.md.
//
//   node bench/run.ts [--quick] [--profile] [--strict] [--upstream fixed|sim] [--out FILE]
//
// Layout on a 2-CPU box: the upstream and the load generator share CPU 0, the gateway (or the
// bare reference proxy) has CPU 1 to itself, and this orchestrator, mostly asleep, sits on CPU 0.

import { randomBytes } from 'node:crypto';
import { closeSync, mkdirSync, mkdtempSync, openSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, release, tmpdir } from 'node:os';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { request } from 'undici';
import { Child, buildGatewayProc, canPin, cpuSecondsOf, envNodeFlags, killOnExit, memoryOf, minorFaultsOf, pinPid, startServerProc, threadCpuDelta, threadCpuOf, type ThreadUse } from './procs.ts';
import { RUNTIME_NODE_FLAGS, SLOW_MS, UPSTREAM_MODELS, fabricYaml, payload } from './shared.ts';
import type { GcPause } from './gc-watch.ts';
import type { Job, PhaseResult, TargetSpec } from './shared.ts';
import type { GatewayStats } from './gateway-proc.ts';
import { printTable, row, type Row } from './report.ts';
import { setEventLoopRealtime } from '../src/core/scheduling.ts';
import { allocTop, topSelfTime } from './profile-top.ts';
import { nginxBinary, startNginx, type Nginx } from './nginx.ts';

const HERE = dirname(fileURLToPath(import.meta.url));
const ROOT = dirname(HERE);

// ---- options -------------------------------------------------------------------------

const argv = process.argv.slice(2);
const USAGE = `usage: node bench/run.ts [--quick] [--profile] [--strict] [--upstream fixed|sim] [--out FILE]
  --quick     ~40 s smoke run with short phases and no bare-proxy reference (for CI)
  --profile   CPU-profile the gateway during its max-throughput phase and list the top
              self-time functions (profiling slows that phase down)
  --strict    exit 1 when a goal is missed (failed requests always exit 1)
  --upstream  what answers the non-streamed requests: fixed (default; a bare TCP server
              replaying the simulator's answer) or sim (the simulated vLLM engine itself)
  --out       JSON output file (default bench/results/latest.json)
  --alloc     with --rate-only: sample the gateway's allocations (garbage included) in the first
              round, and list the bytes per request by function
  --rate-only [N]  only the 2,000 req/s phase, direct then gateway, N times (default 3),
              each with its slow requests and GC pauses: for work on the latency tail
  --realtime-ab  with --rate-only: each round measures the same gateway process twice, at
              normal priority and with its event loop at SCHED_FIFO 1
  --nginx     with --rate-only: nginx (installed: apt-get install nginx) as one more contender,
              one worker on the gateway's core: what a C reverse proxy gets from this machine
  --realtime  the gateway with gateway.realtime: true (its event loop at SCHED_FIFO 1), and the
              bare proxy and TCP relay raised the same way, so the comparison stays fair
`;
if (argv.includes('--help') || argv.includes('-h')) {
  process.stdout.write(USAGE);
  process.exit(0);
}
function option(name: string): string | undefined {
  const i = argv.indexOf(name);
  return i >= 0 ? argv[i + 1] : undefined;
}
const quick = argv.includes('--quick');
const alloc = argv.includes('--alloc');
const rateOnly = argv.includes('--rate-only') ? Math.max(1, Number(option('--rate-only')) || 3) : undefined;
const profile = argv.includes('--profile');
const strict = argv.includes('--strict');
const realtime = argv.includes('--realtime');
const realtimeAb = argv.includes('--realtime-ab');
const withNginx = argv.includes('--nginx');
const nginxPath = withNginx ? nginxBinary() : undefined;
if (withNginx && (rateOnly === undefined || nginxPath === undefined)) {
  process.stderr.write(rateOnly === undefined ? '--nginx goes with --rate-only\n' : '--nginx: nginx is not installed (Debian: apt-get install nginx)\n');
  process.exit(2);
}
const upstreamKind = option('--upstream') ?? 'fixed';
if (upstreamKind !== 'fixed' && upstreamKind !== 'sim') {
  process.stderr.write(USAGE);
  process.exit(2);
}
const resultsDir = join(HERE, 'results');
const outFile = option('--out') ?? join(resultsDir, 'latest.json');

interface Plan {
  warmMs: number;
  rates: number[];
  rateMs: number;
  closedMs: number;
  concurrency: number;
  ttfbRate: number;
  ttfbMs: number;
  streams: number;
  /** run the bare reference proxy at 2,000 req/s and at max throughput */
  bare: boolean;
}
const plan: Plan = quick
  ? { warmMs: 1000, rates: [500, 2000], rateMs: 2000, closedMs: 2500, concurrency: 64, ttfbRate: 200, ttfbMs: 1500, streams: 1000, bare: false }
  : { warmMs: 3000, rates: [500, 1000, 2000, 5000], rateMs: 6000, closedMs: 8000, concurrency: 64, ttfbRate: 200, ttfbMs: 5000, streams: 1000, bare: true };

const GOAL_RATE = 2000;
const GOALS = {
  addedP50Ms: 0.25,
  addedP99Ms: 1,
  throughput: 10_000,
  addedTtfbMs: 0.5,
  rssMiB: 150,
} as const;

/** Nothing in a run may outlive this: the watchdog kills every child and exits. */
const WATCHDOG_MS = quick ? 120_000 : 360_000;

// ---- processes ----------------------------------------------------------------------

const pinned = cpus().length >= 2 && canPin([0, 1]);
const CPU_LOAD = pinned ? 0 : undefined;
// BENCH_GATEWAY_CPUS: the CPU list for the process under test (taskset syntax), for experiments
// such as "0-1" (let it share CPU 0); the run is labelled with it.
const CPU_GATEWAY = pinned ? (process.env.BENCH_GATEWAY_CPUS ?? 1) : undefined;
if (pinned) pinPid(process.pid, 0);

const children: Child[] = [];
const killAll = (): void => {
  for (const c of children) c.kill();
};
killOnExit(children);
const watchdog = setTimeout(() => {
  process.stderr.write(`bench: watchdog: the run exceeded ${WATCHDOG_MS / 1000} s; stopping\n`);
  killAll();
  process.exit(1);
}, WATCHDOG_MS);
watchdog.unref();

const say = (s: string): void => {
  process.stderr.write(`bench: ${s}\n`);
};

interface UpstreamUrls {
  fast: string;
  stream: string;
  slow: string;
  fixed: string;
}

const started = Date.now();
mkdirSync(resultsDir, { recursive: true });
// Every run starts from an empty store (SQLite file and spool), so runs compare: a store grown
// by earlier runs makes inserts slower. Both gateway processes of a run share it (the virtual key).
const dataDir = mkdtempSync(join(tmpdir(), 'fabric-bench-'));
process.on('exit', () => rmSync(dataDir, { recursive: true, force: true }));
const masterKey = randomBytes(24).toString('base64url');
const gatewayLog = process.env.BENCH_GATEWAY_LOG ?? '/dev/null';

// ---- requests -----------------------------------------------------------------------

const headers = { 'content-type': 'application/json', authorization: `Bearer ${masterKey}` };
function target(origin: string, model: string, extra: Record<string, unknown> = {}): TargetSpec {
  return { origin, path: '/v1/chat/completions', headers, body: payload(model, extra) };
}

say(`${quick ? 'quick' : 'full'} run; ${pinned ? `upstream + load generator on CPU 0, gateway on CPU ${CPU_GATEWAY}` : 'NOT pinned (taskset missing or fewer than 2 CPUs)'}; upstream for non-streamed requests: ${upstreamKind}${realtime ? '; event loops of the processes under test at SCHED_FIFO 1 (--realtime)' : ''}`);

const upstream = new Child('upstream', join(HERE, 'upstream-proc.ts'), [payload(UPSTREAM_MODELS.fast)], { cpu: CPU_LOAD });
children.push(upstream);
const upReady = await upstream.waitFor('ready', 15_000);
upstream.pid = upReady.pid as number;
const urls = upReady.urls as UpstreamUrls;
const fastUrl = upstreamKind === 'fixed' ? urls.fixed : urls.fast;

const configFile = join(resultsDir, 'bench.fabric.yaml');
// Every feature on the request path is on: auth, routing through roles, metrics, accounting
// (usage records spooled and batched into SQLite) and the per-request log line.
// BENCH_NO_ACCOUNTING=1 turns accounting off, to measure what it costs; BENCH_GATEWAY_YAML adds
// a line to the config's gateway: section (e.g. 'accounting: { flush_interval: 50ms }').
const extraYaml = [
  ...(process.env.BENCH_NO_ACCOUNTING === '1' ? ['accounting: { enabled: false }'] : []),
  ...(process.env.BENCH_GATEWAY_YAML ? [process.env.BENCH_GATEWAY_YAML] : []),
  ...(realtime ? ['realtime: true'] : []),
];
writeFileSync(configFile, fabricYaml({
  fast: fastUrl, stream: urls.stream, slow: urls.slow, slowConnections: plan.streams + 100, gateway: extraYaml,
}));
const logFd = openSync(gatewayLog, 'a');
// Experimental node flags (BENCH_NODE_FLAGS) go to the gateway and the bare proxy, after the
// runtime's own; a run with any is labelled with them. Their stdout goes to the gateway log.
const gatewayNodeFlags = envNodeFlags();
const GATEWAY_PROC = buildGatewayProc();
async function startGatewayProc(): Promise<{ child: Child; url: string }> {
  const started = await startServerProc(children, 'gateway', GATEWAY_PROC, [configFile], {
    cpu: CPU_GATEWAY,
    env: { ...process.env, BENCH_MASTER_KEY: masterKey, FABRIC_DATA_DIR: dataDir },
    nodeFlags: [...RUNTIME_NODE_FLAGS, ...gatewayNodeFlags],
    stdout: logFd,
  });
  if (started.ready.realtimeFailed) throw new Error(`--realtime: the gateway could not raise its event loop: ${String(started.ready.realtimeFailed)}`);
  return started;
}
/** --realtime: the reference processes' main threads get what gateway.realtime gives the gateway's. */
function raise(label: string, pid: number): void {
  const failed = realtime ? setEventLoopRealtime(true, pid) : undefined;
  if (failed !== undefined) throw new Error(`--realtime: cannot raise the ${label}: ${failed}`);
}
const first = await startGatewayProc();
/** The gateway process under test; the streams phase gets a fresh one. */
let gateway = first.child;
const gatewayUrl = first.url;

let bare: Child | undefined;
let bareUrl = '';
let relay: Child | undefined;
let relayUrl = '';
// The relay runs in the tail-only mode and in a full run (not --quick): the floor under any
// proxy on this machine, which the 2,000 req/s figures are read against.
if (rateOnly !== undefined || plan.bare) {
  const r = await startServerProc(children, 'tcp relay', join(HERE, 'tcp-relay.ts'), [fastUrl], { cpu: CPU_GATEWAY, nodeFlags: [...RUNTIME_NODE_FLAGS, ...gatewayNodeFlags], stdout: logFd });
  relay = r.child;
  relayUrl = r.url;
  raise('tcp relay', relay.pid);
}
const nginx: Nginx | undefined = nginxPath === undefined ? undefined : await startNginx(nginxPath, fastUrl, CPU_GATEWAY);
if (plan.bare) {
  const r = await startServerProc(children, 'bare proxy', join(HERE, 'bare-proxy.ts'), [fastUrl], { cpu: CPU_GATEWAY, nodeFlags: [...RUNTIME_NODE_FLAGS, ...gatewayNodeFlags], stdout: logFd });
  bare = r.child;
  bareUrl = r.url;
  raise('bare proxy', bare.pid);
}

const loadgen = new Child('loadgen', join(HERE, 'loadgen.ts'), [], { cpu: CPU_LOAD });
children.push(loadgen);
loadgen.pid = (await loadgen.waitFor('ready', 15_000)).pid as number;

// Requests through the gateway authenticate as an application would: with a virtual key that
// has rate limits (RPM and TPM, far above what the benchmark sends) and a monthly budget, so
// key lookup, both token buckets and the budget check are on the measured path.
// BENCH_MASTER_KEY_ONLY=1 sends the master key instead (the path before keys existed).
const viaMasterKey = process.env.BENCH_MASTER_KEY_ONLY === '1';
const gatewayHeaders = viaMasterKey ? headers : { ...headers, authorization: `Bearer ${await createVirtualKey(first.url)}` };
async function createVirtualKey(origin: string): Promise<string> {
  const r = await request(`${origin}/admin/keys`, {
    method: 'POST', headers,
    body: JSON.stringify({ name: 'bench', rpm: 100_000_000, tpm: 100_000_000_000, budget: { amount: 1_000_000, period: 'month' } }),
  });
  const j = (await r.body.json()) as { key?: string };
  if (r.statusCode !== 201 || typeof j.key !== 'string') throw new Error(`creating the benchmark's virtual key answered ${r.statusCode}: ${JSON.stringify(j)}`);
  return j.key;
}
const viaGateway = (t: TargetSpec): TargetSpec => ({ ...t, headers: gatewayHeaders });

const T = {
  directFast: target(fastUrl, UPSTREAM_MODELS.fast),
  gatewayFast: viaGateway(target(gatewayUrl, 'chat-fast')),
  bareFast: target(bareUrl, UPSTREAM_MODELS.fast),
  relayFast: target(relayUrl, UPSTREAM_MODELS.fast),
  nginxFast: target(nginx?.url ?? '', UPSTREAM_MODELS.fast),
  directStream: target(urls.stream, UPSTREAM_MODELS.stream, { stream: true }),
  gatewayStream: viaGateway(target(gatewayUrl, 'chat-stream', { stream: true })),
  gatewaySlow: viaGateway(target(gatewayUrl, 'chat-slow', { stream: true, max_tokens: 100 })),
};

/** One request of each kind before any load: the paths work and the gateway really checks the key. */
async function sanity(): Promise<void> {
  const post = async (t: TargetSpec, auth: boolean): Promise<{ status: number; text: string }> => {
    const h: Record<string, string> = { ...t.headers };
    if (!auth) delete h.authorization;
    const r = await request(t.origin + t.path, { method: 'POST', headers: h, body: t.body, headersTimeout: 5000, bodyTimeout: 5000 });
    return { status: r.statusCode, text: await r.body.text() };
  };
  const unary: [string, TargetSpec][] = [['direct', T.directFast], ['gateway', T.gatewayFast]];
  if (bare !== undefined) unary.push(['bare proxy', T.bareFast]);
  for (const [name, t] of unary) {
    const r = await post(t, true);
    const content = (JSON.parse(r.text) as { choices?: { message?: { content?: string } }[] }).choices?.[0]?.message?.content;
    if (r.status !== 200 || typeof content !== 'string' || content === '') throw new Error(`sanity: ${name} answered ${r.status}: ${r.text.slice(0, 300)}`);
  }
  for (const [name, t] of [['direct', T.directStream], ['gateway', T.gatewayStream]] as const) {
    const s = await post(t, true);
    if (s.status !== 200 || !s.text.includes('data: [DONE]')) throw new Error(`sanity: ${name} stream answered ${s.status}: ${s.text.slice(0, 300)}`);
  }
  const anon = await post(T.gatewayFast, false);
  if (anon.status !== 401) throw new Error(`sanity: the gateway answered ${anon.status} without a key; auth must be on for the benchmark`);
}

// ---- measurement ----------------------------------------------------------------------

interface Cpu {
  /** cores' worth of CPU over the phase (1 = one core busy throughout) */
  proxy: number;
  upstream: number;
  loadgen: number;
}

interface Measured {
  name: string;
  result: PhaseResult;
  wallMs: number;
  cpu: Cpu;
  /** the process under test, by thread, in cores: where its CPU went beyond the JS thread */
  proxyThreads: ThreadUse[] | undefined;
  /** Minor page faults the process under test took during the phase (each one a trap into this VM's hypervisor). */
  proxyFaults: number | undefined;
  /** CPU time of the process under test (gateway or bare proxy) per completed request, µs */
  proxyCpuUsPerReq: number | undefined;
  gatewayRss: { maxBytes: number; endBytes: number; samples: number } | undefined;
  gatewayHeap: { usedBytes: number; totalBytes: number; externalBytes: number } | undefined;
  gatewayGc: { count: number; ms: number; maxMsEver: number } | undefined;
  /** streams job: gateway RSS while every stream was open */
  rssAllOpen: { maxBytes: number; samples: number; open: number } | undefined;
  /** open-loop phases through a proxy: how many requests were slow, and how many of those overlapped its GC pauses */
  stalls: Stalls | undefined;
}

interface Stalls {
  /** requests slower than SLOW_MS */
  slow: number;
  slowPct: number;
  /** of those, how many were in flight during a GC pause of the process under test */
  duringGc: number;
  gc: { pauses: number; ms: number; maxMs: number; minor: number; major: number };
  /**
   * Slow requests whose times overlap, taken together: one stall of the process (or of the
   * machine) makes one episode of several requests; how many, how long, how far apart.
   */
  episodes: { count: number; medianMs: number; maxMs: number; medianGapMs: number };
}

function episodesOf(slow: [number, number][]): Stalls['episodes'] {
  const s = [...slow].sort((a, b) => a[0] - b[0]);
  const spans: [number, number][] = [];
  for (const [a, b] of s) {
    const last = spans[spans.length - 1];
    if (last !== undefined && a <= last[1]) last[1] = Math.max(last[1], b);
    else spans.push([a, b]);
  }
  const med = (xs: number[]): number => xs.length === 0 ? 0 : xs.sort((x, y) => x - y)[Math.floor(xs.length / 2)]!;
  const lengths = spans.map(([a, b]) => b - a);
  const gaps = spans.slice(1).map(([a], i) => a - spans[i]![1]);
  return { count: spans.length, medianMs: med(lengths), maxMs: Math.max(0, ...lengths), medianGapMs: med(gaps) };
}

function stallsOf(slow: [number, number][], ok: number, pauses: GcPause[], fromMs: number, toMs: number): Stalls {
  const inPhase = pauses.filter((p) => p.startMs + p.durMs >= fromMs && p.startMs <= toMs);
  let duringGc = 0;
  for (const [sent, end] of slow) {
    if (inPhase.some((p) => p.startMs < end && p.startMs + p.durMs > sent)) duringGc++;
  }
  return {
    slow: slow.length,
    slowPct: ok > 0 ? (100 * slow.length) / ok : 0,
    duringGc,
    gc: {
      pauses: inPhase.length,
      ms: inPhase.reduce((a, p) => a + p.durMs, 0),
      maxMs: inPhase.reduce((a, p) => Math.max(a, p.durMs), 0),
      minor: inPhase.filter((p) => p.kind === 'minor').length,
      major: inPhase.filter((p) => p.kind === 'major').length,
    },
    episodes: episodesOf(slow),
  };
}

const monotonicMs = (): number => Number(process.hrtime.bigint()) / 1e6;

async function gatewayStats(): Promise<GatewayStats> {
  return (await gateway.request({ type: 'stats' }, 'stats', 5000)) as unknown as GatewayStats;
}

type Via = 'direct' | 'gateway' | 'bare' | 'relay' | 'nginx';

async function measure(name: string, job: Job, via: Via): Promise<Measured> {
  const hardMs = ('durationMs' in job ? job.durationMs : job.timeoutMs) + 30_000;
  const proxyPid = via === 'bare' ? bare!.pid : via === 'relay' ? relay!.pid : via === 'nginx' ? nginx!.pid : gateway.pid;
  const cpu0 = { proxy: cpuSecondsOf(proxyPid), upstream: cpuSecondsOf(upstream.pid), loadgen: cpuSecondsOf(loadgen.pid) };
  const threads0 = via === 'direct' ? undefined : threadCpuOf(proxyPid);
  const faults0 = minorFaultsOf(proxyPid);
  const gw = via === 'gateway';
  const stats0 = gw ? await gatewayStats() : undefined;
  const t0 = performance.now();
  const phaseFrom = monotonicMs();
  let rssMax = 0;
  let rssN = 0;
  let openMax = 0;
  let openN = 0;
  let allOpen = false;
  let openCount = 0;
  // /proc reads only, every 100 ms: too little to disturb CPU 0.
  const sampler = gw
    ? setInterval(() => {
      const { rssBytes } = memoryOf(gateway.pid);
      rssMax = Math.max(rssMax, rssBytes);
      rssN++;
      if (allOpen) {
        openMax = Math.max(openMax, rssBytes);
        openN++;
      }
    }, 100)
    : undefined;
  loadgen.send({ type: 'job', job });
  if (job.kind === 'streams') {
    const m = await loadgen.waitFor('streams-open', hardMs);
    openCount = m.open as number;
    allOpen = openCount === job.count;
    openMax = Math.max(openMax, memoryOf(gateway.pid).rssBytes);
    openN++;
  }
  const reply = await loadgen.waitFor(['result', 'failed'], hardMs);
  allOpen = false;
  if (sampler !== undefined) clearInterval(sampler);
  if (reply.type === 'failed') throw new Error(`${name}: the load generator failed: ${String(reply.error)}`);
  const wallMs = performance.now() - t0;
  const result = reply.result as PhaseResult;
  const s = wallMs / 1000;
  const cpu: Cpu = {
    proxy: via === 'direct' ? 0 : (cpuSecondsOf(proxyPid) - cpu0.proxy) / s,
    upstream: (cpuSecondsOf(upstream.pid) - cpu0.upstream) / s,
    loadgen: (cpuSecondsOf(loadgen.pid) - cpu0.loadgen) / s,
  };
  const proxyFaults = via === 'direct' ? undefined : minorFaultsOf(proxyPid) - faults0;
  const proxyThreads = threads0 === undefined ? undefined : threadCpuDelta(threads0, threadCpuOf(proxyPid), s);
  let stalls: Stalls | undefined;
  if (via !== 'direct' && job.kind === 'open') {
    // nginx has no collector to ask about.
    const proc = via === 'bare' ? bare! : via === 'relay' ? relay! : via === 'nginx' ? undefined : gateway;
    const pauses = proc === undefined ? [] : (await proc.request({ type: 'gc-pauses', sinceMs: phaseFrom }, 'gc-pauses', 5000)).pauses as GcPause[];
    stalls = stallsOf(result.slow, result.ok, pauses, phaseFrom, monotonicMs());
  }
  // The raw slow-request list has served its purpose; the JSON keeps the summary.
  result.slow = [];
  let gatewayGc: Measured['gatewayGc'];
  let gatewayRss: Measured['gatewayRss'];
  let gatewayHeap: Measured['gatewayHeap'];
  if (stats0 !== undefined) {
    const st = await gatewayStats();
    gatewayGc = { count: st.gcCount - stats0.gcCount, ms: st.gcMs - stats0.gcMs, maxMsEver: st.gcMaxMs };
    gatewayRss = { maxBytes: rssMax, endBytes: memoryOf(gateway.pid).rssBytes, samples: rssN };
    gatewayHeap = { usedBytes: st.heapUsedBytes, totalBytes: st.heapTotalBytes, externalBytes: st.externalBytes };
  }
  const m: Measured = {
    name, result, wallMs, cpu, proxyThreads, proxyFaults,
    proxyCpuUsPerReq: via !== 'direct' && result.ok > 0 ? (cpu.proxy * s * 1e6) / result.ok : undefined,
    gatewayRss, gatewayHeap, gatewayGc,
    rssAllOpen: job.kind === 'streams' ? { maxBytes: openMax, samples: openN, open: openCount } : undefined,
    stalls,
  };
  const r = result;
  // A phase where nothing succeeded has no percentiles (NaN, or null once through IPC).
  const ms = (v: number | null | undefined): string => (typeof v === 'number' && Number.isFinite(v) ? v.toFixed(3) : '–');
  const lat = job.kind === 'streams' ? '' : `; p50 ${ms(r.latency?.p50)} p99 ${ms(r.latency?.p99)} ms`;
  const ttfb = T.directStream.body === job.target.body || T.gatewayStream.body === job.target.body ? `; TTFB p50 ${ms(r.ttfb?.p50)} p99 ${ms(r.ttfb?.p99)} ms` : '';
  say(`${name}: ${r.ok}/${r.sent} ok${r.errors > 0 ? `, ${r.errors} errors (${r.firstError})` : ''}${r.unfinished > 0 ? `, ${r.unfinished} unfinished` : ''}${lat}${ttfb}${job.kind === 'closed' ? `; ${Math.round(r.throughput)} req/s` : ''}; CPU ${via === 'direct' ? '' : `${via} ${cpu.proxy.toFixed(2)}, `}upstream ${cpu.upstream.toFixed(2)}, generator ${cpu.loadgen.toFixed(2)}`);
  return m;
}

const open = (t: TargetSpec, rate: number, durationMs: number): Job => ({ kind: 'open', target: t, rate, durationMs, connections: 64 });
const closed = (t: TargetSpec): Job => ({ kind: 'closed', target: t, concurrency: plan.concurrency, durationMs: plan.closedMs });
const pause = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

await sanity();
await pause(1000);
const idle = memoryOf(gateway.pid);
say(`gateway idle RSS ${(idle.rssBytes / 2 ** 20).toFixed(1)} MiB`);

// JIT warm-up of every path; not reported.
await measure('warm-up direct', open(T.directFast, GOAL_RATE, plan.warmMs), 'direct');
await measure('warm-up gateway', open(T.gatewayFast, GOAL_RATE, plan.warmMs), 'gateway');
if (bare !== undefined) await measure('warm-up bare proxy', open(T.bareFast, GOAL_RATE, plan.warmMs), 'bare');
if (relay !== undefined) await measure('warm-up tcp relay', open(T.relayFast, GOAL_RATE, plan.warmMs), 'relay');
if (nginx !== undefined) await measure('warm-up nginx', open(T.nginxFast, GOAL_RATE, plan.warmMs), 'nginx');
await measure('warm-up gateway stream', open(T.gatewayStream, plan.ttfbRate, 1000), 'gateway');

/** Every child stopped (those stopped already are skipped), and the watchdog with them. */
async function stopAll(): Promise<void> {
  for (const c of [loadgen, gateway, bare, relay, upstream]) await c?.stop();
  await nginx?.stop();
  clearTimeout(watchdog);
}

if (rateOnly !== undefined) {
  // The tail at the goal rate only: direct and gateway alternating, each with its stalls.
  const allocFile = join(resultsDir, 'gateway-alloc.heapprofile');
  for (let i = 0; i < rateOnly; i++) {
    const d = await measure(`direct     @ ${GOAL_RATE}/s`, open(T.directFast, GOAL_RATE, plan.rateMs), 'direct');
    const sampled = alloc && i === 0;
    // --realtime-ab: the same process at real-time priority too, first in every other round, so
    // that neither side always gets the round's first (or its major) collection.
    let gRt: Measured | undefined;
    const measureRt = async (): Promise<Measured> => {
      const set = await gateway.request({ type: 'realtime', on: true }, 'realtime-set', 10_000);
      if (set.failed) throw new Error(`--realtime-ab: ${String(set.failed)}`);
      const m = await measure(`gateway RT @ ${GOAL_RATE}/s`, open(T.gatewayFast, GOAL_RATE, plan.rateMs), 'gateway');
      const back = await gateway.request({ type: 'realtime', on: false }, 'realtime-set', 10_000);
      if (back.failed) throw new Error(`--realtime-ab: cannot lower the gateway again: ${String(back.failed)}`);
      return m;
    };
    if (realtimeAb && i % 2 === 1) gRt = await measureRt();
    if (sampled) await gateway.request({ type: 'alloc-start' }, 'alloc-started', 10_000);
    const g = await measure(`gateway    @ ${GOAL_RATE}/s`, open(T.gatewayFast, GOAL_RATE, plan.rateMs), 'gateway');
    if (sampled) {
      await gateway.request({ type: 'alloc-stop', file: allocFile }, 'alloc-stopped', 30_000);
      process.stdout.write(allocTop(allocFile, g.result.ok, 25));
    }
    if (realtimeAb && i % 2 === 0) gRt = await measureRt();
    const b = bare === undefined ? undefined : await measure(`bare proxy @ ${GOAL_RATE}/s`, open(T.bareFast, GOAL_RATE, plan.rateMs), 'bare');
    const line = (label: string, m: Measured): string => {
      const st = m.stalls!;
      return `${label}: added p50 ${(m.result.latency.p50 - d.result.latency.p50).toFixed(3)} ms, p99 ${(m.result.latency.p99 - d.result.latency.p99).toFixed(3)} ms; `
        + `${st.slow} over 2 ms (${st.duringGc} during GC: ${st.gc.minor} minor + ${st.gc.major} major pauses, ${st.gc.ms.toFixed(0)} ms, longest ${st.gc.maxMs.toFixed(1)} ms); CPU ${m.proxyCpuUsPerReq?.toFixed(0)} µs/req; ${m.proxyFaults} page faults\n`
        + `           ${st.episodes.count} episodes of overlapping slow requests: median ${st.episodes.medianMs.toFixed(1)} ms long, longest ${st.episodes.maxMs.toFixed(1)} ms, median gap ${st.episodes.medianGapMs.toFixed(0)} ms\n`
        + `           threads (cores, user + system; page faults): ${(m.proxyThreads ?? []).filter((t) => t.user + t.sys >= 0.005 || t.faults >= 10).map((t) => `${t.name} ${t.user.toFixed(2)} + ${t.sys.toFixed(2)}; ${t.faults}`).join(', ')}`
        + (m.gatewayRss === undefined ? '' : `; resident at most ${(m.gatewayRss.maxBytes / 2 ** 20).toFixed(0)} MiB`);
    };
    const r = await measure(`tcp relay  @ ${GOAL_RATE}/s`, open(T.relayFast, GOAL_RATE, plan.rateMs), 'relay');
    const n = nginx === undefined ? undefined : await measure(`nginx      @ ${GOAL_RATE}/s`, open(T.nginxFast, GOAL_RATE, plan.rateMs), 'nginx');
    process.stdout.write(`round ${i + 1}: direct p99 ${d.result.latency.p99.toFixed(3)} ms\n  ${line('gateway', g)}\n${gRt === undefined ? '' : `  ${line('gw RT  ', gRt)}\n`}${b === undefined ? '' : `  ${line('bare   ', b)}\n`}  ${line('relay  ', r)}\n${n === undefined ? '' : `  ${line('nginx  ', n)}\n`}`);
  }
  await stopAll();
  process.exit(0);
}

const profileFiles = { rate: join(resultsDir, `gateway-${GOAL_RATE}.cpuprofile`), max: join(resultsDir, 'gateway-max.cpuprofile') };
const fixed: { rate: number; direct: Measured; gateway: Measured; bare: Measured | undefined; relay: Measured | undefined }[] = [];
for (const rate of plan.rates) {
  const direct = await measure(`direct     @ ${rate}/s`, open(T.directFast, rate, plan.rateMs), 'direct');
  const profiled = profile && rate === GOAL_RATE;
  if (profiled) await gateway.request({ type: 'profile-start' }, 'profile-started', 10_000);
  const gw = await measure(`gateway    @ ${rate}/s`, open(T.gatewayFast, rate, plan.rateMs), 'gateway');
  if (profiled) await gateway.request({ type: 'profile-stop', file: profileFiles.rate }, 'profile-stopped', 30_000);
  const bp = bare !== undefined && rate === GOAL_RATE ? await measure(`bare proxy @ ${rate}/s`, open(T.bareFast, rate, plan.rateMs), 'bare') : undefined;
  const rl = relay !== undefined && rate === GOAL_RATE ? await measure(`tcp relay  @ ${rate}/s`, open(T.relayFast, rate, plan.rateMs), 'relay') : undefined;
  fixed.push({ rate, direct, gateway: gw, bare: bp, relay: rl });
}

const maxDirect = await measure(`direct     max, ${plan.concurrency} connections`, closed(T.directFast), 'direct');
const maxBare = bare !== undefined ? await measure(`bare proxy max, ${plan.concurrency} connections`, closed(T.bareFast), 'bare') : undefined;
if (profile) await gateway.request({ type: 'profile-start' }, 'profile-started', 10_000);
const maxGateway = await measure(`gateway    max, ${plan.concurrency} connections`, closed(T.gatewayFast), 'gateway');
if (profile) await gateway.request({ type: 'profile-stop', file: profileFiles.max }, 'profile-stopped', 30_000);

const ttfbDirect = await measure(`direct  stream @ ${plan.ttfbRate}/s`, open(T.directStream, plan.ttfbRate, plan.ttfbMs), 'direct');
const ttfbGateway = await measure(`gateway stream @ ${plan.ttfbRate}/s`, open(T.gatewayStream, plan.ttfbRate, plan.ttfbMs), 'gateway');

await pause(1000);
const after = memoryOf(gateway.pid);

// Memory with many open streams in a fresh gateway process: after the phases above, RSS stays
// high (V8 hands memory back slowly), which would blur what streams cost; and the streams'
// 2,000 idle keep-alive sockets would otherwise linger into the other phases.
await gateway.stop();
await bare?.stop();
const fresh = await startGatewayProc();
gateway = fresh.child;
const streamsTarget = { ...T.gatewaySlow, origin: fresh.url };
if ((await request(streamsTarget.origin + streamsTarget.path, { method: 'POST', headers: streamsTarget.headers, body: streamsTarget.body }).then((r) => r.body.text())).includes('data: [DONE]') === false) {
  throw new Error('sanity: the fresh gateway did not stream');
}
await pause(500);
const idleFresh = memoryOf(gateway.pid);
const streams = await measure(`gateway: ${plan.streams} open streams`, { kind: 'streams', target: streamsTarget, count: plan.streams, rampRate: 2000, timeoutMs: 30_000 }, 'gateway');

// ---- shut down -------------------------------------------------------------------------

await stopAll();

// ---- report --------------------------------------------------------------------------

const MiB = 2 ** 20;
const rows: Row[] = [];
const none = { bare: undefined, goal: undefined };
for (const f of fixed) {
  const goal = f.rate === GOAL_RATE;
  rows.push(row({ metric: `latency p50 @ ${f.rate} req/s`, unit: 'ms', direct: f.direct.result.latency.p50, bare: f.bare?.result.latency.p50, gateway: f.gateway.result.latency.p50, added: true, goal: goal ? GOALS.addedP50Ms : undefined, goalOn: 'added', better: 'lower' }));
  rows.push(row({ metric: `latency p99 @ ${f.rate} req/s`, unit: 'ms', direct: f.direct.result.latency.p99, bare: f.bare?.result.latency.p99, gateway: f.gateway.result.latency.p99, added: true, goal: goal ? GOALS.addedP99Ms : undefined, goalOn: 'added', better: 'lower' }));
}
rows.push(row({ metric: `max throughput, ${plan.concurrency} connections`, unit: 'req/s', direct: maxDirect.result.throughput, bare: maxBare?.result.throughput, gateway: maxGateway.result.throughput, added: false, goal: GOALS.throughput, goalOn: 'gateway', better: 'higher' }));
rows.push(row({ metric: 'latency p50 at max throughput', unit: 'ms', direct: maxDirect.result.latency.p50, bare: maxBare?.result.latency.p50, gateway: maxGateway.result.latency.p50, added: true, goal: undefined, goalOn: 'added', better: 'lower' }));
rows.push(row({ metric: `stream TTFB p50 @ ${plan.ttfbRate} req/s`, unit: 'ms', direct: ttfbDirect.result.ttfb.p50, bare: undefined, gateway: ttfbGateway.result.ttfb.p50, added: true, goal: GOALS.addedTtfbMs, goalOn: 'added', better: 'lower' }));
rows.push(row({ metric: `stream TTFB p99 @ ${plan.ttfbRate} req/s`, unit: 'ms', direct: ttfbDirect.result.ttfb.p99, bare: undefined, gateway: ttfbGateway.result.ttfb.p99, added: true, goal: undefined, goalOn: 'added', better: 'lower' }));
rows.push(row({ metric: 'RSS idle (after start)', unit: 'MiB', direct: undefined, ...none, gateway: idle.rssBytes / MiB, added: false, goalOn: 'gateway', better: 'lower' }));
rows.push(row({ metric: `RSS with ${plan.streams} open streams (max, fresh process)`, unit: 'MiB', direct: undefined, bare: undefined, gateway: (streams.rssAllOpen?.maxBytes ?? NaN) / MiB, added: false, goal: GOALS.rssMiB, goalOn: 'gateway', better: 'lower' }));
rows.push(row({ metric: 'RSS under load (max, max-throughput phase)', unit: 'MiB', direct: undefined, bare: undefined, gateway: (maxGateway.gatewayRss?.maxBytes ?? NaN) / MiB, added: false, goal: GOALS.rssMiB, goalOn: 'gateway', better: 'lower' }));
rows.push(row({ metric: 'RSS peak over the run (VmHWM)', unit: 'MiB', direct: undefined, ...none, gateway: after.hwmBytes / MiB, added: false, goalOn: 'gateway', better: 'lower' }));
const atGoal = fixed.find((f) => f.rate === GOAL_RATE);
if (atGoal !== undefined) {
  rows.push(row({ metric: `CPU per request @ ${GOAL_RATE} req/s`, unit: 'µs', direct: undefined, bare: atGoal.bare?.proxyCpuUsPerReq, gateway: atGoal.gateway.proxyCpuUsPerReq ?? NaN, added: false, goal: undefined, goalOn: 'gateway', better: 'lower' }));
}
rows.push(row({ metric: 'CPU per request at max throughput', unit: 'µs', direct: undefined, bare: maxBare?.proxyCpuUsPerReq, gateway: maxGateway.proxyCpuUsPerReq ?? NaN, added: false, goal: undefined, goalOn: 'gateway', better: 'lower' }));

// Checks on the harness itself: figures from failed requests or an overloaded generator mean nothing.
const all: Measured[] = [streams, ...fixed.flatMap((f) => [f.direct, f.gateway, ...(f.bare === undefined ? [] : [f.bare])]), maxDirect, ...(maxBare === undefined ? [] : [maxBare]), maxGateway, ttfbDirect, ttfbGateway];
const failed = all.filter((m) => m.result.errors > 0 || m.result.unfinished > 0);
const notes: string[] = [];
for (const m of failed) notes.push(`FAILED REQUESTS in "${m.name}": ${m.result.errors} errors, ${m.result.unfinished} unfinished (${m.result.firstError ?? ''})`);
if (streams.rssAllOpen !== undefined && streams.rssAllOpen.open !== plan.streams) notes.push(`only ${streams.rssAllOpen.open} of ${plan.streams} streams were open at once`);
for (const f of fixed) {
  for (const m of [f.direct, f.gateway]) {
    if (m.result.lag.p99 > 3) notes.push(`generator lag p99 ${m.result.lag.p99.toFixed(2)} ms in "${m.name.trim()}" (timer granularity alone gives ~1-2 ms): CPU 0 did not keep the schedule; latencies there are suspect`);
  }
}
const bound = (m: Measured): string => (m.cpu.proxy > 0.9 ? 'the process under test (CPU 1 saturated)' : m.cpu.upstream + m.cpu.loadgen > 0.9 ? 'upstream + generator (CPU 0 saturated): a lower bound' : 'neither CPU saturated');
const throughputBound = bound(maxGateway);
function stallLine(m: Measured): string {
  const st = m.stalls;
  if (st === undefined) return '';
  return `${m.name.replace(/\s+/g, ' ').trim()}: ${st.slow} requests (${st.slowPct.toFixed(2)}%) over ${SLOW_MS} ms, ${st.duringGc} of them in flight during a GC pause of the process (${st.gc.pauses} pauses, ${st.gc.ms.toFixed(0)} ms in all, longest ${st.gc.maxMs.toFixed(1)} ms)`;
}
const mb = (b: number | undefined): string => (b === undefined ? 'n/a' : `${(b / MiB).toFixed(0)} MiB`);

const table = printTable(rows, notes, {
  header: `AI Fabric gateway benchmark (${quick ? 'quick' : 'full'}), ${new Date(started).toISOString()}`,
  machine: `${cpus()[0]?.model ?? 'unknown CPU'} × ${cpus().length}, Node ${process.version}, ${pinned ? `pinned: upstream + generator on CPU 0, gateway on CPU ${CPU_GATEWAY}` : 'NOT pinned'}${realtime ? '; event loops of the gateway and bare proxy at SCHED_FIFO 1 (--realtime)' : '; normal scheduling (--realtime not given)'}`,
  bare: plan.bare,
  footer: [
    `gateway: compiled JS as \`fabric serve\` runs it (${RUNTIME_NODE_FLAGS.join(' ')}); auth on (${viaMasterKey ? 'master key' : 'virtual key with RPM and TPM limits and a monthly budget'}), routing via role chat-fast, metrics on, per-request log line to stdout = ${gatewayLog}${gatewayNodeFlags.length > 0 ? `; extra node flags: ${gatewayNodeFlags.join(' ')}` : ''}${extraYaml.length > 0 ? `; config: ${extraYaml.join('; ')}` : ''}`,
    `upstream: ${upstreamKind === 'fixed' ? 'fixed-answer TCP server replaying the simulated vLLM answer' : 'simulated vLLM (src/sim)'} for non-streamed requests; simulated vLLM for streams`,
    `added = gateway − direct at the same rate; latency = send → last body byte, per request, open loop`,
    `generator lag p99 (send vs schedule): ${fixed.map((f) => `${f.rate}/s ${f.direct.result.lag.p99.toFixed(2)}/${f.gateway.result.lag.p99.toFixed(2)} ms`).join(', ')} (direct/gateway)`,
    ...fixed.filter((f) => f.rate === GOAL_RATE).flatMap((f) => [f.gateway, ...(f.bare === undefined ? [] : [f.bare])]).map((m) => stallLine(m)),
    ...fixed.filter((f) => f.rate === GOAL_RATE && f.relay !== undefined).map((f) => `tcp relay @ ${GOAL_RATE}/s (pipes bytes, parses nothing: the floor under any proxy on this machine): added p50 ${(f.relay!.result.latency.p50 - f.direct.result.latency.p50).toFixed(3)} ms, p99 ${(f.relay!.result.latency.p99 - f.direct.result.latency.p99).toFixed(3)} ms`),
    `at max throughput: gateway ${(maxGateway.cpu.proxy * 100).toFixed(0)}% of CPU 1, upstream ${(maxGateway.cpu.upstream * 100).toFixed(0)}% + generator ${(maxGateway.cpu.loadgen * 100).toFixed(0)}% of CPU 0: bound by ${throughputBound}`,
    `gateway GC in the max-throughput phase: ${maxGateway.gatewayGc?.count ?? 0} pauses, ${(maxGateway.gatewayGc?.ms ?? 0).toFixed(0)} ms in total; longest pause of the run ${(maxGateway.gatewayGc?.maxMsEver ?? 0).toFixed(1)} ms; heap after it ${mb(maxGateway.gatewayHeap?.usedBytes)} used of ${mb(maxGateway.gatewayHeap?.totalBytes)}`,
    `${plan.streams} streams: ${streams.result.ok} ended with [DONE], ${streams.result.errors} failed; all ${streams.rssAllOpen?.open ?? 0} open together for ${streams.rssAllOpen?.samples ?? 0} RSS samples (100 ms apart); the fresh process idled at ${mb(idleFresh.rssBytes)}`,
  ],
});
process.stdout.write(table);

const profiles: Record<string, ReturnType<typeof topSelfTime>> = {};
if (profile) {
  process.stdout.write('\nprofiling slows the gateway: the gateway figures above at max throughput and at ' + GOAL_RATE + ' req/s are not representative\n');
  for (const [phase, file] of Object.entries(profileFiles)) {
    const top = topSelfTime(file, ROOT, 25);
    profiles[phase] = top;
    process.stdout.write(`\ngateway CPU profile, ${phase === 'max' ? 'max-throughput phase' : `${GOAL_RATE} req/s phase`}: ${relative(process.cwd(), file)} (opens in Chrome DevTools)\n`);
    process.stdout.write(top.text);
  }
}

const missed = rows.filter((r) => r.pass === false);
const json = {
  version: 1,
  date: new Date(started).toISOString(),
  durationS: (Date.now() - started) / 1000,
  mode: quick ? 'quick' : 'full',
  profiled: profile,
  realtime,
  machine: {
    cpu: cpus()[0]?.model ?? 'unknown', cpus: cpus().length, node: process.version, platform: process.platform, kernel: release(), pinned,
    cpuLayout: pinned ? { upstreamAndGenerator: '0', gateway: String(CPU_GATEWAY) } : undefined,
  },
  setup: {
    gatewayLog: `stdout → ${gatewayLog}`,
    gatewayNodeFlags: [...RUNTIME_NODE_FLAGS, ...gatewayNodeFlags],
    gatewayYaml: extraYaml,
    auth: viaMasterKey ? 'master key' : 'virtual key (rpm, tpm, monthly budget)',
    route: `chat-fast → bench-fast (vllm) → ${upstreamKind === 'fixed' ? 'fixed-answer upstream' : 'simulated vLLM'}`,
    upstream: upstreamKind,
    plan,
    config: relative(ROOT, configFile),
  },
  goals: { ...GOALS, atRate: GOAL_RATE },
  summary: rows,
  passed: missed.length === 0 && failed.length === 0,
  missed: missed.map((r) => r.metric),
  notes,
  throughputBound,
  phases: {
    fixed,
    max: { direct: maxDirect, bare: maxBare, gateway: maxGateway },
    ttfb: { direct: ttfbDirect, gateway: ttfbGateway },
    streams,
  },
  memory: { idle, afterRun: after, idleBeforeStreams: idleFresh },
  profiles: Object.fromEntries(Object.entries(profiles).map(([phase, p]) => [phase, { file: relative(ROOT, profileFiles[phase as keyof typeof profileFiles]), categories: p.categories, top: p.rows, project: p.ownRows }])),
};
mkdirSync(dirname(outFile), { recursive: true });
writeFileSync(outFile, JSON.stringify(json, null, 2) + '\n');
process.stdout.write(`\nJSON: ${relative(process.cwd(), outFile)}; the run took ${((Date.now() - started) / 1000).toFixed(0)} s\n`);
process.exitCode = failed.length > 0 || (strict && missed.length > 0) ? 1 : 0;

// Streaming time to first byte of two or more gateway builds, in alternating rounds: what
// bench:ab does for CPU per request, for the stream path (`npm run bench:ab -- --stream`
// would mix two measures; this one has its own script). Each round sends open-loop streamed
// requests at a fixed rate to the simulated `stream` engine through each contender, and to
// the engine directly, and reports each one's TTFB p50 and its excess over direct.
//
//   node bench/ttfb-ab.ts --gateway base=/tmp/base/bench/results/build/bench/gateway-proc.js --gateway now=bench/results/build/bench/gateway-proc.js

import { mkdtempSync, openSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { randomBytes } from 'node:crypto';
import { Child, buildGatewayProc, canPin, envNodeFlags, killOnExit, pinPid, startServerProc } from './procs.ts';
import { RUNTIME_NODE_FLAGS, UPSTREAM_MODELS, fabricYaml, payload, type Job, type PhaseResult, type TargetSpec } from './shared.ts';

const HERE = dirname(fileURLToPath(import.meta.url));

const { values } = parseArgs({ options: {
  gateway: { type: 'string', multiple: true }, rounds: { type: 'string', default: '6' }, rate: { type: 'string', default: '200' }, seconds: { type: 'string', default: '3' },
} });
const rounds = Number(values.rounds);
const rate = Number(values.rate);
const ms = Number(values.seconds) * 1000;
const pinned = cpus().length >= 2 && canPin([0, 1]);
if (pinned) pinPid(process.pid, 0);
const children: Child[] = [];
killOnExit(children);
const say = (s: string): void => void process.stderr.write(`ttfb-ab: ${s}\n`);

let gateways = (values.gateway ?? []).map((g) => ({ label: g.slice(0, g.indexOf('=')), script: resolve(g.slice(g.indexOf('=') + 1)) }));
if (gateways.length === 0) gateways = [{ label: 'gateway', script: buildGatewayProc() }];

const upstream = new Child('upstream', join(HERE, 'upstream-proc.ts'), [payload(UPSTREAM_MODELS.fast)], { cpu: pinned ? 0 : undefined });
children.push(upstream);
const up = await upstream.waitFor('ready', 15_000);
const urls = up.urls as { fixed: string; stream: string };
const masterKey = randomBytes(24).toString('base64url');
const headers = { 'content-type': 'application/json', authorization: `Bearer ${masterKey}` };
const logFd = openSync(process.env.BENCH_GATEWAY_LOG ?? '/dev/null', 'a');
const body = (model: string): string => payload(model, { stream: true });

const targets: { label: string; target: TargetSpec; ttfb: number[] }[] = [
  { label: 'direct', target: { origin: urls.stream, path: '/v1/chat/completions', headers, body: body(UPSTREAM_MODELS.stream) }, ttfb: [] },
];
for (const g of gateways) {
  const dataDir = mkdtempSync(join(tmpdir(), 'fabric-ttfb-'));
  process.on('exit', () => rmSync(dataDir, { recursive: true, force: true }));
  const file = join(HERE, 'results', `ttfb.${g.label.replace(/[^\w-]/g, '_')}.fabric.yaml`);
  writeFileSync(file, fabricYaml({ fast: urls.fixed, stream: urls.stream }));
  const { url } = await startServerProc(children, g.label, g.script, [file], {
    cpu: pinned ? 1 : undefined, env: { ...process.env, BENCH_MASTER_KEY: masterKey, FABRIC_DATA_DIR: dataDir },
    nodeFlags: [...RUNTIME_NODE_FLAGS, ...envNodeFlags()], stdout: logFd,
  });
  targets.push({ label: g.label, target: { origin: url, path: '/v1/chat/completions', headers, body: body('chat-stream') }, ttfb: [] });
}
const loadgen = new Child('loadgen', join(HERE, 'loadgen.ts'), [], { cpu: pinned ? 0 : undefined });
children.push(loadgen);
await loadgen.waitFor('ready', 15_000);

async function run(t: TargetSpec, durationMs: number): Promise<PhaseResult> {
  const job: Job = { kind: 'open', target: t, rate, durationMs, connections: 64 };
  loadgen.send({ type: 'job', job });
  const reply = await loadgen.waitFor(['result', 'failed'], durationMs + 30_000);
  if (reply.type === 'failed') throw new Error(String(reply.error));
  const r = reply.result as PhaseResult;
  if (r.errors > 0) throw new Error(`${r.errors} errors (${r.firstError})`);
  return r;
}

for (const t of targets) await run(t.target, 1000); // warm-up
for (let i = 0; i < rounds; i++) {
  const order = targets.map((_, j) => targets[(i + j) % targets.length]!);
  for (const t of order) t.ttfb.push((await run(t.target, ms)).ttfb.p50);
  say(`round ${i + 1}: ${targets.map((t) => `${t.label} ${t.ttfb.at(-1)!.toFixed(3)} ms`).join(' · ')}`);
}
const median = (v: number[]): number => [...v].sort((a, b) => a - b)[Math.floor(v.length / 2)]!;
process.stdout.write(`\n${'contender'.padEnd(12)} ${'TTFB p50 (median)'.padStart(18)} ${'added vs direct (median of rounds)'.padStart(36)}\n`);
const direct = targets[0]!;
for (const t of targets) {
  const added = t.ttfb.map((v, i) => v - direct.ttfb[i]!);
  process.stdout.write(`${t.label.padEnd(12)} ${`${median(t.ttfb).toFixed(3)} ms`.padStart(18)} ${t === direct ? '' : `${median(added) >= 0 ? '+' : ''}${median(added).toFixed(3)} ms`.padStart(36)}\n`);
}
process.exit(0);

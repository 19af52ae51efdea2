import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { CALM_ELU, EventLoopPriority, SATURATED_ELU, schedulingOf, setEventLoopRealtime } from './scheduling.ts';

const SCHED_OTHER = 0;
const SCHED_FIFO = 1;
const linux = process.platform === 'linux';
const root = process.getuid?.() === 0;
const hasChrt = linux && spawnSync('chrt', ['--version']).status === 0;
const skip = !linux ? 'Linux scheduling classes' : !hasChrt ? 'chrt (util-linux) missing' : !root ? 'needs root to raise another process and to drop privileges' : false;

// A node process that idles, and starts a worker thread when told to (to see what a thread
// created after the raise gets).
const CHILD = `
const { Worker } = require('node:worker_threads');
const keep = setInterval(() => {}, 1000);
process.on('message', (m) => {
  if (m === 'thread') new Worker('setInterval(() => {}, 1000)', { eval: true }).on('online', () => process.send('online'));
  if (m === 'exit') process.exit(0);
});
process.send('ready');
`;

async function child(): Promise<ChildProcess> {
  const c = spawn(process.execPath, ['-e', CHILD], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  await once(c, 'message');
  return c;
}

const threadsOf = (pid: number): number[] => readdirSync(`/proc/${pid}/task`).map(Number);

test('realtime raises the main thread alone to SCHED_FIFO 1; threads it starts later, and its helpers, stay normal; off lowers it again', { skip }, async () => {
  const c = await child();
  try {
    const pid = c.pid!;
    const before = threadsOf(pid);
    assert.ok(before.length > 1, 'node has helper threads (V8 platform workers)');
    assert.equal(setEventLoopRealtime(true, pid), undefined);
    assert.deepEqual(schedulingOf(pid), { policy: SCHED_FIFO, priority: 1 });
    for (const tid of before.filter((t) => t !== pid)) assert.equal(schedulingOf(pid, tid)?.policy, SCHED_OTHER, `helper thread ${tid} is left as it was`);
    // A thread created by the raised thread (a worker, libuv's pool) starts at normal priority.
    c.send('thread');
    await once(c, 'message');
    const added = threadsOf(pid).filter((t) => !before.includes(t));
    assert.ok(added.length >= 1, 'the worker added a thread');
    for (const tid of added) assert.deepEqual(schedulingOf(pid, tid), { policy: SCHED_OTHER, priority: 0 }, `new thread ${tid}`);
    assert.equal(setEventLoopRealtime(true, pid), undefined, 'raising again is a no-op');
    assert.equal(setEventLoopRealtime(false, pid), undefined);
    assert.deepEqual(schedulingOf(pid), { policy: SCHED_OTHER, priority: 0 });
  } finally {
    c.send('exit');
    await once(c, 'exit');
  }
});

// As an unprivileged service (RLIMIT_RTPRIO 0, no capabilities): refused, saying what would
// allow it, and still at normal priority. (RLIMIT_RTPRIO 1, systemd's LimitRTPRIO=1, would
// allow it; raising that limit needs CAP_SYS_RESOURCE, which this sandbox's root lacks.)
const SELF = `import('${fileURLToPath(new URL('./scheduling.ts', import.meta.url))}').then(async (m) => {
  const failed = m.setEventLoopRealtime(true);
  const failedAsync = await m.setEventLoopRealtimeAsync(true);
  process.stdout.write(JSON.stringify({ failed: failed ?? null, failedAsync: failedAsync ?? null, now: m.schedulingOf(process.pid) }));
});`;

test('an unprivileged process is told why it cannot raise itself, and stays at normal priority', { skip }, () => {
  const r = spawnSync('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', '--inh-caps=-all', '--bounding-set=-all',
    process.execPath, '--input-type=module', '-e', SELF], { encoding: 'utf8', timeout: 20_000 });
  assert.equal(r.status, 0, r.stderr);
  const refused = JSON.parse(r.stdout) as { failed: string | null; failedAsync: string | null; now: { policy: number } };
  assert.match(refused.failed ?? '', /not permitted.*CAP_SYS_NICE, or an RLIMIT_RTPRIO of 1: LimitRTPRIO=1 in a systemd unit, ulimits rtprio: 1 in compose/);
  assert.equal(refused.failedAsync, refused.failed, 'the non-blocking form says the same');
  assert.equal(refused.now.policy, SCHED_OTHER);
});

test('the governor gives real-time priority up while the loop is saturated, and takes it back after three calm seconds', { skip }, async () => {
  const c = await child();
  const said: string[] = [];
  let u = 0.3;
  const p = new EventLoopPriority({ info: (m) => said.push(m), warn: (m) => said.push(`warn: ${m}`) }, { pid: c.pid!, utilization: () => u });
  try {
    await p.configure(true);
    assert.deepEqual(schedulingOf(c.pid!), { policy: SCHED_FIFO, priority: 1 });
    await p.tick();
    assert.equal(p.raised, true, '30% busy: stays raised');
    u = SATURATED_ELU;
    await p.tick();
    assert.equal(p.raised, false);
    assert.deepEqual(schedulingOf(c.pid!), { policy: SCHED_OTHER, priority: 0 });
    assert.match(said.at(-1)!, /saturated \(80% busy\): normal priority while it is/);
    // Calm seconds must be consecutive: a busy one in between starts the count again.
    for (const v of [CALM_ELU, 0.5, 0.8, 0.2, 0.2]) {
      u = v;
      await p.tick();
      assert.equal(p.raised, false, `after ${v}`);
    }
    u = 0.2;
    await p.tick();
    assert.equal(p.raised, true, 'three calm seconds in a row');
    assert.deepEqual(schedulingOf(c.pid!), { policy: SCHED_FIFO, priority: 1 });
    assert.match(said.at(-1)!, /headroom again \(20% busy\): SCHED_FIFO 1/);
    // Turned off by the config (a reload): lowered, and saturation no longer matters.
    await p.configure(false);
    assert.deepEqual(schedulingOf(c.pid!), { policy: SCHED_OTHER, priority: 0 });
    u = 0.1;
    for (let i = 0; i < 4; i++) await p.tick();
    assert.equal(p.raised, false);
    assert.ok(!said.some((m) => m.startsWith('warn')), said.join('\n'));
  } finally {
    p.stop();
    c.send('exit');
    await once(c, 'exit');
  }
});

test('changes asked while one is under way are not lost: the last one asked for wins', { skip }, async () => {
  const c = await child();
  let u = 0.9;
  const p = new EventLoopPriority({ info() {}, warn(m) { assert.fail(m); } }, { pid: c.pid!, utilization: () => u });
  try {
    await p.configure(true);
    // Saturated: a lowering starts; a reload turns it off and, at once, on again (which also
    // forgets the saturation): it ends raised, whatever order the chrt calls finished in.
    const a = p.tick();
    const b = p.configure(false);
    const d = p.configure(true);
    await Promise.all([a, b, d]);
    assert.equal(p.raised, true);
    assert.deepEqual(schedulingOf(c.pid!), { policy: SCHED_FIFO, priority: 1 });
    // A raise under way when the config turns it off: it ends lowered.
    u = 0.1;
    const e = p.configure(false);
    const g = p.configure(true);
    const h = p.configure(false);
    await Promise.all([e, g, h]);
    assert.equal(p.raised, false);
    assert.deepEqual(schedulingOf(c.pid!), { policy: SCHED_OTHER, priority: 0 });
  } finally {
    p.stop();
    c.send('exit');
    await once(c, 'exit');
  }
});

// Raised by systemd's LimitRTPRIO=1 or compose's ulimits, a process has no CAP_SYS_NICE, and
// may not clear SCHED_RESET_ON_FORK: lowering keeps it, or the saturated loop could never let go.
const LOWER_SELF = `import('${fileURLToPath(new URL('./scheduling.ts', import.meta.url))}').then(async (m) => {
  process.stdin.once('data', async () => {
    const failed = await m.setEventLoopRealtimeAsync(false);
    process.stdout.write(JSON.stringify({ failed: failed ?? null, now: m.schedulingOf(process.pid) }));
    process.exit(0);
  });
  process.stdout.write('ready');
});`;

test('a process without CAP_SYS_NICE, raised for it, can lower itself again', { skip }, async () => {
  const c = spawn('setpriv', ['--inh-caps=-all', '--bounding-set=-all', '--reuid=65534', '--regid=65534', '--clear-groups',
    process.execPath, '--input-type=module', '-e', LOWER_SELF], { stdio: ['pipe', 'pipe', 'inherit'] });
  let out = '';
  c.stdout!.setEncoding('utf8');
  c.stdout!.on('data', (d: string) => { out += d; });
  while (!out.includes('ready')) await once(c.stdout!, 'data');
  // Raised from outside (as root here; LimitRTPRIO would let it raise itself).
  assert.equal(setEventLoopRealtime(true, c.pid!), undefined);
  assert.equal(schedulingOf(c.pid!)?.policy, SCHED_FIFO);
  out = '';
  c.stdin!.write('lower');
  await once(c, 'exit');
  const r = JSON.parse(out) as { failed: string | null; now: { policy: number } };
  assert.equal(r.failed, null);
  assert.equal(r.now.policy, SCHED_OTHER);
});

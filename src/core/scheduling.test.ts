import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { schedulingOf, setEventLoopRealtime } from './scheduling.ts';

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
const SELF = `import('${fileURLToPath(new URL('./scheduling.ts', import.meta.url))}').then((m) => {
  const failed = m.setEventLoopRealtime(true);
  process.stdout.write(JSON.stringify({ failed: failed ?? null, now: m.schedulingOf(process.pid) }));
});`;

test('an unprivileged process is told why it cannot raise itself, and stays at normal priority', { skip }, () => {
  const r = spawnSync('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', '--inh-caps=-all', '--bounding-set=-all',
    process.execPath, '--input-type=module', '-e', SELF], { encoding: 'utf8', timeout: 20_000 });
  assert.equal(r.status, 0, r.stderr);
  const refused = JSON.parse(r.stdout) as { failed: string | null; now: { policy: number } };
  assert.match(refused.failed ?? '', /not permitted.*CAP_SYS_NICE, or LimitRTPRIO=1/);
  assert.equal(refused.now.policy, SCHED_OTHER);
});

// Child processes for the benchmark: started pinned to a CPU with taskset, spoken to over
// IPC, watched through /proc. Everything here has a deadline, so nothing can hang the run.

import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { readProcStat } from '../src/core/proc-stat.ts';

/** taskset is in util-linux; without it (or on a one-CPU box) the run goes unpinned and says so. */
export function canPin(cpus: number[]): boolean {
  for (const c of cpus) {
    const r = spawnSync('taskset', ['-c', String(c), 'true'], { stdio: 'ignore' });
    if (r.error !== undefined || r.status !== 0) return false;
  }
  return true;
}

/** Pins an already running process (used for the orchestrator itself). */
export function pinPid(pid: number, cpu: number): boolean {
  const r = spawnSync('taskset', ['-p', '-c', String(cpu), String(pid)], { stdio: 'ignore' });
  return r.error === undefined && r.status === 0;
}

export interface Message {
  type: string;
  [k: string]: unknown;
}

export class Child {
  readonly name: string;
  readonly proc: ChildProcess;
  /** the node process's own pid (taskset execs node, so it is the spawned pid) */
  pid = 0;
  readonly #inbox: Message[] = [];
  readonly #waiters: { match: (m: Message) => boolean; resolve: (m: Message) => void }[] = [];
  #exited: string | undefined;

  constructor(name: string, script: string, args: string[], opts: { cpu: number | string | undefined; env?: NodeJS.ProcessEnv; nodeFlags?: string[]; stdout?: number }) {
    this.name = name;
    const nodeArgs = [...(opts.nodeFlags ?? []), script, ...args];
    const [cmd, argv] = opts.cpu === undefined
      ? [process.execPath, nodeArgs]
      : ['taskset', ['-c', String(opts.cpu), process.execPath, ...nodeArgs]];
    this.proc = spawn(cmd, argv, { stdio: ['ignore', opts.stdout ?? 'inherit', 'inherit', 'ipc'], env: opts.env ?? process.env });
    this.proc.on('message', (m: Message) => {
      const i = this.#waiters.findIndex((w) => w.match(m));
      if (i >= 0) this.#waiters.splice(i, 1)[0]!.resolve(m);
      else this.#inbox.push(m);
    });
    this.proc.on('exit', (code, signal) => {
      this.#exited = `exited with ${signal ?? code}`;
    });
  }

  get alive(): boolean {
    return this.#exited === undefined;
  }

  send(m: Message): void {
    if (this.proc.connected) this.proc.send(m);
  }

  /** The next message of this type, or an error after timeoutMs or if the child dies. */
  waitFor(type: string | string[], timeoutMs: number): Promise<Message> {
    const types = Array.isArray(type) ? type : [type];
    const match = (m: Message): boolean => types.includes(m.type);
    const queued = this.#inbox.findIndex(match);
    if (queued >= 0) return Promise.resolve(this.#inbox.splice(queued, 1)[0]!);
    return new Promise((resolve, reject) => {
      const waiter = { match, resolve: (m: Message) => { cleanup(); resolve(m); } };
      const fail = (why: string): void => {
        cleanup();
        const i = this.#waiters.indexOf(waiter);
        if (i >= 0) this.#waiters.splice(i, 1);
        reject(new Error(`${this.name}: ${why} while waiting for ${types.join('/')}`));
      };
      const timer = setTimeout(() => fail(`no answer in ${timeoutMs} ms`), timeoutMs);
      const onExit = (code: number | null, signal: string | null): void => fail(`exited with ${signal ?? code}`);
      const cleanup = (): void => {
        clearTimeout(timer);
        this.proc.off('exit', onExit);
      };
      if (!this.alive) return fail(this.#exited!);
      this.proc.once('exit', onExit);
      this.#waiters.push(waiter);
    });
  }

  async request(m: Message, reply: string | string[], timeoutMs: number): Promise<Message> {
    this.send(m);
    return this.waitFor(reply, timeoutMs);
  }

  /** Asks the child to exit; after graceMs, kills it. */
  async stop(graceMs = 3000): Promise<void> {
    if (!this.alive) return;
    const exited = new Promise<void>((r) => this.proc.once('exit', () => r()));
    this.send({ type: 'exit' });
    const timer = setTimeout(() => this.kill(), graceMs);
    await exited;
    clearTimeout(timer);
  }

  kill(): void {
    if (this.alive) this.proc.kill('SIGKILL');
  }
}

/** kB figures from /proc/PID/status: resident now and the high-water mark. */
export function memoryOf(pid: number): { rssBytes: number; hwmBytes: number } {
  const s = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (key: string): number => {
    const m = new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(s);
    return m === null ? NaN : Number(m[1]) * 1024;
  };
  return { rssBytes: kb('VmRSS'), hwmBytes: kb('VmHWM') };
}

let clockTicks: number | undefined;

/** CPU seconds (user + system) a process has used so far, from /proc/PID/stat. */
export function cpuSecondsOf(pid: number): number {
  if (clockTicks === undefined) {
    const r = spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' });
    clockTicks = Number(r.stdout?.trim()) || 100;
  }
  const s = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // The command name may hold spaces and parentheses: fields are counted after the last ')'.
  const rest = s.slice(s.lastIndexOf(')') + 2).split(' ');
  return (Number(rest[11]) + Number(rest[12])) / clockTicks;
}

/** Minor page faults a process has taken so far (/proc/PID/stat minflt). On this VM each costs ~10 µs. */
export function minorFaultsOf(pid: number): number {
  // minflt is field 10 of proc_pid_stat(5), fields[7] after the command name.
  return Number(readProcStat(`/proc/${pid}/stat`)?.fields[7] ?? NaN);
}

export interface ThreadCpu {
  /** thread name (comm); the main thread is called "main" */
  name: string;
  userS: number;
  sysS: number;
  /** minor page faults so far */
  faults: number;
}

/**
 * CPU seconds by thread, summed over threads of the same name: the main (JS) thread, V8's
 * GC helpers ("V8 DefaultWorke"), libuv's pool ("libuv-worker"), the inspector and so on.
 */
export function threadCpuOf(pid: number): ThreadCpu[] {
  cpuSecondsOf(pid);
  const tick = clockTicks ?? 100;
  const by = new Map<string, ThreadCpu>();
  let tids: string[] = [];
  try {
    tids = readdirSync(`/proc/${pid}/task`);
  } catch {
    return [];
  }
  for (const tid of tids) {
    let s: string;
    try {
      s = readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8');
    } catch {
      continue;
    }
    const name = Number(tid) === pid ? 'main' : s.slice(s.indexOf('(') + 1, s.lastIndexOf(')'));
    const rest = s.slice(s.lastIndexOf(')') + 2).split(' ');
    const t = by.get(name) ?? { name, userS: 0, sysS: 0, faults: 0 };
    t.userS += Number(rest[11]) / tick;
    t.sysS += Number(rest[12]) / tick;
    t.faults += Number(rest[7]);
    by.set(name, t);
  }
  return [...by.values()];
}

/** One thread's (or same-named threads') use during a phase. */
export interface ThreadUse {
  name: string;
  /** cores of user and system time */
  user: number;
  sys: number;
  /** minor page faults */
  faults: number;
}

/** Per-thread CPU used between two threadCpuOf() readings, in cores (seconds per second), and the minor page faults taken. */
export function threadCpuDelta(before: ThreadCpu[], after: ThreadCpu[], seconds: number): ThreadUse[] {
  return after.map((a) => {
    const b = before.find((x) => x.name === a.name);
    return { name: a.name, user: (a.userS - (b?.userS ?? 0)) / seconds, sys: (a.sysS - (b?.sysS ?? 0)) / seconds, faults: a.faults - (b?.faults ?? 0) };
  }).filter((t) => t.user + t.sys > 0.001 || t.faults > 0).sort((x, y) => y.user + y.sys - (x.user + x.sys));
}

const BENCH = dirname(fileURLToPath(import.meta.url));

/**
 * Compiles the gateway as `fabric serve` runs it (compiled JS, no type stripper in the
 * process) into results/build/, and returns the path of its gateway-proc.js.
 */
export function buildGatewayProc(): string {
  const built = spawnSync(process.execPath, [join(BENCH, '..', 'node_modules', 'typescript', 'bin', 'tsc'), '-p', join(BENCH, '..', 'tsconfig.bench.json'), '--noCheck'], { encoding: 'utf8' });
  if (built.status !== 0) throw new Error(`building the gateway for the benchmark failed:\n${built.stdout}${built.stderr}`);
  return join(BENCH, 'results', 'build', 'bench', 'gateway-proc.js');
}

/** BENCH_NODE_FLAGS: extra node flags for the processes under test (--trace-gc, --cpu-prof, …). */
export function envNodeFlags(): string[] {
  return (process.env.BENCH_NODE_FLAGS ?? '').split(/\s+/).filter((f) => f !== '');
}

/** Kills every child when the orchestrator exits or is interrupted, so none outlives it. */
export function killOnExit(children: Child[]): void {
  const killAll = (): void => {
    for (const c of children) c.kill();
  };
  process.on('exit', killAll);
  for (const sig of ['SIGINT', 'SIGTERM'] as const) {
    process.on(sig, () => {
      killAll();
      process.exit(130);
    });
  }
}

/** Starts a process that answers 'ready' with its pid and url (gateway-proc, bare-proxy), and waits for it. */
export async function startServerProc(children: Child[], label: string, script: string, args: string[], opts: ConstructorParameters<typeof Child>[3]): Promise<{ child: Child; url: string; ready: Record<string, unknown> }> {
  const child = new Child(label, script, args, opts);
  children.push(child);
  const ready = await child.waitFor('ready', 15_000);
  child.pid = ready.pid as number;
  return { child, url: ready.url as string, ready };
}

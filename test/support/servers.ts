// Throwaway PostgreSQL, Redis and Prometheus servers for tests: a PostgreSQL cluster made with
// initdb in a temp dir and started with pg_ctl on a free loopback port, a redis-server child on
// another, a prometheus child on a third. They run as the current user (as `postgres` when that is root, which initdb
// refuses), so tests depend on no system service. Without the binaries the tests are skipped
// locally; under CI=true that is a failure, so nothing is skipped in CI (.ci/run installs them).

import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { chownSync, existsSync, readdirSync, rmSync, readFileSync } from 'node:fs';
import { createServer, connect } from 'node:net';
import { join } from 'node:path';
import { tempDir } from './temp-dir.ts';

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

function which(cmd: string): string | undefined {
  for (const dir of (process.env.PATH ?? '').split(':')) {
    if (dir !== '' && existsSync(join(dir, cmd))) return join(dir, cmd);
  }
  return undefined;
}

/** Where initdb and pg_ctl are: PATH, else Debian's /usr/lib/postgresql/N/bin (newest). */
export function pgBinDir(): string | undefined {
  const onPath = which('initdb');
  if (onPath !== undefined) return onPath.slice(0, -'/initdb'.length);
  const root = '/usr/lib/postgresql';
  if (!existsSync(root)) return undefined;
  const versions = readdirSync(root).filter((v) => existsSync(join(root, v, 'bin', 'initdb'))).sort((a, b) => Number(b) - Number(a));
  return versions.length === 0 ? undefined : join(root, versions[0]!, 'bin');
}

/** Why a server cannot be had here; under CI that throws instead, so CI never skips. */
export function unavailable(what: string, why: string): string {
  const msg = `${what} unavailable: ${why}`;
  if (process.env.CI === 'true') throw new Error(`${msg} (CI=true: these tests must run; .ci/run installs postgresql, redis-server, prometheus and chromium)`);
  return msg;
}

export interface PgServer {
  url: string;
  port: number;
  /** A fresh empty database on this server, for one suite. */
  createDatabase(name: string): Promise<string>;
  /** Stops the server at once (pg_ctl -m immediate): clients see the connection drop. */
  stop(): void;
  /** Starts it again on the same port with the same data. */
  start(): void;
  close(): void;
}

const isRoot = (): boolean => process.getuid?.() === 0;

function asDbUser(bin: string, args: string[], opts: { cwd?: string } = {}): string {
  // initdb and postgres refuse to run as root: run them as the postgres user.
  const [cmd, argv] = isRoot() ? ['runuser', ['-u', 'postgres', '--', bin, ...args]] : [bin, args];
  return execFileSync(cmd, argv, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], cwd: opts.cwd ?? '/' });
}

export async function startPostgres(): Promise<PgServer | string> {
  const bin = pgBinDir();
  if (bin === undefined) return unavailable('PostgreSQL', 'initdb not found (apt-get install postgresql)');
  if (isRoot()) {
    try {
      execFileSync('id', ['-u', 'postgres'], { stdio: 'ignore' });
    } catch {
      return unavailable('PostgreSQL', 'running as root and there is no postgres user to run initdb as');
    }
  }
  const dir = tempDir('fabric-pg-');
  if (isRoot()) {
    const uid = Number(execFileSync('id', ['-u', 'postgres'], { encoding: 'utf8' }).trim());
    const gid = Number(execFileSync('id', ['-g', 'postgres'], { encoding: 'utf8' }).trim());
    chownSync(dir, uid, gid);
  }
  const data = join(dir, 'data');
  const port = await freePort();
  try {
    asDbUser(join(bin, 'initdb'), ['-D', data, '-A', 'trust', '-U', 'fabric', '-E', 'UTF8', '--locale=C', '--no-sync']);
  } catch (e) {
    rmSync(dir, { recursive: true, force: true });
    return unavailable('PostgreSQL', `initdb failed: ${(e as { stderr?: string }).stderr ?? String(e)}`);
  }
  const pgctl = join(bin, 'pg_ctl');
  // fsync=off is safe here (the machine does not crash in a test); synchronous_commit stays on:
  // with it off, a commit is acknowledged before its WAL is written, and the outage test
  // (pg_ctl -m immediate) rightly finds those records lost.
  const opts = `-p ${port} -k ${dir} -c listen_addresses=127.0.0.1 -c fsync=off -c full_page_writes=off -c max_connections=60`;
  const start = (): void => { asDbUser(pgctl, ['-D', data, '-l', join(dir, 'log'), '-o', opts, '-w', '-t', '30', 'start']); };
  let running = false;
  try {
    start();
    running = true;
  } catch (e) {
    let log = '';
    try { log = readFileSync(join(dir, 'log'), 'utf8').slice(-2000); } catch { /* none */ }
    rmSync(dir, { recursive: true, force: true });
    return unavailable('PostgreSQL', `pg_ctl start failed: ${(e as { stderr?: string }).stderr ?? String(e)} ${log}`);
  }
  const url = `postgresql://fabric@127.0.0.1:${port}/postgres`;
  return {
    url,
    port,
    async createDatabase(name: string): Promise<string> {
      const pg = (await import('pg')).default;
      const c = new pg.Client({ connectionString: url });
      await c.connect();
      try {
        await c.query(`DROP DATABASE IF EXISTS ${name}`);
        await c.query(`CREATE DATABASE ${name}`);
      } finally {
        await c.end();
      }
      return `postgresql://fabric@127.0.0.1:${port}/${name}`;
    },
    stop(): void {
      if (!running) return;
      asDbUser(pgctl, ['-D', data, '-m', 'immediate', '-w', 'stop']);
      running = false;
    },
    start(): void {
      if (running) return;
      start();
      running = true;
    },
    close(): void {
      try {
        if (running) asDbUser(pgctl, ['-D', data, '-m', 'immediate', '-w', 'stop']);
      } catch {
        // already gone
      }
      running = false;
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

export interface RedisServer {
  url: string;
  port: number;
  /** Stops it (once: a second call waits for the first), its data dir removed. */
  close(): Promise<void>;
  /** Freezes it (SIGSTOP): connections stay open and nothing answers, as a Redis that hangs. */
  pause(): void;
  resume(): void;
}

/** A child stopped with `signal` and awaited (unless it already ended), then its temp dir removed: once, however often called. */
export function stopper(child: ChildProcess, dir: string, signal: NodeJS.Signals = 'SIGTERM'): () => Promise<void> {
  let stopping: Promise<void> | undefined;
  return () => (stopping ??= (async () => {
    if (child.exitCode === null && child.signalCode === null) {
      const exited = new Promise((r) => child.once('exit', r));
      child.kill(signal);
      await exited;
    }
    // A child's own children (Chromium's renderers and crash handler) may still be writing
    // there for a moment after it exits: removal is retried on ENOTEMPTY.
    rmSync(dir, { recursive: true, force: true, maxRetries: 10, retryDelay: 50 });
  })());
}

function ping(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect(port, '127.0.0.1');
    let buf = '';
    s.setTimeout(500, () => { s.destroy(); resolve(false); });
    s.on('error', () => resolve(false));
    s.on('connect', () => s.write('PING\r\n'));
    s.on('data', (d) => {
      buf += d.toString();
      if (buf.includes('\r\n')) {
        s.destroy();
        resolve(buf.startsWith('+PONG'));
      }
    });
  });
}

export async function startRedis(): Promise<RedisServer | string> {
  const bin = which('redis-server') ?? (existsSync('/usr/bin/redis-server') ? '/usr/bin/redis-server' : undefined);
  if (bin === undefined) return unavailable('Redis', 'redis-server not found (apt-get install redis-server)');
  const dir = tempDir('fabric-redis-');
  const port = await freePort();
  const child: ChildProcess = spawn(bin, ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir, '--daemonize', 'no', '--protected-mode', 'yes'], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout!.on('data', (d) => { out += d.toString(); });
  child.stderr!.on('data', (d) => { out += d.toString(); });
  const until = Date.now() + 10_000;
  while (Date.now() < until) {
    if (child.exitCode !== null) break;
    if (await ping(port)) {
      const stop = stopper(child, dir);
      return {
        url: `redis://127.0.0.1:${port}`,
        port,
        // A frozen server takes no SIGTERM: it is woken first.
        close: () => { child.kill('SIGCONT'); return stop(); },
        pause: () => { child.kill('SIGSTOP'); },
        resume: () => { child.kill('SIGCONT'); },
      };
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  child.kill('SIGKILL');
  rmSync(dir, { recursive: true, force: true });
  return unavailable('Redis', `redis-server did not start: ${out.slice(-1000)}`);
}

export interface PrometheusServer {
  url: string;
  /** GET /api/v1/query at the server's time: the result vector, or the error Prometheus gave. */
  query(expr: string): Promise<{ status: string; error?: string; data?: { resultType: string; result: Array<{ metric: Record<string, string>; value: [number, string] }> } }>;
  close(): Promise<void>;
}

/** A prometheus child reading `configFile`, its data in a temp dir, on a free loopback port. */
export async function startPrometheus(configFile: string): Promise<PrometheusServer | string> {
  const bin = which('prometheus') ?? (existsSync('/usr/bin/prometheus') ? '/usr/bin/prometheus' : undefined);
  if (bin === undefined) return unavailable('Prometheus', 'prometheus not found (apt-get install prometheus)');
  const dir = tempDir('fabric-prometheus-');
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const child: ChildProcess = spawn(bin, [`--config.file=${configFile}`, `--storage.tsdb.path=${dir}`, `--web.listen-address=127.0.0.1:${port}`, '--log.level=warn'], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout!.on('data', (d) => { out += d.toString(); });
  child.stderr!.on('data', (d) => { out += d.toString(); });
  const close = stopper(child, dir);
  const until = Date.now() + 20_000;
  while (Date.now() < until && child.exitCode === null) {
    const ready = await fetch(`${url}/-/ready`).then((r) => r.ok, () => false);
    if (ready) {
      return {
        url,
        async query(expr) {
          const r = await fetch(`${url}/api/v1/query?query=${encodeURIComponent(expr)}`);
          return (await r.json()) as Awaited<ReturnType<PrometheusServer['query']>>;
        },
        close,
      };
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  await close();
  return unavailable('Prometheus', `prometheus did not start: ${out.slice(-1000)}`);
}

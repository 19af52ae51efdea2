// The composition root: the one place where config, gateway, health monitor, HTTP server
// and logger are wired together. The CLI and the tests start gateways through here.

import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createSecureContext, type Server as TlsServer } from 'node:tls';
import { homedir } from 'node:os';
import { dirname, isAbsolute, join, resolve } from 'node:path';
import type { FabricConfig } from './config/types.ts';
import { readTls } from './config/tls.ts';
import type { Secrets } from './config/env-file.ts';
import { Gateway } from './core/gateway.ts';
import type { BackendRuntime } from './core/backend.ts';
import { createLogger, type Logger } from './core/log.ts';
import { FleetHealth } from './health/fleet.ts';
import { MasterKey } from './http/auth.ts';
import { createGatewayServer, type AppState } from './http/server.ts';
import { Accounting } from './accounting/service.ts';
import { warnDrift } from './accounting/drift.ts';
import { openGatewayWarning } from './http/open-gateway.ts';
import { outPathProblem } from './cli/out-path.ts';
import { SqliteStore } from './store/sqlite.ts';
import type { Store } from './store/types.ts';
import { Tracing } from './tracing/otlp.ts';

export interface StartOptions {
  host?: string;
  port?: number;
  log?: Logger;
  /** Probe backends at start and then at the configured interval (default true). */
  probe?: boolean;
  /** The data directory (SQLite store, usage spool); default: $FABRIC_DATA_DIR, gateway.data_dir, or data/ beside the config file. */
  dataDir?: string;
  /** Keys, limits, budgets and usage (default true): false runs the gateway without a store, as before them. */
  accounting?: boolean;
  /** How long a replaced config's secrets stay scrubbed after its last request ended (default 5 s). */
  retiredLogMs?: number;
  /** Call the alert webhook on changes of level (default true; one worker of several does). */
  alerts?: boolean;
  /** How long a request's head and the whole request may take to arrive (30 s, 300 s): for tests. */
  requestTimeouts?: { headersMs: number; requestMs: number };
}

/** Where the gateway keeps its state (see StartOptions.dataDir). */
export function dataDirOf(config: FabricConfig, env: NodeJS.ProcessEnv = process.env): string {
  const fromEnv = env.FABRIC_DATA_DIR;
  if (fromEnv !== undefined && fromEnv !== '') return resolve(fromEnv);
  const base = config.file === undefined || config.file.startsWith('(') ? undefined : dirname(resolve(config.file));
  const dd = config.gateway.dataDir;
  if (dd !== undefined) return isAbsolute(dd) ? dd : resolve(base ?? process.cwd(), dd);
  if (base !== undefined) return join(base, 'data');
  return join(env.XDG_DATA_HOME !== undefined && env.XDG_DATA_HOME !== '' ? env.XDG_DATA_HOME : join(homedir(), '.local', 'share'), 'ai-fabric');
}

/**
 * The configured store: SQLite in the data directory by default, PostgreSQL given a URL. A
 * gateway's SQLite store does its bulk writes on a thread (`gateway`); the CLI's needs none.
 */
export async function openStore(config: FabricConfig, secrets: Secrets, dataDir: string, log?: Logger, gateway = false): Promise<Store> {
  const st = config.gateway.store;
  if (st.kind === 'postgres') {
    const url = secrets.get(st.url.env);
    if (url === undefined) throw new Error(`gateway.store.url: ${st.url.env} is not set`);
    // Loaded only when PostgreSQL is configured.
    const { PostgresStore } = await import('./store/postgres.ts');
    return new PostgresStore(url, { onError: (e) => log?.debug('store: connection error', { error: e.message }) });
  }
  return new SqliteStore(sqlitePath(st.path, dataDir), { writerThread: gateway });
}

/** Where a SQLite store's file is: its configured path, relative to the data directory. */
export function sqlitePath(path: string, dataDir: string): string {
  return isAbsolute(path) ? path : join(dataDir, path);
}

export interface RunningGateway {
  readonly url: string;
  readonly port: number;
  readonly server: Server;
  readonly app: AppState;
  /** Probes, load, node power (Wake-on-LAN) and alerts. */
  readonly fleet: FleetHealth;
  /** Swap in a new config atomically; in-flight requests finish on the old one. */
  reload(config: FabricConfig, secrets: Secrets): void;
  /** Drain: refuse new work, let in-flight requests and streams finish (up to graceMs), then close. */
  close(graceMs?: number): Promise<void>;
}

/** Names of every secret the config references, for log scrubbing. */
export function secretNames(config: FabricConfig): string[] {
  const names: string[] = [];
  if (config.gateway.masterKey !== undefined) names.push(config.gateway.masterKey.env);
  for (const b of config.backends.values()) if (b.apiKey !== undefined) names.push(b.apiKey.env);
  const hook = config.gateway.alerts?.webhook;
  if (hook !== undefined && 'env' in hook) names.push(hook.env);
  if (config.gateway.store.kind === 'postgres') names.push(config.gateway.store.url.env);
  if (config.gateway.redis !== undefined) names.push(config.gateway.redis.url.env);
  for (const [, v] of config.gateway.tracing?.headers ?? []) if (typeof v !== 'string') names.push(v.env);
  return names;
}

/** Shorter than this, a master key is guessable in practice (LiteLLM's examples use sk-1234). */
const MIN_MASTER_KEY = 32;

/** How long a replaced config's secrets stay scrubbed after its last request ended. */
const RETIRED_LOG_MS = 5_000;

function masterKeyOf(config: FabricConfig, secrets: Secrets, log?: Logger): MasterKey | undefined {
  const ref = config.gateway.masterKey;
  if (ref === undefined) return undefined;
  const v = secrets.get(ref.env);
  if (v === undefined) throw new Error(`master key ${ref.env} is not set`);
  if (v.length < MIN_MASTER_KEY) {
    log?.warn(`the master key (${ref.env}) is ${v.length} characters long: use at least ${MIN_MASTER_KEY} random ones (openssl rand -hex 32), as it opens every backend and the admin API`);
  }
  return new MasterKey(v);
}

export async function startGateway(config: FabricConfig, secrets: Secrets, opts: StartOptions = {}): Promise<RunningGateway> {
  const log = opts.log ?? createLogger({ secrets: secrets.values(secretNames(config)) });
  // The fleet is created below; the hook only runs on requests, after that.
  const wakeFor = (bs: readonly BackendRuntime[]): void => { fleet.wakeFor(bs); };
  let gateway = new Gateway(config, secrets, { wakeFor });
  const probe = opts.probe ?? true;
  const fleet = new FleetHealth(gateway, secrets, { log, probe, alerts: opts.alerts });
  const app: AppState = { gateway, masterKey: masterKeyOf(config, secrets, log), log, draining: false, startedAt: Date.now(), config: { loadedAt: Date.now() } };
  /** The running config's secrets: a reload brings its own. */
  let currentSecrets = secrets;
  app.tracing = new Tracing({ config: () => app.gateway.config.gateway.tracing, secret: (n) => currentSecrets.get(n), log });
  fleet.configState = () => app.config;
  let accounting: Accounting | undefined;
  /** Where the store and the spool were opened: a reload cannot move them. */
  let dataDir: string | undefined;
  if (opts.accounting !== false) {
    dataDir = opts.dataDir ?? dataDirOf(config);
    // Checked before anything is made there: under /proc, Node's recursive mkdir never returns.
    const problem = outPathProblem(dataDir, 'dir');
    if (problem !== undefined) throw new Error(`the data directory ${dataDir} cannot be used: ${problem}`);
    const store = await openStore(config, secrets, dataDir, log, true);
    const redisUrl = config.gateway.redis === undefined ? undefined : secrets.get(config.gateway.redis.url.env);
    try {
      accounting = await Accounting.start({ store, config, log, dataDir, redisUrl, checkRedisPolicy: opts.alerts !== false, events: {
        rateLimited: (k, l) => app.metrics?.rateLimited.inc([k, l]),
        keyBudgetRefused: (k) => app.metrics?.keyBudgetRefused.inc([k]),
        cost: (role, backend, usd) => app.metrics?.cost.inc([role, backend], usd),
      } });
    } catch (e) {
      await store.close();
      throw new Error(`cannot open the store (${store.kind} ${store.where}): ${(e as Error).message}`, { cause: e });
    }
    app.accounting = accounting;
    // Once for the fleet: with several workers, by the first (as its alerts are).
    if (opts.alerts !== false) void warnDrift(gateway, accounting, log);
    log.info('state', {
      store: `${store.kind} ${store.where}`, keys: accounting.keys.size, budgets: config.budgets.map((b) => b.name),
      limits: accounting.sharedLimits ? 'shared (redis)' : 'per process', accounting: config.gateway.accounting.enabled ? 'on' : 'off',
      request_log: config.gateway.requestLog.enabled ? 'on' : 'off',
    });
  }
  const tls = readTls(config);
  const server = createGatewayServer(app, {
    maxHeaderBytes: config.gateway.limits.maxHeaderBytes, maxBodyBytes: () => app.gateway.config.gateway.limits.maxBodyBytes,
    maxBodyInFlightBytes: () => app.gateway.config.gateway.limits.maxBodyInFlightBytes, fastLane: config.gateway.fastLane,
    ...(opts.requestTimeouts === undefined ? {} : { timeouts: opts.requestTimeouts }),
    ...(tls === undefined ? {} : { tls }),
  });
  let servedTls = tls;
  if (accounting !== undefined) app.metrics?.attachAccounting(accounting);
  if (accounting?.redis !== undefined) app.cache?.attachRedis(accounting.redis);
  const cacheCfg = config.gateway.cache;
  if (cacheCfg !== undefined) {
    if (cacheCfg.store === 'redis' && accounting?.redis === undefined) log.warn('cache: store is redis, but this gateway has no Redis connection (it runs without a store): nothing is cached');
    else log.info('cache', { store: cacheCfg.store, ttl_s: cacheCfg.ttlMs / 1000, when: cacheCfg.when, scope: cacheCfg.scope });
  }
  // Through the fleet as it is at the time (a reload replaces its monitor and the backends).
  app.probeNow = (names) => fleet.monitor.probeNow(names.flatMap((n) => app.gateway.backends.get(n) ?? []));
  await fleet.start();
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(opts.port ?? config.gateway.port, opts.host ?? config.gateway.host, () => {
        server.off('error', reject);
        resolve();
      });
    });
  } catch (e) {
    // Not serving (the port is taken): nothing of this gateway may go on running or logging.
    fleet.stop();
    await gateway.close();
    await accounting?.close();
    throw e;
  }
  /** Releases the scrubbing of the running config's secrets (those of a reload; the first config's stay). */
  let releaseSecrets: (() => void) | undefined;
  const addr = server.address() as AddressInfo;
  const host = addr.family === 'IPv6' ? `[${addr.address}]` : addr.address;
  return {
    url: `${tls === undefined ? 'http' : 'https'}://${host === '0.0.0.0' || host === '[::]' ? '127.0.0.1' : host}:${addr.port}`,
    port: addr.port,
    server,
    app,
    fleet,
    reload(next: FabricConfig, nextSecrets: Secrets): void {
      const old = gateway;
      const key = masterKeyOf(next, nextSecrets, log);
      // Read before anything is swapped: files gone since the config was checked refuse the reload whole.
      const nextTls = tls !== undefined && next.gateway.tls !== undefined ? readTls(next) : undefined;
      // And checked as a pair (a renewal caught between its two writes), so setSecureContext below cannot throw halfway.
      if (nextTls !== undefined) createSecureContext(nextTls);
      const nextGateway = new Gateway(next, nextSecrets, { wakeFor });
      // Keys the new config brings (a rotated backend key, a new master key) are scrubbed too;
      // the replaced config's stay scrubbed while requests it started may still log them.
      const releaseOld = releaseSecrets;
      releaseSecrets = log.addSecrets(nextSecrets.values(secretNames(next)));
      // What is known of each backend the reload leaves as it was (down, cooling, rate limited,
      // its load and requests in flight) carries over: a reload forgets nothing of the fleet.
      nextGateway.carryOver(old);
      gateway = nextGateway;
      app.gateway = gateway;
      currentSecrets = nextSecrets;
      app.masterKey = key;
      fleet.attach(gateway, nextSecrets);
      // The HTTP server keeps what it was built with (max_body is read per request).
      const was = old.config.gateway;
      const listening: string[] = [];
      if (next.gateway.fastLane !== was.fastLane) listening.push('gateway.fast_lane');
      if (next.gateway.limits.maxHeaderBytes !== was.limits.maxHeaderBytes) listening.push('gateway.limits.max_header');
      if (next.gateway.host !== was.host || next.gateway.port !== was.port) listening.push('gateway.host / port');
      if (next.gateway.workers !== was.workers) listening.push('gateway.workers');
      if ((next.gateway.tls === undefined) !== (tls === undefined)) listening.push('gateway.tls (HTTPS on or off)');
      else if (nextTls !== undefined && (!nextTls.cert.equals(servedTls!.cert) || !nextTls.key.equals(servedTls!.key))) {
        // A renewed certificate (or other files named): new connections get it; open ones keep theirs.
        (server as unknown as TlsServer).setSecureContext(nextTls);
        servedTls = nextTls;
        log.info('config reload: TLS certificate and key replaced; new connections get them');
      }
      // The store and the spool stay where they were opened.
      if (dataDir !== undefined && opts.dataDir === undefined && dataDirOf(next) !== dataDir) listening.push('gateway.data_dir');
      if (listening.length > 0) log.warn(`config reload: ${listening.join(', ')} changes take effect at the next restart`);
      // A reload that takes the master key away opens the gateway: said as at start.
      const open = next.gateway.masterKey === undefined && was.masterKey !== undefined ? openGatewayWarning(opts.host ?? config.gateway.host) : undefined;
      if (open !== undefined) log.warn(`config reload: ${open}`);
      if (accounting !== undefined) {
        if (JSON.stringify(next.gateway.store) !== JSON.stringify(accounting.config.gateway.store) || JSON.stringify(next.gateway.redis) !== JSON.stringify(accounting.config.gateway.redis)) {
          log.warn('config reload: gateway.store and gateway.redis changes take effect at the next restart');
        }
        accounting.reconfigure(next);
        if (opts.alerts !== false) void warnDrift(gateway, accounting, log);
      }
      // The old pools close once the requests still running on them are done (bounded by
      // their longest total timeout), so a request mid-fallback still reaches its next backend.
      const longest = Math.max(1_000, ...[...old.backends.values()].map((b) => b.config.timeouts.totalMs));
      void old.retire(longest);
      // Its keys stay scrubbed until its last request is over (however long its body takes to
      // arrive), and a little longer for the lines written as it ends.
      if (releaseOld !== undefined) void old.whenIdle().then(() => setTimeout(releaseOld, opts.retiredLogMs ?? RETIRED_LOG_MS).unref());
    },
    async close(graceMs = 30_000): Promise<void> {
      app.draining = true;
      fleet.stop();
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeIdleConnections();
      // A keep-alive connection whose last request finishes during the drain goes idle, and
      // would hold the close until the grace ends: close such connections as they go idle.
      const sweep = setInterval(() => server.closeIdleConnections(), 50);
      const timer = setTimeout(() => {
        // What is still running is cut: the gateway's doing, not its clients' (recorded as 503s,
        // or a stream begun as its 200 with a shutting_down error event, which it is sent).
        app.cutOff = true;
        const streams = app.cutStreams?.() ?? 0;
        log.warn(`drain: the grace of ${graceMs / 1000}s ran out; closing the connections still open${streams > 0 ? ` (${streams} stream${streams === 1 ? '' : 's'} ended with a shutting_down error event)` : ''}`);
        // A moment for those events to leave.
        setTimeout(() => server.closeAllConnections(), 200).unref();
      }, graceMs);
      await closed;
      clearInterval(sweep);
      clearTimeout(timer);
      await gateway.close();
      // After the last response: every record is queued; write them out (SIGTERM flushes).
      await accounting?.close();
      await app.tracing?.close();
      log.flush();
    },
  };
}


// The composition root: the one place where config, gateway, health monitor, HTTP server
// and logger are wired together. The CLI and the tests start gateways through here.

import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { FabricConfig } from './config/types.ts';
import { loadFabricConfig } from './config/load.ts';
import type { Secrets } from './config/env-file.ts';
import { Gateway } from './core/gateway.ts';
import type { BackendRuntime } from './core/backend.ts';
import { createLogger, type Logger } from './core/log.ts';
import { FleetHealth } from './health/fleet.ts';
import { MasterKey } from './http/auth.ts';
import { createGatewayServer, type AppState } from './http/server.ts';

export interface StartOptions {
  host?: string;
  port?: number;
  log?: Logger;
  /** Probe backends at start and then at the configured interval (default true). */
  probe?: boolean;
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
  return names;
}

function masterKeyOf(config: FabricConfig, secrets: Secrets): MasterKey | undefined {
  const ref = config.gateway.masterKey;
  if (ref === undefined) return undefined;
  const v = secrets.get(ref.env);
  if (v === undefined) throw new Error(`master key ${ref.env} is not set`);
  return new MasterKey(v);
}

export async function startGateway(config: FabricConfig, secrets: Secrets, opts: StartOptions = {}): Promise<RunningGateway> {
  const log = opts.log ?? createLogger({ secrets: secrets.values(secretNames(config)) });
  // The fleet is created below; the hook only runs on requests, after that.
  const wakeFor = (bs: readonly BackendRuntime[]): void => { fleet.wakeFor(bs); };
  let gateway = new Gateway(config, secrets, { wakeFor });
  const probe = opts.probe ?? true;
  const fleet = new FleetHealth(gateway, secrets, { log, probe });
  const app: AppState = { gateway, masterKey: masterKeyOf(config, secrets), log, draining: false, startedAt: Date.now() };
  const server = createGatewayServer(app, config.gateway.limits.maxHeaderBytes, () => app.gateway.config.gateway.limits.maxBodyBytes);
  await fleet.start();
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port ?? config.gateway.port, opts.host ?? config.gateway.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const addr = server.address() as AddressInfo;
  const host = addr.family === 'IPv6' ? `[${addr.address}]` : addr.address;
  return {
    url: `http://${host === '0.0.0.0' || host === '[::]' ? '127.0.0.1' : host}:${addr.port}`,
    port: addr.port,
    server,
    app,
    fleet,
    reload(next: FabricConfig, nextSecrets: Secrets): void {
      const old = gateway;
      const key = masterKeyOf(next, nextSecrets);
      gateway = new Gateway(next, nextSecrets, { wakeFor });
      app.gateway = gateway;
      app.masterKey = key;
      fleet.attach(gateway, nextSecrets);
      // The old pools close once the requests still running on them are done (bounded by
      // their longest total timeout), so a request mid-fallback still reaches its next backend.
      const longest = Math.max(1_000, ...[...old.backends.values()].map((b) => b.config.timeouts.totalMs));
      void old.retire(longest);
    },
    async close(graceMs = 30_000): Promise<void> {
      app.draining = true;
      fleet.stop();
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeIdleConnections();
      const timer = setTimeout(() => server.closeAllConnections(), graceMs);
      await closed;
      clearTimeout(timer);
      await gateway.close();
      log.flush();
    },
  };
}

/** Load a config file and start serving it. */
export async function serveFile(path: string, opts: StartOptions = {}): Promise<RunningGateway> {
  const loaded = loadFabricConfig(path);
  return startGateway(loaded.config, loaded.secrets, opts);
}

// fabric serve: the gateway. With --config (or FABRIC_CONFIG) it serves that file; with
// neither it looks for local engines and an OpenAI key, and failing those it serves the
// seeds' fabric from the built-in simulator, labelled as such.

import { createServer } from 'node:net';
import { dirname, isAbsolute, join } from 'node:path';
import { loadFabricConfig, parseFabricText, checkSecrets } from '../config/load.ts';
import { ConfigError, formatIssue } from '../config/issues.ts';
import { Secrets } from '../config/env-file.ts';
import type { FabricConfig } from '../config/types.ts';
import { openGatewayWarning } from '../http/open-gateway.ts';
import { createLogger, type Logger } from '../core/log.ts';
import { redact } from '../core/redact.ts';
import { EventLoopPriority } from '../core/scheduling.ts';
import { startGateway, secretNames, type RunningGateway } from '../main.ts';
import { discoverLocal, fabricFromDiscovery } from '../discovery/local.ts';
import { isWorker, parseWorkers, runPrimary, workerIndex } from './workers.ts';
import { WorkerSiblings } from './siblings.ts';
import type { SharedItem } from '../http/responses/items.ts';
import { parseCommand, usageError } from './args.ts';
import { fileSignatures, watchFiles } from './config-watch.ts';
import { tlsPaths } from '../config/tls.ts';

const HELP = `Usage: fabric serve [--config FILE] [--port N] [--host H] [--log-level L] [--grace S] [--workers N|auto]

Starts the gateway.
  --config FILE   fabric config, or a LiteLLM proxy config as it is; default: $FABRIC_CONFIG
  --port N        listen port (default: the config's gateway.port, else 4000)
  --host H        listen address (default: the config's gateway.host, else 127.0.0.1)
  --log-level L   debug | info | warn | error (default info)
  --grace S       seconds in-flight requests get to finish on SIGTERM (default 30)
  --workers N     gateway processes sharing the port (default: the config's gateway.workers,
                  else 1; "auto" = one per CPU). Each worker keeps its own health and limits
                  state (shared limits need gateway.redis). Needs a config file.

Without a config it discovers engines on their usual local ports (Ollama 11434, vLLM 8000,
llama.cpp 8080, LM Studio 1234) and OpenAI through OPENAI_API_KEY; when it finds none it
serves a simulated demo fleet (the seeds' fabric), labelled simulated everywhere. Without a
config, FABRIC_MASTER_KEY (when set) is the key required on /v1/*.
SIGHUP reloads the config file; SIGTERM/SIGINT drain and exit.
`;

const MASTER_KEY_ENV = 'FABRIC_MASTER_KEY';

async function buildWithoutConfig(host: string, port: number, log: Logger): Promise<{ config: FabricConfig; secrets: Secrets; close?: () => Promise<void> }> {
  const secrets = new Secrets(process.env);
  log.info('no config given: looking for local engines (Ollama :11434, vLLM :8000, llama.cpp :8080, LM Studio :1234) and OPENAI_API_KEY');
  const found = await discoverLocal();
  const hasOpenAI = secrets.get('OPENAI_API_KEY') !== undefined;
  for (const f of found) log.info(`found ${f.engine} at ${f.url}`, { models: f.models });
  if (hasOpenAI) log.info('found OPENAI_API_KEY: OpenAI is the cloud fallback');
  const yaml = fabricFromDiscovery(found, hasOpenAI, port, host);
  if (yaml !== undefined) {
    const { config } = parseFabricText(yaml, '(discovered)');
    return { config: withEnvMasterKey(config, secrets, log), secrets };
  }
  log.warn('no engines found and no OPENAI_API_KEY: serving the SIMULATED demo fleet (the seeds\' fabric); answers are generated, not real model output');
  // The simulator is loaded only here: a gateway with real engines never carries it.
  const { startDemoFleet, demoFabricYaml } = await import('../discovery/demo.ts');
  const fleet = await startDemoFleet();
  const { config } = parseFabricText(demoFabricYaml(fleet, host, port), '(demo)');
  log.info('simulated engines', { engines: [...fleet.engines.values()].map((e) => `${e.name}=${e.url}`), control: fleet.controlUrl });
  return { config: withEnvMasterKey(config, secrets, log), secrets, close: () => fleet.close() };
}

/** Without a config, FABRIC_MASTER_KEY (from the environment) is the master key, as a config's `master_key: env:FABRIC_MASTER_KEY` would make it. */
function withEnvMasterKey(config: FabricConfig, secrets: Secrets, log: Logger): FabricConfig {
  if (secrets.get(MASTER_KEY_ENV) === undefined) return config;
  config.gateway.masterKey = { env: MASTER_KEY_ENV };
  log.info(`${MASTER_KEY_ENV} is set: it is required on /v1/* (Authorization: Bearer …)`);
  return config;
}

/** Why host:port cannot be listened on (EADDRINUSE, EACCES…), or undefined if it can. */
function portTaken(host: string, port: number): Promise<string | undefined> {
  return new Promise((resolve) => {
    const probe = createServer();
    probe.once('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? e.message));
    probe.listen({ host, port, exclusive: true }, () => probe.close(() => resolve(undefined)));
  });
}

/** Why the gateway cannot listen, in one line, with what to do about the usual causes (as fabric sim says it). */
function listenFailure(host: string, port: number, code: string): string {
  let hint = '';
  if (code === 'EADDRINUSE') hint = ` (another process holds port ${port}, perhaps another fabric serve: stop it, or pick another port with --port N or gateway.port)`;
  else if (code === 'EACCES' && port < 1024) hint = ` (ports below 1024 need privileges: pick another with --port N or gateway.port)`;
  else if (code === 'EADDRNOTAVAIL') hint = ` (${host} is no address of this machine: --host H or gateway.host)`;
  return `cannot listen on ${host}:${port}: ${code}${hint}`;
}

/** What a reload follows: the config, its .env, and the TLS files (a renewed certificate is served without a restart). */
function watchedFiles(file: string, config: FabricConfig): string[] {
  const envFile = config.gateway.envFile ?? '.env';
  const tls = tlsPaths(config);
  return [file, isAbsolute(envFile) ? envFile : join(dirname(file), envFile), ...(tls === undefined ? [] : [tls.cert, tls.key])];
}

export async function runServe(argv: string[]): Promise<number> {
  // The log's reader went away (a collector restarted, `| head`), or the file it goes to can take
  // no more (a full disk, a file-size limit): with nowhere to log, drain (every usage record
  // written out) and exit non-zero, so that a supervisor (Restart=on-failure) starts it again.
  let stdoutLost = false;
  let onStdoutLost: (() => void) | undefined;
  process.stdout.on('error', (e: NodeJS.ErrnoException) => {
    if (e.code !== 'EPIPE' && e.code !== 'ENOSPC' && e.code !== 'EFBIG' && e.code !== 'EDQUOT') throw e;
    if (stdoutLost) return;
    stdoutLost = true;
    process.stderr.write(`fabric serve: its log output (stdout) ${e.code === 'EPIPE' ? 'was closed' : `cannot be written (${e.code})`}: draining, then exiting 1\n`);
    onStdoutLost?.();
  });
  // A reload asked for before the gateway runs (`systemctl reload` right after start, or the
  // primary passing one on to a worker still starting) is taken once it runs: SIGHUP's default
  // action would end the process. One listener for the process's life, whose action changes:
  // removing it and adding another would drop a signal caught but not yet dispatched.
  let reloadAsked = false;
  let onHangup = (): void => { reloadAsked = true; };
  process.on('SIGHUP', () => onHangup());
  const parsed = parseCommand('serve', HELP, {
    args: argv,
    options: {
      config: { type: 'string', short: 'c' },
      port: { type: 'string', short: 'p' },
      host: { type: 'string' },
      'log-level': { type: 'string' },
      grace: { type: 'string' },
      workers: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (typeof parsed === 'number') return parsed;
  const { values } = parsed;
  const level = (values['log-level'] ?? 'info') as 'debug' | 'info' | 'warn' | 'error';
  if (!['debug', 'info', 'warn', 'error'].includes(level)) {
    return usageError('serve', '--log-level must be debug, info, warn or error');
  }
  const port = values.port === undefined ? undefined : Number(values.port);
  if (port !== undefined && (!Number.isInteger(port) || port < 0 || port > 65535)) {
    return usageError('serve', '--port must be a port number');
  }
  const graceMs = values.grace === undefined ? 30_000 : Number(values.grace) * 1000;
  if (!Number.isFinite(graceMs) || graceMs < 0) {
    return usageError('serve', '--grace must be a number of seconds');
  }
  const workersFlag = values.workers === undefined ? undefined : parseWorkers(values.workers);
  if (values.workers !== undefined && workersFlag === undefined) {
    return usageError('serve', '--workers must be a number from 1 to 64, or auto');
  }
  const file = values.config ?? process.env.FABRIC_CONFIG;
  const pretty = process.stdout.isTTY === true;

  let config: FabricConfig;
  let secrets: Secrets;
  let cleanup: (() => Promise<void>) | undefined;
  let log: Logger;
  /** With several workers, this process only forks and watches them: how many. */
  let primaryOf: number | undefined;
  let watchedSince: string[] | undefined;
  if (file !== undefined && file !== '') {
    try {
      const loaded = loadFabricConfig(file);
      // As they were when read: a change before the watch begins is still a change.
      watchedSince = fileSignatures(watchedFiles(file, loaded.config));
      ({ config, secrets } = loaded);
      const workers = workersFlag ?? config.gateway.workers;
      // Workers share one stdout: writes of at most PIPE_BUF bytes keep lines whole.
      const w = workerIndex();
      log = createLogger({ level, pretty, secrets: secrets.values(secretNames(config)), maxBatchBytes: workers > 1 ? 4096 : undefined, ...(w === undefined ? {} : { worker: String(w) }) });
      // The primary reports the config's warnings once; its workers do not repeat them.
      if (!isWorker()) for (const i of loaded.issues) log.warn(formatIssue(i));
      if (workers > 1 && !isWorker()) primaryOf = workers;
    } catch (e) {
      if (!(e instanceof ConfigError)) throw e;
      for (const i of e.issues) process.stderr.write(formatIssue(i) + '\n');
      process.stderr.write(`fabric serve: refusing to start with an invalid config (${file})\n`);
      return 1;
    }
  } else {
    log = createLogger({ level, pretty, secrets: [process.env.OPENAI_API_KEY ?? '', process.env[MASTER_KEY_ENV] ?? ''] });
    if ((workersFlag ?? 1) > 1) log.warn('--workers needs a config file: serving with one process');
    ({ config, secrets, close: cleanup } = await buildWithoutConfig(values.host ?? '127.0.0.1', port ?? 4000, log));
    for (const i of checkSecrets(config, secrets, '(discovered)')) log.warn(formatIssue(i));
  }

  // The port first: a port already taken is said before the store is opened, migrated and
  // probed for nothing, or workers forked for nothing. (A worker's listen goes through the
  // primary: checked there.)
  const listenHost = values.host ?? config.gateway.host;
  const listenPort = port ?? config.gateway.port;
  const taken = isWorker() || listenPort === 0 ? undefined : await portTaken(listenHost, listenPort);
  if (taken !== undefined) {
    process.stderr.write(`fabric serve: ${listenFailure(listenHost, listenPort, taken)}\n`);
    await cleanup?.();
    return 1;
  }
  if (primaryOf !== undefined) {
    // The primary's own SIGHUP passes the reload on to every worker.
    onHangup = () => {};
    return runPrimary(primaryOf, graceMs, log);
  }

  let running: RunningGateway;
  try {
    // With several workers, the first calls the alert webhook: one call per change, not one per worker.
    running = await startGateway(config, secrets, { host: values.host, port, log, alerts: (workerIndex() ?? 0) === 0 });
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    // A port that cannot be had says so; anything else (the store, Redis) says what it was.
    const why = err.syscall === 'listen' ? listenFailure(listenHost, listenPort, err.code ?? err.message) : `cannot start: ${err.message}`;
    process.stderr.write(`fabric serve: ${redact(why, secrets.values(secretNames(config)))}\n`);
    await cleanup?.();
    return 1;
  }
  if (isWorker()) askSiblings(running);
  const roles = [...config.roles.keys()];
  // A key set for the gateway that the config does not ask for: say so, rather than serve open.
  if (file !== undefined && config.gateway.masterKey === undefined && process.env[MASTER_KEY_ENV] !== undefined && process.env[MASTER_KEY_ENV] !== '') {
    log.warn(`${MASTER_KEY_ENV} is set, but ${file} names no gateway.master_key, so no key is required on /v1/*: add master_key: env:${MASTER_KEY_ENV} under gateway: to require it`);
  }
  const open = config.gateway.masterKey === undefined ? openGatewayWarning(listenHost) : undefined;
  if (open !== undefined) log.warn(open);
  // On every interface, the address bound and the one to use from this machine.
  const any = listenHost === '0.0.0.0' || listenHost === '::';
  const where = any ? `${listenHost === '::' ? '[::]' : listenHost}:${running.port} (${running.url} from this machine)` : running.url;
  log.info(`AI Fabric gateway listening on ${where}${config.simulated ? ' (SIMULATED fleet)' : ''}`, {
    pid: process.pid, roles, backends: config.backends.size, auth: config.gateway.masterKey === undefined ? 'none (no master key configured)' : 'master key',
    dashboard: `${running.url}/dashboard`,
  });
  const priority = new EventLoopPriority(log, { changed: (raised) => running.app.metrics?.eventLoopRealtime.set([], raised ? 1 : 0) });
  await priority.configure(config.gateway.realtime);
  log.flush();

  const reload = (): void => {
    if (file === undefined || file === '') return;
    try {
      const next = loadFabricConfig(file);
      running.reload(next.config, next.secrets);
      void priority.configure(next.config.gateway.realtime);
      running.app.config = { loadedAt: Date.now() };
      log.info('config reloaded', { file });
      // As at start: the new config's warnings, once (every worker reloads it; the first says them).
      if ((workerIndex() ?? 0) === 0) for (const i of next.issues) log.warn(formatIssue(i));
    } catch (e) {
      const issues = e instanceof ConfigError ? e.issues.filter((i) => i.severity === 'error').map(formatIssue) : [String(e)];
      log.error('config reload refused; still serving the previous config', { file, issues });
      // Until a reload takes: /health, fabric health, the alert webhook and /metrics say so.
      const more = issues.length > 1 ? ` (and ${issues.length - 1} more)` : '';
      running.app.config = { loadedAt: running.app.config?.loadedAt ?? running.app.startedAt, refused: { at: Date.now(), reason: `${issues[0] ?? 'invalid'}${more}` } };
    }
  };
  onHangup = reload;
  if (reloadAsked) reload();
  if (file !== undefined && file !== '') {
    // However the file is saved (renamed over, a ConfigMap's symlink swap, a symlink's target).
    watchFiles(watchedFiles(file, config), reload, watchedSince);
  }
  await new Promise<void>((resolve) => {
    let stopping = false;
    const stop = (sig: string): void => {
      // Once draining, a SIGTERM more (systemd's to the whole group, or the primary passing one
      // on to a worker that had it already) changes nothing: the grace bounds the drain. A
      // second Ctrl-C means now; what was answered is in the spool already.
      if (stopping) {
        if (sig === 'SIGINT') {
          log.warn('SIGINT again: stopping at once, without waiting for the requests still running');
          log.flush();
          process.exit(130);
        }
        if (sig !== 'stdout closed') log.info(`${sig} again: already draining (within the grace of ${graceMs / 1000}s)`);
        return;
      }
      stopping = true;
      log.info(`${sig}: draining (readiness is now 503; in-flight requests get ${graceMs / 1000}s)`);
      priority.stop();
      void running.close(graceMs).then(async () => {
        await cleanup?.();
        log.info('stopped');
        log.flush();
        // A cluster worker's channel to the primary would keep it alive: let go of it, so the
        // worker exits as soon as it has drained rather than when the primary kills it.
        if (isWorker()) process.disconnect?.();
        resolve();
      });
    };
    process.on('SIGTERM', () => stop('SIGTERM'));
    process.on('SIGINT', () => stop('SIGINT'));
    onStdoutLost = () => stop('stdout closed');
    if (stdoutLost) onStdoutLost();
  });
  return stdoutLost ? 1 : 0;
}

/**
 * A worker answers the others and asks them (siblings.ts): another worker may hold the
 * Responses items a request names, and GET /metrics merges every worker's series.
 */
function askSiblings(running: RunningGateway): void {
  const siblings = new WorkerSiblings();
  const { app } = running;
  const items = app.recentItems;
  if (items !== undefined) {
    siblings.on('items', (p) => {
      const { owner, ids } = (p ?? {}) as { owner?: unknown; ids?: unknown };
      return typeof owner === 'string' && Array.isArray(ids) ? items.share(owner, ids.filter((id): id is string => typeof id === 'string')) : null;
    });
    items.siblings = {
      ask: async (owner, ids) => (await siblings.ask('items', { owner, ids })).flatMap((a) => (Array.isArray(a) ? a.filter(isSharedItem) : [])),
    };
  }
  const index = String(workerIndex() ?? 0);
  siblings.on('metrics', () => app.metrics?.snapshot(index) ?? null);
  // Another worker was asked to probe now (POST /admin/health/probe): each holds its own health.
  siblings.on('probe', (p) => {
    if (Array.isArray(p)) void app.probeNow?.(p.filter((n): n is string => typeof n === 'string'));
    return null;
  });
  // DELETE /admin/cache reached another worker: each holds its own memory store (Redis is cleared by the one asked).
  siblings.on('cache-clear', () => app.cache?.clearMemory() ?? 0);
  app.workers = { index, ask: (topic, payload) => siblings.ask(topic, payload) };
}

function isSharedItem(v: unknown): v is SharedItem {
  const s = v as SharedItem;
  return typeof v === 'object' && v !== null && typeof s.id === 'string' && typeof s.item === 'object' && s.item !== null
    && typeof s.size === 'number' && typeof s.at === 'number';
}


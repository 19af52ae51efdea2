// systemd units: a node's engines as one compose project, and the gateway run from an install
// of AI Fabric (bin/fabric), sandboxed, reloaded by SIGHUP, drained by SIGTERM.

import type { NodeConfig } from '../config/types.ts';
import { HOST, header, type RenderContext, type Served } from './common.ts';
import { composeProject } from './compose.ts';

/** The sandbox every service of the gateway's host runs in: no new privileges, the system and homes read-only, a private /tmp. */
const SANDBOX: [string, string][] = [['NoNewPrivileges', 'yes'], ['ProtectSystem', 'strict'], ['ProtectHome', 'yes'], ['PrivateTmp', 'yes']];

function unit(ctx: RenderContext, what: string, sections: [string, [string, string][]][]): string {
  let out = header(ctx, '#', what);
  sections.forEach(([name, entries], i) => {
    out += `${i === 0 ? '' : '\n'}[${name}]\n`;
    for (const [k, v] of entries) out += `${k}=${v}\n`;
  });
  return out;
}

export function engineUnit(ctx: RenderContext, node: NodeConfig, served: Served[]): string {
  const runtime = node.runtime ?? 'docker';
  const compose = `/usr/bin/${runtime} compose --project-name ${composeProject(node)} --file ${HOST.engines}/compose.yaml`;
  const backends = served.map((s) => `${s.backend.name} (${s.serve.engine} :${s.serve.port})`).join(', ');
  return unit(ctx, `Engines on ${node.name}: install as /etc/systemd/system/ai-fabric-engines-${node.name.toLowerCase()}.service, compose.yaml in ${HOST.engines}.`, [
    ['Unit', [
      ['Description', `AI Fabric engines on ${node.name}: ${backends}`],
      ['Wants', 'network-online.target'],
      ['After', `network-online.target${runtime === 'docker' ? ' docker.service' : ''}`],
      ...(runtime === 'docker' ? [['Requires', 'docker.service'] as [string, string]] : []),
    ]],
    ['Service', [
      ['Type', 'simple'],
      ['WorkingDirectory', HOST.engines],
      ['ExecStart', `${compose} up --remove-orphans`],
      ['ExecStop', `${compose} down`],
      ['Restart', 'on-failure'],
      ['RestartSec', '10s'],
      // The first start pulls multi-GiB images and downloads the model.
      ['TimeoutStartSec', 'infinity'],
      ['TimeoutStopSec', '120s'],
    ]],
    ['Install', [['WantedBy', 'multi-user.target']]],
  ]);
}

export function gatewayUnit(ctx: RenderContext): string {
  const cfg = ctx.cfg;
  const lowPort = cfg.gateway.port > 0 && cfg.gateway.port < 1024;
  return unit(ctx, `The gateway: install as /etc/systemd/system/ai-fabric-gateway.service, AI Fabric in ${HOST.gateway}, the config as ${HOST.configDir}/fabric.yaml.`, [
    ['Unit', [
      ['Description', `AI Fabric gateway (OpenAI-compatible endpoint on ${cfg.gateway.host}:${cfg.gateway.port})`],
      ['Wants', 'network-online.target'],
      ['After', 'network-online.target'],
    ]],
    ['Service', [
      ['Type', 'simple'],
      ['DynamicUser', 'yes'],
      ['WorkingDirectory', HOST.gateway],
      // Secrets (OPENAI_API_KEY, the master key) as NAME=value lines, mode 0600; read by systemd, not the service.
      ['EnvironmentFile', `-${HOST.configDir}/gateway.env`],
      ['Environment', `PATH=${HOST.gateway}/node_modules/.bin:/usr/local/bin:/usr/bin:/bin`],
      // The store and the usage spool: the one place the sandbox lets the service write, kept across restarts.
      ['Environment', `FABRIC_DATA_DIR=${HOST.dataDir}`],
      // A named dynamic user: ai-fabric-backup.service runs as the same one, to read the store.
      ['User', 'ai-fabric'],
      ['StateDirectory', 'ai-fabric'],
      ['StateDirectoryMode', '0700'],
      ['ExecStart', `${HOST.gateway}/bin/fabric serve --config ${HOST.configDir}/fabric.yaml`],
      ['ExecReload', '/bin/kill -HUP $MAINPID'],
      ['KillSignal', 'SIGTERM'],
      // SIGTERM to the main process only: with workers, the primary drains them; the default
      // (control-group) would signal every worker too. What is left at the timeout gets SIGKILL.
      ['KillMode', 'mixed'],
      // serve drains for 30 s on SIGTERM before it exits.
      ['TimeoutStopSec', '40s'],
      ['Restart', 'on-failure'],
      ['RestartSec', '2s'],
      ['LimitNOFILE', '65536'],
      // gateway.realtime: lets the unprivileged service put its event loop at SCHED_FIFO 1.
      ...(cfg.gateway.realtime ? [['LimitRTPRIO', '1'] as [string, string]] : []),
      ...(lowPort ? [['AmbientCapabilities', 'CAP_NET_BIND_SERVICE'] as [string, string]] : []),
      ...SANDBOX,
      ['PrivateDevices', 'yes'],
      ['ProtectKernelTunables', 'yes'],
      ['ProtectKernelModules', 'yes'],
      ['ProtectControlGroups', 'yes'],
      ['RestrictAddressFamilies', 'AF_INET AF_INET6 AF_UNIX'],
      ['LockPersonality', 'yes'],
      ['ReadOnlyPaths', HOST.configDir],
    ]],
    ['Install', [['WantedBy', 'multi-user.target']]],
  ]);
}

/** Where a process on the gateway's machine asks it (the health timer, Prometheus): its own address, or loopback when it listens on every interface. */
export function localGatewayUrl(ctx: RenderContext): string {
  const g = ctx.cfg.gateway;
  const host = g.host === '0.0.0.0' || g.host === '::' || g.host === '' ? '127.0.0.1' : g.host.includes(':') ? `[${g.host}]` : g.host;
  return `${g.tls === undefined ? 'http' : 'https'}://${host}:${g.port}`;
}

/**
 * The runbook's health check every 5 minutes, for a gateway with alerts: `fabric health
 * --notify` calls the alert webhook when the level changes, the gateway down (critical)
 * included, which the gateway cannot report itself. Exit 1 and 2 are levels, not failures of
 * the unit. Undefined without gateway.alerts.
 */
export function healthUnits(ctx: RenderContext): { service: string; timer: string } | undefined {
  const alerts = ctx.cfg.gateway.alerts;
  if (alerts === undefined) return undefined;
  const hook = 'env' in alerts.webhook ? `env:${alerts.webhook.env}` : alerts.webhook.url;
  const service = unit(ctx, `The runbook's health check: install as /etc/systemd/system/ai-fabric-health.service with ai-fabric-health.timer (systemctl enable --now ai-fabric-health.timer); best on another machine than the gateway's, with --url pointed at it.`, [
    ['Unit', [
      ['Description', 'AI Fabric health check (fabric health --notify): the alert webhook on a change of level'],
      ['Wants', 'network-online.target'],
      ['After', 'network-online.target ai-fabric-gateway.service'],
    ]],
    ['Service', [
      ['Type', 'oneshot'],
      ['DynamicUser', 'yes'],
      // The webhook's URL, as the gateway reads it.
      ['EnvironmentFile', `-${HOST.configDir}/gateway.env`],
      // The level last reported, kept between runs.
      ['StateDirectory', 'ai-fabric-health'],
      // The check asks the gateway on loopback, where its certificate's name does not apply.
      ...(ctx.cfg.gateway.tls === undefined ? [] : [['Environment', 'NODE_TLS_REJECT_UNAUTHORIZED=0'] as [string, string]]),
      ['ExecStart', `${HOST.gateway}/bin/fabric health --url ${localGatewayUrl(ctx)} --notify ${hook} --notify-format ${alerts.format} --notify-level ${alerts.notify}`],
      // 1 (warning) and 2 (critical) are the fleet's levels, told by the webhook: not the unit failing.
      ['SuccessExitStatus', '1 2'],
      ...SANDBOX,
    ]],
  ]);
  const timer = unit(ctx, 'Runs ai-fabric-health.service every 5 minutes, as the runbook asks: install as /etc/systemd/system/ai-fabric-health.timer.', [
    ['Unit', [['Description', 'AI Fabric health check every 5 minutes']]],
    ['Timer', [['OnBootSec', '2min'], ['OnUnitActiveSec', '5min'], ['AccuracySec', '30s']]],
    ['Install', [['WantedBy', 'timers.target']]],
  ]);
  return { service, timer };
}

/**
 * A daily copy of the SQLite store (keys, usage) while the gateway runs: `fabric backup` into
 * the data directory's backups/, the last 14 kept. Undefined with a PostgreSQL store, which
 * pg_dump backs up.
 */
export function backupUnits(ctx: RenderContext): { service: string; timer: string } | undefined {
  if (ctx.cfg.gateway.store.kind !== 'sqlite') return undefined;
  const service = unit(ctx, `A copy of the gateway's store: install as /etc/systemd/system/ai-fabric-backup.service with ai-fabric-backup.timer (systemctl enable --now ai-fabric-backup.timer). The copies stay on this machine, in ${HOST.dataDir}/backups: copy them elsewhere too.`, [
    ['Unit', [
      ['Description', 'AI Fabric: a copy of the gateway\'s store (virtual keys, usage), taken while it runs'],
      ['After', 'ai-fabric-gateway.service'],
    ]],
    ['Service', [
      ['Type', 'oneshot'],
      // The gateway's own dynamic user and data directory.
      ['DynamicUser', 'yes'],
      ['User', 'ai-fabric'],
      ['StateDirectory', 'ai-fabric'],
      ['StateDirectoryMode', '0700'],
      ['EnvironmentFile', `-${HOST.configDir}/gateway.env`],
      ['ExecStart', `${HOST.gateway}/bin/fabric backup --config ${HOST.configDir}/fabric.yaml --data-dir ${HOST.dataDir} --out ${HOST.dataDir}/backups/ --keep 14`],
      ['Nice', '10'],
      ['IOSchedulingClass', 'idle'],
      ...SANDBOX,
      ['ReadOnlyPaths', HOST.configDir],
    ]],
  ]);
  const timer = unit(ctx, 'Runs ai-fabric-backup.service once a day: install as /etc/systemd/system/ai-fabric-backup.timer.', [
    ['Unit', [['Description', 'AI Fabric: a copy of the gateway\'s store, daily']]],
    // Persistent: a day missed while the machine was off is made up at boot.
    ['Timer', [['OnCalendar', 'daily'], ['Persistent', 'true'], ['RandomizedDelaySec', '30min']]],
    ['Install', [['WantedBy', 'timers.target']]],
  ]);
  return { service, timer };
}

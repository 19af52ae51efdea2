// fabric render: every deploy file from one fabric config. Pure and deterministic: the same
// config text gives byte-identical files, listed in MANIFEST.sha256 (sha256sum -c checks it).
//
//   nodes/NODE/compose.yaml, nodes/NODE/ai-fabric-engines-NODE.service (Linux nodes),
//   nodes/NODE/launch/ENGINE.sh (.ps1 on Windows nodes), nodes/NODE/env.example
//   gateway/{compose.yaml, Containerfile, ai-fabric-gateway.service, fabric.yaml, env.example},
//     ai-fabric-backup.{service,timer} (SQLite), ai-fabric-health.{service,timer} (with alerts)
//   litellm/config.yaml
//   monitoring/{prometheus.yml, ai-fabric-alerts.yml, grafana-dashboard.json}

import { createHash } from 'node:crypto';
import { packageVersion } from '../core/version.ts';
import type { FabricConfig, SecretRef } from '../config/types.ts';
import { header, safeName, servedOn, type RenderContext, type RenderedFile } from './common.ts';
import { bindsLoopback, engineUnitName, gatewayCompose, nodeCompose } from './compose.ts';
import { gatewayContainerfile } from './containerfile.ts';
import { engineKeyEnv, launchFiles } from './launch.ts';
import { litellmConfig } from './litellm.ts';
import { alertRules, grafanaDashboard, prometheusConfig } from './monitoring.ts';
import { backupUnits, engineUnit, gatewayUnit, healthUnits } from './systemd.ts';

export const MANIFEST = 'MANIFEST.sha256';

function envExample(ctx: RenderContext, what: string, names: Map<string, string>): string {
  let out = header(ctx, '#', `${what} Copy to .env, fill in, chmod 600; never commit it.`);
  for (const [name, why] of names) out += `# ${why}\n${name}=\n`;
  return out;
}

export interface RenderOptions {
  /** The image tag of the gateway; default: this AI Fabric's version. */
  version?: string;
}

export function renderFabric(cfg: FabricConfig, source: string, sourceText: string, opts: RenderOptions = {}): RenderedFile[] {
  const ctx: RenderContext = { cfg, source, sourceText };
  const files: RenderedFile[] = [];
  const add = (path: string, content: string, mode = 0o644): void => { files.push({ path, content, mode }); };

  for (const node of cfg.nodes.values()) {
    const served = servedOn(cfg, node);
    if (served.length === 0) continue;
    const dir = `nodes/${safeName(node.name)}`;
    add(`${dir}/compose.yaml`, nodeCompose(ctx, node, served));
    if ((node.os ?? 'linux') === 'linux') add(`${dir}/${engineUnitName(node)}`, engineUnit(ctx, node, served));
    files.push(...launchFiles(ctx, node, served, bindsLoopback));
    const secrets = new Map<string, string>();
    for (const s of served) {
      if (s.serve.hfToken !== undefined) secrets.set(s.serve.hfToken.env, `Hugging Face token for ${s.serve.model} (${s.backend.name})`);
      if (engineKeyEnv(s) !== undefined) secrets.set(s.backend.apiKey!.env, `API key of ${s.backend.name}: its engine requires it, the gateway sends it`);
      for (const [k, v] of s.serve.env) if (typeof v !== 'string') secrets.set((v as SecretRef).env, `${k} for ${s.backend.name}`);
    }
    if (secrets.size > 0) add(`${dir}/env.example`, envExample(ctx, `Secrets for the engines on ${node.name}.`, secrets));
  }

  const version = opts.version ?? packageVersion() ?? 'latest';
  add('gateway/compose.yaml', gatewayCompose(ctx, version));
  add('gateway/Containerfile', gatewayContainerfile(ctx));
  add('gateway/ai-fabric-gateway.service', gatewayUnit(ctx));
  const backup = backupUnits(ctx);
  if (backup !== undefined) {
    add('gateway/ai-fabric-backup.service', backup.service);
    add('gateway/ai-fabric-backup.timer', backup.timer);
  }
  const health = healthUnits(ctx);
  if (health !== undefined) {
    add('gateway/ai-fabric-health.service', health.service);
    add('gateway/ai-fabric-health.timer', health.timer);
  }
  add('gateway/fabric.yaml', sourceText);
  const gwSecrets = new Map<string, string>();
  if (cfg.gateway.masterKey !== undefined) gwSecrets.set(cfg.gateway.masterKey.env, 'the gateway\'s master key (clients send it as a bearer token)');
  for (const b of cfg.backends.values()) if (b.apiKey !== undefined && !gwSecrets.has(b.apiKey.env)) gwSecrets.set(b.apiKey.env, `API key of backend ${b.name}`);
  const st = cfg.gateway.store;
  if (st.kind === 'postgres') {
    gwSecrets.set(st.url.env, 'PostgreSQL URL of the store (the systemd unit; compose.yaml sets it)');
    gwSecrets.set('POSTGRES_PASSWORD', 'PostgreSQL password (compose.yaml only)');
  }
  if (cfg.gateway.redis !== undefined) gwSecrets.set(cfg.gateway.redis.url.env, 'Redis URL (the systemd unit; compose.yaml sets it)');
  add('gateway/env.example', envExample(ctx, 'Secrets for the gateway (compose.yaml reads .env; the systemd unit reads /etc/ai-fabric/gateway.env).', gwSecrets));
  add('litellm/config.yaml', litellmConfig(ctx));
  add('monitoring/prometheus.yml', prometheusConfig(ctx));
  add('monitoring/ai-fabric-alerts.yml', alertRules(ctx));
  add('monitoring/grafana-dashboard.json', grafanaDashboard(ctx));

  files.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
  const manifest = files.map((f) => `${sha256(f.content)}  ${f.path}\n`).join('');
  files.push({ path: MANIFEST, content: manifest, mode: 0o644 });
  return files;
}

export function sha256(text: string): string {
  return createHash('sha256').update(text).digest('hex');
}

// Compose files: one per node for its engines (GPU reserved, health-checked), and one for the
// gateway with PostgreSQL and Redis beside it. Written in the compose-spec's long-standing
// subset (no top-level name:, GPUs through deploy.resources.reservations.devices for Docker
// and CDI devices for Podman) so both `docker compose` and `podman compose` take them.

import { posix } from 'node:path';
import type { FabricConfig, NodeConfig, SecretRef } from '../config/types.ts';
import { isLoopbackHost as isLoopback } from '../config/types.ts';
import { HOST, IMAGES, gatewayHealthScript, safeName, urlHost, yamlDoc, type RenderContext, type Served } from './common.ts';
import { authNotes, containerSpec, engineGroups } from './launch.ts';

type Obj = Record<string, unknown>;

export const GATEWAY_SECRETS_NOTE = 'Secrets are ${NAME} references filled from .env beside this file (see env.example); no value is written here.';

function secretValue(ref: SecretRef): string {
  return `\${${ref.env}:?${ref.env} is not set: put it in .env beside compose.yaml}`;
}

/** Loopback-only when the gateway reaches the engine on loopback or serve.host says so. */
export function bindsLoopback(group: Served[]): boolean {
  const s = group[0]!;
  return isLoopback(s.serve.host) || isLoopback(urlHost(s.backend.url));
}

function healthcheck(engine: Served['serve']['engine'], port: number): Obj {
  const test = engine === 'vllm'
    ? ['CMD', 'python3', '-c', `import urllib.request; urllib.request.urlopen('http://127.0.0.1:${port}/health', timeout=5)`]
    : engine === 'ollama' ? ['CMD', 'ollama', 'list'] : ['CMD', 'curl', '-fsS', `http://127.0.0.1:${port}/health`];
  // Model download and load come before the first healthy answer.
  return { test, interval: '30s', timeout: '10s', retries: 5, start_period: engine === 'ollama' ? '30s' : '600s' };
}

export function nodeCompose(ctx: RenderContext, node: NodeConfig, served: Served[]): string {
  const runtime = node.runtime ?? 'docker';
  const services: Obj = {};
  const volumes: Obj = {};
  let secrets = false;
  const authWarnings: string[] = [];
  for (const group of engineGroups(served)) {
    const s = group[0]!;
    const c = containerSpec(group, bindsLoopback(group));
    secrets ||= c.secretEnv.length > 0;
    authWarnings.push(...authNotes(group));
    const environment: Obj = {};
    for (const [k, v] of c.env) environment[k] = v;
    for (const [k, ref] of c.secretEnv) environment[k] = secretValue(ref);
    const gpuIds = s.serve.gpus.map(String);
    const svc: Obj = {
      image: c.image,
      container_name: c.name,
      ...(c.entrypoint !== undefined ? { entrypoint: c.entrypoint } : {}),
      ...(c.args.length > 0 ? { command: c.args } : {}),
      ports: c.ports,
      volumes: c.volumes,
      ...(Object.keys(environment).length > 0 ? { environment } : {}),
      ...(s.serve.engine === 'vllm' ? { ipc: 'host' } : {}),
      restart: 'unless-stopped',
      ...(runtime === 'podman'
        ? { devices: gpuIds.map((g) => `nvidia.com/gpu=${g}`) }
        : { deploy: { resources: { reservations: { devices: [{ driver: 'nvidia', device_ids: gpuIds, capabilities: ['gpu'] }] } } } }),
      healthcheck: healthcheck(s.serve.engine, s.serve.port),
    };
    services[c.name] = svc;
    for (const v of c.volumes) {
      const name = v.split(':')[0]!;
      if (!name.startsWith('/') && !name.startsWith('.') && !name.startsWith('~') && !/^[A-Za-z]:/.test(name)) volumes[name] = {};
    }
    if (c.models.length > 0) {
      // Ollama pulls on demand; pulling at deploy time makes the first request fast and a missing tag an early error.
      services[`${c.name}-pull`] = {
        image: c.image,
        entrypoint: ['/bin/sh', '-c'],
        command: [c.models.map((m) => `ollama pull '${m.replace(/'/g, `'\\''`)}'`).join(' && ')],
        environment: { OLLAMA_HOST: `${c.name}:${s.serve.port}` },
        depends_on: { [c.name]: { condition: 'service_healthy' } },
        restart: 'no',
      };
    }
  }
  const doc: Obj = { services, ...(Object.keys(volumes).length > 0 ? { volumes } : {}) };
  const notes = [
    `Engines on ${node.name}; start with: ${runtime} compose --project-name ${composeProject(node)} --file compose.yaml up -d`,
    `(or ${(node.os ?? 'linux') === 'windows' ? 'the launch/*.ps1 scripts' : `through the ${engineUnitName(node)} systemd unit`}).${secrets ? ' Secrets come from .env beside this file (see env.example).' : ''}`,
    ...authWarnings,
  ];
  return yamlDoc(ctx, `Engines on node ${node.name}.`, doc, notes);
}

export function composeProject(node: NodeConfig): string {
  return `ai-fabric-${safeName(node.name).toLowerCase()}`;
}

export function engineUnitName(node: NodeConfig): string {
  return `ai-fabric-engines-${safeName(node.name).toLowerCase()}.service`;
}

/** The gateway reaches some engine on loopback: it must share the host's network. */
export function gatewayOnHostNetwork(cfg: FabricConfig): boolean {
  return [...cfg.backends.values()].some((b) => isLoopback(urlHost(b.url)));
}

export function gatewayImage(version: string): string {
  return `localhost/ai-fabric-gateway:${version}`;
}

export function gatewayCompose(ctx: RenderContext, version: string): string {
  const cfg = ctx.cfg;
  const hostNet = gatewayOnHostNetwork(cfg);
  const port = cfg.gateway.port;
  // PostgreSQL and Redis where the config uses them, their URLs in the variables it names.
  const store = cfg.gateway.store.kind === 'postgres' ? cfg.gateway.store.url.env : undefined;
  const redisEnv = cfg.gateway.redis?.url.env;
  const db = hostNet ? '127.0.0.1' : 'postgres';
  const cache = hostNet ? '127.0.0.1' : 'redis';
  const envFileMount = cfg.gateway.envFile === undefined ? [] : [`./.env:${posix.resolve(HOST.configDir, cfg.gateway.envFile)}:ro`];
  // gateway.tls: each file where the config inside the container looks for it (beside it, when relative).
  const tls = cfg.gateway.tls;
  const tlsMounts = tls === undefined ? [] : [tls.cert, tls.key].map((p) => (posix.isAbsolute(p) ? `${p}:${p}:ro` : `./${posix.normalize(p)}:${posix.resolve(HOST.configDir, p)}:ro`));
  const depends: Obj = {};
  if (store !== undefined) depends.postgres = { condition: 'service_healthy' };
  if (redisEnv !== undefined) depends.redis = { condition: 'service_healthy' };
  const gateway: Obj = {
    image: gatewayImage(version),
    container_name: 'ai-fabric-gateway',
    command: ['serve', '--config', `${HOST.configDir}/fabric.yaml`, '--host', hostNet ? cfg.gateway.host : '0.0.0.0', '--port', String(port)],
    ...(hostNet ? { network_mode: 'host' } : { ports: [`${isLoopback(cfg.gateway.host) ? '127.0.0.1:' : ''}${port}:${port}`] }),
    // The data directory (the SQLite store, the usage spool) outlives the container.
    volumes: [`./fabric.yaml:${HOST.configDir}/fabric.yaml:ro`, ...envFileMount, ...tlsMounts, `data:${HOST.dataDir}`],
    env_file: ['.env'],
    environment: {
      FABRIC_DATA_DIR: HOST.dataDir,
      ...(store === undefined ? {} : { [store]: `postgres://ai_fabric:\${POSTGRES_PASSWORD:?POSTGRES_PASSWORD is not set: put it in .env beside compose.yaml}@${db}:5432/ai_fabric` }),
      ...(redisEnv === undefined ? {} : { [redisEnv]: `redis://${cache}:6379/0` }),
    },
    ...(Object.keys(depends).length === 0 ? {} : { depends_on: depends }),
    // gateway.realtime: lets the container's unprivileged user put its event loop at SCHED_FIFO 1.
    ...(cfg.gateway.realtime ? { ulimits: { rtprio: 1 } } : {}),
    restart: 'unless-stopped',
    stop_grace_period: '35s',
    healthcheck: {
      test: ['CMD', 'node', '-e', gatewayHealthScript(cfg)],
      interval: '15s', timeout: '5s', retries: 3, start_period: '10s',
    },
  };
  const services: Obj = { gateway };
  const volumes: Obj = { data: {} };
  if (store !== undefined) {
    services.postgres = {
      image: IMAGES.postgres,
      container_name: 'ai-fabric-postgres',
      environment: { POSTGRES_DB: 'ai_fabric', POSTGRES_USER: 'ai_fabric', POSTGRES_PASSWORD: '${POSTGRES_PASSWORD:?POSTGRES_PASSWORD is not set: put it in .env beside compose.yaml}' },
      volumes: ['postgres:/var/lib/postgresql/data'],
      ...(hostNet ? { ports: ['127.0.0.1:5432:5432'] } : {}),
      restart: 'unless-stopped',
      healthcheck: { test: ['CMD-SHELL', 'pg_isready -U ai_fabric -d ai_fabric'], interval: '10s', timeout: '5s', retries: 5, start_period: '20s' },
    };
    volumes.postgres = {};
  }
  if (redisEnv !== undefined) {
    services.redis = {
      image: IMAGES.redis,
      container_name: 'ai-fabric-redis',
      command: ['redis-server', '--appendonly', 'yes'],
      volumes: ['redis:/data'],
      ...(hostNet ? { ports: ['127.0.0.1:6379:6379'] } : {}),
      restart: 'unless-stopped',
      healthcheck: { test: ['CMD', 'redis-cli', 'ping'], interval: '10s', timeout: '5s', retries: 5 },
    };
    volumes.redis = {};
  }
  const notes = [
    `Build the image from the AI Fabric source first: docker build -t ${gatewayImage(version)} -f Containerfile /path/to/ai-fabric`,
    GATEWAY_SECRETS_NOTE,
    ...(hostNet ? ['Host networking: some backend URLs are loopback (127.0.0.1), which only the host network reaches.'] : []),
  ];
  const beside = [store === undefined ? [] : ['PostgreSQL (gateway.store)'], redisEnv === undefined ? [] : ['Redis (gateway.redis)']].flat();
  return yamlDoc(ctx, `The AI Fabric gateway${beside.length === 0 ? ', its SQLite store in the data volume' : ` with ${beside.join(' and ')}`}.`, { services, volumes }, notes);
}

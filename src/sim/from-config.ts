// The simulated fleet a fabric config describes. One engine per server, that is per backend
// origin: backends that share an origin share its engine, which serves every model they name
// (an Ollama with several pulled models, OpenAI with several models) and accepts each of
// their keys. Backends on loopback keep their port; others get a free one.

import type { EngineKind, FabricConfig, RoleKind } from '../config/types.ts';
import type { SimEngineSpec, SimModelSpec, SimProtocol } from './types.ts';

/**
 * The protocol each engine kind is simulated with. SGLang gets vLLM's: the gateway probes its
 * /health, which OpenAI's API lacks, and SGLang answers one model with vLLM's error shape.
 */
export const SIM_PROTOCOL: Readonly<Record<EngineKind, SimProtocol>> = {
  vllm: 'vllm', sglang: 'vllm', ollama: 'ollama', llamacpp: 'llamacpp', openai: 'openai', 'openai-compatible': 'openai', lmstudio: 'openai',
};

const LOOPBACK = new Set(['127.0.0.1', 'localhost', '[::1]', '0.0.0.0']);

/** Where a backend's secrets are looked up: the environment, then the config's .env file. */
export interface SecretSource {
  get(name: string): string | undefined;
}

export interface SimFleetPlan {
  specs: SimEngineSpec[];
  /** backend name → the name of the engine that simulates it */
  engineOf: Map<string, string>;
  /** engine name → the environment variables whose values it requires as a bearer key */
  keyEnvs: Map<string, string[]>;
}

/** What a backend is used for: its role's kind (or a pattern route's), chat when nothing says. */
function usage(config: FabricConfig, backend: string): { kind: RoleKind; dimensions: number | undefined } {
  for (const r of config.roles.values()) if (r.backends.includes(backend)) return { kind: r.kind, dimensions: r.dimensions };
  for (const p of config.patterns) if (p.backends.includes(backend)) return { kind: p.kind, dimensions: undefined };
  return { kind: 'chat', dimensions: undefined };
}

/** localhost:8000 and 127.0.0.1:8000 are one port on this machine, hence one engine. */
function serverKey(u: URL): string {
  if (!LOOPBACK.has(u.hostname)) return u.origin;
  return `loopback:${u.port || (u.protocol === 'https:' ? '443' : '80')}`;
}

/**
 * The engines to start for a config. A backend's `api_key` becomes its engine's key when the
 * secret it names is set, so a gateway that sends the wrong backend's key (or none) gets the
 * engine's own 401; an unset one leaves the engine open, as the copy for `fabric serve` drops it.
 */
export function simFleetPlan(config: FabricConfig, secrets: SecretSource): SimFleetPlan {
  const byServer = new Map<string, SimEngineSpec>();
  const engineOf = new Map<string, string>();
  const keyEnvs = new Map<string, string[]>();
  for (const b of config.backends.values()) {
    const u = new URL(b.url);
    const { kind, dimensions } = usage(config, b.name);
    const secret = b.apiKey === undefined ? undefined : secrets.get(b.apiKey.env);
    const server = serverKey(u);
    let spec = byServer.get(server);
    if (spec === undefined) {
      spec = {
        name: b.name,
        protocol: SIM_PROTOCOL[b.engine],
        port: LOOPBACK.has(u.hostname) ? Number(u.port || (u.protocol === 'https:' ? 443 : 80)) : 0,
        model: b.model,
        kind,
        ...(b.contextWindow === undefined ? {} : { contextWindow: b.contextWindow }),
        ...(dimensions === undefined ? {} : { dimensions }),
        // As the rendered launch would be: a serve block without a tool parser refuses "auto"
        // tool choice; a server the config does not launch is taken to be set up for tools.
        ...(b.engine === 'vllm' ? { autoToolChoice: b.serve === undefined || b.serve.toolParser !== undefined || (b.serve.extraArgs.includes('--enable-auto-tool-choice') && b.serve.extraArgs.some((a) => a === '--tool-call-parser' || a.startsWith('--tool-call-parser='))) } : {}),
        // llama-server's Jinja templates are on unless the launch turns them off (the last of the two flags wins).
        ...(b.engine === 'llamacpp' ? { jinja: b.serve?.extraArgs.findLast((a) => a === '--jinja' || a === '--no-jinja') !== '--no-jinja' } : {}),
        // fabric render starts llama-server with --metrics; one the config does not launch is taken to have them too.
      };
      byServer.set(server, spec);
    } else if (spec.model !== b.model && !(spec.extraModels ?? []).some((m) => typeof m !== 'string' && m.model === b.model)) {
      const extra: SimModelSpec = { model: b.model, kind };
      if (b.contextWindow !== undefined) extra.contextWindow = b.contextWindow;
      if (dimensions !== undefined) extra.dimensions = dimensions;
      (spec.extraModels ??= []).push(extra);
    }
    engineOf.set(b.name, spec.name);
    if (secret !== undefined && b.apiKey !== undefined) {
      const keys = typeof spec.apiKey === 'string' ? [spec.apiKey] : [...(spec.apiKey ?? [])];
      if (!keys.includes(secret)) spec.apiKey = [...keys, secret];
      const envs = keyEnvs.get(spec.name) ?? [];
      if (!envs.includes(b.apiKey.env)) keyEnvs.set(spec.name, [...envs, b.apiKey.env]);
    }
  }
  return { specs: [...byServer.values()], engineOf, keyEnvs };
}

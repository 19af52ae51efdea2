// fabric sim: a simulated fleet from a fabric config — one engine per backend origin,
// speaking that engine's protocol — with a control API to switch faults while it runs.
// --out writes a copy of the config pointing at the simulated engines, for `fabric serve`.

import { parseCommand, usageError } from './args.ts';
import { readFileSync, writeFileSync } from 'node:fs';
import { parseDocument } from 'yaml';
import { loadFabricConfig } from '../config/load.ts';
import { importLiteLLMText } from '../config/litellm/load.ts';
import { reportConfigError } from './fabric-file.ts';
import type { EngineKind, FabricConfig } from '../config/types.ts';
import { startFleet, type SimEngineSpec, type SimProtocol } from '../sim/fleet.ts';

const HELP = `Usage: fabric sim --config FILE [--control-port N] [--out FILE]

Starts a simulated engine for each backend of the config (vLLM, Ollama, llama.cpp or
OpenAI protocol, by the backend's engine). Backends on 127.0.0.1/localhost keep their
port; others get a free loopback port.
  --config FILE        the fabric config to simulate
  --control-port N     fault-control API port (default 9999)
  --out FILE           write the config rewritten to point at the simulated engines

Switch faults while it runs (down, slow, error, rate-limit, hang, drop, stall, garbage, context-length):
  curl -X PUT localhost:9999/engines/NAME/fault -d '{"kind":"down"}'
  curl -X DELETE localhost:9999/engines/NAME/fault
`;

const PROTOCOL: Record<EngineKind, SimProtocol> = {
  vllm: 'vllm', ollama: 'ollama', llamacpp: 'llamacpp', openai: 'openai', 'openai-compatible': 'openai', lmstudio: 'openai', sglang: 'openai',
};

const LOCAL = new Set(['127.0.0.1', 'localhost', '[::1]', '0.0.0.0']);

/** One simulated engine per backend origin (several Ollama models share one server). */
export function simSpecs(config: FabricConfig): { specs: SimEngineSpec[]; engineOf: Map<string, string> } {
  const byOrigin = new Map<string, SimEngineSpec>();
  const engineOf = new Map<string, string>();
  for (const b of config.backends.values()) {
    const u = new URL(b.url);
    const kind = [...config.roles.values()].find((r) => r.backends.includes(b.name))?.kind ?? 'chat';
    const dims = [...config.roles.values()].find((r) => r.backends.includes(b.name))?.dimensions;
    const existing = byOrigin.get(u.origin);
    if (existing !== undefined) {
      if (existing.protocol === 'ollama' && existing.model !== b.model) (existing.extraModels ??= []).push(b.model);
      engineOf.set(b.name, existing.name);
      continue;
    }
    const port = LOCAL.has(u.hostname) ? Number(u.port || (u.protocol === 'https:' ? 443 : 80)) : 0;
    const spec: SimEngineSpec = {
      name: b.name, protocol: PROTOCOL[b.engine], port, model: b.model, kind, contextWindow: b.contextWindow,
      ...(dims === undefined ? {} : { dimensions: dims }),
    };
    byOrigin.set(u.origin, spec);
    engineOf.set(b.name, b.name);
  }
  return { specs: [...byOrigin.values()], engineOf };
}

export async function runSim(argv: string[]): Promise<number> {
  const parsed = parseCommand('sim', HELP, { args: argv, options: {
    config: { type: 'string', short: 'c' }, 'control-port': { type: 'string' }, out: { type: 'string' }, help: { type: 'boolean', short: 'h' },
  } });
  if (typeof parsed === 'number') return parsed;
  const { values } = parsed;
  if (values.config === undefined) return usageError('sim', '--config FILE is required', HELP);
  let config: FabricConfig;
  let litellm = false;
  try {
    const loaded = loadFabricConfig(values.config, {});
    config = loaded.config;
    litellm = loaded.format === 'litellm';
  } catch (e) {
    return reportConfigError('sim', values.config, e);
  }
  const { specs, engineOf } = simSpecs(config);
  const controlPort = values['control-port'] === undefined ? 9999 : Number(values['control-port']);
  const fleet = await startFleet(specs, { controlPort, log: (l) => process.stdout.write(l + '\n') });
  process.stdout.write(`simulated fleet from ${values.config} (SIMULATED engines, generated answers)\n`);
  for (const e of fleet.engines.values()) process.stdout.write(`  ${e.name.padEnd(24)} ${e.protocol.padEnd(9)} ${e.url.padEnd(24)} ${e.model}\n`);
  process.stdout.write(`fault control: ${fleet.controlUrl ?? '(none)'}  (fabric sim --help for usage)\n`);
  if (values.out !== undefined) {
    // A LiteLLM config is rewritten as its fabric translation: the same names, native keys.
    const text = readFileSync(values.config, 'utf8');
    const doc = parseDocument(litellm ? importLiteLLMText(text, values.config, {}).yaml : text);
    for (const b of config.backends.values()) {
      const eng = fleet.get(engineOf.get(b.name)!);
      const path = new URL(b.url).pathname.replace(/\/+$/, '');
      doc.setIn(['backends', b.name, 'url'], eng.url + path);
      doc.setIn(['backends', b.name, 'simulated'], true);
      if (b.engine === 'openai') {
        doc.setIn(['backends', b.name, 'engine'], 'openai-compatible');
        doc.deleteIn(['backends', b.name, 'api_key']);
      }
    }
    writeFileSync(values.out, `# simulated copy of ${values.config}, written by fabric sim\n` + doc.toString());
    process.stdout.write(`wrote ${values.out}: serve it with  fabric serve --config ${values.out}\n`);
  }
  await new Promise<void>((resolve) => {
    const stop = (): void => { void fleet.close().then(resolve); };
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
  });
  return 0;
}

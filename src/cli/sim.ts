// fabric sim: a simulated fleet from a fabric config — one engine per server (backend origin),
// speaking that engine's protocol — with a control API to switch faults while it runs.
// --out writes a copy of the config pointing at the simulated engines, for `fabric serve`.

import { parseCommand, usageError } from './args.ts';
import { existsSync, readFileSync, realpathSync, statSync, writeFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { loadFabricConfig } from '../config/load.ts';
import { importLiteLLMText } from '../config/litellm/load.ts';
import { readEnvFile, Secrets } from '../config/env-file.ts';
import { reportConfigError } from './fabric-file.ts';
import { outPathUsable, writeFailure } from './out-path.ts';
import type { FabricConfig } from '../config/types.ts';
import { SimListenError, startFleet, type SimFleet } from '../sim/fleet.ts';
import { simFleetPlan } from '../sim/from-config.ts';
import { SIM_COPY_MARK, simConfigCopyText } from '../sim/config-copy.ts';

const HELP = `Usage: fabric sim --config FILE [--control-port N] [--out FILE [--force]] [--gateway-host H] [--gateway-port N]

Starts a simulated engine for each server of the config: backends at one origin share one
(vLLM, Ollama, llama.cpp or OpenAI protocol, by the backend's engine) that serves each of their
models. Backends on 127.0.0.1/localhost keep their port; others get a free loopback port. A
backend whose api_key secret is set (environment or the config's .env) has its engine require
that key, answering 401 in the engine's own shape without it.
  --config FILE        the fabric config to simulate
  --control-port N     fault-control API port (default 9999)
  --out FILE           write the config rewritten to point at the simulated engines, ready
                       for fabric serve (what changes is listed at the top of the file); a
                       copy fabric sim wrote before is replaced, any other file only with --force
  --gateway-host H     where that config's gateway listens (default 127.0.0.1)
  --gateway-port N     and on which port (default 4000)

Switch faults while it runs:
  curl -X PUT localhost:9999/engines/NAME/fault -d '{"kind":"down"}'
  curl -X DELETE localhost:9999/engines/NAME/fault
  curl localhost:9999/engines                     the engines, their models and faults
Faults (each may add "remaining": N, to fail the next N inference requests only, streamed or
not: a fault meant for streams is used up by plain requests too):
  {"kind":"down"}                                 the engine stops listening
  {"kind":"slow","factor":F}                      F times slower (default 10)
  {"kind":"error","status":S}                     HTTP S (400-599, default 500) in the engine's error shape
  {"kind":"rate-limit","retryAfterS":N}           429 with Retry-After: N (default 1)
  {"kind":"hang"}                                 accepts and never answers
  {"kind":"drop","afterChunks":N}                 a stream cut after N chunks (default 2); not streamed:
                                                  the connection closed without an answer
  {"kind":"stall","afterChunks":N}                a stream that stops sending after N chunks (default 2);
                                                  not streamed: no answer at all
  {"kind":"stream-error","afterChunks":N}         a generation that fails after N chunks, reported in the stream
                                                  as the engine reports it (non-streamed: the engine's 500)
  {"kind":"garbage"}                              200 with a body that is no answer
  {"kind":"context-length"}                       the engine's context-length error
`;

/**
 * Why --out must not be written: it is the config being simulated, or a file that is not an
 * earlier copy of fabric sim's (a config someone wrote, perhaps one a gateway serves) and
 * --force was not given. Undefined: write it.
 */
function keepsOut(config: string, out: string, force: boolean): string | undefined {
  if (!existsSync(out)) return undefined;
  try {
    if (realpathSync(out) === realpathSync(config)) return `--out ${out} is the config being simulated: write the copy elsewhere`;
    if (force || !statSync(out).isFile()) return undefined;
    const head = readFileSync(out, 'utf8').slice(0, SIM_COPY_MARK.length);
    return head === SIM_COPY_MARK ? undefined : `--out ${out} exists and is not a copy fabric sim wrote; add --force to replace it`;
  } catch {
    return undefined; // unreadable: the write says why
  }
}

function portOption(v: string | undefined, fallback: number): number | undefined {
  if (v === undefined) return fallback;
  const n = Number(v);
  return Number.isInteger(n) && n >= 0 && n <= 65535 ? n : undefined;
}

/** The .env file the original's secrets come from, absolute, when there is one. */
function envFileOf(config: FabricConfig, file: string): string | undefined {
  const base = dirname(resolve(file));
  const path = config.gateway.envFile !== undefined ? resolve(base, config.gateway.envFile) : resolve(base, '.env');
  return existsSync(path) ? path : undefined;
}

/** Why a server could not listen, in one line, with what to do about the usual cause. */
function listenFailure(e: SimListenError): string {
  let hint = '';
  if (e.code === 'EADDRINUSE') {
    hint = e.engine === undefined
      ? ' (another fabric sim running? --control-port N picks another port)'
      : ' (a backend on loopback keeps its port: is the real engine, or another fabric sim, running there?)';
  }
  return `fabric sim: cannot listen on ${e.host}:${e.port} for ${e.what}: ${e.code ?? e.message}${hint}\n`;
}

export async function runSim(argv: string[]): Promise<number> {
  const parsed = parseCommand('sim', HELP, { args: argv, options: {
    config: { type: 'string', short: 'c' }, 'control-port': { type: 'string' }, out: { type: 'string' }, force: { type: 'boolean' },
    'gateway-host': { type: 'string' }, 'gateway-port': { type: 'string' }, help: { type: 'boolean', short: 'h' },
  } });
  if (typeof parsed === 'number') return parsed;
  const { values } = parsed;
  if (values.config === undefined) return usageError('sim', '--config FILE is required', HELP);
  const controlPort = portOption(values['control-port'], 9999);
  if (controlPort === undefined) return usageError('sim', '--control-port must be a port number');
  const gatewayPort = portOption(values['gateway-port'], 4000);
  if (gatewayPort === undefined) return usageError('sim', '--gateway-port must be a port number');
  const gatewayHost = values['gateway-host'] ?? '127.0.0.1';
  // Before any engine starts: a bad --out is told at once, not after the fleet is up.
  if (values.out !== undefined && !outPathUsable('sim', values.out, 'file')) return 1;
  const kept = values.out === undefined ? undefined : keepsOut(values.config, values.out, values.force === true);
  if (kept !== undefined) {
    process.stderr.write(`fabric sim: ${kept}\n`);
    return 1;
  }

  let config: FabricConfig;
  let litellm = false;
  try {
    const loaded = loadFabricConfig(values.config);
    config = loaded.config;
    litellm = loaded.format === 'litellm';
  } catch (e) {
    return reportConfigError('sim', values.config, e);
  }
  // Keys from where `fabric serve` of the copy finds them: the environment and the .env file
  // (a LiteLLM file's literal keys are not carried into the copy, so they are not used here).
  const envFile = envFileOf(config, values.config);
  const secrets = new Secrets(process.env, envFile === undefined ? new Map() : readEnvFile(envFile).values);
  const plan = simFleetPlan(config, secrets);

  let fleet: SimFleet;
  try {
    fleet = await startFleet(plan.specs, { controlPort, log: (l) => process.stdout.write(l + '\n') });
  } catch (e) {
    if (!(e instanceof SimListenError)) throw e;
    process.stderr.write(listenFailure(e));
    return 1;
  }
  process.stdout.write(`simulated fleet from ${values.config} (SIMULATED engines, generated answers)\n`);
  for (const e of fleet.engines.values()) {
    const keys = plan.keyEnvs.get(e.name);
    const keyNote = keys === undefined ? '' : `  (requires the key in ${keys.join(', ')})`;
    process.stdout.write(`  ${e.name.padEnd(24)} ${e.protocol.padEnd(9)} ${e.url.padEnd(24)} ${e.models.join(', ')}${keyNote}\n`);
  }
  process.stdout.write(`fault control: ${fleet.controlUrl ?? '(none)'}  (fabric sim --help for usage)\n`);
  if (values.out !== undefined) {
    for (const e of fleet.engines.values()) {
      if (e.port === gatewayPort) process.stderr.write(`fabric sim: warning: engine ${e.name} listens on port ${gatewayPort}, the port ${values.out} serves on; pass --gateway-port N\n`);
    }
    // A LiteLLM config is rewritten as its fabric translation: the same names, native keys.
    const text = readFileSync(values.config, 'utf8');
    const copy = simConfigCopyText({
      yaml: litellm ? importLiteLLMText(text, values.config, process.env).yaml : text,
      config,
      source: values.config,
      out: values.out,
      engineUrl: (backend) => fleet.get(plan.engineOf.get(backend)!).url,
      secrets,
      envFile,
      host: gatewayHost,
      port: gatewayPort,
    });
    try {
      writeFileSync(values.out, copy);
    } catch (e) {
      await fleet.close();
      return writeFailure('sim', values.out, e);
    }
    process.stdout.write(`wrote ${values.out}: serve it with  fabric serve --config ${values.out}  (on ${gatewayHost}:${gatewayPort})\n`);
  }
  await new Promise<void>((done) => {
    const stop = (): void => { void fleet.close().then(done); };
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
  });
  return 0;
}

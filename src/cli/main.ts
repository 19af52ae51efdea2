#!/usr/bin/env node
// fabric: the operator's one command. Each subcommand lives in its own file.

import { runServe } from './serve.ts';
import { runConfig } from './config.ts';
import { runSim } from './sim.ts';
import { runHealth } from './health.ts';
import { runSmoke } from './smoke.ts';
import { runWake } from './wake.ts';
import { runPlan } from './plan.ts';
import { runRender } from './render.ts';
import { runKeys } from './keys.ts';
import { runUsage } from './usage.ts';

const HELP = `fabric — AI Fabric: one OpenAI-compatible endpoint for your GPUs

Usage: fabric <command> [options]

Commands:
  serve          start the gateway (config file, discovered engines, or the simulated demo fleet)
  config check   validate a fabric config (or a LiteLLM one): every error with file, line and key
  config import  turn a LiteLLM proxy config into a native fabric config that routes the same way
  sim            run a simulated fleet of vLLM / Ollama / llama.cpp engines from a config
  health         the gateway and every backend in one table; exit code by alert level
  smoke          every role and alias end to end through the gateway (--drill: failover)
  wake           send a node's Wake-on-LAN magic packet
  plan           GPU capacity: each engine's share, weights, KV cache and concurrency; what will not fit
  render         deploy files: compose files, systemd units, launch commands, a LiteLLM config
  keys           virtual keys for applications and people: create, list, show, revoke, rotate
  usage          requests, tokens, cost and errors by key, role, backend, model or day

Run "fabric <command> --help" for a command's options.
`;

export async function main(argv: string[]): Promise<number> {
  const [cmd, ...rest] = argv;
  switch (cmd) {
    case 'serve': return runServe(rest);
    case 'config': return runConfig(rest);
    case 'sim': return runSim(rest);
    case 'health': return runHealth(rest);
    case 'smoke': return runSmoke(rest);
    case 'wake': return runWake(rest);
    case 'plan': return runPlan(rest);
    case 'render': return runRender(rest);
    case 'keys': return runKeys(rest);
    case 'usage': return runUsage(rest);
    case undefined:
    case '-h':
    case '--help':
    case 'help':
      process.stdout.write(HELP);
      return cmd === undefined ? 2 : 0;
    default:
      process.stderr.write(`fabric: unknown command "${cmd}"\n\n${HELP}`);
      return 2;
  }
}

const code = await main(process.argv.slice(2));
if (code !== -1) process.exitCode = code;

#!/usr/bin/env node
// fabric: the operator's one command. Each subcommand lives in its own file.

import { runServe } from './serve.ts';
import { runConfig } from './config.ts';
import { runSim } from './sim.ts';

const HELP = `fabric — AI Fabric: one OpenAI-compatible endpoint for your GPUs

Usage: fabric <command> [options]

Commands:
  serve          start the gateway (config file, discovered engines, or the simulated demo fleet)
  config check   validate a fabric config: every error with file, line and key
  sim            run a simulated fleet of vLLM / Ollama / llama.cpp engines from a config

Run "fabric <command> --help" for a command's options.
`;

export async function main(argv: string[]): Promise<number> {
  const [cmd, ...rest] = argv;
  switch (cmd) {
    case 'serve': return runServe(rest);
    case 'config': return runConfig(rest);
    case 'sim': return runSim(rest);
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

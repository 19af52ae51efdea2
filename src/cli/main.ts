#!/usr/bin/env node
// fabric: the operator's one command. Each subcommand lives in its own file.

import cluster from 'node:cluster';

// Commands are loaded when run: `fabric serve` then carries no planner, renderer or
// simulator in memory (about 11 MiB resident of code it would never use).

const HELP = `fabric — AI Fabric: one OpenAI-compatible endpoint for your GPUs

Usage: fabric <command> [options]
       fabric --version

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
  backup         a consistent copy of the gateway's SQLite store (keys, usage), taken while it runs
  cache          the response cache: what it holds, and clearing it

Run "fabric <command> --help" for a command's options; "fabric --version" (-V) for the version.
`;

/** package.json's version; read only when asked, so no other command pays for it. */
async function version(): Promise<string> {
  return (await import('../core/version.ts')).packageVersion() ?? 'unknown';
}

export async function main(argv: string[]): Promise<number> {
  const [cmd, ...rest] = argv;
  switch (cmd) {
    case 'serve': return (await import('./serve.ts')).runServe(rest);
    case 'config': return (await import('./config.ts')).runConfig(rest);
    case 'sim': return (await import('./sim.ts')).runSim(rest);
    case 'health': return (await import('./health.ts')).runHealth(rest);
    case 'smoke': return (await import('./smoke.ts')).runSmoke(rest);
    case 'wake': return (await import('./wake.ts')).runWake(rest);
    case 'plan': return (await import('./plan.ts')).runPlan(rest);
    case 'render': return (await import('./render.ts')).runRender(rest);
    case 'keys': return (await import('./keys.ts')).runKeys(rest);
    case 'usage': return (await import('./usage.ts')).runUsage(rest);
    case 'backup': return (await import('./backup.ts')).runBackup(rest);
    case 'cache': return (await import('./cache.ts')).runCache(rest);
    case '--version':
    case '-V':
      process.stdout.write(`fabric ${await version()}\n`);
      return 0;
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

// A reader that stops early (fabric render | head): what is left has nowhere to go, and the
// command ends quietly, as a Unix tool on SIGPIPE does, not with a stack trace. Not serve: a
// gateway drains first (serve.ts).
if (process.argv[2] !== 'serve') {
  for (const out of [process.stdout, process.stderr]) {
    out.on('error', (e: NodeJS.ErrnoException) => {
      if (e.code !== 'EPIPE') throw e;
      process.exit(typeof process.exitCode === 'number' ? process.exitCode : 0);
    });
  }
}

const code = await main(process.argv.slice(2));
if (code !== -1) process.exitCode = code;
// A cluster worker that is done (drained, or could not start) exits: its channel to the primary
// would keep it alive, not serving, and the primary would never know to replace it.
if (code !== -1 && cluster.isWorker) process.exit(code);

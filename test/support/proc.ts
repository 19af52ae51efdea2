// A gateway in its own process (`fabric serve --config FILE --port 0`), as an operator runs it:
// for tests that need several instances or that kill one.

import { spawn, type ChildProcess } from 'node:child_process';

const MAIN = new URL('../../src/cli/main.ts', import.meta.url).pathname;

export interface GatewayProcess {
  url: string;
  proc: ChildProcess;
  output: string[];
  /** Sends the signal and waits for the exit; resolves with the exit code (or the signal). */
  stop(signal?: NodeJS.Signals): Promise<number | string>;
}

export async function spawnGateway(config: string, env: Record<string, string>, timeoutMs = 20_000): Promise<GatewayProcess> {
  return spawnServe(['--config', config, '--port', '0', '--host', '127.0.0.1', '--grace', '5'], { ...process.env, ...env, FABRIC_DATA_DIR: '' }, timeoutMs);
}

/** `fabric serve ARGS` with exactly `env`, once it says where it listens. */
export async function spawnServe(args: string[], env: NodeJS.ProcessEnv, timeoutMs = 20_000): Promise<GatewayProcess> {
  const proc = spawn(process.execPath, [MAIN, 'serve', ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  const output: string[] = [];
  let url: string | undefined;
  const exited = new Promise<number | string>((resolve) => proc.once('exit', (code, sig) => resolve(code ?? sig ?? -1)));
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`gateway did not start:\n${output.join('\n')}`)), timeoutMs);
    const onLine = (d: Buffer): void => {
      for (const line of d.toString().split('\n')) {
        if (line === '') continue;
        output.push(line);
        const m = /listening on (http:\/\/[\d.:]+)/.exec(line);
        if (m !== null && url === undefined) {
          url = m[1];
          clearTimeout(timer);
          resolve();
        }
      }
    };
    proc.stdout!.on('data', onLine);
    proc.stderr!.on('data', onLine);
    void exited.then((c) => { clearTimeout(timer); reject(new Error(`gateway exited (${c}) before listening:\n${output.join('\n')}`)); });
  });
  return {
    url: url!,
    proc,
    output,
    async stop(signal: NodeJS.Signals = 'SIGTERM') {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill(signal);
      return exited;
    },
  };
}

export interface CommandResult {
  /** The exit code (the signal's name if it was killed). */
  code: number | string;
  stdout: string;
  stderr: string;
}

/** Runs `fabric ARGS` as an operator would, with exactly `env`; killed after timeoutMs. */
export function runFabric(args: string[], env: NodeJS.ProcessEnv, timeoutMs = 20_000): Promise<CommandResult> {
  const child = spawn(process.execPath, [MAIN, ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout!.setEncoding('utf8').on('data', (c: string) => { stdout += c; });
  child.stderr!.setEncoding('utf8').on('data', (c: string) => { stderr += c; });
  const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
  return new Promise((resolve) => child.once('exit', (code, sig) => {
    clearTimeout(timer);
    resolve({ code: code ?? sig ?? -1, stdout, stderr });
  }));
}

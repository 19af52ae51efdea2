// Shared setup for integration tests: a simulated fleet, a gateway in front of it on a real
// loopback port, and the official openai SDK pointed at the gateway.

import OpenAI from 'openai';
import { readFileSync, rmSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { gunzipSync } from 'node:zlib';
import Ajv from 'ajv';
import { parseFabricText } from '../src/config/load.ts';
import { Secrets } from '../src/config/env-file.ts';
import { createLogger, type Logger } from '../src/core/log.ts';
import { startGateway, type RunningGateway } from '../src/main.ts';
import { startFleet, type SimEngineSpec, type SimFleet } from '../src/sim/fleet.ts';
import { tempDir } from './support/temp-dir.ts';

export interface Fabric {
  fleet: SimFleet;
  gw: RunningGateway;
  url: string;
  client: OpenAI;
  logs: string[];
  close(): Promise<void>;
}

export interface FabricOptions {
  engines: SimEngineSpec[];
  /** Builds the config YAML from the simulated engines' URLs (name → http://127.0.0.1:PORT). */
  yaml: (url: (name: string) => string) => string;
  env?: Record<string, string>;
  apiKey?: string;
  /** The gateway's data directory (SQLite store, spool); default: a temp dir removed at close. */
  dataDir?: string;
  /** StartOptions.retiredLogMs. */
  retiredLogMs?: number;
  /** StartOptions.requestTimeouts. */
  requestTimeouts?: { headersMs: number; requestMs: number };
}

/** The seeds' machines as simulated vLLM engines: Qwen on armitage, Llama on wintermute, BGE (768 dimensions) on motoko. */
const SEED_ENGINES = {
  armitage: { protocol: 'vllm', model: 'Qwen/Qwen2.5-7B-Instruct-AWQ', kind: 'chat' },
  wintermute: { protocol: 'vllm', model: 'casperhansen/llama-3-8b-instruct-awq', kind: 'chat' },
  motoko: { protocol: 'vllm', model: 'BAAI/bge-base-en-v1.5', kind: 'embeddings', dimensions: 768 },
} as const;

export function seedEngine(name: keyof typeof SEED_ENGINES, timing: SimEngineSpec['timing']): SimEngineSpec {
  return { name, ...SEED_ENGINES[name], timing };
}

export async function startFabric(opts: FabricOptions): Promise<Fabric> {
  const fleet = await startFleet(opts.engines);
  const { config } = parseFabricText(opts.yaml((n) => fleet.get(n).url), 'test.yaml');
  const secrets = new Secrets({ ...opts.env });
  const logs: string[] = [];
  const log: Logger = createLogger({ level: 'debug', write: (s) => { logs.push(...s.trimEnd().split('\n')); }, secrets: Object.values(opts.env ?? {}) });
  const dataDir = opts.dataDir ?? tempDir('fabric-data-');
  const gw = await startGateway(config, secrets, { host: '127.0.0.1', port: 0, log, probe: false, dataDir, ...(opts.retiredLogMs === undefined ? {} : { retiredLogMs: opts.retiredLogMs }), ...(opts.requestTimeouts === undefined ? {} : { requestTimeouts: opts.requestTimeouts }) });
  const client = new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: opts.apiKey ?? 'unused', maxRetries: 0, timeout: 10_000 });
  return {
    fleet, gw, url: gw.url, client, logs,
    async close() {
      await gw.close(1000);
      await fleet.close();
      if (opts.dataDir === undefined) rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

/** Validates a response body against a component schema of the official OpenAI OpenAPI document. */
export function openaiSchemaValidator(): (component: string, value: unknown) => string[] {
  // The official OpenAI OpenAPI document, committed gzipped (test/fixtures/README.md).
  const spec = JSON.parse(gunzipSync(readFileSync(new URL('./fixtures/openai-openapi.json.gz', import.meta.url))).toString('utf8')) as { components: { schemas: Record<string, unknown> } };
  const ajv = new Ajv.default({ strict: false, allErrors: true, validateFormats: false });
  ajv.addSchema({ $id: 'openai', components: spec.components });
  return (component, value) => {
    const validate = ajv.getSchema(`openai#/components/schemas/${component}`);
    if (validate === undefined) throw new Error(`no schema ${component}`);
    return validate(value) ? [] : (validate.errors ?? []).map((e) => `${e.instancePath} ${e.message}`);
  };
}

export async function post(url: string, path: string, body: unknown, headers: Record<string, string> = {}): Promise<{ status: number; headers: Headers; json: any; text: string }> {
  const res = await fetch(url + path, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: typeof body === 'string' ? body : JSON.stringify(body) });
  const text = await res.text();
  let json: unknown;
  try { json = JSON.parse(text); } catch { json = undefined; }
  return { status: res.status, headers: res.headers, json, text };
}

export const chat = (model: string, content = 'hello there', extra: Record<string, unknown> = {}) => ({
  model, messages: [{ role: 'user', content }], max_tokens: 12, ...extra,
});

/** Waits for a log record written after `from` (an index into f.logs) that matches; the request log line is written once the response has ended. */
export async function waitForLog(f: Fabric, from: number, match: (r: any) => boolean, timeoutMs = 3000): Promise<any> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    for (let i = from; i < f.logs.length; i++) {
      const r = JSON.parse(f.logs[i]!);
      if (match(r)) return r;
    }
    if (Date.now() > until) throw new Error('no matching log record');
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** The body of the last inference request a simulated engine received. */
export function lastBody(f: Fabric, engine: string): any {
  const reqs = f.fleet.get(engine).requests();
  return reqs[reqs.length - 1]!.body;
}

/** `get()` until `ok` (or `ms` have passed): its last value. */
export async function eventually<T>(get: () => T | Promise<T>, ok: (v: T) => boolean, ms = 3000): Promise<T> {
  const until = Date.now() + ms;
  for (;;) {
    const v = await get();
    if (ok(v) || Date.now() > until) return v;
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** Raw bytes to the gateway on a connection of their own, then nothing more: `answer` is all it sent before the connection closed. */
export function rawRequest(url: string, bytes: string): { sock: Socket; answer: Promise<string> } {
  const u = new URL(url);
  const sock = connect(Number(u.port), u.hostname);
  sock.on('error', () => {});
  let text = '';
  sock.on('data', (d: Buffer) => { text += d.toString('utf8'); });
  sock.write(bytes);
  return { sock, answer: new Promise((resolve) => sock.once('close', () => resolve(text))) };
}

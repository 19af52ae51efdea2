// The launch command of each served engine, from its serve: block: vLLM's arguments, Ollama's
// environment, llama-server's flags. compose.yaml and the launch scripts both build on these,
// so a container and a bare-metal start run the same engine the same way.

import { basename, dirname } from 'node:path/posix';
import type { NodeConfig, SecretRef, ServedEngine } from '../config/types.ts';
import { ASSUMPTIONS } from '../plan/memory.ts';
import { IMAGES, header, psWord, safeName, shWord, type RenderContext, type RenderedFile, type Served } from './common.ts';

export interface EngineLaunch {
  /** Arguments after the program (vllm serve …, llama-server …) or the container image. */
  args: string[];
  /** Plain environment values. */
  env: [string, string][];
  /** Environment taken from secrets, by reference only. */
  secretEnv: [string, SecretRef][];
}

const num = (n: number): string => String(+n.toFixed(4));

/**
 * Where each engine takes the API key it requires of every request: vLLM reads VLLM_API_KEY
 * when --api-key is not given (vllm/envs.py, api_server.build_app), llama-server LLAMA_API_KEY
 * (--api-key's set_env in common/arg.cpp). The environment, not the flag: argv is readable by
 * every user of the host (ps). Ollama has no authentication.
 */
const API_KEY_ENV: Partial<Record<ServedEngine, string>> = { vllm: 'VLLM_API_KEY', llamacpp: 'LLAMA_API_KEY' };

/** The variable the backend's api_key is rendered to its engine as; undefined when it is not (no key, Ollama, or serve.env sets that variable itself). */
export function engineKeyEnv(s: Served): string | undefined {
  const name = API_KEY_ENV[s.serve.engine];
  return name !== undefined && s.backend.apiKey !== undefined && !s.serve.env.has(name) ? name : undefined;
}

function commonEnv(s: Served): Pick<EngineLaunch, 'env' | 'secretEnv'> {
  const env: [string, string][] = [];
  const secretEnv: [string, SecretRef][] = [];
  if (s.serve.hfToken !== undefined) secretEnv.push(['HF_TOKEN', s.serve.hfToken]);
  // The key the gateway sends this backend is the one its engine requires.
  const keyEnv = engineKeyEnv(s);
  if (keyEnv !== undefined) secretEnv.push([keyEnv, s.backend.apiKey!]);
  for (const [k, v] of s.serve.env) {
    if (typeof v === 'string') env.push([k, v]);
    else secretEnv.push([k, v]);
  }
  return { env, secretEnv };
}

/**
 * vLLM: `vllm serve MODEL …`, on the host and in the container alike. The container's entrypoint
 * is set to `vllm serve` rather than taken from the image (older images ran the api_server
 * module, which needs `--model`; `vllm serve` deprecates that option), so serve.image may name
 * any vLLM image that has the `vllm serve` command.
 */
export function vllmLaunch(s: Served, where: 'host' | 'container'): EngineLaunch {
  const v = s.serve;
  const args = [v.model];
  if (v.model !== s.backend.model) args.push('--served-model-name', s.backend.model);
  args.push('--host', where === 'host' ? v.host : '0.0.0.0', '--port', String(v.port));
  if (v.quantization !== undefined && v.quantization !== 'none') args.push('--quantization', v.quantization);
  if (v.dtype !== 'auto') args.push('--dtype', v.dtype);
  if (v.kvCacheDtype !== undefined && v.kvCacheDtype !== 'auto') args.push('--kv-cache-dtype', v.kvCacheDtype);
  if (v.maxModelLen !== undefined) args.push('--max-model-len', String(v.maxModelLen));
  args.push('--gpu-memory-utilization', num(v.gpuMemoryUtilization ?? ASSUMPTIONS.defaultUtilization));
  if (v.gpus.length > 1) args.push('--tensor-parallel-size', String(v.gpus.length));
  if (v.maxNumSeqs !== undefined) args.push('--max-num-seqs', String(v.maxNumSeqs));
  if (v.maxNumBatchedTokens !== undefined) args.push('--max-num-batched-tokens', String(v.maxNumBatchedTokens));
  if (v.enforceEager) args.push('--enforce-eager');
  if (v.toolParser !== undefined) args.push('--enable-auto-tool-choice', '--tool-call-parser', v.toolParser);
  if (v.reasoningParser !== undefined) args.push('--reasoning-parser', v.reasoningParser);
  args.push(...v.extraArgs);
  return { args, ...commonEnv(s) };
}

/** One Ollama server for every backend on its port: the server's settings, and the models it pulls. */
export function ollamaLaunch(group: Served[], where: 'host' | 'container'): EngineLaunch & { models: string[] } {
  const first = group[0]!.serve;
  // The context of requests that set no num_ctx: the gateway's requests set each backend's
  // own (ollamaNumCtx), so this is the window-less backends', pinned to what fabric plan sizes
  // them at (Ollama's own default grows with the GPU's memory in recent versions).
  const ctx = ASSUMPTIONS.ollamaDefaultContext;
  const env: [string, string][] = [['OLLAMA_HOST', `${where === 'host' ? first.host : '0.0.0.0'}:${first.port}`], ['OLLAMA_CONTEXT_LENGTH', String(ctx)]];
  const parallel = group.find((s) => s.serve.maxNumSeqs !== undefined)?.serve.maxNumSeqs;
  if (parallel !== undefined) env.push(['OLLAMA_NUM_PARALLEL', String(parallel)]);
  const kv = group.find((s) => s.serve.kvCacheDtype !== undefined && s.serve.kvCacheDtype !== 'f16')?.serve.kvCacheDtype;
  // A quantized KV cache needs flash attention in Ollama.
  if (kv !== undefined) env.push(['OLLAMA_FLASH_ATTENTION', '1'], ['OLLAMA_KV_CACHE_TYPE', kv]);
  const extra = commonEnv(group[0]!);
  return { args: ['serve'], env: [...env, ...extra.env], secretEnv: extra.secretEnv, models: [...new Set(group.map((s) => s.serve.model))] };
}

/** llama-server: in a container the GGUF file's folder is mounted at /models. */
export function llamacppLaunch(s: Served, where: 'host' | 'container'): EngineLaunch {
  const v = s.serve;
  const model = where === 'host' ? v.model : `/models/${basename(v.model)}`;
  // -c is the whole KV cache; with an explicit --parallel N each slot gets a Nth of it (no
  // unified cache then), so N slots of max_model_len each, as fabric plan sizes them, need N times.
  const perSlot = v.maxModelLen ?? ASSUMPTIONS.llamacppDefaultContext;
  const args = ['-m', model, '--host', where === 'host' ? v.host : '0.0.0.0', '--port', String(v.port),
    '-c', String(perSlot * (v.maxNumSeqs ?? 1)), '-ngl', '999', '--alias', s.backend.model,
    // Prometheus /metrics, off by default: the gateway reads the queue (requests_deferred) there;
    // /slots alone tells only the busy slots.
    '--metrics'];
  if (v.maxNumSeqs !== undefined) args.push('--parallel', String(v.maxNumSeqs));
  // --parallel 1 alone is read as unset: 4 slots sharing the cache. One slot is asked with -kvu.
  if (v.maxNumSeqs === 1) args.push('--kv-unified');
  // A quantized V cache needs flash attention; `-fa` takes a value since mid-2025 (on|off|auto),
  // and a bare one would swallow the next option (the image tag follows llama.cpp's master).
  if (v.kvCacheDtype !== undefined && v.kvCacheDtype !== 'f16') args.push('--flash-attn', 'on', '-ctk', v.kvCacheDtype, '-ctv', v.kvCacheDtype);
  args.push(...v.extraArgs);
  return { args, ...commonEnv(s) };
}

/**
 * What the files of an engine must say about its authentication: an Ollama server checks no key,
 * so a backend's api_key there keeps nobody out.
 */
export function authNotes(group: Served[]): string[] {
  if (group[0]!.serve.engine !== 'ollama') return [];
  const keyed = group.filter((s) => s.backend.apiKey !== undefined);
  if (keyed.length === 0) return [];
  const names = keyed.map((s) => `${s.backend.name} (api_key: env:${s.backend.apiKey!.env})`).join(', ');
  return [`Ollama has no authentication: the gateway sends the key of ${names}, but Ollama checks none;`,
    `anyone who reaches port ${group[0]!.serve.port} uses it. Keep the port on loopback or a private network, or put a proxy that checks the key in front.`];
}

export function llamacppModelDir(s: Served): string {
  return s.serve.modelsDir ?? dirname(s.serve.model);
}

/** Backends grouped into engine processes: one per vLLM / llama.cpp backend, one per Ollama port. */
export function engineGroups(served: Served[]): Served[][] {
  const groups: Served[][] = [];
  const ollama = new Map<number, Served[]>();
  for (const s of served) {
    if (s.serve.engine !== 'ollama') {
      groups.push([s]);
      continue;
    }
    const g = ollama.get(s.serve.port);
    if (g === undefined) {
      const fresh = [s];
      ollama.set(s.serve.port, fresh);
      groups.push(fresh);
    } else g.push(s);
  }
  return groups;
}

export function groupName(group: Served[]): string {
  const first = group[0]!;
  return first.serve.engine === 'ollama' ? safeName(`ollama-${first.serve.port}`) : safeName(first.backend.name);
}

function lines(words: string[], quote: (s: string) => string, cont: string, indent: string): string {
  return words.map(quote).join(' ').length <= 100
    ? words.map(quote).join(' ')
    : words.reduce<string[]>((acc, w) => {
      // Flags start a new line; a flag's value stays with it.
      if (w.startsWith('-') || acc.length === 0) acc.push(quote(w));
      else acc[acc.length - 1] += ` ${quote(w)}`;
      return acc;
    }, []).join(` ${cont}\n${indent}`);
}

/** A POSIX sh script that starts the engine on the host itself (no container). */
function shScript(ctx: RenderContext, node: NodeConfig, group: Served[]): string {
  const s = group[0]!;
  const engine = s.serve.engine;
  let out = '#!/bin/sh\n' + header(ctx, '#', `${groupName(group)} on ${node.name}: ${engine === 'vllm' ? 'vLLM' : engine === 'ollama' ? 'Ollama' : 'llama.cpp'}, started on the host (compose.yaml runs the same in a container).`);
  out += authNotes(group).map((n) => `# ${n}\n`).join('');
  out += 'set -eu\n';
  const launch = engine === 'vllm' ? vllmLaunch(s, 'host') : engine === 'ollama' ? ollamaLaunch(group, 'host') : llamacppLaunch(s, 'host');
  out += `export CUDA_VISIBLE_DEVICES=${s.serve.gpus.join(',')}\n`;
  for (const [k, v] of launch.env) out += `export ${k}=${shWord(v)}\n`;
  for (const [k, ref] of launch.secretEnv) out += `: "\${${ref.env}:?set ${ref.env} in the environment}"\nexport ${k}="\${${ref.env}}"\n`;
  if (engine === 'vllm') out += `exec ${lines(['vllm', 'serve', ...launch.args], shWord, '\\', '  ')}\n`;
  else if (engine === 'llamacpp') out += `exec ${lines(['llama-server', ...launch.args], shWord, '\\', '  ')}\n`;
  else {
    out += 'ollama serve &\nserver=$!\nuntil ollama list >/dev/null 2>&1; do sleep 1; done\n';
    for (const m of (launch as ReturnType<typeof ollamaLaunch>).models) out += `ollama pull ${shWord(m)}\n`;
    out += 'wait "$server"\n';
  }
  return out;
}

/** Windows nodes (the seeds' workstations) run engines in Docker or Podman Desktop: a `run` line per engine. */
function psScript(ctx: RenderContext, node: NodeConfig, group: Served[], c: ContainerSpec): string {
  const { env, secretEnv } = c;
  const rt = node.runtime ?? 'docker';
  const name = groupName(group);
  let out = header(ctx, '#', `${name} on ${node.name}, in ${rt === 'podman' ? 'Podman' : 'Docker'} Desktop (compose.yaml describes the same container).`);
  out += authNotes(group).map((n) => `# ${n}\n`).join('');
  out += '$ErrorActionPreference = "Stop"\n';
  for (const [, ref] of secretEnv) out += `if (-not $env:${ref.env}) { throw "set ${ref.env} in the environment" }\n`;
  const gpu = rt === 'podman' ? ['--device', group[0]!.serve.gpus.map((g) => `nvidia.com/gpu=${g}`).join(',')] : ['--gpus', `device=${group[0]!.serve.gpus.join(',')}`];
  // One option per line: run options, then the image, then the engine's own arguments.
  // `run --entrypoint` takes the program alone; the rest of the entrypoint leads the arguments.
  const entry = c.entrypoint ?? [];
  const rows: string[][] = [[rt, 'run', '-d', '--name', name, '--restart', 'unless-stopped'], gpu, ...c.ports.map((p) => ['-p', p]),
    ...c.volumes.map((v) => ['-v', v]), ...env.map(([k, v]) => ['-e', `${k}=${v}`]), ...secretEnv.map(([k]) => ['-e', k]),
    ...(entry.length > 0 ? [['--entrypoint', entry[0]!]] : []), [c.image], ...(entry.length > 1 ? [entry.slice(1)] : [])];
  for (const w of c.args) {
    if (w.startsWith('-') || rows.length === 0) rows.push([w]);
    else rows[rows.length - 1]!.push(w);
  }
  // A container from an earlier run is replaced; none there yet is no error (under "Stop",
  // Windows PowerShell turns a native command's stderr into one, hence the try).
  out += `try { ${rt} rm -f ${psWord(name)} 2>&1 | Out-Null } catch { }\n`;
  for (const [k, ref] of secretEnv) if (k !== ref.env) out += `$env:${k} = $env:${ref.env}\n`;
  // A native command's failure is only in $LASTEXITCODE: "Stop" does not see it.
  const check = (what: string): string => `if ($LASTEXITCODE -ne 0) { throw "${what} failed (exit $LASTEXITCODE)" }\n`;
  out += rows.map((r) => r.map(psWord).join(' ')).join(' `\n  ') + '\n' + check(`${rt} run ${name}`);
  if (group[0]!.serve.engine === 'ollama') {
    for (const m of (ollamaLaunch(group, 'container')).models) out += `${rt} exec ${psWord(name)} ollama pull ${psWord(m)}\n${check(`ollama pull ${m}`)}`;
  }
  return out;
}

export interface ContainerSpec {
  name: string;
  image: string;
  /** Replaces the image's entrypoint, when set. */
  entrypoint?: string[];
  args: string[];
  env: [string, string][];
  secretEnv: [string, SecretRef][];
  volumes: string[];
  /** host:container port mappings (with a bind address when loopback-only). */
  ports: string[];
  models: string[];
}

export function containerSpec(group: Served[], bindLoopback: boolean): ContainerSpec {
  const s = group[0]!;
  const v = s.serve;
  const port = `${bindLoopback ? '127.0.0.1:' : ''}${v.port}:${v.port}`;
  if (v.engine === 'vllm') {
    const l = vllmLaunch(s, 'container');
    return {
      name: groupName(group), image: v.image ?? IMAGES.vllm, entrypoint: ['vllm', 'serve'], args: l.args, env: l.env, secretEnv: l.secretEnv,
      volumes: [`${v.modelsDir ?? 'huggingface'}:/root/.cache/huggingface`], ports: [port], models: [],
    };
  }
  if (v.engine === 'ollama') {
    const l = ollamaLaunch(group, 'container');
    return {
      name: groupName(group), image: v.image ?? IMAGES.ollama, args: [], env: l.env, secretEnv: l.secretEnv,
      volumes: [`${v.modelsDir ?? 'ollama'}:/root/.ollama`], ports: [port], models: l.models,
    };
  }
  const l = llamacppLaunch(s, 'container');
  return {
    name: groupName(group), image: v.image ?? IMAGES.llamacpp, args: l.args, env: l.env, secretEnv: l.secretEnv,
    volumes: [`${llamacppModelDir(s)}:/models:ro`], ports: [port], models: [],
  };
}

export function launchFiles(ctx: RenderContext, node: NodeConfig, served: Served[], bindLoopback: (g: Served[]) => boolean): RenderedFile[] {
  const out: RenderedFile[] = [];
  for (const group of engineGroups(served)) {
    const base = `nodes/${safeName(node.name)}/launch/${groupName(group)}`;
    if ((node.os ?? 'linux') === 'windows') {
      const c = containerSpec(group, bindLoopback(group));
      out.push({ path: `${base}.ps1`, content: psScript(ctx, node, group, c), mode: 0o644 });
    } else {
      out.push({ path: `${base}.sh`, content: shScript(ctx, node, group), mode: 0o755 });
    }
  }
  return out;
}

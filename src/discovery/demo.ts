// The demo fleet: when nothing is configured and nothing is found, the gateway serves the
// seeds' fabric from the built-in simulator, so every endpoint answers on the first run.
// Everything about it says "simulated": backend flags, logs, /health, /v1/models, headers.

import { startFleet, type SimEngineSpec, type SimFleet } from '../sim/fleet.ts';

export const DEMO_ENGINES: SimEngineSpec[] = [
  // Chat engines started with a tool parser (--enable-auto-tool-choice), so tools work in the demo.
  { name: 'armitage-qwen', protocol: 'vllm', model: 'Qwen/Qwen2.5-7B-Instruct-AWQ', kind: 'chat', contextWindow: 8192, timing: { ttftMs: 80, tokensPerSecond: 90 }, autoToolChoice: true },
  { name: 'wintermute-llama', protocol: 'vllm', model: 'casperhansen/llama-3-8b-instruct-awq', kind: 'chat', contextWindow: 8192, timing: { ttftMs: 150, tokensPerSecond: 60 }, autoToolChoice: true },
  { name: 'motoko-bge', protocol: 'vllm', model: 'BAAI/bge-base-en-v1.5', kind: 'embeddings', dimensions: 768, contextWindow: 512, timing: { ttftMs: 15, tokensPerSecond: 1e6 } },
  { name: 'openai-strong', protocol: 'openai', model: 'gpt-4.1-mini', kind: 'chat', contextWindow: 1047576, timing: { ttftMs: 300, tokensPerSecond: 80 } },
  { name: 'openai-cheap', protocol: 'openai', model: 'gpt-4o-mini', kind: 'chat', contextWindow: 128000, timing: { ttftMs: 250, tokensPerSecond: 100 } },
  // The seeds' next role, audio-transcribe ("needs a Whisper deployment"): Whisper on vLLM, on motoko.
  { name: 'motoko-whisper', protocol: 'vllm', model: 'openai/whisper-large-v3', kind: 'transcription', contextWindow: 448, timing: { ttftMs: 120, tokensPerSecond: 200 } },
  // A reranker beside the embeddings, as a RAG pipeline uses them: a cross-encoder on vLLM, on motoko.
  { name: 'motoko-rerank', protocol: 'vllm', model: 'BAAI/bge-reranker-v2-m3', kind: 'rerank', contextWindow: 8192, timing: { ttftMs: 20, tokensPerSecond: 1e6 } },
];

export function demoFabricYaml(fleet: SimFleet, host: string, port: number): string {
  const url = (name: string, suffix: string): string => fleet.get(name).url + suffix;
  return `# built-in demo: the seeds' fabric served by the simulator
version: 1
gateway:
  host: ${host}
  port: ${port}
  health_interval: 10s
nodes:
  motoko: { power: always-on, gpus: [{ model: RTX 2080, memory: 8GiB }] }
  wintermute: { power: workstation, gpus: [{ model: RTX 4070 Super, memory: 12GiB }] }
  armitage: { power: workstation, gpus: [{ model: RTX 4070, memory: 8GiB }] }
backends:
  armitage-qwen: { engine: vllm, node: armitage, simulated: true, url: ${url('armitage-qwen', '/v1')}, model: Qwen/Qwen2.5-7B-Instruct-AWQ, context_window: 8192, aliases: [qwen2.5-7b-armitage] }
  wintermute-llama: { engine: vllm, node: wintermute, simulated: true, url: ${url('wintermute-llama', '/v1')}, model: casperhansen/llama-3-8b-instruct-awq, context_window: 8192, aliases: [llama31-8b-wintermute] }
  motoko-bge: { engine: vllm, node: motoko, simulated: true, url: ${url('motoko-bge', '/v1')}, model: BAAI/bge-base-en-v1.5, context_window: 512 }
  # The cloud as the seeds have it: billed at OpenAI's list prices, under the $150 monthly budget
  # (simulated here, so nothing is billed for real), and left alone by fabric smoke unless asked.
  openai-strong: { engine: openai-compatible, cloud: true, simulated: true, url: ${url('openai-strong', '/v1')}, model: gpt-4.1-mini, context_window: 1047576 }
  openai-cheap: { engine: openai-compatible, cloud: true, simulated: true, url: ${url('openai-cheap', '/v1')}, model: gpt-4o-mini, context_window: 128000 }
  motoko-whisper: { engine: vllm, node: motoko, simulated: true, url: ${url('motoko-whisper', '/v1')}, model: openai/whisper-large-v3 }
  motoko-rerank: { engine: vllm, node: motoko, simulated: true, url: ${url('motoko-rerank', '/v1')}, model: BAAI/bge-reranker-v2-m3, context_window: 8192 }
roles:
  chat-fast:
    kind: chat
    backends: [armitage-qwen]
    aliases: [local/chat]
    fallbacks: [chat-deep, openai/strong]
    context_window_fallback: openai/strong
    rules: [{ if_input_tokens_over: 12000, route_to: openai/strong }]
  chat-deep:
    kind: chat
    backends: [wintermute-llama]
    aliases: [local/reasoner]
    fallbacks: [openai/strong]
    context_window_fallback: openai/strong
    rules: [{ if_input_tokens_over: 12000, route_to: openai/strong }]
  embeddings-general: { kind: embeddings, backends: [motoko-bge], aliases: [local/embed], dimensions: 768 }
  openai/strong: { kind: chat, backends: [openai-strong] }
  openai/cheap: { kind: chat, backends: [openai-cheap] }
  audio-transcribe: { kind: transcription, backends: [motoko-whisper], aliases: [whisper-1] }
  rerank-general: { kind: rerank, backends: [motoko-rerank], aliases: [local/rerank] }
budgets:
  openai: { amount: 150, period: month, backends: [openai-strong, openai-cheap], fallback: local/chat }
`;
}

export async function startDemoFleet(log?: (line: string) => void): Promise<SimFleet> {
  return startFleet(DEMO_ENGINES, { controlPort: 0, log });
}

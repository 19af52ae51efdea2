// LiteLLM's `litellm_params.model` names a provider and a model ("hosted_vllm/Qwen/…",
// "ollama_chat/llama3.1:8b", or a bare OpenAI name). This table holds the providers whose
// wire protocol the gateway speaks, and how each maps to a fabric engine.

import type { EngineKind } from '../types.ts';

export interface ProviderSpec {
  engine: EngineKind;
  /** api_base when the deployment gives none; undefined: api_base is required. */
  defaultBase: string | undefined;
  /** The key LiteLLM reads from the environment when the deployment gives none. */
  defaultKeyEnv: string | undefined;
  /** Why the mapping needed a choice, for the imported file. */
  note: string | undefined;
}

const OPENAI_BASE = 'https://api.openai.com/v1';

const PROVIDERS: Record<string, ProviderSpec> = {
  openai: { engine: 'openai', defaultBase: OPENAI_BASE, defaultKeyEnv: 'OPENAI_API_KEY', note: undefined },
  hosted_vllm: { engine: 'vllm', defaultBase: undefined, defaultKeyEnv: undefined, note: undefined },
  ollama: {
    engine: 'ollama', defaultBase: 'http://localhost:11434', defaultKeyEnv: undefined,
    note: 'ollama/: LiteLLM sends chats to /api/generate as one prompt; the gateway uses Ollama\'s /api/chat (as ollama_chat/ does), which applies the model\'s chat template',
  },
  ollama_chat: { engine: 'ollama', defaultBase: 'http://localhost:11434', defaultKeyEnv: undefined, note: undefined },
  lm_studio: { engine: 'lmstudio', defaultBase: 'http://localhost:1234/v1', defaultKeyEnv: undefined, note: undefined },
};

/** Providers LiteLLM has and the gateway does not speak (yet): named in the warning. */
const KNOWN_ELSEWHERE = new Set([
  'azure', 'azure_ai', 'anthropic', 'bedrock', 'vertex_ai', 'vertex_ai_beta', 'gemini', 'groq', 'mistral', 'cohere', 'cohere_chat',
  'huggingface', 'together_ai', 'replicate', 'deepseek', 'openrouter', 'fireworks_ai', 'perplexity', 'deepinfra', 'xai', 'sagemaker',
  'watsonx', 'cloudflare', 'databricks', 'anyscale', 'ai21', 'nlp_cloud', 'aleph_alpha', 'petals', 'palm', 'text-completion-openai',
  'text-completion-codestral', 'codestral', 'friendliai', 'cerebras', 'sambanova', 'nvidia_nim', 'triton', 'predibase', 'clarifai',
  'voyage', 'jina_ai', 'infinity', 'llamafile', 'github', 'custom_openai', 'litellm_proxy', 'dashscope', 'moonshot', 'volcengine',
]);

/** Bare model names LiteLLM sends to OpenAI without a prefix. */
const OPENAI_NAME = /^(gpt-|chatgpt-|o\d|text-embedding-|text-davinci|davinci|babbage|omni-moderation|text-moderation|ft:gpt)/i;

export type ProviderMatch =
  | { ok: true; provider: string; spec: ProviderSpec; model: string; note: string | undefined }
  | { ok: false; message: string };

function supportedProviders(): string {
  return `${Object.keys(PROVIDERS).map((p) => `${p}/`).join(', ')} and bare OpenAI model names`;
}

/** Which provider serves `model` (LiteLLM's litellm_params.model), honouring custom_llm_provider. */
export function matchProvider(model: string, custom: string | undefined, hasApiBase: boolean): ProviderMatch {
  const slash = model.indexOf('/');
  let provider: string | undefined = custom;
  let rest = model;
  if (provider === undefined && slash > 0) {
    const prefix = model.slice(0, slash);
    if (prefix in PROVIDERS || KNOWN_ELSEWHERE.has(prefix) || prefix === 'vllm') {
      provider = prefix;
      rest = model.slice(slash + 1);
    }
  } else if (provider !== undefined && model.startsWith(`${provider}/`)) {
    rest = model.slice(provider.length + 1);
  }
  if (provider === undefined) {
    if (slash < 0 && OPENAI_NAME.test(model)) return { ok: true, provider: 'openai', spec: PROVIDERS.openai!, model, note: 'a bare OpenAI model name: OpenAI, with OPENAI_API_KEY unless api_key says otherwise' };
    return {
      ok: false,
      message: `cannot tell which provider serves "${model}": write it with a provider prefix (${supportedProviders()})`,
    };
  }
  if (provider === 'vllm') {
    // LiteLLM's vllm/ runs vLLM inside its own process; with an api_base it can only mean a vLLM server.
    if (!hasApiBase) return { ok: false, message: 'provider vllm/ (vLLM inside the LiteLLM process) is not supported: run a vLLM server and use hosted_vllm/ with its api_base' };
    return { ok: true, provider, spec: PROVIDERS.hosted_vllm!, model: rest, note: 'vllm/ with an api_base: treated as hosted_vllm/, a vLLM server over HTTP' };
  }
  const spec = PROVIDERS[provider];
  if (spec === undefined) {
    return { ok: false, message: `provider ${provider}/ is not supported yet (supported: ${supportedProviders()})` };
  }
  return { ok: true, provider, spec, model: rest, note: spec.note };
}

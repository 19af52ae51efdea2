// With no configuration, look for engines on their usual local ports and for an OpenAI key,
// and write a fabric config for what is found. Returns undefined when nothing is there.

import { getOnce } from '../core/http-client.ts';

export interface Found {
  engine: 'ollama' | 'vllm' | 'llamacpp' | 'lmstudio';
  url: string;
  models: string[];
}

const PROBES: { engine: Found['engine']; port: number; path: string }[] = [
  { engine: 'ollama', port: 11434, path: '/api/tags' },
  { engine: 'vllm', port: 8000, path: '/v1/models' },
  { engine: 'llamacpp', port: 8080, path: '/v1/models' },
  { engine: 'lmstudio', port: 1234, path: '/v1/models' },
];

const EMBEDDING_HINT = /embed|bge|e5-|gte-|minilm|nomic/i;
/** Rerankers (bge-reranker-v2-m3 is no embedding model, though named bge-): served where the engine has a rerank endpoint. */
const RERANK_HINT = /rerank/i;
const RERANKS: ReadonlySet<string> = new Set(['vllm', 'llamacpp']);

async function getJson(url: string, timeoutMs: number): Promise<unknown> {
  const res = await getOnce(url, timeoutMs);
  if (res.status !== 200) throw new Error(`HTTP ${res.status}`);
  return JSON.parse(res.text) as unknown;
}

export async function discoverLocal(host = '127.0.0.1', timeoutMs = 800): Promise<Found[]> {
  const results = await Promise.all(PROBES.map(async (p): Promise<Found | undefined> => {
    try {
      const j = await getJson(`http://${host}:${p.port}${p.path}`, timeoutMs) as { models?: { name: string }[]; data?: { id: string; owned_by?: string }[] };
      if (p.engine === 'ollama') {
        const models = (j.models ?? []).map((m) => m.name);
        return { engine: 'ollama', url: `http://${host}:${p.port}`, models };
      }
      const data = j.data ?? [];
      // Port 8000 is vLLM's default, but another OpenAI-compatible server may sit there.
      const engine = p.engine === 'vllm' && data.some((d) => d.owned_by === 'llamacpp') ? 'llamacpp' : p.engine;
      return { engine, url: `http://${host}:${p.port}/v1`, models: data.map((d) => d.id) };
    } catch {
      return undefined;
    }
  }));
  return results.filter((r): r is Found => r !== undefined && r.models.length > 0);
}

function slug(s: string): string {
  return s.toLowerCase().replace(/[^a-z0-9]+/g, '-').replace(/^-|-$/g, '').slice(0, 40);
}

/** A fabric config (YAML text) for what discovery found; roles named as in the seeds. */
export function fabricFromDiscovery(found: Found[], hasOpenAI: boolean, port: number, host: string): string | undefined {
  const backends: string[] = [];
  const chat: string[] = [];
  const embed: string[] = [];
  const rerank: string[] = [];
  for (const f of found) {
    for (const m of f.models) {
      // A reranker on an engine without the endpoint (Ollama, LM Studio) serves nothing: left out.
      if (RERANK_HINT.test(m) && !RERANKS.has(f.engine)) continue;
      const name = `${f.engine}-${slug(m)}`;
      backends.push(`  ${JSON.stringify(name)}:\n    engine: ${f.engine}\n    url: ${f.url}\n    model: ${JSON.stringify(m)}`);
      (RERANK_HINT.test(m) ? rerank : EMBEDDING_HINT.test(m) ? embed : chat).push(name);
    }
  }
  if (hasOpenAI) {
    backends.push('  openai-strong:\n    engine: openai\n    model: gpt-4.1-mini\n    api_key: env:OPENAI_API_KEY');
    backends.push('  openai-cheap:\n    engine: openai\n    model: gpt-4o-mini\n    api_key: env:OPENAI_API_KEY');
    backends.push('  openai-embed:\n    engine: openai\n    model: text-embedding-3-small\n    api_key: env:OPENAI_API_KEY');
  }
  if (backends.length === 0) return undefined;
  const roles: string[] = [];
  const fb = hasOpenAI ? '\n    fallbacks: [openai/strong]' : '';
  if (chat.length > 0) roles.push(`  chat-fast:\n    kind: chat\n    backends: [${JSON.stringify(chat[0])}]\n    aliases: [local/chat]${fb}`);
  if (rerank.length > 0) roles.push(`  rerank-general:\n    kind: rerank\n    backends: [${JSON.stringify(rerank[0])}]\n    aliases: [local/rerank]`);
  if (embed.length > 0) roles.push(`  embeddings-general:\n    kind: embeddings\n    backends: [${JSON.stringify(embed[0])}]\n    aliases: [local/embed]${hasOpenAI ? '\n    fallbacks: [openai/embed]' : ''}`);
  if (hasOpenAI) {
    roles.push('  openai/strong:\n    kind: chat\n    backends: [openai-strong]');
    roles.push('  openai/cheap:\n    kind: chat\n    backends: [openai-cheap]');
    roles.push('  openai/embed:\n    kind: embeddings\n    backends: [openai-embed]');
    if (chat.length === 0) roles.push('  chat-fast:\n    kind: chat\n    backends: [openai-cheap]\n    aliases: [local/chat]\n    fallbacks: [openai/strong]');
  }
  // Further models stay reachable by their physical ids; a backend in no role is routed as chat, so rerankers are each a role.
  rerank.slice(1).forEach((b, i) => roles.push(`  rerank-${i + 2}:\n    kind: rerank\n    backends: [${JSON.stringify(b)}]`));
  return `# discovered on ${new Date().toISOString()}\nversion: 1\ngateway:\n  host: ${host}\n  port: ${port}\nbackends:\n${backends.join('\n')}\nroles:\n${roles.join('\n')}\n`;
}

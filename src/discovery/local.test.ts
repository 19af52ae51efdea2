import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fabricFromDiscovery } from './local.ts';
import { parseFabricText } from '../config/load.ts';
import { formatIssue } from '../config/issues.ts';

test('what discovery finds becomes the seeds\' roles: a reranker (named bge- too) is a rerank role, not embeddings; one on Ollama, which cannot rerank, is left out', () => {
  const yaml = fabricFromDiscovery([
    { engine: 'vllm', url: 'http://127.0.0.1:8000/v1', models: ['Qwen/Qwen2.5-7B-Instruct', 'BAAI/bge-reranker-v2-m3'] },
    { engine: 'llamacpp', url: 'http://127.0.0.1:8080/v1', models: ['bge-reranker-base-q8_0.gguf'] },
    { engine: 'ollama', url: 'http://127.0.0.1:11434', models: ['nomic-embed-text:latest', 'qllama/bge-reranker-v2-m3:latest'] },
  ], false, 4000, '127.0.0.1')!;
  const { config, issues } = parseFabricText(yaml, 'discovered.yaml');
  assert.deepEqual(issues.filter((i) => i.severity === 'error').map(formatIssue), []);
  assert.deepEqual([...config.roles.values()].map((r) => [r.name, r.kind, r.backends]), [
    ['chat-fast', 'chat', ['vllm-qwen-qwen2-5-7b-instruct']],
    ['rerank-general', 'rerank', ['vllm-baai-bge-reranker-v2-m3']],
    ['embeddings-general', 'embeddings', ['ollama-nomic-embed-text-latest']],
    ['rerank-2', 'rerank', ['llamacpp-bge-reranker-base-q8-0-gguf']],
  ]);
  assert.equal([...config.backends.values()].some((b) => b.engine === 'ollama' && /rerank/.test(b.model)), false);
});

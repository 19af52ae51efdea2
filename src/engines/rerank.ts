// Reranking (POST /v1/rerank, /rerank, /v2/rerank): a query and documents in, the documents'
// relevance out. vLLM, llama.cpp's server and OpenAI-compatible rerankers (Infinity, SGLang)
// take the same request (Jina's and Cohere's: query, documents, top_n) and answer nearly alike:
// vLLM gives every result its document ({text}), llama.cpp none, Infinity a string; vLLM keeps
// every result when top_n is 0, llama.cpp keeps none; usage may be total_tokens alone (vLLM
// before 0.9); SGLang answers a bare array of {index, score, document, meta_info} and ignores
// top_n. The gateway answers one way whatever served it: results by relevance, highest first
// (ties by index), cut to top_n, each with its document unless return_documents is false.

import type { JsonObject, NormalizeContext } from './types.ts';

export interface RerankResult {
  index: number;
  relevance_score: number;
  document?: { text: string };
}

function isObj(v: unknown): v is JsonObject {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/**
 * The body a reranker is sent: top_n only when it cuts (0 means all to vLLM but none to
 * llama.cpp, so 0 or null is left out; one past the documents too, which llama.cpp reads as a
 * C int: 2^32 + 1 is 1 there), never return_documents (the gateway adds the documents itself;
 * Infinity refuses a null one with a 422). The gateway cuts the answer itself. The client's body
 * is kept as it came, for a fallback's attempt.
 */
export function rerankUpstreamBody(body: JsonObject, model: string): JsonObject {
  const out: JsonObject = { ...body, model };
  const n = out.top_n;
  if (typeof n !== 'number' || n <= 0 || n >= (body.documents as readonly unknown[]).length) delete out.top_n;
  delete out.return_documents;
  delete out.stream;
  delete out.stream_options;
  return out;
}

/** How many results a whole answer has: every document, or top_n of them. */
function expected(body: JsonObject, documents: number): number {
  const n = body.top_n;
  return typeof n === 'number' && n > 0 ? Math.min(n, documents) : documents;
}

/**
 * An engine's rerank answer as the gateway gives it, or undefined when it is not one: results
 * that are not objects with an integer index naming a document sent and a finite score, an index
 * given twice, or fewer results than the documents asked for (a ranking silently cut short).
 * The answer is an object with results, or SGLang's bare array of them.
 */
export function normalizeRerank(json: unknown, body: JsonObject, ctx: NormalizeContext): JsonObject | undefined {
  const docs = body.documents as readonly string[];
  const j: JsonObject = isObj(json) ? json : {};
  const bare = Array.isArray(json);
  const raw = bare ? json : j.results;
  if (!Array.isArray(raw) || raw.length < expected(body, docs.length)) return undefined;
  const seen = new Uint8Array(docs.length);
  const results: RerankResult[] = [];
  // SGLang counts each pair's tokens in its meta_info: their sum is the request's.
  let pairTokens: number | undefined = bare ? 0 : undefined;
  for (let i = 0; i < raw.length; i++) {
    const r = raw[i] as unknown;
    if (!isObj(r)) return undefined;
    const index = r.index;
    // SGLang names it score; every other form relevance_score.
    const score = r.relevance_score ?? r.score;
    if (typeof index !== 'number' || !Number.isInteger(index) || index < 0 || index >= docs.length || seen[index] === 1) return undefined;
    if (typeof score !== 'number' || !Number.isFinite(score)) return undefined;
    seen[index] = 1;
    results.push({ index, relevance_score: score });
    if (pairTokens !== undefined) {
      const t = isObj(r.meta_info) ? r.meta_info.prompt_tokens : undefined;
      pairTokens = typeof t === 'number' ? pairTokens + t : undefined;
    }
  }
  results.sort((a, b) => b.relevance_score - a.relevance_score || a.index - b.index);
  results.length = expected(body, results.length);
  if (body.return_documents !== false) for (const r of results) r.document = { text: docs[r.index]! };
  const out: JsonObject = {
    id: typeof j.id === 'string' && j.id !== '' ? j.id : `rerank-${ctx.requestId}`,
    model: typeof j.model === 'string' ? j.model : ctx.model,
    results,
  };
  const usage = rerankUsage(pairTokens === undefined ? j.usage : { prompt_tokens: pairTokens });
  if (usage !== undefined) out.usage = usage;
  return out;
}

/**
 * The tokens an engine counted (every query and document pair), as vLLM gives them, or undefined
 * when it counted none (the gateway then estimates them for its usage record, as for any answer).
 */
function rerankUsage(u: unknown): { prompt_tokens: number; total_tokens: number } | undefined {
  if (!isObj(u)) return undefined;
  const prompt = typeof u.prompt_tokens === 'number' ? u.prompt_tokens : typeof u.total_tokens === 'number' ? u.total_tokens : undefined;
  if (prompt === undefined) return undefined;
  return { prompt_tokens: prompt, total_tokens: typeof u.total_tokens === 'number' ? u.total_tokens : prompt };
}

// The fabric as a LiteLLM proxy config, for those who keep LiteLLM: roles become model groups,
// role aliases model_group_alias, fallbacks and context-window fallbacks LiteLLM's own (for each
// alias too), a token-count rule to the context-window fallback enable_pre_call_checks, the health
// policy allowed_fails/cooldown_time, and physical aliases model names of their own. It is the
// inverse of `fabric config import` (src/config/litellm/). Secrets stay references (os.environ/NAME).
// What LiteLLM cannot say, or says differently, is named in the header.

import { roleByName, type BackendConfig, type FabricConfig, type RoleConfig, type RoleKind, type RoleRule, type Strategy } from '../config/types.ts';
import { yamlDoc, type RenderContext } from './common.ts';

type Obj = Record<string, unknown>;

const STRATEGY: Record<Strategy, string> = {
  'round-robin': 'simple-shuffle',
  weighted: 'simple-shuffle',
  'least-outstanding': 'least-busy',
  'least-loaded': 'least-busy',
};

function provider(b: BackendConfig, kind: RoleKind): string {
  // LiteLLM reranks only through providers of its own list, openai/ not among them; hosted_vllm/
  // posts vLLM's request to {api_base}/rerank, which llama-server, SGLang and Infinity take too.
  if (kind === 'rerank') return 'hosted_vllm';
  const embeddings = kind === 'embeddings';
  switch (b.engine) {
    case 'vllm': return 'hosted_vllm';
    case 'ollama': return embeddings ? 'ollama' : 'ollama_chat';
    case 'lmstudio': return 'lm_studio';
    default: return 'openai';
  }
}

function deployment(b: BackendConfig, modelName: string, kind: RoleKind, weighted: boolean, maxInputTokens?: number): Obj {
  const embeddings = kind === 'embeddings';
  const p = provider(b, kind);
  const params: Obj = { model: `${p}/${b.model}` };
  if (!(b.engine === 'openai' && b.url === 'https://api.openai.com/v1')) params.api_base = b.url;
  if (b.apiKey !== undefined) params.api_key = `os.environ/${b.apiKey.env}`;
  // LiteLLM's openai provider insists on a key; keyless OpenAI-compatible servers ignore it.
  else if (p === 'openai') params.api_key = 'none';
  // As the importer reads them back: LiteLLM's timeout bounds connecting and each read, so the
  // wait for a response to begin (first_byte); stream_timeout replaces it on a stream's reads
  // (idle), and is left out where it would say the same.
  params.timeout = b.timeouts.firstByteMs / 1000;
  if (kind === 'chat' && b.timeouts.idleMs !== b.timeouts.firstByteMs) params.stream_timeout = b.timeouts.idleMs / 1000;
  params.max_retries = b.maxRetries;
  if (weighted) params.weight = b.weight;
  const entry: Obj = { model_name: modelName, litellm_params: params };
  const info: Obj = {};
  if (embeddings) info.mode = 'embedding';
  else if (kind === 'transcription') info.mode = 'audio_transcription';
  else if (kind === 'rerank') info.mode = 'rerank';
  if (maxInputTokens !== undefined) info.max_input_tokens = maxInputTokens;
  if (Object.keys(info).length > 0) entry.model_info = info;
  return entry;
}

function roleName(cfg: FabricConfig, name: string): string {
  return roleByName(cfg.roles, name)?.name ?? name;
}

/**
 * A role's token-count rule in LiteLLM's terms: with enable_pre_call_checks, a request longer
 * than every deployment's max_input_tokens goes to the group's context_window_fallbacks before
 * any call. So only a rule that sends to the role's context-window fallback can be said.
 */
function preCallLimit(cfg: FabricConfig, r: RoleConfig): number | undefined {
  if (r.rules.length !== 1 || r.contextWindowFallback === undefined) return undefined;
  const rule = r.rules[0]!;
  const over = rule.inputTokensOver;
  if (over === undefined || rule.inputHas !== undefined || rule.keys !== undefined || rule.keyMetadata !== undefined) return undefined;
  if (roleName(cfg, rule.routeTo) !== roleName(cfg, r.contextWindowFallback)) return undefined;
  // Below a backend's window the threshold would have to stand in for it as max_input_tokens,
  // which `fabric config import` reads back as the window: not the same fabric.
  const below = r.backends.some((n) => { const w = cfg.backends.get(n)?.contextWindow; return w === undefined || over < w; });
  return below ? undefined : over;
}

/** A rule's conditions in words, for the notes: "requests with input over 12000 tokens and key metadata tier=free". */
function ruleText(rule: RoleRule): string {
  const when: string[] = [];
  if (rule.inputTokensOver !== undefined) when.push(`input over ${rule.inputTokensOver} tokens`);
  if (rule.inputHas !== undefined) when.push(rule.inputHas.map((x) => x === 'tools' ? 'tools' : `${x} input`).join(' and '));
  if (rule.keys !== undefined) when.push(`the key${rule.keys.length > 1 ? 's' : ''} ${rule.keys.join(', ')}`);
  if (rule.keyMetadata !== undefined) when.push(`key metadata ${Object.entries(rule.keyMetadata).map(([f, v]) => `${f}=${v.join('|')}`).join(', ')}`);
  return `requests with ${when.join(' and ')}`;
}

export function litellmConfig(ctx: RenderContext): string {
  const cfg = ctx.cfg;
  const modelList: Obj[] = [];
  const notes: string[] = [];
  const kindOf = new Map<string, RoleConfig['kind']>();
  const rendered = new Set<BackendConfig>();
  let preCall = false;
  for (const role of cfg.roles.values()) {
    const limit = preCallLimit(cfg, role);
    if (limit !== undefined) preCall = true;
    else for (const rule of role.rules) notes.push(`Not expressible in LiteLLM: ${role.name} sends ${ruleText(rule)} to ${rule.routeTo}.`);
    for (const name of role.backends) {
      const b = cfg.backends.get(name);
      if (b === undefined) continue;
      kindOf.set(b.name, role.kind);
      rendered.add(b);
      // max_input_tokens is the context window (the importer reads it back as such), or the rule's
      // threshold when smaller: longer input than the window fails at the backend and takes the
      // same context-window fallback in the gateway, so LiteLLM just skips a doomed call.
      const max = limit === undefined ? b.contextWindow : Math.min(limit, b.contextWindow ?? limit);
      modelList.push(deployment(b, role.name, role.kind, role.strategy === 'weighted', max));
    }
  }
  for (const b of cfg.backends.values()) {
    for (const alias of b.aliases) {
      rendered.add(b);
      modelList.push(deployment(b, alias, kindOf.get(b.name) ?? 'chat', false, b.contextWindow));
    }
  }
  for (const pt of cfg.patterns) {
    for (const name of pt.backends) {
      const b = cfg.backends.get(name);
      if (b === undefined) continue;
      rendered.add(b);
      const entry = deployment(b, pt.match, pt.kind, false);
      (entry.litellm_params as Obj).model = `${provider(b, pt.kind)}/${pt.match}`;
      modelList.push(entry);
    }
  }

  const groupAlias: Obj = {};
  for (const role of cfg.roles.values()) for (const a of role.aliases) groupAlias[a] = role.name;
  // LiteLLM looks fallbacks up by the name the client asked for, not the group an alias resolves
  // to (BerriAI/litellm#10317): each alias gets its role's entry.
  const byRequestedName = (targets: (r: RoleConfig) => string[]): Obj[] => [...cfg.roles.values()]
    .filter((r) => targets(r).length > 0)
    .flatMap((r) => [r.name, ...r.aliases].map((n) => ({ [n]: targets(r) })));
  const fallbacks = byRequestedName((r) => r.fallbacks.map((f) => roleName(cfg, f)));
  const ctxFallbacks = byRequestedName((r) => r.contextWindowFallback === undefined ? [] : [roleName(cfg, r.contextWindowFallback)]);

  const strategies = new Map<string, number>();
  for (const r of cfg.roles.values()) strategies.set(STRATEGY[r.strategy], (strategies.get(STRATEGY[r.strategy]) ?? 0) + 1);
  const strategy = [...strategies.entries()].sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]))[0]?.[0] ?? 'simple-shuffle';
  if (strategies.size > 1) {
    const others = [...cfg.roles.values()].filter((r) => STRATEGY[r.strategy] !== strategy).map((r) => `${r.name} (${r.strategy})`);
    notes.push(`LiteLLM has one routing strategy for all groups: ${strategy}; these roles asked for another: ${others.join(', ')}.`);
  }
  if (preCall) {
    notes.push('Token-count rules to a role\'s context-window fallback are enable_pre_call_checks: input over each deployment\'s max_input_tokens (the rule\'s threshold, or the backend\'s context window if smaller), as LiteLLM\'s tokenizer counts it, goes to the context-window fallback before any call.');
  }

  // The gateway caps attempts over the whole chain; LiteLLM retries each group, fallbacks included,
  // num_retries times. Enough to reach every backend of the largest role, within that cap.
  const maxAttempts = cfg.gateway.limits.maxAttempts;
  const widest = Math.max(1, ...[...cfg.roles.values()].map((r) => r.backends.length));
  const numRetries = Math.max(0, Math.min(widest - 1, maxAttempts - 1));
  const why = numRetries === widest - 1 ? 'enough to reach each backend of the largest role' : 'max_attempts - 1';
  notes.push(`Retries: LiteLLM retries a group num_retries times (${numRetries}: ${why}), each time on a deployment it picks, maybe the same one, then in each fallback group again; max_retries retries one deployment. The gateway tries each backend of a role once (plus its max_retries) and stops after max_attempts (${maxAttempts}) over the whole chain, which LiteLLM cannot cap.`);
  notes.push('Timeouts: timeout is each backend\'s first_byte, which LiteLLM also applies to connecting and to a whole non-streamed answer (the gateway waits up to total); stream_timeout is its idle, which LiteLLM applies to a stream\'s first chunk too. LiteLLM has no connect timeout of its own, nor a total for a stream.');

  const health = cfg.gateway.health;
  notes.push(`Health: allowed_fails ${health.failureThreshold - 1} and cooldown_time ${health.cooldownMs / 1000}s; LiteLLM counts a deployment's failures in the current minute, the gateway consecutive ones${health.maxCooldownMs > health.cooldownMs ? `, and the gateway doubles a repeated cooldown up to ${health.maxCooldownMs / 1000}s, LiteLLM does not` : ''}.`);
  const ownHealth = [...rendered].filter((b) => b.health !== undefined && (b.health.failureThreshold !== health.failureThreshold || b.health.cooldownMs !== health.cooldownMs)).map((b) => b.name);
  if (ownHealth.length > 0) notes.push(`Not expressible in LiteLLM: the health policies of ${ownHealth.join(', ')}; LiteLLM applies the router's to every deployment.`);

  if ([...cfg.backends.values()].some((b) => b.apiKey !== undefined) || cfg.gateway.masterKey !== undefined) {
    notes.push('Secrets are os.environ/NAME references: set them in LiteLLM\'s environment; no value is written here.');
  }

  // Budgets: LiteLLM's provider budgets cover every deployment of a provider, so a budget
  // renders only when it covers exactly the OpenAI-hosted backends (the seeds' $150 a month),
  // and no other server is rendered as an openai/ deployment, which the budget would stop too.
  const providerBudgets: Obj = {};
  const PERIOD: Record<string, string | undefined> = { day: '1d', week: '7d', month: '1mo', total: undefined };
  const openaiHosted = [...cfg.backends.values()].filter((b) => b.engine === 'openai').map((b) => b.name).sort();
  const openaiCompatible = [...rendered].filter((b) => b.engine !== 'openai' && provider(b, kindOf.get(b.name) ?? 'chat') === 'openai').map((b) => b.name).sort();
  for (const budget of cfg.budgets) {
    const period = PERIOD[budget.period];
    const covers = [...budget.backends].sort();
    const what = `budget ${budget.name} ($${budget.amount} per ${budget.period} over ${covers.join(', ')})`;
    if (period === undefined || covers.length === 0 || covers.join() !== openaiHosted.join() || providerBudgets.openai !== undefined) {
      notes.push(`Not expressible in LiteLLM: ${what}; LiteLLM's provider budgets cover a whole provider per window.`);
    } else if (openaiCompatible.length > 0) {
      notes.push(`Not rendered: ${what}. LiteLLM counts OpenAI-compatible servers written as openai/ deployments (${openaiCompatible.join(', ')}) as provider openai, so its openai budget would stop them too once spent, where the fabric's leaves them serving.`);
    } else {
      providerBudgets.openai = { budget_limit: budget.amount, time_period: period };
      if (budget.fallback !== undefined) {
        notes.push(`Budget ${budget.name}: LiteLLM skips OpenAI's deployments once $${budget.amount} is spent and each group's own fallbacks take over; the fabric's explicit fallback to ${budget.fallback} is not expressible.`);
      }
    }
  }

  // The response cache: LiteLLM's own, as near as it goes.
  const cache = cfg.gateway.cache;
  let litellmSettings: Obj | undefined;
  if (cache !== undefined) {
    litellmSettings = { cache: true, cache_params: { type: cache.store === 'redis' ? 'redis' : 'local', ttl: Math.round(cache.ttlMs / 1000) } };
    if (cache.store === 'redis') notes.push(`Cache: LiteLLM reads its Redis from REDIS_URL (or REDIS_HOST, REDIS_PORT, REDIS_PASSWORD) in its environment: give it gateway.redis's server (${cfg.gateway.redis?.url.env ?? 'REDIS_URL'}).`);
    const differs: string[] = [];
    if (cache.when === 'deterministic') differs.push('LiteLLM keeps sampled answers too (the fabric only embeddings, rerankings and requests at temperature 0 or with a seed), so a "regenerate" gets the kept answer');
    if (cache.scope === 'key') differs.push('LiteLLM shares answers across keys (the fabric keeps each key\'s apart)');
    const own = [...cfg.roles.values()].filter((r) => r.cache !== undefined).map((r) => r.name);
    if (own.length > 0) differs.push(`roles with a cache policy of their own (${own.join(', ')}) take LiteLLM's one`);
    if (differs.length > 0) notes.push(`Cache: ${differs.join('; ')}.`);
  }

  const router: Obj = { routing_strategy: strategy };
  if (Object.keys(providerBudgets).length > 0) router.provider_budget_config = providerBudgets;
  if (Object.keys(groupAlias).length > 0) router.model_group_alias = groupAlias;
  if (fallbacks.length > 0) router.fallbacks = fallbacks;
  if (ctxFallbacks.length > 0) router.context_window_fallbacks = ctxFallbacks;
  if (preCall) router.enable_pre_call_checks = true;
  router.num_retries = numRetries;
  router.allowed_fails = health.failureThreshold - 1;
  router.cooldown_time = health.cooldownMs / 1000;
  const doc: Obj = { model_list: modelList, router_settings: router };
  if (litellmSettings !== undefined) doc.litellm_settings = litellmSettings;
  if (cfg.gateway.masterKey !== undefined) doc.general_settings = { master_key: `os.environ/${cfg.gateway.masterKey.env}` };
  return yamlDoc(ctx, 'LiteLLM proxy config (litellm --config config.yaml) for this fabric.', doc, notes);
}

// The fabric as a LiteLLM proxy config, for those who keep LiteLLM: roles become model groups,
// role aliases model_group_alias, fallbacks and context-window fallbacks LiteLLM's own, and
// physical aliases model names of their own. Secrets stay references (os.environ/NAME).
// What LiteLLM cannot say (token-count rules, per-role strategies) is named in the header.

import { roleByName, type BackendConfig, type FabricConfig, type RoleConfig, type Strategy } from '../config/types.ts';
import { yamlDoc, type RenderContext } from './common.ts';

type Obj = Record<string, unknown>;

const STRATEGY: Record<Strategy, string> = {
  'round-robin': 'simple-shuffle',
  weighted: 'simple-shuffle',
  'least-outstanding': 'least-busy',
  'least-loaded': 'least-busy',
};

function provider(b: BackendConfig, embeddings: boolean): string {
  switch (b.engine) {
    case 'vllm': return 'hosted_vllm';
    case 'ollama': return embeddings ? 'ollama' : 'ollama_chat';
    case 'lmstudio': return 'lm_studio';
    default: return 'openai';
  }
}

function deployment(b: BackendConfig, modelName: string, embeddings: boolean, weighted: boolean): Obj {
  const p = provider(b, embeddings);
  const params: Obj = { model: `${p}/${b.model}` };
  if (!(b.engine === 'openai' && b.url === 'https://api.openai.com/v1')) params.api_base = b.url;
  if (b.apiKey !== undefined) params.api_key = `os.environ/${b.apiKey.env}`;
  // LiteLLM's openai provider insists on a key; keyless OpenAI-compatible servers ignore it.
  else if (p === 'openai') params.api_key = 'none';
  params.timeout = b.timeouts.totalMs / 1000;
  // LiteLLM's stream_timeout is its read timeout on a stream: the longest wait between chunks.
  params.stream_timeout = b.timeouts.idleMs / 1000;
  params.max_retries = b.maxRetries;
  if (weighted) params.weight = b.weight;
  const entry: Obj = { model_name: modelName, litellm_params: params };
  if (embeddings) entry.model_info = { mode: 'embedding' };
  return entry;
}

function roleName(cfg: FabricConfig, name: string): string {
  return roleByName(cfg.roles, name)?.name ?? name;
}

export function litellmConfig(ctx: RenderContext): string {
  const cfg = ctx.cfg;
  const modelList: Obj[] = [];
  const notes: string[] = [];
  const kindOf = new Map<string, RoleConfig['kind']>();
  for (const role of cfg.roles.values()) {
    for (const name of role.backends) {
      const b = cfg.backends.get(name);
      if (b === undefined) continue;
      kindOf.set(b.name, role.kind);
      modelList.push(deployment(b, role.name, role.kind === 'embeddings', role.strategy === 'weighted'));
    }
  }
  for (const b of cfg.backends.values()) {
    for (const alias of b.aliases) modelList.push(deployment(b, alias, kindOf.get(b.name) === 'embeddings', false));
  }
  for (const pt of cfg.patterns) {
    for (const name of pt.backends) {
      const b = cfg.backends.get(name);
      if (b === undefined) continue;
      const entry = deployment(b, pt.match, pt.kind === 'embeddings', false);
      (entry.litellm_params as Obj).model = `${provider(b, pt.kind === 'embeddings')}/${pt.match}`;
      modelList.push(entry);
    }
  }

  const groupAlias: Obj = {};
  for (const role of cfg.roles.values()) for (const a of role.aliases) groupAlias[a] = role.name;
  const fallbacks = [...cfg.roles.values()].filter((r) => r.fallbacks.length > 0).map((r) => ({ [r.name]: r.fallbacks.map((f) => roleName(cfg, f)) }));
  const ctxFallbacks = [...cfg.roles.values()].filter((r) => r.contextWindowFallback !== undefined).map((r) => ({ [r.name]: [roleName(cfg, r.contextWindowFallback!)] }));

  const strategies = new Map<string, number>();
  for (const r of cfg.roles.values()) strategies.set(STRATEGY[r.strategy], (strategies.get(STRATEGY[r.strategy]) ?? 0) + 1);
  const strategy = [...strategies.entries()].sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]))[0]?.[0] ?? 'simple-shuffle';
  if (strategies.size > 1) {
    const others = [...cfg.roles.values()].filter((r) => STRATEGY[r.strategy] !== strategy).map((r) => `${r.name} (${r.strategy})`);
    notes.push(`LiteLLM has one routing strategy for all groups: ${strategy}; these roles asked for another: ${others.join(', ')}.`);
  }
  for (const r of cfg.roles.values()) {
    for (const rule of r.rules) notes.push(`Not expressible in LiteLLM: ${r.name} sends inputs over ${rule.inputTokensOver} tokens to ${rule.routeTo}.`);
  }
  if ([...cfg.backends.values()].some((b) => b.apiKey !== undefined) || cfg.gateway.masterKey !== undefined) {
    notes.push('Secrets are os.environ/NAME references: set them in LiteLLM\'s environment; no value is written here.');
  }

  // Budgets: LiteLLM's provider budgets cover every deployment of a provider, so a budget
  // renders only when it covers exactly the OpenAI-hosted backends (the seeds' $150 a month).
  const providerBudgets: Obj = {};
  const PERIOD: Record<string, string | undefined> = { day: '1d', week: '7d', month: '1mo', total: undefined };
  const openaiHosted = [...cfg.backends.values()].filter((b) => b.engine === 'openai').map((b) => b.name).sort();
  for (const budget of cfg.budgets) {
    const period = PERIOD[budget.period];
    const covers = [...budget.backends].sort();
    if (period !== undefined && covers.length > 0 && covers.join() === openaiHosted.join() && providerBudgets.openai === undefined) {
      providerBudgets.openai = { budget_limit: budget.amount, time_period: period };
      if (budget.fallback !== undefined) {
        notes.push(`Budget ${budget.name}: LiteLLM skips OpenAI's deployments once $${budget.amount} is spent and each group's own fallbacks take over; the fabric's explicit fallback to ${budget.fallback} is not expressible.`);
      }
    } else {
      notes.push(`Not expressible in LiteLLM: budget ${budget.name} ($${budget.amount} per ${budget.period} over ${covers.join(', ')}); LiteLLM's provider budgets cover a whole provider per window.`);
    }
  }

  const router: Obj = { routing_strategy: strategy };
  if (Object.keys(providerBudgets).length > 0) router.provider_budget_config = providerBudgets;
  if (Object.keys(groupAlias).length > 0) router.model_group_alias = groupAlias;
  if (fallbacks.length > 0) router.fallbacks = fallbacks;
  if (ctxFallbacks.length > 0) router.context_window_fallbacks = ctxFallbacks;
  router.num_retries = Math.max(0, cfg.gateway.limits.maxAttempts - 1);
  const doc: Obj = { model_list: modelList, router_settings: router };
  if (cfg.gateway.masterKey !== undefined) doc.general_settings = { master_key: `os.environ/${cfg.gateway.masterKey.env}` };
  return yamlDoc(ctx, 'LiteLLM proxy config (litellm --config config.yaml) for this fabric.', doc, notes);
}

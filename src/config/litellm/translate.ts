// A LiteLLM proxy config → the fabric's native document. The one translation both
// `fabric serve` (validating it in memory) and `fabric config import` (writing it out) use,
// so serving either file routes the same way. Issues are reported at LiteLLM key paths.
//
//   model_list entry          → backend (identical deployments share one)
//   model_name                → role (or pattern route, with a *)
//   model_group_alias         → role aliases
//   fallbacks, default_…      → role fallbacks, unrolled as LiteLLM follows them
//   context_window_fallbacks  → context_window_fallback (+ a rule with enable_pre_call_checks)
//   routing_strategy          → role strategy; order → a lower-priority role tried first
//   input/output_cost_per_token → prices; provider_budget_config → budgets
//   database_url, redis_url   → gateway.store, gateway.redis (state.ts)
//   cache, cache_params       → gateway.cache (cache.ts)

import type { KeyPath } from '../issues.ts';
import type { RoleKind } from '../types.ts';
import { describe, isObj, slug, type NativeDoc, type NativePattern, type NativeRole, type Obj, type Translation } from './context.ts';
import { readDeployment, type Deployment } from './deployments.ts';
import { readFallbacks } from './fallbacks.ts';
import { TOP_KEYS } from './sections.ts';
import {
  pick, readCooldown, readDefaults, readEnvironmentVariables, readGateway, readLogging, reportUnmapped, section,
} from './settings.ts';
import { readCache } from './cache.ts';
import { readAccounting, readBudgets, readProxyBudget, readRedis, readStore, type Served } from './state.ts';
import { balance, strategyFor, strategyNote } from './strategy.ts';

export interface TranslateResult {
  doc: NativeDoc;
  t: Translation;
  /** model_list index → the backend it became (undefined: left out). */
  deploymentBackends: (string | undefined)[];
}

export function translateLiteLLM(raw: unknown, t: Translation): TranslateResult {
  const doc: NativeDoc = { version: 1, gateway: {}, backends: {}, roles: {} };
  const deploymentBackends: (string | undefined)[] = [];
  if (!isObj(raw)) {
    t.r.error([], `a LiteLLM config must be a mapping with model_list, got ${describe(raw)}`);
    return { doc, t, deploymentBackends };
  }
  for (const k of Object.keys(raw)) {
    if (!(TOP_KEYS as readonly string[]).includes(k)) {
      t.r.warn([k], k === 'include' ? 'not supported yet: included files are not read; their models are not served' : 'not a LiteLLM config key; ignored', true);
    }
  }
  // Issues the fabric schema finds in the whole of a section belong to the LiteLLM section it came from.
  t.from(['backends'], ['model_list']);
  t.from(['roles'], ['model_list']);
  t.from(['gateway'], ['general_settings']);
  const ls = section(t, raw, 'litellm_settings');
  const rs = section(t, raw, 'router_settings');
  const gs = section(t, raw, 'general_settings');
  const envVars = section(t, raw, 'environment_variables');
  reportUnmapped(t, 'litellm_settings', ls);
  reportUnmapped(t, 'router_settings', rs);
  reportUnmapped(t, 'general_settings', gs);

  readEnvironmentVariables(t, envVars);
  const defaults = readDefaults(t, ls, rs);
  const strategy = strategyFor(t, pick(ls, rs, 'routing_strategy'));
  readLogging(t, ls);
  readCooldown(t, ls, rs, doc);

  // Deployments, grouped by model_name in the order the file lists them.
  const list = raw.model_list;
  if (list !== undefined && list !== null && !Array.isArray(list)) t.r.error(['model_list'], `must be a list of deployments, got ${describe(list)}`);
  const groups = new Map<string, Deployment[]>();
  const entries = Array.isArray(list) ? list : [];
  entries.forEach((entry, i) => {
    const d = readDeployment(t, entry, i, defaults);
    deploymentBackends.push(undefined);
    if (d === undefined) return;
    const g = groups.get(d.group);
    if (g === undefined) groups.set(d.group, [d]);
    else if (g[0]!.kind !== d.kind) t.r.warn(['model_list', i, 'model_info', 'mode'], `${d.group} is a ${g[0]!.kind} model_name (model_list[${g[0]!.index}]); a ${d.kind} deployment cannot share it: left out`);
    else g.push(d);
  });
  if (entries.length === 0) t.r.error(['model_list'], 'is required: at least one deployment');
  else if (groups.size === 0) t.r.error(['model_list'], 'has no deployment the gateway can serve; the warnings on each say why', true);

  const names = new BackendNames(t, doc);
  const kinds = new Map<string, RoleKind>();
  const tiersOf = new Map<string, string[]>();
  const patterns: NativePattern[] = [];

  for (const [group, members] of groups) {
    const kind = members[0]!.kind;
    if (members[0]!.wildcard) {
      patterns.push(pattern(t, group, members, strategy.name, names, deploymentBackends, patterns.length));
      continue;
    }
    kinds.set(group, kind);
    // order: the lowest tier is the role; each higher tier a role tried right after it.
    const tiers = [...new Set(members.map((m) => m.order))].sort((a, b) => a - b);
    const roleNames: string[] = [];
    tiers.forEach((order, ti) => {
      const tierMembers = members.filter((m) => m.order === order);
      const roleName = ti === 0 ? group : `${group}@order-${Number.isFinite(order) ? order : 'none'}`;
      roleNames.push(roleName);
      const bal = balance(strategy.name, tierMembers);
      const backends: string[] = [];
      tierMembers.forEach((m, mi) => {
        if (bal.weights[mi] !== undefined) m.backend.weight = bal.weights[mi];
        const name = names.add(m);
        deploymentBackends[m.index] = name;
        if (backends.includes(name)) t.note(['backends', name], `model_list[${m.index}] repeats this deployment in ${group}`);
        else backends.push(name);
        if (bal.source !== undefined && bal.source !== 'weight') t.note(['backends', name, 'weight'], `from ${bal.source}: LiteLLM's ${strategy.name} weighs deployments by it when none has a weight`);
      });
      const role: NativeRole = { kind, backends };
      if (backends.length > 1) {
        role.strategy = bal.strategy;
        t.note(['roles', roleName, 'strategy'], strategyNote(strategy.name, bal.strategy));
        if (strategy.path !== undefined) t.from(['roles', roleName, 'strategy'], strategy.path);
      }
      const dims = tierMembers.map((m) => m.dimensions);
      if (kind === 'embeddings' && dims[0] !== undefined && dims.every((x) => x === dims[0])) role.dimensions = dims[0];
      doc.roles[roleName] = role;
      kinds.set(roleName, kind);
      t.from(['roles', roleName], ['model_list', tierMembers[0]!.index, 'model_name']);
      if (ti > 0) t.note(['roles', roleName], `the order: ${order} deployments of ${group}: tried after the lower orders fail, before ${group}'s fallbacks`);
    });
    tiersOf.set(group, roleNames);
  }

  readAliases(t, rs, doc, kinds);
  const aliasTarget = new Map<string, string>();
  for (const [name, role] of Object.entries(doc.roles)) for (const a of role.aliases ?? []) aliasTarget.set(a, name);
  readFallbacks(t, ls, rs, doc, kinds, tiersOf, aliasTarget, patterns);
  if (patterns.length > 0) doc.patterns = patterns;
  readGateway(t, gs, rs, doc);
  // State: the database, Redis, the response cache, prices and budgets, after the routing they describe.
  readStore(t, gs, doc);
  readRedis(t, rs, doc);
  readCache(t, ls, rs, doc);
  readAccounting(t, gs, doc);
  const prices = names.prices();
  if (Object.keys(prices).length > 0) {
    doc.prices = prices;
    t.from(['prices'], ['model_list']);
  }
  const served: Served[] = [];
  for (const members of groups.values()) {
    for (const d of members) {
      const backend = deploymentBackends[d.index];
      if (backend !== undefined) served.push({ d, backend });
    }
  }
  readBudgets(t, rs, doc, served);
  readProxyBudget(t, ls, gs, doc);
  return { doc, t, deploymentBackends };
}

/** Backend names: model_info.id, else the model_name; identical deployments share one backend. */
class BackendNames {
  readonly #t: Translation;
  readonly #doc: NativeDoc;
  readonly #byShape = new Map<string, string>();
  readonly #prices: NonNullable<NativeDoc['prices']> = {};
  constructor(t: Translation, doc: NativeDoc) {
    this.#t = t;
    this.#doc = doc;
  }
  /** Prices by backend name, in the order the backends were made. */
  prices(): NonNullable<NativeDoc['prices']> {
    return this.#prices;
  }
  add(d: Deployment): string {
    // Deployments share a backend only when they cost the same: each keeps its own price.
    const shape = JSON.stringify([d.backend, d.price === undefined ? null : [d.price.input, d.price.output, d.price.audioMinute]]);
    const shared = this.#byShape.get(shape);
    if (shared !== undefined) {
      this.#t.note(['backends', shared], `also model_list[${d.index}] (${d.group}): the same deployment, one backend`);
      this.#notes(shared, d);
      return shared;
    }
    const base = slug(d.id ?? d.group);
    let name = base;
    for (let n = 2; name in this.#doc.backends; n++) name = `${base}-${n}`;
    this.#byShape.set(shape, name);
    this.#doc.backends[name] = d.backend;
    const t = this.#t;
    if (d.price !== undefined) {
      this.#prices[name] = { input: d.price.input, output: d.price.output, ...(d.price.audioMinute === undefined ? {} : { audio_minute: d.price.audioMinute }) };
      t.from(['prices', name], d.price.path);
      t.note(['prices', name], `model_list[${d.index}] (${d.group}): ${d.price.note}`);
    }
    t.from(['backends', name], ['model_list', d.index]);
    for (const [field, path] of d.origins) t.from(['backends', name, field], path);
    t.note(['backends', name], `model_list[${d.index}]: ${d.group}`);
    this.#notes(name, d);
    return name;
  }
  #notes(name: string, d: Deployment): void {
    // A note on a field the backend does not have (no api_key sent) sits on the backend itself.
    for (const [field, lines] of d.notes) {
      for (const l of lines) this.#t.note(field === '' || !(field in d.backend) ? ['backends', name] : ['backends', name, field], l);
    }
  }
}

function pattern(
  t: Translation, group: string, members: Deployment[], strategy: string, names: BackendNames, deploymentBackends: (string | undefined)[], index: number,
): NativePattern {
  const backends: string[] = [];
  const bal = balance(strategy, members);
  members.forEach((m, i) => {
    const modelPath: KeyPath = ['model_list', m.index, 'litellm_params', 'model'];
    if (!m.providerModel.includes('*')) {
      t.r.warn(modelPath, `sends every ${group} request to ${m.providerModel}: not supported yet; the requested name is passed to the backend unchanged`);
    } else if (m.providerModel !== group) {
      t.r.warn(modelPath, `rewrites the requested name (${group} → ${m.providerModel}): not supported yet; the requested name is passed to the backend unchanged`);
    }
    if (m.order !== Infinity) t.r.warn(['model_list', m.index, 'litellm_params', 'order'], 'not supported yet for wildcard routes: their deployments share load by the routing strategy');
    if (bal.weights[i] !== undefined) m.backend.weight = bal.weights[i];
    const name = names.add(m);
    deploymentBackends[m.index] = name;
    if (!backends.includes(name)) backends.push(name);
  });
  t.from(['patterns', index], ['model_list', members[0]!.index, 'model_name']);
  t.note(['patterns', index], `model_name ${group}: the requested name goes to the backend unchanged`);
  const p: NativePattern = { match: group, kind: members[0]!.kind, backends };
  if (backends.length > 1) p.strategy = bal.strategy;
  return p;
}

function readAliases(t: Translation, rs: Obj, doc: NativeDoc, kinds: Map<string, RoleKind>): void {
  const v = rs.model_group_alias;
  if (v === undefined || v === null) return;
  if (!isObj(v)) {
    t.r.error(['router_settings', 'model_group_alias'], `must be a mapping of alias: model_name, got ${describe(v)}`);
    return;
  }
  for (const [alias, target] of Object.entries(v)) {
    const p: KeyPath = ['router_settings', 'model_group_alias', alias];
    const group = typeof target === 'string' ? target : isObj(target) && typeof target.model === 'string' ? target.model : undefined;
    if (group === undefined) {
      t.r.error(p, `must be a model_name or {model, hidden}, got ${describe(target)}`);
      continue;
    }
    if (isObj(target) && target.hidden === true) t.r.warn([...p, 'hidden'], 'not supported yet: the alias is listed in /v1/models like any other name', true);
    const role = doc.roles[group];
    if (role === undefined || !kinds.has(group)) {
      t.r.warn(p, `names no model_name: "${group}"; ignored`);
      continue;
    }
    if (alias in doc.roles) {
      t.r.warn(p, `"${alias}" is also a model_name: the model_name's own deployments serve it; the alias is ignored`, true);
      continue;
    }
    (role.aliases ??= []).push(alias);
    t.from(['roles', group, 'aliases', role.aliases.length - 1], p);
  }
}


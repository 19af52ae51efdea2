// LiteLLM fallbacks: a list of {model_name: [fallback model_names]}, a "*" entry (and
// default_fallbacks) for every model_name without its own. LiteLLM follows them
// recursively — a fallback's own fallbacks are tried before the next one in the list — up
// to max_fallbacks. The fabric tries a role's fallbacks as one flat list, so the recursion
// is unrolled here, in the order LiteLLM would try them.

import type { KeyPath } from '../issues.ts';
import { DEFAULT_LIMITS, type RoleKind } from '../types.ts';
import { describe, isObj, nonNegInt, type NativeDoc, type NativePattern, type Obj, type Translation } from './context.ts';
import { LITELLM, pick } from './settings.ts';

export interface Edge {
  target: string;
  /** Where the LiteLLM file names this fallback. */
  path: KeyPath;
  /** An order tier of the same model_name: not one of LiteLLM's fallbacks, so not counted against max_fallbacks. */
  tier?: boolean;
}

export interface FallbackTable {
  byGroup: Map<string, { edges: Edge[]; path: KeyPath }>;
  /** The "*" entry: for model_names without their own. */
  generic: Edge[] | undefined;
}

function emptyTable(): FallbackTable {
  return { byGroup: new Map(), generic: undefined };
}

function targets(t: Translation, path: KeyPath, v: unknown): Edge[] {
  const list = typeof v === 'string' ? [v] : Array.isArray(v) ? v : undefined;
  if (list === undefined) {
    t.r.error(path, `must be a list of model_names, got ${describe(v)}`);
    return [];
  }
  const out: Edge[] = [];
  list.forEach((x, k) => {
    const p = typeof v === 'string' ? path : [...path, k];
    if (typeof x === 'string' && x.trim() !== '') {
      out.push({ target: x, path: p });
    } else if (isObj(x) && typeof x.model === 'string') {
      if (Object.keys(x).length > 1) t.r.warn(p, 'not supported yet: per-fallback request parameters; only its model is used');
      out.push({ target: x.model, path: p });
    } else {
      t.r.error(p, `must be a model_name, got ${describe(x)}`);
    }
  });
  return out;
}

/** Reads fallbacks or context_window_fallbacks, keeping LiteLLM's lookup: first exact entry wins, last "*" wins. */
function readFallbackTable(t: Translation, path: KeyPath, v: unknown): FallbackTable {
  const out = emptyTable();
  if (v === undefined || v === null) return out;
  if (!Array.isArray(v)) {
    t.r.error(path, `must be a list of {model_name: [fallback model_names]}, got ${describe(v)}`);
    return out;
  }
  v.forEach((item, i) => {
    const ip = [...path, i];
    if (!isObj(item) || Object.keys(item).length !== 1) {
      t.r.error(ip, 'must be a mapping with exactly one entry, model_name: [fallback model_names]');
      return;
    }
    const [group, list] = Object.entries(item)[0]!;
    const edges = targets(t, [...ip, group], list);
    if (group === '*') out.generic = edges;
    else if (out.byGroup.has(group)) t.r.warn([...ip, group], `a second entry for ${group}: LiteLLM uses the first one; ignored`, true);
    else out.byGroup.set(group, { edges, path: [...ip, group] });
  });
  return out;
}

/** default_fallbacks: a plain list, appended by LiteLLM as the last "*" entry (so it wins over one). */
function addDefaults(t: Translation, table: FallbackTable, path: KeyPath, v: unknown): void {
  if (v === undefined || v === null) return;
  table.generic = targets(t, path, v);
}

/**
 * The order in which LiteLLM tries fallbacks of `start`: depth first, each group once,
 * at most `limit` fallbacks (order tiers are free). `edgesOf` gives a group's valid edges.
 */
function unroll(start: string, edgesOf: (group: string) => readonly Edge[], limit: number): { chain: Edge[]; truncated: boolean } {
  const chain: Edge[] = [];
  const seen = new Set([start]);
  let counted = 0;
  let truncated = false;
  const visit = (group: string): void => {
    for (const e of edgesOf(group)) {
      if (seen.has(e.target)) continue;
      if (e.tier !== true && counted >= limit) {
        truncated = true;
        return;
      }
      seen.add(e.target);
      chain.push(e);
      if (e.tier !== true) counted++;
      visit(e.target);
    }
  };
  visit(start);
  return { chain, truncated };
}

export function readFallbacks(
  t: Translation, ls: Obj, rs: Obj, doc: NativeDoc, kinds: Map<string, RoleKind>, tiersOf: Map<string, string[]>,
  aliasTarget: Map<string, string>, patterns: NativePattern[],
): void {
  const fbSrc = pick(ls, rs, 'fallbacks');
  const fb = fbSrc === undefined ? emptyTable() : readFallbackTable(t, fbSrc.path, fbSrc.v);
  const dfSrc = pick(ls, rs, 'default_fallbacks');
  if (dfSrc !== undefined) addDefaults(t, fb, dfSrc.path, dfSrc.v);
  const cwSrc = pick(ls, rs, 'context_window_fallbacks');
  const cw = cwSrc === undefined ? emptyTable() : readFallbackTable(t, cwSrc.path, cwSrc.v);
  const mfSrc = pick(ls, rs, 'max_fallbacks');
  const maxFallbacks = mfSrc === undefined ? LITELLM.maxFallbacks : nonNegInt(t, mfSrc.path, mfSrc.v) ?? LITELLM.maxFallbacks;

  const isPattern = (name: string): boolean => patterns.some((p) => p.match === name);
  for (const table of [fb, cw]) {
    for (const [group, { path }] of table.byGroup) {
      if (kinds.has(group) || aliasTarget.has(group)) continue;
      t.r.warn(path, isPattern(group) ? 'not supported yet: fallbacks for wildcard routes; ignored' : `names no model_name: "${group}"; ignored`, true);
    }
  }
  /** A fallback target as a role name, or undefined (reported once, at its edge). */
  const reported = new Set<string>();
  const resolve = (from: string, e: Edge, generic: boolean): string | undefined => {
    const target = aliasTarget.get(e.target) ?? e.target;
    const why = !kinds.has(target)
      ? (isPattern(target) ? 'not supported yet: a fallback to a wildcard route' : `names no model_name: "${e.target}"`)
      : kinds.get(target) !== kinds.get(from) ? `"${e.target}" is ${kinds.get(target)}, ${from} is ${kinds.get(from)}` : undefined;
    if (why === undefined) return target;
    if (generic && kinds.has(target)) t.note(['roles', from], `default fallback ${e.target} left out: ${why}`);
    else if (!reported.has(JSON.stringify(e.path))) {
      reported.add(JSON.stringify(e.path));
      t.r.warn(e.path, `${why}; this fallback is left out`);
    }
    return undefined;
  };
  const edgesOf = (table: FallbackTable) => (group: string): Edge[] => {
    const own = table.byGroup.get(group);
    const generic = own === undefined;
    const raw = own?.edges ?? table.generic ?? [];
    const out: Edge[] = [];
    for (const e of raw) {
      const target = resolve(group, e, generic);
      if (target !== undefined && target !== group) out.push({ ...e, target });
    }
    return out;
  };
  const regular = edgesOf(fb);
  // A model_name's higher order tiers come first, then its fallbacks; tier roles have none of their own.
  const withTiers = (group: string): Edge[] => {
    if (!tiersOf.has(group)) return [];
    const tiers = tiersOf.get(group)!.slice(1).map((name): Edge => ({ target: name, path: ['model_list'], tier: true }));
    return [...tiers, ...regular(group)];
  };

  for (const [group, tierNames] of tiersOf) {
    const role = doc.roles[group]!;
    const { chain, truncated } = unroll(group, withTiers, maxFallbacks);
    if (chain.length > 0) {
      role.fallbacks = chain.map((e) => e.target);
      chain.forEach((e, i) => t.from(['roles', group, 'fallbacks', i], e.path));
      const own = fb.byGroup.get(group);
      if (chain.some((e) => e.tier !== true)) {
        t.note(['roles', group, 'fallbacks'], `${own === undefined ? 'the default fallbacks (default_fallbacks or a "*" entry); ' : ''}LiteLLM tries each fallback's own fallbacks before the next one: unrolled here in that order`);
      }
    }
    if (truncated) t.note(['roles', group, 'fallbacks'], `cut at max_fallbacks (${maxFallbacks}), as LiteLLM stops there`);

    const cwEdges = edgesOf(cw)(group);
    if (cwEdges.length > 0) {
      const first = cwEdges[0]!;
      for (const name of tierNames) {
        doc.roles[name]!.context_window_fallback = first.target;
        t.from(['roles', name, 'context_window_fallback'], first.path);
      }
      const reach = new Set([first.target, ...unroll(first.target, withTiers, maxFallbacks).chain.map((e) => e.target)]);
      for (const e of cwEdges.slice(1)) {
        if (!reach.has(e.target)) t.r.warn(e.path, `not supported yet: only the first context-window fallback (${first.target}) is used, then its own fallbacks; ${e.target} is not reached`);
      }
      preCallRule(t, rs, doc, group, first.target);
    }
  }
  const limits = attempts(t, doc);
  if (limits !== undefined) doc.gateway.limits = limits;
}

/**
 * With enable_pre_call_checks LiteLLM skips a deployment whose max_input_tokens the
 * request exceeds, so an over-long request goes straight to the context-window fallback:
 * the fabric's token-count rule does the same.
 */
function preCallRule(t: Translation, rs: Obj, doc: NativeDoc, group: string, target: string): void {
  if (rs.enable_pre_call_checks !== true) return;
  const role = doc.roles[group]!;
  const limits = role.backends.map((b) => doc.backends[b]!.context_window);
  if (limits.some((x) => x === undefined)) return;
  const over = Math.max(...(limits as number[]));
  role.rules = [{ if_input_tokens_over: over, route_to: target }];
  t.from(['roles', group, 'rules'], ['router_settings', 'enable_pre_call_checks']);
  t.note(['roles', group, 'rules'], `enable_pre_call_checks with max_input_tokens ${over}: longer input goes straight to ${target}`);
}

/** Enough attempts for the longest chain LiteLLM would walk: every backend of every role in it, with its retries. */
function attempts(t: Translation, doc: NativeDoc): { max_attempts: number } | undefined {
  const cost = (role: string): number => doc.roles[role]!.backends.reduce((s, b) => s + (doc.backends[b]!.max_retries ?? 1) + 1, 0);
  let need = 0;
  for (const [name, role] of Object.entries(doc.roles)) {
    const main = [name, ...(role.fallbacks ?? [])].reduce((s, r) => s + cost(r), 0);
    const cf = role.context_window_fallback;
    const ctx = cf === undefined ? 0 : [cf, ...(doc.roles[cf]!.fallbacks ?? [])].reduce((s, r) => s + cost(r), 0);
    need = Math.max(need, main + ctx);
  }
  if (need <= DEFAULT_LIMITS.maxAttempts) return undefined;
  const n = Math.min(need, 50);
  t.note(['gateway', 'limits', 'max_attempts'], `room for every retry and fallback LiteLLM would try on the longest chain (${need})${need > 50 ? ', capped at 50' : ''}`);
  return { max_attempts: n };
}

// Model name → route, built once per config load so a request costs one Map lookup.
// Order of precedence: role, role alias, backend alias (one machine, no fallback), glob
// pattern (the name passes through unchanged), physical model id.

import type { FabricConfig, RoleKind, RoleRule } from '../config/types.ts';
import type { RouteRule } from './rules.ts';
import { createBalancer, type Balancer, type Member } from './balancer.ts';

export type RouteVia = 'role' | 'alias' | 'backend-alias' | 'pattern' | 'model';

export interface Route<M extends Member> {
  /** The role name (or the backend alias / physical id that stands for one). */
  readonly name: string;
  readonly kind: RoleKind;
  readonly balancer: Balancer<M>;
  readonly members: readonly M[];
  /** Forward the client's model name instead of each backend's configured model (patterns). */
  readonly passthrough: boolean;
  fallbacks: Route<M>[];
  /** This route, then its fallbacks: a request's plan when no rule applies (built once, never changed). */
  chain: readonly Route<M>[];
  contextFallback: Route<M> | undefined;
  /** In the order written: the first whose conditions hold picks the plan (src/routing/rules.ts). */
  rules: RouteRule<Route<M>>[];
}

export interface Resolved<M extends Member> {
  route: Route<M>;
  via: RouteVia;
}

export interface ListedModel {
  id: string;
  via: RouteVia;
  kind: RoleKind;
  /** The role it stands for (aliases) or the backends behind it. */
  target: string;
  backends: string[];
}

interface PatternEntry<M extends Member> { re: RegExp; route: Route<M> }

function globToRegExp(glob: string): RegExp {
  const escaped = glob.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*').replace(/\?/g, '.');
  return new RegExp(`^${escaped}$`);
}

export class RouteTable<M extends Member> {
  readonly #exact = new Map<string, Resolved<M>>();
  readonly #patterns: PatternEntry<M>[] = [];
  readonly #listed: ListedModel[] = [];

  constructor(cfg: FabricConfig, members: Map<string, M>) {
    const byName = (names: string[]): M[] => names.map((n) => members.get(n)!).filter((m) => m !== undefined);
    const roleRoutes = new Map<string, Route<M>>();
    for (const role of cfg.roles.values()) {
      const ms = byName(role.backends);
      if (ms.length === 0) continue;
      const route: Route<M> = {
        name: role.name, kind: role.kind, balancer: createBalancer(role.strategy, ms, { affinity: role.affinity === true && role.kind === 'chat' }), members: ms, passthrough: false,
        fallbacks: [], chain: [], contextFallback: undefined, rules: [],
      };
      route.chain = [route];
      roleRoutes.set(role.name, route);
      this.#exact.set(role.name, { route, via: 'role' });
      this.#listed.push({ id: role.name, via: 'role', kind: role.kind, target: role.name, backends: role.backends });
    }
    for (const role of cfg.roles.values()) {
      const route = roleRoutes.get(role.name);
      if (route === undefined) continue;
      for (const a of role.aliases) {
        this.#exact.set(a, { route, via: 'alias' });
        this.#listed.push({ id: a, via: 'alias', kind: role.kind, target: role.name, backends: role.backends });
      }
    }
    const lookupRole = (name: string): Route<M> | undefined => {
      const r = this.#exact.get(name);
      return r !== undefined && (r.via === 'role' || r.via === 'alias') ? r.route : undefined;
    };
    for (const role of cfg.roles.values()) {
      const route = roleRoutes.get(role.name);
      if (route === undefined) continue;
      route.fallbacks = role.fallbacks.map(lookupRole).filter((r): r is Route<M> => r !== undefined && r !== route);
      route.chain = [route, ...route.fallbacks];
      route.contextFallback = role.contextWindowFallback === undefined ? undefined : lookupRole(role.contextWindowFallback);
      route.rules = role.rules
        .map((rule: RoleRule) => ({
          inputTokensOver: rule.inputTokensOver,
          inputHas: rule.inputHas,
          keys: rule.keys === undefined ? undefined : new Set(rule.keys),
          keyMetadata: rule.keyMetadata === undefined ? undefined : Object.entries(rule.keyMetadata),
          target: lookupRole(rule.routeTo)!,
        }))
        // A rule with no condition would take every request: the config check refuses one, and none is built.
        .filter((r) => r.target !== undefined && (r.inputTokensOver !== undefined || r.inputHas !== undefined || r.keys !== undefined || r.keyMetadata !== undefined));
    }
    const kindOf = (backend: string): RoleKind => {
      for (const role of cfg.roles.values()) if (role.backends.includes(backend)) return role.kind;
      for (const p of cfg.patterns) if (p.backends.includes(backend)) return p.kind;
      return 'chat';
    };
    const single = (name: string, ms: M[], kind: RoleKind, passthrough = false, balancer = createBalancer('round-robin', ms)): Route<M> => {
      const r: Route<M> = { name, kind, balancer, members: ms, passthrough, fallbacks: [], chain: [], contextFallback: undefined, rules: [] };
      r.chain = [r];
      return r;
    };
    for (const b of cfg.backends.values()) {
      const m = members.get(b.name);
      if (m === undefined) continue;
      for (const a of b.aliases) {
        if (this.#exact.has(a)) continue;
        this.#exact.set(a, { route: single(a, [m], kindOf(b.name)), via: 'backend-alias' });
        this.#listed.push({ id: a, via: 'backend-alias', kind: kindOf(b.name), target: b.name, backends: [b.name] });
      }
    }
    for (const p of cfg.patterns) {
      const ms = byName(p.backends);
      if (ms.length === 0) continue;
      this.#patterns.push({
        re: globToRegExp(p.match),
        route: single(p.match, ms, p.kind, true, createBalancer(p.strategy, ms)),
      });
    }
    const physical = new Map<string, string[]>();
    for (const b of cfg.backends.values()) {
      if (!members.has(b.name)) continue;
      const list = physical.get(b.model) ?? [];
      list.push(b.name);
      physical.set(b.model, list);
    }
    for (const [model, names] of physical) {
      if (this.#exact.has(model)) continue;
      const kind = kindOf(names[0]!);
      // Physical ids come after patterns in precedence, so they are looked up separately.
      this.#physical.set(model, { route: single(model, byName(names), kind), via: 'model' });
      this.#listed.push({ id: model, via: 'model', kind, target: names.join(','), backends: names });
    }
  }

  readonly #physical = new Map<string, Resolved<M>>();

  resolve(model: string): Resolved<M> | undefined {
    const exact = this.#exact.get(model);
    if (exact !== undefined) return exact;
    for (const p of this.#patterns) if (p.re.test(model)) return { route: p.route, via: 'pattern' };
    return this.#physical.get(model);
  }

  /** Everything a client can name, for /v1/models. */
  listed(): readonly ListedModel[] {
    return this.#listed;
  }

  /** Every name a client could send, for "did you mean" hints. */
  names(): IterableIterator<string> {
    return [...this.#exact.keys(), ...this.#physical.keys()][Symbol.iterator]();
  }
}

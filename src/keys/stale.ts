// A key names the roles it may use and those it has limits on by name, and the config can rename
// or remove them under it: a name that no model resolves to any more does nothing, silently — a
// key restricted to it is refused everything, and a limit under it never applies. This finds such
// names so that start, reload and `fabric keys list|show` can say so.

import type { FabricConfig } from '../config/types.ts';
import type { Member } from '../routing/balancer.ts';
import { RouteTable } from '../routing/table.ts';
import type { KeyRecord } from '../store/types.ts';
import { keyStatus } from './admin.ts';

export interface StaleRefs {
  /** Entries of the key's `roles` that name no model: the key can no longer use them. */
  roles: string[];
  /** Entries of its `role_limits` that name no model: those limits no longer apply. */
  roleLimits: string[];
}

/** What a key names that `resolves` does not know (undefined: nothing). */
export function staleRefs(k: KeyRecord, resolves: (name: string) => boolean): StaleRefs | undefined {
  const roles = (k.roles ?? []).filter((n) => !resolves(n));
  const roleLimits = Object.keys(k.roleLimits).filter((n) => !resolves(n));
  return roles.length === 0 && roleLimits.length === 0 ? undefined : { roles, roleLimits };
}

/** The names a config serves, as the gateway resolves them (roles, aliases, backend aliases, patterns, model ids), for callers without a gateway (the CLI). */
export function configResolves(config: FabricConfig): (name: string) => boolean {
  // Stand-ins for the backends: the table only needs their names to build the routes.
  const members = new Map<string, Member>([...config.backends.keys()].map((name) => [name, { name, weight: 1, outstanding: 0 }]));
  const table = new RouteTable(config, members);
  return (name) => table.resolve(name) !== undefined;
}

const list = (names: readonly string[]): string => names.map((n) => JSON.stringify(n)).join(', ');

/** One line for the log: the key by name and id (never its secret), what it names in vain, and what that means. */
export function staleKeyWarning(k: KeyRecord, s: StaleRefs): string {
  const parts: string[] = [];
  if (s.roles.length > 0) {
    const none = s.roles.length === k.roles!.length;
    parts.push(`its roles ${list(s.roles)} name no role, alias or model of the config, so the key can no longer use ${s.roles.length === 1 ? 'it' : 'them'}` +
      (none ? ' (it is refused every model: 403, and /v1/models lists nothing for it)' : ''));
  }
  if (s.roleLimits.length > 0) {
    parts.push(`its role_limits on ${list(s.roleLimits)} name no role, alias or model of the config, so ${s.roleLimits.length === 1 ? 'that limit no longer applies' : 'those limits no longer apply'}`);
  }
  const names = [...new Set([...s.roles, ...s.roleLimits])];
  return `keys: key "${k.name}" (${k.id}): ${parts.join('; ')}. If a role was renamed, add the old name to its aliases (${list(names)}), or change the key (PATCH /admin/keys/${k.id} with roles / role_limits)`;
}

/** One line for each key in use that names something the config does not serve. */
export function staleKeyWarnings(keys: Iterable<KeyRecord>, resolves: (name: string) => boolean, now: number = Date.now()): string[] {
  const out: string[] = [];
  for (const k of keys) {
    if (keyStatus(k, now) !== 'active') continue;
    const s = staleRefs(k, resolves);
    if (s !== undefined) out.push(staleKeyWarning(k, s));
  }
  return out;
}

/** The `stale` field of a key's view (admin API, `fabric keys --json`): what it names in vain, or null. */
export function staleField(k: KeyRecord, resolves: (name: string) => boolean): { roles: string[]; role_limits: string[] } | null {
  const s = staleRefs(k, resolves);
  return s === undefined ? null : { roles: s.roles, role_limits: s.roleLimits };
}

/** The same, as a note for people (`fabric keys list|show`). */
export function staleNote(stale: { roles: string[]; role_limits: string[] }): string {
  const parts: string[] = [];
  if (stale.roles.length > 0) parts.push(`roles ${list(stale.roles)} (the key can no longer use ${stale.roles.length === 1 ? 'it' : 'them'})`);
  if (stale.role_limits.length > 0) parts.push(`role_limits on ${list(stale.role_limits)} (${stale.role_limits.length === 1 ? 'that limit no longer applies' : 'those limits no longer apply'})`);
  return `names no role, alias or model of the config: ${parts.join('; ')}`;
}

// Budget spend is summed from usage rows by backend name: rename a priced backend and the spend
// recorded under its old name counts in no budget any more, so the budget starts again from $0
// (measured: 0.794 spent became 0 after vllm-b became vllm-b2) and can be spent a second time.
// A backend's `formerly: [old-name]` keeps that spend counted; this finds the spend that nothing
// counts, so that start and reload can say so.

import type { FabricConfig } from '../config/types.ts';
import type { SpendRow } from '../store/types.ts';
import { periodStart, usd } from './periods.ts';

/** One line per backend name no longer in the config with spend in the current period of some budget (empty without budgets). */
export async function orphanSpendWarnings(config: FabricConfig, spendSince: (since: number) => Promise<SpendRow[]>, now: number = Date.now()): Promise<string[]> {
  if (config.budgets.length === 0) return [];
  const known = new Set<string>();
  for (const b of config.backends.values()) {
    known.add(b.name);
    for (const f of b.formerly ?? []) known.add(f);
  }
  /** Old backend name → the budgets whose current period holds its spend, and how much. */
  const orphans = new Map<string, { budget: string; spent: number }[]>();
  const starts = new Map<number, string[]>();
  for (const b of config.budgets) {
    const start = periodStart(b.period, now);
    starts.set(start, [...(starts.get(start) ?? []), b.name]);
  }
  for (const [start, budgets] of starts) {
    const byBackend = new Map<string, number>();
    // Refused requests have no backend (and cost nothing): not a name that went away.
    for (const r of await spendSince(start)) if (r.backend !== '' && r.cost > 0 && !known.has(r.backend)) byBackend.set(r.backend, (byBackend.get(r.backend) ?? 0) + r.cost);
    for (const [backend, spent] of byBackend) {
      const list = orphans.get(backend) ?? [];
      for (const budget of budgets) list.push({ budget, spent });
      orphans.set(backend, list);
    }
  }
  return [...orphans].map(([backend, in_]) =>
    `budgets: ${in_.map((x) => `${usd(x.spent)} of the current period of budget ${x.budget}`).join(', ')} was spent on backend ${backend}, which is no longer in the config, so no budget counts it now. ` +
    `If ${backend} was renamed, the budgets that counted it (${in_.map((x) => x.budget).join(', ')} may be among them) restarted from that much less and it can be spent again: ` +
    `add formerly: [${backend}] to the backend it became. If it was removed, this goes when the period ends.`);
}

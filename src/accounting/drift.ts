// What the state kept in the store names that a config can take away from under it: keys naming
// roles by name (src/keys/stale.ts) and budget spend summed by backend name (orphan-spend.ts).
// Said at start and at every reload, since nothing else would say it.

import type { Gateway } from '../core/gateway.ts';
import type { Logger } from '../core/log.ts';
import { staleKeyWarnings } from '../keys/stale.ts';
import { orphanSpendWarnings } from './orphan-spend.ts';
import type { Accounting } from './service.ts';

/** Warns of keys naming what `gateway` does not serve (at once) and of spend no budget counts any more (once the store has answered). */
export async function warnDrift(gateway: Gateway, accounting: Accounting, log: Logger): Promise<void> {
  for (const line of staleKeyWarnings(accounting.keys.all(), (n) => gateway.table.resolve(n) !== undefined)) log.warn(line);
  try {
    for (const line of await orphanSpendWarnings(gateway.config, (since) => accounting.store.spendSince(since))) log.warn(line);
  } catch (e) {
    log.debug('budgets: cannot read spend from the store to look for renamed backends', { error: (e as Error).message });
  }
}

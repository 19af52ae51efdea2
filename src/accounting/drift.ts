// What the state kept in the store names that a config can take away from under it: keys naming
// roles by name (src/keys/stale.ts). Said at start and at every reload, since nothing else would
// say it.

import type { Gateway } from '../core/gateway.ts';
import type { Logger } from '../core/log.ts';
import { staleKeyWarnings } from '../keys/stale.ts';
import type { Accounting } from './service.ts';

/** Warns of keys naming what `gateway` does not serve. */
export async function warnDrift(gateway: Gateway, accounting: Accounting, log: Logger): Promise<void> {
  for (const line of staleKeyWarnings(accounting.keys.all(), (n) => gateway.table.resolve(n) !== undefined)) log.warn(line);
}

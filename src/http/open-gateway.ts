// A gateway without a master key, listening beyond this machine: anyone who reaches the port
// uses every backend. Said at start (fabric serve) and at a reload that leaves it so.

import { isLoopbackHost } from '../config/types.ts';

/** The warning for a gateway with no master key listening on `host`; undefined on loopback. */
export function openGatewayWarning(host: string): string | undefined {
  if (isLoopbackHost(host)) return undefined;
  return `listening on ${host} with no master key: anyone who can reach this port can use every backend (it answers only requests addressed to an IP address, this machine's name, a one-label or a private name such as .local or .internal); set gateway.master_key`;
}

// A simulated fleet of GPU inference engines, each speaking its real server's HTTP
// protocol, for the gateway's tests, benchmark and demo. Start one with startFleet().

import { ControlServer } from './control.ts';
import { SimEngineImpl } from './engine.ts';
import { SimListenError } from './errors.ts';
import type { SimEngine, SimEngineSpec, SimFleet } from './types.ts';

export { SimListenError } from './errors.ts';
export type {
  SimEngine, SimEngineSpec, SimEngineStats, SimFault, SimFaultState, SimFleet, SimModelKind, SimModelSpec, SimProtocol,
  SimRequestRecord, SimTiming,
} from './types.ts';

export interface FleetOptions {
  /** start the control server on this port (0 = ephemeral) */
  controlPort?: number;
  /** default listen address for engines and the control server; 127.0.0.1 */
  host?: string;
  log?: (line: string) => void;
}

export async function startFleet(specs: SimEngineSpec[], opts: FleetOptions = {}): Promise<SimFleet> {
  const host = opts.host ?? '127.0.0.1';
  const impls = new Map<string, SimEngineImpl>();
  for (const spec of specs) {
    if (impls.has(spec.name)) throw new Error(`duplicate simulated engine name ${spec.name}`);
    impls.set(spec.name, new SimEngineImpl(spec, { host, log: opts.log }));
  }
  let control: ControlServer | undefined;
  let controlUrl: string | undefined;
  try {
    await Promise.all([...impls.values()].map((e) => e.start()));
    if (opts.controlPort !== undefined) {
      control = new ControlServer(impls);
      const port = opts.controlPort;
      controlUrl = await control.listen(port, host).catch((err: unknown) => {
        throw new SimListenError(undefined, host, port, err);
      });
      opts.log?.(`[sim] control server on ${controlUrl}`);
    }
  } catch (err) {
    await Promise.all([...impls.values()].map((e) => e.close()));
    await control?.close();
    throw err;
  }

  const engines = new Map<string, SimEngine>(impls);
  let closing: Promise<void> | undefined;
  return {
    engines,
    controlUrl,
    get(name: string): SimEngine {
      const e = engines.get(name);
      if (e === undefined) throw new Error(`no simulated engine named ${name} (have: ${[...engines.keys()].join(', ')})`);
      return e;
    },
    close(): Promise<void> {
      closing ??= Promise.all([control?.close(), ...[...impls.values()].map((e) => e.close())]).then(() => undefined);
      return closing;
    },
  };
}

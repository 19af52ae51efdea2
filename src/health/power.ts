// The nodes' power model. An always-on node whose backends fail is down (an outage); a
// workstation whose backends fail is off, which is expected. A node with a Wake-on-LAN
// address can be woken: by hand (fabric wake), or by the gateway when a request needs a role
// whose only backends sit on a sleeping node — rate-limited, and only if gateway.wake is on.

import type { BackendRuntime } from '../core/backend.ts';
import type { Logger } from '../core/log.ts';
import type { FabricConfig, NodeConfig } from '../config/types.ts';
import { sendMagicPacket, type WolSender } from './wol.ts';

/** on: a backend answers. off: a workstation, every backend down and none answering. down: the same on an always-on node, or a workstation whose engine answers with errors. */
export type NodeState = 'on' | 'off' | 'waking' | 'down' | 'unknown';

export function nodeState(backends: readonly BackendRuntime[], now: number, bootTimeoutMs: number): NodeState {
  if (backends.length === 0) return 'unknown';
  if (backends.some((b) => b.state === 'up')) return 'on';
  const wokenAt = Math.max(...backends.map((b) => b.wakeRequestedAt ?? 0));
  if (wokenAt > 0 && now - wokenAt < bootTimeoutMs) return 'waking';
  // A workstation is off when its engines stop answering at all; one that answers with errors is on, and down.
  if (backends.every((b) => b.state === 'down')) return backends.every((b) => b.switchedOff) ? 'off' : 'down';
  return 'unknown';
}

export interface WakeOutcome {
  node: string;
  sent: boolean;
  /** Why not, or where it went. */
  detail: string;
}

export interface PowerOptions {
  log: Logger;
  /** How packets leave; tests and `fabric wake --dry-run` swap it. */
  send?: WolSender;
  /** A packet went out: the caller probes the node's backends often until they answer. */
  onWake?: (node: NodeConfig, backends: BackendRuntime[], bootTimeoutMs: number) => void;
  now?: () => number;
}

export class PowerManager {
  #config: FabricConfig;
  #backends: Map<string, BackendRuntime>;
  readonly #log: Logger;
  readonly #send: WolSender;
  readonly #onWake: PowerOptions['onWake'];
  readonly #now: () => number;
  /** Per node name, so the rate limit survives a config reload. */
  readonly #lastSent = new Map<string, number>();

  constructor(config: FabricConfig, backends: Map<string, BackendRuntime>, opts: PowerOptions) {
    this.#config = config;
    this.#backends = backends;
    this.#log = opts.log;
    this.#send = opts.send ?? sendMagicPacket;
    this.#onWake = opts.onWake;
    this.#now = opts.now ?? Date.now;
  }

  /** After a reload: the new config and backends; the wake history is kept. */
  attach(config: FabricConfig, backends: Map<string, BackendRuntime>): void {
    this.#config = config;
    this.#backends = backends;
  }

  backendsOn(node: string): BackendRuntime[] {
    return [...this.#backends.values()].filter((b) => b.node?.name === node);
  }

  state(node: string, now = this.#now()): NodeState {
    const n = this.#config.nodes.get(node);
    return n === undefined ? 'unknown' : nodeState(this.backendsOn(node), now, this.#config.gateway.wake.bootTimeoutMs);
  }

  /**
   * The gateway's hook: `backends` are a route step's members, none of which could be tried.
   * When every one sits on a sleeping workstation, each such node with a WoL address is sent
   * a magic packet (at most once per gateway.wake.min_interval). The request itself goes on
   * down the fallback chain; this never waits. Returns the nodes a packet was sent to.
   */
  wakeFor(backends: readonly BackendRuntime[], now = this.#now()): string[] {
    const wake = this.#config.gateway.wake;
    if (!wake.enabled || backends.length === 0) return [];
    const nodes = new Map<string, NodeConfig>();
    for (const b of backends) {
      if (b.node === undefined || b.node.power !== 'workstation') return [];
      nodes.set(b.node.name, b.node);
    }
    const sleeping: NodeConfig[] = [];
    for (const n of nodes.values()) {
      const s = this.state(n.name, now);
      if (s !== 'off' && s !== 'waking') return [];
      if (s === 'off' && n.wol !== undefined) sleeping.push(n);
    }
    const sent: string[] = [];
    for (const n of sleeping) {
      const last = this.#lastSent.get(n.name);
      if (last !== undefined && now - last < wake.minIntervalMs) continue;
      void this.#dispatch(n, now, 'a request needs it');
      sent.push(n.name);
    }
    return sent;
  }

  /** Wake a node now, by hand: the rate limit does not apply, the gateway.wake switch neither. */
  async wake(node: string, now = this.#now()): Promise<WakeOutcome> {
    const n = this.#config.nodes.get(node);
    if (n === undefined) return { node, sent: false, detail: `no node named ${node}` };
    if (n.wol === undefined) return { node, sent: false, detail: `node ${node} has no wol: { mac } in the config` };
    const err = await this.#dispatch(n, now, 'asked by hand');
    if (err !== undefined) return { node, sent: false, detail: `could not send the magic packet: ${err}` };
    return { node, sent: true, detail: `magic packet for ${n.wol.mac} sent to ${n.wol.broadcast}:${n.wol.port}` };
  }

  /** Sends the packet; resolves to the error message if it could not leave (never rejects). */
  #dispatch(n: NodeConfig, now: number, why: string): Promise<string | undefined> {
    const target = n.wol!;
    // Recorded before the packet leaves, so concurrent requests cannot send two.
    this.#lastSent.set(n.name, now);
    const backends = this.backendsOn(n.name);
    for (const b of backends) b.wakeRequestedAt = now;
    this.#onWake?.(n, backends, this.#config.gateway.wake.bootTimeoutMs);
    return this.#send(target).then(
      () => {
        this.#log.info(`waking node ${n.name}: magic packet sent (${why})`, { node: n.name, mac: target.mac, to: `${target.broadcast}:${target.port}` });
        return undefined;
      },
      (e: unknown) => {
        const message = String((e as Error)?.message ?? e);
        this.#log.warn(`could not send the magic packet to wake node ${n.name}`, { node: n.name, error: message });
        return message;
      },
    );
  }
}

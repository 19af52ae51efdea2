// Fleet health as one part for the composition root: the probe monitor (replaced on each
// config reload), the power manager and the alert monitor (kept across reloads, so a wake's
// rate limit and the last reported alert level survive them).

import type { Secrets } from '../config/env-file.ts';
import type { BackendRuntime } from '../core/backend.ts';
import type { Logger } from '../core/log.ts';
import { AlertMonitor, evaluate, reloadRefusedText, type AlertMonitorOptions, type AlertState, type ConfigState, type WebhookPoster } from './alerts.ts';
import { PowerManager } from './power.ts';
import { HealthMonitor, monitorSettings } from './probe.ts';
import { fleetReport, type FleetView } from './report.ts';
import type { WolSender } from './wol.ts';

export interface FleetHealthOptions {
  log: Logger;
  /** Probe backends and read their load in the background (default true). */
  probe?: boolean;
  /** For tests: how magic packets and webhook calls leave. */
  send?: WolSender;
  post?: WebhookPoster;
  /** Call the alert webhook (default true): with several workers, one of them does. */
  alerts?: boolean;
}

export class FleetHealth {
  #gw: FleetView;
  #secrets: Secrets;
  #monitor: HealthMonitor;
  readonly power: PowerManager;
  readonly alerts: AlertMonitor;
  readonly #log: Logger;
  readonly #probe: boolean;
  #warnedWebhook = false;

  constructor(gw: FleetView, secrets: Secrets, opts: FleetHealthOptions) {
    this.#gw = gw;
    this.#secrets = secrets;
    this.#log = opts.log;
    this.#probe = opts.probe ?? true;
    this.#monitor = new HealthMonitor(gw.backends.values(), monitorSettings(gw.config.gateway), opts.log);
    this.power = new PowerManager(gw.config, gw.backends, {
      log: opts.log,
      send: opts.send,
      // Once the packet is out, the node's backends are probed often until they answer.
      onWake: (_node, backends, bootMs) => this.#monitor.expedite(backends, bootMs),
    });
    this.alerts = new AlertMonitor({
      snapshot: () => this.alertState(),
      settings: () => (opts.alerts === false ? undefined : this.#alertSettings()),
      log: opts.log,
      post: opts.post,
    });
  }

  get monitor(): HealthMonitor {
    return this.#monitor;
  }

  /** First probe round (awaited, so the gateway starts knowing its fleet), then the timers. */
  async start(): Promise<void> {
    if (this.#probe) {
      await this.#monitor.probeAll();
      void this.#monitor.pollLoad();
      this.#monitor.start();
    }
    this.alerts.start();
  }

  /**
   * A reloaded config: new backends to watch. Those that took over their state from the old
   * ones (Gateway.carryOver) keep their probe-back (a cooled-down one is not probed early) and,
   * while a node wakes, their frequent probes.
   */
  attach(gw: FleetView, secrets: Secrets): void {
    const was = this.#monitor;
    const wasGw = this.#gw;
    was.stop();
    this.#gw = gw;
    this.#secrets = secrets;
    this.#warnedWebhook = false;
    this.#monitor = new HealthMonitor(gw.backends.values(), monitorSettings(gw.config.gateway), this.#log);
    this.power.attach(gw.config, gw.backends);
    if (this.#probe) {
      void this.#monitor.probeAll();
      this.#monitor.start();
      const now = Date.now();
      for (const b of gw.backends.values()) {
        const prev = wasGw.backends.get(b.name);
        const left = prev === undefined || !b.sameServerAs(prev) ? 0 : was.expeditedFor(prev, now);
        if (left > 0) this.#monitor.expedite([b], left);
      }
    }
    this.alerts.start();
  }

  /** The gateway's hook when none of a route step's backends could be tried; see PowerManager.wakeFor. */
  wakeFor(backends: readonly BackendRuntime[]): string[] {
    return this.power.wakeFor(backends);
  }

  /** The running config's state (a reload refused since), for the alert level: set by the gateway. */
  configState: (() => ConfigState | undefined) | undefined;

  alertState(): AlertState {
    return evaluate({ ...fleetReport(this.#gw), reloadRefused: reloadRefusedText(this.configState?.()) });
  }

  stop(): void {
    this.#monitor.stop();
    this.alerts.stop();
  }

  #alertSettings(): ReturnType<AlertMonitorOptions['settings']> {
    const config = this.#gw.config.gateway.alerts;
    if (config === undefined) return undefined;
    const w = config.webhook;
    const url = 'env' in w ? this.#secrets.get(w.env) : w.url;
    if (url === undefined || url === '') {
      if (!this.#warnedWebhook) this.#log.warn(`alerts are configured but the webhook is not: ${'env' in w ? `${w.env} is not set` : 'empty URL'}`);
      this.#warnedWebhook = true;
      return undefined;
    }
    return { config, url, simulated: this.#gw.config.simulated };
  }
}

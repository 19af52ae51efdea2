// The runbook's alert levels, evaluated the same way by `fabric health` (its exit code) and by
// the gateway itself (continuously, with a webhook on each change of level):
//   gateway down                                       critical
//   no backend can serve anything                      critical
//   two or more backends down, or an embeddings or
//     rerank backend down (retrieval stops)            warning
//   a backend slow (p95 above its `slow` threshold)    warning
//   one backend down, a workstation off (expected),
//     a backend without its API key, draining          info
// A workstation that is off is information, never an outage.

import { hostname } from 'node:os';
import type { AlertFormat, AlertsConfig } from '../config/types.ts';
import type { Logger } from '../core/log.ts';
import type { BackendReport } from './report.ts';

export type AlertLevel = 'ok' | 'info' | 'warning' | 'critical';

export const LEVEL_RANK: Record<AlertLevel, number> = { ok: 0, info: 1, warning: 2, critical: 3 };

/** `fabric health` exits with these: scripts and timers can act on them. */
export const EXIT_CODE: Record<AlertLevel, number> = { ok: 0, info: 0, warning: 1, critical: 2 };

export interface AlertState {
  level: AlertLevel;
  reasons: string[];
}

type Backend = Pick<BackendReport, 'name' | 'status' | 'kinds' | 'last_error'> & { slow?: string | null; power?: BackendReport['power'] };

const worse = (a: AlertLevel, b: AlertLevel): AlertLevel => (LEVEL_RANK[b] > LEVEL_RANK[a] ? b : a);
const why = (b: Backend): string => (b.last_error === null ? b.name : `${b.name} (${b.last_error})`);

/** The config running, and the last reload refused since (fabric serve keeps it). */
export interface ConfigState {
  /** When the running config was loaded (at start, or by the last reload that took). */
  loadedAt: number;
  /** The last reload refused since then: when, and its first reason. */
  refused?: { at: number; reason: string };
}

/** A refused reload as an alert reason, or undefined when the config on disk is the one running. */
export function reloadRefusedText(config: ConfigState | undefined, full = true): string | undefined {
  const r = config?.refused;
  if (r === undefined) return undefined;
  return `config reload refused at ${new Date(r.at).toISOString()}${full ? `: ${r.reason}` : ''}; still serving the config loaded at ${new Date(config!.loadedAt).toISOString()} (a restart would refuse the file now on disk)`;
}

/** `partial`: the backends are a selection (fabric health NODE), so "nothing can serve" does not follow from them. */
export function evaluate(report: { backends: readonly Backend[]; draining?: boolean; partial?: boolean; reloadRefused?: string }): AlertState {
  const reasons: { level: AlertLevel; text: string }[] = [];
  // The file on disk is not what runs: the next restart (or a new worker) would refuse it.
  if (report.reloadRefused !== undefined) reasons.push({ level: 'warning', text: report.reloadRefused });
  const bs = report.backends;
  const down = bs.filter((b) => b.status === 'down');
  const serving = bs.filter((b) => b.status === 'up' || b.status === 'failing' || b.status === 'unknown');
  if (report.partial !== true && bs.length > 0 && serving.length === 0) {
    reasons.push({ level: 'critical', text: `no backend can serve: ${bs.map((b) => `${b.name} ${b.status}`).join(', ')}` });
  }
  // Nothing up and something failing: requests are failing now, though no backend has tripped yet.
  const failing = bs.filter((b) => b.status === 'failing');
  if (report.partial !== true && failing.length > 0 && !bs.some((b) => b.status === 'up')) {
    reasons.push({ level: 'warning', text: `no backend is up: ${failing.map(why).join(', ')} failing${down.length > 0 ? `, ${down.length} down` : ''}` });
  }
  if (down.length >= 2) reasons.push({ level: 'warning', text: `${down.length} backends down: ${down.map(why).join(', ')}` });
  for (const b of down) {
    // Backends on workstations that are off show as "offline (expected)", not "down": these are
    // always-on, or on a workstation that is on but whose engine answers with errors.
    // A retrieval pipeline (notes search) has no answer without its embeddings, nor a useful one without its reranker.
    const retrieval = b.kinds.includes('embeddings') ? 'embeddings' : b.kinds.includes('rerank') ? 'rerank' : undefined;
    if (retrieval !== undefined) reasons.push({ level: 'warning', text: `${b.power === 'workstation' ? 'workstation' : 'always-on'} ${retrieval} backend ${why(b)} is down` });
    else if (down.length === 1) reasons.push({ level: 'info', text: `backend ${why(b)} is down` });
  }
  for (const b of bs) {
    if (b.status === 'offline (expected)') reasons.push({ level: 'info', text: `${b.name} is offline (workstation off, expected)` });
    else if (b.status === 'waking') reasons.push({ level: 'info', text: `${b.name} is waking (magic packet sent)` });
    else if (b.status === 'unconfigured') reasons.push({ level: 'info', text: `${b.name} is unusable: ${b.last_error ?? 'its API key is not set'}` });
    // Older gateways do not report it.
    if (b.slow != null) reasons.push({ level: 'warning', text: `${b.name} is slow: ${b.slow}` });
  }
  if (report.draining === true) reasons.push({ level: 'info', text: 'the gateway is draining' });
  const level = reasons.reduce<AlertLevel>((l, r) => worse(l, r.level), 'ok');
  // Most severe first, so a one-line summary leads with what matters.
  reasons.sort((a, b) => LEVEL_RANK[b.level] - LEVEL_RANK[a.level]);
  return { level, reasons: reasons.map((r) => r.text) };
}

/** What `fabric health` concludes when it cannot reach the gateway at all. */
export function gatewayDown(url: string, error: string): AlertState {
  return { level: 'critical', reasons: [`gateway ${url} is down: ${error}`] };
}

const SLACK_ICON: Record<AlertLevel, string> = { ok: ':white_check_mark:', info: ':large_blue_circle:', warning: ':warning:', critical: ':rotating_light:' };

export function webhookBody(format: AlertFormat, state: AlertState, previous: AlertLevel, now: number, simulated: boolean): string {
  const title = state.level === 'ok' ? 'all clear' : state.level.toUpperCase();
  if (format === 'slack') {
    const lines = state.reasons.map((r) => `• ${r}`).join('\n');
    const text = `${SLACK_ICON[state.level]} *AI Fabric${simulated ? ' (simulated)' : ''}* on ${hostname()}: ${title} (was ${previous})${lines === '' ? '' : `\n${lines}`}`;
    return JSON.stringify({ text });
  }
  return JSON.stringify({
    source: 'ai-fabric', host: hostname(), level: state.level, previous, reasons: state.reasons, at: new Date(now).toISOString(), simulated,
  });
}

export type WebhookPoster = (url: string, body: string) => Promise<void>;

const POST_TIMEOUT_MS = 10_000;

export const postWebhook: WebhookPoster = async (url, body) => {
  const res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body, signal: AbortSignal.timeout(POST_TIMEOUT_MS) });
  await res.arrayBuffer().catch(() => undefined);
  if (!res.ok) throw new Error(`the webhook answered HTTP ${res.status}`);
};

export interface AlertMonitorOptions {
  /** The fleet's alert state now. */
  snapshot: () => AlertState;
  /** The alerts config and the resolved webhook URL, or undefined when alerts are off. Read on every check, so reloads apply. */
  settings: () => { config: AlertsConfig; url: string; simulated: boolean } | undefined;
  log: Logger;
  post?: WebhookPoster;
  now?: () => number;
}

/**
 * Evaluates the levels every interval and calls the webhook when the level changes — once
 * per change. Changes inside the quiet period (min_interval) are coalesced: when it ends,
 * one call reports where things stand, if that differs from what was last reported. A failed
 * call waits the quiet period too, so a dead webhook is not hammered.
 */
export class AlertMonitor {
  readonly #opts: AlertMonitorOptions;
  readonly #post: WebhookPoster;
  readonly #now: () => number;
  #reported: AlertState = { level: 'ok', reasons: [] };
  #lastCallAt: number | undefined;
  #busy = false;
  #timer: NodeJS.Timeout | undefined;
  #intervalMs = 0;

  constructor(opts: AlertMonitorOptions) {
    this.#opts = opts;
    this.#post = opts.post ?? postWebhook;
    this.#now = opts.now ?? Date.now;
  }

  /** The level last reported (or silently accepted, when below the notify threshold). */
  get reported(): AlertState {
    return this.#reported;
  }

  async check(): Promise<void> {
    const s = this.#opts.settings();
    if (s === undefined || this.#busy) return;
    const state = this.#opts.snapshot();
    const previous = this.#reported.level;
    if (state.level === previous) return;
    if (Math.max(LEVEL_RANK[state.level], LEVEL_RANK[previous]) < LEVEL_RANK[s.config.notify]) {
      this.#reported = state;
      return;
    }
    const now = this.#now();
    if (this.#lastCallAt !== undefined && now - this.#lastCallAt < s.config.minIntervalMs) return;
    this.#busy = true;
    this.#lastCallAt = now;
    try {
      await this.#post(s.url, webhookBody(s.config.format, state, previous, now, s.simulated));
      this.#reported = state;
      this.#opts.log.info(`alert: ${state.level} (was ${previous}), webhook called`, { level: state.level, previous, reasons: state.reasons });
    } catch (e) {
      // The URL may hold a token: say where, never the whole of it.
      let where = 'the webhook';
      try { where = new URL(s.url).host; } catch { /* keep the generic name */ }
      this.#opts.log.warn(`alert: ${state.level} (was ${previous}), but calling ${where} failed; retrying after the quiet period`, {
        level: state.level, error: String((e as Error)?.message ?? e),
      });
    } finally {
      this.#busy = false;
    }
  }

  /** (Re)arms the timer at the configured interval; a no-op while alerts are off. */
  start(): void {
    const s = this.#opts.settings();
    const interval = s?.config.intervalMs ?? 0;
    if (interval === this.#intervalMs && this.#timer !== undefined) return;
    this.stop();
    this.#intervalMs = interval;
    if (interval <= 0) return;
    this.#timer = setInterval(() => { void this.check(); }, interval);
    this.#timer.unref();
  }

  stop(): void {
    if (this.#timer !== undefined) clearInterval(this.#timer);
    this.#timer = undefined;
  }
}

// fabric health --notify: the alert webhook called from outside the gateway, by a timer (the
// runbook's "every 5 minutes"), which sees what the gateway cannot report itself: the gateway
// down (critical). Stateless runs remember the level last reported in a small state file, so
// the webhook is called once per change of level, as the gateway's own monitor calls it.

import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';
import { LEVEL_RANK, postWebhook, webhookBody, type AlertLevel, type AlertState, type WebhookPoster } from '../health/alerts.ts';
import type { AlertFormat } from '../config/types.ts';
import { secretFlag, UsageError } from './client.ts';

export interface NotifySettings {
  url: string;
  format: AlertFormat;
  /** Changes below this level on both sides are recorded without a call (the gateway's `notify`). */
  notify: AlertLevel;
  stateFile: string;
}

/** --notify URL | env:NAME (the URL may hold a token: it is never printed). */
export function notifyUrl(v: string, env: NodeJS.ProcessEnv = process.env): string {
  const url = secretFlag('notify', v, env);
  if (!/^https?:\/\//.test(url)) throw new UsageError(`--notify must be an http(s) URL or env:NAME${url === v ? '' : ` (${v} does not hold one)`}`);
  return url;
}

/** Where the level last reported is kept: --state, else systemd's $STATE_DIRECTORY, else the user's state directory. */
export function defaultStateFile(env: NodeJS.ProcessEnv = process.env): string {
  const sd = env.STATE_DIRECTORY?.split(':')[0];
  if (sd !== undefined && sd !== '') return join(sd, 'health-level');
  const base = env.XDG_STATE_HOME !== undefined && env.XDG_STATE_HOME !== '' ? env.XDG_STATE_HOME : join(homedir(), '.local', 'state');
  return join(base, 'ai-fabric', 'health-level');
}

function lastReported(file: string): AlertLevel {
  try {
    const v = readFileSync(file, 'utf8').trim();
    return Object.hasOwn(LEVEL_RANK, v) ? (v as AlertLevel) : 'ok';
  } catch {
    return 'ok';
  }
}

function record(file: string, level: AlertLevel): void {
  mkdirSync(dirname(file), { recursive: true });
  writeFileSync(`${file}.tmp`, `${level}\n`);
  renameSync(`${file}.tmp`, file);
}

/**
 * Calls the webhook when the level differs from the one last reported, and records it once the
 * call succeeded (a failed call is tried again by the next run). Returns what happened, for a
 * line on stderr.
 */
export async function notifyChange(state: AlertState, simulated: boolean, s: NotifySettings, post: WebhookPoster = postWebhook, now = Date.now()): Promise<string | undefined> {
  const previous = lastReported(s.stateFile);
  if (state.level === previous) return undefined;
  const kept = (): string | undefined => {
    try {
      record(s.stateFile, state.level);
      return undefined;
    } catch (e) {
      return `cannot record the level in ${s.stateFile} (${(e as Error).message}): the next run will call again`;
    }
  };
  if (Math.max(LEVEL_RANK[state.level], LEVEL_RANK[previous]) < LEVEL_RANK[s.notify]) return kept();
  let where = 'the webhook';
  try { where = new URL(s.url).host; } catch { /* keep the generic name */ }
  try {
    await post(s.url, webhookBody(s.format, state, previous, now, simulated));
  } catch (e) {
    return `level ${state.level} (was ${previous}), but calling ${where} failed (${(e as Error).message}); the next run tries again`;
  }
  const unkept = kept();
  return `level ${state.level} (was ${previous}): ${where} called${unkept === undefined ? '' : `; but ${unkept}`}`;
}

// A backend as the gateway runs it: its adapter, its connection pool, its credential and
// what is known of its health. Created once per config load; the routing table holds these.

import { Pool } from 'undici';
import type { BackendConfig, NodeConfig } from '../config/types.ts';
import type { Secrets } from '../config/env-file.ts';
import { engineFor } from '../engines/index.ts';
import type { EngineAdapter } from '../engines/types.ts';
import type { Member } from '../routing/balancer.ts';

export type HealthState = 'unknown' | 'up' | 'down';

/** Consecutive failures (traffic or probes) after which a backend is skipped for a while. */
const FAILURES_TO_COOL = 3;
const COOLDOWN_MS = 30_000;

export class BackendRuntime implements Member {
  readonly name: string;
  readonly weight: number;
  readonly config: BackendConfig;
  readonly node: NodeConfig | undefined;
  readonly engine: EngineAdapter;
  readonly pool: Pool;
  /** URL path prefix of the base URL (e.g. /v1), prepended to every engine path. */
  readonly basePath: string;
  readonly origin: string;
  /** Authorization header value for this backend, never the client's. */
  readonly authorization: string | undefined;
  /** Set when the backend's key is missing from the environment: it is skipped, saying why. */
  readonly unusable: string | undefined;

  outstanding = 0;
  state: HealthState = 'unknown';
  consecutiveFailures = 0;
  coolUntil = 0;
  lastError: string | undefined;
  lastErrorAt: number | undefined;
  lastLatencyMs: number | undefined;
  lastCheckedAt: number | undefined;

  constructor(config: BackendConfig, node: NodeConfig | undefined, secrets: Secrets) {
    this.name = config.name;
    this.weight = config.weight;
    this.config = config;
    this.node = node;
    this.engine = engineFor(config.engine);
    const u = new URL(config.url);
    this.origin = u.origin;
    this.basePath = u.pathname.replace(/\/+$/, '');
    const key = config.apiKey === undefined ? undefined : secrets.get(config.apiKey.env);
    this.authorization = key === undefined ? undefined : `Bearer ${key}`;
    this.unusable = config.apiKey !== undefined && key === undefined ? `its API key (${config.apiKey.env}) is not set` : undefined;
    this.pool = new Pool(this.origin, {
      connections: config.maxConnections,
      pipelining: 1,
      keepAliveTimeout: 30_000,
      keepAliveMaxTimeout: 120_000,
      connect: { timeout: config.timeouts.connectMs },
      headersTimeout: config.timeouts.firstByteMs,
      bodyTimeout: config.timeouts.idleMs,
    });
  }

  /** Why this backend must be skipped now, or undefined if it may be tried. */
  skipReason(now: number): string | undefined {
    if (this.unusable !== undefined) return this.unusable;
    if (now < this.coolUntil) return `cooling down after ${this.consecutiveFailures} consecutive failures (${this.lastError ?? 'unknown error'})`;
    return undefined;
  }

  recordSuccess(latencyMs: number): void {
    this.consecutiveFailures = 0;
    this.coolUntil = 0;
    this.state = 'up';
    this.lastLatencyMs = latencyMs;
  }

  recordFailure(message: string, now: number): void {
    this.consecutiveFailures++;
    this.lastError = message;
    this.lastErrorAt = now;
    if (this.consecutiveFailures >= FAILURES_TO_COOL) {
      this.state = 'down';
      // A further failure extends the cooldown, never shortens it.
      this.coolUntil = Math.max(this.coolUntil, now + COOLDOWN_MS);
    }
  }

  async close(): Promise<void> {
    await this.pool.close().catch(() => this.pool.destroy());
  }
}

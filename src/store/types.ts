// The one store interface for keys, usage records and request logs. Two implementations:
// SQLite (embedded, the default: a file in the data directory) and PostgreSQL (several
// gateway instances). Both run the same contract suite (store.contract.ts) against real
// databases. Nothing here is on the request path: the gateway reads keys into memory and
// writes usage in batches (src/keys, src/accounting).

import type { BudgetPeriod } from '../config/types.ts';

export type { BudgetPeriod };

export interface RateLimit {
  /** Requests per minute. */
  rpm?: number;
  /** Tokens (in + out) per minute. */
  tpm?: number;
}

export interface KeyBudget {
  /** USD per period. */
  amount: number;
  period: BudgetPeriod;
}

/** A virtual key as stored: never the key itself, only its SHA-256. */
export interface KeyRecord {
  id: string;
  /** Hex SHA-256 of the key. */
  hash: string;
  /** The key's first and last characters, to tell keys apart in listings. */
  hint: string;
  name: string;
  metadata: Record<string, unknown>;
  /** Model names (roles or aliases) the key may ask for; undefined: all. */
  roles: string[] | undefined;
  /** Unix ms; undefined: never. */
  expiresAt: number | undefined;
  budget: KeyBudget | undefined;
  rpm: number | undefined;
  tpm: number | undefined;
  /** Limits per role, on top of the key-wide ones. */
  roleLimits: Record<string, RateLimit>;
  createdAt: number;
  updatedAt: number;
  revokedAt: number | undefined;
}

/** What an update may change; rotation replaces hash and hint. */
export type KeyPatch = Partial<Omit<KeyRecord, 'id' | 'createdAt'>>;

/**
 * What a conditional update requires of the key as it is when written: its hash (a rotation
 * that lost a race must not hand out a secret), or its revision (keyRevision, rows.ts: the
 * key as a change that merged into it read it, so that nothing written meanwhile is lost).
 */
export interface KeyCondition {
  hash?: string;
  revision?: string;
}

/** One answered (or refused) inference request. */
export interface UsageRecord {
  /** The gateway's own request id: unique, so a retried write is counted once. */
  id: string;
  /** Unix ms when the request arrived. */
  ts: number;
  keyId: string | undefined;
  keyName: string | undefined;
  op: string;
  /** The model name the client asked for. */
  model: string;
  /** The route that served (or '' when none did). */
  role: string;
  backend: string;
  /** The physical model the backend ran. */
  upstreamModel: string;
  status: number;
  /**
   * Set on every failure: the error's code, also on a 200 stream that broke after its first byte
   * (stream_interrupted). Reports count a record with a code as an error.
   */
  code: string | undefined;
  promptTokens: number;
  completionTokens: number;
  /** The backend reported no usage; tokens are the gateway's estimate. */
  estimated: boolean;
  latencyMs: number;
  ttftMs: number | undefined;
  attempts: number;
  rerouted: boolean;
  stream: boolean;
  /** USD. */
  cost: number;
}

export const USAGE_GROUPS = ['key', 'role', 'backend', 'model', 'day', 'status'] as const;
export type UsageGroup = (typeof USAGE_GROUPS)[number];

export interface UsageQuery {
  by: UsageGroup;
  /** Unix ms, inclusive. */
  since?: number;
  /** Unix ms, exclusive. */
  until?: number;
  keyId?: string;
}

export interface UsageRow {
  /** By key: its name (two keys may share one), and `keyId` tells them apart. */
  group: string;
  keyId?: string;
  requests: number;
  errors: number;
  promptTokens: number;
  completionTokens: number;
  cost: number;
  avgLatencyMs: number;
}

/** Settled spend since a time, per key and backend: what budgets start from. */
export interface SpendRow {
  keyId: string | undefined;
  backend: string;
  cost: number;
}

export interface RequestLogRecord {
  id: string;
  ts: number;
  keyId: string | undefined;
  status: number;
  /** The request body as JSON text, redacted and capped. */
  request: string;
  /** The response (or the streamed events) as text, redacted and capped. */
  response: string;
}

export interface Store {
  readonly kind: 'sqlite' | 'postgres';
  /** Where it is, for logs: a path, or a URL without its password. */
  readonly where: string;
  /** Applies pending schema migrations (once, even with several instances starting); returns the versions applied. */
  migrate(): Promise<number[]>;
  /** SQLite: the copy migrate() made of the database before changing its schema, or why it could not. */
  readonly migrationBackup?: { file: string; error?: string } | undefined;
  ping(): Promise<void>;

  insertKey(k: KeyRecord): Promise<void>;
  keyById(id: string): Promise<KeyRecord | undefined>;
  keyByHash(hash: string): Promise<KeyRecord | undefined>;
  listKeys(): Promise<KeyRecord[]>;
  /**
   * Returns the updated key as stored, or undefined when there is none with that id; null, with
   * nothing changed, when the key is no longer as `expect` says (checked in the same
   * transaction as the write). An `updatedAt` in the patch is moved past the key's own, so
   * that it never goes back and every write gives a new revision.
   */
  updateKey(id: string, patch: KeyPatch, expect?: KeyCondition): Promise<KeyRecord | undefined | null>;
  /** A counter bumped in the same transaction as every key change: instances poll it to reload keys. */
  keysVersion(): Promise<number>;
  /** Calls `cb` soon after any instance changes a key (PostgreSQL LISTEN/NOTIFY); absent where only polling can tell. Returns the unsubscribe. */
  watchKeys?(cb: () => void): () => void;

  /** Inserts records not already stored (by id); returns how many were new. */
  insertUsage(records: readonly UsageRecord[]): Promise<number>;
  usageSummary(q: UsageQuery): Promise<UsageRow[]>;
  usageById(id: string): Promise<UsageRecord | undefined>;
  /** Total cost per key and backend of requests since `since` (unix ms; a UTC midnight, where daily totals are concerned). */
  spendSince(since: number): Promise<SpendRow[]>;
  /**
   * Folds the oldest records before `before` (a UTC midnight) into their day's totals and
   * deletes them, in one transaction of at most about `maxRecords` within one day; returns how
   * many were folded (0: none is left). Reports and spend read the totals as well, by the day's
   * start: so a period that starts at a UTC midnight sums the same before and after.
   */
  rollupUsage(before: number, maxRecords: number): Promise<number>;

  insertRequestLogs(records: readonly RequestLogRecord[]): Promise<void>;
  requestLogs(q: { limit: number; keyId?: string; id?: string }): Promise<RequestLogRecord[]>;
  /** Deletes logs older than `before`, then the oldest until the rest fit in maxBytes; returns rows deleted. */
  pruneRequestLogs(before: number, maxBytes: number): Promise<number>;

  close(): Promise<void>;
}

/** Raised when the database cannot be reached or refuses a statement. */
export class StoreError extends Error {
  /** The statement itself is refused (a constraint, bad data): retrying it will not help, unlike a lost connection. */
  readonly permanent: boolean;
  constructor(message: string, opts?: { cause?: unknown; permanent?: boolean }) {
    super(message, opts);
    this.name = 'StoreError';
    this.permanent = opts?.permanent ?? false;
  }
}

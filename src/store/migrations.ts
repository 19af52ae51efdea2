// Schema migrations, in order, each in both dialects. A migration is never edited once
// released: a change is a new entry. Each store applies the pending ones in one transaction
// at start (PostgreSQL under an advisory lock, so instances starting together apply them once).

export interface Migration {
  version: number;
  name: string;
  sqlite: string;
  postgres: string;
}

export const MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    name: 'keys, usage, request log',
    sqlite: `
      CREATE TABLE fabric_meta (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
      INSERT INTO fabric_meta (name, value) VALUES ('keys_version', 0);
      CREATE TABLE fabric_keys (
        id TEXT PRIMARY KEY,
        hash TEXT NOT NULL UNIQUE,
        hint TEXT NOT NULL,
        name TEXT NOT NULL,
        metadata TEXT NOT NULL DEFAULT '{}',
        roles TEXT,
        expires_at INTEGER,
        budget_amount REAL,
        budget_period TEXT,
        rpm INTEGER,
        tpm INTEGER,
        role_limits TEXT NOT NULL DEFAULT '{}',
        created_at INTEGER NOT NULL,
        updated_at INTEGER NOT NULL,
        revoked_at INTEGER
      );
      CREATE TABLE fabric_usage (
        id TEXT PRIMARY KEY,
        ts INTEGER NOT NULL,
        key_id TEXT,
        key_name TEXT,
        op TEXT NOT NULL,
        model TEXT NOT NULL,
        role TEXT NOT NULL,
        backend TEXT NOT NULL,
        upstream_model TEXT NOT NULL,
        status INTEGER NOT NULL,
        code TEXT,
        prompt_tokens INTEGER NOT NULL,
        completion_tokens INTEGER NOT NULL,
        estimated INTEGER NOT NULL,
        latency_ms REAL NOT NULL,
        ttft_ms REAL,
        attempts INTEGER NOT NULL,
        rerouted INTEGER NOT NULL,
        stream INTEGER NOT NULL,
        cost REAL NOT NULL
      );
      CREATE INDEX fabric_usage_ts ON fabric_usage (ts);
      CREATE INDEX fabric_usage_key_ts ON fabric_usage (key_id, ts);
      CREATE TABLE fabric_request_log (
        id TEXT PRIMARY KEY,
        ts INTEGER NOT NULL,
        key_id TEXT,
        status INTEGER NOT NULL,
        request TEXT NOT NULL,
        response TEXT NOT NULL,
        bytes INTEGER NOT NULL
      );
      CREATE INDEX fabric_request_log_ts ON fabric_request_log (ts);
    `,
    postgres: `
      CREATE TABLE fabric_meta (name TEXT PRIMARY KEY, value BIGINT NOT NULL);
      INSERT INTO fabric_meta (name, value) VALUES ('keys_version', 0);
      CREATE TABLE fabric_keys (
        id TEXT PRIMARY KEY,
        hash TEXT NOT NULL UNIQUE,
        hint TEXT NOT NULL,
        name TEXT NOT NULL,
        metadata JSONB NOT NULL DEFAULT '{}',
        roles JSONB,
        expires_at BIGINT,
        budget_amount DOUBLE PRECISION,
        budget_period TEXT,
        rpm INTEGER,
        tpm INTEGER,
        role_limits JSONB NOT NULL DEFAULT '{}',
        created_at BIGINT NOT NULL,
        updated_at BIGINT NOT NULL,
        revoked_at BIGINT
      );
      CREATE TABLE fabric_usage (
        id TEXT PRIMARY KEY,
        ts BIGINT NOT NULL,
        key_id TEXT,
        key_name TEXT,
        op TEXT NOT NULL,
        model TEXT NOT NULL,
        role TEXT NOT NULL,
        backend TEXT NOT NULL,
        upstream_model TEXT NOT NULL,
        status INTEGER NOT NULL,
        code TEXT,
        prompt_tokens INTEGER NOT NULL,
        completion_tokens INTEGER NOT NULL,
        estimated BOOLEAN NOT NULL,
        latency_ms DOUBLE PRECISION NOT NULL,
        ttft_ms DOUBLE PRECISION,
        attempts INTEGER NOT NULL,
        rerouted BOOLEAN NOT NULL,
        stream BOOLEAN NOT NULL,
        cost DOUBLE PRECISION NOT NULL
      );
      CREATE INDEX fabric_usage_ts ON fabric_usage (ts);
      CREATE INDEX fabric_usage_key_ts ON fabric_usage (key_id, ts);
      CREATE TABLE fabric_request_log (
        id TEXT PRIMARY KEY,
        ts BIGINT NOT NULL,
        key_id TEXT,
        status INTEGER NOT NULL,
        request TEXT NOT NULL,
        response TEXT NOT NULL,
        bytes INTEGER NOT NULL
      );
      CREATE INDEX fabric_request_log_ts ON fabric_request_log (ts);
    `,
  },
];

export const MIGRATIONS_TABLE = {
  sqlite: 'CREATE TABLE IF NOT EXISTS fabric_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL)',
  postgres: 'CREATE TABLE IF NOT EXISTS fabric_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at BIGINT NOT NULL)',
} as const;

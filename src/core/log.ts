// Structured logs: one JSON object per line, batched and written off the request path, with
// every known secret value scrubbed. On a terminal the same records read as plain lines.

export type LogLevel = 'debug' | 'info' | 'warn' | 'error';
const RANK: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };

export interface Logger {
  log(level: LogLevel, msg: string, fields?: Record<string, unknown>): void;
  info(msg: string, fields?: Record<string, unknown>): void;
  warn(msg: string, fields?: Record<string, unknown>): void;
  error(msg: string, fields?: Record<string, unknown>): void;
  debug(msg: string, fields?: Record<string, unknown>): void;
  flush(): void;
  /**
   * A reload's secrets, scrubbed from now on (with the first set, always) until the returned
   * function is called: once no request that may have used them is left.
   */
  addSecrets(values: readonly string[]): () => void;
}

export interface LoggerOptions {
  level?: LogLevel;
  pretty?: boolean;
  write?: (s: string) => void;
  /** Values that must never appear in output (API keys, the master key). */
  secrets?: string[];
  /**
   * Largest write. Several processes writing one pipe (gateway workers) need writes of at most
   * PIPE_BUF (4096) bytes for lines never to interleave; one process can batch more.
   */
  maxBatchBytes?: number;
  /** This process's worker index, on every line (`"worker":"1"`), when several share the log. */
  worker?: string;
}

// eslint-disable-next-line no-control-regex
const CONTROL = /[\x00-\x1f\x7f]/;

/** Longest a log line waits to be written with others. */
const FLUSH_MS = 20;

/** Loggers holding lines: written out if the process exits first (process.exit, a fatal exception). */
const unflushed = new Set<() => void>();
let exitHook = false;
function whenExiting(flush: () => void): void {
  unflushed.add(flush);
  if (exitHook) return;
  exitHook = true;
  process.once('exit', () => {
    for (const f of [...unflushed]) f();
  });
}

export function createLogger(opts: LoggerOptions = {}): Logger {
  const min = RANK[opts.level ?? 'info'];
  const pretty = opts.pretty ?? false;
  const write = opts.write ?? ((s: string) => process.stdout.write(s));
  // Each secret as written and as JSON escapes it (a `"` or `\` in a password), since lines
  // are scrubbed once encoded. The first set, and each reload's until it is released (its
  // requests are done): not every key a long-lived process was ever given, which each line
  // would be searched for.
  const first = opts.secrets ?? [];
  const held = new Set<readonly string[]>();
  let secrets: string[] = [];
  const rebuild = (): void => {
    const forms = new Set<string>();
    for (const v of [first, ...held].flat()) {
      if (v.length < 4) continue;
      forms.add(v);
      forms.add(JSON.stringify(v).slice(1, -1));
    }
    // Longest first: a secret that contains another is replaced whole.
    secrets = [...forms].sort((a, b) => b.length - a.length);
  };
  const addSecrets = (values: readonly string[]): (() => void) => {
    const set = [...values];
    held.add(set);
    rebuild();
    return () => {
      if (held.delete(set)) rebuild();
    };
  };
  rebuild();
  const maxBatch = opts.maxBatchBytes ?? 64 * 1024;
  const workerField = opts.worker === undefined ? '' : `"worker":${JSON.stringify(opts.worker)},`;
  const workerTag = opts.worker === undefined ? '' : `[w${opts.worker}] `;
  let buffer = '';
  let scheduled = false;
  // One ISO timestamp per millisecond, however many lines share it.
  let lastMs = 0;
  let lastIso = '';
  const iso = (): string => {
    const now = Date.now();
    if (now !== lastMs) {
      lastMs = now;
      lastIso = new Date(now).toISOString();
    }
    return lastIso;
  };
  const flush = (): void => {
    scheduled = false;
    unflushed.delete(flush);
    if (buffer === '') return;
    const out = buffer;
    buffer = '';
    write(out);
  };
  const scrub = (s: string): string => {
    for (const v of secrets) if (s.includes(v)) s = s.split(v).join('[redacted]');
    return s;
  };
  const log = (level: LogLevel, msg: string, fields?: Record<string, unknown>): void => {
    if (RANK[level] < min) return;
    let line: string;
    if (pretty) {
      // A value with a control character is quoted: a line break or a terminal escape in a
      // client-chosen value (a model name) must not forge a line or drive the terminal.
      const kv = fields === undefined ? '' : Object.entries(fields)
        .filter(([, v]) => v !== undefined)
        .map(([k, v]) => `${k}=${typeof v === 'string' && !CONTROL.test(v) ? v : JSON.stringify(v)}`).join(' ');
      line = `${iso().slice(11, 23)} ${level.toUpperCase().padEnd(5)} ${workerTag}${CONTROL.test(msg) ? JSON.stringify(msg) : msg}${kv === '' ? '' : '  ' + kv}\n`;
    } else {
      // The envelope by hand and the fields by one stringify: no object spread per line.
      const rest = fields === undefined ? '}' : JSON.stringify(fields);
      line = `{"time":"${iso()}","level":"${level}",${workerField}"msg":${JSON.stringify(msg)}${rest.length <= 2 ? '}' : ',' + rest.slice(1)}\n`;
    }
    if (secrets.length > 0) line = scrub(line);
    if (buffer.length > 0 && buffer.length + line.length > maxBatch) flush();
    buffer += line;
    if (level === 'error' || buffer.length >= maxBatch) flush();
    else if (!scheduled) {
      // Lines wait up to FLUSH_MS and go out together: one write per interval under load
      // instead of one per request. Errors are written at once; shutdown calls flush().
      scheduled = true;
      setTimeout(flush, FLUSH_MS);
      whenExiting(flush);
    }
  };
  return {
    log,
    info: (m, f) => log('info', m, f),
    warn: (m, f) => log('warn', m, f),
    error: (m, f) => log('error', m, f),
    debug: (m, f) => log('debug', m, f),
    flush,
    addSecrets,
  };
}

export const silentLogger: Logger = {
  log: () => {}, info: () => {}, warn: () => {}, error: () => {}, debug: () => {}, flush: () => {}, addSecrets: () => () => {},
};

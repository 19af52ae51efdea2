// Usage records reach the store in batches, off the request path, and are not lost on the
// way. Each record is first appended to a spool file and queued in memory; a timer inserts
// the queue in batches, one transaction each. The spool append is a group commit: the records
// of one event-loop turn go out in one write(2) into the page cache at the end of the turn,
// and the answers they belong to end only after it (server.ts waits with whenSpooled()). A spool segment is deleted once
// every record in it is committed. So:
//   - the store down: the queue waits and retries with backoff; past max_buffer records wait
//     in the spool only, and are replayed from it when the store is back;
//   - SIGTERM: close() flushes the queue (what cannot be written stays in the spool);
//   - a hard kill (SIGKILL, OOM): no answer a client received is lost — its record is in the spool file,
//     which the OS has even though the process died; the next start replays it. Inserts are
//     idempotent on the request id, so a record both committed and replayed counts once;
//   - a machine crash or power loss: the spool is fdatasync'ed every flush interval, so up to
//     one interval of records can be lost.

import { appendFileSync, closeSync, fdatasync, mkdirSync, openSync, readdirSync, readFileSync, statSync, unlinkSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import type { Logger } from '../core/log.ts';
import { readProcStat } from '../core/proc-stat.ts';
import { usageRecordProblem } from '../store/rows.ts';
import { OwnerLock, ownerAlive, removeOwnerLock } from './spool-owner.ts';
import { StoreError, type RequestLogRecord, type Store, type UsageRecord } from '../store/types.ts';

export interface WriterOptions {
  store: Store;
  /** Where spool segments go; undefined: no spool (records only in memory until written). */
  spoolDir: string | undefined;
  batchSize: number;
  flushIntervalMs: number;
  maxBuffer: number;
  log: Logger;
  /** Records newly in the store (for budgets' bookkeeping). */
  onCommitted?: (records: readonly UsageRecord[]) => void;
  /** The store became reachable (true) or not (false). */
  onStoreState?: (up: boolean) => void;
  /** Ping the store when idle, so a refusing gateway knows when it is down or back. */
  pingWhenIdle?: boolean;
}

interface Segment {
  name: string;
  fd: number | undefined;
  /** Records appended and not yet committed. */
  outstanding: number;
  /** Some records were not kept in memory: replay the file before deleting it. */
  overflow: boolean;
  dirty: boolean;
  /** Records appended in all, and when the segment was opened: when to start the next one. */
  appended: number;
  openedAt: number;
  /** fdatasync calls not yet returned: the descriptor is closed after the last one. */
  syncing: number;
}

interface Queued { rec: UsageRecord; seg: Segment | undefined }

/**
 * usage-PID-sSTART-oTAG-TIMESEQ.jsonl: the writing process's pid, its start time and its owner
 * lock's tag (spool-owner.ts; older names have no sSTART or oTAG, as has a process that could not
 * take a lock).
 */
const SEGMENT = /^usage-(\d+)-(?:s(\d+)-)?(?:o([0-9a-f]+)-)?(\d+)\.jsonl$/;

/** Whether a file was last changed over `ms` ago (false if it is gone). */
function olderThan(path: string, ms: number): boolean {
  try {
    return statSync(path).mtimeMs < Date.now() - ms;
  } catch {
    return false;
  }
}

/** owner-TAG.lock: a writer's owner lock (spool-owner.ts). */
const OWNER_LOCK = /^owner-([0-9a-f]+)\.lock$/;
/** How often a running writer looks for segments of writers that died since (another instance on a shared data directory). */
const RESCAN_MS = 60_000;
/**
 * A new segment is started once this many records went into the current one, or once it is
 * this old: creating and deleting a file per batch cost more than the inserts themselves. A
 * crash replays at most one segment's already-committed records, which the store ignores
 * (inserts are idempotent on the request id).
 */
const SEGMENT_MAX_RECORDS = 4096;
const SEGMENT_MAX_AGE_MS = 10_000;
const MAX_LOG_QUEUE = 2_000;
/**
 * Longest a record waits for its batch when the batch does not fill first: less than two of
 * V8's young-generation collections at a few thousand requests a second, so records are not
 * promoted (bench --rate-only 1 with --trace-gc-nvp at 2,000 req/s: 7.1–7.4 MiB promoted in the
 * run against 9.7–10.6 MiB with batches held to the flush_interval).
 */
const LINGER_MS = 50;

function closeQuietly(fd: number): void {
  try {
    closeSync(fd);
  } catch {
    // the data was written; a failed close changes nothing
  }
}

/** A process's state letter and start time (clock ticks after boot), or undefined where there is none. */
function procStat(pid: number): { state: string; start: string } | undefined {
  const st = readProcStat(`/proc/${pid}/stat`);
  return st === undefined ? undefined : { state: st.fields[0] ?? '', start: st.fields[19] ?? '' };
}

/** This process's start time, written into its segments' names. */
const OWN_START = procStat(process.pid)?.start;

/**
 * Whether the process that wrote a segment is still running: not if it is gone, a zombie
 * (killed, not yet reaped), or its pid now belongs to another process (a restarted container's
 * PID 1, a recycled pid: its start time differs).
 */
function alive(pid: number, start: string | undefined): boolean {
  const st = procStat(pid);
  if (st !== undefined) return st.state !== 'Z' && st.state !== 'X' && (start === undefined || st.start === start);
  if (OWN_START !== undefined) return false; // /proc is there and has no such pid
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

export class UsageWriter {
  readonly #o: WriterOptions;
  #queue: Queued[] = [];
  #logs: RequestLogRecord[] = [];
  #active: Segment | undefined;
  #seq = 0;
  /** Segments whose records must be read back from disk: a crashed process's, or overflowed ones. */
  #replay: string[] = [];
  readonly #segments = new Set<Segment>();
  #timer: NodeJS.Timeout | undefined;
  #flushing: Promise<void> | undefined;
  #next: Promise<void> | undefined;
  /** While quiet() runs: no batch starts until it resolves. */
  #gate: Promise<void> | undefined;
  #failures = 0;
  #nextAttempt = 0;
  /** The lock that marks this writer's segments as a live process's. */
  #owner: OwnerLock | undefined;
  /** Lock tags of dead writers whose segments are being replayed: their lock files go once all are. */
  readonly #deadOwners = new Set<string>();
  #scannedAt = 0;
  #flushSoon = false;
  /** The flush that follows a first record within LINGER_MS (add()). */
  #linger: NodeJS.Timeout | undefined;
  /** When the spool was last fdatasync'ed: at most every flush_interval, however often batches go. */
  #lastSync = -Infinity;
  /** When opening a spool segment last failed (logged at most every 10 s). */
  #openFailedAt = 0;
  #closed = false;
  /** Spool lines added this turn, written together by #writeLines (setImmediate). */
  #lines = '';
  /** Answers waiting for #lines to be written (a list begun with the first: not grown from an empty one). */
  #held: (() => void)[] | undefined = undefined;
  #linesScheduled = false;
  /** This turn's records kept in the spool only (memory full): if its write fails they go back to memory. */
  #spoolOnly: UsageRecord[] = [];
  /** A write failed part-way: the next one starts on a new line, so the torn one costs only itself. */
  #torn = false;
  storeUp = true;
  /** Counters for metrics (gateway-metrics.ts) and tests. */
  readonly stats = { written: 0, failures: 0 };

  constructor(o: WriterOptions) {
    this.#o = o;
  }

  get queued(): number {
    return this.#queue.length;
  }

  /**
   * Resolves once no batch is being written. A batch reaches the store in several commits
   * (SQLite yields between groups) and is reported to onCommitted after the last: a reader of
   * settled spend waits for this, so it never sees rows that are also still counted pending.
   */
  idle(): Promise<void> {
    return this.#flushing === undefined ? Promise.resolve() : this.#flushing.then(() => this.idle());
  }

  /**
   * Runs `fn` once no batch is being written, and starts none until it is done (flushes asked
   * meanwhile follow it). A reader of settled spend runs in here: a batch committed while it
   * read would be in what it read and also still counted as this process's own, until the next
   * read (counted twice, so a budget near its cap refused requests it had room for).
   */
  async quiet<T>(fn: () => Promise<T>): Promise<T> {
    while (this.#gate !== undefined) await this.#gate;
    // The gate first, then the wait: a flush asked for while the batch in flight finishes
    // would otherwise start in between, and be written while fn reads.
    let open!: () => void;
    this.#gate = new Promise<void>((r) => { open = r; });
    try {
      await this.idle();
      return await fn();
    } finally {
      this.#gate = undefined;
      open();
    }
  }

  /** Replays spool segments left by processes that are gone (a crash), then starts the timer. */
  async start(): Promise<void> {
    const dir = this.#o.spoolDir;
    if (dir !== undefined) {
      mkdirSync(dir, { recursive: true, mode: 0o700 });
      this.#owner = OwnerLock.take(dir);
      if (this.#owner === undefined) {
        this.#o.log.warn('accounting: cannot take a spool owner lock; a gateway in another pid namespace (a container) sharing this data directory could take this one\'s spool files for a crashed run\'s', { dir });
      }
      this.#scan(dir);
      if (this.#replay.length > 0) {
        this.#o.log.info('accounting: replaying usage records spooled by a previous run', { segments: this.#replay.length });
        await this.#replaySpool().catch(() => {});
      }
    }
    this.#startTimer();
  }

  /** A reload's accounting settings, from now on (the spool's fdatasync follows the new flush_interval). */
  retune(o: Pick<WriterOptions, 'batchSize' | 'flushIntervalMs' | 'maxBuffer' | 'pingWhenIdle'>): void {
    const intervalChanged = o.flushIntervalMs !== this.#o.flushIntervalMs;
    this.#o.batchSize = o.batchSize;
    this.#o.flushIntervalMs = o.flushIntervalMs;
    this.#o.maxBuffer = o.maxBuffer;
    this.#o.pingWhenIdle = o.pingWhenIdle;
    if (intervalChanged && this.#timer !== undefined && !this.#closed) {
      clearInterval(this.#timer);
      this.#startTimer();
    }
  }

  #startTimer(): void {
    // Every flush_interval the spool is fdatasync'ed, whatever else has flushed since.
    this.#timer = setInterval(() => {
      this.#sync();
      void this.flush();
    }, this.#o.flushIntervalMs);
    this.#timer.unref();
  }

  /**
   * The active segment, opened now; undefined if it cannot be (no inodes left, a read-only
   * remount, the directory removed, no file descriptors): the record is then held in memory
   * only, past max_buffer if need be, rather than lost. The next record tries again.
   */
  #tryOpen(): Segment | undefined {
    try {
      return (this.#active = this.#open());
    } catch (e) {
      const now = Date.now();
      if (now - this.#openFailedAt >= 10_000) {
        this.#openFailedAt = now;
        this.#o.log.error('accounting: cannot open a usage spool segment; records are held in memory only until one can be', { error: (e as Error).message });
      }
      return undefined;
    }
  }

  #open(): Segment {
    const owner = this.#owner === undefined ? '' : `o${this.#owner.tag}-`;
    const name = join(this.#o.spoolDir!, `usage-${process.pid}-${OWN_START === undefined ? '' : `s${OWN_START}-`}${owner}${Date.now()}${String(this.#seq++).padStart(4, '0')}.jsonl`);
    const seg: Segment = { name, fd: openSync(name, 'a', 0o600), outstanding: 0, overflow: false, dirty: false, appended: 0, openedAt: Date.now(), syncing: 0 };
    this.#segments.add(seg);
    return seg;
  }

  /**
   * Records one request. Synchronous and cheap: the spool line is buffered for this turn's
   * write, and the record queued. The answer's end waits for whenSpooled().
   */
  add(rec: UsageRecord): void {
    // A record the store would refuse must not hold up the ones behind it.
    if (!Number.isFinite(rec.cost)) rec.cost = 0;
    if (!Number.isFinite(rec.promptTokens)) rec.promptTokens = 0;
    if (!Number.isFinite(rec.completionTokens)) rec.completionTokens = 0;
    let seg: Segment | undefined;
    if (this.#o.spoolDir !== undefined && !this.#closed) seg = this.#active ?? this.#tryOpen();
    if (seg !== undefined) {
      this.#lines += JSON.stringify(rec) + '\n';
      seg.outstanding++;
      seg.appended++;
      seg.dirty = true;
      if (!this.#linesScheduled) {
        this.#linesScheduled = true;
        setImmediate(this.#writeLines);
      }
    }
    if (this.#queue.length >= this.#o.maxBuffer && seg !== undefined) {
      // Memory is full (the store has been down long): the record waits in the spool file only,
      // and the segment is replayed from disk once its queued records are in (it is not counted
      // outstanding: nothing in memory will mark it done).
      seg.overflow = true;
      seg.outstanding--;
      this.#spoolOnly.push(rec);
      return;
    }
    this.#queue.push({ rec, seg });
    // A full batch is written soon, but not inside this call: add() runs before the answer's
    // last byte is sent, and a batch insert must not hold that answer up.
    if (this.#queue.length >= this.#o.batchSize && this.storeUp && !this.#flushSoon) {
      this.#flushSoon = true;
      setImmediate(() => {
        this.#flushSoon = false;
        void this.flush();
      });
    } else if (this.#linger === undefined && this.storeUp && !this.#closed) {
      // Otherwise within LINGER_MS: a record held until the next flush_interval outlives two
      // young-generation collections and is promoted, and the old generation it fills is
      // collected by full (mark-compact) pauses. One timer at a time, none when idle.
      this.#linger = setTimeout(this.#lingered, Math.min(LINGER_MS, this.#o.flushIntervalMs));
      this.#linger.unref();
    }
  }

  #lingered = (): void => {
    this.#linger = undefined;
    void this.flush();
  };

  /** Runs fn once every record added so far is in the spool file: at once when none is waiting. */
  whenSpooled(fn: () => void): void {
    if (this.#lines === '') fn();
    else if (this.#held === undefined) this.#held = [fn];
    else this.#held.push(fn);
  }

  /** This turn's spool lines written (scheduled by add()), then the answers that waited for them. */
  #writeLines = (): void => {
    this.#linesScheduled = false;
    this.#writePending();
    this.#release();
  };

  /**
   * This turn's spool lines, in one write into the active segment. Every pending line belongs
   * to it: #rotate writes them before it moves on, and releases no answer (which could add a
   * record) until the new segment is in place.
   */
  #writePending(): void {
    const lines = this.#lines;
    if (lines === '') return;
    this.#lines = '';
    const spoolOnly = this.#spoolOnly;
    this.#spoolOnly = [];
    const fd = this.#active?.fd;
    let written = 0;
    try {
      if (fd === undefined) throw new Error('no open spool segment');
      const bytes = Buffer.from(this.#torn ? '\n' + lines : lines);
      // One write as a rule; after a short one (a file-size limit, a full disk), on from where it stopped.
      while (written < bytes.length) {
        const n = writeSync(fd, bytes, written);
        if (n === 0) throw new Error('the spool file takes no more bytes');
        written += n;
      }
      this.#torn = false;
    } catch (e) {
      this.#torn = written > 0;
      // Records that were in the spool only go back to memory, past max_buffer: better over the
      // limit than lost. The others are queued already and reach the store as usual.
      for (const rec of spoolOnly) this.#queue.push({ rec, seg: undefined });
      this.#o.log.error('accounting: cannot append to the usage spool; this turn\'s records are held in memory only', {
        error: (e as Error).message, records: lines.split('\n').length - 1, back_in_memory: spoolOnly.length,
      });
    }
  }

  /** Runs the answers that waited for the spool write. */
  #release(): void {
    const held = this.#held;
    if (held === undefined) return;
    this.#held = undefined;
    for (const fn of held) {
      try {
        fn();
      } catch (e) {
        this.#o.log.error('accounting: an answer waiting for the spool failed', { error: String(e) });
      }
    }
  }

  addLog(rec: RequestLogRecord): void {
    // Best effort (README): past the cap the oldest entry is dropped.
    if (this.#logs.length >= MAX_LOG_QUEUE) this.#logs.shift();
    this.#logs.push(rec);
  }

  /** Writes what is queued now; a flush already running is followed by one more, so nothing queued before the call is left behind. */
  flush(): Promise<void> {
    const gate = this.#gate;
    if (gate !== undefined) {
      this.#next ??= gate.then(() => {
        this.#next = undefined;
        return this.flush();
      });
      return this.#next;
    }
    if (this.#flushing !== undefined) {
      this.#next ??= this.#flushing.then(() => {
        this.#next = undefined;
        return this.flush();
      });
      return this.#next;
    }
    this.#flushing = this.#flush().finally(() => { this.#flushing = undefined; });
    return this.#flushing;
  }

  #setUp(up: boolean): void {
    if (up === this.storeUp) return;
    this.storeUp = up;
    if (up) this.#o.log.info('accounting: the store is reachable again', { queued: this.#queue.length });
    this.#o.onStoreState?.(up);
  }

  #failed(e: unknown): void {
    this.#failures++;
    this.stats.failures++;
    // Backoff: 1, 2, 4 … flush intervals, at most 30 s between tries.
    this.#nextAttempt = performance.now() + Math.min(30_000, this.#o.flushIntervalMs * 2 ** Math.min(this.#failures - 1, 10));
    if (this.storeUp || this.#failures % 10 === 1) {
      this.#o.log.warn('accounting: cannot write to the store; records are kept and retried', {
        error: (e as Error).message, queued: this.#queue.length, spooled: this.#o.spoolDir !== undefined,
      });
    }
    this.#setUp(false);
  }

  async #flush(): Promise<void> {
    if (performance.now() - this.#lastSync >= this.#o.flushIntervalMs) this.#sync();
    else this.#writeLines();
    if (performance.now() < this.#nextAttempt) return; // monotonic: a clock stepped back does not stop flushes
    if (this.#o.spoolDir !== undefined && performance.now() - this.#scannedAt >= RESCAN_MS) this.#scan(this.#o.spoolDir);
    if (this.#queue.length === 0 && this.#replay.length === 0 && this.#logs.length === 0) {
      if (this.#o.pingWhenIdle === true || !this.storeUp) {
        try {
          await this.#o.store.ping();
          this.#failures = 0;
          this.#setUp(true);
        } catch (e) {
          this.#failed(e);
        }
      }
      return;
    }
    // New records go to a new segment from time to time, so that older segments, once all
    // their records are committed, can be deleted.
    const a = this.#active;
    // A segment holding records that overflowed memory is closed at once, so it can be replayed.
    if (a !== undefined && (a.appended >= SEGMENT_MAX_RECORDS || a.overflow || (a.outstanding > 0 && Date.now() - a.openedAt >= SEGMENT_MAX_AGE_MS))) this.#rotate();
    try {
      while (this.#queue.length > 0) {
        const batch = this.#queue.slice(0, this.#o.batchSize);
        const recs = batch.map((q) => q.rec);
        const inserted = await this.#insert(recs);
        this.#queue.splice(0, batch.length);
        this.stats.written += inserted;
        for (const q of batch) if (q.seg !== undefined) this.#done(q.seg);
        this.#o.onCommitted?.(recs);
        // A reader waiting in quiet() gets its turn between batches; the flush it deferred
        // (flush() chains one behind the gate) writes the rest.
        if (!this.#closed && (this.#queue.length < this.#o.batchSize || this.#gate !== undefined)) {
          if (this.#gate !== undefined && this.#queue.length > 0) void this.flush();
          break;
        }
        // SQLite writes block the event loop: let requests run between batches.
        await new Promise((r) => setImmediate(r));
      }
      if (this.#logs.length > 0) {
        const logs = this.#logs;
        this.#logs = [];
        await this.#o.store.insertRequestLogs(logs).catch((e: Error) => {
          this.#o.log.warn('request log: cannot write; dropped', { error: e.message, entries: logs.length });
        });
      }
      this.#failures = 0;
      this.#nextAttempt = 0;
      this.#setUp(true);
      if (this.#queue.length === 0) await this.#replaySpool();
    } catch (e) {
      this.#failed(e);
    }
  }

  /**
   * One batch. If the store refuses the statement itself (a constraint, bad data — not a lost
   * connection), records go one by one, and any it still refuses are set aside in
   * spool/rejected.jsonl, logged, rather than retried forever ahead of the others.
   */
  async #insert(recs: UsageRecord[]): Promise<number> {
    try {
      return await this.#o.store.insertUsage(recs);
    } catch (e) {
      if (!(e instanceof StoreError) || !e.permanent) throw e;
      let n = 0;
      for (const r of recs) {
        try {
          n += await this.#o.store.insertUsage([r]);
        } catch (one) {
          if (!(one instanceof StoreError) || !one.permanent) throw one;
          this.#setAside(JSON.stringify(r), 'the store refused a usage record', { id: r.id, error: (one as Error).message });
        }
      }
      return n;
    }
  }

  /** A record no store will take, kept in spool/rejected.jsonl for the operator (never replayed), and logged. */
  #setAside(line: string, why: string, fields: Record<string, unknown>): void {
    this.#o.log.error(`accounting: ${why}; it is set aside in the spool directory (rejected.jsonl)`, fields);
    if (this.#o.spoolDir === undefined) return;
    try {
      appendFileSync(join(this.#o.spoolDir, 'rejected.jsonl'), line + '\n', { mode: 0o600 });
    } catch {
      // logged above
    }
  }

  #rotate(): void {
    this.#writePending();
    const old = this.#active;
    this.#active = undefined;
    if (old !== undefined) {
      if (old.fd !== undefined && old.dirty) this.#syncSegment(old);
      this.#closeFd(old);
      this.#collect(old);
    }
    // Only now: a released answer may add a record, which must go to the next segment.
    this.#release();
  }

  /** fdatasync off the event loop; the descriptor stays open until it returns. */
  #syncSegment(seg: Segment): void {
    const fd = seg.fd!;
    seg.dirty = false;
    seg.syncing++;
    fdatasync(fd, () => {
      // Rotated (or stopped) while this sync ran: the descriptor is closed now.
      if (--seg.syncing === 0 && seg.fd === undefined) closeQuietly(fd);
    });
  }

  /** Closes a segment's descriptor: now, or when the last fdatasync still using it returns. */
  #closeFd(seg: Segment): void {
    if (seg.fd === undefined) return;
    if (seg.syncing === 0) closeQuietly(seg.fd);
    seg.fd = undefined;
  }

  #done(seg: Segment): void {
    seg.outstanding--;
    this.#collect(seg);
  }

  /**
   * Queues for replay the segments of writers that are gone: at start (a crash), and every
   * RESCAN_MS after (another instance sharing the data directory that died since). A segment
   * whose writer holds its owner lock is a live process's, in whatever pid namespace; without
   * a lock to ask, the pid and start time in its name tell.
   */
  #scan(dir: string): void {
    this.#scannedAt = performance.now();
    let files: string[];
    try {
      files = readdirSync(dir);
    } catch {
      return;
    }
    const own = new Set([...this.#segments].map((s) => s.name));
    const tagged = new Set<string>();
    for (const f of files) {
      const m = SEGMENT.exec(f);
      if (m === null) continue;
      const tag = m[3];
      if (tag !== undefined) tagged.add(tag);
      const path = join(dir, f);
      if (own.has(path) || this.#replay.includes(path) || (tag !== undefined && tag === this.#owner?.tag)) continue;
      // Live if its lock is held, or if its pid says so (our own pid on a segment not ours is a
      // previous process's): the pid alone is wrong only across pid namespaces, where the lock
      // tells; and where locks do nothing (some network file systems), the pid still protects.
      const live = (tag !== undefined && ownerAlive(dir, tag) === true) || (Number(m[1]) !== process.pid && alive(Number(m[1]), m[2]));
      if (live) continue;
      if (tag !== undefined) this.#deadOwners.add(tag);
      this.#replay.push(path);
    }
    // The lock of a writer that died with nothing left to replay goes too; not a fresh one, whose
    // writer may be between creating its file and locking it.
    for (const f of files) {
      const tag = OWNER_LOCK.exec(f)?.[1];
      if (tag === undefined || tag === this.#owner?.tag || tagged.has(tag) || !olderThan(join(dir, f), RESCAN_MS)) continue;
      if (ownerAlive(dir, tag) === false) removeOwnerLock(dir, tag);
    }
  }

  /** A closed segment with nothing outstanding is deleted; an overflowed one is replayed first. */
  #collect(seg: Segment): void {
    if (seg.fd !== undefined || seg.outstanding > 0) return;
    this.#segments.delete(seg);
    if (seg.overflow) {
      this.#replay.push(seg.name);
      return;
    }
    try {
      unlinkSync(seg.name);
    } catch {
      // already gone
    }
  }

  async #replaySpool(): Promise<void> {
    while (this.#replay.length > 0) {
      const file = this.#replay[0]!;
      let text: string;
      try {
        text = readFileSync(file, 'utf8');
      } catch {
        this.#replay.shift();
        continue;
      }
      const recs: UsageRecord[] = [];
      for (const line of text.split('\n')) {
        if (line === '') continue;
        let rec: unknown;
        try {
          rec = JSON.parse(line);
        } catch {
          // A torn last line (the process died mid-write) is skipped: its response never ended.
          continue;
        }
        // A line that is JSON but no record (edited or corrupted) would be refused by the store
        // batch after batch, holding back every record behind it.
        const problem = usageRecordProblem(rec);
        if (problem === undefined) recs.push(rec as UsageRecord);
        else this.#setAside(line, 'a spooled line is no usage record', { file, problem });
      }
      for (let i = 0; i < recs.length; i += this.#o.batchSize) {
        const chunk = recs.slice(i, i + this.#o.batchSize);
        const inserted = await this.#insert(chunk);
        this.stats.written += inserted;
        this.#o.onCommitted?.(chunk);
      }
      this.#replay.shift();
      try {
        unlinkSync(file);
      } catch {
        // already gone
      }
    }
    if (this.#o.spoolDir !== undefined) for (const tag of this.#deadOwners) removeOwnerLock(this.#o.spoolDir, tag);
    this.#deadOwners.clear();
  }

  #sync(): void {
    this.#writeLines();
    this.#lastSync = performance.now();
    const a = this.#active;
    if (a?.fd !== undefined && a.dirty) this.#syncSegment(a);
  }

  /** SIGTERM: write everything out (within timeoutMs); what cannot be written stays spooled for the next start. */
  async close(timeoutMs = 10_000): Promise<void> {
    clearInterval(this.#timer);
    clearTimeout(this.#linger);
    this.#lastSync = -Infinity; // the closing flush syncs the spool
    this.#closed = true;
    this.#nextAttempt = 0;
    const done = (async () => {
      await this.#flushing;
      await this.flush();
    })();
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([done, new Promise<void>((r) => { timer = setTimeout(r, timeoutMs); })]);
    clearTimeout(timer);
    this.#rotate();
    for (const s of this.#segments) this.#closeFd(s);
    if (this.#queue.length > 0) {
      this.#o.log.warn('accounting: stopped with records not yet in the store; they are in the spool and are written at the next start', { records: this.#queue.length });
    }
    this.#owner?.release();
  }
}

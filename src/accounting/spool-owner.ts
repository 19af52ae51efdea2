// Which process owns a spool segment, across pid namespaces. A segment's name carries its
// writer's pid and start time, which tell a live writer from a dead one only inside one pid
// namespace: two gateways in containers sharing a data directory are both PID 1, and each
// would take the other's live segments for a crashed run's and replay (and delete) them. So each
// writer also holds a lock for as long as it runs: a small SQLite file under an exclusive lock.
// SQLite locks with POSIX record locks, which the kernel releases when the process dies (killed,
// a zombie not yet reaped, in whatever namespace), and node:sqlite is built in.

import { randomBytes } from 'node:crypto';
import { existsSync, unlinkSync } from 'node:fs';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';

/** SQLITE_BUSY: another connection holds the lock. */
const SQLITE_BUSY = 5;

const lockFile = (dir: string, tag: string): string => join(dir, `owner-${tag}.lock`);

/** The lock this process holds on its segments while it runs. */
export class OwnerLock {
  /** Written into the names of the segments it owns. */
  readonly tag: string;
  readonly #path: string;
  #db: DatabaseSync | undefined;

  private constructor(tag: string, path: string, db: DatabaseSync) {
    this.tag = tag;
    this.#path = path;
    this.#db = db;
  }

  /** Takes a new lock in `dir`; undefined if it cannot (the segments then name the pid only). */
  static take(dir: string): OwnerLock | undefined {
    const tag = randomBytes(6).toString('hex');
    const path = lockFile(dir, tag);
    let db: DatabaseSync | undefined;
    try {
      db = new DatabaseSync(path);
      // EXCLUSIVE locking mode keeps the lock a write takes until the connection closes.
      db.exec('PRAGMA journal_mode = OFF; PRAGMA locking_mode = EXCLUSIVE; BEGIN EXCLUSIVE; CREATE TABLE owner (pid INTEGER); INSERT INTO owner VALUES (' + process.pid + '); COMMIT;');
      return new OwnerLock(tag, path, db);
    } catch {
      db?.close();
      return undefined;
    }
  }

  /** At a clean stop, once its segments are gone or handed on. */
  release(): void {
    if (this.#db === undefined) return;
    this.#db.close();
    this.#db = undefined;
    try {
      unlinkSync(this.#path);
    } catch {
      // already gone
    }
  }
}

/**
 * Whether the process whose lock tag a segment carries still runs: true while its lock is held,
 * false once it is free, undefined when there is no lock to ask (it was never taken, or a
 * previous check removed it), and the pid must tell.
 */
export function ownerAlive(dir: string, tag: string): boolean | undefined {
  const path = lockFile(dir, tag);
  if (!existsSync(path)) return undefined;
  let db: DatabaseSync | undefined;
  try {
    db = new DatabaseSync(path, { timeout: 0 });
    db.exec('PRAGMA journal_mode = OFF; BEGIN IMMEDIATE; ROLLBACK;');
    return false;
  } catch (e) {
    return (e as { errcode?: number }).errcode === SQLITE_BUSY ? true : undefined;
  } finally {
    db?.close();
  }
}

/** A dead owner's lock file, removed once its segments are replayed. */
export function removeOwnerLock(dir: string, tag: string): void {
  for (const f of [lockFile(dir, tag), `${lockFile(dir, tag)}-journal`]) {
    try {
      unlinkSync(f);
    } catch {
      // already gone
    }
  }
}

// Reloading on save. A watch on the file itself breaks the first time the file is replaced:
// editors (vim, sed -i) write a new file and rename it over the old one, Kubernetes swaps a
// `..data` symlink beside a ConfigMap's files, and a config may be a symlink into another
// directory. So the directories are watched (the file's, and its target's), any event in them
// is debounced, and a change is what stat(2) through the symlinks says changed: the file's (or
// the .env's) inode, size or modification time.

import { realpathSync, statSync, watch, type FSWatcher } from 'node:fs';
import { dirname, resolve } from 'node:path';

const DEBOUNCE_MS = 200;
/** A file still changing this long after a change was first seen is read as it is then. */
const MAX_SETTLE_MS = 2000;

function signature(path: string): string {
  try {
    const s = statSync(path);
    return `${s.dev}:${s.ino}:${s.size}:${s.mtimeMs}`;
  } catch {
    return 'missing';
  }
}

function dirsOf(paths: readonly string[]): Set<string> {
  const dirs = new Set<string>();
  for (const p of paths) {
    dirs.add(dirname(resolve(p)));
    try {
      dirs.add(dirname(realpathSync(p)));
    } catch {
      // not there (yet): its own directory is watched
    }
  }
  return dirs;
}

/** What stat says of each file now: to hand watchFiles as `since`. */
export function fileSignatures(paths: readonly string[]): string[] {
  return paths.map(signature);
}

/**
 * Calls onChange (debounced) when any of `paths` changes, however it is saved; returns the
 * stop. `since`: the files as they were when read (fileSignatures), so a change made between
 * the read and the watch is not missed.
 */
export function watchFiles(paths: readonly string[], onChange: () => void, since?: readonly string[]): () => void {
  let seen = since === undefined ? paths.map(signature) : [...since];
  // A change seen but not yet read: what stat said, and since when.
  let changing: string[] | undefined;
  let changingSince = 0;
  let watchers: FSWatcher[] = [];
  let debounce: NodeJS.Timeout | undefined;
  const later = (): void => {
    if (debounce !== undefined) return;
    debounce = setTimeout(() => {
      debounce = undefined;
      check();
    }, DEBOUNCE_MS);
    debounce.unref();
  };
  const arm = (): void => {
    for (const w of watchers) w.close();
    watchers = [];
    for (const dir of dirsOf(paths)) {
      try {
        // DEBOUNCE_MS after the first event, not after the last: a file written steadily in
        // the same directory (a log beside the config) must not put the check off for ever.
        const w = watch(dir, later);
        w.on('error', () => {}); // a directory removed under it: SIGHUP still works
        w.unref();
        watchers.push(w);
      } catch {
        // watching is a convenience; SIGHUP still works
      }
    }
  };
  const same = (a: readonly string[], b: readonly string[]): boolean => a.every((s, i) => s === b[i]);
  const check = (): void => {
    const now = paths.map(signature);
    if (same(now, seen)) {
      changing = undefined;
      return;
    }
    // Read only once stat says the same twice, DEBOUNCE_MS apart: a file still being written
    // (a large config copied in, an editor's slow save) is not read half-written.
    if (changing === undefined || !same(now, changing)) {
      if (changing === undefined) changingSince = Date.now();
      if (Date.now() - changingSince < MAX_SETTLE_MS) {
        changing = now;
        later();
        return;
      }
    }
    changing = undefined;
    seen = now;
    // A symlink now pointing elsewhere (a ConfigMap update): watch where it points now.
    arm();
    onChange();
  };
  arm();
  if (since !== undefined) later();
  return () => {
    clearTimeout(debounce);
    for (const w of watchers) w.close();
  };
}

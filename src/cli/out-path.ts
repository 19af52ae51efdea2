// Where a command writes what it made (--out): checked before any work, and a failure to write
// told in one line naming the path and the reason, exit 1 — never a stack trace, never a hang.

import { existsSync, realpathSync, statSync } from 'node:fs';
import { dirname, join, resolve, sep } from 'node:path';

// The kernel's own views: nothing of ours belongs there, and in /proc Node's recursive mkdir
// loops for ever (mkdir answers ENOENT, the parent exists, so it tries again).
const KERNEL_FS = ['/proc', '/sys'];

function kernelFs(abs: string): string | undefined {
  return KERNEL_FS.find((k) => abs === k || abs.startsWith(k + sep));
}

/** The deepest part of `abs` that exists (itself, or a folder above it). */
function existingPart(abs: string): string {
  let p = abs;
  while (!existsSync(p) && dirname(p) !== p) p = dirname(p);
  return p;
}

/**
 * Why `path` cannot take a `kind` ('dir': a folder that is created as needed; 'file': one file),
 * or undefined when writing may be tried. Whatever is not caught here (permissions, a full
 * disk) fails in the write, and writeFailure() words it.
 */
export function outPathProblem(path: string, kind: 'file' | 'dir'): string | undefined {
  const abs = resolve(path);
  const existing = existingPart(abs);
  // A folder is created through whatever its existing part links to; a file is only opened
  // (so /dev/stdout, a link into /proc/self, stays writable).
  let real = existing;
  if (kind === 'dir') {
    try { real = realpathSync(existing); } catch { /* the write will say */ }
  }
  const k = kernelFs(abs) ?? kernelFs(join(real, abs.slice(existing.length)));
  if (k !== undefined) return `it is under ${k}, a kernel file system: choose another ${kind === 'dir' ? 'folder' : 'file'}`;
  let isDir: boolean;
  try {
    isDir = statSync(existing).isDirectory();
  } catch {
    return undefined;
  }
  if (existing === abs) {
    if (kind === 'dir' && !isDir) return 'it is a file, not a folder';
    if (kind === 'file' && isDir) return 'it is a folder';
    return undefined;
  }
  if (!isDir) return `${existing} is a file, not a folder`;
  return undefined;
}

/** A file-system error as one line's reason: "not a directory (ENOTDIR)". Anything else is a bug and rethrown. */
export function fsReason(e: unknown): string {
  const err = e as NodeJS.ErrnoException;
  if (!(e instanceof Error) || typeof err.code !== 'string') throw e;
  // Node's message is "CODE: description, syscall 'path'"; the path is told apart.
  const m = /^[A-Z0-9_]+: ([^,]+)/.exec(err.message);
  return `${m?.[1] ?? err.message} (${err.code})`;
}

/** Writes `fabric CMD: cannot write PATH: REASON` for a failed write; returns the exit code, 1. */
export function writeFailure(cmd: string, path: string, e: unknown): 1 {
  const reason = fsReason(e);
  process.stderr.write(`fabric ${cmd}: cannot write ${(e as NodeJS.ErrnoException).path ?? path}: ${reason}\n`);
  return 1;
}

/** Checks `path` with outPathProblem, saying why it will not do; true when it may be used. */
export function outPathUsable(cmd: string, path: string, kind: 'file' | 'dir', verb = 'write'): boolean {
  const problem = outPathProblem(path, kind);
  if (problem === undefined) return true;
  process.stderr.write(`fabric ${cmd}: cannot ${verb} ${path}: ${problem}\n`);
  return false;
}

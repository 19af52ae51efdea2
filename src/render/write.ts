// Writing a render into a folder and saying what changed. The previous render's manifest tells
// a file this tool wrote (and may replace or remove) from one edited by hand since (reported).

import { chmodSync, copyFileSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { MANIFEST, sha256 } from './index.ts';
import type { RenderedFile } from './common.ts';

export type FileStatus = 'new' | 'changed' | 'unchanged' | 'removed' | 'kept';

export interface FileReport {
  path: string;
  status: FileStatus;
  /** A changed file that had been edited by hand since the last render (its edit is kept aside). */
  edited?: boolean;
  /** Why a file is noteworthy: edited by hand since the last render. */
  note?: string;
}

function readText(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return undefined;
  }
}

function previousManifest(outDir: string): Map<string, string> {
  const out = new Map<string, string>();
  const text = readText(join(outDir, MANIFEST));
  if (text === undefined) return out;
  for (const line of text.split('\n')) {
    const m = /^([0-9a-f]{64}) {2}(.+)$/.exec(line);
    if (m !== null) out.set(m[2]!, m[1]!);
  }
  return out;
}

/** What writing `files` into `outDir` would do, without doing it. */
export function diffRender(outDir: string, files: RenderedFile[]): FileReport[] {
  const before = previousManifest(outDir);
  const reports: FileReport[] = [];
  const now = new Set(files.map((f) => f.path));
  for (const f of files) {
    const current = readText(join(outDir, f.path));
    if (current === undefined) {
      reports.push({ path: f.path, status: 'new' });
      continue;
    }
    if (current === f.content) {
      reports.push({ path: f.path, status: 'unchanged' });
      continue;
    }
    const recorded = before.get(f.path);
    const edited = f.path !== MANIFEST && recorded !== undefined && recorded !== sha256(current);
    // What a write would do (fabric render --check writes nothing); writeRender says what it did.
    reports.push({ path: f.path, status: 'changed', ...(edited ? { edited: true, note: 'edited by hand since the last render; would be replaced, the edited one kept beside it' } : {}) });
  }
  for (const [path, hash] of before) {
    if (now.has(path)) continue;
    const current = readText(join(outDir, path));
    if (current === undefined) continue;
    if (sha256(current) === hash) reports.push({ path, status: 'removed' });
    else reports.push({ path, status: 'kept', note: 'no longer rendered, but edited by hand since: left in place' });
  }
  return reports;
}

/**
 * mkdir -p, one level at a time: Node's recursive mkdir loops for ever where mkdir answers
 * ENOENT under a parent that exists (in /proc); here each level is tried once, and a failure
 * throws the file system's error for that level.
 */
function makeDirs(dir: string): void {
  const missing: string[] = [];
  for (let d = dir; !existsSync(d) && dirname(d) !== d; d = dirname(d)) missing.unshift(d);
  for (const d of missing) mkdirSync(d);
}

/** Writes the render; returns what changed. Unchanged files are not touched (their mtimes stay). A failure throws the file system's error, which names the path. */
export function writeRender(outDir: string, files: RenderedFile[]): FileReport[] {
  const reports = diffRender(outDir, files);
  const byPath = new Map(files.map((f) => [f.path, f]));
  for (const r of reports) {
    const target = join(outDir, r.path);
    if (r.status === 'removed') {
      rmSync(target, { force: true });
      continue;
    }
    const f = byPath.get(r.path);
    if (f === undefined) continue;
    if (r.edited === true) {
      // The hand edit is kept beside it, under a name no render writes: nothing is lost.
      let keep = `${target}.edited`;
      for (let i = 2; existsSync(keep); i++) keep = `${target}.edited.${i}`;
      copyFileSync(target, keep);
      r.note = `edited by hand since the last render; replaced, the edited one kept as ${basename(keep)}`;
    }
    if (r.status !== 'unchanged') {
      makeDirs(dirname(target));
      writeFileSync(target, f.content, { mode: f.mode });
    }
    if (existsSync(target)) chmodSync(target, f.mode);
  }
  return reports;
}

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { appendFileSync, mkdirSync, readFileSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileSignatures, watchFiles } from './config-watch.ts';
import { tempDir } from '../../test/support/temp-dir.ts';

/** Calls of onChange, and a wait for the next one (bounded). */
function counter(): { n: () => number; next: (what: string) => Promise<void>; onChange: () => void } {
  let n = 0;
  let wake: (() => void) | undefined;
  return {
    n: () => n,
    onChange: () => { n++; wake?.(); },
    next: (what) => new Promise<void>((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`no change seen: ${what}`)), 3000);
      wake = () => { clearTimeout(t); wake = undefined; resolve(); };
    }),
  };
}
const settle = (): Promise<void> => new Promise((r) => setTimeout(r, 400));

test('a file saved in place, renamed over, and as a symlink into another directory is seen each time; other files are not', async () => {
  const dir = tempDir('fabric-watch-');
  const c = counter();
  const file = join(dir, 'fabric.yaml');
  writeFileSync(file, 'a: 1\n');
  const stop = watchFiles([file, join(dir, '.env')], c.onChange);
  try {
    let seen = c.next('in place');
    appendFileSync(file, 'b: 2\n');
    await seen;
    for (const v of ['x', 'y']) {
      seen = c.next(`renamed over (${v})`);
      writeFileSync(`${file}.tmp`, `${v}: 1\n`);
      renameSync(`${file}.tmp`, file);
      await seen;
    }
    seen = c.next('.env');
    writeFileSync(join(dir, '.env'), 'K=v\n');
    await seen;
    const before = c.n();
    writeFileSync(join(dir, 'unrelated.txt'), 'z');
    await settle();
    assert.equal(c.n(), before, 'another file in the directory is not a change');
  } finally {
    stop();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a ConfigMap update (the ..data symlink swapped) and an edit of a symlink\'s target in another directory are seen', async () => {
  const root = tempDir('fabric-watch-');
  const c = counter();
  try {
    // Kubernetes' layout: fabric.yaml -> ..data/fabric.yaml, ..data -> ..v1
    const mount = join(root, 'mount');
    mkdirSync(join(mount, '..v1'), { recursive: true });
    writeFileSync(join(mount, '..v1', 'fabric.yaml'), 'v: 1\n');
    symlinkSync('..v1', join(mount, '..data'));
    symlinkSync('..data/fabric.yaml', join(mount, 'fabric.yaml'));
    // Elsewhere: a config that is a symlink into another directory.
    mkdirSync(join(root, 'real'));
    mkdirSync(join(root, 'link'));
    writeFileSync(join(root, 'real', 'fabric.yaml'), 'w: 1\n');
    symlinkSync(join(root, 'real', 'fabric.yaml'), join(root, 'link', 'fabric.yaml'));
    const stop = watchFiles([join(mount, 'fabric.yaml'), join(root, 'link', 'fabric.yaml')], c.onChange);
    try {
      for (const v of ['..v2', '..v3']) {
        const seen = c.next(`ConfigMap swap to ${v}`);
        mkdirSync(join(mount, v));
        writeFileSync(join(mount, v, 'fabric.yaml'), `v: ${v}\n`);
        symlinkSync(v, join(mount, '..data_tmp'));
        renameSync(join(mount, '..data_tmp'), join(mount, '..data'));
        await seen;
      }
      const seen = c.next('the symlink\'s target edited');
      appendFileSync(join(root, 'real', 'fabric.yaml'), 'x: 2\n');
      await seen;
    } finally {
      stop();
    }
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test('a file written steadily beside the config (a log) does not put a change off', async () => {
  const dir = tempDir('fabric-watch-');
  const c = counter();
  const file = join(dir, 'fabric.yaml');
  writeFileSync(file, 'a: 1\n');
  const stop = watchFiles([file], c.onChange);
  const log = setInterval(() => appendFileSync(join(dir, 'fabric.log'), 'a line\n'), 50);
  try {
    await new Promise((r) => setTimeout(r, 150));
    const seen = c.next('an edit while the log keeps growing');
    appendFileSync(file, 'b: 2\n');
    await seen;
  } finally {
    clearInterval(log);
    stop();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a file still being written is read once it has stopped changing, not half-written', async () => {
  const dir = tempDir('fabric-watch-');
  const file = join(dir, 'fabric.yaml');
  writeFileSync(file, 'a: 1\n');
  const read: string[] = [];
  const c = counter();
  const stop = watchFiles([file], () => { read.push(readFileSync(file, 'utf8')); c.onChange(); });
  try {
    const seen = c.next('the finished file');
    appendFileSync(file, 'b: [1,');
    // A slow writer: the rest comes after the first event's debounce has passed.
    await new Promise((r) => setTimeout(r, 300));
    appendFileSync(file, ' 2]\n');
    await seen;
    await settle();
    assert.deepEqual(read, ['a: 1\nb: [1, 2]\n'], 'read once, whole');
  } finally {
    stop();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a change made after the file was read but before the watch began is seen (since); without one, nothing is called', async () => {
  const dir = tempDir('fabric-watch-since-');
  const file = join(dir, 'fabric.yaml');
  writeFileSync(file, 'a: 1\n');
  const read = fileSignatures([file]);
  await settle();
  writeFileSync(file, 'a: 2\nb: 3\n');
  const c = counter();
  const seen = c.next('changed before the watch');
  const stop = watchFiles([file], c.onChange, read);
  try {
    await seen;
    assert.equal(c.n(), 1);
    // Unchanged since it was read: no call.
    const quiet = counter();
    const stop2 = watchFiles([file], quiet.onChange, fileSignatures([file]));
    await settle();
    stop2();
    assert.equal(quiet.n(), 0);
  } finally {
    stop();
    rmSync(dir, { recursive: true, force: true });
  }
});

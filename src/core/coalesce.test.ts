import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Coalescer } from './coalesce.ts';

test('one pass at a time; calls during a pass make one more pass after it, and share its promise', async () => {
  let passes = 0;
  let inPass = 0;
  let most = 0;
  let release: (() => void) | undefined;
  const c = new Coalescer(async () => {
    passes++;
    most = Math.max(most, ++inPass);
    await new Promise<void>((r) => { release = r; });
    inPass--;
  });
  const first = c.run();
  assert.ok(c.running !== undefined);
  const second = c.run();
  const third = c.run();
  assert.equal(second, third, 'callers during a pass share one promise');
  release!();
  await new Promise((r) => setImmediate(r));
  assert.equal(passes, 2, 'the calls during the first pass made exactly one more');
  release!();
  await Promise.all([first, second, third]);
  assert.equal(most, 1, 'never two passes at once');
  assert.equal(c.running, undefined);
  const fourth = c.run();
  await new Promise((r) => setImmediate(r));
  release!();
  await fourth;
  assert.equal(passes, 3, 'a call once idle runs a pass of its own');
});

// Load-aware and sticky strategies over plain members: least-loaded by the engines' numbers,
// affinity keeping a conversation where it was while that backend is fit.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createBalancer, type Member } from './balancer.ts';
import { affinityKey } from './affinity.ts';

interface Fake extends Member {
  name: string;
  weight: number;
  outstanding: number;
  score?: number;
  busy?: boolean;
  down?: boolean;
}

const fake = (name: string, extra: Partial<Fake> = {}): Fake => ({
  name, weight: 1, outstanding: 0, ...extra,
  loadScore(this: Fake) { return this.score ?? this.outstanding; },
  overloaded(this: Fake) { return this.busy === true; },
  available(this: Fake) { return this.down !== true; },
});

test('round-robin, weighted and least-outstanding: the whole order, the rest as fallbacks', () => {
  const names = (ms: readonly Member[]) => ms.map((m) => m.name).join('');
  const rr = createBalancer('round-robin', [fake('a'), fake('b'), fake('c')]);
  assert.deepEqual([0, 1, 2, 3].map(() => names(rr.order())), ['abc', 'bca', 'cab', 'abc']);
  const w = createBalancer('weighted', [fake('a', { weight: 3 }), fake('b'), fake('c')]);
  const firsts = Array.from({ length: 5 }, () => w.order()[0]!.name).join('');
  assert.equal(firsts, 'abaca', 'smooth: a three times in five, never three in a row');
  const x = fake('x', { outstanding: 2 });
  const y = fake('y', { outstanding: 0 });
  const z = fake('z', { outstanding: 0 });
  const lo = createBalancer('least-outstanding', [x, y, z]);
  assert.deepEqual([names(lo.order()), names(lo.order()), names(lo.order())], ['yzx', 'yzx', 'zyx'], 'fewest in flight first; equals by rotation');
});

test('least-loaded: the lightest first; equals share by rotation', () => {
  const a = fake('a', { score: 5 });
  const b = fake('b', { score: 1 });
  const c = fake('c', { score: 3 });
  const bal = createBalancer('least-loaded', [a, b, c]);
  assert.deepEqual(bal.order().map((m) => m.name), ['b', 'c', 'a']);
  b.score = 9;
  assert.deepEqual(bal.order().map((m) => m.name), ['c', 'a', 'b']);
  const x = fake('x');
  const y = fake('y');
  const even = createBalancer('least-loaded', [x, y]);
  const firsts = [0, 1, 2, 3].map(() => even.order()[0]!.name);
  assert.deepEqual(firsts, ['x', 'y', 'x', 'y']);
  // Members without a load score are ranked by outstanding / weight.
  const plain = createBalancer('least-loaded', [{ name: 'p', weight: 1, outstanding: 4 }, { name: 'q', weight: 4, outstanding: 4 }]);
  assert.equal(plain.order()[0]!.name, 'q');
});

test('affinity: a conversation stays on its backend while it is available and not overloaded, then moves for good', () => {
  const a = fake('a');
  const b = fake('b');
  const bal = createBalancer('round-robin', [a, b], { affinity: true });
  assert.equal(bal.wantsAffinityKey, true);
  const first = bal.order('conv-1')[0]!;
  for (let i = 0; i < 5; i++) assert.equal(bal.order('conv-1')[0], first, 'sticky across turns');
  const other = first === a ? b : a;
  assert.equal(bal.order('conv-1').length, 2, 'the rest stay as fallback order');
  first.busy = true;
  assert.equal(bal.order('conv-1')[0], other, 'overloaded: moved');
  first.busy = false;
  assert.equal(bal.order('conv-1')[0], other, 'and stays where its cache is now warm');
  other.down = true;
  assert.equal(bal.order('conv-1')[0], first, 'cooling down: moved back');
  other.down = false;
  // Without a key it is the inner strategy.
  const inner = [bal.order()[0]!.name, bal.order()[0]!.name];
  assert.notEqual(inner[0], inner[1]);
  assert.equal(createBalancer('round-robin', [a, b]).wantsAffinityKey, undefined);
});

test('affinity: everything busy still yields an order; the table is bounded', () => {
  const a = fake('a', { busy: true });
  const b = fake('b', { busy: true, down: true });
  const bal = createBalancer('least-loaded', [a, b], { affinity: true, maxEntries: 2 });
  assert.equal(bal.order('k')[0], a, 'available though busy beats unavailable');
  // Bounded: with room for two, pinning two more conversations forgets the first.
  const c = fake('c', { score: 1 });
  const d = fake('d', { score: 2 });
  const small = createBalancer('least-loaded', [c, d], { affinity: true, maxEntries: 2 });
  assert.equal(small.order('k1')[0], c);
  c.score = 3;
  assert.equal(small.order('k1')[0], c, 'k1 stays where it was while c is fit');
  for (const k of ['k2', 'k3']) assert.equal(small.order(k)[0], d);
  assert.equal(small.order('k1')[0], d, 'k1 was forgotten: it goes to the lightest now');
});

test('affinityKey: the same for every turn of a conversation, different across conversations', () => {
  const sys = { role: 'system', content: 'You are terse.' };
  const turn1 = { model: 'chat-fast', messages: [sys, { role: 'user', content: 'What is a GPU?' }] };
  const turn2 = { model: 'chat-fast', messages: [sys, { role: 'user', content: 'What is a GPU?' }, { role: 'assistant', content: 'A chip.' }, { role: 'user', content: 'More?' }] };
  const other = { model: 'chat-fast', messages: [sys, { role: 'user', content: 'What is a CPU?' }] };
  assert.equal(affinityKey(turn1), affinityKey(turn2));
  assert.notEqual(affinityKey(turn1), affinityKey(other));
  const noSystem1 = { model: 'm', messages: [{ role: 'user', content: 'hi' }] };
  const noSystem2 = { model: 'm', messages: [{ role: 'user', content: 'hi' }, { role: 'assistant', content: 'hello' }, { role: 'user', content: 'and?' }] };
  assert.equal(affinityKey(noSystem1), affinityKey(noSystem2));
  assert.equal(affinityKey({ model: 'm', input: 'x' }), undefined);
  assert.match(affinityKey(turn1)!, /^[A-Za-z0-9_-]{22}$/);
});

test('affinity across a reload: the new balancer keeps each conversation on its backend\'s new runtime; one whose backend changed or left is forgotten', () => {
  const [a1, b1, c1] = [fake('a'), fake('b'), fake('c')];
  const before = createBalancer('round-robin', [a1, b1, c1], { affinity: true });
  const pinned = new Map<string, string>();
  for (const conv of ['k1', 'k2', 'k3', 'k4', 'k5', 'k6']) pinned.set(conv, before.order(conv)[0]!.name);
  assert.equal(new Set(pinned.values()).size, 3, 'spread over all three');
  // The reload: new runtimes for a and b (c was removed from the role; b's server changed).
  const [a2, b2] = [fake('a'), fake('b')];
  const after = createBalancer('round-robin', [a2, b2], { affinity: true });
  after.adopt!(before, (old) => (old === a1 ? a2 : undefined));
  for (const [conv, was] of pinned) {
    if (was === 'a') for (let i = 0; i < 3; i++) assert.equal(after.order(conv)[0], a2, `${conv} stays on a`);
  }
  // Without adopting, a fresh balancer places by its own rotation (two of the three on a would not all be kept).
  const plain = createBalancer('round-robin', [a2, b2], { affinity: true });
  const onA = [...pinned].filter(([, w]) => w === 'a').map(([k]) => k);
  assert.equal(onA.length, 2);
  assert.ok(onA.some((k) => plain.order(k)[0] !== a2), 'the rotation alone would have moved one');
  // A non-affinity balancer has nothing to adopt.
  assert.equal(createBalancer('round-robin', [a2, b2]).adopt, undefined);
});

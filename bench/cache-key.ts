// What the response cache adds to a request it covers: its key (the body in one field order,
// hashed) for a prompt of each size, and a lookup and a keep in the memory store.
//
//   node bench/cache-key.ts

import { cacheKey } from '../src/cache/key.ts';
import { MemoryStore } from '../src/cache/memory-store.ts';
import type { CacheEntry } from '../src/cache/entry.ts';

const parts = { scope: '', op: 'chat' as const, route: 'chat-fast', salt: '0123456789abcdef', passthrough: undefined };
/** The benchmark's own request (bench/shared.ts), with a user message of `chars` characters. */
const body = (chars: number): Record<string, unknown> => JSON.parse(JSON.stringify({
  model: 'chat-fast', max_tokens: 16, temperature: 0,
  messages: [{ role: 'system', content: 'You are a helpful assistant.' }, { role: 'user', content: chars === 0 ? 'Say hello to the benchmark in one short sentence.' : 'lorem ipsum '.repeat(Math.ceil(chars / 12)).slice(0, chars) }],
})) as Record<string, unknown>;

function time(label: string, n: number, fn: () => void): void {
  for (let i = 0; i < Math.min(n, 2_000); i++) fn();
  const t = performance.now();
  for (let i = 0; i < n; i++) fn();
  const us = ((performance.now() - t) * 1000) / n;
  console.log(`${label.padEnd(34)} ${us.toFixed(2).padStart(9)} µs`);
}

for (const [label, chars, n] of [['key, the benchmark\'s request', 0, 200_000], ['key, a 4 KB prompt', 4_000, 50_000], ['key, a 100 KB prompt', 100_000, 500]] as const) {
  const b = body(chars);
  time(label, n, () => cacheKey(parts, b as never));
}
const store = new MemoryStore(64 * 2 ** 20);
const entry: CacheEntry = { body: 'x'.repeat(600), role: 'chat-fast', backend: 'b', model: 'm', usage: undefined, storedAt: 0 };
const keys = Array.from({ length: 10_000 }, (_, i) => cacheKey(parts, { ...body(0), seed: i } as never));
let i = 0;
time('memory store: keep', 200_000, () => store.set(keys[i++ % keys.length]!, entry, 600, 3_600_000));
time('memory store: hit', 200_000, () => store.get(keys[i++ % keys.length]!));

// fabric usage's table as an operator reads it.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { usageTable } from './usage.ts';

const row = (group: string, keyId?: string) => ({ group, ...(keyId === undefined ? {} : { keyId }), requests: 1, errors: 0, promptTokens: 10, completionTokens: 5, cost: 0.01, avgLatencyMs: 12 });

test('by key, two keys with one name are told apart by their ids; a name of its own stands alone', () => {
  const out = usageTable('key', [row('obsidian', 'key_a'), row('obsidian', 'key_z'), row('trailblazer', 'key_t'), row('(none)')]);
  assert.match(out, /^obsidian \(key_a\) +1 /m);
  assert.match(out, /^obsidian \(key_z\) +1 /m);
  assert.match(out, /^trailblazer +1 /m);
  assert.match(out, /^\(none\) +1 /m);
  assert.match(out, /^total +4 /m);
});

test('usage table: costs below a cent keep two significant digits (a few tokens of a cheap model are not $0.0000)', () => {
  const row = { group: 'obsidian', requests: 3, errors: 0, promptTokens: 30, completionTokens: 9, cost: 0.0000384, avgLatencyMs: 12 };
  const out = usageTable('key', [row, { ...row, group: 'trailblazer', cost: 0 }]);
  assert.match(out, /obsidian +3 +0 +30 +9 +\$0\.000038 +12/);
  assert.match(out, /trailblazer +3 +0 +30 +9 +\$0 +12/);
  assert.match(out, /total +6 +0 +60 +18 +\$0\.000038/);
});

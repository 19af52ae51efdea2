// What accounting.retention's fold costs: N usage records over 20 days (one in --priced-every
// priced), folded into daily totals through the store's own rollupUsage in the gateway's chunks,
// and the budget spend query (what every sync_interval runs) timed before and after.
//
//   node bench/usage-fold.ts [--records 1000000] [--priced-every 50]

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { DatabaseSync } from 'node:sqlite';
import { SPEND_SQL, SqliteStore } from '../src/store/sqlite.ts';
import { ROLLUP_CHUNK } from '../src/store/rows.ts';

const { values } = parseArgs({ options: { records: { type: 'string', default: '1000000' }, 'priced-every': { type: 'string', default: '50' } } });
const N = Number(values.records);
const PRICED = Number(values['priced-every']);
const dir = mkdtempSync(join(tmpdir(), 'fabric-fold-'));
process.on('exit', () => rmSync(dir, { recursive: true, force: true }));
const file = join(dir, 'fabric.db');
const setup = new SqliteStore(file);
await setup.migrate();
await setup.close();

const DAY = 86_400_000;
const now = Date.now();
const start = now - 20 * DAY;
// Budgets ask from a UTC midnight (a period's start), where folded days count whole.
const since = Math.floor(start / DAY) * DAY;
const db = new DatabaseSync(file);
db.exec('BEGIN');
const insert = db.prepare(`INSERT INTO fabric_usage (id, ts, key_id, key_name, op, model, role, backend, upstream_model, status, code, prompt_tokens,
  completion_tokens, estimated, latency_ms, ttft_ms, attempts, rerouted, stream, cost) VALUES (?, ?, 'key_bench', 'bench', 'chat', 'chat-fast', 'chat-fast', ?, 'm', 200, NULL, 20, 16, 0, 5, NULL, 1, 0, 0, ?)`);
for (let i = 0; i < N; i++) {
  const priced = i % PRICED === 0;
  insert.run(`req_${i}`, start + Math.floor((i / N) * 20 * DAY), priced ? 'openai-strong' : 'armitage-qwen', priced ? 0.001 : 0);
}
db.exec('COMMIT');
const spend = db.prepare(SPEND_SQL);
const timeSpend = (): number => {
  const t = performance.now();
  for (let i = 0; i < 20; i++) spend.all(since);
  return (performance.now() - t) / 20;
};
const before = timeSpend();
const total = (spend.all(since) as { cost: number }[]).reduce((a, r) => a + r.cost, 0);
db.close();

const store = new SqliteStore(file);
const t = performance.now();
let folded = 0;
for (let n = await store.rollupUsage(now, ROLLUP_CHUNK); n > 0; n = await store.rollupUsage(now, ROLLUP_CHUNK)) folded += n;
const foldMs = performance.now() - t;
await store.close();

const after = new DatabaseSync(file);
const spendAfter = after.prepare(SPEND_SQL);
const t2 = performance.now();
for (let i = 0; i < 20; i++) spendAfter.all(since);
const afterMs = (performance.now() - t2) / 20;
const totalAfter = (spendAfter.all(since) as { cost: number }[]).reduce((a, r) => a + r.cost, 0);
after.close();

console.log(`${N.toLocaleString('en-US')} records over 20 days, ${Math.ceil(N / PRICED).toLocaleString('en-US')} priced`);
console.log(`fold: ${folded.toLocaleString('en-US')} records in ${(foldMs / 1000).toFixed(2)} s (${((foldMs * 1000) / folded).toFixed(2)} µs a record, ${ROLLUP_CHUNK.toLocaleString('en-US')} to a transaction)`);
console.log(`spend query: ${before.toFixed(2)} ms before, ${afterMs.toFixed(3)} ms after; total $${total.toFixed(2)} before, $${totalAfter.toFixed(2)} after`);
if (Math.abs(total - totalAfter) > 1e-6) {
  console.error('the spend summed differently after the fold');
  process.exit(1);
}

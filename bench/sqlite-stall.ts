// How long a usage insert can stop whoever runs it: SQLite on this machine's disk, the gateway's
// own schema and statements, 20,000 rows per round in transactions of --tx rows, and the worst
// transaction of the run. With the automatic WAL checkpoint (the default) a COMMIT now and then
// also fsyncs the database; `--no-checkpoint` shows the same run without it. This is why the
// gateway's store writes from a thread of its own (src/store/sqlite-writer.ts).
//
//   node bench/sqlite-stall.ts [--tx 100] [--no-checkpoint]

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { DatabaseSync } from 'node:sqlite';
import { MIGRATIONS } from '../src/store/migrations.ts';
import { USAGE_COLUMNS, usageValues } from '../src/store/rows.ts';

const { values } = parseArgs({ options: { tx: { type: 'string', default: '100' }, 'no-checkpoint': { type: 'boolean', default: false } } });
const TX = Number(values.tx);
const dir = mkdtempSync(join(tmpdir(), 'fabric-stall-'));
process.on('exit', () => rmSync(dir, { recursive: true, force: true }));
const db = new DatabaseSync(join(dir, 'fabric.db'));
db.exec(`PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA wal_autocheckpoint = ${values['no-checkpoint'] ? 0 : 1000};`);
for (const m of MIGRATIONS) db.exec(m.sqlite);
const one = `(${USAGE_COLUMNS.map(() => '?').join(', ')})`;
const insert = db.prepare(`INSERT INTO fabric_usage (${USAGE_COLUMNS.join(', ')}) VALUES ${new Array(100).fill(one).join(', ')} ON CONFLICT (id) DO NOTHING`);
let n = 0;
const record = () => ({
  id: `req_stall${(n++).toString(36).padStart(8, '0')}`, ts: Date.now(), keyId: 'key_bench', keyName: 'bench', op: 'chat' as const, model: 'chat-fast', role: 'chat-fast',
  backend: 'bench-fast', upstreamModel: 'bench/fast', status: 200, code: undefined, promptTokens: 20, completionTokens: 16, estimated: false, latencyMs: 0.4,
  ttftMs: undefined, attempts: 1, rerouted: false, stream: false, cost: 0,
});
const bool = (b: boolean): number => (b ? 1 : 0);
const rows = 20_000;
let worst = 0;
const cpu: number[] = [];
for (let round = 0; round < 6; round++) {
  const recs = Array.from({ length: rows }, record);
  const c0 = process.cpuUsage();
  for (let i = 0; i < rows; i += TX) {
    const t = performance.now();
    db.exec('BEGIN IMMEDIATE');
    for (let j = i; j < i + TX; j += 100) {
      const params: (string | number | null)[] = [];
      for (let k = j; k < j + 100; k++) for (const v of usageValues(recs[k]!, bool)) params.push(v as string | number | null);
      insert.run(...params);
    }
    db.exec('COMMIT');
    if (round > 0) worst = Math.max(worst, performance.now() - t);
  }
  const c = process.cpuUsage(c0);
  if (round > 0) cpu.push((c.user + c.system) / rows);
}
cpu.sort((a, b) => a - b);
console.log(`${TX} rows per transaction, checkpoints ${values['no-checkpoint'] ? 'off' : 'on'}: CPU ${cpu[2]!.toFixed(2)} µs per row (median of 5 rounds), worst transaction ${worst.toFixed(1)} ms`);

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { periodEnd, periodStart, usd } from './periods.ts';

const DAY = 86_400_000;

test('budget periods in UTC: day from midnight, week from Monday, month from the 1st, total forever', () => {
  const t = Date.UTC(2025, 5, 11, 15, 30); // Wednesday 11 June 2025
  assert.equal(periodStart('day', t), Date.UTC(2025, 5, 11));
  assert.equal(periodEnd('day', t), Date.UTC(2025, 5, 12));
  assert.equal(periodStart('week', t), Date.UTC(2025, 5, 9), 'Monday 9 June');
  assert.equal(periodEnd('week', t), Date.UTC(2025, 5, 16));
  assert.equal(periodStart('month', t), Date.UTC(2025, 5, 1));
  assert.equal(periodEnd('month', t), Date.UTC(2025, 6, 1));
  assert.equal(periodStart('total', t), 0);
  assert.equal(periodEnd('total', t), Infinity);
  // A Sunday belongs to the week that began the Monday before; December rolls into January.
  assert.equal(periodStart('week', Date.UTC(2025, 5, 15, 23, 59)), Date.UTC(2025, 5, 9));
  assert.equal(periodEnd('month', Date.UTC(2025, 11, 31, 23, 59, 59, 999)), Date.UTC(2026, 0, 1));
});

test('periods around now: the remembered current period never answers for a time outside it', () => {
  const now = Date.now();
  const midnight = periodStart('day', now);
  assert.equal(periodStart('day', midnight - 1), midnight - DAY, 'the last millisecond of yesterday');
  assert.equal(periodStart('day', midnight), midnight);
  assert.equal(periodStart('day', midnight + DAY - 1), midnight);
  assert.equal(periodStart('day', midnight + DAY), midnight + DAY, 'the first millisecond of tomorrow');
  assert.equal(periodEnd('day', midnight - 1), midnight);
  const month = periodStart('month', now);
  const m = new Date(month);
  assert.equal(periodStart('month', month - 1), Date.UTC(m.getUTCFullYear(), m.getUTCMonth() - 1, 1), 'the last millisecond of last month');
  assert.equal(periodStart('month', month), month);
  assert.equal(periodEnd('month', month - 1), month);
  // Far from now (a report about last year) and back.
  assert.equal(periodStart('month', Date.UTC(2020, 1, 15)), Date.UTC(2020, 1, 1));
  const d = new Date(now);
  assert.equal(periodStart('month', now), Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), 1));
});

test('usd: cents, and two significant digits below a cent, never an exponent', () => {
  assert.deepEqual([150, 0.5, 0.01, 0.00999, 0.000038, 1e-7, 0].map(usd), ['$150.00', '$0.50', '$0.01', '$0.01', '$0.000038', '$0.0000001', '$0.00']);
});

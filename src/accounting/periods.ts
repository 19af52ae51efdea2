// Budget periods in UTC: a day from midnight, a week from Monday, a month from the 1st;
// "total" never resets.

import type { BudgetPeriod } from '../config/types.ts';

function computeStart(period: BudgetPeriod, now: number): number {
  const d = new Date(now);
  switch (period) {
    case 'day': return Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), d.getUTCDate());
    case 'week': {
      const midnight = Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), d.getUTCDate());
      return midnight - ((d.getUTCDay() + 6) % 7) * 86_400_000;
    }
    case 'month': return Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), 1);
    case 'total': return 0;
  }
}

function computeEnd(period: BudgetPeriod, start: number): number {
  switch (period) {
    case 'day': return start + 86_400_000;
    case 'week': return start + 7 * 86_400_000;
    case 'month': {
      const d = new Date(start);
      return Date.UTC(d.getUTCFullYear(), d.getUTCMonth() + 1, 1);
    }
    case 'total': return Infinity;
  }
}

/** The current period of each kind: budget checks ask on every request, and the answer changes once a day at most. */
const current: Record<BudgetPeriod, { start: number; end: number }> = {
  day: { start: 0, end: -1 }, week: { start: 0, end: -1 }, month: { start: 0, end: -1 }, total: { start: 0, end: Infinity },
};

function window(period: BudgetPeriod, now: number): { start: number; end: number } {
  const c = current[period];
  if (now >= c.start && now < c.end) return c;
  const start = computeStart(period, now);
  const w = { start, end: computeEnd(period, start) };
  // Remembered only for the present (not for a report about some other time).
  if (Math.abs(now - Date.now()) < 86_400_000) current[period] = w;
  return w;
}

export function periodStart(period: BudgetPeriod, now: number): number {
  return window(period, now).start;
}

/** When the period that contains `now` ends; Infinity for "total". */
export function periodEnd(period: BudgetPeriod, now: number): number {
  return window(period, now).end;
}

/** "monthly", "daily", … for messages. */
export function periodAdjective(period: BudgetPeriod): string {
  return period === 'total' ? 'total' : period === 'day' ? 'daily' : `${period}ly`;
}

/** Below a cent: two significant digits, never in exponent form ($0.000038, $0.0000001). */
const SUB_CENT = new Intl.NumberFormat('en-US', { maximumSignificantDigits: 2, maximumFractionDigits: 20 });

/** Dollars: cents, or two significant digits below a cent (a few tokens of a cheap model). */
export function usd(n: number): string {
  return n >= 0.01 || n === 0 ? `$${n.toFixed(2)}` : `$${SUB_CENT.format(n)}`;
}

/**
 * A point in time as people type it for reports: a duration back from now ("7d", "24h",
 * "30m"), "today", "month" (its start), an ISO date or date-time, or unix seconds.
 */
export function parseWhen(v: string, now: number = Date.now()): number | undefined {
  const s = v.trim();
  const rel = /^(\d+(?:\.\d+)?)\s*(m|h|d|w)$/.exec(s);
  if (rel !== null) return now - Number(rel[1]) * { m: 60_000, h: 3_600_000, d: 86_400_000, w: 7 * 86_400_000 }[rel[2] as 'm' | 'h' | 'd' | 'w'];
  if (s === 'today') return periodStart('day', now);
  if (s === 'week') return periodStart('week', now);
  if (s === 'month') return periodStart('month', now);
  if (/^\d{9,11}$/.test(s)) return Number(s) * 1000;
  if (/^\d{4}-\d{2}-\d{2}([T ][\d:.]+(Z|[+-]\d{2}:?\d{2})?)?$/.test(s)) {
    const t = Date.parse(s.length === 10 ? `${s}T00:00:00Z` : s);
    return Number.isNaN(t) ? undefined : t;
  }
  return undefined;
}

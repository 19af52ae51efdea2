// The benchmark's summary: one row per figure, direct beside gateway, the difference, and the
// goal it is held to. The same rows go to stdout as a table and into the JSON.

export interface RowSpec {
  metric: string;
  unit: string;
  /** the upstream called directly; undefined where there is no direct counterpart (memory) */
  direct: number | undefined;
  /** the bare reference proxy (bench/bare-proxy.ts) in the gateway's place, where measured */
  bare: number | undefined;
  gateway: number;
  /** whether "added" (gateway − direct) is meaningful for this row */
  added: boolean;
  /** the bound the goal sets, if this row has one */
  goal: number | undefined;
  /** which figure the goal applies to */
  goalOn: 'added' | 'gateway';
  better: 'lower' | 'higher';
}

export interface Row extends RowSpec {
  addedValue: number | undefined;
  pass: boolean | undefined;
}

export function row(spec: RowSpec): Row {
  const addedValue = spec.added && spec.direct !== undefined ? spec.gateway - spec.direct : undefined;
  let pass: boolean | undefined;
  if (spec.goal !== undefined) {
    const v = spec.goalOn === 'added' ? addedValue : spec.gateway;
    pass = v !== undefined && Number.isFinite(v) && (spec.better === 'lower' ? v <= spec.goal : v >= spec.goal);
  }
  return { ...spec, addedValue, pass };
}

function fmt(v: number | undefined, unit: string, signed = false): string {
  if (v === undefined) return '';
  if (!Number.isFinite(v)) return 'n/a';
  let s: string;
  if (unit === 'ms') s = v.toFixed(3);
  else if (unit === 'req/s' || unit === 'µs') s = Math.round(v).toLocaleString('en-US');
  else s = v.toFixed(1);
  return `${signed && v >= 0 ? '+' : ''}${s} ${unit}`;
}

export interface TableText {
  header: string;
  machine: string;
  /** whether the bare-proxy column is shown */
  bare: boolean;
  footer: string[];
}

export function printTable(rows: Row[], notes: string[], text: TableText): string {
  const cells = rows.map((r) => [
    r.metric,
    fmt(r.direct, r.unit),
    ...(text.bare ? [fmt(r.bare, r.unit)] : []),
    fmt(r.gateway, r.unit),
    fmt(r.addedValue, r.unit, true),
    r.goal === undefined ? '' : `${r.goalOn === 'added' ? 'added ' : ''}${r.better === 'lower' ? '≤' : '≥'} ${fmt(r.goal, r.unit)}`,
    r.pass === undefined ? '' : r.pass ? 'PASS' : 'FAIL',
  ]);
  const head = ['metric', 'direct', ...(text.bare ? ['bare proxy'] : []), 'gateway', 'added', 'goal', 'result'];
  const widths = head.map((h, i) => Math.max(h.length, ...cells.map((c) => c[i]!.length)));
  const line = (c: string[]): string => c.map((s, i) => (i === 0 ? s.padEnd(widths[i]!) : s.padStart(widths[i]!))).join('  ').trimEnd();
  const rule = widths.map((w) => '─'.repeat(w)).join('  ');
  const out = [
    '',
    text.header,
    text.machine,
    '',
    line(head),
    rule,
    ...cells.map(line),
    rule,
    ...text.footer.map((f) => `  ${f}`),
    ...notes.map((n) => `  ! ${n}`),
    '',
  ];
  return out.join('\n');
}

// A small Prometheus registry: counters, gauges and histograms with fixed label names, rendered
// in the text exposition format (version 0.0.4). Recording is a Map lookup and an add; all
// formatting happens at scrape time. Label values come from the config (roles, backends) or
// from fixed sets (status codes, failure classes), never from request content, so series stay
// bounded.

export type Labels = readonly string[];

function escapeLabel(v: string): string {
  return v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');
}

function labelText(names: readonly string[], values: Labels, extra?: string): string {
  let s = '';
  for (let i = 0; i < names.length; i++) s += `${i === 0 ? '' : ','}${names[i]}="${escapeLabel(values[i] ?? '')}"`;
  if (extra !== undefined) s += `${s === '' ? '' : ','}${extra}`;
  return s === '' ? '' : `{${s}}`;
}

function num(v: number): string {
  if (Number.isNaN(v)) return 'NaN';
  if (v === Infinity) return '+Inf';
  if (v === -Infinity) return '-Inf';
  return String(v);
}

/** A family's series as numbers, for another process to render: [labels, values]. */
export type FamilySnapshot = [Labels, number[]][];
/**
 * One worker's series (workers sharing a port), by family name: a scrape of any worker shows
 * every worker's, each series with a `worker` label (the worker's index), so that counters
 * stay monotonic per worker through a worker's restart or a scrape it missed.
 */
export interface Snapshot { worker: string; families: Record<string, FamilySnapshot> }

interface Metric {
  readonly name: string;
  render(out: string[], own?: string, others?: readonly [string, FamilySnapshot][]): void;
  snapshot(): FamilySnapshot;
}

abstract class Family<S> implements Metric {
  readonly name: string;
  readonly help: string;
  readonly labelNames: readonly string[];
  protected readonly series = new Map<string, { labels: Labels; s: S }>();
  abstract readonly type: string;

  constructor(name: string, help: string, labelNames: readonly string[]) {
    this.name = name;
    this.help = help;
    this.labelNames = labelNames;
  }

  /** The series for these label values, made now if new: a handle a hot path can keep. */
  handle(labels: Labels): S {
    return this.get(labels);
  }

  protected get(labels: Labels): S {
    const key = labels.length === 1 ? labels[0]! : labels.join('\u0001');
    let e = this.series.get(key);
    if (e === undefined) {
      e = { labels: [...labels], s: this.fresh() };
      this.series.set(key, e);
    }
    return e.s;
  }

  /** Drops every series whose labels `keep` refuses (a revoked key's, say). */
  retain(keep: (labels: Labels) => boolean): void {
    for (const [k, e] of this.series) if (!keep(e.labels)) this.series.delete(k);
  }

  protected abstract fresh(): S;
  protected abstract lines(labels: Labels, s: S, out: string[], names?: readonly string[]): void;
  /** A series as numbers, and back. */
  protected abstract values(s: S): number[];
  protected abstract fromValues(v: readonly number[]): S;

  snapshot(): FamilySnapshot {
    return [...this.series.values()].map(({ labels, s }) => [labels, this.values(s)]);
  }

  /**
   * The family in the text format; given this worker's index (`own`), every series with a
   * `worker` label, followed by the other workers' (`others`: [index, their series]).
   */
  render(out: string[], own?: string, others: readonly [string, FamilySnapshot][] = []): void {
    out.push(`# HELP ${this.name} ${this.help}`, `# TYPE ${this.name} ${this.type}`);
    if (own === undefined) {
      for (const { labels, s } of this.series.values()) this.lines(labels, s, out);
      return;
    }
    const names = [...this.labelNames, 'worker'];
    for (const { labels, s } of this.series.values()) this.lines([...labels, own], s, out, names);
    for (const [worker, series] of others) {
      for (const [labels, v] of series) this.lines([...labels, worker], this.fromValues(v), out, names);
    }
  }
}

export class Counter extends Family<{ v: number }> {
  readonly type = 'counter';
  protected fresh(): { v: number } { return { v: 0 }; }
  inc(labels: Labels, by = 1): void {
    this.get(labels).v += by;
  }
  value(labels: Labels): number {
    return this.get(labels).v;
  }
  protected lines(labels: Labels, s: { v: number }, out: string[], names = this.labelNames): void {
    out.push(`${this.name}${labelText(names, labels)} ${num(s.v)}`);
  }
  protected values(s: { v: number }): number[] { return [s.v]; }
  protected fromValues(v: readonly number[]): { v: number } { return { v: v[0] ?? 0 }; }
}

export class Gauge extends Family<{ v: number }> {
  readonly type = 'gauge';
  protected fresh(): { v: number } { return { v: 0 }; }
  set(labels: Labels, v: number): void {
    this.get(labels).v = v;
  }
  inc(labels: Labels, by = 1): void {
    this.get(labels).v += by;
  }
  /** Drop every series (for gauges rebuilt from state at each scrape). */
  reset(): void {
    this.series.clear();
  }
  protected lines(labels: Labels, s: { v: number }, out: string[], names = this.labelNames): void {
    out.push(`${this.name}${labelText(names, labels)} ${num(s.v)}`);
  }
  protected values(s: { v: number }): number[] { return [s.v]; }
  protected fromValues(v: readonly number[]): { v: number } { return { v: v[0] ?? 0 }; }
}

interface HistogramSeries { counts: Float64Array; sum: number; count: number }

export class Histogram extends Family<HistogramSeries> {
  readonly type = 'histogram';
  readonly buckets: readonly number[];

  constructor(name: string, help: string, labelNames: readonly string[], buckets: readonly number[]) {
    super(name, help, labelNames);
    this.buckets = [...buckets].sort((a, b) => a - b);
  }

  protected fresh(): HistogramSeries {
    return { counts: new Float64Array(this.buckets.length + 1), sum: 0, count: 0 };
  }

  observe(labels: Labels, v: number): void {
    const s = this.get(labels);
    const b = this.buckets;
    let i = 0;
    while (i < b.length && v > b[i]!) i++;
    s.counts[i]!++;
    s.sum += v;
    s.count++;
  }

  protected lines(labels: Labels, s: HistogramSeries, out: string[], names = this.labelNames): void {
    let cumulative = 0;
    for (let i = 0; i < this.buckets.length; i++) {
      cumulative += s.counts[i]!;
      out.push(`${this.name}_bucket${labelText(names, labels, `le="${num(this.buckets[i]!)}"`)} ${cumulative}`);
    }
    out.push(`${this.name}_bucket${labelText(names, labels, 'le="+Inf"')} ${s.count}`);
    out.push(`${this.name}_sum${labelText(names, labels)} ${num(s.sum)}`);
    out.push(`${this.name}_count${labelText(names, labels)} ${s.count}`);
  }

  protected values(s: HistogramSeries): number[] {
    return [...s.counts, s.sum, s.count];
  }

  protected fromValues(v: readonly number[]): HistogramSeries {
    const n = this.buckets.length + 1;
    return { counts: Float64Array.from(v.slice(0, n)), sum: v[n] ?? 0, count: v[n + 1] ?? 0 };
  }
}

export class Registry {
  readonly #metrics: Metric[] = [];
  readonly #collectors: (() => void)[] = [];

  counter(name: string, help: string, labelNames: readonly string[] = []): Counter {
    const c = new Counter(name, help, labelNames);
    this.#metrics.push(c);
    return c;
  }

  gauge(name: string, help: string, labelNames: readonly string[] = []): Gauge {
    const g = new Gauge(name, help, labelNames);
    this.#metrics.push(g);
    return g;
  }

  histogram(name: string, help: string, labelNames: readonly string[], buckets: readonly number[]): Histogram {
    const h = new Histogram(name, help, labelNames, buckets);
    this.#metrics.push(h);
    return h;
  }

  /** Runs before each scrape, to set gauges from live state. */
  onCollect(fn: () => void): void {
    this.#collectors.push(fn);
  }

  /**
   * The text format. In a worker of several (`worker`: its index), every series is labelled
   * with its worker, and the other workers' snapshots follow this one's.
   */
  render(worker?: string, others: readonly Snapshot[] = []): string {
    for (const c of this.#collectors) c();
    const out: string[] = [];
    for (const m of this.#metrics) {
      const theirs: [string, FamilySnapshot][] = [];
      for (const o of others) {
        const f = o.families[m.name];
        if (Array.isArray(f)) theirs.push([o.worker, f]);
      }
      m.render(out, worker, theirs);
    }
    return out.join('\n') + '\n';
  }

  /** This worker's series as numbers, for another worker's render(). */
  snapshot(worker: string): Snapshot {
    for (const c of this.#collectors) c();
    const families: Record<string, FamilySnapshot> = {};
    for (const m of this.#metrics) families[m.name] = m.snapshot();
    return { worker, families };
  }
}

export const PROMETHEUS_CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8';

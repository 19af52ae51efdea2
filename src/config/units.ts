// Durations and sizes as people write them in YAML ("30s", "500ms", "4MiB"); bare numbers
// are milliseconds and bytes. Parsed once at load, so the hot path only sees numbers.

const DURATION = /^(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?$/;
const DURATION_MS = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 } as const;

export function parseDuration(v: unknown): number | undefined {
  if (typeof v === 'number') return Number.isFinite(v) && v >= 0 ? v : undefined;
  if (typeof v !== 'string') return undefined;
  const m = DURATION.exec(v.trim());
  if (m === null) return undefined;
  const unit = (m[2] ?? 'ms') as keyof typeof DURATION_MS;
  return Math.round(Number(m[1]) * DURATION_MS[unit]);
}

const GO_PART = /(\d+\.?\d*|\.\d+)(ns|us|µs|μs|ms|s|m|h)/g;
const GO_DURATION = /^[-+]?(?:(?:\d+\.?\d*|\.\d+)(?:ns|us|µs|μs|ms|s|m|h))+$/;
const GO_UNIT_MS: Record<string, number> = { ns: 1e-6, us: 1e-3, µs: 1e-3, μs: 1e-3, ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/** Go's longest duration (math.MaxInt64 ns, some 292 years) in ms: what Ollama's keep_alive "for good" is. */
export const GO_MAX_DURATION_MS = 9_223_372_036_854;

/** Go's time.ParseDuration ("1h30m", "-5m", ".5h", "0"), in milliseconds; undefined if Go would refuse it. */
export function parseGoDuration(v: string): number | undefined {
  if (v === '0' || v === '-0' || v === '+0') return 0;
  if (!GO_DURATION.test(v)) return undefined;
  let ms = 0;
  for (const m of v.matchAll(GO_PART)) ms += Number(m[1]) * GO_UNIT_MS[m[2]!]!;
  return v.startsWith('-') ? -ms : ms;
}

const SIZE = /^(\d+(?:\.\d+)?)\s*(b|kb|kib|mb|mib|gb|gib)?$/i;
const SIZE_BYTES: Record<string, number> = {
  b: 1, kb: 1000, kib: 1024, mb: 1_000_000, mib: 1024 ** 2, gb: 1_000_000_000, gib: 1024 ** 3,
};

export function parseSize(v: unknown): number | undefined {
  if (typeof v === 'number') return Number.isFinite(v) && v >= 0 ? Math.floor(v) : undefined;
  if (typeof v !== 'string') return undefined;
  const m = SIZE.exec(v.trim());
  if (m === null) return undefined;
  return Math.floor(Number(m[1]) * SIZE_BYTES[(m[2] ?? 'b').toLowerCase()]!);
}

/** Bytes as people read them: 8 MiB, 8.6 MiB, 64 KiB, 512 bytes (binary units, as sizes are written here). */
/** A time as people read it: "340 ms", "12.3 s". */
export function formatMs(ms: number): string {
  return ms >= 1000 ? `${(ms / 1000).toFixed(1)} s` : `${Math.round(ms)} ms`;
}

export function formatSize(bytes: number): string {
  for (const [unit, n] of [['GiB', 2 ** 30], ['MiB', 2 ** 20], ['KiB', 2 ** 10]] as const) {
    if (bytes >= n) return `${+(bytes / n).toFixed(1)} ${unit}`;
  }
  return `${bytes} bytes`;
}

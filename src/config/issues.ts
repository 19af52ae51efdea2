// A config problem, located in its file. `fabric config check` and `fabric serve` print
// these the same way: file:line:col  key.path  message.

export type KeyPath = readonly (string | number)[];

export interface ConfigIssue {
  severity: 'error' | 'warning';
  file: string;
  line: number;    // 1-based; 0 when the issue has no place in the file
  col: number;
  path: string;    // dotted key path, e.g. roles.chat-fast.fallbacks[1]
  message: string;
}

export function formatPath(path: KeyPath): string {
  let out = '';
  for (const p of path) {
    if (typeof p === 'number') out += `[${p}]`;
    else out += out === '' ? p : `.${p}`;
  }
  return out === '' ? '(top level)' : out;
}

export function formatIssue(i: ConfigIssue): string {
  const where = i.line > 0 ? `${i.file}:${i.line}:${i.col}` : i.file;
  return `${where}: ${i.severity}: ${i.path}: ${i.message}`;
}

/**
 * Issues as the file reads: by file, then line and column. Stable, so issues at one place keep
 * the order they were found in; those found after parsing (an unset secret, a TLS file) take
 * their place among the rest rather than trail them.
 */
export function inFileOrder(issues: readonly ConfigIssue[]): ConfigIssue[] {
  return [...issues].sort((a, b) => (a.file < b.file ? -1 : a.file > b.file ? 1 : 0) || a.line - b.line || a.col - b.col);
}

export class ConfigError extends Error {
  /** In file order, wherever they are printed (config check, serve's refusal, a reload's). */
  readonly issues: ConfigIssue[];
  constructor(issues: ConfigIssue[]) {
    const sorted = inFileOrder(issues);
    const errors = sorted.filter((i) => i.severity === 'error');
    super(`invalid configuration (${errors.length} error${errors.length === 1 ? '' : 's'}):\n` + errors.map(formatIssue).join('\n'));
    this.name = 'ConfigError';
    this.issues = sorted;
  }
}

/** Closest candidate by edit distance, for "did you mean" hints on typos. */
export function suggest(word: string, candidates: Iterable<string>): string | undefined {
  let best: string | undefined;
  let bestD = Infinity;
  const allowed = Math.max(2, Math.floor(word.length / 3));
  for (const c of candidates) {
    // The distance is at least the difference in length: skip without the O(n·m) table (a
    // request's model name can be megabytes long).
    if (Math.abs(word.length - c.length) > allowed || word.length > 1024) continue;
    const d = editDistance(word, c);
    if (d < bestD) { bestD = d; best = c; }
  }
  return best !== undefined && bestD <= Math.max(2, Math.floor(word.length / 3)) ? best : undefined;
}

function editDistance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    let prev = row[0]!;
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const tmp = row[j]!;
      row[j] = Math.min(row[j]! + 1, row[j - 1]! + 1, prev + (a[i - 1] === b[j - 1] ? 0 : 1));
      prev = tmp;
    }
  }
  return row[b.length]!;
}

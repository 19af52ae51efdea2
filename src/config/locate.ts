// Key path → line:col in a parsed YAML document, so every config issue names its place in
// the file. Shared by the native loader and the LiteLLM translation, which reports against
// the LiteLLM file the user wrote rather than the fabric config it becomes.

import { LineCounter, isMap, isScalar, isSeq, parseDocument, type Document, type Node } from 'yaml';
import { ConfigError, formatPath, type ConfigIssue, type KeyPath } from './issues.ts';
import type { Reporter } from './schema.ts';
import { yamlSyntaxIssues } from './yaml-errors.ts';

export type Located = { line: number; col: number };

/** Finds the deepest node of `path` that exists; `onKey` points at the key rather than its value. */
export function locator(doc: Document, lc: LineCounter): (path: KeyPath, onKey: boolean) => Located {
  return (path, onKey) => {
    let node: unknown = doc.contents;
    let best: Located = { line: 1, col: 1 };
    const at = (n: unknown): Located | undefined => {
      const range = (n as Node | null)?.range;
      if (range === undefined || range === null) return undefined;
      const pos = lc.linePos(range[0]);
      return { line: pos.line, col: pos.col };
    };
    best = at(node) ?? best;
    for (let i = 0; i < path.length; i++) {
      const key = path[i]!;
      const last = i === path.length - 1;
      if (isMap(node)) {
        const pair = node.items.find((p) => isScalar(p.key) && String(p.key.value) === String(key));
        if (pair === undefined) return best;
        if (last && onKey) return at(pair.key) ?? best;
        best = at(pair.value) ?? at(pair.key) ?? best;
        node = pair.value;
      } else if (isSeq(node) && typeof key === 'number') {
        const item = node.items[key];
        if (item === undefined) return best;
        best = at(item) ?? best;
        node = item;
      } else {
        return best;
      }
    }
    return best;
  };
}

/** A YAML file parsed for validation: its plain value, and a reporter that places issues in it. */
export interface YamlSource {
  value: unknown;
  issues: ConfigIssue[];
  reporter: Reporter;
  locate: (path: KeyPath, onKey: boolean) => Located;
}

/** Parses YAML (keys unique, aliases bounded); syntax errors throw ConfigError with their place (yaml-errors.ts). */
export function readYamlSource(text: string, file: string): YamlSource {
  const lc = new LineCounter();
  // prettyErrors off: its messages end in "at line L, column C:" and an excerpt, which our
  // file:line:col already says; yamlSyntaxIssues places and words them.
  const doc = parseDocument(text, { lineCounter: lc, uniqueKeys: true, prettyErrors: false });
  if (doc.errors.length > 0) throw new ConfigError(yamlSyntaxIssues(doc, text, lc, file));
  const issues: ConfigIssue[] = [];
  const locate = locator(doc, lc);
  const push = (severity: 'error' | 'warning') => (path: KeyPath, message: string, onKey = false): void => {
    const { line, col } = locate(path, onKey);
    issues.push({ severity, file, line, col, path: formatPath(path), message });
  };
  return { value: doc.toJS({ maxAliasCount: 100 }), issues, reporter: { error: push('error'), warn: push('warning') }, locate };
}

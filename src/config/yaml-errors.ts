// YAML syntax errors as config issues: the yaml library's message without its own
// "at line L, column C:" suffix and code excerpt (we print file:line:col ourselves), placed
// where the problem is rather than where the parser noticed it. An unclosed quote or bracket
// is noticed only at the end of the file or at the next line that is indented less, so the
// raw position is a line (or many) past the mistake; we point at the opening character and
// say where the parser gave up.

import { isCollection, isMap, isScalar, visit, type Document, type LineCounter, type Node } from 'yaml';
import type { ConfigIssue } from './issues.ts';
import type { Located } from './locate.ts';

/** Every syntax error of `doc`, at most one per line: later errors on a line are the parser losing its footing after the first. */
export function yamlSyntaxIssues(doc: Document, text: string, lc: LineCounter, file: string): ConfigIssue[] {
  const out: ConfigIssue[] = [];
  const seenLines = new Set<number>();
  for (const e of doc.errors) {
    const offset = e.pos[0];
    const raw = lc.linePos(offset);
    if (seenLines.has(raw.line)) continue;
    seenLines.add(raw.line);
    const { at, message } = describeError(doc, text, lc, e.code, tidy(e.message), offset);
    out.push({ severity: 'error', file, line: at.line, col: at.col, path: '(yaml)', message });
  }
  return out;
}

/** The library's message as one clause: no position suffix, no excerpt, lower-case like ours. */
export function tidy(message: string): string {
  const first = message.split('\n')[0]!.replace(/ at line \d+, column \d+:?\s*$/, '').replace(/[:.]\s*$/, '').trim();
  return /^[A-Z][a-z]/.test(first) ? first[0]!.toLowerCase() + first.slice(1) : first;
}

function describeError(doc: Document, text: string, lc: LineCounter, code: string, message: string, offset: number): { at: Located; message: string } {
  const here = lc.linePos(skipIndent(text, offset));
  const atEnd = offset >= text.trimEnd().length;
  const gaveUp = atEnd ? 'the end of the file' : `line ${lc.linePos(offset).line}`;
  const quote = /^missing closing (["'])quote$/.exec(message);
  if (quote !== null) {
    const opener = unclosed(doc, offset, (n) => isScalar(n) && n.type === (quote[1] === '"' ? 'QUOTE_DOUBLE' : 'QUOTE_SINGLE'));
    if (opener !== undefined) return { at: lc.linePos(opener), message: `missing closing ${quote[1]} quote: the string opened here runs on to ${gaveUp}` };
  }
  const flow = /^flow (sequence|map)\b.*end with a ([\]}])$/.exec(message);
  if (flow !== null) {
    const opener = unclosed(doc, offset, (n) => isCollection(n) && n.flow === true && (flow[1] === 'map') === isMap(n));
    const bracket = flow[2] === ']' ? '[' : '{';
    // Cut off by a line indented too little: the bracket may be closed further on, so do not say it never is.
    const what = atEnd ? 'is never closed' : `is cut off at ${gaveUp}`;
    if (opener !== undefined) return { at: lc.linePos(opener), message: `the "${bracket}" opened here ${what}: ${message}` };
  }
  if (code === 'DUPLICATE_KEY') {
    const first = firstOfDuplicate(doc, offset);
    if (first !== undefined) return { at: here, message: `duplicate key "${first.key}" (first at line ${lc.linePos(first.offset).line}): ${message}` };
  }
  return { at: here, message };
}

/** An error at a line's indentation belongs to what the line holds: the first non-space character. */
function skipIndent(text: string, offset: number): number {
  const lineStart = text.lastIndexOf('\n', offset - 1) + 1;
  if (!/^ *$/.test(text.slice(lineStart, offset))) return offset;
  let i = offset;
  while (text[i] === ' ') i++;
  return i < text.length && text[i] !== '\n' && text[i] !== '\r' ? i : offset;
}

/** Start of the outermost node matching `kind` that the parser cut off at `offset`. */
function unclosed(doc: Document, offset: number, kind: (n: Node) => boolean): number | undefined {
  let best: number | undefined;
  visit(doc, (_key, node) => {
    const n = node as Node;
    const range = n.range;
    if (range === undefined || range === null || !kind(n)) return;
    if (range[1] === offset && range[0] < offset && (best === undefined || range[0] < best)) best = range[0];
  });
  return best;
}

/** The key a DUPLICATE_KEY error at `offset` repeats, and where it first appears in its mapping. */
function firstOfDuplicate(doc: Document, offset: number): { key: string; offset: number } | undefined {
  let found: { key: string; offset: number } | undefined;
  visit(doc, {
    Map(_key, map) {
      const dup = map.items.find((p) => isScalar(p.key) && p.key.range?.[0] === offset);
      if (dup === undefined || !isScalar(dup.key)) return;
      const name = String(dup.key.value);
      const first = map.items.find((p) => isScalar(p.key) && String(p.key.value) === name);
      if (first !== undefined && isScalar(first.key) && first.key.range !== undefined && first.key.range !== null) {
        found = { key: name, offset: first.key.range[0] };
        return visit.BREAK;
      }
    },
  });
  return found;
}

// The translated document as a commented fabric YAML file: what `fabric config import`
// writes. Comments say where each part came from and why a mapping needed a choice; the
// head lists what was not carried over. Secrets appear only as env:NAME references.

import { basename } from 'node:path';
import { Document, isMap, isScalar, isSeq, type Node, type Pair } from 'yaml';
import type { ConfigIssue, KeyPath } from '../issues.ts';
import type { TranslateResult } from './translate.ts';

function indent(lines: string[]): string {
  return lines.map((l) => ` ${l}`).join('\n');
}

/** The node a comment attaches to: a map key (so the comment sits above the entry) or a list item. */
function anchor(doc: Document, path: KeyPath): Node | undefined {
  if (path.length === 0) return undefined;
  const parent = path.length === 1 ? doc.contents : doc.getIn(path.slice(0, -1), true);
  const last = path[path.length - 1]!;
  if (isMap(parent)) {
    const pair = parent.items.find((p: Pair) => (isScalar(p.key) ? p.key.value : p.key) === last);
    return pair !== undefined && isScalar(pair.key) ? pair.key : undefined;
  }
  if (isSeq(parent) && typeof last === 'number') return parent.items[last] as Node | undefined;
  return undefined;
}

function flow(doc: Document, path: KeyPath): void {
  const n = doc.getIn(path, true);
  if (isSeq(n) || isMap(n)) n.flow = true;
}

export function emitNativeYaml(result: TranslateResult, source: string, issues: readonly ConfigIssue[]): string {
  const { doc: native, t } = result;
  const doc = new Document(native);
  for (const [name, role] of Object.entries(native.roles)) {
    for (const k of ['backends', 'aliases', 'fallbacks'] as const) if (role[k] !== undefined) flow(doc, ['roles', name, k]);
    role.rules?.forEach((_, i) => flow(doc, ['roles', name, 'rules', i]));
  }
  for (const name of Object.keys(native.backends)) flow(doc, ['backends', name, 'timeouts']);
  native.patterns?.forEach((_, i) => flow(doc, ['patterns', i, 'backends']));
  flow(doc, ['gateway', 'retry']);
  for (const name of Object.keys(native.prices ?? {})) flow(doc, ['prices', name]);
  for (const name of Object.keys(native.budgets ?? {})) for (const k of ['engines', 'backends'] as const) flow(doc, ['budgets', name, k]);
  if (isMap(doc.contents)) {
    doc.contents.items.forEach((p, i) => {
      if (i > 0 && isScalar(p.key)) p.key.spaceBefore = true;
    });
  }
  for (const { path, lines } of t.notes.values()) {
    const node = anchor(doc, path);
    if (node === undefined) continue;
    node.commentBefore = indent(node.commentBefore === undefined || node.commentBefore === null ? lines : [node.commentBefore.trim(), ...lines]);
  }

  const head = [
    `AI Fabric config imported from ${basename(source)} (a LiteLLM proxy config) by \`fabric config import\`.`,
    'It routes as serving the LiteLLM file does:  fabric serve --config <this file>',
    'Secrets are references (env:NAME): their values stay in the environment or the .env file.',
    'LiteLLM knows no machines: add `nodes:` (GPUs, `power: workstation` for those often off, `wol:` to',
    'wake them) and `node:` on each backend, so that a workstation that is off reads as expected, not',
    'down, in fabric health and alerts, and fabric plan and render know what runs where.',
  ];
  if (t.header.length > 0) head.push('', 'Mapping notes:', ...t.header.map((h) => `  - ${h}`));
  const warnings = issues.filter((i) => i.severity === 'warning');
  if (warnings.length > 0) {
    head.push('', 'Not carried over as written (fabric config check on the LiteLLM file reports the same, with line numbers):');
    for (const w of warnings) head.push(`  - ${w.path}: ${w.message}`);
  }
  doc.commentBefore = indent(head);
  return doc.toString({ lineWidth: 0, flowCollectionPadding: false });
}

// Top self-time functions of a V8 .cpuprofile (what `node --cpu-prof` writes), with the
// gateway's own code (src/) marked, so a profile can be read without DevTools.
//
//   node bench/profile-top.ts <file.cpuprofile> [N]

import { readFileSync } from 'node:fs';
import { relative } from 'node:path';
import { fileURLToPath } from 'node:url';

interface CpuProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number; columnNumber: number };
  hitCount?: number;
}

interface CpuProfile {
  nodes: CpuProfileNode[];
  startTime: number;
  endTime: number;
  samples: number[];
  timeDeltas: number[];
}

export interface ProfileRow {
  fn: string;
  where: string;
  selfMs: number;
  selfPct: number;
  ours: boolean;
}

function where(url: string, line: number, root: string): string {
  if (url === '') return '(native)';
  let path = url;
  if (url.startsWith('file://')) {
    try {
      path = relative(root, fileURLToPath(url));
    } catch {
      path = url;
    }
  }
  // The benchmark runs the compiled build: name its files by their sources.
  if (path.startsWith('bench/results/build/src/')) path = path.slice('bench/results/build/'.length);
  return `${path}:${line + 1}`;
}

function category(fn: string, at: string): string {
  if (fn === '(idle)') return 'idle';
  if (fn === '(garbage collector)') return 'garbage collector';
  if (fn === '(program)') return 'V8/runtime outside JS (program)';
  if (at.startsWith('src/')) return 'project code (src/)';
  if (at.includes('node_modules/undici/')) return 'undici (JS)';
  if (at.includes('node_modules/')) return 'other dependencies';
  if (at.startsWith('node:')) return 'Node core JS (http, net, streams, events)';
  if (at === '(native)') return 'native bindings (socket writes, crypto, parser)';
  return 'other';
}

export interface ProfileCategory {
  category: string;
  ms: number;
  pctOfBusy: number;
}

export function topSelfTime(file: string, root: string, n = 30): { rows: ProfileRow[]; ownRows: ProfileRow[]; categories: ProfileCategory[]; totalMs: number; text: string } {
  const p = JSON.parse(readFileSync(file, 'utf8')) as CpuProfile;
  const byId = new Map<number, CpuProfileNode>();
  for (const node of p.nodes) byId.set(node.id, node);
  // Each sample's time is the delta to the next sample: attribute it to the sampled node.
  const selfUs = new Map<string, { fn: string; where: string; us: number; ours: boolean }>();
  let totalUs = 0;
  for (let i = 0; i < p.samples.length; i++) {
    const dt = p.timeDeltas[i + 1] ?? 0;
    const node = byId.get(p.samples[i]!);
    if (node === undefined) continue;
    const cf = node.callFrame;
    const w = where(cf.url, cf.lineNumber, root);
    const fn = cf.functionName === '' ? '(anonymous)' : cf.functionName;
    const key = `${fn} ${w}`;
    const e = selfUs.get(key) ?? { fn, where: w, us: 0, ours: w.startsWith('src/') };
    e.us += dt;
    selfUs.set(key, e);
    totalUs += dt;
  }
  const busyUs = totalUs - [...selfUs.values()].filter((e) => e.fn === '(idle)').reduce((a, e) => a + e.us, 0);
  const all = [...selfUs.values()].sort((a, b) => b.us - a.us).map((e) => ({
    fn: e.fn, where: e.where, selfMs: e.us / 1000, selfPct: totalUs > 0 ? (100 * e.us) / totalUs : 0, ours: e.ours,
  }));
  const byCategory = new Map<string, number>();
  for (const e of selfUs.values()) byCategory.set(category(e.fn, e.where), (byCategory.get(category(e.fn, e.where)) ?? 0) + e.us);
  const categories = [...byCategory].filter(([c]) => c !== 'idle').sort((a, b) => b[1] - a[1])
    .map(([c, us]) => ({ category: c, ms: us / 1000, pctOfBusy: busyUs > 0 ? (100 * us) / busyUs : 0 }));
  const rows = all.slice(0, n);
  const ownRows = all.filter((r) => r.ours).slice(0, n);
  const line = (r: ProfileRow): string => `  ${r.selfPct.toFixed(1).padStart(5)}%  ${r.selfMs.toFixed(0).padStart(7)} ms  ${r.ours ? '*' : ' '} ${r.fn}  ${r.where}`;
  const text = [
    `profile: ${(totalUs / 1000).toFixed(0)} ms sampled, ${(busyUs / 1000).toFixed(0)} ms not idle. Busy time by where it was spent:`,
    ...categories.map((c) => `  ${c.pctOfBusy.toFixed(1).padStart(5)}%  ${c.ms.toFixed(0).padStart(7)} ms  ${c.category}`),
    '',
    `top ${n} functions by self time (* = project code):`,
    ...rows.map(line),
    '',
    `top project functions (src/) by self time:`,
    ...ownRows.map(line),
    '',
  ].join('\n');
  return { rows, ownRows, categories, totalMs: totalUs / 1000, text };
}

interface HeapNode {
  callFrame: { functionName: string; url: string; lineNumber: number };
  selfSize: number;
  children: HeapNode[];
}

/**
 * Bytes allocated per request by function, from a sampling heap profile taken with garbage
 * included (HeapProfiler.startSampling with includeObjectsCollectedBy{Major,Minor}GC): what
 * makes the young generation fill up, and so how often it is scavenged.
 */
export function allocTop(file: string, requests: number, n = 25): string {
  const root = fileURLToPath(new URL('..', import.meta.url));
  const { head } = JSON.parse(readFileSync(file, 'utf8')) as { head: HeapNode };
  const by = new Map<string, number>();
  let total = 0;
  const walk = (node: HeapNode): void => {
    if (node.selfSize > 0) {
      const f = node.callFrame;
      const key = `${f.functionName || '(anonymous)'}  ${where(f.url, f.lineNumber, root)}`;
      by.set(key, (by.get(key) ?? 0) + node.selfSize);
      total += node.selfSize;
    }
    for (const c of node.children) walk(c);
  };
  walk(head);
  const per = (b: number): string => `${(b / requests / 1024).toFixed(2).padStart(7)} KiB/req`;
  const rows = [...by.entries()].sort((a, b) => b[1] - a[1]).slice(0, n);
  return [
    `allocated (sampled, garbage included): ${(total / 2 ** 20).toFixed(0)} MiB over ${requests} requests: ${per(total)}`,
    ...rows.map(([k, b]) => `  ${per(b)}  ${(100 * b / total).toFixed(1).padStart(5)}%  ${k}`),
    '',
  ].join('\n');
}

if (import.meta.main) {
  const file = process.argv[2];
  if (file === undefined) {
    process.stderr.write('usage: node bench/profile-top.ts <file.cpuprofile> [N]\n');
    process.exit(2);
  }
  const root = fileURLToPath(new URL('..', import.meta.url));
  process.stdout.write(topSelfTime(file, root, Number(process.argv[3] ?? 30)).text);
}

// The plan as a person reads it: one table per GPU, each engine's arithmetic spelled out
// beneath it, then the roles' reach and every finding.

import type { Finding } from './findings.ts';
import { count, fixed, gib } from './format.ts';
import type { EnginePlan, GpuPlan, Plan } from './plan.ts';

function table(rows: string[][], indent = '  '): string[] {
  const widths: number[] = [];
  for (const r of rows) r.forEach((c, i) => { widths[i] = Math.max(widths[i] ?? 0, c.length); });
  return rows.map((r) => indent + r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!))).join('  ').trimEnd());
}

const dash = '—';

function engineRow(e: EnginePlan): string[] {
  const decoder = e.arch?.kind === 'decoder';
  const share = e.engine === 'vllm' ? `${fixed(e.utilization ?? 0)} = ${gib(e.shareBytes)}` : `need ${gib(e.shareBytes)}`;
  if (e.arch === undefined) return [e.backend, e.engine, e.model, dash, share, '?', '?', '?', '?', '?', '?', '?'];
  return [
    e.backend,
    e.engine,
    e.model,
    e.quantization?.name === 'none' ? (e.dtype ?? dash) : (e.quantization?.name ?? dash),
    share,
    gib(e.weightsBytes),
    gib(e.activationBytes + e.nonTorchBytes),
    decoder ? gib(e.kvCacheBytes) : 'none',
    decoder ? `${+(e.kvBytesPerToken / 1024).toFixed(1)} KiB` : dash,
    decoder ? count(e.kvTokens) : dash,
    e.maxModelLen === undefined ? dash : count(e.maxModelLen),
    e.maxConcurrency === undefined ? dash : e.engine === 'vllm' ? `${fixed(e.maxConcurrency)}x` : `${e.maxConcurrency} slot${e.maxConcurrency === 1 ? '' : 's'}`,
  ];
}

function gpuSection(g: GpuPlan): string[] {
  const cc = g.computeCapability === undefined ? '' : ` · compute ${g.computeCapability.toFixed(1)}`;
  const out = [`${g.node} · GPU ${g.index} · ${g.model} · ${gib(g.memoryBytes)}${cc} · ${g.power}`];
  if (g.engines.length === 0) {
    out.push('  (no engine served here)', '');
    return out;
  }
  out.push(...table([
    ['backend', 'engine', 'model', 'weights as', 'share', 'weights', '~overhead', '~KV cache', 'per token', '~KV tokens', 'max len', '~concurrency'],
    ...g.engines.map(engineRow),
  ]));
  const util = g.engines.some((e) => e.engine === 'vllm') ? ` (utilization ${fixed(g.utilizationSum)})` : '';
  const reserved = g.reservedBytes > 0 ? ` + ${gib(g.reservedBytes)} reserved` : '';
  out.push(`  GPU: shares ${gib(g.sharesBytes)}${util} + ~${gib(g.outsideBytes)} per-process overhead outside them${reserved}; ${g.freeBytes >= 0 ? `~${gib(g.freeBytes)} free` : `~${gib(-g.freeBytes)} short`}`);
  for (const e of g.engines) {
    out.push('', `  ${e.backend} (${e.engine} on :${e.port}${e.arch === undefined ? '' : `, ${e.arch.name} from the ${e.arch.source === 'catalogue' ? 'catalogue' : 'hf_config'}`})`);
    for (const line of e.explain) out.push(`    ${line}`);
  }
  out.push('');
  return out;
}

const MARK: Record<Finding['severity'], string> = { error: '✗ error  ', warning: '! warning', note: '· note   ' };

export function formatPlan(plan: Plan, source: string): string {
  const out: string[] = [
    `fabric plan: ${source}`,
    'Figures marked ~ rest on estimates (activation peak, per-process overhead; see "fabric plan --help"); weights and bytes per token are exact arithmetic.',
    '',
  ];
  const used = plan.gpus.filter((g) => g.engines.length > 0);
  if (used.length === 0) out.push('No backend has a serve: block, so there is nothing to size on a GPU.', '');
  for (const g of plan.gpus) out.push(...gpuSection(g));
  if (plan.notServed.length > 0) {
    out.push('Not launched by the fabric:');
    out.push(...table(plan.notServed.map((n) => [n.backend, n.reason])), '');
  }
  if (plan.roles.length > 0) {
    out.push('Roles and their reach when workstations are off:');
    out.push(...table(plan.roles.map((r) => [
      r.role,
      r.backends.map((b) => `${b.name} (${b.power === 'cloud' ? 'cloud' : `${b.node}, ${b.power}`})`).join(', '),
      r.alwaysOn ? (r.via === r.role ? 'always on' : `always on via ${r.via}`) : 'OFF when the workstations are',
    ])), '');
  }
  const notes = plan.findings.filter((f) => f.severity === 'note').length;
  out.push(`Findings: ${plan.errors} error${plan.errors === 1 ? '' : 's'}, ${plan.warnings} warning${plan.warnings === 1 ? '' : 's'}, ${notes} note${notes === 1 ? '' : 's'}`);
  for (const f of plan.findings) out.push(`  ${MARK[f.severity]} ${f.where}: ${f.message}`);
  return out.join('\n') + '\n';
}

// fabric render FILE [--out DIR] [--check]: deploy files for every node, the gateway and LiteLLM.

import { basename } from 'node:path';
import { planFabric } from '../plan/plan.ts';
import { renderFabric } from '../render/index.ts';
import { diffRender, writeRender, type FileReport } from '../render/write.ts';
import { parseCommand, usageError } from './args.ts';
import { openFabricFile } from './fabric-file.ts';
import { outPathUsable, writeFailure } from './out-path.ts';

const HELP = `Usage: fabric render [FILE | --config FILE] [--out DIR] [--check]

Renders, from the fabric config alone:
  nodes/NODE/compose.yaml          the node's engines: vLLM, Ollama, llama.cpp containers with
                                   their GPUs reserved and health checks (Docker or Podman)
  nodes/NODE/*.service             a systemd unit running that compose project (Linux nodes)
  nodes/NODE/launch/ENGINE.sh      the engine's launch command on the host (vllm serve …);
                                   .ps1 with a container run line on Windows nodes
  gateway/                         systemd unit, Containerfile, compose.yaml (with PostgreSQL
                                   and Redis services when the config uses them: gateway.store,
                                   gateway.redis), the config itself, env.example
  litellm/config.yaml              the same fabric as a LiteLLM proxy config
  monitoring/                      prometheus.yml (the gateway and the engines' own /metrics),
                                   ai-fabric-alerts.yml (the runbook's levels as alerting rules),
                                   grafana-dashboard.json (traffic, errors, latency, fleet, cost)
  MANIFEST.sha256                  every file's hash (sha256sum -c MANIFEST.sha256)

Secrets stay references (\${NAME}, os.environ/NAME, env.example lists the names); no value is
ever written, and a config whose serve.extra_args or serve.env holds one (--api-key VALUE,
sk-…, hf_…) is refused. A backend's api_key reaches a vLLM or llama.cpp engine as
VLLM_API_KEY / LLAMA_API_KEY, by reference. The same config gives byte-identical files.

  FILE, --config FILE   the fabric config (default: $FABRIC_CONFIG)
  --out DIR             write into DIR and report each file as new, changed or unchanged
                        (files of an earlier render that are no longer produced are removed
                        unless edited by hand since; a changed file edited by hand is kept
                        beside the new one as FILE.edited); without --out, print every file
  --check               with --out: write nothing, exit 1 if DIR is not what the config renders

Engines are rendered whatever the plan says; "fabric plan" tells whether they will fit.
`;

const STATUS_WIDTH = 10;

/** Each file's line (`changesOnly`: not the unchanged ones), then the counts of all. */
function printReport(reports: FileReport[], changesOnly = false): void {
  for (const r of reports) {
    if (changesOnly && r.status === 'unchanged') continue;
    process.stdout.write(`${r.status.padEnd(STATUS_WIDTH)}${r.path}${r.note === undefined ? '' : `  (${r.note})`}\n`);
  }
  const n = (s: FileReport['status']): number => reports.filter((r) => r.status === s).length;
  process.stdout.write(`${n('new')} new, ${n('changed')} changed, ${n('unchanged')} unchanged, ${n('removed')} removed${n('kept') > 0 ? `, ${n('kept')} kept` : ''}\n`);
}

export async function runRender(argv: string[]): Promise<number> {
  const parsed = parseCommand('render', HELP, { args: argv, allowPositionals: true, options: {
    config: { type: 'string', short: 'c' }, out: { type: 'string', short: 'o' }, check: { type: 'boolean' }, help: { type: 'boolean', short: 'h' },
  } });
  if (typeof parsed === 'number') return parsed;
  if (parsed.values.check === true && parsed.values.out === undefined) return usageError('render', '--check needs --out DIR to compare with');
  const loaded = openFabricFile('render', HELP, parsed.positionals[0], parsed.values.config);
  if (typeof loaded === 'number') return loaded;
  const file = loaded.path;
  const plan = planFabric(loaded.config);
  if (plan.errors > 0) {
    process.stderr.write(`fabric render: note: the plan has ${plan.errors} error${plan.errors === 1 ? '' : 's'}; rendering anyway (fabric plan ${file})\n`);
  }
  const files = renderFabric(loaded.config, basename(file), loaded.text);
  const out = parsed.values.out;
  if (out === undefined) {
    for (const f of files) process.stdout.write(`==> ${f.path} <==\n${f.content}${f.content.endsWith('\n') ? '' : '\n'}\n`);
    return 0;
  }
  if (!outPathUsable('render', out, 'dir', parsed.values.check === true ? 'check' : 'write')) return 1;
  if (parsed.values.check === true) {
    const reports = diffRender(out, files);
    if (reports.every((r) => r.status === 'unchanged')) {
      process.stdout.write(`${out}: up to date (${files.length} files)\n`);
      return 0;
    }
    printReport(reports, true);
    process.stdout.write(`${out}: out of date; run fabric render ${file} --out ${out}\n`);
    return 1;
  }
  let reports: FileReport[];
  try {
    reports = writeRender(out, files);
  } catch (e) {
    return writeFailure('render', out, e);
  }
  printReport(reports);
  return 0;
}

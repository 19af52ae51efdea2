// fabric plan FILE [--json]: GPU capacity for every served engine, and what will not work.

import { parseArgs } from 'node:util';
import { formatIssue } from '../config/issues.ts';
import { planFabric } from '../plan/plan.ts';
import { formatPlan } from '../plan/table.ts';
import { ASSUMPTIONS } from '../plan/memory.ts';
import { configPath, readFabricFile, reportConfigError } from './fabric-file.ts';

const HELP = `Usage: fabric plan [FILE | --config FILE] [--json]

For every GPU of every node: the memory each served engine (a backend with a serve: block)
gets, its weights (parameters × bits of its quantization), the KV cache left, the bytes per
cached token (layers × KV heads × head dim × 2 × dtype size) and the concurrency that gives
at the max model length — the figure vLLM logs as "Maximum concurrency for N tokens per
request". Then what will not work: utilization fractions summing past 1 on a GPU, a share
that cannot hold its weights plus one full-length request, a max length beyond the model's,
a role whose every backend is on workstations with no always-on fallback.

  FILE, --config FILE   the fabric config (default: $FABRIC_CONFIG)
  --json                the plan as JSON, bytes as integers, for tools

Model shapes come from a built-in catalogue (Qwen2.5, Llama 2/3/3.1/3.2, Mistral, Gemma 2,
Phi-3, BGE, …) or from serve.hf_config, a Hugging Face config.json on disk.

How vLLM's share is spent: total × gpu_memory_utilization − weights − activation peak −
non-torch memory = KV cache. vLLM measures the activation peak at startup; the planner
estimates it (${ASSUMPTIONS.activationElementsPerToken} elements per batched token, the sampler's
${ASSUMPTIONS.samplerBytesPerLogit} bytes per vocabulary entry per sequence, the dequantized weight for AWQ/GPTQ
GEMM kernels) and counts ${ASSUMPTIONS.cudaContextBytes / 1024 ** 3} GiB of CUDA context and ${ASSUMPTIONS.cudaGraphBytes / 1024 ** 3} GiB of CUDA graphs per engine
outside its share. Write a GPU's memory as nvidia-smi reports it for the closest figures.

Exit status: 0 when nothing is an error (warnings and notes allowed), 1 when the plan has
errors or the config is invalid, 2 on bad usage.
`;

export async function runPlan(argv: string[]): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({ args: argv, allowPositionals: true, options: { config: { type: 'string', short: 'c' }, json: { type: 'boolean' }, help: { type: 'boolean', short: 'h' } } });
  } catch (e) {
    process.stderr.write(`fabric plan: ${(e as Error).message}\n\n${HELP}`);
    return 2;
  }
  if (parsed.values.help === true) {
    process.stdout.write(HELP);
    return 0;
  }
  const file = configPath(parsed.positionals[0], parsed.values.config);
  if (file === undefined) {
    process.stderr.write(`fabric plan: a FILE is required\n\n${HELP}`);
    return 2;
  }
  let loaded;
  try {
    loaded = readFabricFile(file);
  } catch (e) {
    return reportConfigError('plan', file, e);
  }
  for (const w of loaded.warnings) process.stderr.write(formatIssue(w) + '\n');
  const plan = planFabric(loaded.config);
  if (parsed.values.json === true) process.stdout.write(JSON.stringify({ ...plan, file }, null, 2) + '\n');
  else process.stdout.write(formatPlan(plan, file));
  return plan.errors > 0 ? 1 : 0;
}

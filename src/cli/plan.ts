// fabric plan FILE [--json]: GPU capacity for every served engine, and what will not work.

import { planFabric } from '../plan/plan.ts';
import { formatPlan } from '../plan/table.ts';
import { ASSUMPTIONS } from '../plan/memory.ts';
import { parseCommand } from './args.ts';
import { openFabricFile } from './fabric-file.ts';

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
  const parsed = parseCommand('plan', HELP, { args: argv, allowPositionals: true, options: { config: { type: 'string', short: 'c' }, json: { type: 'boolean' }, help: { type: 'boolean', short: 'h' } } });
  if (typeof parsed === 'number') return parsed;
  const loaded = openFabricFile('plan', HELP, parsed.positionals[0], parsed.values.config);
  if (typeof loaded === 'number') return loaded;
  const plan = planFabric(loaded.config);
  if (parsed.values.json === true) process.stdout.write(JSON.stringify({ ...plan, file: loaded.path }, null, 2) + '\n');
  else process.stdout.write(formatPlan(plan, loaded.path));
  return plan.errors > 0 ? 1 : 0;
}

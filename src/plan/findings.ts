// Every finding the planner can report, defined once: its code, how bad it is, and what it means.

export const FINDINGS = {
  'gpu-overcommitted': { severity: 'error', title: 'vLLM utilization fractions on one GPU sum past 1' },
  'weights-do-not-fit': { severity: 'error', title: 'an engine\'s share cannot hold its weights' },
  'kv-cache-too-small': { severity: 'error', title: 'an engine\'s share cannot hold one request at its max model length' },
  'max-len-beyond-model': { severity: 'error', title: 'max_model_len is beyond what the model takes' },
  'ollama-max-len-unused': { severity: 'warning', title: 'an Ollama backend\'s serve.max_model_len differs from its context_window, which is what is used' },
  'dtype-unsupported': { severity: 'error', title: 'the GPU has no kernels for this dtype' },
  'quantization-unsupported': { severity: 'error', title: 'the GPU has no kernels for this quantization' },
  'gpu-too-old-for-vllm': { severity: 'error', title: 'vLLM needs a GPU of compute capability 7.0 or later' },
  'model-config-unreadable': { severity: 'error', title: 'serve.hf_config cannot be read' },
  'kv-cache-tight': { severity: 'warning', title: 'one request at max model length fits only if the overhead estimate is high' },
  'no-always-on-fallback': { severity: 'warning', title: 'a role served only by workstations, with no always-on fallback' },
  'gpu-startup-tight': { severity: 'warning', title: 'shares plus per-process overhead exceed the GPU' },
  'gpu-shared-offload': { severity: 'warning', title: 'Ollama or llama.cpp will not fit beside vLLM\'s shares' },
  'desktop-headroom': { severity: 'warning', title: 'a workstation\'s GPU leaves little room for its desktop, and nothing is reserved for it' },
  'unknown-model': { severity: 'warning', title: 'the model is not in the catalogue and has no hf_config' },
  'context-window-mismatch': { severity: 'warning', title: 'the gateway\'s context_window disagrees with the engine\'s max length' },
  'one-server-two-models': { severity: 'warning', title: 'backends share a vLLM server but name different models' },
  'slower-kernel': { severity: 'note', title: 'an explicit quantization keeps vLLM off its faster Marlin kernels' },
  'share-mostly-unused': { severity: 'note', title: 'an engine reserves far more than it uses' },
  'dtype-fallback': { severity: 'note', title: 'the model\'s dtype is not supported here; vLLM uses float16' },
  'not-served-sizing': { severity: 'note', title: 'a backend the fabric does not launch, sized against its node' },
} as const;

export type FindingCode = keyof typeof FINDINGS;
export type Severity = (typeof FINDINGS)[FindingCode]['severity'];

export interface Finding {
  code: FindingCode;
  severity: Severity;
  /** What it is about: backends.NAME, nodes.NAME.gpus[0], roles.NAME. */
  where: string;
  message: string;
}

export function finding(code: FindingCode, where: string, message: string): Finding {
  return { code, severity: FINDINGS[code].severity, where, message };
}

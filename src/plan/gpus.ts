// CUDA compute capability by GPU name: it decides whether bfloat16, Marlin and FP8 kernels exist.
// Unknown names skip those checks rather than guess.

const CAPABILITY: readonly [RegExp, number][] = [
  [/\b(rtx\s*50[5-9]0|rtx\s*pro\s*6000)\b/, 12.0],
  [/\b(h100|h200|gh200)\b/, 9.0],
  [/\b(rtx\s*40\d\d|rtx\s*\d{4}\s*ada|l4|l40s?|rtx\s*[2-6]000\s*ada)\b/, 8.9],
  [/\ba100\b|\ba30\b/, 8.0],
  [/\b(rtx\s*30\d\d|a10g?|a16|a40|rtx\s*a\d{4}|a2)\b/, 8.6],
  [/\b(rtx\s*20\d\d|titan\s*rtx|quadro\s*rtx\s*\d{4}|t4|gtx\s*16\d\d)\b/, 7.5],
  [/\bv100\b|\btitan\s*v\b/, 7.0],
  [/\b(gtx\s*10\d\d|p100|p40|titan\s*xp?)\b/, 6.1],
];

export function computeCapability(model: string): number | undefined {
  const n = model.toLowerCase().replace(/geforce\s*|nvidia\s*/g, '').replace(/(\d)\s*(ti|super)\b/g, '$1');
  for (const [re, cc] of CAPABILITY) if (re.test(n)) return cc;
  return undefined;
}

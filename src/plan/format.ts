// Numbers as the plan prints them: binary units, thousands separators, fixed decimals, so the
// same plan always reads the same.

import { GiB, MiB } from './memory.ts';

export function gib(bytes: number, digits = 2): string {
  return `${(bytes / GiB).toFixed(digits)} GiB`;
}

export function size(bytes: number): string {
  if (Math.abs(bytes) >= GiB) return gib(bytes);
  if (Math.abs(bytes) >= MiB) return `${Math.round(bytes / MiB)} MiB`;
  if (Math.abs(bytes) >= 1024) return `${+(bytes / 1024).toFixed(1)} KiB`;
  return `${bytes} B`;
}

export function count(n: number): string {
  return Math.round(n).toLocaleString('en-US');
}

/** 6.53B, 109.5M parameters. */
export function params(n: number): string {
  return n >= 1e9 ? `${(n / 1e9).toFixed(2)}B` : `${(n / 1e6).toFixed(1)}M`;
}

export function fixed(n: number, digits = 2): string {
  return n.toFixed(digits);
}

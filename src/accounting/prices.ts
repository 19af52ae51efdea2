// What a request costs: USD per million input and output tokens for cloud backends (a
// built-in table of OpenAI list prices, overridden by `prices:` in the config, by backend
// name or model id), nothing for local backends unless they are priced per hour of their GPU.
// Resolved once per backend at load; a request's cost is two multiplications.

import { isCloud } from '../config/cloud.ts';
import type { FabricConfig, PriceConfig } from '../config/types.ts';

/** USD per 1M tokens [input, output]; list prices, mid-2025. Longest matching prefix wins (dated snapshots). */
export const BUILTIN_PRICES: Readonly<Record<string, readonly [number, number]>> = Object.freeze({
  'gpt-4.1': [2.0, 8.0],
  'gpt-4.1-mini': [0.4, 1.6],
  'gpt-4.1-nano': [0.1, 0.4],
  'gpt-4o': [2.5, 10.0],
  'gpt-4o-mini': [0.15, 0.6],
  'gpt-4-turbo': [10.0, 30.0],
  'gpt-4': [30.0, 60.0],
  'gpt-3.5-turbo': [0.5, 1.5],
  'o1': [15.0, 60.0],
  'o3': [2.0, 8.0],
  'o3-mini': [1.1, 4.4],
  'o4-mini': [1.1, 4.4],
  'text-embedding-3-small': [0.02, 0],
  'text-embedding-3-large': [0.13, 0],
  'text-embedding-ada-002': [0.1, 0],
  // Speech to text: audio input tokens and text output tokens.
  'gpt-4o-transcribe': [6.0, 10.0],
  'gpt-4o-mini-transcribe': [3.0, 5.0],
});

/** USD per minute of audio, for the models priced so. */
export const BUILTIN_AUDIO_MINUTE: Readonly<Record<string, number>> = Object.freeze({
  'whisper-1': 0.006,
});

export interface Price {
  /** USD per token. */
  input: number;
  output: number;
  /** USD per second of a request on this backend (GPU-hour pricing), or 0. */
  perSecond: number;
  /** USD per second of audio transcribed or translated, or 0. */
  perAudioSecond: number;
  /** Where the price came from, for `fabric usage` and warnings. */
  source: 'config' | 'builtin' | 'free';
}

const FREE: Price = Object.freeze({ input: 0, output: 0, perSecond: 0, perAudioSecond: 0, source: 'free' as const });

function builtin(model: string): readonly [number, number] | undefined {
  let best: string | undefined;
  for (const name of Object.keys(BUILTIN_PRICES)) {
    if ((model === name || model.startsWith(name + '-')) && (best === undefined || name.length > best.length)) best = name;
  }
  return best === undefined ? undefined : BUILTIN_PRICES[best];
}

function fromConfig(p: PriceConfig): Price {
  return { input: p.input / 1e6, output: p.output / 1e6, perSecond: (p.gpuHour ?? 0) / 3600, perAudioSecond: (p.audioMinute ?? 0) / 60, source: 'config' };
}

export class PriceTable {
  readonly #byBackend = new Map<string, Price>();

  constructor(config: FabricConfig) {
    for (const b of config.backends.values()) {
      const configured = config.prices.get(b.name) ?? config.prices.get(b.model);
      let price: Price = FREE;
      if (configured !== undefined) price = fromConfig(configured);
      else if (isCloud(b)) {
        const bi = builtin(b.model);
        const minute = BUILTIN_AUDIO_MINUTE[b.model];
        if (bi !== undefined) price = { input: bi[0] / 1e6, output: bi[1] / 1e6, perSecond: 0, perAudioSecond: 0, source: 'builtin' };
        else if (minute !== undefined) price = { input: 0, output: 0, perSecond: 0, perAudioSecond: minute / 60, source: 'builtin' };
      }
      this.#byBackend.set(b.name, price);
    }
  }

  of(backend: string): Price {
    return this.#byBackend.get(backend) ?? FREE;
  }

  /** Cloud backends with no price: their spend counts as zero against budgets. */
  unpriced(config: FabricConfig): string[] {
    return [...config.backends.values()].filter((b) => isCloud(b) && this.of(b.name).source === 'free').map((b) => b.name);
  }

  /** `seconds`: the request's time on the backend (GPU-hour prices); `audioSeconds`: the audio it transcribed (per-minute prices). */
  cost(backend: string, promptTokens: number, completionTokens: number, seconds: number, audioSeconds = 0): number {
    const p = this.of(backend);
    return promptTokens * p.input + completionTokens * p.output + seconds * p.perSecond + audioSeconds * p.perAudioSecond;
  }
}

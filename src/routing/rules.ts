// A role's routing rules at request time: a request goes to the first rule's target whose every
// condition holds — its input longer than a token count (counted by the gateway), carrying an
// image, audio or tools (to a model that takes them: the seeds' vision-general), or its
// virtual key one of those named, or with the metadata given (the seeds' "user-tier routing":
// free → Ollama, premium → vLLM). Who the caller is comes from the key the operator issued,
// never from anything the request says about itself.

import type { InputFeature } from '../config/types.ts';
import { isAudioPart, isImagePart } from '../engines/content-parts.ts';

/** The virtual key a request came with, as the rules see it (a KeyRecord is one). */
export interface Caller {
  readonly name: string;
  readonly metadata: Readonly<Record<string, unknown>>;
}

export interface RouteRule<T> {
  inputTokensOver: number | undefined;
  inputHas: readonly InputFeature[] | undefined;
  keys: ReadonlySet<string> | undefined;
  /** Each field and the values (as text) it may have. */
  keyMetadata: ReadonlyArray<readonly [string, readonly string[]]> | undefined;
  target: T;
}

/** Whether a rule's conditions on the key hold (true when it has none). No key (the master key, an open gateway): a key condition never holds. */
export function keyConditionsHold(rule: RouteRule<unknown>, caller: Caller | undefined): boolean {
  if (rule.keys !== undefined && (caller === undefined || !rule.keys.has(caller.name))) return false;
  if (rule.keyMetadata !== undefined) {
    if (caller === undefined) return false;
    for (const [field, values] of rule.keyMetadata) {
      const v = Object.hasOwn(caller.metadata, field) ? caller.metadata[field] : undefined;
      if (typeof v !== 'string' && typeof v !== 'number' && typeof v !== 'boolean') return false;
      if (!values.includes(String(v))) return false;
    }
  }
  return true;
}

/**
 * Which of the rules with key conditions hold for this caller, one character each ('' when no
 * rule has any): with the body, this decides a request's plan, so the response cache keys on it
 * (two callers of different tiers never share an answer made on the other's route).
 */
export function keyRuleMark(rules: readonly RouteRule<unknown>[], caller: Caller | undefined): string {
  let mark = '';
  for (const rule of rules) {
    if (rule.keys !== undefined || rule.keyMetadata !== undefined) mark += keyConditionsHold(rule, caller) ? '1' : '0';
  }
  return mark;
}

/** Whether a chat request carries every one of `features`: tools to call, image or audio content parts. */
export function inputHasAll(body: Record<string, unknown>, features: readonly InputFeature[]): boolean {
  let image = false;
  let audio = false;
  const wantsParts = features.includes('image') || features.includes('audio');
  if (wantsParts && Array.isArray(body.messages)) {
    for (const m of body.messages) {
      const c = typeof m === 'object' && m !== null ? (m as { content?: unknown }).content : undefined;
      if (!Array.isArray(c)) continue;
      for (const p of c) {
        if (typeof p !== 'object' || p === null) continue;
        if (isImagePart(p)) image = true;
        else if (isAudioPart(p)) audio = true;
      }
    }
  }
  for (const f of features) {
    if (f === 'image' ? !image : f === 'audio' ? !audio : !(Array.isArray(body.tools) && body.tools.length > 0)) return false;
  }
  return true;
}

// This AI Fabric's version, from package.json: read once, when first asked.

import { readFileSync } from 'node:fs';

let cached: string | undefined;

/** package.json's version, or undefined when it cannot be read (src/core/version.ts and dist/core/version.js both sit two levels below it). */
export function packageVersion(): string | undefined {
  if (cached !== undefined) return cached;
  try {
    const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version?: unknown };
    if (typeof pkg.version === 'string') cached = pkg.version;
  } catch {
    // A copy without its package.json: the callers say what they use instead.
  }
  return cached;
}

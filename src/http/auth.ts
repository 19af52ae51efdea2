// Master key check: the presented key and the configured one are both hashed, and the
// digests compared in constant time, so neither length nor content leaks through timing.

import { createHash, timingSafeEqual } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';

function digest(s: string): Buffer {
  return createHash('sha256').update(s).digest();
}

export class MasterKey {
  readonly #hash: Buffer;
  constructor(key: string) {
    this.#hash = digest(key);
  }

  /** The bearer token (or x-api-key) from the headers, if any. */
  static presented(headers: IncomingHttpHeaders): string | undefined {
    const auth = headers.authorization;
    if (typeof auth === 'string') {
      const m = /^Bearer\s+(.+)$/i.exec(auth);
      return m === null ? undefined : m[1]!.trim();
    }
    const x = headers['x-api-key'];
    return typeof x === 'string' ? x.trim() : undefined;
  }

  matches(presented: string | undefined): boolean {
    if (presented === undefined) return false;
    return timingSafeEqual(digest(presented), this.#hash);
  }
}

// Request ids: a per-process random prefix and a counter, so ids are unique across gateway
// processes and cost one string concatenation per request.

import { randomBytes } from 'node:crypto';

export class RequestIds {
  readonly #prefix: string;
  #n = 0;
  constructor() {
    this.#prefix = 'req_' + randomBytes(6).toString('hex');
  }
  next(): string {
    return this.#prefix + (this.#n++).toString(36).padStart(6, '0');
  }
}

const CLIENT_ID = /^[\x21-\x7e]{1,128}$/;

/** An incoming x-request-id is kept only if it is short printable ASCII (it is echoed in headers and logs). */
export function clientRequestId(v: string | string[] | undefined): string | undefined {
  return typeof v === 'string' && CLIENT_ID.test(v) ? v : undefined;
}

// Virtual key material. A key is 256 random bits (so a plain SHA-256 of it is as good as a
// slow password hash: there is nothing to guess); only that digest is stored, and the key is
// shown once, at creation or rotation.

import { hash, randomBytes } from 'node:crypto';

export const KEY_PREFIX = 'sk-fabric-';

export function newKeySecret(): string {
  return KEY_PREFIX + randomBytes(32).toString('base64url');
}

export function newKeyId(): string {
  return 'key_' + randomBytes(8).toString('hex');
}

/** Hex SHA-256: what the store holds and lookups use. One-shot crypto.hash: it runs on every request, and is ~2.5x faster than createHash().update().digest(). */
export function hashKey(secret: string): string {
  return hash('sha256', secret, 'hex');
}

/** Enough of the key to tell keys apart in a listing, far too little to use (12 of 256 bits each end). */
export function keyHint(secret: string): string {
  const body = secret.startsWith(KEY_PREFIX) ? secret.slice(KEY_PREFIX.length) : secret;
  return `${secret.startsWith(KEY_PREFIX) ? KEY_PREFIX : ''}${body.slice(0, 4)}…${body.slice(-4)}`;
}

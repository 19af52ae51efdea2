// Key lifecycle over the store: create, change, revoke, rotate. Used by the admin API (which
// also updates its own key ring, so the change is effective on that instance at once) and
// by `fabric keys --config` (which writes the store directly; running gateways pick the change
// up at their next NOTIFY or poll). The secret exists only in the return value of create()
// and rotate(); the store gets its hash.

import { FabricError } from '../core/errors.ts';
import type { KeyPatch, KeyRecord, Store } from '../store/types.ts';
import type { KeyRing } from './keyring.ts';
import { hashKey, keyHint, newKeyId, newKeySecret } from './token.ts';

export type KeyStatus = 'active' | 'revoked' | 'expired';

export function keyStatus(k: KeyRecord, now: number = Date.now()): KeyStatus {
  if (k.revokedAt !== undefined) return 'revoked';
  if (k.expiresAt !== undefined && k.expiresAt <= now) return 'expired';
  return 'active';
}

/** A key as the API shows it: never the secret, never the hash. */
export function keyView(k: KeyRecord, now: number = Date.now()): Record<string, unknown> {
  const iso = (t: number | undefined): string | null => (t === undefined ? null : new Date(t).toISOString());
  return {
    id: k.id,
    object: 'fabric.key',
    name: k.name,
    hint: k.hint,
    status: keyStatus(k, now),
    metadata: k.metadata,
    roles: k.roles ?? null,
    expires_at: iso(k.expiresAt),
    budget: k.budget ?? null,
    rpm: k.rpm ?? null,
    tpm: k.tpm ?? null,
    role_limits: k.roleLimits,
    created_at: iso(k.createdAt),
    updated_at: iso(k.updatedAt),
    revoked_at: iso(k.revokedAt),
  };
}

export class KeyAdmin {
  readonly #store: Store;
  readonly #ring: KeyRing | undefined;

  constructor(store: Store, ring?: KeyRing) {
    this.#store = store;
    this.#ring = ring;
  }

  async create(patch: KeyPatch, now: number = Date.now()): Promise<{ record: KeyRecord; secret: string }> {
    const secret = newKeySecret();
    const record: KeyRecord = {
      id: newKeyId(), hash: hashKey(secret), hint: keyHint(secret), name: patch.name ?? 'unnamed', metadata: patch.metadata ?? {},
      roles: patch.roles, expiresAt: patch.expiresAt, budget: patch.budget, rpm: patch.rpm, tpm: patch.tpm, roleLimits: patch.roleLimits ?? {},
      createdAt: now, updatedAt: now, revokedAt: undefined,
    };
    await this.#store.insertKey(record);
    this.#ring?.put(record);
    return { record, secret };
  }

  async list(): Promise<KeyRecord[]> {
    return this.#store.listKeys();
  }

  /** By id, or by the key itself (LiteLLM's /key/info?key=sk-…). */
  async find(idOrSecret: string): Promise<KeyRecord> {
    const k = idOrSecret.startsWith('key_') ? await this.#store.keyById(idOrSecret) : await this.#store.keyByHash(hashKey(idOrSecret));
    if (k === undefined) throw new FabricError('key_not_found', `no key ${idOrSecret.startsWith('key_') ? idOrSecret : 'matching the one given'}`, { param: 'key' });
    return k;
  }

  async #update(id: string, patch: KeyPatch, ifHash?: string): Promise<KeyRecord> {
    const k = await this.#store.updateKey(id, patch, ifHash);
    if (k === undefined) throw new FabricError('key_not_found', `no key ${id}`, { param: 'key' });
    // Two rotations at once: the one that lost would hand out a secret that no longer works.
    if (k === null) throw new FabricError('conflict', `key ${id} was rotated by another request meanwhile: its new secret went there; rotate again for one of your own`, { param: 'key' });
    this.#ring?.put(k);
    return k;
  }

  async update(id: string, patch: KeyPatch, now: number = Date.now()): Promise<KeyRecord> {
    const k = await this.find(id);
    if (k.revokedAt !== undefined) throw new FabricError('invalid_request', `key ${k.id} is revoked; create a new one`, { param: 'key' });
    return this.#update(k.id, { ...patch, updatedAt: now });
  }

  async revoke(id: string, now: number = Date.now()): Promise<KeyRecord> {
    const k = await this.find(id);
    if (k.revokedAt !== undefined) return k;
    return this.#update(k.id, { revokedAt: now, updatedAt: now });
  }

  /** A new secret for the same key (name, limits, budget and spend carry over); the old one stops working at once. */
  async rotate(id: string, now: number = Date.now()): Promise<{ record: KeyRecord; secret: string }> {
    const k = await this.find(id);
    if (k.revokedAt !== undefined) throw new FabricError('invalid_request', `key ${k.id} is revoked; create a new one`, { param: 'key' });
    const secret = newKeySecret();
    const record = await this.#update(k.id, { hash: hashKey(secret), hint: keyHint(secret), updatedAt: now }, k.hash);
    return { record, secret };
  }
}

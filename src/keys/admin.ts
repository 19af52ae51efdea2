// Key lifecycle over the store: create, change, revoke, rotate. Used by the admin API (which
// also updates its own key ring, so the change is effective on that instance at once) and
// by `fabric keys --config` (which writes the store directly; running gateways pick the change
// up at their next NOTIFY or poll). The secret exists only in the return value of create()
// and rotate(); the store gets its hash.

import { FabricError } from '../core/errors.ts';
import { keyRevision } from '../store/rows.ts';
import type { KeyCondition, KeyPatch, KeyRecord, Store } from '../store/types.ts';
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

/** A conditional change to a key changed since its writer read it (If-Match with an ETag gone stale). */
function changedSince(id: string): FabricError {
  return new FabricError('precondition_failed', `key ${id} has changed since the revision given was read: read it again and make the change on what it is now`, { param: 'key' });
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
    const id = newKeyId();
    const name = patch.name ?? id;
    await this.#nameFree(name, id, now);
    const record: KeyRecord = {
      id, hash: hashKey(secret), hint: keyHint(secret), name, metadata: patch.metadata ?? {},
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

  /**
   * One name, one key in use: as LiteLLM's key_alias, so that a name says which key. A revoked
   * or expired key leaves its name free (a replacement usually takes it). Checked here, not by
   * the store: two creations of one name at the same instant may both pass.
   */
  async #nameFree(name: string, id: string, now: number): Promise<void> {
    const holder = (await this.#store.listKeys()).find((k) => k.name === name && k.id !== id && keyStatus(k, now) === 'active');
    if (holder !== undefined) {
      throw new FabricError('conflict', `a key named ${JSON.stringify(name)} is already in use (${holder.id}): rotate it for a new secret, revoke it first, or choose another name`, { param: 'name' });
    }
  }

  /**
   * By id, by the key itself (LiteLLM's /key/info?key=sk-…), or by name: the key in use with
   * that name, else the only one ever given it. A value that looks like a secret is never
   * taken for a name, so no error repeats it.
   */
  async find(ref: string, now: number = Date.now()): Promise<KeyRecord> {
    if (ref.startsWith('key_')) {
      const k = await this.#store.keyById(ref);
      if (k === undefined) throw new FabricError('key_not_found', `no key ${ref}`, { param: 'key' });
      return k;
    }
    const bySecret = await this.#store.keyByHash(hashKey(ref));
    if (bySecret !== undefined) return bySecret;
    if (ref.startsWith('sk-') || ref === '') throw new FabricError('key_not_found', 'no key matching the one given', { param: 'key' });
    const named = (await this.#store.listKeys()).filter((k) => k.name === ref);
    const active = named.filter((k) => keyStatus(k, now) === 'active');
    const pick = active.length > 0 ? active : named;
    if (pick.length === 1) return pick[0]!;
    if (pick.length === 0) throw new FabricError('key_not_found', `no key with the id, name or secret ${JSON.stringify(ref)}`, { param: 'key' });
    throw new FabricError('invalid_request', `${pick.length} keys are named ${JSON.stringify(ref)} (${pick.map((k) => `${k.id}, ${keyStatus(k, now)}`).join('; ')}): give the id`, { param: 'key' });
  }

  /**
   * `ifMatch`: the revisions (keyRevision; the admin API's ETags, from If-Match) the key must be
   * at for the change to be made, else a 412: a change made on a key as it was read (metadata
   * merged into what it had) never overwrites what was written since. Checked here and again by
   * the store, in the transaction that writes.
   */
  #condition(k: KeyRecord, ifMatch: readonly string[] | undefined): KeyCondition | undefined {
    if (ifMatch === undefined) return undefined;
    const revision = keyRevision(k);
    if (!ifMatch.includes(revision)) throw changedSince(k.id);
    return { revision };
  }

  async #update(id: string, patch: KeyPatch, expect: KeyCondition | undefined, lost: () => FabricError): Promise<KeyRecord> {
    const k = await this.#store.updateKey(id, patch, expect);
    if (k === undefined) throw new FabricError('key_not_found', `no key ${id}`, { param: 'key' });
    if (k === null) throw lost();
    this.#ring?.put(k);
    return k;
  }

  async update(id: string, patch: KeyPatch, now: number = Date.now(), ifMatch?: readonly string[]): Promise<KeyRecord> {
    const k = await this.find(id, now);
    const expect = this.#condition(k, ifMatch);
    if (k.revokedAt !== undefined) throw new FabricError('invalid_request', `key ${k.id} is revoked; create a new one`, { param: 'key' });
    // Renamed, or brought back to use (a later expiry): its name must be free of the keys in use.
    const patched = { ...k, ...patch };
    if (keyStatus(patched, now) === 'active' && (patch.name !== k.name || keyStatus(k, now) !== 'active')) await this.#nameFree(patched.name, k.id, now);
    return this.#update(k.id, { ...patch, updatedAt: now }, expect, () => changedSince(k.id));
  }

  async revoke(id: string, now: number = Date.now(), ifMatch?: readonly string[]): Promise<KeyRecord> {
    const k = await this.find(id, now);
    const expect = this.#condition(k, ifMatch);
    if (k.revokedAt !== undefined) return k;
    return this.#update(k.id, { revokedAt: now, updatedAt: now }, expect, () => changedSince(k.id));
  }

  /** A new secret for the same key (name, limits, budget and spend carry over); the old one stops working at once. */
  async rotate(id: string, now: number = Date.now(), ifMatch?: readonly string[]): Promise<{ record: KeyRecord; secret: string }> {
    const k = await this.find(id, now);
    const expect = this.#condition(k, ifMatch);
    if (k.revokedAt !== undefined) throw new FabricError('invalid_request', `key ${k.id} is revoked; create a new one`, { param: 'key' });
    const secret = newKeySecret();
    // Two rotations at once: the one that lost would hand out a secret that no longer works.
    const lost = (): FabricError => (expect !== undefined ? changedSince(k.id)
      : new FabricError('conflict', `key ${k.id} was rotated by another request meanwhile: its new secret went there; rotate again for one of your own`, { param: 'key' }));
    const record = await this.#update(k.id, { hash: hashKey(secret), hint: keyHint(secret), updatedAt: now }, { ...expect, hash: k.hash }, lost);
    return { record, secret };
  }
}

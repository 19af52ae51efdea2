// Virtual keys end to end: the admin API (native and LiteLLM names), keys hashed at rest (read
// from the SQLite file itself), role scopes on requests and /v1/models, per-key rate limits
// with 429 + Retry-After, revocation, rotation and expiry taking effect at once; and an open
// gateway (no master key) that still attributes and limits the keys it knows.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFileSync, readdirSync, rmSync } from 'node:fs';
import { DatabaseSync } from 'node:sqlite';
import { join } from 'node:path';
import OpenAI from 'openai';
import { KeyAdmin } from '../src/keys/admin.ts';
import { waitFor } from '../src/sim/test-helpers.ts';
import { startFabric, chat, post, type Fabric } from './helpers.ts';
import { tempDir } from './support/temp-dir.ts';

const MASTER = 'fabric-master-key-for-key-tests';
const FAST = { ttftMs: 2, tokensPerSecond: 5000, maxConcurrency: 64, maxQueue: 256 };
const dataDir = tempDir('fabric-keys-');
let f: Fabric;

const admin = (path: string, body?: unknown, method = body === undefined ? 'GET' : 'POST', key = MASTER) =>
  fetch(f.url + path, { method, headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' }, body: body === undefined ? undefined : JSON.stringify(body) })
    .then(async (r) => ({ status: r.status, headers: r.headers, json: await r.json() as any }));

const client = (key: string) => new OpenAI({ baseURL: `${f.url}/v1`, apiKey: key, maxRetries: 0, timeout: 10_000 });

before(async () => {
  f = await startFabric({
    env: { FABRIC_MASTER_KEY: MASTER },
    apiKey: MASTER,
    dataDir,
    engines: [
      { name: 'armitage', protocol: 'vllm', model: 'Qwen/Qwen2.5-7B-Instruct-AWQ', kind: 'chat', timing: FAST },
      { name: 'cloud', protocol: 'openai', model: 'gpt-4.1-mini', kind: 'chat', timing: FAST },
    ],
    yaml: (url) => `
gateway:
  master_key: env:FABRIC_MASTER_KEY
  accounting: { flush_interval: 50ms, sync_interval: 100ms }
backends:
  armitage-qwen: { engine: vllm, url: ${url('armitage')}/v1, model: Qwen/Qwen2.5-7B-Instruct-AWQ }
  cloud-strong: { engine: openai-compatible, url: ${url('cloud')}/v1, model: gpt-4.1-mini, cloud: true }
roles:
  chat-fast: { kind: chat, backends: [armitage-qwen], aliases: [local/chat] }
  openai/strong: { kind: chat, backends: [cloud-strong] }
`,
  });
});

after(async () => {
  await f.close();
  rmSync(dataDir, { recursive: true, force: true });
});

test('a key is shown once, stored only as its SHA-256, and never listed', async () => {
  const r = await admin('/admin/keys', { name: 'obsidian', metadata: { app: 'obsidian', owner: 'mdt' }, roles: ['local/chat'] });
  assert.equal(r.status, 201);
  const secret: string = r.json.key;
  assert.match(secret, /^sk-fabric-[A-Za-z0-9_-]{43}$/);
  assert.equal(r.headers.get('cache-control'), 'no-store', 'the one answer with the secret is kept by no cache on the way');
  assert.equal((await admin('/key/generate', { key_alias: 'no-store-litellm' })).headers.get('cache-control'), 'no-store');
  assert.equal((await admin('/admin/usage?by=key')).headers.get('cache-control'), 'no-store');
  assert.equal(r.json.name, 'obsidian');
  assert.deepEqual(r.json.metadata, { app: 'obsidian', owner: 'mdt' });
  assert.equal(r.json.status, 'active');
  // Read the database file itself: the hash is there, the key is nowhere.
  const db = new DatabaseSync(join(dataDir, 'fabric.db'), { readOnly: true });
  const rows = db.prepare('SELECT * FROM fabric_keys WHERE id = ?').all(r.json.id);
  db.close();
  assert.equal(rows.length, 1);
  assert.equal(rows[0]!.hash, createHash('sha256').update(secret).digest('hex'));
  const raw = readFileSync(join(dataDir, 'fabric.db')).toString('latin1') + readdirSync(dataDir).filter((n) => n.endsWith('-wal')).map((n) => readFileSync(join(dataDir, n)).toString('latin1')).join('');
  assert.ok(!raw.includes(secret), 'the key is not in the database file or its WAL');
  assert.ok(!raw.includes(secret.slice(10, 30)), 'no long fragment of it either');
  const list = await admin('/admin/keys');
  assert.equal(list.status, 200);
  const text = JSON.stringify(list.json);
  assert.ok(!text.includes(secret) && !text.includes(rows[0]!.hash as string), 'listing shows neither key nor hash');
  assert.ok(list.json.data.some((k: any) => k.id === r.json.id && k.hint.startsWith('sk-fabric-')));
  const shown = await admin(`/admin/keys/${r.json.id}`);
  assert.equal(shown.json.key, undefined);
  f.gw.app.log.flush();
  assert.ok(!f.logs.some((l) => l.includes(secret)), 'the key never reaches the log');
});

test('a key may use its roles only: 403 for others (OpenAI-shaped), /v1/models lists only its own', async () => {
  const { json } = await admin('/admin/keys', { name: 'trailblazer', roles: ['local/chat'] });
  const c = client(json.key);
  const ok = await c.chat.completions.create(chat('local/chat') as any);
  assert.equal(ok.choices[0]!.message.role, 'assistant');
  const also = await post(f.url, '/v1/chat/completions', chat('chat-fast'), { authorization: `Bearer ${json.key}` });
  assert.equal(also.status, 200, 'the role behind an allowed alias is allowed');
  await assert.rejects(c.chat.completions.create(chat('openai/strong') as any), (e: any) => {
    assert.equal(e.status, 403);
    assert.equal(e.constructor.name, 'PermissionDeniedError');
    assert.equal(e.error.type, 'invalid_request_error');
    assert.equal(e.error.code, 'model_not_allowed');
    assert.match(e.error.message, /trailblazer.*openai\/strong/);
    return true;
  });
  const models = await c.models.list();
  assert.deepEqual(models.data.map((m) => m.id).sort(), ['chat-fast', 'local/chat']);
  const get = await fetch(`${f.url}/v1/models/openai%2Fstrong`, { headers: { authorization: `Bearer ${json.key}` } });
  assert.equal(get.status, 404);
  const hidden = (await get.json()) as any;
  assert.ok(!hidden.error.message.includes('did you mean'), 'no hint names a model the key may not see');
  // The failure drill chooses where a request goes: the operator's, not a key holder's.
  const drill = await post(f.url, '/v1/chat/completions', chat('local/chat'), { authorization: `Bearer ${json.key}`, 'x-fabric-drill': 'fail-primary' });
  assert.equal(drill.status, 403);
  assert.equal(drill.json.error.param, 'x-fabric-drill');
  // Master-only endpoints: a virtual key gets 403, no key 401.
  assert.equal((await fetch(`${f.url}/metrics`, { headers: { authorization: `Bearer ${json.key}` } })).status, 403);
  assert.equal((await admin('/admin/keys', undefined, 'GET', json.key)).status, 403);
  assert.equal((await fetch(`${f.url}/admin/keys`)).status, 401);
  assert.equal((await admin('/admin/keys', undefined, 'GET', 'sk-fabric-not-a-real-key')).status, 401);
});

test('requests per minute: the next request is a 429 with Retry-After, in OpenAI shape, counted in metrics', async () => {
  const { json } = await admin('/admin/keys', { name: 'limited', rpm: 3 });
  const auth = { authorization: `Bearer ${json.key}` };
  for (let i = 0; i < 3; i++) assert.equal((await post(f.url, '/v1/chat/completions', chat('local/chat'), auth)).status, 200);
  const r = await post(f.url, '/v1/chat/completions', chat('local/chat'), auth);
  assert.equal(r.status, 429);
  assert.equal(r.json.error.code, 'rate_limit_exceeded');
  assert.equal(r.json.error.type, 'rate_limit_error');
  assert.match(r.json.error.message, /limited.*requests per minute \(RPM\): limit 3/);
  const ra = Number(r.headers.get('retry-after'));
  assert.ok(ra >= 1 && ra <= 20, `retry-after ${ra}`);
  assert.equal(r.headers.get('x-ratelimit-limit-requests'), '3');
  // Another key is not affected.
  const other = await admin('/admin/keys', { name: 'unlimited' });
  assert.equal((await post(f.url, '/v1/chat/completions', chat('local/chat'), { authorization: `Bearer ${other.json.key}` })).status, 200);
  const m = await (await fetch(`${f.url}/metrics`, { headers: { authorization: `Bearer ${MASTER}` } })).text();
  assert.match(m, /fabric_rate_limited_total\{key="limited",limit="rpm"\} 1/);
  // A revoked key's series go at the next scrape: minting keys does not grow them for ever.
  await admin(`/admin/keys/${json.id}/revoke`, {});
  const after = await (await fetch(`${f.url}/metrics`, { headers: { authorization: `Bearer ${MASTER}` } })).text();
  assert.doesNotMatch(after, /fabric_rate_limited_total\{key="limited"/);
});

test('tokens per minute and per-role limits', async () => {
  const { json } = await admin('/admin/keys', { name: 'tokens', tpm: 200, role_limits: { 'openai/strong': { rpm: 1 } } });
  const auth = { authorization: `Bearer ${json.key}` };
  // max_tokens 100 + the prompt: two fit in 200 tokens... the first is settled to its real use, so more fit.
  assert.equal((await post(f.url, '/v1/chat/completions', chat('local/chat', 'hi', { max_tokens: 150 }), auth)).status, 200);
  const big = await post(f.url, '/v1/chat/completions', chat('local/chat', 'hi', { max_tokens: 190 }), auth);
  assert.equal(big.status, 429, 'the reservation (prompt + max_tokens) does not fit what is left');
  assert.match(big.json.error.message, /tokens per minute \(TPM\): limit 200/);
  assert.equal(big.headers.get('x-ratelimit-limit-tokens'), '200');
  assert.equal((await post(f.url, '/v1/chat/completions', chat('openai/strong'), auth)).status, 200);
  const second = await post(f.url, '/v1/chat/completions', chat('openai/strong'), auth);
  assert.equal(second.status, 429);
  assert.match(second.json.error.message, /on openai\/strong on requests per minute/);
});

test('a batch of legacy prompts is reserved for every generation it asks (prompts × n × max_tokens), and bounded by max_prompts', async () => {
  /** A fresh key with a $0.002 budget: at gpt-4.1-mini's $1.60 per million output tokens, some 1,250 tokens. */
  const auth = async (name: string) => ({ authorization: `Bearer ${(await admin('/admin/keys', { name, budget: { amount: 0.002, period: 'month' } })).json.key}` });
  const batch = (prompts: unknown, n = 1) => ({ model: 'openai/strong', prompt: prompts, max_tokens: 40, n });
  const his = (k: number) => Array.from({ length: k }, () => 'hi');
  const fits = await post(f.url, '/v1/completions', batch(his(4), 2), await auth('batch-fits'));
  assert.equal(fits.status, 200, fits.text);
  assert.equal(fits.json.choices.length, 8, '4 prompts × n 2: 320 tokens at most');
  const many = await post(f.url, '/v1/completions', batch(his(10), 4), await auth('batch-n'));
  assert.equal(many.status, 429, `10 prompts × n 4 × 40 tokens could cost more than the budget: ${many.text}`);
  const ids = await post(f.url, '/v1/completions', batch(Array.from({ length: 30 }, () => [1, 2, 3])), await auth('batch-ids'));
  assert.equal(ids.status, 429, 'lists of token ids are prompts too');
  assert.equal((await post(f.url, '/v1/completions', batch([1, 2, 3], 2), await auth('batch-one'))).status, 200, 'one list of token ids is one prompt');
  const over = await post(f.url, '/v1/completions', batch(his(33)), await auth('batch-many'));
  assert.equal(over.status, 400);
  assert.equal(over.json.error.param, 'prompt');
  assert.match(over.json.error.message, /holds 33 prompts; at most 32 .*gateway\.limits\.max_prompts/);
});

test('a key made before role limits were kept under the role\'s name (one set under an alias) has them applied', async () => {
  const acct = f.gw.app.accounting!;
  // As an earlier version stored it: the limit under the alias the operator typed.
  const { secret } = await new KeyAdmin(acct.store, acct.keys).create({ name: 'legacy-alias-limit', roleLimits: { 'local/chat': { rpm: 1 } } });
  const auth = { authorization: `Bearer ${secret}` };
  assert.equal((await post(f.url, '/v1/chat/completions', chat('chat-fast'), auth)).status, 200);
  const second = await post(f.url, '/v1/chat/completions', chat('local/chat'), auth);
  assert.equal(second.status, 429, 'the limit set on local/chat holds for its role, however it is asked for');
  assert.match(second.json.error.message, /on chat-fast on requests per minute/);
});

test('revocation works at once; rotation replaces the secret; expiry is checked on every request', async () => {
  const { json } = await admin('/admin/keys', { name: 'to-revoke' });
  const auth = { authorization: `Bearer ${json.key}` };
  assert.equal((await post(f.url, '/v1/chat/completions', chat('local/chat'), auth)).status, 200);
  const rev = await admin(`/admin/keys/${json.id}/revoke`, {});
  assert.equal(rev.json.status, 'revoked');
  const after = await post(f.url, '/v1/chat/completions', chat('local/chat'), auth);
  assert.equal(after.status, 401);
  assert.equal(after.json.error.code, 'invalid_api_key');
  assert.match(after.json.error.message, /revoked/);

  const k2 = await admin('/admin/keys', { name: 'to-rotate', rpm: 100 });
  const rot = await admin(`/admin/keys/${k2.json.id}/rotate`, {});
  assert.equal(rot.status, 200);
  assert.notEqual(rot.json.key, k2.json.key);
  assert.equal(rot.json.rpm, 100, 'limits carry over');
  assert.equal((await post(f.url, '/v1/chat/completions', chat('local/chat'), { authorization: `Bearer ${k2.json.key}` })).status, 401);
  assert.equal((await post(f.url, '/v1/chat/completions', chat('local/chat'), { authorization: `Bearer ${rot.json.key}` })).status, 200);
  // Two rotations at once: one wins; the other is told so (409), never handed a secret that does not work.
  const both = await Promise.all([admin(`/admin/keys/${k2.json.id}/rotate`, {}), admin(`/admin/keys/${k2.json.id}/rotate`, {})]);
  const won = both.filter((r) => r.status === 200);
  assert.ok(won.length >= 1);
  for (const r of both.filter((x) => x.status !== 200)) {
    assert.equal(r.status, 409);
    assert.equal(r.json.error.code, 'conflict');
    assert.match(r.json.error.message, /was rotated by another request meanwhile/);
  }
  // Whether they raced or ran one after the other, the secret handed out last is the one that works.
  const working = [];
  for (const r of won) if ((await post(f.url, '/v1/chat/completions', chat('local/chat'), { authorization: `Bearer ${r.json.key}` })).status === 200) working.push(r);
  assert.equal(working.length, 1);

  const k3 = await admin('/admin/keys', { name: 'short-lived', expires_at: new Date(Date.now() + 400).toISOString() });
  assert.equal((await post(f.url, '/v1/chat/completions', chat('local/chat'), { authorization: `Bearer ${k3.json.key}` })).status, 200);
  await new Promise((r) => setTimeout(r, 450));
  const exp = await post(f.url, '/v1/chat/completions', chat('local/chat'), { authorization: `Bearer ${k3.json.key}` });
  assert.equal(exp.status, 401);
  assert.match(exp.json.error.message, /expired/);
  assert.equal((await admin(`/admin/keys/${k3.json.id}`)).json.status, 'expired');
});

test('admin input is checked field by field; unknown roles and keys are refused', async () => {
  assert.equal((await admin('/admin/keys', {})).json.error.param, 'name');
  assert.match((await admin('/admin/keys', { name: 'x', roles: ['no-such-role'] })).json.error.message, /no-such-role/);
  assert.equal((await admin('/admin/keys', { name: 'x', rpm: 0 })).status, 400);
  assert.equal((await admin('/admin/keys', { name: 'x', budget: { amount: 5, period: 'fortnight' } })).status, 400);
  // Names an object has by inheritance are no periods: a 400 naming the field, not a 500.
  for (const period of ['constructor', 'toString', '__proto__']) {
    const r = await admin('/admin/keys', { name: 'x', budget: { amount: 1, period } });
    assert.equal(r.status, 400, `${period}: ${JSON.stringify(r.json)}`);
    assert.equal(r.json.error.param, 'budget.period');
  }
  assert.equal((await admin('/admin/keys', { name: 'x', color: 'red' })).json.error.param, 'color');
  // Role limits are set on a role by its name: a typo or an alias would never apply.
  const typo = await admin('/admin/keys', { name: 'x', role_limits: { 'chat-fsat': { rpm: 5 } } });
  assert.equal(typo.status, 400);
  assert.equal(typo.json.error.param, 'role_limits.chat-fsat');
  const alias = await admin('/admin/keys', { name: 'x', role_limits: { 'local/chat': { rpm: 5 } } });
  assert.equal(alias.status, 201);
  assert.deepEqual(alias.json.role_limits, { 'chat-fast': { rpm: 5 } }, 'an alias is kept as its role\'s name, which requests resolve to');
  const past = await admin('/admin/keys', { name: 'x', expires_at: '2020-01-01T00:00:00Z' });
  assert.equal(past.status, 400);
  assert.equal(past.json.error.param, 'expires_at');
  assert.match(past.json.error.message, /in the past/);
  // An update may send an expired key's expiry back as it was (a form that resends every field).
  const soon = new Date(Date.now() + 200).toISOString();
  const brief = await admin('/admin/keys', { name: 'brief', expires_at: soon });
  assert.equal(brief.status, 201);
  await new Promise((r) => setTimeout(r, 300));
  const resent = await admin(`/admin/keys/${brief.json.id}`, { expires_at: soon, rpm: 5 }, 'PATCH');
  assert.equal(resent.status, 200, JSON.stringify(resent.json));
  assert.equal((await admin('/admin/keys/key_0000000000000000')).status, 404);
  const p = await admin('/admin/keys', { name: 'patchable', rpm: 5 });
  const patched = await admin(`/admin/keys/${p.json.id}`, { rpm: null, budget: { amount: 3, period: 'day' } }, 'PATCH');
  assert.equal(patched.status, 200);
  assert.equal(patched.json.rpm, null);
  assert.deepEqual(patched.json.budget, { amount: 3, period: 'day' });
  assert.equal(patched.json.spend.limit, 3);
  // null is "all roles" and "never", as the field errors say, under the native and LiteLLM names.
  const scoped = await admin('/admin/keys', { name: 'scoped', roles: ['local/chat'], expires_in: '30d' });
  const opened = await admin(`/admin/keys/${scoped.json.id}`, { roles: null, expires_in: null }, 'PATCH');
  assert.equal(opened.status, 200, JSON.stringify(opened.json));
  assert.deepEqual([opened.json.roles, opened.json.expires_at], [null, null]);
  const again = await admin(`/admin/keys/${scoped.json.id}`, { models: ['local/chat'], duration: '1d' }, 'PATCH');
  assert.deepEqual(again.json.roles, ['local/chat']);
  // LiteLLM's clients send every field: a null models or duration there changes nothing (as
  // LiteLLM's /key/update has it); its duration "-1" is no expiry.
  const litellm = await admin(`/admin/keys/${scoped.json.id}`, { models: null, duration: null, metadata: { tier: 'free' } }, 'PATCH');
  assert.deepEqual([litellm.json.roles, litellm.json.expires_at, litellm.json.metadata], [['local/chat'], again.json.expires_at, { tier: 'free' }]);
  assert.notEqual(again.json.expires_at, null);
  const forever = await admin(`/admin/keys/${scoped.json.id}`, { duration: '-1' }, 'PATCH');
  assert.equal(forever.json.expires_at, null);
});

test('a name belongs to one key in use: a second is a 409 naming the holder; a revoked key frees it; a name stands for the id', async () => {
  const first = await admin('/admin/keys', { name: 'notes-app' });
  assert.equal(first.status, 201);
  const dup = await admin('/admin/keys', { name: 'notes-app' });
  assert.equal(dup.status, 409);
  assert.equal(dup.json.error.code, 'conflict');
  assert.equal(dup.json.error.param, 'name');
  assert.ok(dup.json.error.message.includes(first.json.id), dup.json.error.message);
  assert.ok(!dup.json.error.message.includes(first.json.key), 'the holder is named by its id, never its secret');
  // LiteLLM's name for it is refused the same way; leaving it out names the key by its id.
  assert.equal((await admin('/key/generate', { key_alias: 'notes-app' })).status, 409);
  const anon = await Promise.all([admin('/key/generate', {}), admin('/key/generate', {})]);
  for (const g of anon) assert.equal(g.status, 200, JSON.stringify(g.json));
  assert.equal(anon[0]!.json.key_alias, null);
  // A rename onto a name in use is refused; onto its own name is no change.
  const other = await admin('/admin/keys', { name: 'notes-app-2' });
  assert.equal((await admin(`/admin/keys/${other.json.id}`, { name: 'notes-app' }, 'PATCH')).status, 409);
  assert.equal((await admin(`/admin/keys/${first.json.id}`, { name: 'notes-app' }, 'PATCH')).status, 200);

  // The name finds the key: show, then revoke, by name.
  const shown = await admin('/admin/keys/notes-app');
  assert.equal(shown.status, 200);
  assert.equal(shown.json.id, first.json.id);
  assert.equal((await admin('/admin/keys/notes-app/revoke', {})).json.id, first.json.id);
  // Revoked, its name is free: the replacement takes it, and the name now means the replacement.
  const second = await admin('/admin/keys', { name: 'notes-app' });
  assert.equal(second.status, 201);
  assert.equal((await admin('/admin/keys/notes-app')).json.id, second.json.id, 'the key in use, not the revoked one');
  assert.equal((await admin('/admin/keys/notes-app/revoke', {})).json.id, second.json.id);
  // Two revoked keys under one name: the name alone no longer says which.
  const amb = await admin('/admin/keys/notes-app');
  assert.equal(amb.status, 400);
  assert.ok(amb.json.error.message.includes(first.json.id) && amb.json.error.message.includes(second.json.id), amb.json.error.message);
  // An expired key brought back (a later expires_at) must find its name free, as a new key would.
  const brief = await admin('/admin/keys', { name: 'brief-app', expires_in: '1s' });
  await new Promise((r) => setTimeout(r, 1100));
  const successor = await admin('/admin/keys', { name: 'brief-app' });
  assert.equal(successor.status, 201, 'an expired key frees its name');
  const back = await admin(`/admin/keys/${brief.json.id}`, { expires_at: new Date(Date.now() + 3_600_000).toISOString() }, 'PATCH');
  assert.equal(back.status, 409, 'brought back, it would share its name with a key in use');
  // A name must not read as an id or a secret, which a name may stand in for.
  for (const name of ['key_0123456789abcdef', 'sk-my-app']) assert.equal((await admin('/admin/keys', { name })).json.error.param, 'name');
  const none = await admin('/admin/keys/no-such-app');
  assert.equal(none.status, 404);
  assert.match(none.json.error.message, /no-such-app/);
  // Something shaped like a secret is never repeated back, found or not.
  const secretish = await admin(`/admin/keys/${encodeURIComponent('sk-not-a-real-key-1234')}`);
  assert.equal(secretish.status, 404);
  assert.doesNotMatch(secretish.json.error.message, /sk-not-a-real/);
});

test('one key\'s answers carry an ETag, new at every change; a change with If-Match is made only to the key as it was read: stale, a 412 that changes nothing; without it, the last write wins as before', async () => {
  const call = (method: string, path: string, headers: Record<string, string> = {}, body?: unknown) =>
    fetch(f.url + path, { method, headers: { authorization: `Bearer ${MASTER}`, 'content-type': 'application/json', ...headers }, body: body === undefined ? undefined : JSON.stringify(body) })
      .then(async (r) => ({ status: r.status, etag: r.headers.get('etag'), json: await r.json() as any }));
  const made = await call('POST', '/admin/keys', {}, { name: 'etag-app', metadata: { owner: 'mdt' } });
  assert.equal(made.status, 201);
  assert.match(made.etag ?? '', /^"[\w-]{22}"$/);
  const path = `/admin/keys/${made.json.id}`;
  const read = await call('GET', path);
  assert.equal(read.etag, made.etag, 'the key as created is the key read');
  // Two writers read it; the first changes the tier on the ETag it read.
  const first = await call('PATCH', path, { 'if-match': read.etag! }, { metadata: { ...read.json.metadata, tier: 'premium' } });
  assert.equal(first.status, 200, JSON.stringify(first.json));
  assert.notEqual(first.etag, read.etag);
  assert.equal((await call('GET', path)).etag, first.etag, 'the ETag a change answers with is the one the next read gives');
  // The second, on the same (now stale) ETag: refused, OpenAI-shaped, nothing changed.
  const stale = await call('PATCH', path, { 'if-match': read.etag! }, { metadata: { ...read.json.metadata, app: 'notes' } });
  assert.equal(stale.status, 412);
  assert.deepEqual(Object.keys(stale.json.error).sort(), ['code', 'message', 'param', 'type']);
  assert.equal(stale.json.error.code, 'precondition_failed');
  assert.equal(stale.json.error.type, 'invalid_request_error');
  assert.match(stale.json.error.message, /has changed since/);
  const now = await call('GET', path);
  assert.deepEqual(now.json.metadata, { owner: 'mdt', tier: 'premium' });
  assert.equal(now.etag, first.etag);
  // Read again and merged again, it is made: both fields kept.
  const merged = await call('PATCH', path, { 'if-match': now.etag! }, { metadata: { ...now.json.metadata, app: 'notes' } });
  assert.equal(merged.status, 200);
  assert.deepEqual(merged.json.metadata, { owner: 'mdt', tier: 'premium', app: 'notes' });
  // Any of several ETags; `*`; none at all (as LiteLLM's clients send): each made, each a new ETag, even a change to the same values.
  const etags = new Set([read.etag, first.etag, merged.etag]);
  let last = merged.etag!;
  for (const h of [{ 'if-match': `"stale", ${last}` }, { 'if-match': '*' }, {}, {}] as Record<string, string>[]) {
    const r = await call('PATCH', path, h, { rpm: 30 });
    assert.equal(r.status, 200, JSON.stringify(h));
    assert.ok(!etags.has(r.etag), `a new ETag at every change: ${r.etag}`);
    etags.add(r.etag);
    last = r.etag!;
  }
  // A weak ETag never matches (If-Match compares strongly), nor an empty header.
  for (const h of [`W/${last}`, '']) {
    const r = await call('PATCH', path, { 'if-match': h }, { rpm: 31 });
    assert.equal(r.status, 412, h);
    assert.equal(r.json.error.code, 'precondition_failed');
  }
  // Rotation and revocation honour it too: a stale ETag changes nothing (the secret still works).
  assert.equal((await call('POST', `${path}/rotate`, { 'if-match': merged.etag! }, {})).status, 412);
  assert.equal((await call('POST', `${path}/revoke`, { 'if-match': merged.etag! }, {})).status, 412);
  assert.equal((await call('DELETE', path, { 'if-match': merged.etag! })).status, 412);
  assert.equal((await post(f.url, '/v1/chat/completions', chat('local/chat'), { authorization: `Bearer ${made.json.key}` })).status, 200);
  const rotated = await call('POST', `${path}/rotate`, { 'if-match': last }, {});
  assert.equal(rotated.status, 200);
  assert.notEqual(rotated.etag, last);
  const revoked = await call('POST', `${path}/revoke`, { 'if-match': rotated.etag! }, {});
  assert.equal(revoked.status, 200);
  assert.equal(revoked.json.status, 'revoked');
  assert.equal((await call('GET', '/admin/keys/no-such-key', { 'if-match': last })).status, 404);
});

test('refusals anyone can cause are logged within bounds: a 12 KiB path is quoted by its first 200 characters; bad-key lines past 20 a second are summed up in one', async () => {
  const from = f.logs.length;
  const long = '/' + 'x'.repeat(12 * 1024);
  const r = await fetch(f.url + long);
  assert.equal(r.status, 404);
  const msg = ((await r.json()) as any).error.message as string;
  assert.ok(msg.length < 300 && msg.includes('(12289 characters)'), msg);
  // Many refusals at once: the log keeps at most 20 of them a second, then says how many it left out.
  const bad = await Promise.all(Array.from({ length: 120 }, () => post(f.url, '/v1/chat/completions', chat('local/chat'), { authorization: 'Bearer sk-not-a-key' })));
  assert.ok(bad.every((b) => b.status === 401));
  await waitFor(() => f.logs.slice(from).some((l) => l.includes('more line')), 3000, 'the summary of the lines left out');
  const lines = f.logs.slice(from);
  assert.ok(lines.every((l) => l.length < 2000), 'no line carries the whole path');
  const written = lines.filter((l) => /"status":401/.test(l)).length;
  const leftOut = lines.filter((l) => l.includes('left out')).map((l) => Number(/"left_out":(\d+)/.exec(l)?.[1] ?? 0)).reduce((a, b) => a + b, 0);
  assert.ok(written <= 60, `${written} lines for 120 refusals (20 a second at most)`);
  assert.equal(written + leftOut, 120, 'each refusal is either written or counted');
});

test('LiteLLM\'s key endpoints: /key/generate, /key/info, /key/update, /key/regenerate, /key/delete', async () => {
  const g = await admin('/key/generate', { key_alias: 'litellm-app', models: ['local/chat'], max_budget: 12.5, budget_duration: '30d', rpm_limit: 50, tpm_limit: 5000, metadata: { team: 'lab' }, duration: '1h' });
  assert.equal(g.status, 200);
  assert.match(g.json.key, /^sk-fabric-/);
  assert.equal(g.json.key_alias, 'litellm-app');
  assert.equal(g.json.max_budget, 12.5);
  assert.equal(g.json.budget_duration, 'month');
  assert.ok(Date.parse(g.json.expires) > Date.now());
  const info = await admin(`/key/info?key=${encodeURIComponent(g.json.key)}`);
  assert.equal(info.json.info.rpm_limit, 50);
  assert.deepEqual(info.json.info.models, ['local/chat']);
  const upd = await admin('/key/update', { key: g.json.token, rpm_limit: 60 });
  assert.equal(upd.json.rpm_limit, 60);
  const regen = await admin(`/key/${encodeURIComponent(g.json.key)}/regenerate`, {});
  assert.notEqual(regen.json.key, g.json.key);
  assert.ok((await admin('/key/list')).json.keys.includes(g.json.token));
  const del = await admin('/key/delete', { keys: [regen.json.key] });
  assert.deepEqual(del.json.deleted_keys, [g.json.token]);
  assert.equal((await post(f.url, '/v1/chat/completions', chat('local/chat'), { authorization: `Bearer ${regen.json.key}` })).status, 401);
});

test('usage by key from the admin API: JSON and CSV', async () => {
  const { json } = await admin('/admin/keys', { name: 'reporter' });
  for (let i = 0; i < 3; i++) await post(f.url, '/v1/chat/completions', chat('local/chat'), { authorization: `Bearer ${json.key}` });
  await f.gw.app.accounting!.writer.flush();
  const u = await admin('/admin/usage?by=key&since=1h');
  const row = u.json.data.find((r: any) => r.key === 'reporter');
  assert.equal(row.requests, 3);
  assert.ok(row.prompt_tokens > 0 && row.completion_tokens > 0);
  assert.ok(u.json.total.requests >= 3);
  const one = await admin(`/admin/usage?by=model&key=${json.id}`);
  assert.deepEqual(one.json.data.map((r: any) => [r.model, r.requests]), [['local/chat', 3]]);
  const csv = await fetch(`${f.url}/admin/usage?by=backend&format=csv`, { headers: { authorization: `Bearer ${MASTER}` } });
  assert.match(csv.headers.get('content-type')!, /text\/csv/);
  const lines = (await csv.text()).trimEnd().split('\n');
  assert.equal(lines[0], 'backend,requests,errors,prompt_tokens,completion_tokens,cost_usd,avg_latency_ms', 'headed by what it is grouped by');
  assert.ok(lines.some((l) => l.startsWith('armitage-qwen,')) && lines.some((l) => l.startsWith('(none),')), lines.join('\n'));
  // By key, the id goes beside the name: names may repeat across revoked keys.
  const byKey = (await (await fetch(`${f.url}/admin/usage?by=key&format=csv&key=${json.id}`, { headers: { authorization: `Bearer ${MASTER}` } })).text()).trimEnd().split('\n');
  assert.equal(byKey[0], 'key,key_id,requests,errors,prompt_tokens,completion_tokens,cost_usd,avg_latency_ms');
  assert.match(byKey[1]!, new RegExp(`^reporter,${json.id},3,0,`));
  assert.equal((await admin('/admin/usage?by=colour')).status, 400);
});

test('without a master key the gateway is open, yet a known virtual key is attributed, limited and can be revoked', async () => {
  const open = await startFabric({
    engines: [{ name: 'armitage', protocol: 'vllm', model: 'Qwen/Qwen2.5-7B-Instruct-AWQ', kind: 'chat', timing: FAST }],
    yaml: (url) => `
gateway:
  accounting: { flush_interval: 50ms }
backends:
  armitage-qwen: { engine: vllm, url: ${url('armitage')}/v1, model: Qwen/Qwen2.5-7B-Instruct-AWQ }
roles:
  chat-fast: { kind: chat, backends: [armitage-qwen], aliases: [local/chat] }
`,
  });
  try {
    const acct = open.gw.app.accounting!;
    const admin = new KeyAdmin(acct.store, acct.keys);
    const { record, secret } = await admin.create({ name: 'known', rpm: 1 });
    const auth = { authorization: `Bearer ${secret}` };
    assert.equal((await post(open.url, '/v1/chat/completions', chat('local/chat'))).status, 200, 'no key: open');
    assert.equal((await post(open.url, '/v1/chat/completions', chat('local/chat'), { authorization: 'Bearer anything' })).status, 200, 'an unknown key: open');
    assert.equal((await post(open.url, '/v1/chat/completions', chat('local/chat'), auth)).status, 200);
    assert.equal((await post(open.url, '/v1/chat/completions', chat('local/chat'), auth)).status, 429, 'the known key is limited');
    await acct.writer.flush();
    assert.deepEqual((await acct.store.usageSummary({ by: 'key', keyId: record.id })).map((r) => [r.group, r.requests]), [['known', 2]], 'and attributed');
    await admin.revoke(record.id);
    assert.equal((await post(open.url, '/v1/chat/completions', chat('local/chat'), auth)).status, 401, 'a revoked key is refused');
  } finally {
    await open.close();
  }
});

test('the admin API refuses a body that is not a JSON object, and a malformed key id in the path, with a 400, creating nothing', async () => {
  const count = async (): Promise<number> => (await admin('/admin/keys')).json.data.length;
  const before = await count();
  for (const body of [null, [], 1, '"x"']) {
    for (const path of ['/key/generate', '/admin/keys', '/key/delete']) {
      const r = await fetch(f.url + path, { method: 'POST', headers: { authorization: `Bearer ${MASTER}`, 'content-type': 'application/json' }, body: typeof body === 'string' ? body : JSON.stringify(body) });
      assert.equal(r.status, 400, `${path} ${JSON.stringify(body)}`);
      assert.match(((await r.json()) as any).error.message, /must be a JSON object/);
    }
  }
  assert.equal(await count(), before, 'no key was made');
  for (const [path, method] of [['/admin/keys/%E0%A4%A', 'GET'], ['/admin/keys/%E0%A4%A/revoke', 'POST'], ['/key/%E0/regenerate', 'POST']] as const) {
    const r = await fetch(f.url + path, { method, headers: { authorization: `Bearer ${MASTER}` } });
    assert.equal(r.status, 400, path);
    assert.match(((await r.json()) as any).error.message, /percent-encoding/);
  }
});

test('a key limited to some roles: the 404 for a name it mistyped suggests only what it may use', async () => {
  const { json } = await admin('/admin/keys', { name: 'limited-hint', roles: ['chat-fast'] });
  const ask = (model: string) => post(f.url, '/v1/chat/completions', { model, messages: [{ role: 'user', content: 'x' }] }, { authorization: `Bearer ${json.key}` });
  const other = await ask('openai/stron');
  assert.equal(other.status, 404);
  assert.doesNotMatch(other.json.error.message, /did you mean/, 'a role the key cannot see is not named');
  const own = await ask('chat-fas');
  assert.equal(own.status, 404);
  assert.match(own.json.error.message, /did you mean `chat-fast`\?/);
  // The master key sees every role.
  const master = await post(f.url, '/v1/chat/completions', { model: 'openai/stron', messages: [{ role: 'user', content: 'x' }] }, { authorization: `Bearer ${MASTER}` });
  assert.match(master.json.error.message, /did you mean `openai\/strong`\?/);
});

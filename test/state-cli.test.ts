// fabric keys and fabric usage as an operator runs them: against a running gateway's admin
// API, and with --config against the store directly.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { startFabric, chat, post, type Fabric } from './helpers.ts';
import { runFabric } from './support/proc.ts';
import { tempDir } from './support/temp-dir.ts';

const MASTER = 'fabric-master-key-for-cli-tests';
const FAST = { ttftMs: 2, tokensPerSecond: 5000, maxConcurrency: 64, maxQueue: 256 };
const dir = tempDir('fabric-state-cli-');
const config = join(dir, 'fabric.yaml');
let f: Fabric;

const fabric = (args: string[], env: Record<string, string> = {}) => runFabric(args, { ...process.env, FABRIC_DATA_DIR: '', FABRIC_URL: '', FABRIC_API_KEY: '', ...env });

before(async () => {
  f = await startFabric({
    env: { FABRIC_MASTER_KEY: MASTER }, apiKey: MASTER, dataDir: join(dir, 'data'),
    engines: [{ name: 'armitage', protocol: 'vllm', model: 'Qwen/Qwen2.5-7B-Instruct-AWQ', kind: 'chat', timing: FAST }],
    yaml: (url) => `
gateway:
  master_key: env:FABRIC_MASTER_KEY
  accounting: { flush_interval: 50ms, sync_interval: 100ms }
backends:
  armitage-qwen: { engine: vllm, url: ${url('armitage')}/v1, model: Qwen/Qwen2.5-7B-Instruct-AWQ }
roles:
  chat-fast: { kind: chat, backends: [armitage-qwen], aliases: [local/chat] }
`,
  });
  // The same fabric as a file, for --config: the same store. Its master key is not set here:
  // reading the store directly does not need it.
  writeFileSync(config, `
gateway:
  master_key: env:FABRIC_TEST_MASTER_KEY_NOT_SET
  data_dir: ${join(dir, 'data')}
backends:
  armitage-qwen: { engine: vllm, url: http://127.0.0.1:9/v1, model: Qwen/Qwen2.5-7B-Instruct-AWQ }
roles:
  chat-fast: { kind: chat, backends: [armitage-qwen], aliases: [local/chat] }
`);
});

after(async () => {
  await f.close();
  rmSync(dir, { recursive: true, force: true });
});

/** The status a request with `key` gets once it is no longer `was` (the gateway's next keys sync; 3 s at most). */
async function statusOnceSynced(model: string, key: string, was: number): Promise<number> {
  const until = Date.now() + 3000;
  let status = was;
  while (status === was && Date.now() < until) {
    await new Promise((res) => setTimeout(res, 50));
    status = (await post(f.url, '/v1/chat/completions', chat(model), { authorization: `Bearer ${key}` })).status;
  }
  return status;
}

test('fabric keys and fabric usage --help', async () => {
  for (const cmd of ['keys', 'usage']) {
    const r = await fabric([cmd, '--help']);
    assert.equal(r.code, 0);
    assert.match(r.stdout, new RegExp(`Usage: fabric ${cmd}`));
  }
  assert.equal((await fabric(['keys'])).code, 2);
  assert.equal((await fabric(['usage', '--by', 'colour'])).code, 2);
});

test('keys and usage --help name the master key --key, as every command does, and say how revocation spreads', async () => {
  for (const cmd of ['keys', 'usage', 'health', 'smoke']) {
    const { stdout } = await fabric([cmd, '--help']);
    assert.match(stdout, /^ {2}--url URL +the gateway \(default: \$FABRIC_URL, else http:\/\/127\.0\.0\.1:4000\)$/m, cmd);
    assert.match(stdout, /^ {2}--key KEY +\S/m, cmd);
    assert.doesNotMatch(stdout, /--auth/, cmd);
  }
  const keys = (await fabric(['keys', '--help'])).stdout;
  // The key ring's real bound: NOTIFY with PostgreSQL, else the keys-version poll; no "within a second".
  assert.doesNotMatch(keys, /within a second/);
  assert.match(keys, /LISTEN\/NOTIFY/);
  assert.match(keys, /sync_interval, default 2s/);
});

test('fabric keys through the admin API: create shows the key once, then list, show, rotate, revoke', async () => {
  const env = { FABRIC_URL: f.url, MK: MASTER };
  const c = await fabric(['keys', 'create', 'obsidian', '--roles', 'local/chat', '--rpm', '60', '--budget', '10/month', '--meta', 'app=obsidian', '--role-limit', 'local/chat:tpm=5000', '--key', 'env:MK'], env);
  assert.equal(c.code, 0, c.stderr);
  const secret = /^(sk-fabric-\S+)$/m.exec(c.stdout)?.[1];
  assert.ok(secret !== undefined, c.stdout);
  assert.match(c.stdout, /only time the key is shown/);
  assert.match(c.stdout, /budget +\$10\.00 per month/);
  assert.match(c.stdout, /chat-fast/, 'the role limit given by alias is kept under its role, where requests find it');
  assert.doesNotMatch(c.stdout.replace(/roles +local\/chat/, ''), /local\/chat:/);
  assert.equal((await post(f.url, '/v1/chat/completions', chat('local/chat'), { authorization: `Bearer ${secret}` })).status, 200);
  const id = /^id +(key_\w+)/m.exec(c.stdout)![1]!;
  const list = await fabric(['keys', 'list', '--key', 'env:MK'], env);
  assert.equal(list.code, 0, list.stderr);
  assert.match(list.stdout, /^ID +NAME +STATUS/);
  assert.match(list.stdout, new RegExp(`${id} +obsidian +active`));
  assert.ok(!list.stdout.includes(secret!));
  const show = await fabric(['keys', 'show', id, '--json', '--key', 'env:MK'], env);
  assert.equal(JSON.parse(show.stdout).rpm, 60);
  const rot = await fabric(['keys', 'rotate', id, '--key', 'env:MK'], env);
  const fresh = /^(sk-fabric-\S+)$/m.exec(rot.stdout)?.[1];
  assert.ok(fresh !== undefined && fresh !== secret);
  assert.equal((await post(f.url, '/v1/chat/completions', chat('local/chat'), { authorization: `Bearer ${secret}` })).status, 401);
  const rev = await fabric(['keys', 'revoke', id, '--key', 'env:MK'], env);
  assert.equal(rev.code, 0);
  assert.match(rev.stdout, /^revoked key_\w+ \(obsidian\); it stops working at once/);
  assert.equal((await post(f.url, '/v1/chat/completions', chat('local/chat'), { authorization: `Bearer ${fresh}` })).status, 401);
  const again = await fabric(['keys', 'revoke', id, '--key', 'env:MK'], env);
  assert.equal(again.code, 0);
  assert.equal(again.stdout, `${id} (obsidian) was already revoked\n`);
  const noName = await fabric(['keys', 'create', '--key', 'env:MK'], env);
  assert.equal(noName.code, 2);
  assert.equal(noName.stderr, 'fabric keys: a NAME is required: fabric keys create NAME\n');
  const twoFormats = await fabric(['usage', '--json', '--csv', '--key', 'env:MK'], env);
  assert.notEqual(twoFormats.code, 0);
  assert.match(twoFormats.stderr, /--json or --csv/);
  const noauth = await fabric(['keys', 'list'], env);
  assert.equal(noauth.code, 1);
  assert.match(noauth.stderr, /401 the admin API needs the master key: pass it with --key or \$FABRIC_API_KEY/);
  const wrongKey = await fabric(['usage', '--key', 'not-the-master-key'], env);
  assert.equal(wrongKey.code, 1);
  assert.match(wrongKey.stderr, /^fabric usage: GET \/admin\/usage\S*: 401 the key given \(--key or \$FABRIC_API_KEY\) was refused: it is not the gateway's master key\n$/);
});

test('fabric keys --config writes the store directly; the running gateway picks the key up', async () => {
  const c = await fabric(['keys', 'create', 'trailblazer', '--config', config, '--json', '--expires', '30d']);
  assert.equal(c.code, 0, c.stderr);
  const k = JSON.parse(c.stdout);
  assert.equal(k.name, 'trailblazer');
  assert.ok(Date.parse(k.expires_at) > Date.now() + 29 * 86_400_000);
  assert.equal((await post(f.url, '/v1/chat/completions', chat('local/chat'), { authorization: `Bearer ${k.key}` })).status, 200);
  const bad = await fabric(['keys', 'create', 'x', '--roles', 'nope', '--config', config]);
  assert.equal(bad.code, 1);
  assert.match(bad.stderr, /nope is not a role/);
  // A mistyped limit is refused, never a key with no limit; 20k and 60/min read as meant.
  for (const [flag, v] of [['--tpm', 'lots'], ['--rpm', '60/hour'], ['--rpm', '0'], ['--tpm', '1.5']]) {
    const typo = await fabric(['keys', 'create', 'typo', flag!, v!, '--config', config, '--json']);
    assert.equal(typo.code, 2, `${flag} ${v}: ${typo.stdout}`);
    assert.match(typo.stderr, new RegExp(`${flag} must be a whole number per minute such as 60, 20000 or 20k, got "${v!.replace('/', '\\/')}"`));
  }
  const kilo = await fabric(['keys', 'create', 'kilo', '--tpm', '20k', '--rpm', '60/min', '--config', config, '--json']);
  assert.equal(kilo.code, 0, kilo.stderr);
  assert.deepEqual([JSON.parse(kilo.stdout).tpm, JSON.parse(kilo.stdout).rpm], [20000, 60]);
  // One key in use per name: a second is refused, naming the first; the name stands for the id.
  const dup = await fabric(['keys', 'create', 'trailblazer', '--config', config]);
  assert.equal(dup.code, 1);
  assert.match(dup.stderr, new RegExp(`a key named "trailblazer" is already in use \\(${k.id}\\)`));
  const shown = await fabric(['keys', 'show', 'trailblazer', '--config', config, '--json']);
  assert.equal(JSON.parse(shown.stdout).id, k.id);
  const r = await fabric(['keys', 'revoke', 'trailblazer', '--config', config]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, new RegExp(`revoked ${k.id} \\(trailblazer\\)`));
  assert.match(r.stdout, /running gateways stop accepting it at their next keys sync \(gateway\.accounting\.sync_interval: 2000 ms\)/);
  // Another process changed the store: the gateway sees it at its next poll (sync_interval 100ms).
  assert.equal(await statusOnceSynced('local/chat', k.key, 200), 401);
});

test('fabric keys update changes only the flags given, through the API and with --config; --meta sets one field and keeps the rest', async () => {
  const viaApi = ['--url', f.url, '--key', MASTER];
  const c = await fabric(['keys', 'create', 'notes-app', '--meta', 'tier=free', '--meta', 'owner=mdt', '--rpm', '30', '--roles', 'local/chat', '--json', ...viaApi]);
  assert.equal(c.code, 0, c.stderr);
  const k = JSON.parse(c.stdout);
  const u = await fabric(['keys', 'update', 'notes-app', '--meta', 'tier=premium', '--tpm', '20k', ...viaApi]);
  assert.equal(u.code, 0, u.stderr);
  assert.match(u.stdout, new RegExp(`^updated ${k.id} \\(notes-app\\)\n`));
  assert.match(u.stdout, /^limits +30 rpm, 20000 tpm$/m);
  assert.match(u.stdout, /^metadata +\{"tier":"premium","owner":"mdt"\}$/m);
  assert.match(u.stdout, /^roles +local\/chat$/m, 'what was not given stays');
  assert.ok(!u.stdout.includes(k.key), 'an update never shows the key');
  const cleared = await fabric(['keys', 'update', k.id, '--meta', 'owner=', '--rpm', 'none', '--roles', 'all', '--json', '--config', config]);
  assert.equal(cleared.code, 0, cleared.stderr);
  const v = JSON.parse(cleared.stdout);
  assert.deepEqual([v.metadata, v.rpm, v.tpm, v.roles], [{ tier: 'premium' }, null, 20000, null]);
  // The other words that lift a setting, through the API this time.
  const limited = await fabric(['keys', 'update', k.id, '--budget', '5/day', '--expires', '30d', '--json', ...viaApi]);
  assert.deepEqual(JSON.parse(limited.stdout).budget, { amount: 5, period: 'day' });
  assert.notEqual(JSON.parse(limited.stdout).expires_at, null);
  const lifted = JSON.parse((await fabric(['keys', 'update', k.id, '--tpm', 'none', '--budget', 'none', '--expires', 'never', '--json', ...viaApi])).stdout);
  assert.deepEqual([lifted.tpm, lifted.budget, lifted.expires_at], [null, null, null]);
  // Role limits merge as metadata does: the role given changes, with none it loses them, the others keep theirs.
  const two = await fabric(['keys', 'update', 'notes-app', '--role-limit', 'chat-fast:rpm=5', '--role-limit', 'other-role:rpm=7', '--json', '--config', config]);
  assert.equal(two.code, 1, 'a role the config does not have is refused with --config');
  const five = await fabric(['keys', 'update', 'notes-app', '--role-limit', 'chat-fast:rpm=5,tpm=900', '--json', ...viaApi]);
  assert.deepEqual(JSON.parse(five.stdout).role_limits, { 'chat-fast': { rpm: 5, tpm: 900 } });
  const nine = await fabric(['keys', 'update', 'notes-app', '--role-limit', 'local/chat:rpm=9', '--json', '--config', config]);
  assert.deepEqual(JSON.parse(nine.stdout).role_limits, { 'chat-fast': { rpm: 9 } }, 'given by alias, kept under its role');
  const off = await fabric(['keys', 'update', 'notes-app', '--role-limit', 'chat-fast:none', '--json', ...viaApi]);
  assert.deepEqual(JSON.parse(off.stdout).role_limits, {});
  const noRoles = await fabric(['keys', 'update', 'notes-app', '--roles', ' , ', ...viaApi]);
  assert.equal(noRoles.code, 2);
  assert.match(noRoles.stderr, /--roles must be one or more roles or aliases \(or all\), got " , "/);
  const nothing = await fabric(['keys', 'update', 'notes-app', ...viaApi]);
  assert.equal(nothing.code, 2);
  assert.match(nothing.stderr, /nothing to change: give --roles/);
  const badRole = await fabric(['keys', 'update', 'notes-app', '--roles', 'nope', '--config', config]);
  assert.equal(badRole.code, 1);
  assert.match(badRole.stderr, /--roles: nope is not a role/);
  const unknown = await fabric(['keys', 'update', 'no-such-key', '--rpm', '5', ...viaApi]);
  assert.equal(unknown.code, 1);
  assert.match(unknown.stderr, /no key with the id, name or secret "no-such-key"/);
});

/**
 * A proxy before the gateway that, after the gateway answers one of the first `times` GETs of a
 * key and before the client has the answer, runs `between`: a write lands between the client's
 * read and its write, every time, with no hook in the command. `seen` lists what passed.
 */
async function interposer(target: string, times: number, between: () => Promise<void>, weaken = false): Promise<{ url: string; seen: string[]; close(): Promise<void> }> {
  const seen: string[] = [];
  const server = createServer((req, res) => {
    void (async () => {
      const chunks: Buffer[] = [];
      for await (const c of req) chunks.push(c as Buffer);
      const headers: Record<string, string> = {};
      for (const h of ['authorization', 'content-type', 'if-match']) if (typeof req.headers[h] === 'string') headers[h] = req.headers[h];
      const r = await fetch(target + req.url, { method: req.method, headers, body: chunks.length === 0 ? undefined : Buffer.concat(chunks) });
      const body = Buffer.from(await r.arrayBuffer());
      seen.push(`${req.method} ${r.status}${headers['if-match'] === undefined ? '' : ' if-match'}`);
      if (req.method === 'GET' && times > 0) {
        times--;
        await between();
      }
      // weaken: as nginx's gzip does to every strong ETag of what it compresses.
      const etag = r.headers.get('etag') === null ? null : `${weaken ? 'W/' : ''}${r.headers.get('etag')}`;
      res.writeHead(r.status, { 'content-type': r.headers.get('content-type') ?? 'application/json', ...(etag === null ? {} : { etag }) }).end(body);
    })().catch((e: unknown) => res.destroy(e as Error));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, seen, close: () => new Promise((r) => server.close(() => r())) };
}

test('fabric keys update through the API while another update lands between its read and its write: both kept (its stale If-Match is refused, and it reads, merges and writes again); one that never gets through gives up, exit 1, writing nothing', async () => {
  const viaApi = ['--url', f.url, '--key', MASTER];
  const c = await fabric(['keys', 'create', 'race-app', '--meta', 'owner=mdt', '--json', ...viaApi]);
  assert.equal(c.code, 0, c.stderr);
  const id = JSON.parse(c.stdout).id;
  // Another operator sets the team, on the gateway itself, once this update has read the key.
  const p = await interposer(f.url, 1, async () => {
    const other = await fabric(['keys', 'update', id, '--meta', 'team=ops', ...viaApi]);
    assert.equal(other.code, 0, other.stderr);
  });
  try {
    const u = await fabric(['keys', 'update', 'race-app', '--meta', 'tier=premium', '--json', '--url', p.url, '--key', MASTER]);
    assert.equal(u.code, 0, u.stderr);
    assert.deepEqual(JSON.parse(u.stdout).metadata, { owner: 'mdt', team: 'ops', tier: 'premium' });
    assert.deepEqual(p.seen, ['GET 200', 'PATCH 412 if-match', 'GET 200', 'PATCH 200 if-match']);
  } finally {
    await p.close();
  }
  const shown = await fabric(['keys', 'show', id, '--json', ...viaApi]);
  assert.deepEqual(JSON.parse(shown.stdout).metadata, { owner: 'mdt', team: 'ops', tier: 'premium' });
  // A key changed after every read: five tries, then a clear refusal; the others' changes stand.
  let n = 0;
  const busy = await interposer(f.url, Infinity, async () => {
    const r = await fetch(`${f.url}/admin/keys/${id}`, { method: 'PATCH', headers: { authorization: `Bearer ${MASTER}`, 'content-type': 'application/json' }, body: JSON.stringify({ rpm: 100 + ++n }) });
    assert.equal(r.status, 200);
  });
  try {
    const u = await fabric(['keys', 'update', id, '--meta', 'tier=free', '--url', busy.url, '--key', MASTER]);
    assert.equal(u.code, 1, u.stdout);
    assert.equal(u.stderr, `fabric keys: key ${id} (race-app) was changed by other updates each of the 5 times this one read it; nothing of this update was written: run it again\n`);
    assert.equal(busy.seen.filter((x) => x === 'PATCH 412 if-match').length, 5);
  } finally {
    await busy.close();
  }
  const after = JSON.parse((await fabric(['keys', 'show', id, '--json', ...viaApi])).stdout);
  assert.deepEqual([after.metadata, after.rpm], [{ owner: 'mdt', team: 'ops', tier: 'premium' }, 105]);
  // A change that merges nothing (--rpm alone) sends no condition: nothing of the key it read goes into it.
  const plain = await interposer(f.url, 1, async () => {});
  try {
    assert.equal((await fabric(['keys', 'update', id, '--rpm', '60', '--url', plain.url, '--key', MASTER])).code, 0);
    assert.deepEqual(plain.seen, ['GET 200', 'PATCH 200']);
  } finally {
    await plain.close();
  }
});

test('fabric keys update through a proxy that makes ETags weak (nginx compressing JSON): the change is made, on the key\'s revision', async () => {
  const viaApi = ['--url', f.url, '--key', MASTER];
  const c = await fabric(['keys', 'create', 'weak-etag-app', '--meta', 'owner=mdt', '--json', ...viaApi]);
  assert.equal(c.code, 0, c.stderr);
  const p = await interposer(f.url, 0, async () => {}, true);
  try {
    const u = await fabric(['keys', 'update', 'weak-etag-app', '--meta', 'tier=premium', '--json', '--url', p.url, '--key', MASTER]);
    assert.equal(u.code, 0, u.stderr);
    assert.deepEqual(JSON.parse(u.stdout).metadata, { owner: 'mdt', tier: 'premium' });
    assert.deepEqual(p.seen, ['GET 200', 'PATCH 200 if-match']);
  } finally {
    await p.close();
  }
});

test('keys create --expires: what the help offers (a duration, an ISO date or date-time) is taken; anything else is the flag\'s error, exit 2, through the API and with --config', async () => {
  const viaApi = ['--url', f.url, '--key', MASTER];
  for (const where of [viaApi, ['--config', config]]) {
    for (const [v, why] of [['tomorrow', 'must be a duration from now such as 30d or 12h, or an ISO date-time'], ['0d', 'must be a duration'], ['2099-02-30', 'must be a duration'],
      ['1700000000', 'must be a duration'], ['2020-01-01', 'must be a time to come, got "2020-01-01" \\(2020-01-0']] as const) {
      const r = await fabric(['keys', 'create', 'expiring', '--expires', v, ...where]);
      assert.equal(r.code, 2, `${v} ${where[0]}: ${r.stderr}`);
      assert.match(r.stderr, new RegExp(`^fabric keys: --expires ${why}`), v);
      assert.doesNotMatch(r.stderr, /expires_at|expires_in/, 'the flag is named, not the API field');
    }
  }
  const at = await fabric(['keys', 'create', 'until-2099', '--expires', '2099-01-31T18:00:00Z', '--json', ...viaApi]);
  assert.equal(at.code, 0, at.stderr);
  assert.equal(JSON.parse(at.stdout).expires_at, '2099-01-31T18:00:00.000Z');
  const day = await fabric(['keys', 'create', 'day-2099', '--expires', '2099-01-31', '--json', '--config', config], { TZ: 'Europe/Paris' });
  assert.equal(day.code, 0, day.stderr);
  assert.equal(JSON.parse(day.stdout).expires_at, '2099-01-30T23:00:00.000Z', 'a date alone is midnight where the command runs');
  const hours = await fabric(['keys', 'create', 'in-12h', '--expires', '12h', '--json', ...viaApi]);
  assert.equal(hours.code, 0, hours.stderr);
  assert.ok(Math.abs(Date.parse(JSON.parse(hours.stdout).expires_at) - (Date.now() + 12 * 3_600_000)) < 60_000);
});

test('a gateway with no master key: keys, usage and health --probe say so, whatever key is given, each naming what it can do instead', async () => {
  const open = await startFabric({
    engines: [{ name: 'molly', protocol: 'vllm', model: 'm', kind: 'chat', timing: FAST }],
    yaml: (url) => `backends:\n  molly-m: { engine: vllm, url: ${url('molly')}/v1, model: m }\nroles:\n  chat: { kind: chat, backends: [molly-m] }\n`,
  });
  try {
    const raw = await fetch(`${open.url}/admin/keys`);
    assert.equal(raw.status, 403);
    assert.equal(((await raw.json()) as { error: { code: string } }).error.code, 'no_master_key', 'its own code: a client tells it from a key refused');
    for (const key of [[], ['--key', 'no-key-would-do']]) {
      for (const cmd of [['usage'], ['keys', 'list']]) {
        const r = await fabric([...cmd, '--url', open.url, ...key]);
        assert.equal(r.code, 1, r.stderr);
        assert.match(r.stderr, new RegExp(`^fabric ${cmd[0]}: GET /admin/\\S+: 403 this gateway has no master key: set gateway\\.master_key to use the admin API; on the gateway host, fabric ${cmd[0]} --config FILE reads its store directly`), key.join(' '));
        // The advice is this command's, never the other's.
        assert.doesNotMatch(r.stderr, new RegExp(`fabric ${cmd[0] === 'keys' ? 'usage' : 'keys'}`));
      }
      const probe = await fabric(['health', '--probe', '--url', open.url, ...key]);
      assert.equal(probe.code, 2);
      assert.match(probe.stderr, /this gateway has no master key: set gateway\.master_key to use the admin API; fabric health without --probe shows/);
      assert.doesNotMatch(probe.stderr, /needs the master key|fabric keys/);
    }
  } finally {
    await open.close();
  }
});

test('fabric usage: a table, CSV and JSON, from the API and from the store', async () => {
  for (let i = 0; i < 3; i++) await post(f.url, '/v1/chat/completions', chat('local/chat'), { authorization: `Bearer ${MASTER}` });
  await f.gw.app.accounting!.writer.flush();
  const t = await fabric(['usage', '--by', 'role', '--since', '1h', '--url', f.url, '--key', MASTER]);
  assert.equal(t.code, 0, t.stderr);
  // --auth, the old name, still works; --key with a virtual key id (its old meaning) is refused, naming --key-id.
  const old = await fabric(['usage', '--by', 'role', '--since', '1h', '--url', f.url, '--auth', MASTER]);
  assert.equal(old.code, 0, old.stderr);
  assert.equal(old.stdout, t.stdout);
  // A command line to mend exits 2 (as a bad --by or --since does); what the store refuses, 1.
  const moved = await fabric(['usage', '--key', 'key_0123456789abcdef', '--config', config]);
  assert.equal(moved.code, 2);
  assert.match(moved.stderr, /use --key-id key_0123456789abcdef/);
  // A key name given to --key with --config (the old filter, by name): refused, not ignored.
  const byName = await fabric(['usage', '--key', 'obsidian', '--config', config]);
  assert.equal(byName.code, 2);
  for (const bad of [['--since', 'yesterday-ish'], ['--by', 'colour'], ['--until', '2020-01-01', '--since', 'today'], ['--until', 'today', '--since', 'today']]) {
    const r = await fabric(['usage', ...bad, '--config', config]);
    assert.equal(r.code, 2, `${bad.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, new RegExp(`^fabric usage: ${bad[0]} must be`));
  }
  assert.match(byName.stderr, /with --config none is needed/);
  const filtered = await fabric(['usage', '--key-id', 'key_0123456789abcdef', '--config', config]);
  assert.equal(filtered.code, 1);
  assert.match(filtered.stderr, /no key key_0123456789abcdef/);
  // A key's name stands for its id (kilo, made above).
  const byKeyName = await fabric(['usage', '--key-id', 'kilo', '--config', config, '--json']);
  assert.equal(byKeyName.code, 0, byKeyName.stderr);
  const unknownName = await fabric(['usage', '--key-id', 'no-such-key', '--config', config]);
  assert.equal(unknownName.code, 1);
  assert.match(unknownName.stderr, /no key with the id, name or secret "no-such-key"/);
  assert.match(t.stdout, /^ROLE +REQUESTS +ERRORS +TOKENS IN +TOKENS OUT +COST +AVG MS/);
  assert.match(t.stdout, /^chat-fast +\d+ +0 +\d+/m);
  assert.match(t.stdout, /^total +\d+/m);
  const csv = await fabric(['usage', '--by', 'day', '--csv', '--config', config]);
  assert.equal(csv.code, 0, csv.stderr);
  assert.match(csv.stdout, /^day,requests,errors,prompt_tokens,completion_tokens,cost_usd,avg_latency_ms\n\d{4}-\d\d-\d\d,\d+,/);
  // A request refused before its model was read (not JSON) is grouped as (none), as by role or backend.
  assert.equal((await post(f.url, '/v1/chat/completions', 'not json', { authorization: `Bearer ${MASTER}` })).status, 400);
  await f.gw.app.accounting!.writer.flush();
  const byModel = await fabric(['usage', '--by', 'model', '--config', config]);
  assert.equal(byModel.code, 0, byModel.stderr);
  assert.match(byModel.stdout, /^\(none\) +\d+ +[1-9]/m, byModel.stdout);
  assert.doesNotMatch(byModel.stdout, /^ +\d/m, 'no row without a name');
  const j = JSON.parse((await fabric(['usage', '--by', 'backend', '--json', '--config', config])).stdout);
  assert.equal(j.by, 'backend');
  assert.ok(j.data.some((r: any) => r.backend === 'armitage-qwen' && r.requests >= 3));
  assert.ok(j.total.requests >= 3);
});

test('--data-dir: the store of a gateway started without a config (the demo fleet), for keys and usage', async () => {
  const data = join(dir, 'data');
  const c = await fabric(['keys', 'create', 'demo-app', '--data-dir', data, '--roles', 'chat-fast', '--json']);
  assert.equal(c.code, 0, c.stderr);
  const k = JSON.parse(c.stdout);
  // The same store the running gateway uses: it learns of the key at its next sync and takes it.
  assert.equal(await statusOnceSynced('chat-fast', k.key, 401), 200);
  const list = await fabric(['keys', 'list', '--data-dir', data, '--json']);
  assert.ok(JSON.parse(list.stdout).some((x: { name: string }) => x.name === 'demo-app'), list.stdout);
  await f.gw.app.accounting!.writer.flush();
  const u = await fabric(['usage', '--data-dir', data, '--by', 'key', '--json']);
  assert.equal(u.code, 0, u.stderr);
  assert.ok(JSON.parse(u.stdout).data.some((r: { key: string; requests: number }) => r.key === 'demo-app' && r.requests >= 1), u.stdout);
  const typo = await fabric(['keys', 'create', 'x', '--data-dir', join(dir, 'dta')]);
  assert.notEqual(typo.code, 0);
  assert.match(typo.stderr, /no store at .*dta\/fabric\.db; a gateway started without a config keeps it in --data-dir DIR/);
  assert.equal(existsSync(join(dir, 'dta')), false, 'no new empty store');
});

test('--config where the gateway keeps its store elsewhere (the rendered unit sets FABRIC_DATA_DIR): refused, naming --data-dir, rather than a new empty store; with --data-dir, the gateway\'s own', async () => {
  // The config without its data_dir: as the rendered unit's, whose data directory comes from the environment.
  mkdirSync(join(dir, 'etc'), { recursive: true });
  const moved = join(dir, 'etc', 'fabric.yaml');
  writeFileSync(moved, readFileSync(config, 'utf8').replace(/^ {2}data_dir: .*\n/m, ''));
  const lost = await fabric(['keys', 'list', '--config', moved]);
  assert.equal(lost.code, 1);
  assert.match(lost.stderr, /no store at .*fabric\.db: .*--data-dir DIR or \$FABRIC_DATA_DIR \(.*\/var\/lib\/ai-fabric\)/);
  assert.equal(existsSync(join(dir, 'etc', 'data')), false, 'no new, empty store beside the config');
  // Keys made before the gateway's first start: the store is made, and where is said.
  const first = await fabric(['keys', 'create', 'early', '--config', moved, '--json']);
  assert.equal(first.code, 0, first.stderr);
  assert.match(first.stderr, /a new store at .*etc\/data\/fabric\.db.*--data-dir DIR/);
  assert.equal(existsSync(join(dir, 'etc', 'data', 'fabric.db')), true);
  const found = await fabric(['keys', 'list', '--config', moved, '--data-dir', join(dir, 'data'), '--json']);
  assert.equal(found.code, 0, found.stderr);
  assert.ok(Array.isArray(JSON.parse(found.stdout)));
  const viaEnv = await fabric(['usage', '--config', moved, '--json'], { FABRIC_DATA_DIR: join(dir, 'data') });
  assert.equal(viaEnv.code, 0, viaEnv.stderr);
});

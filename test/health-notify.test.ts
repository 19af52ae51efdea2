// fabric health --notify as a timer runs it: the webhook called once per change of level, the
// gateway down (critical) included, which the gateway cannot report itself; a failed call is
// made again by the next run.

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { once } from 'node:events';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { AddressInfo } from 'node:net';
import { startFabric } from './helpers.ts';
import { runFabric } from './support/proc.ts';
import { freePort } from './support/servers.ts';
import { tempDir } from './support/temp-dir.ts';
import { notifyChange } from '../src/cli/health-notify.ts';

const dir = tempDir('fabric-health-notify-');
after(() => rmSync(dir, { recursive: true, force: true }));

test('fabric health --notify: one call per change of level (down, then back), none while it stays; a failed call is made again next run; the URL never printed', async () => {
  const bodies: { text: string }[] = [];
  let answer = 200;
  const hook = createServer((req, res) => {
    let raw = '';
    req.on('data', (c) => { raw += c; });
    req.on('end', () => { if (answer === 200) bodies.push(JSON.parse(raw)); res.statusCode = answer; res.end(); });
  });
  hook.listen(0, '127.0.0.1');
  await once(hook, 'listening');
  const hookUrl = `http://127.0.0.1:${(hook.address() as AddressInfo).port}/services/T0/SECRET-TOKEN`;
  const f = await startFabric({
    engines: [{ name: 'a', protocol: 'vllm', model: 'm', kind: 'chat' }],
    yaml: (url) => `backends:\n  a: { engine: vllm, url: ${url('a')}/v1, model: m }\nroles:\n  chat: { kind: chat, backends: [a] }\n`,
  });
  const state = join(dir, 'state', 'level');
  const down = `http://127.0.0.1:${await freePort()}`;
  const run = (url: string) => runFabric(['health', '--url', url, '--notify', 'env:HOOK', '--state', state], { ...process.env, HOOK: hookUrl, FABRIC_API_KEY: '' });
  try {
    const ok = await run(f.url);
    assert.equal(ok.code, 0, ok.stderr);
    assert.equal(bodies.length, 0, 'ok, as assumed at first: nothing to say');

    const gone = await run(down);
    assert.equal(gone.code, 2);
    assert.equal(bodies.length, 1);
    assert.match(bodies[0]!.text, /\*AI Fabric\* on .*: CRITICAL \(was ok\)\n• /);
    assert.equal(readFileSync(state, 'utf8'), 'critical\n');
    assert.match(gone.stderr, /fabric health: level critical \(was ok\): 127\.0\.0\.1:\d+ called/);
    assert.doesNotMatch(gone.stdout + gone.stderr, /SECRET-TOKEN/);
    assert.equal((await run(down)).code, 2);
    assert.equal(bodies.length, 1, 'still down: no second call');

    answer = 500;
    const failed = await run(f.url);
    assert.equal(failed.code, 0);
    assert.match(failed.stderr, /level ok \(was critical\), but calling 127\.0\.0\.1:\d+ failed \(the webhook answered HTTP 500\); the next run tries again/);
    assert.equal(readFileSync(state, 'utf8'), 'critical\n', 'not recorded');
    answer = 200;
    await run(f.url);
    assert.equal(bodies.length, 2);
    assert.match(bodies[1]!.text, /all clear \(was critical\)/);
    assert.equal(readFileSync(state, 'utf8'), 'ok\n');
  } finally {
    await f.close();
    hook.close();
  }
});

test('fabric health --notify: an unset variable or a URL that is none, and --state without --notify, are usage errors (exit 2)', async () => {
  const env: NodeJS.ProcessEnv = { ...process.env, FABRIC_API_KEY: '' };
  delete env.NO_SUCH_HOOK;
  const unset = await runFabric(['health', '--notify', 'env:NO_SUCH_HOOK'], env);
  assert.equal(unset.code, 2);
  assert.match(unset.stderr, /--notify env:NO_SUCH_HOOK: the environment variable NO_SUCH_HOOK is not set/);
  const bad = await runFabric(['health', '--notify', 'ftp://x'], env);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /--notify must be an http\(s\) URL or env:NAME/);
  const lone = await runFabric(['health', '--state', join(dir, 's')], env);
  assert.equal(lone.code, 2);
  assert.match(lone.stderr, /--notify-format, --notify-level and --state go with --notify URL/);
});

test('fabric health --notify: a state file it cannot write is said, not a crash; one holding nonsense reads as ok', async () => {
  const blocked = join(dir, 'blocked');
  writeFileSync(blocked, 'a file where a folder should be');
  const calls: string[] = [];
  const post = async (_u: string, body: string): Promise<void> => { calls.push(body); };
  const settings = { url: 'http://127.0.0.1:9/hook', format: 'json' as const, notify: 'warning' as const, stateFile: join(blocked, 'level') };
  const said = await notifyChange({ level: 'critical', reasons: ['gateway down'] }, false, settings, post);
  assert.equal(calls.length, 1);
  assert.match(said!, /^level critical \(was ok\): 127\.0\.0\.1:9 called; but cannot record the level in .*blocked\/level \(.*\): the next run will call again$/);
  const odd = join(dir, 'odd-level');
  writeFileSync(odd, 'toString\n');
  assert.equal(await notifyChange({ level: 'ok', reasons: [] }, false, { ...settings, stateFile: odd }, post), undefined, 'nonsense reads as ok: nothing changed');
});

// State kept in the store names what a config can rename under it: keys name roles (their
// `roles` and `role_limits`), budgets sum spend by backend name. A rename left them silently
// broken (a key refused everything, a per-role limit gone, a budget back at $0); now start and
// reload say so, `fabric keys list|show` flag such keys, and a backend's `formerly` keeps its
// budgets' spend.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseFabricText } from '../src/config/load.ts';
import { Secrets } from '../src/config/env-file.ts';
import type { RunningGateway } from '../src/main.ts';
import { chat, post, startFabric, type Fabric, eventually } from './helpers.ts';
import { runFabric } from './support/proc.ts';
import { tempDir } from './support/temp-dir.ts';

const MASTER = 'fabric-master-key-for-drift-tests-0123456789';
const FAST = { ttftMs: 1, tokensPerSecond: 5000, maxConcurrency: 64, maxQueue: 256 };
const auth = { authorization: `Bearer ${MASTER}` };
const engines = [
  { name: 'a', protocol: 'vllm' as const, model: 'm-a', kind: 'chat' as const, timing: FAST },
  { name: 'b', protocol: 'vllm' as const, model: 'm-b', kind: 'chat' as const, timing: FAST },
];

const adminGet = (url: string, path: string): Promise<any> => fetch(url + path, { headers: auth }).then((r) => r.json());

/** Warnings logged from index `from` on whose message matches. */
function warned(f: { logs: string[]; gw: RunningGateway }, from: number, re: RegExp): string[] {
  f.gw.app.log.flush();
  return f.logs.slice(from).map((l) => JSON.parse(l)).filter((r) => r.level === 'warn' && re.test(r.msg)).map((r) => r.msg as string);
}

test('keys naming a renamed role: warned at reload and at start (name and id, never the secret), flagged by /admin/keys and fabric keys list|show; an alias of the old name mends them', async () => {
  const dataDir = tempDir('fabric-drift-keys-');
  const yaml = (url: (n: string) => string, cpp: string, fast: string, fastAliases = '[]'): string => `
gateway:
  master_key: env:FABRIC_MASTER_KEY
  accounting: { flush_interval: 50ms, sync_interval: 100ms }
backends:
  a: { engine: vllm, url: ${url('a')}/v1, model: m-a }
  b: { engine: vllm, url: ${url('b')}/v1, model: m-b }
roles:
  ${cpp}: { kind: chat, backends: [a] }
  ${fast}: { kind: chat, backends: [b], aliases: ${fastAliases} }
`;
  const f = await startFabric({ env: { FABRIC_MASTER_KEY: MASTER }, apiKey: MASTER, dataDir, engines, yaml: (u) => yaml(u, 'chat-cpp', 'chat-fast') });
  let g: Fabric | undefined;
  try {
    const url = (n: string): string => f.fleet.get(n).url;
    const reload = (text: string): void => f.gw.reload(parseFabricText(text, 'test.yaml').config, new Secrets({ FABRIC_MASTER_KEY: MASTER }));
    const scoped = (await post(f.url, '/admin/keys', { name: 'cpp-only', roles: ['chat-cpp'] }, auth)).json;
    const limited = (await post(f.url, '/admin/keys', { name: 'fast-limited', role_limits: { 'chat-fast': { rpm: 2 } } }, auth)).json;
    const fine = (await post(f.url, '/admin/keys', { name: 'all-roles' }, auth)).json;
    assert.ok(scoped.key && limited.key && fine.key);
    const send = (model: string, key: string): Promise<number> => post(f.url, '/v1/chat/completions', chat(model), { authorization: `Bearer ${key}` }).then((r) => r.status);

    // Both roles renamed.
    let from = f.logs.length;
    reload(yaml(url, 'chat-cpp2', 'chat-fast2'));
    const lines = warned(f, from, /^keys: /);
    assert.equal(lines.length, 2, lines.join('\n'));
    const cpp = lines.find((l) => l.includes('"cpp-only"'))!;
    assert.match(cpp, new RegExp(`^keys: key "cpp-only" \\(${scoped.id}\\): its roles "chat-cpp" name no role, alias or model of the config, so the key can no longer use it \\(it is refused every model: 403, and /v1/models lists nothing for it\\)\\. If a role was renamed, add the old name to its aliases \\("chat-cpp"\\)`));
    const fast = lines.find((l) => l.includes('"fast-limited"'))!;
    assert.match(fast, new RegExp(`^keys: key "fast-limited" \\(${limited.id}\\): its role_limits on "chat-fast" name no role, alias or model of the config, so that limit no longer applies`));
    for (const l of lines) for (const k of [scoped, limited, fine]) assert.ok(!l.includes(k.key), 'no secret in the warning');
    // What those warnings are about, as measured.
    assert.equal(await send('chat-cpp2', scoped.key), 403);
    const statuses: number[] = [];
    for (let i = 0; i < 4; i++) statuses.push(await send('chat-fast2', limited.key));
    assert.deepEqual(statuses, [200, 200, 200, 200], 'the limit no longer applies');

    // The admin API and the CLI (through it) flag them.
    const list = await adminGet(f.url, '/admin/keys');
    const byName = new Map<string, any>(list.data.map((k: any) => [k.name, k]));
    assert.deepEqual(byName.get('cpp-only').stale, { roles: ['chat-cpp'], role_limits: [] });
    assert.deepEqual(byName.get('fast-limited').stale, { roles: [], role_limits: ['chat-fast'] });
    assert.equal(byName.get('all-roles').stale, null);
    const env = { ...process.env, FABRIC_DATA_DIR: '', FABRIC_URL: f.url, FABRIC_API_KEY: MASTER };
    const cliList = await runFabric(['keys', 'list'], env);
    assert.equal(cliList.code, 0, cliList.stderr);
    assert.match(cliList.stdout, new RegExp(`warning: key cpp-only \\(${scoped.id}\\) names no role, alias or model of the config: roles "chat-cpp" \\(the key can no longer use it\\)`));
    assert.match(cliList.stdout, new RegExp(`warning: key fast-limited \\(${limited.id}\\) names no role, alias or model of the config: role_limits on "chat-fast" \\(that limit no longer applies\\)`));
    assert.doesNotMatch(cliList.stdout, /warning: key all-roles/);
    const cliShow = await runFabric(['keys', 'show', 'fast-limited'], env);
    assert.match(cliShow.stdout, /\nwarning   names no role, alias or model of the config: role_limits on "chat-fast" \(that limit no longer applies\)\n/);

    // With --config, from the config file itself.
    const file = join(dataDir, 'fabric.yaml');
    writeFileSync(file, yaml(url, 'chat-cpp2', 'chat-fast2').replace('master_key: env:FABRIC_MASTER_KEY', `master_key: env:NOT_SET_HERE\n  data_dir: ${dataDir}`));
    const byConfig = await runFabric(['keys', 'list', '--config', file], { ...process.env, FABRIC_DATA_DIR: '' });
    assert.equal(byConfig.code, 0, byConfig.stderr);
    assert.match(byConfig.stdout, new RegExp(`warning: key cpp-only \\(${scoped.id}\\) names no role`));
    assert.match(byConfig.stdout, new RegExp(`warning: key fast-limited \\(${limited.id}\\) names no role`));

    // A restart on the renamed config says it at start.
    g = await startFabric({ env: { FABRIC_MASTER_KEY: MASTER }, apiKey: MASTER, dataDir, engines, yaml: (u) => yaml(u, 'chat-cpp2', 'chat-fast2') });
    assert.equal(warned(g, 0, /^keys: key "(cpp-only|fast-limited)"/).length, 2);
    await g.close();
    g = undefined;

    // The old name kept as an alias: the limit applies again, and nothing is said.
    from = f.logs.length;
    reload(yaml(url, 'chat-cpp2', 'chat-fast2', '[chat-fast]'));
    assert.deepEqual(warned(f, from, /^keys: key "fast-limited"/), []);
    assert.equal(warned(f, from, /^keys: key "cpp-only"/).length, 1, 'still said of the other');
    const again: number[] = [];
    for (let i = 0; i < 3; i++) again.push(await send('chat-fast2', limited.key));
    assert.deepEqual(again, [200, 200, 429]);
  } finally {
    await g?.close();
    await f.close();
    rmSync(dataDir, { recursive: true, force: true });
  }
});

test('a priced backend renamed: its spend, which its budget no longer counts, is warned of at reload and at start (budget, old name, amount); formerly: [old-name] keeps it counted', async () => {
  const dataDir = tempDir('fabric-drift-budget-');
  const yaml = (url: (n: string) => string, name: string, extra = ''): string => `
gateway:
  master_key: env:FABRIC_MASTER_KEY
  accounting: { flush_interval: 20ms, sync_interval: 100ms }
backends:
  ${name}: { engine: vllm, url: ${url('b')}/v1, model: m-b${extra} }
roles:
  chat: { kind: chat, backends: [${name}] }
prices:
  ${name}: { input: 5000, output: 5000 }
budgets:
  gpu:
    amount: 1000
    period: month
    backends: [${name}]
`;
  const f = await startFabric({ env: { FABRIC_MASTER_KEY: MASTER }, apiKey: MASTER, dataDir, engines, yaml: (u) => yaml(u, 'vllm-b') });
  let g: Fabric | undefined;
  try {
    const url = (n: string): string => f.fleet.get(n).url;
    const reload = (text: string): void => f.gw.reload(parseFabricText(text, 'test.yaml').config, new Secrets({ FABRIC_MASTER_KEY: MASTER }));
    for (let i = 0; i < 3; i++) assert.equal((await post(f.url, '/v1/chat/completions', chat('chat'), auth)).status, 200);
    const spentOf = async (): Promise<number> => (await adminGet(f.url, '/admin/budgets')).data[0].spent;
    const before = await spentOf();
    // Written to the store (batches go within 50 ms): what a reload or a restart finds there.
    const stored = async (): Promise<number> => (await f.gw.app.accounting!.store.spendSince(0)).reduce((t, r) => t + r.cost, 0);
    assert.ok(Math.abs(await eventually(stored, (v) => Math.abs(v - before) < 1e-9) - before) < 1e-9);
    assert.ok(before > 0.01, `spent ${before}`);
    const amount = `$${before.toFixed(2)}`;

    let from = f.logs.length;
    reload(yaml(url, 'vllm-b2'));
    const line = (await eventually(() => warned(f, from, /^budgets: /), (l) => l.length > 0))[0];
    assert.equal(line, `budgets: ${amount} of the current period of budget gpu was spent on backend vllm-b, which is no longer in the config, so no budget counts it now. ` +
      'If vllm-b was renamed, the budgets that counted it (gpu may be among them) restarted from that much less and it can be spent again: add formerly: [vllm-b] to the backend it became. If it was removed, this goes when the period ends.');
    // The symptom it is about: the budget's spend is back at 0 once synced.
    // (Synced every 100 ms; a loaded machine may take some seconds.)
    const after = await eventually(spentOf, (v) => v < 1e-9, 15_000);
    assert.ok(after < 1e-9, `spent ${after} of ${before}`);

    // At start too.
    g = await startFabric({ env: { FABRIC_MASTER_KEY: MASTER }, apiKey: MASTER, dataDir, engines, yaml: (u) => yaml(u, 'vllm-b2') });
    assert.equal((await eventually(() => warned(g!, 0, /^budgets: .* on backend vllm-b,/), (l) => l.length > 0)).length, 1);
    await g.close();
    g = undefined;

    // formerly: the budget counts the old name's spend again, and nothing is said.
    from = f.logs.length;
    reload(yaml(url, 'vllm-b2', ', formerly: [vllm-b]'));
    const restored = await eventually(spentOf, (v) => Math.abs(v - before) < 1e-6, 15_000);
    assert.ok(Math.abs(restored - before) < 1e-6, `spent ${restored}, was ${before}`);
    await new Promise((r) => setTimeout(r, 200));
    assert.deepEqual(warned(f, from, /^budgets: /), []);
  } finally {
    await g?.close();
    await f.close();
    rmSync(dataDir, { recursive: true, force: true });
  }
});

test('formerly is checked: not a backend of the config, not claimed twice', () => {
  const issues = (text: string): string[] => parseFabricText(text, 't.yaml').issues.filter((i) => i.severity === 'error').map((i) => `${i.path}: ${i.message}`);
  const base = `
backends:
  a: { engine: vllm, url: http://127.0.0.1:9/v1, model: m, formerly: [X] }
  b: { engine: vllm, url: http://127.0.0.1:9/v1, model: m, formerly: [Y] }
roles:
  chat: { kind: chat, backends: [a, b] }
`;
  assert.deepEqual(issues(base), []);
  assert.deepEqual(issues(base.replace('[Y]', '[a]')), ['backends.b.formerly[0]: "a" is a backend of this config; formerly lists the names b had before a rename']);
  assert.deepEqual(issues(base.replace('[Y]', '[X]')), ['backends.b.formerly[0]: "X" is already a former name of backend a']);
});

// The fabric CLI as an operator runs it: real child processes, exit codes and output.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { once } from 'node:events';

const MAIN = new URL('../src/cli/main.ts', import.meta.url).pathname;
const EXAMPLES = new URL('../examples/', import.meta.url).pathname;
const cleanEnv = (): NodeJS.ProcessEnv => {
  const env = { ...process.env };
  delete env.OPENAI_API_KEY;
  delete env.FABRIC_CONFIG;
  return env;
};

function fabric(args: string[], env = cleanEnv()) {
  return spawnSync(process.execPath, [MAIN, ...args], { encoding: 'utf8', env, timeout: 20_000 });
}

test('fabric --help and every command\'s --help', () => {
  const r = fabric(['--help']);
  assert.equal(r.status, 0);
  assert.match(r.stdout, /serve/);
  for (const cmd of [['serve'], ['config'], ['sim']]) {
    const h = fabric([...cmd, '--help']);
    assert.equal(h.status, 0, `${cmd.join(' ')} --help`);
    assert.match(h.stdout, /Usage: fabric/);
  }
  assert.equal(fabric(['nonsense']).status, 2);
});

test('config check passes the examples', () => {
  for (const f of ['seeds.fabric.yaml', 'lab.fabric.yaml']) {
    const r = fabric(['config', 'check', join(EXAMPLES, f)]);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /valid/);
  }
});

test('config check and serve report every error with file:line:col and key path, exit 1', () => {
  const dir = mkdtempSync(join(tmpdir(), 'fabric-cli-'));
  const p = join(dir, 'bad.yaml');
  writeFileSync(p, 'backends:\n  a: { engine: vllm, url: http://x:1/v1, model: m, api_key: sk-secret-inline }\nroles:\n  r: { kind: chat, backends: [a, zz] }\n');
  const r = fabric(['config', 'check', p]);
  assert.equal(r.status, 1);
  assert.match(r.stderr, new RegExp(`${p}:2:\\d+: error: backends\\.a\\.api_key: must reference a secret`));
  assert.match(r.stderr, new RegExp(`${p}:4:\\d+: error: roles\\.r\\.backends\\[1\\]`));
  assert.doesNotMatch(r.stderr + r.stdout, /sk-secret-inline/);
  const s = fabric(['serve', '--config', p]);
  assert.equal(s.status, 1);
  assert.match(s.stderr, /roles\.r\.backends\[1\]/);
  assert.match(s.stderr, /refusing to start/);
  const j = fabric(['config', 'check', p, '--json']);
  const out = JSON.parse(j.stdout);
  assert.equal(out.valid, false);
  assert.ok(out.issues.every((i: { line: number }) => i.line > 0));
});

test('serve with no config and nothing to discover runs the simulated demo fleet, labelled everywhere', async () => {
  const child = spawn(process.execPath, [MAIN, 'serve', '--port', '0'], { env: cleanEnv(), stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.setEncoding('utf8');
  child.stdout.on('data', (c: string) => { out += c; });
  try {
    const url = await new Promise<string>((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`no listen line in: ${out}`)), 15_000);
      child.stdout.on('data', () => {
        const m = /listening on (http:\/\/[\d.:]+)/.exec(out);
        if (m !== null) { clearTimeout(t); resolve(m[1]!); }
      });
    });
    assert.match(out, /SIMULATED/);
    const models = await (await fetch(`${url}/v1/models`)).json() as any;
    const ids = models.data.map((m: { id: string }) => m.id);
    assert.ok(ids.includes('chat-fast') && ids.includes('local/embed'));
    assert.ok(models.data.every((m: { fabric: { simulated: boolean } }) => m.fabric.simulated === true));
    const health = await (await fetch(`${url}/health`)).json() as any;
    assert.equal(health.simulated, true);
    const res = await fetch(`${url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model: 'chat-fast', messages: [{ role: 'user', content: 'hi' }], max_tokens: 3 }) });
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('x-fabric-simulated'), 'true');
    const emb = await fetch(`${url}/v1/embeddings`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model: 'embeddings-general', input: 'hi' }) });
    assert.equal(((await emb.json()) as any).data[0].embedding.length, 768);
  } finally {
    child.kill('SIGTERM');
    const [code] = await once(child, 'exit');
    assert.equal(code, 0, 'SIGTERM drains and exits 0');
  }
});

// fabric plan and fabric render as an operator runs them: real child processes, exit codes, output.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tempDir } from './support/temp-dir.ts';

const MAIN = new URL('../src/cli/main.ts', import.meta.url).pathname;
const EXAMPLES = new URL('../examples/', import.meta.url).pathname;

function fabric(args: string[], env: NodeJS.ProcessEnv = {}) {
  const clean = { ...process.env, ...env };
  delete clean.OPENAI_API_KEY;
  if (env.FABRIC_CONFIG === undefined) delete clean.FABRIC_CONFIG;
  return spawnSync(process.execPath, [MAIN, ...args], { encoding: 'utf8', env: clean, timeout: 20_000 });
}

test('plan and render have --help and are listed by fabric --help', () => {
  assert.match(fabric(['--help']).stdout, /plan .*\n\s+render /);
  for (const cmd of ['plan', 'render']) {
    const h = fabric([cmd, '--help']);
    assert.equal(h.status, 0);
    assert.match(h.stdout, new RegExp(`^Usage: fabric ${cmd} `));
  }
  assert.equal(fabric(['plan']).status, 2, 'no file is bad usage');
  assert.equal(fabric(['plan', '--bogus']).status, 2);
  assert.equal(fabric(['render', join(EXAMPLES, 'seeds.fabric.yaml'), '--check']).status, 2, '--check needs --out');
});

test('fabric plan prints the table and exits 0 for the seeds, 1 for the motoko plan that does not fit', () => {
  const seeds = fabric(['plan', join(EXAMPLES, 'seeds.fabric.yaml')]);
  assert.equal(seeds.status, 0, seeds.stderr);
  assert.match(seeds.stdout, /motoko · GPU 0 · RTX 2080 · 8\.00 GiB · compute 7\.5 · always-on/);
  assert.match(seeds.stdout, /wintermute-llama +vllm +casperhansen\/llama-3-8b-instruct-awq +awq +0\.90 = 10\.80 GiB +5\.33 GiB/);
  assert.match(seeds.stdout, /Findings: 0 errors, 3 warnings/);
  assert.match(seeds.stdout, /warning nodes.armitage.gpus\[0\]: armitage is a workstation/);
  const motoko = fabric(['plan', '--config', join(EXAMPLES, 'motoko-2080.fabric.yaml')]);
  assert.equal(motoko.status, 1);
  assert.match(motoko.stdout, /✗ error {3}backends\.motoko-reasoning: weights alone take 3\.87 GiB but its share is 3\.60 GiB/);
  // FABRIC_CONFIG stands in for the file.
  assert.equal(fabric(['plan'], { FABRIC_CONFIG: join(EXAMPLES, 'lab.fabric.yaml') }).status, 0);
});

test('fabric plan --json is the plan for tools: bytes as integers, findings with codes', () => {
  const r = fabric(['plan', join(EXAMPLES, 'lab.fabric.yaml'), '--json']);
  assert.equal(r.status, 0, r.stderr);
  const plan = JSON.parse(r.stdout);
  const vllm = plan.gpus[0].engines.find((e: { backend: string }) => e.backend === 'vllm-qwen-coder');
  assert.equal(vllm.kvBytesPerToken, 57344);
  assert.ok(Number.isInteger(vllm.weightsBytes) && Number.isInteger(vllm.shareBytes));
  assert.ok(vllm.maxConcurrency > 30 && vllm.maxConcurrency < 36);
  assert.ok(plan.findings.some((f: { code: string }) => f.code === 'one-server-two-models'));
  assert.equal(plan.assumptions.blockSize, 16);
});

test('an invalid config is reported with file:line:col by plan and render; a missing one too', () => {
  const dir = tempDir('fabric-deploy-cli-');
  const p = join(dir, 'bad.yaml');
  writeFileSync(p, 'nodes:\n  n: { power: always-on, gpus: [{ model: RTX 2080, memory: 8GiB }] }\nbackends:\n  a:\n    engine: vllm\n    node: n\n    url: http://n:8000/v1\n    model: m\n    serve: { gpu_memory_utilisation: 0.5 }\nroles:\n  r: { kind: chat, backends: [a] }\n');
  for (const cmd of ['plan', 'render']) {
    const r = fabric([cmd, p]);
    assert.equal(r.status, 1);
    assert.match(r.stderr, new RegExp(`${p}:9:14: error: backends\\.a\\.serve\\.gpu_memory_utilisation: unknown key \\(did you mean "gpu_memory_utilization"\\?\\)`));
  }
  assert.match(fabric(['plan', join(dir, 'nope.yaml')]).stderr, /cannot read: ENOENT/);
});

test('fabric render without --out prints every file; the plan\'s errors do not stop it', () => {
  const r = fabric(['render', join(EXAMPLES, 'motoko-2080.fabric.yaml')]);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stderr, /the plan has 1 error; rendering anyway/);
  assert.match(r.stdout, /^==> nodes\/motoko\/compose\.yaml <==$/m);
  assert.match(r.stdout, /^==> litellm\/config\.yaml <==$/m);
  assert.match(r.stdout, /^==> MANIFEST\.sha256 <==$/m);
  assert.match(r.stdout, /"--gpu-memory-utilization"\n\s+- "0\.45"/);
});

test('fabric render --out where it cannot write: one line naming the path and why, exit 1, no stack trace and no hang', () => {
  const dir = tempDir('fabric-render-out-');
  const seeds = join(EXAMPLES, 'seeds.fabric.yaml');
  const file = join(dir, 'a-file');
  writeFileSync(file, 'not a folder\n');
  // A folder whose gateway/ is a file: the target passes the checks, the write itself fails.
  const blocked = join(dir, 'blocked');
  mkdirSync(blocked);
  writeFileSync(join(blocked, 'gateway'), 'not a folder\n');
  const cases: [string[], RegExp][] = [
    [['--out', file], /^fabric render: cannot write \S+a-file: it is a file, not a folder$/],
    [['--out', join(file, 'sub')], /^fabric render: cannot write \S+a-file\/sub: \S+a-file is a file, not a folder$/],
    [['--out', file, '--check'], /^fabric render: cannot check \S+a-file: it is a file, not a folder$/],
    [['--out', join(blocked)], /^fabric render: cannot write \S+blocked\/gateway\/\S+: not a directory \(ENOTDIR\)$/],
  ];
  if (process.platform === 'linux') {
    // Node's recursive mkdir spins for ever under /proc; /sys answers EPERM or EACCES.
    const link = join(dir, 'to-proc');
    symlinkSync('/proc/self', link);
    cases.push(
      [['--out', '/proc/fabric-render-test'], /^fabric render: cannot write \/proc\/fabric-render-test: it is under \/proc, a kernel file system/],
      [['--out', '/sys/fabric-render-test/x'], /^fabric render: cannot write \/sys\/fabric-render-test\/x: it is under \/sys, a kernel file system/],
      [['--out', join(link, 'x')], /^fabric render: cannot write \S+to-proc\/x: it is under \/proc/],
    );
  }
  for (const [args, why] of cases) {
    const r = fabric(['render', seeds, ...args]);
    assert.equal(r.signal, null, `${args.join(' ')}: did not end (${r.signal})`);
    assert.equal(r.status, 1, `${args.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr.trimEnd(), why);
    assert.equal(r.stderr.trimEnd().split('\n').length, 1, r.stderr);
  }
});

test('a secret value in serve.extra_args or serve.env stops config check and render with file:line:col; nothing is written or echoed', () => {
  const dir = tempDir('fabric-render-secret-');
  const key = ['sk', 'proj', 'Ab3dEfGhIjKlMnOpQrStUvWxYz0123456789'].join('-');
  const token = `hf_${'AbCdEfGhIjKlMnOpQr'}${'StUvWxYzAbCdEfGh'}`;
  const cfg = join(dir, 'fabric.yaml');
  writeFileSync(cfg, `nodes:
  n: { power: always-on, gpus: [{ model: RTX 2080, memory: 8GiB }] }
backends:
  a:
    engine: vllm
    node: n
    url: http://n:8000/v1
    model: m
    serve:
      extra_args: [--api-key, ${key}]
      env: { MY_SETTING: ${token} }
roles:
  r: { kind: chat, backends: [a] }
`);
  const check = fabric(['config', 'check', cfg]);
  assert.equal(check.status, 1);
  assert.match(check.stderr, new RegExp(`^${cfg}:10:31: error: backends\\.a\\.serve\\.extra_args\\[1\\]: is the value of --api-key, a secret`, 'm'));
  assert.match(check.stderr, new RegExp(`^${cfg}:11:26: error: backends\\.a\\.serve\\.env\\.MY_SETTING: looks like a Hugging Face token`, 'm'));
  const out = join(dir, 'deploy');
  const render = fabric(['render', cfg, '--out', out]);
  assert.equal(render.status, 1);
  assert.match(render.stderr, /is invalid — 2 errors/);
  assert.equal(existsSync(out), false, 'nothing written');
  for (const r of [check, render]) assert.ok(!(r.stdout + r.stderr).includes(key) && !(r.stdout + r.stderr).includes(token));
});

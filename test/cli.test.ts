// The fabric CLI as an operator runs it: real child processes, exit codes and output.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawn, spawnSync } from 'node:child_process';
import { promisify } from 'node:util';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { spawnServe } from './support/proc.ts';
import { tempDir } from './support/temp-dir.ts';

const execFileP = promisify(execFile);
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

test('fabric --help and every command\'s --help', async () => {
  const r = fabric(['--help']);
  assert.equal(r.status, 0);
  assert.match(r.stdout, /serve/);
  // Every command fabric --help lists (the README's "Every command has --help"), in parallel.
  const commands = [...r.stdout.matchAll(/^ {2}([a-z]+)(?: ([a-z]+))? {2,}/gm)].map((m) => m.slice(1).filter((w) => w !== undefined));
  assert.ok(commands.length >= 10, commands.join(','));
  await Promise.all(commands.map(async (cmd) => {
    const { stdout } = await execFileP(process.execPath, [MAIN, ...cmd, '--help'], { env: cleanEnv(), timeout: 20_000 });
    assert.match(stdout, /Usage: fabric/, `${cmd.join(' ')} --help`);
  }));
  assert.equal(fabric(['nonsense']).status, 2);
});

test('an option node:util cannot parse is one plain line naming it, exit 2', () => {
  const grace = fabric(['serve', '--grace', '-1']);
  assert.equal(grace.status, 2);
  assert.equal(grace.stderr, "fabric serve: --grace needs a value; a value starting with '-' is written --grace=-1\n");
  const bogus = fabric(['config', 'check', join(EXAMPLES, 'lab.fabric.yaml'), '--bogus']);
  assert.equal(bogus.status, 2);
  assert.equal(bogus.stderr, 'fabric config check: unknown option --bogus (see fabric config check --help)\n');
  assert.equal(bogus.stdout, '');
});

test('every command\'s usage line names each option its help documents; the README\'s CLI table names every option of serve, config import and health', async () => {
  const helps = new Map<string, string>();
  await Promise.all(['serve', 'config check', 'config import', 'sim', 'health', 'smoke', 'wake', 'plan', 'render', 'keys', 'usage', 'backup', 'cache'].map(async (cmd) => {
    helps.set(cmd, (await execFileP(process.execPath, [MAIN, ...cmd.split(' '), '--help'], { env: cleanEnv(), timeout: 20_000 })).stdout);
  }));
  /** The options the help's option list documents (the indented lines, and "--a N, --b N" pairs). */
  const documented = (help: string): string[] => [...new Set([...help.matchAll(/^ {2,}(?:-\w, )?(--[a-z][a-z-]*)(?:[^,\n]*, (--[a-z][a-z-]*))?/gm)].flatMap((m) => [m[1]!, m[2]].filter((o): o is string => o !== undefined)))];
  const has = (text: string, option: string): boolean => new RegExp(`${option}(?![a-z-])`).test(text);
  assert.ok([...helps.values()].flatMap(documented).length > 50, 'the option lists are read');
  for (const [cmd, help] of helps) {
    const synopsis = help.slice(0, help.indexOf('\n\n'));
    const options = documented(help);
    assert.deepEqual(options.filter((o) => !has(synopsis, o)), [], `fabric ${cmd} --help: options its usage line leaves out`);
  }
  const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8');
  for (const cmd of ['serve', 'config import', 'health']) {
    const row = readme.split('\n').find((l) => l.startsWith(`| \`fabric ${cmd} `));
    assert.ok(row !== undefined, `a row for fabric ${cmd}`);
    assert.deepEqual(documented(helps.get(cmd)!).filter((o) => !has(row, o)), [], `README's row for fabric ${cmd}: options it leaves out`);
  }
  // What the help says of rendering and of the data directory is what the code does.
  assert.match(helps.get('render')!, /compose\.yaml \(with PostgreSQL\s+and Redis services when the config uses them/);
  for (const cmd of ['keys', 'usage']) assert.match(helps.get(cmd)!, /\$FABRIC_DATA_DIR, else \$XDG_DATA_HOME\/ai-fabric, else\s+~\/\.local\/share\/ai-fabric/, cmd);
});

test('output piped into a reader that stops early (| head -1) ends the command quietly, exit 0', async () => {
  const child = spawn(process.execPath, [MAIN, 'render', join(EXAMPLES, 'lab.fabric.yaml')], { env: cleanEnv(), stdio: ['ignore', 'pipe', 'pipe'] });
  let err = '';
  child.stderr.on('data', (d: Buffer) => { err += d.toString(); });
  // The reading end closed before the command writes: its writes fail with EPIPE.
  child.stdout.destroy();
  const code = await new Promise<number | null>((resolve) => child.on('exit', (c) => resolve(c)));
  assert.equal(code, 0, err);
  assert.doesNotMatch(err, /EPIPE|Error/);
});

test('serve: a port in use is "cannot listen"; a closed log output drains and exits 1 (for a supervisor to restart it)', async () => {
  const { createServer } = await import('node:net');
  const taken = createServer();
  await new Promise<void>((r) => taken.listen(0, '127.0.0.1', r));
  const port = (taken.address() as { port: number }).port;
  try {
    const data = tempDir('fabric-cli-');
    const r = fabric(['serve', '--port', String(port)], { ...cleanEnv(), FABRIC_DATA_DIR: data });
    assert.equal(r.status, 1);
    assert.equal(r.stderr, `fabric serve: cannot listen on 127.0.0.1:${port}: EADDRINUSE (another process holds port ${port}, perhaps another fabric serve: stop it, or pick another port with --port N or gateway.port)\n`);
    assert.equal(existsSync(join(data, 'fabric.db')), false, 'said before the store was opened');
    assert.doesNotMatch(r.stdout, /backend .* is up/);
  } finally {
    taken.close();
  }
  const child = spawn(process.execPath, [MAIN, 'serve', '--port', '0'], { env: { ...cleanEnv(), FABRIC_DATA_DIR: tempDir('fabric-cli-') }, stdio: ['ignore', 'pipe', 'pipe'] });
  let err = '';
  child.stderr.on('data', (d: Buffer) => { err += d.toString(); });
  child.stdout.destroy();
  const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
  const code = await new Promise<number | null>((resolve) => child.on('exit', (c) => resolve(c)));
  clearTimeout(timer);
  assert.equal(code, 1, err);
  assert.match(err, /fabric serve: its log output \(stdout\) was closed: draining, then exiting 1/);
  assert.doesNotMatch(err, /Error: write EPIPE/);
});

test('serve with a config that names no master key, while FABRIC_MASTER_KEY is set, says the key is not required rather than serve open in silence', async () => {
  const dir = tempDir('fabric-cli-');
  const p = join(dir, 'open.yaml');
  writeFileSync(p, 'gateway:\n  port: 0\nbackends:\n  a: { engine: vllm, url: http://127.0.0.1:1/v1, model: m }\nroles:\n  r: { kind: chat, backends: [a] }\n');
  const child = spawn(process.execPath, [MAIN, 'serve', '--config', p], { env: { ...cleanEnv(), FABRIC_DATA_DIR: dir, FABRIC_MASTER_KEY: 'a-master-key-of-some-length' }, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  const listening = new Promise<void>((resolve) => child.stdout.on('data', (d: Buffer) => { out += d.toString(); if (out.includes('gateway listening')) resolve(); }));
  const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
  await listening;
  child.kill('SIGTERM');
  await new Promise((r) => child.on('exit', r));
  clearTimeout(timer);
  assert.match(out, new RegExp(`FABRIC_MASTER_KEY is set, but ${p.replace(/[/.]/g, '\\$&')} names no gateway\\.master_key, so no key is required on /v1/\\*: add master_key: env:FABRIC_MASTER_KEY under gateway: to require it`));
  assert.doesNotMatch(out, /a-master-key-of-some-length/);
});

test('config check passes the examples, and finds the README\'s three errors in examples/broken.yaml', () => {
  for (const f of ['seeds.fabric.yaml', 'lab.fabric.yaml', 'motoko-2080.fabric.yaml']) {
    const r = fabric(['config', 'check', join(EXAMPLES, f)]);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /valid/);
  }
  const broken = fabric(['config', 'check', join(EXAMPLES, 'broken.yaml')]);
  assert.equal(broken.status, 1);
  const errors = broken.stderr.split('\n').filter((l) => l.includes(': error: ')).map((l) => l.slice(l.indexOf('broken.yaml:')));
  assert.deepEqual(errors.map((l) => l.split(': ').slice(0, 3).join(': ')), [
    'broken.yaml:14:13: error: backends.armitage-qwen.engine',
    'broken.yaml:17:14: error: backends.armitage-qwen.api_key',
    'broken.yaml:23:17: error: roles.chat-fast.fallbacks[0]',
  ]);
  assert.match(errors[0]!, /did you mean "vllm"\?/);
  assert.doesNotMatch(broken.stderr + broken.stdout, /sk-pasted-here/);
});

test('serve that cannot open its store says so, with no password from the URL (userinfo or query)', () => {
  const dir = tempDir('fabric-cli-');
  const p = join(dir, 'pg.yaml');
  writeFileSync(p, 'gateway:\n  port: 0\n  store: { url: env:DATABASE_URL }\nbackends:\n  a: { engine: vllm, url: http://127.0.0.1:1/v1, model: m }\nroles:\n  r: { kind: chat, backends: [a] }\n');
  for (const url of ['postgresql://fabric@127.0.0.1:1/fabric?password=Hunter2-DBPASS&sslmode=disable', 'postgresql://fabric:Hunter2-DBPASS@127.0.0.1:1/fabric']) {
    const r = fabric(['serve', '--config', p], { ...cleanEnv(), DATABASE_URL: url, FABRIC_DATA_DIR: dir });
    assert.equal(r.status, 1, r.stderr);
    assert.match(r.stderr, /fabric serve: cannot start: .*127\.0\.0\.1:1/);
    assert.doesNotMatch(r.stderr + r.stdout, /Hunter2-DBPASS/);
    assert.doesNotMatch(r.stderr, /cannot listen/);
  }
});

test('serve with a data directory it cannot use (under /proc, a file) says so at once, exit 1, never a hang', { skip: process.platform === 'linux' ? false : '/proc is Linux\'s' }, () => {
  const dir = tempDir('fabric-cli-');
  const file = join(dir, 'a-file');
  writeFileSync(file, 'x');
  const p = join(dir, 'f.yaml');
  writeFileSync(p, 'gateway:\n  port: 0\nbackends:\n  a: { engine: vllm, url: http://127.0.0.1:1/v1, model: m }\nroles:\n  r: { kind: chat, backends: [a] }\n');
  for (const [data, why] of [['/proc/fabric-test-data', /under \/proc, a kernel file system/], [file, /it is a file, not a folder/]] as const) {
    const r = fabric(['serve', '--config', p], { ...cleanEnv(), FABRIC_DATA_DIR: data });
    assert.equal(r.signal, null, 'it returned');
    assert.equal(r.status, 1, r.stderr);
    assert.match(r.stderr, new RegExp(`fabric serve: cannot start: the data directory ${data.replace(/[/.]/g, '\\$&')} cannot be used: `));
    assert.match(r.stderr, why);
  }
});

test('config check and serve report every error with file:line:col and key path, exit 1', () => {
  const dir = tempDir('fabric-cli-');
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
  const g = await spawnServe(['--port', '0'], cleanEnv());
  const url = g.url;
  try {
    assert.match(g.output.join('\n'), /SIMULATED/);
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
    // Speech to text too, from the simulated Whisper.
    const form = new FormData();
    form.set('model', 'whisper-1');
    form.set('file', new Blob([Buffer.alloc(16_044)], { type: 'audio/wav' }), 'hello.wav');
    const audio = await fetch(`${url}/v1/audio/transcriptions`, { method: 'POST', body: form });
    assert.equal(audio.status, 200);
    assert.equal(audio.headers.get('x-fabric-role'), 'audio-transcribe');
    assert.equal(typeof ((await audio.json()) as { text: unknown }).text, 'string');
    // And reranking, from the simulated reranker beside the embeddings.
    const rr = await fetch(`${url}/v1/rerank`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model: 'local/rerank', query: 'pandas', documents: ['the sky', 'pandas eat bamboo'] }) });
    assert.equal(rr.status, 200);
    assert.equal(rr.headers.get('x-fabric-role'), 'rerank-general');
    assert.equal(((await rr.json()) as { results: { index: number }[] }).results[0]!.index, 1);
  } finally {
    assert.equal(await g.stop('SIGTERM'), 0, 'SIGTERM drains and exits 0');
  }
});

test('serve with no config: FABRIC_MASTER_KEY, when set, is required on /v1/*', async () => {
  const key = 'zero-config-master-key-0123456789abcdef';
  const g = await spawnServe(['--port', '0'], { ...cleanEnv(), FABRIC_MASTER_KEY: key });
  const url = g.url;
  try {
    assert.match(g.output.join('\n'), /FABRIC_MASTER_KEY is set: it is required/);
    assert.equal((await fetch(`${url}/v1/models`)).status, 401);
    assert.equal((await fetch(`${url}/v1/models`, { headers: { authorization: 'Bearer wrong' } })).status, 401);
    assert.equal((await fetch(`${url}/v1/models`, { headers: { authorization: `Bearer ${key}` } })).status, 200);
  } finally {
    await g.stop('SIGTERM');
  }
});

test('bin/fabric, npm start and the benchmark run the gateway with the same V8 flags', async () => {
  const { readFileSync } = await import('node:fs');
  const { RUNTIME_NODE_FLAGS } = await import('../bench/shared.ts');
  const bin = readFileSync(new URL('../bin/fabric', import.meta.url), 'utf8');
  // bin/fabric picks its node binary ("$node": the project's Node 24), then execs it on dist/ or src/.
  const execs = bin.split('\n').filter((l) => /^\s*exec "?\$?node"? /.test(l));
  assert.equal(execs.length, 2);
  for (const line of execs) assert.ok(line.includes(` ${RUNTIME_NODE_FLAGS.join(' ')} `), line);
  const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8'));
  assert.match(pkg.scripts.start, /bin\/fabric serve$/, 'npm start goes through bin/fabric');
});

test('the runtime build (dist/) compiles and runs without the TypeScript sources', () => {
  const root = new URL('..', import.meta.url).pathname;
  // Inside the project, so the build resolves the project's node_modules as dist/ does.
  mkdirSync(join(root, 'node_modules/.cache'), { recursive: true });
  const out = mkdtempSync(join(root, 'node_modules/.cache/fabric-dist-'));
  const tsc = spawnSync(process.execPath, [join(root, 'node_modules/typescript/bin/tsc'), '-p', join(root, 'tsconfig.build.json'), '--noCheck', '--outDir', out], { encoding: 'utf8', timeout: 60_000 });
  assert.equal(tsc.status, 0, tsc.stdout + tsc.stderr);
  const r = spawnSync(process.execPath, [join(out, 'cli/main.js'), 'config', 'check', join(EXAMPLES, 'seeds.fabric.yaml')], { encoding: 'utf8', env: { ...cleanEnv(), FABRIC_MASTER_KEY: 'x'.repeat(20), OPENAI_API_KEY: 'sk-test' }, timeout: 20_000 });
  assert.equal(r.status, 0, r.stdout + r.stderr);
  rmSync(out, { recursive: true, force: true });
});

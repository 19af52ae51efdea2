// fabric config check over several files, the names it prints, and fabric --version: as an
// operator runs them (real child processes, exit codes, stdout and stderr).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tempDir } from './support/temp-dir.ts';

const MAIN = new URL('../src/cli/main.ts', import.meta.url).pathname;
const dir = tempDir('fabric-cli-check-');

function fabric(args: string[]) {
  const env = { ...process.env };
  delete env.FABRIC_CONFIG;
  delete env.UNSET_KEY;
  return spawnSync(process.execPath, [MAIN, ...args], { encoding: 'utf8', env, cwd: dir, timeout: 20_000 });
}

const GOOD = 'backends:\n  a: { engine: vllm, url: http://127.0.0.1:8000/v1, model: m, api_key: env:UNSET_KEY }\nroles:\n  r: { kind: chat, backends: [a] }\n';
writeFileSync(join(dir, 'good.yaml'), GOOD);
writeFileSync(join(dir, 'bad.yaml'), GOOD.replace('engine: vllm', 'engine: vlm'));
writeFileSync(join(dir, 'also-good.yaml'), GOOD.replace(', api_key: env:UNSET_KEY', ''));

test('config check checks every file given, reports each, and exits 1 if any is invalid', () => {
  const r = fabric(['config', 'check', 'good.yaml', 'bad.yaml', 'also-good.yaml']);
  assert.equal(r.status, 1, r.stdout + r.stderr);
  assert.match(r.stdout, /^good\.yaml: valid — 0 nodes, 1 backend, 1 role, 0 patterns, 1 warning$/m);
  assert.match(r.stdout, /^also-good\.yaml: valid — 0 nodes, 1 backend, 1 role, 0 patterns$/m);
  assert.match(r.stderr, /^bad\.yaml:2:16: error: backends\.a\.engine: must be one of .* \(did you mean "vllm"\?\)$/m);
  assert.match(r.stderr, /^bad\.yaml: invalid — 1 error$/m);
  assert.match(r.stderr, /^fabric config check: 1 of 3 files invalid$/m);
  assert.equal(fabric(['config', 'check', 'good.yaml', 'also-good.yaml']).status, 0);
  // A file that is not there is one more invalid file, not the end of the run.
  const missing = fabric(['config', 'check', 'nope.yaml', 'good.yaml']);
  assert.equal(missing.status, 1);
  assert.match(missing.stderr, /^nope\.yaml: error: \(file\): cannot read: ENOENT$/m);
  assert.match(missing.stdout, /^good\.yaml: valid/m);
});

test('config check names the file as given on every line, issues and summary alike', () => {
  const r = fabric(['config', 'check', 'good.yaml']);
  assert.equal(r.status, 0, r.stderr);
  // The unset variable's warning has its place too: the env:UNSET_KEY value.
  assert.equal(r.stderr, 'good.yaml:2:72: warning: backends.a.api_key: environment variable UNSET_KEY is not set; backend a will be skipped until it is\n');
  assert.ok(!(r.stdout + r.stderr).includes(dir), 'no absolute path');
  const bad = fabric(['config', 'check', `./bad.yaml`]);
  assert.match(bad.stderr, /^\.\/bad\.yaml:2:16: error:/m);
  assert.match(bad.stderr, /^\.\/bad\.yaml: invalid/m);
});

test('config check --json: one file keeps its shape; several add files[], with valid and issues over all', () => {
  const one = JSON.parse(fabric(['config', 'check', 'good.yaml', '--json']).stdout);
  assert.equal(one.valid, true);
  assert.equal(one.format, 'fabric');
  assert.equal(one.issues.length, 1);
  assert.deepEqual({ ...one.issues[0], message: undefined }, { severity: 'warning', file: 'good.yaml', line: 2, col: 72, path: 'backends.a.api_key', message: undefined });
  assert.deepEqual(one.files, [{ file: 'good.yaml', valid: true, format: 'fabric', issues: one.issues }]);
  const badOne = JSON.parse(fabric(['config', 'check', 'bad.yaml', '--json']).stdout);
  assert.equal(badOne.valid, false);
  assert.equal(badOne.issues[0].line, 2);

  const r = fabric(['config', 'check', 'good.yaml', 'bad.yaml', '--json']);
  assert.equal(r.status, 1);
  const all = JSON.parse(r.stdout);
  assert.equal(all.valid, false);
  assert.equal(all.format, undefined);
  assert.deepEqual(all.files.map((f: { file: string; valid: boolean }) => [f.file, f.valid]), [['good.yaml', true], ['bad.yaml', false]]);
  assert.deepEqual(all.issues.map((i: { file: string; severity: string }) => `${i.file} ${i.severity}`), ['good.yaml warning', 'bad.yaml error', 'bad.yaml warning']);
});

test('config check prints issues in file order, found while parsing or after (an unset secret); serve refuses with the same order', () => {
  writeFileSync(join(dir, 'order.yaml'), [
    'gateway:',
    '  master_key: env:UNSET_KEY',
    'backends:',
    '  a: { engine: vllm, url: "ftp://x", model: m }',
    `  b: { engine: vllm, url: "ftp://${'h'.repeat(200)}", model: m }`,
    'roles:',
    '  r: { kind: chat, backends: [a, b], strategy: nope }',
    '',
  ].join('\n'));
  const places = (stderr: string): string[] => [...stderr.matchAll(/^order\.yaml:(\d+:\d+): /gm)].map((m) => m[1]!);
  const r = fabric(['config', 'check', 'order.yaml']);
  assert.equal(r.status, 1);
  assert.deepEqual(places(r.stderr), ['2:15', '4:27', '5:27', '7:48']);
  // The value, quoted whole; a long one cut short, saying how long it was.
  assert.match(r.stderr, /^order\.yaml:4:27: error: backends\.a\.url: must be an http:\/\/ or https:\/\/ URL, got "ftp:\/\/x"$/m);
  assert.match(r.stderr, /^order\.yaml:5:27: error: backends\.b\.url: must be an http:\/\/ or https:\/\/ URL, got "ftp:\/\/h{74}"… \(206 characters\)$/m);
  const serve = fabric(['serve', '--config', 'order.yaml', '--port', '0']);
  assert.equal(serve.status, 1);
  assert.deepEqual(places(serve.stderr), ['2:15', '4:27', '5:27', '7:48']);
});

test('config check refuses a binary file (NUL bytes) as not text, quoting none of it', () => {
  writeFileSync(join(dir, 'binary.yaml'), Buffer.from([0x67, 0x61, 0x74, 0x65, 0x3a, 0x20, 0x00, 0x01, 0x02, 0xff, 0xfe, 0x1b, 0x5b, 0x32, 0x4a, 0x0a]));
  const r = fabric(['config', 'check', 'binary.yaml', 'good.yaml']);
  assert.equal(r.status, 1);
  assert.match(r.stderr, /^binary\.yaml: error: \(file\): not a text file \(YAML expected\)$/m);
  assert.doesNotMatch(r.stderr, /\x1b|\\u0000/, 'none of its bytes reach the terminal');
  assert.match(r.stdout, /^good\.yaml: valid/m);
});

test('fabric --version and -V print the package version', () => {
  const { version } = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8'));
  for (const flag of ['--version', '-V']) {
    const r = fabric([flag]);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout, `fabric ${version}\n`);
  }
  assert.match(fabric(['--help']).stdout, /fabric --version/);
});

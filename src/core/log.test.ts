import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createLogger } from './log.ts';

test('log lines: JSON by default, plain on a terminal, secrets scrubbed, level filtered', () => {
  const out: string[] = [];
  const json = createLogger({ write: (s) => out.push(s), secrets: ['sk-very-secret-value'], level: 'info' });
  json.info('request', { id: 'req_1', model: 'chat-fast', key: 'sk-very-secret-value', skipped: undefined });
  json.debug('not shown');
  json.flush();
  const lines = out.join('').trimEnd().split('\n');
  assert.equal(lines.length, 1);
  const rec = JSON.parse(lines[0]!);
  assert.equal(rec.level, 'info');
  assert.equal(rec.msg, 'request');
  assert.equal(rec.key, '[redacted]');
  assert.ok(!('skipped' in rec));
  assert.match(rec.time, /^\d{4}-\d\d-\d\dT/);

  out.length = 0;
  const pretty = createLogger({ write: (s) => out.push(s), pretty: true });
  pretty.warn('backend down', { backend: 'armitage-qwen', failures: 3 });
  pretty.flush();
  assert.match(out.join(''), /^\d\d:\d\d:\d\d\.\d{3} WARN  backend down {2}backend=armitage-qwen failures=3\n$/);
});

test('log writes stay within maxBatchBytes, so lines from several workers never interleave on a pipe', () => {
  const writes: string[] = [];
  const log = createLogger({ write: (s) => writes.push(s), maxBatchBytes: 4096 });
  for (let i = 0; i < 200; i++) log.info('request', { id: `req_${i}`, pad: 'x'.repeat(100) });
  log.flush();
  assert.ok(writes.length > 1);
  for (const w of writes) {
    assert.ok(Buffer.byteLength(w) <= 4096, `a write of ${Buffer.byteLength(w)} bytes`);
    assert.ok(w.endsWith('\n'), 'writes end on a line boundary');
  }
  assert.equal(writes.join('').trimEnd().split('\n').length, 200);
});

test('lines still buffered when the process exits are written', async () => {
  const { spawnSync } = await import('node:child_process');
  const here = new URL('./log.ts', import.meta.url).href;
  const script = `import { createLogger } from ${JSON.stringify(here)};
const log = createLogger({ write: (s) => process.stdout.write(s) });
log.info('last words', { n: 1 });
process.exit(3);`;
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8' });
  assert.equal(r.status, 3, r.stderr);
  assert.match(r.stdout, /"msg":"last words"/);
});

test('secrets with quotes or backslashes are scrubbed as JSON writes them; secrets added later (a reload) are scrubbed from then on', () => {
  const out: string[] = [];
  const log = createLogger({ write: (s) => out.push(s), secrets: ['abc"def\\ghi-secret'] });
  log.info('upstream', { message: 'HTTP 401: bad key abc"def\\ghi-secret' });
  log.info('upstream', { message: 'HTTP 401: bad key sk-rotated-123456' });
  log.addSecrets(['sk-rotated-123456']);
  log.info('upstream', { message: 'HTTP 401: bad key sk-rotated-123456 / abc"def\\ghi-secret' });
  log.flush();
  const recs = out.join('').trimEnd().split('\n').map((l) => JSON.parse(l));
  assert.equal(recs[0].message, 'HTTP 401: bad key [redacted]');
  assert.equal(recs[1].message, 'HTTP 401: bad key sk-rotated-123456', 'not known yet');
  assert.equal(recs[2].message, 'HTTP 401: bad key [redacted] / [redacted]');
});

test('plain (terminal) lines quote values with control characters: a client-chosen value cannot forge a line or drive the terminal', () => {
  const out: string[] = [];
  const log = createLogger({ write: (s) => out.push(s), pretty: true });
  log.info('request', { model: 'x\n14:04:19.158 INFO  request id=req_forged status=200\x1b]0;pwned\x07', status: 404 });
  log.flush();
  const text = out.join('');
  assert.equal(text.split('\n').length, 2, 'one line and its end');
  assert.doesNotMatch(text, /\x1b/);
  assert.match(text, /model="x\\n14:04:19\.158 INFO {2}request id=req_forged status=200\\u001b\]0;pwned\\u0007" status=404\n$/);
});

test('a reload\'s secrets stay scrubbed until released, however many reloads come between; the first secrets always', () => {
  const out: string[] = [];
  const log = createLogger({ write: (s) => out.push(s), secrets: ['first-secret-0000'] });
  const [one, two] = ['reload-one-1111', 'reload-two-2222', 'reload-three-3333'].map((k) => log.addSecrets([k]));
  const line = 'first-secret-0000 reload-one-1111 reload-two-2222 reload-three-3333';
  log.info('x', { a: line });
  two!();
  log.info('x', { a: line });
  one!();
  one!();
  log.info('x', { a: line });
  log.flush();
  assert.deepEqual(out.join('').trimEnd().split('\n').map((l) => JSON.parse(l).a), [
    '[redacted] [redacted] [redacted] [redacted]',
    '[redacted] [redacted] reload-two-2222 [redacted]',
    '[redacted] reload-one-1111 reload-two-2222 [redacted]',
  ]);
});

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { boundaryOf, readParts } from './multipart.ts';

const B = 'xYz-123';
const part = (head: string, body: string | Buffer): Buffer => Buffer.concat([Buffer.from(`--${B}\r\n${head}\r\n\r\n`), Buffer.from(body), Buffer.from('\r\n')]);
const close = Buffer.from(`--${B}--\r\n`);

test('the boundary, quoted or not', () => {
  assert.equal(boundaryOf('multipart/form-data; boundary=abc'), 'abc');
  assert.equal(boundaryOf('multipart/form-data; charset=utf-8; boundary="a b:c"'), 'a b:c');
  assert.equal(boundaryOf('multipart/form-data; boundary=----WebKitFormBoundary7MA4YWxkTrZu0gW'), '----WebKitFormBoundary7MA4YWxkTrZu0gW');
  assert.equal(boundaryOf('multipart/form-data'), undefined);
});

test('parts in order, as views of the body: names, filenames (escaped quotes), types; content with CRLF and dashes kept', () => {
  const audio = Buffer.from([0, 1, 2, 0x0d, 0x0a, 0x2d, 0x2d, 0xff]);
  const body = Buffer.concat([
    Buffer.from('a preamble is ignored\r\n'),
    part('Content-Disposition: form-data; name="model"', 'whisper-1'),
    part('Content-Disposition: form-data; name="file"; filename="my \\"best\\" memo.wav"\r\nContent-Type: audio/wav', audio),
    part('content-disposition: form-data; name=language', ''),
    close, Buffer.from('an epilogue too'),
  ]);
  const parts = readParts(body, B);
  assert.deepEqual(parts.map((p) => [p.name, p.filename, p.contentType, p.body.toString('latin1')]), [
    ['model', undefined, undefined, 'whisper-1'],
    ['file', 'my "best" memo.wav', 'audio/wav', audio.toString('latin1')],
    ['language', undefined, undefined, ''],
  ]);
  assert.equal(parts[1]!.body.buffer, body.buffer, 'a view, not a copy');
  assert.equal(parts[0]!.raw.toString(), 'Content-Disposition: form-data; name="model"\r\n\r\nwhisper-1');
});

test('a body that is not well formed is a 400 saying why', () => {
  const bad = (body: Buffer, why: RegExp) => assert.throws(() => readParts(body, B), (e: any) => e.status === 400 && why.test(e.message));
  bad(Buffer.from('no boundary here'), /its boundary does not occur in it/);
  bad(part('Content-Disposition: form-data; name="a"', 'x'), /ends before its closing boundary/);
  bad(Buffer.concat([Buffer.from(`--${B}\r\nContent-Disposition: form-data; name="a"\r\nx\r\n`), close]), /no blank line after its headers/);
  bad(Buffer.concat([part('Content-Disposition: form-data', 'x'), close]), /has no name/);
  bad(Buffer.concat([part('Content-Disposition: attachment; name="a"', 'x'), close]), /not form-data/);
  bad(Buffer.concat([part('Content-Disposition: form-data; name="a"\r\nnonsense', 'x'), close]), /not "Name: value"/);
  bad(Buffer.concat([part(`Content-Disposition: form-data; name="a"\r\nX-Pad: ${'p'.repeat(9000)}`, 'x'), close]), /headers are too long/);
  bad(Buffer.from(`--${B}garbage`), /not followed by a line break/);
});

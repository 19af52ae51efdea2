import { test } from 'node:test';
import assert from 'node:assert/strict';
import { tidy } from './yaml-errors.ts';
import { configFiles } from '../../test/support/config-files.ts';

const { file, errorsOf } = configFiles('fabric-yaml-');

/** The one error a broken file gives, without the directory: "fabric.yaml:L:C: error: (yaml): …". */
function syntaxError(text: string): string {
  const errs = errorsOf(file(text));
  assert.equal(errs.length, 1, errs.join('\n'));
  const e = errs[0]!.slice(errs[0]!.lastIndexOf('/') + 1);
  // The library's own "at line L, column C:" and its excerpt are gone: file:line:col says it once.
  assert.doesNotMatch(e, /at line \d+, column|:\s*$|\n/, e);
  return e;
}

const BACKEND = 'backends:\n  a:\n    engine: vllm\n';

test('YAML: bad indentation is placed at the key that is out of line', () => {
  assert.equal(syntaxError(`${BACKEND}   url: http://x:1/v1\n    model: m\nroles: {}\n`),
    'fabric.yaml:4:4: error: (yaml): all mapping items must start at the same column');
});

test('YAML: an unclosed quote is placed at the quote that opens it, not at the end of the file', () => {
  assert.equal(syntaxError('backends:\n  a:\n    engine: "vllm\n    url: http://x:1/v1\nroles: {}\n'),
    'fabric.yaml:3:13: error: (yaml): missing closing " quote: the string opened here runs on to the end of the file');
});

test('YAML: tab indentation', () => {
  assert.equal(syntaxError('backends:\n  a:\n\tengine: vllm\nroles: {}\n'), 'fabric.yaml:3:1: error: (yaml): tabs are not allowed as indentation');
});

test('YAML: a duplicate key names the key and where it first appears', () => {
  assert.equal(syntaxError(`${BACKEND}    engine: ollama\nroles: {}\n`),
    'fabric.yaml:4:5: error: (yaml): duplicate key "engine" (first at line 3): map keys must be unique');
});

test('YAML: an unclosed bracket on line 30 is reported on line 30, at the bracket', () => {
  const text = Array.from({ length: 29 }, (_, i) => `# line ${i + 1}`).join('\n') + '\nroles: [chat\n';
  assert.equal(syntaxError(text),
    'fabric.yaml:30:8: error: (yaml): the "[" opened here is never closed: flow sequence in block collection must be sufficiently indented and end with a ]');
  // Cut off by a line indented too little: both places are named.
  assert.match(syntaxError('backends:\n  a: { engine: vllm\nroles: {}\n'), /^fabric\.yaml:2:6: error: \(yaml\): the "\{" opened here is cut off at line 3: flow map/);
});

test('tidy: the library message as one lower-case clause', () => {
  assert.equal(tidy('Map keys must be unique at line 4, column 5:\n\n    engine: ollama\n    ^\n'), 'map keys must be unique');
  assert.equal(tidy('Tabs are not allowed as indentation'), 'tabs are not allowed as indentation');
});

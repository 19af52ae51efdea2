// Node's parseArgs refusals as fabric's commands say them: plain words, the option named.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { parseErrorText } from './args.ts';

const OPTIONS = { grace: { type: 'string' }, config: { type: 'string', short: 'c' }, json: { type: 'boolean', short: 'j' } } as const;

function refusal(args: string[], allowPositionals = true): string {
  const config: ParseArgsConfig = { args, options: OPTIONS, allowPositionals };
  try {
    parseArgs(config);
  } catch (e) {
    return parseErrorText('serve', e as Error & { code?: string }, config);
  }
  throw new Error(`${args.join(' ')} parsed`);
}

test('a value starting with a dash: the option named, and how to write it', () => {
  assert.equal(refusal(['--grace', '-1']), "--grace needs a value; a value starting with '-' is written --grace=-1");
  assert.equal(refusal(['-c', '-x.yaml']), "--config needs a value; a value starting with '-' is written --config=-x.yaml");
  assert.equal(refusal(['--config', '--json']), '--config needs a value; --json is an option of its own (see fabric serve --help)');
});

test('unknown options, missing and unwanted values, stray arguments: one plain line each, no quote left open', () => {
  for (const [args, text] of [
    [['--bogus'], 'unknown option --bogus (see fabric serve --help)'],
    [['-x'], 'unknown option -x (see fabric serve --help)'],
    [['--grace'], '--grace needs a value (see fabric serve --help)'],
    [['-c'], '--config needs a value (see fabric serve --help)'],
    [['--json=yes'], '--json takes no value (see fabric serve --help)'],
  ] as const) {
    for (const allowPositionals of [true, false]) assert.equal(refusal([...args], allowPositionals), text, `${args.join(' ')}, positionals ${allowPositionals}`);
  }
  assert.equal(refusal(['file.yaml'], false), 'unexpected argument "file.yaml": fabric serve takes options only (see fabric serve --help)');
});

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { loadFabricConfig } from './load.ts';
import { configFiles } from '../../test/support/config-files.ts';

const { file, errorsOf } = configFiles('fabric-state-config-');

const FABRIC = `backends:
  local: { engine: vllm, url: http://127.0.0.1:8000/v1, model: qwen }
  openai-strong: { engine: openai, model: gpt-4.1-mini, api_key: env:OPENAI_API_KEY }
roles:
  chat-fast: { kind: chat, backends: [local], aliases: [local/chat] }
  openai/strong: { kind: chat, backends: [openai-strong] }
`;

test('the seeds\' state config: SQLite by default, PostgreSQL and Redis by env reference, prices and the $150 OpenAI budget', () => {
  const { config } = loadFabricConfig(file(FABRIC), { OPENAI_API_KEY: 'sk-x' });
  assert.deepEqual(config.gateway.store, { kind: 'sqlite', path: 'fabric.db' });
  assert.equal(config.gateway.accounting.enabled, true);
  assert.equal(config.gateway.accounting.onStoreDown, 'serve');
  assert.equal(config.gateway.requestLog.enabled, false);
  assert.deepEqual(config.budgets, []);

  const p = file(`gateway:
  data_dir: /var/lib/ai-fabric
  store: { url: env:DATABASE_URL }
  redis: { url: env:REDIS_URL, prefix: lab }
  accounting: { batch_size: 200, flush_interval: 500ms, sync_interval: 1s, on_store_down: refuse, max_buffer: 5000 }
  request_log: { retention: 3d, max_size: 64MiB, max_body: 8KiB, redact: ["ssn-\\\\d+"] }
${FABRIC}prices:
  openai-strong: { input: 0.40, output: "$1.60" }
  local: { gpu_hour: 0.12 }
  whisper-large: { audio_minute: 0.004 }
budgets:
  openai:
    amount: $150
    period: month
    engines: [openai]
    fallback: local/chat
`);
  const { config: c } = loadFabricConfig(p, { OPENAI_API_KEY: 'sk-x', DATABASE_URL: 'postgresql://u:p@h/db', REDIS_URL: 'redis://h' });
  assert.deepEqual(c.gateway.store, { kind: 'postgres', url: { env: 'DATABASE_URL' } });
  assert.deepEqual(c.gateway.redis, { url: { env: 'REDIS_URL' }, prefix: 'lab' });
  assert.deepEqual(c.gateway.accounting, { enabled: true, batchSize: 200, flushIntervalMs: 500, syncIntervalMs: 1000, onStoreDown: 'refuse', maxBuffer: 5000, retentionMs: 90 * 86_400_000 });
  assert.deepEqual(c.gateway.requestLog, { enabled: true, retentionMs: 3 * 86_400_000, maxSizeBytes: 64 * 1024 * 1024, maxBodyBytes: 8192, redact: ['ssn-\\d+'] });
  assert.deepEqual(c.prices.get('openai-strong'), { input: 0.4, output: 1.6, gpuHour: undefined, audioMinute: undefined });
  assert.deepEqual(c.prices.get('local'), { input: 0, output: 0, gpuHour: 0.12, audioMinute: undefined });
  assert.deepEqual(c.prices.get('whisper-large'), { input: 0, output: 0, gpuHour: undefined, audioMinute: 0.004 });
  assert.deepEqual(c.budgets, [{ name: 'openai', amount: 150, period: 'month', backends: ['openai-strong'], fallback: 'local/chat' }]);
});

test('state config errors name file:line:col and the key', () => {
  const p = file(`gateway:
  store: { url: "postgresql://fabric:hunter2@db/fabric" }
  redis: { prefix: "bad prefix" }
  accounting: { on_store_down: ignore, flush_interval: soon }
  request_log: { redact: ["(unclosed"] }
${FABRIC}prices:
  openai-strong: { input: -1 }
  nothing-here: { output: 2 }
budgets:
  openai:
    amount: lots
    period: fortnight
    backends: [openai-stronk]
    fallback: openai/strong
  empty: { amount: 5, period: day }
`);
  const errs = errorsOf(p, { OPENAI_API_KEY: 'sk-x' });
  const has = (re: RegExp): void => assert.ok(errs.some((e) => re.test(e)), `${re} in\n${errs.join('\n')}`);
  has(/fabric\.yaml:2:\d+: error: gateway\.store\.url: a PostgreSQL URL holds a password/);
  has(/:3:\d+: error: gateway\.redis\.url: is required/);
  has(/:3:\d+: error: gateway\.redis\.prefix: may hold/);
  has(/:4:\d+: error: gateway\.accounting\.on_store_down: must be one of serve, refuse/);
  has(/:4:\d+: error: gateway\.accounting\.flush_interval: must be a duration/);
  has(/:5:\d+: error: gateway\.request_log\.redact\[0\]: is not a valid regular expression/);
  has(/:13:\d+: error: prices\.openai-strong\.input: must be an amount of US dollars/);
  has(/:17:\d+: error: budgets\.openai\.amount: must be an amount/);
  has(/:18:\d+: error: budgets\.openai\.period: must be one of day, week, month, total/);
  has(/:19:\d+: error: budgets\.openai\.backends\[0\]: names a backend that is not defined: "openai-stronk" \(did you mean "openai-strong"\?\)/);
  has(/:21:\d+: error: budgets\.empty: needs what it covers/);
  assert.ok(!errs.join('\n').includes('hunter2'), 'the password is not echoed');
});

test('a budget whose fallback uses the backends it covers is refused; unset store and Redis URLs are errors', () => {
  const p = file(`gateway:
  store: env:DATABASE_URL
  redis: env:REDIS_URL
${FABRIC}budgets:
  openai: { amount: 150, period: month, roles: [openai/strong], fallback: openai/strong }
`);
  const errs = errorsOf(p, { OPENAI_API_KEY: 'sk-x' });
  assert.ok(errs.some((e) => /budgets\.openai\.fallback: "openai\/strong" uses backends this budget covers/.test(e)), errs.join('\n'));
  assert.ok(errs.some((e) => /gateway\.store\.url: environment variable DATABASE_URL is not set/.test(e)));
  assert.ok(errs.some((e) => /gateway\.redis\.url: environment variable REDIS_URL is not set/.test(e)));
});

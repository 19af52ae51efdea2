import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { importLiteLLMText, isLiteLLMText, parseLiteLLMText } from './load.ts';
import { mapPeriod } from './state.ts';
import { loadFabricConfig, parseFabricText } from '../load.ts';
import { ConfigError, formatIssue, type ConfigIssue } from '../issues.ts';
import type { FabricConfig } from '../types.ts';
import { tempDir } from '../../../test/support/temp-dir.ts';

const dir = tempDir('fabric-litellm-unit-');
const FILE = join(dir, 'litellm.config.yaml');

function parse(text: string, env: NodeJS.ProcessEnv = {}) {
  const p = parseLiteLLMText(text, FILE, env);
  const warnings = new Map<string, string>();
  for (const i of p.issues) if (i.severity === 'warning') warnings.set(i.path, i.message);
  return { ...p, warnings, errors: p.issues.filter((i) => i.severity === 'error') };
}

function ok(text: string, env: NodeJS.ProcessEnv = {}) {
  const p = parse(text, env);
  assert.deepEqual(p.errors.map(formatIssue), [], 'no errors');
  return p;
}

/** The imported text must describe the same fabric as the LiteLLM text it came from. */
function roundTrip(text: string, env: NodeJS.ProcessEnv = {}): { yaml: string; config: FabricConfig } {
  const { yaml, issues } = importLiteLLMText(text, FILE, env);
  assert.ok(!issues.some((i) => i.severity === 'error'));
  const native = parseFabricText(yaml, join(dir, 'imported.yaml'));
  assert.deepEqual(native.issues, [], 'the imported file validates cleanly');
  const direct = parseLiteLLMText(text, FILE, env).config;
  assert.deepEqual({ ...native.config, file: undefined }, { ...direct, file: undefined });
  return { yaml, config: native.config };
}

const vllm = (name: string, host: string, extra = ''): string => `
  - model_name: ${name}
    litellm_params: { model: hosted_vllm/m-${host}, api_base: "http://${host}:8000/v1"${extra} }`;

test('a LiteLLM config is told apart from a fabric config by its shape', () => {
  assert.equal(isLiteLLMText('model_list:\n  - model_name: a\n'), true);
  assert.equal(isLiteLLMText('general_settings:\n  master_key: os.environ/K\n'), true);
  assert.equal(isLiteLLMText(readFileSync(new URL('../../../examples/seeds.fabric.yaml', import.meta.url), 'utf8')), false);
  assert.equal(isLiteLLMText('backends: {}\ngeneral_settings: {}\n'), false, 'a fabric section makes it a fabric config');
  assert.equal(isLiteLLMText('model_list: [\n'), false, 'broken YAML goes to the native loader, which reports it');
});

test('providers: openai/, bare OpenAI names, hosted_vllm/, ollama/, ollama_chat/ and lm_studio/ become engines', () => {
  const { config, warnings } = ok(`
model_list:
  - model_name: cloud
    litellm_params: { model: openai/gpt-4o }
  - model_name: bare
    litellm_params: { model: gpt-4o-mini }
  - model_name: compat
    litellm_params: { model: openai/Qwen/Qwen2.5-7B-Instruct, api_base: "http://armitage:8000/v1" }
  - model_name: vllm
    litellm_params: { model: hosted_vllm/BAAI/bge-base-en-v1.5, api_base: "http://motoko:8200/v1" }
    model_info: { mode: embedding }
  - model_name: gen
    litellm_params: { model: ollama/llama3.1:8b }
  - model_name: chat
    litellm_params: { model: ollama_chat/qwen2.5:7b, api_base: "http://lab:11434" }
  - model_name: studio
    litellm_params: { model: lm_studio/qwen2.5-7b-instruct }
`);
  const b = (n: string) => config.backends.get(n)!;
  assert.deepEqual([b('cloud').engine, b('cloud').url, b('cloud').model, b('cloud').apiKey], ['openai', 'https://api.openai.com/v1', 'gpt-4o', { env: 'OPENAI_API_KEY' }]);
  assert.deepEqual([b('bare').engine, b('bare').model, b('bare').apiKey], ['openai', 'gpt-4o-mini', { env: 'OPENAI_API_KEY' }]);
  assert.deepEqual([b('compat').engine, b('compat').url, b('compat').model, b('compat').apiKey], ['openai-compatible', 'http://armitage:8000/v1', 'Qwen/Qwen2.5-7B-Instruct', undefined]);
  assert.deepEqual([b('vllm').engine, b('vllm').model], ['vllm', 'BAAI/bge-base-en-v1.5']);
  assert.equal(config.roles.get('vllm')!.kind, 'embeddings');
  assert.deepEqual([b('gen').engine, b('gen').url, b('gen').model], ['ollama', 'http://localhost:11434', 'llama3.1:8b']);
  assert.deepEqual([b('chat').engine, b('chat').url], ['ollama', 'http://lab:11434']);
  assert.deepEqual([b('studio').engine, b('studio').url, b('studio').model], ['lmstudio', 'http://localhost:1234/v1', 'qwen2.5-7b-instruct']);
  assert.equal(warnings.size, 0);
});

test('unsupported providers and models are left out with a warning, never a crash', () => {
  const p = parse(`
model_list:
  - model_name: az
    litellm_params: { model: azure/gpt-4o, api_base: "https://x.openai.azure.com" }
  - model_name: claude
    litellm_params: { model: claude-3-haiku }
  - model_name: nobase
    litellm_params: { model: hosted_vllm/m }
  - model_name: img
    litellm_params: { model: openai/dall-e-3 }
    model_info: { mode: image_generation }
${vllm('kept', 'a')}
`);
  assert.deepEqual(p.errors, []);
  assert.match(p.warnings.get('model_list[0].litellm_params.model')!, /provider azure\/ is not supported yet.*left out/);
  assert.match(p.warnings.get('model_list[1].litellm_params.model')!, /cannot tell which provider serves "claude-3-haiku"/);
  assert.match(p.warnings.get('model_list[2].litellm_params.api_base')!, /is required for hosted_vllm\/.*left out/);
  assert.match(p.warnings.get('model_list[3].model_info.mode')!, /image_generation.*not supported yet/);
  assert.deepEqual([...p.config.roles.keys()], ['kept']);
  assert.deepEqual(p.result.deploymentBackends, [undefined, undefined, undefined, undefined, 'kept']);

  const none = parse('model_list:\n  - model_name: az\n    litellm_params: { model: azure/x }\n');
  assert.ok(none.errors.length > 0, 'nothing left to serve is an error');
  assert.ok(none.errors.every((e) => e.path === 'model_list' && e.line === 1));
});

test('secrets: os.environ/ becomes a reference; a literal is held for serving and reported; a placeholder sends nothing', () => {
  const p = ok(`
model_list:
  - model_name: a
    litellm_params: { model: openai/m, api_base: "http://a:1/v1", api_key: os.environ/A_KEY }
  - model_name: b
    litellm_params: { model: openai/m, api_base: "http://b:1/v1", api_key: sk-LITERAL-do-not-copy }
  - model_name: c
    litellm_params: { model: openai/m, api_base: "http://c:1/v1", api_key: "none" }
general_settings:
  master_key: sk-1234-LITERAL-master
`);
  assert.deepEqual(p.config.backends.get('a')!.apiKey, { env: 'A_KEY' });
  assert.deepEqual(p.config.backends.get('b')!.apiKey, { env: 'B_API_KEY' });
  assert.equal(p.config.backends.get('c')!.apiKey, undefined);
  assert.deepEqual(p.config.gateway.masterKey, { env: 'LITELLM_MASTER_KEY' });
  assert.deepEqual([...p.literals], [['B_API_KEY', 'sk-LITERAL-do-not-copy'], ['LITELLM_MASTER_KEY', 'sk-1234-LITERAL-master']]);
  assert.match(p.warnings.get('model_list[1].litellm_params.api_key')!, /holds a secret literally: it is used as env:B_API_KEY/);
  assert.match(p.warnings.get('general_settings.master_key')!, /holds a secret literally/);
  assert.ok(!p.warnings.has('model_list[2].litellm_params.api_key'));
  for (const i of p.issues) assert.ok(!i.message.includes('LITERAL'), 'no message repeats a secret');

  const { yaml } = importLiteLLMText(readFileSync(writeAndReturn('secrets.yaml', `
model_list:
  - model_name: b
    litellm_params: { model: openai/m, api_base: "http://b:1/v1", api_key: sk-LITERAL-do-not-copy }
general_settings:
  master_key: sk-1234-LITERAL-master
  database_url: postgresql://u:pw-LITERAL@db/litellm
router_settings:
  redis_password: redis-LITERAL
`), 'utf8'), FILE, {});
  assert.ok(!yaml.includes('LITERAL'), 'the imported file never holds a secret value');
  assert.match(yaml, /api_key: env:B_API_KEY/);
  assert.match(yaml, /master_key: env:LITELLM_MASTER_KEY/);
  assert.match(yaml, /store:\n {4}url: env:DATABASE_URL/);
  assert.match(yaml, /general_settings\.database_url: holds a secret literally: it is used as env:DATABASE_URL/);
  assert.match(yaml, /router_settings\.redis_password: ignored, as by LiteLLM/);

  const bad = parse('model_list:\n  - model_name: a\n    litellm_params: { model: gpt-4o, api_key: os.environ/not-a-name! }\n');
  assert.match(bad.errors.map(formatIssue).join('\n'), /litellm\.config\.yaml:3:\d+: error: model_list\[0\]\.litellm_params\.api_key: must name an environment variable/);
});

function writeAndReturn(name: string, text: string): string {
  const p = join(dir, name);
  writeFileSync(p, text);
  return p;
}

test('serving a literal secret works, and an unset os.environ/ key is reported at its LiteLLM line', () => {
  const d = join(dir, 'serve-literal');
  mkdirSync(d, { recursive: true });
  const p = join(d, 'litellm.yaml');
  writeFileSync(p, 'model_list:\n  - model_name: a\n    litellm_params:\n      model: gpt-4o\n      api_key: os.environ/OPENAI_KEY_UNSET\n  - model_name: b\n    litellm_params: { model: openai/m, api_base: "http://b:1/v1", api_key: sk-literal-value }\n');
  const loaded = loadFabricConfig(p, {});
  assert.equal(loaded.format, 'litellm');
  assert.equal(loaded.secrets.get('B_API_KEY'), 'sk-literal-value');
  const unset = loaded.issues.find((i) => i.message.includes('OPENAI_KEY_UNSET'))!;
  assert.equal(unset.path, 'model_list[0].litellm_params.api_key');
  assert.equal(unset.line, 5);
  assert.match(unset.message, /will be skipped until it is \(as fabric backends\.a\.api_key\)/);
  const env = loadFabricConfig(p, { B_API_KEY: 'from-env' });
  assert.equal(env.secrets.get('B_API_KEY'), 'from-env', 'the environment wins over a literal');

  writeFileSync(p, 'model_list:\n  - model_name: a\n    litellm_params: { model: gpt-4o }\ngeneral_settings:\n  master_key: os.environ/MASTER_UNSET\n');
  assert.throws(() => loadFabricConfig(p, {}), (e: unknown) => e instanceof ConfigError && /litellm\.yaml:5:\d+: error: general_settings\.master_key: environment variable MASTER_UNSET is not set/.test(e.message));
});

test('schema errors in the translation point at the LiteLLM line they came from', () => {
  const p = parse('model_list:\n  - model_name: a\n    litellm_params:\n      model: hosted_vllm/m\n      api_base: "ftp://host/v1"\n');
  const e = p.errors.map(formatIssue);
  assert.equal(e.length, 1);
  assert.match(e[0]!, /litellm\.config\.yaml:5:17: error: model_list\[0\]\.litellm_params\.api_base: must be an http:\/\/ or https:\/\/ URL.*\(as fabric backends\.a\.url\)/);
});

test('api_base from os.environ/ is read when loaded; unset is an error at its line', () => {
  const text = 'model_list:\n  - model_name: a\n    litellm_params: { model: hosted_vllm/m, api_base: os.environ/ARMITAGE_BASE }\n';
  assert.equal(ok(text, { ARMITAGE_BASE: 'http://armitage:8000/v1' }).config.backends.get('a')!.url, 'http://armitage:8000/v1');
  assert.match(parse(text).errors.map(formatIssue).join(), /:3:\d+: error: model_list\[0\]\.litellm_params\.api_base: os\.environ\/ARMITAGE_BASE is not set/);
  const fromVars = ok(`${text}environment_variables:\n  ARMITAGE_BASE: http://from-vars:8000/v1\n`);
  assert.equal(fromVars.config.backends.get('a')!.url, 'http://from-vars:8000/v1');
  assert.match(fromVars.warnings.get('environment_variables.ARMITAGE_BASE')!, /does not copy the value/);
});

test('fallbacks are unrolled in the order LiteLLM follows them: depth first, each model once, up to max_fallbacks', () => {
  const base = `model_list:${vllm('a', 'a')}${vllm('b', 'b')}${vllm('c', 'c')}${vllm('d', 'd')}\n`;
  const p = ok(`${base}litellm_settings:\n  fallbacks: [{a: [b, d]}, {b: [c, a]}, {c: [a]}]\n`);
  const fb = (r: string) => p.config.roles.get(r)!.fallbacks;
  assert.deepEqual(fb('a'), ['b', 'c', 'd'], 'b, then b\'s own (c), then d');
  assert.deepEqual(fb('b'), ['c', 'a', 'd']);
  assert.deepEqual(fb('c'), ['a', 'b', 'd']);
  assert.deepEqual(fb('d'), []);
  const capped = ok(`${base}litellm_settings:\n  max_fallbacks: 1\n  fallbacks: [{a: [b, c]}, {b: [d]}]\n`);
  assert.deepEqual(capped.config.roles.get('a')!.fallbacks, ['b']);

  const defaults = parse(`${base}  - model_name: e
    litellm_params: { model: hosted_vllm/bge, api_base: "http://e:1/v1" }
    model_info: { mode: embedding }
litellm_settings:
  default_fallbacks: [d]
  fallbacks: [{a: [b]}, {b: [nowhere]}, {ghost: [a]}, {e: [a]}]
`);
  assert.deepEqual(defaults.config.roles.get('a')!.fallbacks, ['b'], 'a model\'s own fallbacks replace the defaults; b\'s only one is unknown');
  assert.deepEqual(defaults.config.roles.get('c')!.fallbacks, ['d']);
  assert.deepEqual(defaults.config.roles.get('d')!.fallbacks, [], 'not itself');
  assert.deepEqual(defaults.config.roles.get('e')!.fallbacks, [], 'a chat model is no fallback for embeddings');
  assert.match(defaults.warnings.get('litellm_settings.fallbacks[1].b[0]')!, /names no model_name: "nowhere"; this fallback is left out/);
  assert.match(defaults.warnings.get('litellm_settings.fallbacks[2].ghost')!, /names no model_name: "ghost"; ignored/);
  assert.match(defaults.warnings.get('litellm_settings.fallbacks[3].e[0]')!, /"a" is chat, e is embeddings/);

  const both = parse(`${base}router_settings:\n  fallbacks: [{a: [c]}]\nlitellm_settings:\n  fallbacks: [{a: [b]}]\n`);
  assert.deepEqual(both.config.roles.get('a')!.fallbacks, ['c']);
  assert.match(both.warnings.get('litellm_settings.fallbacks')!, /router_settings\.fallbacks is set too and takes precedence/);
});

test('context_window_fallbacks, with enable_pre_call_checks as a token-count rule', () => {
  const p = parse(`model_list:
  - model_name: small
    litellm_params: { model: hosted_vllm/s, api_base: "http://s:1/v1" }
    model_info: { max_input_tokens: 4096 }
${vllm('large', 'l')}${vllm('huge', 'h')}
router_settings:
  enable_pre_call_checks: true
  context_window_fallbacks: [{small: [large, huge]}]
`);
  const small = p.config.roles.get('small')!;
  assert.equal(small.contextWindowFallback, 'large');
  assert.deepEqual(small.rules, [{ inputTokensOver: 4096, routeTo: 'large' }]);
  assert.equal(p.config.backends.get('small')!.contextWindow, 4096);
  assert.match(p.warnings.get('router_settings.context_window_fallbacks[0].small[1]')!, /only the first context-window fallback \(large\) is used.*huge is not reached/);
});

test('model_group_alias: aliases of the role; hidden and unknown ones reported', () => {
  const p = parse(`model_list:${vllm('chat-fast', 'armitage')}
router_settings:
  model_group_alias:
    local/chat: chat-fast
    legacy: { model: chat-fast, hidden: true }
    gone: nowhere
    chat-fast: chat-fast
`);
  assert.deepEqual(p.config.roles.get('chat-fast')!.aliases, ['local/chat', 'legacy']);
  assert.match(p.warnings.get('router_settings.model_group_alias.legacy.hidden')!, /listed in \/v1\/models/);
  assert.match(p.warnings.get('router_settings.model_group_alias.gone')!, /names no model_name: "nowhere"/);
  assert.match(p.warnings.get('router_settings.model_group_alias.chat-fast')!, /also a model_name/);
  const fb = ok(`model_list:${vllm('a', 'a')}${vllm('b', 'b')}\nrouter_settings:\n  model_group_alias: { old-b: b }\n  fallbacks: [{a: [old-b]}]\n`);
  assert.deepEqual(fb.config.roles.get('a')!.fallbacks, ['b'], 'a fallback named by its alias');
});

test('a model_name listed several times is a load-balanced role; routing_strategy picks how', () => {
  const group = `model_list:${vllm('g', 'a', ', rpm: 100')}${vllm('g', 'b', ', rpm: 300')}\n`;
  const shuffle = parse(group);
  assert.deepEqual(shuffle.config.roles.get('g')!.backends, ['g', 'g-2']);
  assert.equal(shuffle.config.roles.get('g')!.strategy, 'weighted');
  assert.deepEqual([shuffle.config.backends.get('g')!.weight, shuffle.config.backends.get('g-2')!.weight], [100, 300], 'simple-shuffle weighs by rpm');
  assert.match(shuffle.warnings.get('model_list[0].litellm_params.rpm')!, /not enforced yet/);

  const even = ok(`model_list:${vllm('g', 'a')}${vllm('g', 'b')}\n`);
  assert.equal(even.config.roles.get('g')!.strategy, 'round-robin');
  const weights = ok(`model_list:${vllm('g', 'a', ', weight: 0.9')}${vllm('g', 'b', ', weight: 0.1')}\n`);
  assert.deepEqual([weights.config.backends.get('g')!.weight, weights.config.backends.get('g-2')!.weight], [1000, 111]);
  const busy = ok(`${group.replace(/, rpm: \d+/g, '')}router_settings:\n  routing_strategy: least-busy\n`);
  assert.equal(busy.config.roles.get('g')!.strategy, 'least-outstanding');
  const latency = parse(`${group}router_settings:\n  routing_strategy: latency-based-routing\n`);
  assert.equal(latency.config.roles.get('g')!.strategy, 'least-loaded');
  assert.match(latency.warnings.get('router_settings.routing_strategy')!, /not supported yet: least-loaded/);
  const usage = parse(`${group}router_settings:\n  routing_strategy: usage-based-routing-v2\n`);
  assert.match(usage.warnings.get('router_settings.routing_strategy')!, /not supported yet/);
});

test('order: lower orders serve first; higher orders come before the fallbacks', () => {
  const p = ok(`model_list:${vllm('g', 'a', ', order: 1')}${vllm('g', 'b', ', order: 2')}${vllm('other', 'o')}
litellm_settings:
  fallbacks: [{g: [other]}]
`);
  assert.deepEqual(p.config.roles.get('g')!.backends, ['g']);
  assert.deepEqual(p.config.roles.get('g@order-2')!.backends, ['g-2']);
  assert.deepEqual(p.config.roles.get('g')!.fallbacks, ['g@order-2', 'other']);
});

test('timeouts and retries: LiteLLM seconds as first-byte (timeout) and idle (stream_timeout, else timeout) timeouts; num_retries per backend; room for every attempt', () => {
  const p = parse(`model_list:${vllm('a', 'a', ', timeout: 120, stream_timeout: 15')}${vllm('b', 'b', ', timeout: 1200, max_retries: 0')}${vllm('c', 'c', ', timeout: 1.5')}${vllm('d', 'd')}
litellm_settings:
  request_timeout: 30
  num_retries: 3
  fallbacks: [{d: [a, b, c]}]
`);
  const t = (n: string) => p.config.backends.get(n)!.timeouts;
  // timeout is the wait for a response to begin, stream_timeout a stream's between chunks (fabric
  // render writes them back as they were); a non-streamed answer waits up to total.
  assert.deepEqual(t('a'), { connectMs: 3000, firstByteMs: 120_000, idleMs: 15_000, totalMs: 600_000 });
  assert.equal(p.warnings.get('model_list[0].litellm_params.stream_timeout'), undefined);
  assert.deepEqual(t('b'), { connectMs: 3000, firstByteMs: 1_200_000, idleMs: 1_200_000, totalMs: 1_200_000 });
  assert.deepEqual(t('c'), { connectMs: 1500, firstByteMs: 1500, idleMs: 1500, totalMs: 600_000 });
  assert.deepEqual(t('d'), { connectMs: 3000, firstByteMs: 30_000, idleMs: 30_000, totalMs: 600_000 }, 'request_timeout is the default');
  assert.deepEqual(['a', 'b', 'c', 'd'].map((n) => p.config.backends.get(n)!.maxRetries), [3, 0, 3, 3]);
  assert.equal(p.config.gateway.limits.maxAttempts, 13, 'd, a, b, c with their retries');
  assert.equal(ok(`model_list:${vllm('a', 'a')}`).config.backends.get('a')!.maxRetries, 2, 'LiteLLM retries twice by default');
});

test('wildcard model_names become pattern routes; renaming patterns are reported', () => {
  const p = parse(`model_list:
  - model_name: "meta-llama/*"
    litellm_params: { model: "hosted_vllm/meta-llama/*", api_base: "http://lab:8001/v1" }
  - model_name: "vllm/*"
    litellm_params: { model: "hosted_vllm/meta-llama/*", api_base: "http://lab:8002/v1" }
  - model_name: "fixed/*"
    litellm_params: { model: "hosted_vllm/one-model", api_base: "http://lab:8003/v1" }
${vllm('exact', 'x')}
`);
  assert.deepEqual(p.config.patterns.map((x) => [x.match, x.backends]), [['meta-llama/*', ['meta-llama-any']], ['vllm/*', ['vllm-any']], ['fixed/*', ['fixed-any']]]);
  assert.ok(!p.warnings.has('model_list[0].litellm_params.model'));
  assert.match(p.warnings.get('model_list[1].litellm_params.model')!, /rewrites the requested name.*passed to the backend unchanged/);
  assert.match(p.warnings.get('model_list[2].litellm_params.model')!, /sends every fixed\/\* request to one-model/);
});

test('cooldowns, retry_after, health checks and alerts map to the gateway\'s own settings', () => {
  const p = ok(`model_list:${vllm('a', 'a')}
router_settings: { allowed_fails: 3, cooldown_time: 30, retry_after: 0.5 }
general_settings:
  health_check_interval: 45
  alerting: [slack]
`);
  assert.equal(p.warnings.size, 0);
  const h = p.config.backends.get('a')!.health!;
  assert.deepEqual([h.failureThreshold, h.cooldownMs, h.maxCooldownMs], [4, 30_000, 30_000], 'more than 3 failures cool down, for 30s each time');
  assert.deepEqual([p.config.gateway.retryBaseMs, p.config.gateway.retryMaxMs], [1000, 2000]);
  assert.equal(p.config.gateway.healthIntervalMs, 45_000);
  assert.deepEqual([p.config.gateway.alerts?.webhook, p.config.gateway.alerts?.format], [{ env: 'SLACK_WEBHOOK_URL' }, 'slack']);

  const fromSettings = ok(`model_list:${vllm('a', 'a')}\nlitellm_settings: { allowed_fails: 0 }\n`);
  assert.equal(fromSettings.config.gateway.health.failureThreshold, 1);
  const hooks = parse(`model_list:${vllm('a', 'a')}
general_settings:
  alerting: [webhook, slack, email]
  alert_to_webhook_url:
    llm_exceptions: https://hooks.example.com/T0/B0/LITERAL-token
    budget_alerts: os.environ/BUDGET_HOOK
`);
  assert.deepEqual(hooks.config.gateway.alerts?.webhook, { env: 'WEBHOOK_URL' });
  assert.equal(hooks.config.gateway.alerts?.format, 'json');
  assert.equal(hooks.literals.get('WEBHOOK_URL'), 'https://hooks.example.com/T0/B0/LITERAL-token', 'a webhook URL is a secret: held, not written');
  assert.match(hooks.warnings.get('general_settings.alerting[1]')!, /second alert destination/);
  assert.match(hooks.warnings.get('general_settings.alerting[2]')!, /"email" alerts/);
  assert.match(hooks.warnings.get('general_settings.alert_to_webhook_url')!, /one webhook per alert type/);
  assert.match(hooks.warnings.get('general_settings.alert_to_webhook_url.llm_exceptions')!, /holds a secret literally/);
});

const KITCHEN_SINK = `model_list:
  - model_name: a
    litellm_params:
      model: hosted_vllm/m
      api_base: http://a:8000/v1
      temperature: 0.2
      input_cost_per_token: 0.000001
      input_cost_per_second: 0.0001
      extra_headers: { x-team: lab }
      tags: [free]
    model_info: { mode: chat, output_cost_per_token: 0.000002, cache_read_input_token_cost: 0.0000001, base_model: m }
    deployment_note: hi
litellm_settings:
  drop_params: true
  set_verbose: true
  cache: true
  cache_params: { type: redis }
  success_callback: [langfuse]
  max_budget: 100
  content_policy_fallbacks: [{a: [a]}]
  something_new: 1
router_settings:
  routing_strategy: cost-based-routing
  redis_host: os.environ/REDIS_HOST
  redis_port: 6379
  redis_password: os.environ/REDIS_PASSWORD
  disable_cooldowns: true
  retry_policy: { TimeoutErrorRetries: 3 }
  provider_budget_config: { openai: { budget_limit: 10, time_period: 1d } }
  caching_groups: [[a, b]]
general_settings:
  master_key: os.environ/LITELLM_MASTER_KEY
  database_url: os.environ/DATABASE_URL
  alerting: [slack]
  alert_to_webhook_url: { llm_exceptions: os.environ/SLACK_WEBHOOK_URL }
  alert_types: [llm_too_slow, budget_alerts]
  alerting_threshold: 300
  store_model_in_db: true
  background_health_checks: false
include: [more.yaml]
`;

test('every key the gateway does not support is reported by its key path, saying what happens instead', () => {
  const p = parse(KITCHEN_SINK);
  assert.deepEqual(p.errors, []);
  const expected: Record<string, RegExp> = {
    'model_list[0].litellm_params.temperature': /request defaults are not applied/,
    'model_list[0].litellm_params.input_cost_per_second': /prices are per token in and out.*or per GPU hour/,
    'model_list[0].litellm_params.extra_headers': /no extra headers/,
    'model_list[0].litellm_params.tags': /tag-based routing/,
    'model_list[0].model_info.cache_read_input_token_cost': /prices are per token in and out/,
    'model_list[0].deployment_note': /ignored/,
    'litellm_settings.drop_params': /not supported yet: parameters go to OpenAI-compatible backends as the client sent them/,
    'litellm_settings.set_verbose': /--log-level debug/,
    'litellm_settings.cache_params.type': /LiteLLM keeps it in Redis, and the gateway's is router_settings', which is not mapped \(see router_settings\.redis_host\): the cache is kept in each gateway process's memory until gateway\.redis is set/,
    'litellm_settings.success_callback': /"otel" is gateway\.tracing .*"prometheus" is the built-in GET \/metrics; other logging integrations/,
    'litellm_settings.max_budget': /not supported yet: the gateway has no proxy-wide budget.*every request once the proxy has spent \$100 \(never reset.*budgets: \{ proxy: \{ amount: 100, period: total, backends: \[a\] \} \}/,
    'litellm_settings.content_policy_fallbacks': /not rerouted/,
    'litellm_settings.something_new': /not supported yet; ignored/,
    'router_settings.routing_strategy': /not supported yet: round-robin/,
    'router_settings.redis_host': /not mapped: the gateway reads Redis as one URL.*REDIS_URL=redis:\/\/:<REDIS_PASSWORD>@<REDIS_HOST>:6379 .*gateway\.redis: \{ url: env:REDIS_URL \}/,
    'router_settings.redis_port': /not mapped: part of the one Redis URL/,
    'router_settings.redis_password': /not mapped: part of the one Redis URL/,
    'router_settings.disable_cooldowns': /always skipped/,
    'router_settings.retry_policy': /max_retries/,
    'router_settings.provider_budget_config.openai': /no deployment the gateway serves uses provider openai\/; ignored/,
    'router_settings.caching_groups': /not supported yet: each model_name keeps its own cache entries \(shared with its aliases only\), so model_names in one caching group do not share answers/,
    'general_settings.database_url': /mapped to gateway\.store \(PostgreSQL\), but LiteLLM's own tables.*are not read/,
    'general_settings.alert_types': /alerts are sent when a backend goes down or comes back/,
    'general_settings.store_model_in_db': /models come from the config file/,
    'general_settings.background_health_checks': /always probes/,
    include: /included files are not read/,
  };
  for (const [path, re] of Object.entries(expected)) {
    assert.match(p.warnings.get(path) ?? '(no warning)', re, path);
  }
  assert.equal(p.warnings.size, Object.keys(expected).length, `unexpected: ${[...p.warnings.keys()].filter((k) => !(k in expected)).join(', ')}`);
  for (const i of p.issues) assert.ok(i.line > 0, `${i.path} has its line`);
  assert.deepEqual(p.config.gateway.alerts?.webhook, { env: 'SLACK_WEBHOOK_URL' }, 'the alerting webhook is supported');
  assert.deepEqual(p.config.gateway.store, { kind: 'postgres', url: { env: 'DATABASE_URL' } }, 'database_url is supported');
  assert.deepEqual(p.config.prices.get('a'), { input: 1, output: 2, gpuHour: undefined, audioMinute: undefined }, 'costs per token are supported');
  const { yaml } = roundTrip(KITCHEN_SINK);
  for (const path of Object.keys(expected)) assert.ok(yaml.includes(`#   - ${path}: `), `${path} listed in the imported file`);
});

test('the examples import to files that describe exactly the fabric the LiteLLM files serve', () => {
  const env = { LITELLM_TOKEN: 't', OPENAI_API_KEY: 'k' };
  for (const f of ['motoko.litellm.yaml', 'lab.litellm.yaml']) {
    const text = readFileSync(new URL(`../../../examples/litellm/${f}`, import.meta.url), 'utf8');
    const { yaml } = roundTrip(text, env);
    assert.match(yaml, /^# AI Fabric config imported from litellm\.config\.yaml/);
  }
});

test('comments in the imported file say where each part came from and why', () => {
  const { yaml } = roundTrip(`model_list:
  - model_name: chat
    litellm_params: { model: ollama/llama3.1:8b, timeout: 30 }
litellm_settings:
  fallbacks: [{chat: [other]}]
`);
  assert.match(yaml, /# model_list\[0\]: chat\n {2}chat:/);
  assert.match(yaml, /# ollama\/: LiteLLM sends chats to \/api\/generate/);
  assert.match(yaml, /# LiteLLM listens on every interface/);
  assert.match(yaml, /litellm_settings\.fallbacks\[0\]\.chat\[0\]: names no model_name: "other"/);
});

test('alerting_threshold becomes gateway.health.slow: a warning (and a webhook call) for a backend whose p95 passes it', () => {
  const p = parse(KITCHEN_SINK);
  assert.equal(p.config.gateway.health.slowMs, 300_000);
  assert.equal(p.config.backends.values().next().value!.health!.slowMs, 300_000, 'every backend inherits it');
  assert.equal(p.warnings.get('general_settings.alerting_threshold'), undefined);
  assert.match(roundTrip(KITCHEN_SINK).yaml, /# alerting_threshold 300s: a backend whose p95 latency .*\n {4}slow: 300s/);
});

test('maximum_spend_logs_retention_period becomes accounting.retention: records folded into daily totals, not deleted; a day at least', () => {
  const base = `model_list:${vllm('a', 'a')}\ngeneral_settings:\n  master_key: os.environ/MK\n`;
  const p = parse(`${base}  maximum_spend_logs_retention_period: "30d"\n  maximum_spend_logs_retention_interval: "1d"\n`);
  assert.deepEqual(p.errors, []);
  assert.equal(p.config.gateway.accounting.retentionMs, 30 * 86_400_000);
  assert.match(p.warnings.get('general_settings.maximum_spend_logs_retention_interval')!, /folded into daily totals every hour/);
  assert.match(roundTrip(`${base}  maximum_spend_logs_retention_period: "30d"\n`).yaml, /# maximum_spend_logs_retention_period 30d: where LiteLLM deletes.*\n {4}retention: 30d/);
  assert.equal(parse(`${base}  maximum_spend_logs_retention_period: "36h"\n`).config.gateway.accounting.retentionMs, 2 * 86_400_000, 'rounded up to whole days');
  assert.equal(parse(`${base}  maximum_spend_logs_retention_period: "60m"\n`).config.gateway.accounting.retentionMs, 86_400_000, 'a day at least');
  const bad = parse(`${base}  maximum_spend_logs_retention_period: "a week"\n`);
  assert.match(bad.warnings.get('general_settings.maximum_spend_logs_retention_period')!, /must be a duration such as "30d".*ignored/);
  assert.equal(bad.config.gateway.accounting.retentionMs, 90 * 86_400_000, 'the default');
});

const sorted = (issues: ConfigIssue[]): boolean => issues.every((x, i) => i === 0 || issues[i - 1]!.line <= x.line);
test('issues come sorted by line', () => {
  assert.ok(sorted(parse(KITCHEN_SINK).issues));
});

test('database_url becomes gateway.store (PostgreSQL); proxy_batch_write_at and allow_requests_on_db_unavailable the accounting settings', () => {
  const base = `model_list:${vllm('a', 'a')}\ngeneral_settings:\n  master_key: os.environ/MK\n`;
  const p = parse(`${base}  database_url: os.environ/DATABASE_URL\n  proxy_batch_write_at: 60\n  allow_requests_on_db_unavailable: true\n`);
  assert.deepEqual(p.errors, []);
  assert.deepEqual(p.config.gateway.store, { kind: 'postgres', url: { env: 'DATABASE_URL' } });
  assert.equal(p.config.gateway.accounting.flushIntervalMs, 60_000);
  assert.equal(p.config.gateway.accounting.onStoreDown, 'serve');
  assert.match(p.warnings.get('general_settings.database_url')!, /LiteLLM virtual keys do not authenticate here; give clients keys from fabric keys create/);
  assert.equal(p.warnings.size, 1);
  const { yaml } = roundTrip(`${base}  database_url: os.environ/DATABASE_URL\n  proxy_batch_write_at: 60\n`);
  assert.match(yaml, /# general_settings\.database_url: PostgreSQL, as LiteLLM's.*\n {2}store:\n {4}url: env:DATABASE_URL/);
  assert.match(yaml, /# proxy_batch_write_at 60s: .*\n {4}flush_interval: 60s/);

  const literal = parse(`${base}  database_url: "postgresql://litellm:pw-LITERAL@db:5432/litellm"\n`);
  assert.deepEqual(literal.config.gateway.store, { kind: 'postgres', url: { env: 'DATABASE_URL' } });
  assert.equal(literal.literals.get('DATABASE_URL'), 'postgresql://litellm:pw-LITERAL@db:5432/litellm', 'held for serving');
  for (const i of literal.issues) assert.ok(!i.message.includes('LITERAL'), 'no message repeats the password');

  const other = parse(`${base}  database_url: "mysql://u:pw-LITERAL@db/x"\n`);
  assert.deepEqual(other.config.gateway.store, { kind: 'sqlite', path: 'fabric.db' });
  assert.match(other.warnings.get('general_settings.database_url')!, /must be a postgresql:\/\/ URL or os\.environ\/NAME.*ignored: the gateway keeps its state in SQLite/);
  assert.ok(!other.warnings.get('general_settings.database_url')!.includes('LITERAL'));

  const stillWarned = parse(`${base}  database_connection_pool_limit: 10\n  disable_spend_logs: true\n  store_model_in_db: true\n  max_budget: 5\n`);
  assert.match(stillWarned.warnings.get('general_settings.database_connection_pool_limit')!, /sizes its PostgreSQL connection pool itself/);
  assert.match(stillWarned.warnings.get('general_settings.disable_spend_logs')!, /budgets and key spend are computed from its usage records/);
  assert.match(stillWarned.warnings.get('general_settings.store_model_in_db')!, /models come from the config file/);
  assert.match(stillWarned.warnings.get('general_settings.max_budget')!, /not a general_settings key LiteLLM reads.*litellm_settings\.max_budget/);

  // An unset DATABASE_URL is an error at the LiteLLM line, as an unset master key is.
  const d = join(dir, 'store-unset');
  mkdirSync(d, { recursive: true });
  const f = join(d, 'litellm.yaml');
  writeFileSync(f, `${base}  database_url: os.environ/DATABASE_URL_UNSET\n`);
  assert.throws(() => loadFabricConfig(f, { MK: 'k' }), (e: unknown) => e instanceof ConfigError && /litellm\.yaml:6:\d+: error: general_settings\.database_url: environment variable DATABASE_URL_UNSET is not set/.test(e.message));
});

test('Redis: redis_url becomes gateway.redis; host and port written out become one held URL; os.environ/ parts are reported with the config to write', () => {
  const base = `model_list:${vllm('a', 'a')}\nrouter_settings:\n`;
  const url = parse(`${base}  redis_url: os.environ/REDIS_URL\n  redis_host: cache\n`);
  assert.deepEqual(url.config.gateway.redis, { url: { env: 'REDIS_URL' }, prefix: 'fabric' });
  assert.match(url.warnings.get('router_settings.redis_host')!, /ignored: router_settings\.redis_url is set/);
  assert.match(roundTrip(`${base}  redis_url: os.environ/REDIS_URL\n`).yaml, /# router_settings\.redis_url: shared by every gateway instance: rate limits and budget holds.*\n {2}redis:\n {4}url: env:REDIS_URL/);

  const open = parse(`${base}  redis_host: cache.lan\n  redis_port: 6379\n`);
  assert.deepEqual(open.config.gateway.redis, { url: { env: 'REDIS_URL' }, prefix: 'fabric' });
  assert.equal(open.literals.get('REDIS_URL'), 'redis://cache.lan:6379');
  assert.match(open.warnings.get('router_settings.redis_host')!, /put REDIS_URL=redis:\/\/cache\.lan:6379 in the environment or the \.env file/);
  assert.match(open.warnings.get('router_settings.redis_host')!, /LiteLLM would also take a password from REDIS_PASSWORD: a server that needs one has it in the URL/);
  roundTrip(`${base}  redis_host: cache.lan\n  redis_port: 6379\n`);

  const secret = parse(`${base}  redis_host: cache.lan\n  redis_port: "6380"\n  redis_password: "p@ss-LITERAL"\n`);
  assert.equal(secret.literals.get('REDIS_URL'), 'redis://:p%40ss-LITERAL@cache.lan:6380');
  assert.match(secret.warnings.get('router_settings.redis_password')!, /holds a secret literally: .* env:REDIS_URL .*redis:\/\/:<password>@cache\.lan:6380/);
  for (const i of secret.issues) assert.ok(!i.message.includes('LITERAL'));
  assert.ok(!importLiteLLMText(`${base}  redis_host: cache.lan\n  redis_port: 6380\n  redis_password: p-LITERAL\n`, FILE, {}).yaml.includes('LITERAL'));

  const parts = parse(`${base}  redis_host: 127.0.0.1\n  redis_port: 6379\n  redis_password: os.environ/REDIS_PASSWORD\n`);
  assert.equal(parts.config.gateway.redis, undefined);
  assert.match(parts.warnings.get('router_settings.redis_host')!,
    /not mapped: .*set REDIS_URL=redis:\/\/:<REDIS_PASSWORD>@127\.0\.0\.1:6379 \(each <NAME> replaced by its value.*write gateway\.redis: \{ url: env:REDIS_URL \}.*until then each gateway process keeps its own/);
  assert.match(parts.warnings.get('router_settings.redis_password')!, /part of the one Redis URL/);

  const half = parse(`${base}  redis_host: cache\n`);
  assert.equal(half.config.gateway.redis, undefined);
  assert.match(half.warnings.get('router_settings.redis_host')!, /ignored, as by LiteLLM: it uses Redis only with both redis_host and redis_port/);
});

/** gateway.cache as the schema reads it, with the sizes left at their defaults. */
const cached = (ttlS: number, store: 'memory' | 'redis') => ({ ttlMs: ttlS * 1000, when: 'always', scope: 'shared', store, maxSizeBytes: 64 * 2 ** 20, maxEntryBytes: 2 ** 20 });

test('litellm_settings.cache: true becomes gateway.cache: every answer (when: always), shared by every caller, for LiteLLM\'s ttl', () => {
  const models = `model_list:${vllm('a', 'a')}\n`;
  // The proxy's default type is redis, connected from REDIS_* in its environment; its Redis entries live 60s.
  const bare = `${models}litellm_settings:\n  cache: true\n`;
  const p = parse(bare);
  assert.deepEqual(p.config.gateway.cache, cached(60, 'memory'));
  assert.equal(p.config.gateway.redis, undefined);
  assert.equal(p.warnings.get('litellm_settings.cache'), 'LiteLLM\'s Redis cache connects to REDIS_URL (or REDIS_HOST, REDIS_PORT, REDIS_PASSWORD) in its environment, which the gateway does not read: ' +
    'the cache is kept in each gateway process\'s memory until gateway.redis is set (redis: { url: env:REDIS_URL }), then in Redis, shared by every instance');
  assert.equal(p.warnings.size, 1);
  const { yaml } = roundTrip(bare);
  assert.match(yaml, /\n {2}# litellm_settings\.cache: LiteLLM keeps every answer, sampled ones too \(when: always\), for every caller alike \(scope: shared\)\. Clients skip or refresh it as with LiteLLM \("cache": \{"no-cache": true\} in the body; no-store, s-maxage, ttl too\) or with the Cache-Control header\n {2}# no store: in memory until gateway\.redis is set, then in Redis\n {2}cache:\n {4}# no ttl: 60s, LiteLLM's default for a Redis cache\n {4}ttl: 60s\n {4}when: always\n {4}scope: shared\n\n/);

  // local: this process's memory (written out, so a gateway.redis for rate limits does not move it); 600s unless a ttl says otherwise.
  const local = parse(`${models}litellm_settings:\n  cache: true\n  cache_params: { type: local }\nrouter_settings:\n  redis_url: os.environ/REDIS_URL\n`);
  assert.deepEqual(local.config.gateway.cache, cached(600, 'memory'));
  assert.deepEqual(local.config.gateway.redis, { url: { env: 'REDIS_URL' }, prefix: 'fabric' });
  assert.equal(local.warnings.size, 0);
  assert.match(roundTrip(`${models}litellm_settings:\n  cache: true\n  cache_params: { type: local, ttl: 300 }\n`).yaml, / {2}cache:\n {4}ttl: 300s\n {4}when: always\n {4}scope: shared\n {4}store: memory\n/);

  // default_in_memory_ttl wins for a local cache, default_in_redis_ttl for a Redis one, as in LiteLLM.
  const ttls = parse(`${models}litellm_settings:\n  cache: true\n  cache_params: { type: local, ttl: 30, default_in_memory_ttl: 120, default_in_redis_ttl: 5 }\n`);
  assert.equal(ttls.config.gateway.cache!.ttlMs, 120_000);
  assert.equal(ttls.warnings.get('litellm_settings.cache_params.ttl'), 'ignored: default_in_memory_ttl is set too and takes precedence, as in LiteLLM');
  assert.equal(ttls.warnings.get('litellm_settings.cache_params.default_in_redis_ttl'), 'ignored, as by LiteLLM: it applies to a Redis cache only');
  const short = parse(`${models}litellm_settings:\n  cache: true\n  cache_params: { type: local, ttl: 0.25 }\n`);
  assert.equal(short.config.gateway.cache!.ttlMs, 1000);
  assert.equal(short.warnings.get('litellm_settings.cache_params.ttl'), '0.25s is shorter than the gateway keeps an answer: 1s');
  const bad = parse(`${models}litellm_settings:\n  cache: true\n  cache_params: { type: local, ttl: soon }\n`);
  assert.equal(bad.config.gateway.cache!.ttlMs, 600_000);
  assert.equal(bad.warnings.get('litellm_settings.cache_params.ttl'), 'must be a number of seconds, got string "soon"; ignored');

  for (const off of ['  cache: false\n', '']) {
    const none = parse(`${models}litellm_settings:\n${off}  cache_params: { type: redis, host: cache }\n`);
    assert.equal(none.config.gateway.cache, undefined);
    assert.equal(none.config.gateway.redis, undefined, 'no Redis for a cache that is off');
    assert.equal(none.warnings.get('litellm_settings.cache_params'), 'ignored without litellm_settings.cache: true, as in LiteLLM');
  }
  assert.equal(parse(`${models}litellm_settings:\n  cache: "yes"\n`).warnings.get('litellm_settings.cache'), 'must be true or false, got string "yes"; ignored');
});

test('cache_params type redis: the server it names becomes gateway.redis, as router_settings\' would; router_settings\' wins, the gateway having one Redis', () => {
  const models = `model_list:${vllm('a', 'a')}\n`;
  const cache = (params: string, router = '') => `${models}litellm_settings:\n  cache: true\n  cache_params: { type: redis, ${params} }\n${router === '' ? '' : `router_settings:\n${router}`}`;

  const secret = parse(cache('host: cache.lan, port: 6380, password: "p@ss-LITERAL", ttl: 600'));
  assert.deepEqual(secret.config.gateway.cache, cached(600, 'redis'));
  assert.deepEqual(secret.config.gateway.redis, { url: { env: 'REDIS_URL' }, prefix: 'fabric' });
  assert.equal(secret.literals.get('REDIS_URL'), 'redis://:p%40ss-LITERAL@cache.lan:6380', 'held for serving');
  assert.match(secret.warnings.get('litellm_settings.cache_params.password')!,
    /^holds a secret literally: host, port and password are used as one URL, env:REDIS_URL .*put REDIS_URL=redis:\/\/:<password>@cache\.lan:6380 in the environment or the \.env file and write url: os\.environ\/REDIS_URL instead of the three$/);
  assert.equal(secret.warnings.size, 1);
  for (const i of secret.issues) assert.ok(!i.message.includes('LITERAL'), 'no message repeats the password');
  const { yaml } = roundTrip(cache('host: cache.lan, port: 6380, password: "p@ss-LITERAL", ttl: 600'));
  assert.ok(!yaml.includes('LITERAL'), 'the imported file never holds the password');
  assert.match(yaml, /# litellm_settings\.cache_params\.host\/port\/password as one URL: the response cache's Redis, shared by every gateway instance; rate limits and budget holds use it too\n {2}redis:\n {4}url: env:REDIS_URL\n/);
  assert.match(yaml, / {2}cache:\n {4}ttl: 600s\n {4}when: always\n {4}scope: shared\n {4}# in gateway\.redis, shared by every gateway instance\n {4}store: redis\n/);

  // No port: redis-py's 6379.
  const host = parse(cache('host: cache.lan'));
  assert.equal(host.literals.get('REDIS_URL'), 'redis://cache.lan:6379');
  assert.deepEqual(host.config.gateway.cache, cached(60, 'redis'));
  assert.match(host.warnings.get('litellm_settings.cache_params.host')!, /^used with port as one URL, env:REDIS_URL = redis:\/\/cache\.lan:6379 .*put REDIS_URL=redis:\/\/cache\.lan:6379 in the environment or the \.env file/);
  assert.match(roundTrip(cache('host: cache.lan')).yaml, /# litellm_settings\.cache_params\.host as one URL \(port 6379, redis-py's default\): the response cache's Redis/);

  const url = parse(cache('url: os.environ/CACHE_REDIS_URL, host: ignored.lan, namespace: "{unified}", ssl: true'));
  assert.deepEqual(url.config.gateway.redis, { url: { env: 'CACHE_REDIS_URL' }, prefix: 'fabric' });
  assert.equal(url.config.gateway.cache!.store, 'redis');
  assert.deepEqual(Object.fromEntries(url.warnings), {
    'litellm_settings.cache_params.host': 'ignored: litellm_settings.cache_params.url is set, and LiteLLM connects with it',
    'litellm_settings.cache_params.namespace': 'not carried over: the gateway keeps its entries under <gateway.redis.prefix>:cache: (prefix fabric unless set), apart from LiteLLM\'s; ' +
      'entries name their route and its backends, so fabrics sharing a Redis never mix answers (the prefix, which rate limits share, keeps them apart)',
    'litellm_settings.cache_params.ssl': 'not carried over; ignored (gateway.redis takes only a URL: TLS, a user and a database go in it, as rediss://user:password@host:port/db)',
  });

  // os.environ/ parts: no URL can be written; the cache stays in memory until gateway.redis is.
  const parts = parse(cache('host: os.environ/REDIS_HOST, port: 6379, password: os.environ/REDIS_PASSWORD'));
  assert.equal(parts.config.gateway.redis, undefined);
  assert.deepEqual(parts.config.gateway.cache, cached(60, 'memory'));
  assert.match(parts.warnings.get('litellm_settings.cache_params.host')!,
    /^not mapped: .*To share the response cache, rate limits and budgets across gateway instances, set REDIS_URL=redis:\/\/:<REDIS_PASSWORD>@<REDIS_HOST>:6379 .*\(or litellm_settings\.cache_params\.url: os\.environ\/REDIS_URL\); until then each gateway process keeps its own$/);
  assert.equal(parts.warnings.get('litellm_settings.cache_params.password'), 'not mapped: part of the one Redis URL the gateway takes; see litellm_settings.cache_params.host');
  roundTrip(cache('host: os.environ/REDIS_HOST, port: 6379, password: os.environ/REDIS_PASSWORD'));

  // router_settings names the gateway's Redis: the cache is kept there; another server in cache_params is reported.
  const router = parse(cache('host: other.lan, port: 6379', '  redis_url: os.environ/REDIS_URL\n'));
  assert.deepEqual(router.config.gateway.redis, { url: { env: 'REDIS_URL' }, prefix: 'fabric' });
  assert.deepEqual(router.config.gateway.cache, cached(60, 'redis'));
  assert.equal(router.warnings.get('litellm_settings.cache_params.host'), 'not mapped: the gateway has one Redis, router_settings\', and keeps the cache there too, where LiteLLM used this server');
  assert.equal(router.warnings.get('litellm_settings.cache_params.port'), 'not mapped: see litellm_settings.cache_params.host');
  assert.equal(router.literals.size, 0);
  const same = parse(cache('host: cache.lan, port: 6379', '  redis_host: cache.lan\n  redis_port: 6379\n'));
  assert.deepEqual(same.config.gateway.cache, cached(60, 'redis'));
  assert.deepEqual([...same.warnings.keys()], ['router_settings.redis_host'], 'the same server: only the router\'s URL to set is reported');
  // The router's Redis named with os.environ/ parts is not mapped: neither is the cache's, the same server.
  const unmapped = parse(cache('host: 127.0.0.1, port: 6379', '  redis_host: 127.0.0.1\n  redis_port: 6379\n  redis_password: os.environ/REDIS_PASSWORD\n'));
  assert.equal(unmapped.config.gateway.redis, undefined);
  assert.deepEqual(unmapped.config.gateway.cache, cached(60, 'memory'));
  assert.match(unmapped.warnings.get('litellm_settings.cache_params.type')!, /^LiteLLM keeps it in Redis, and the gateway's is router_settings', which is not mapped \(see router_settings\.redis_host\)/);
  assert.ok(!unmapped.warnings.has('litellm_settings.cache_params.host'));
});

test('cache_params mode, type and supported_call_types: what LiteLLM would not cache is not cached', () => {
  const models = `model_list:${vllm('a', 'a')}
  - model_name: e
    litellm_params: { model: hosted_vllm/bge, api_base: "http://e:1/v1" }
    model_info: { mode: embedding }
`;
  const cache = (params: string) => `${models}litellm_settings:\n  cache: true\n  cache_params: { ${params} }\n`;

  // Opt-in only: no request asks, so nothing is cached; turning it on would give answers to requests that never asked.
  for (const [mode, lead] of [['default_off', ''], ['sometimes', '"sometimes" is not default_on: ']] as const) {
    const p = parse(cache(`type: redis, host: cache.lan, port: 6379, mode: ${mode}`));
    assert.equal(p.config.gateway.cache, undefined);
    assert.equal(p.config.gateway.redis, undefined);
    assert.deepEqual(Object.fromEntries(p.warnings), {
      'litellm_settings.cache_params.mode': `${lead}LiteLLM then caches only requests that opt in ("cache": {"use-cache": true} in the body), ` +
        'and the gateway has no per-request opt-in: the response cache is left off. To cache every answer, write gateway.cache: { when: always, scope: shared }',
    });
  }
  assert.deepEqual(parse(cache('type: local, mode: default_on')).config.gateway.cache, cached(600, 'memory'));

  const semantic = parse(cache('type: redis-semantic, host: cache.lan, port: 6379, similarity_threshold: 0.8'));
  assert.deepEqual(semantic.config.gateway.cache, cached(600, 'memory'));
  assert.equal(semantic.config.gateway.redis, undefined);
  assert.equal(semantic.warnings.get('litellm_settings.cache_params.type'), 'not supported: the gateway has no semantic cache (redis-semantic); it keeps answers for identical requests only, in each process\'s memory');
  assert.equal(semantic.warnings.get('litellm_settings.cache_params.similarity_threshold'), 'not carried over: it configures LiteLLM\'s redis-semantic cache; ignored');
  assert.equal(semantic.warnings.get('litellm_settings.cache_params.host'), 'not carried over: it configures LiteLLM\'s redis-semantic cache; ignored');
  const s3 = parse(cache('type: s3, s3_bucket_name: answers, ttl: 3600'));
  assert.deepEqual(s3.config.gateway.cache, cached(3600, 'memory'));
  assert.equal(s3.warnings.get('litellm_settings.cache_params.type'), 'not supported: the gateway keeps answers in memory or in gateway.redis, not s3; here in each process\'s memory, lost on restart');
  const unknown = parse(cache('type: memcached'));
  assert.equal(unknown.config.gateway.cache, undefined);
  assert.match(unknown.warnings.get('litellm_settings.cache_params.type')!, /^"memcached" is not a LiteLLM cache type .*: LiteLLM keeps nothing with it, so the response cache is left off$/);

  // The proxy checks its async calls' names: aembedding left out turns the cache off for embeddings roles.
  const noEmbed = `${models}  - model_name: "emb/*"
    litellm_params: { model: "hosted_vllm/emb/*", api_base: "http://p:1/v1" }
    model_info: { mode: embedding }
litellm_settings:
  cache: true
  cache_params: { type: local, supported_call_types: [acompletion, atext_completion, embedding] }
`;
  const p = parse(noEmbed);
  assert.deepEqual(p.config.gateway.cache, cached(600, 'memory'));
  assert.deepEqual([p.config.roles.get('a')!.cache, p.config.roles.get('e')!.cache], [undefined, false]);
  assert.deepEqual(Object.fromEntries(p.warnings), {
    'litellm_settings.cache_params.supported_call_types': 'not supported for wildcard model_names (emb/*): a pattern route cannot turn the cache off, so their embeddings answers are kept',
  });
  assert.match(roundTrip(noEmbed).yaml, / {2}e:\n {4}kind: embeddings\n {4}backends: \[e\]\n {4}# supported_call_types leaves out aembedding \(the proxy's calls for embeddings\): not cached\n {4}cache: false\n/);
  const chatOff = parse(cache('type: local, supported_call_types: [aembedding]'));
  assert.deepEqual([chatOff.config.roles.get('a')!.cache, chatOff.config.roles.get('e')!.cache], [false, undefined]);
  const half = parse(cache('type: local, supported_call_types: [acompletion, aembedding]'));
  assert.deepEqual([half.config.roles.get('a')!.cache, half.config.roles.get('e')!.cache], [undefined, undefined]);
  assert.equal(half.warnings.get('litellm_settings.cache_params.supported_call_types'), 'leaves out atext_completion, but a role\'s /chat/completions and /completions answers are cached alike: both are cached');
  for (const list of ['[atranscription]', '[completion, embedding]']) {
    const none = parse(cache(`type: local, supported_call_types: ${list}`));
    assert.equal(none.config.gateway.cache, undefined, list);
    assert.match(none.warnings.get('litellm_settings.cache_params.supported_call_types')!, /^lists none of acompletion, atext_completion, aembedding, arerank .*the SDK's sync names do not cover them\): LiteLLM caches none of what the gateway serves, so the response cache is left off$/);
  }
  // Reranking is LiteLLM's arerank: a list without it caches no rerank role; one with it alone keeps the cache for them.
  const withRerank = `${models}  - model_name: r
    litellm_params: { model: hosted_vllm/BAAI/bge-reranker-v2-m3, api_base: "http://r:1/v1" }
    model_info: { mode: rerank }
`;
  const rerankCache = (params: string) => `${withRerank}litellm_settings:\n  cache: true\n  cache_params: { ${params} }\n`;
  const noRerank = parse(rerankCache('type: local, supported_call_types: [acompletion, atext_completion, aembedding]'));
  assert.deepEqual(['a', 'e', 'r'].map((n) => noRerank.config.roles.get(n)!.cache), [undefined, undefined, false]);
  assert.match(roundTrip(rerankCache('type: local, supported_call_types: [acompletion, atext_completion, aembedding]')).yaml, /# supported_call_types leaves out arerank \(the proxy's calls for rerank\): not cached\n {4}cache: false\n/);
  const onlyRerank = parse(rerankCache('type: local, supported_call_types: [arerank]'));
  assert.deepEqual(onlyRerank.config.gateway.cache, cached(600, 'memory'));
  assert.deepEqual(['a', 'e', 'r'].map((n) => onlyRerank.config.roles.get(n)!.cache), [false, false, undefined]);
});

test('router_settings.cache_responses: LiteLLM\'s Router cache, in router_settings\' Redis or in memory; caching_groups is reported', () => {
  const models = `model_list:${vllm('a', 'a')}\n`;
  const local = parse(`${models}router_settings:\n  cache_responses: true\n  caching_groups: [[a, b]]\n`);
  assert.deepEqual(local.config.gateway.cache, cached(600, 'memory'));
  assert.match(local.warnings.get('router_settings.caching_groups')!, /model_names in one caching group do not share answers/);
  assert.equal(local.warnings.size, 1);
  const redis = `${models}router_settings:\n  cache_responses: true\n  redis_url: os.environ/REDIS_URL\n`;
  assert.deepEqual(parse(redis).config.gateway.cache, cached(60, 'redis'));
  assert.match(roundTrip(redis).yaml, /# router_settings\.cache_responses: LiteLLM keeps every answer/);
  const both = `${models}litellm_settings:\n  cache: true\n  cache_params: { type: local, ttl: 30 }\nrouter_settings:\n  cache_responses: true\n  redis_url: os.environ/REDIS_URL\n`;
  assert.deepEqual(parse(both).config.gateway.cache, cached(30, 'memory'), 'litellm_settings\' cache is the one the Router keeps');
  assert.match(roundTrip(both).yaml, /# router_settings\.cache_responses is on too: LiteLLM's Router keeps the cache litellm_settings made\n {2}cache:/);
  assert.equal(parse(`${models}router_settings:\n  cache_responses: false\n`).config.gateway.cache, undefined);
});

test('input_cost_per_token / output_cost_per_token become prices in USD per 1M tokens', () => {
  const p = parse(`model_list:
  - model_name: strong
    litellm_params: { model: gpt-4.1-mini }
    model_info: { input_cost_per_token: 0.0000004, output_cost_per_token: "0.0000016" }
  - model_name: custom
    litellm_params: { model: hosted_vllm/m, api_base: "http://c:1/v1", input_cost_per_token: 0.0000002, output_cost_per_token: 0.0000006 }
    model_info: { input_cost_per_token: 0.0000009 }
  - model_name: embed
    litellm_params: { model: hosted_vllm/bge, api_base: "http://e:1/v1", input_cost_per_token: 0.00000002 }
    model_info: { mode: embedding }
  - model_name: pair
    litellm_params: { model: hosted_vllm/m, api_base: "http://p:1/v1", input_cost_per_token: 0.000001 }
  - model_name: pair
    litellm_params: { model: hosted_vllm/m, api_base: "http://p:1/v1", input_cost_per_token: 0.000002 }
  - model_name: bad
    litellm_params: { model: hosted_vllm/m, api_base: "http://b:1/v1", input_cost_per_token: cheap }
`);
  assert.deepEqual(p.errors, []);
  const price = (n: string) => p.config.prices.get(n);
  assert.deepEqual(price('strong'), { input: 0.4, output: 1.6, gpuHour: undefined, audioMinute: undefined });
  assert.deepEqual(price('custom'), { input: 0.2, output: 0.6, gpuHour: undefined, audioMinute: undefined }, 'litellm_params wins over model_info');
  assert.match(p.warnings.get('model_list[1].model_info.input_cost_per_token')!, /ignored: litellm_params\.input_cost_per_token \(0\.0000002\) is set too and is the price LiteLLM charges/);
  assert.deepEqual(price('embed'), { input: 0.02, output: 0, gpuHour: undefined, audioMinute: undefined }, 'a side not given costs nothing');
  assert.deepEqual(p.config.roles.get('pair')!.backends, ['pair', 'pair-2'], 'deployments that cost differently stay two backends');
  assert.deepEqual([price('pair')!.input, price('pair-2')!.input], [1, 2]);
  assert.equal(price('bad'), undefined);
  assert.match(p.warnings.get('model_list[5].litellm_params.input_cost_per_token')!, /must be a cost in US dollars per token.*ignored/);

  const { yaml } = roundTrip(`model_list:
  - model_name: strong
    litellm_params: { model: gpt-4.1-mini }
    model_info: { input_cost_per_token: 0.0000004, output_cost_per_token: 0.0000016 }
`);
  assert.match(yaml, /prices:\n {2}# model_list\[0\] \(strong\): USD per 1M tokens: model_info\.input_cost_per_token 0\.0000004 → 0\.4; .*\n {2}strong: \{input: 0\.4, output: 1\.6\}/);
});

test('provider_budget_config becomes budgets over the provider\'s backends, with LiteLLM\'s periods mapped', () => {
  const models = `model_list:
  - model_name: cloud
    litellm_params: { model: gpt-4o-mini }
  - model_name: local-chat
    litellm_params: { model: openai/qwen, api_base: "http://armitage:8000/v1" }
${vllm('coder', 'lab', ', input_cost_per_token: 0.0000001')}
  - model_name: llama
    litellm_params: { model: ollama_chat/llama3.1:8b }
`;
  const p = parse(`${models}router_settings:
  provider_budget_config:
    openai: { budget_limit: 150, time_period: 30d }
    hosted_vllm: { budget_limit: 10, time_period: 10d }
    ollama_chat: { max_budget: 1, budget_duration: 24h }
    azure: { budget_limit: 100, time_period: 1d }
    ollama: { budget_limit: 5, time_period: 1d }
`);
  assert.deepEqual(p.errors, []);
  assert.deepEqual(p.config.budgets, [
    { name: 'openai', amount: 150, period: 'month', backends: ['cloud'], fallback: undefined },
    { name: 'hosted_vllm', amount: 7, period: 'week', backends: ['coder'], fallback: undefined },
    { name: 'ollama_chat', amount: 1, period: 'day', backends: ['llama'], fallback: undefined },
  ]);
  assert.match(p.warnings.get('router_settings.provider_budget_config.openai')!, /covers OpenAI's own backends \(engines: \[openai\]\)\. LiteLLM counts openai\/ deployments with an api_base \(local-chat\)/);
  assert.match(p.warnings.get('router_settings.provider_budget_config.hosted_vllm.time_period')!, /10d has no native period \(day, week, month\): written as \$7 per week, the same rate, where LiteLLM allows \$10 per 10d/);
  assert.match(p.warnings.get('router_settings.provider_budget_config.azure')!, /no deployment the gateway serves uses provider azure\/; ignored/);
  assert.match(p.warnings.get('router_settings.provider_budget_config.ollama')!, /no deployment the gateway serves uses provider ollama\//, 'ollama/ and ollama_chat/ are two LiteLLM providers');
  assert.equal(p.warnings.size, 4);

  const { yaml } = roundTrip(`${models}router_settings:\n  provider_budget_config:\n    openai: { budget_limit: 150, time_period: 30d }\n    ollama_chat: { budget_limit: 1, time_period: 1d }\n`);
  assert.match(yaml, /budgets:\n {2}# router_settings\.provider_budget_config\.openai: \$150 per 30d\n {2}# no fallback: LiteLLM has none for a spent budget\..*e\.g\. fallback: local-chat\)\n {2}openai:\n {4}amount: 150\n {4}# 30d: a UTC calendar month \(from the 1st\), where LiteLLM counts 30d from the budget's first spend\n {4}period: month\n {4}# OpenAI's own backends; not local-chat .*\n {4}engines: \[openai\]/);
  assert.match(yaml, /# llama: no input_cost_per_token, so their requests cost \$0 and do not count, as in LiteLLM\n {4}backends: \[llama\]/);

  const bad = parse(`${models}router_settings:
  provider_budget_config:
    openai: { budget_limit: 0, time_period: 1d }
    hosted_vllm: { budget_limit: 10 }
    ollama_chat: { budget_limit: 10, time_period: monthly, tpm_limit: 5 }
`);
  assert.deepEqual(bad.config.budgets, []);
  assert.match(bad.warnings.get('router_settings.provider_budget_config.openai')!, /has no budget_limit above 0: LiteLLM enforces none; left out/);
  assert.match(bad.warnings.get('router_settings.provider_budget_config.hosted_vllm')!, /has no time_period: LiteLLM does not check a budget without one; left out/);
  assert.match(bad.warnings.get('router_settings.provider_budget_config.ollama_chat.time_period')!, /"monthly" is not a LiteLLM duration.*left out/);
  assert.match(bad.warnings.get('router_settings.provider_budget_config.ollama_chat.tpm_limit')!, /not supported in a provider budget/);
  assert.match(parse(`${models}router_settings:\n  provider_budget_config: [openai]\n`).errors.map(formatIssue).join(), /provider_budget_config: must be a mapping of provider/);
});

test('LiteLLM durations map to day, week and month; other lengths keep their rate', () => {
  const m = (v: unknown) => {
    const x = mapPeriod(v);
    return x === undefined ? undefined : [x.period, x.sameLength, Number(x.scale.toPrecision(6))];
  };
  assert.deepEqual(m('1d'), ['day', true, 1]);
  assert.deepEqual(m('24h'), ['day', true, 1]);
  assert.deepEqual(m('7d'), ['week', true, 1]);
  assert.deepEqual(m('1w'), ['week', true, 1]);
  assert.deepEqual(m('30d'), ['month', true, 1]);
  assert.deepEqual(m('1mo'), ['month', true, 1]);
  assert.deepEqual(m('2mo'), ['month', false, 0.5]);
  assert.deepEqual(m('2d'), ['day', false, 0.5]);
  assert.deepEqual(m('12h'), ['day', false, 2]);
  assert.deepEqual(m('14d'), ['week', false, 0.5]);
  assert.deepEqual(m('90d'), ['month', false, 0.333333]);
  for (const v of ['monthly', '30', 30, '0d', '', null]) assert.equal(m(v), undefined, String(v));
});

test('the proxy-wide max_budget is reported with the budget that comes closest', () => {
  const models = `model_list:
  - model_name: cloud
    litellm_params: { model: gpt-4o-mini }
${vllm('local', 'a')}
${vllm('priced', 'b', ', input_cost_per_token: 0.000001')}
`;
  const p = parse(`${models}litellm_settings:\n  max_budget: 100\n  budget_duration: 30d\n`);
  assert.deepEqual(p.config.budgets, []);
  assert.match(p.warnings.get('litellm_settings.max_budget')!,
    /not supported yet: the gateway has no proxy-wide budget\. LiteLLM refuses every request once the proxy has spent \$100 per 30d; .*write budgets: \{ proxy: \{ amount: 100, period: month, backends: \[cloud, priced\] \} \}/);
  assert.match(p.warnings.get('litellm_settings.budget_duration')!, /the period of litellm_settings\.max_budget/);
  const off = parse(`${models}litellm_settings:\n  max_budget: 0\n  budget_duration: 1d\n`);
  assert.ok(!off.warnings.has('litellm_settings.max_budget'));
  assert.match(off.warnings.get('litellm_settings.budget_duration')!, /ignored without litellm_settings\.max_budget/);
  assert.match(importLiteLLMText(`${models}litellm_settings:\n  max_budget: 0\n`, FILE, {}).yaml, /litellm_settings\.max_budget: 0 turns LiteLLM's proxy budget off/);
  assert.match(parse(`${models}litellm_settings:\n  max_end_user_budget: 5\n`).warnings.get('litellm_settings.max_end_user_budget')!, /no end users; budgets are per key/);
});

test('Ollama deployments: num_ctx becomes the context_window (sent back as num_ctx), keep_alive the backend\'s; elsewhere both are reported', () => {
  const text = `
model_list:
  - model_name: chat
    litellm_params: { model: ollama_chat/qwen2.5:7b, api_base: "http://lab:11434", num_ctx: 16384, keep_alive: -1 }
    model_info: { max_input_tokens: 32768 }
  - model_name: gen
    litellm_params: { model: ollama/llama3.1:8b, api_base: "http://lab:11435", keep_alive: 600 }
  - model_name: odd
    litellm_params: { model: ollama/llama3.2, api_base: "http://lab:11436", keep_alive: soon, num_ctx: big }
  - model_name: vllm
    litellm_params: { model: hosted_vllm/m, api_base: "http://box:8000/v1", num_ctx: 4096, keep_alive: 10m }
`;
  const { config, warnings } = ok(text);
  const b = (n: string) => config.backends.get(n)!;
  assert.deepEqual([b('chat').contextWindow, b('chat').keepAliveSeconds], [16384, -1]);
  assert.equal(b('gen').keepAliveSeconds, 600);
  assert.deepEqual([b('odd').contextWindow, b('odd').keepAliveSeconds], [undefined, undefined]);
  assert.match(warnings.get('model_list[2].litellm_params.keep_alive') ?? '', /number of seconds or a duration/);
  assert.match(warnings.get('model_list[2].litellm_params.num_ctx') ?? '', /whole number of tokens/);
  assert.ok(warnings.has('model_list[3].litellm_params.num_ctx') && warnings.has('model_list[3].litellm_params.keep_alive'), [...warnings.keys()].join(', '));
  assert.equal(b('vllm').contextWindow, undefined);
  roundTrip(text);
});

test('audio_transcription deployments (and whisper models named so) become transcription roles, and go back as such', () => {
  const text = `model_list:
  - model_name: audio-transcribe
    litellm_params: { model: hosted_vllm/openai/whisper-large-v3, api_base: "http://motoko:8300/v1" }
    model_info: { mode: audio_transcription }
  - model_name: whisper-1
    litellm_params: { model: openai/whisper-1, api_key: os.environ/OPENAI_API_KEY }
    model_info: { input_cost_per_second: 0.0001 }
${vllm('chat', 'a')}
`;
  const p = ok(text, { OPENAI_API_KEY: 'sk-x' });
  assert.equal(p.config.roles.get('audio-transcribe')!.kind, 'transcription');
  assert.equal(p.config.roles.get('whisper-1')!.kind, 'transcription', 'by its name, as LiteLLM itself guesses');
  assert.equal(p.config.roles.get('chat')!.kind, 'chat');
  // LiteLLM's price of a second of audio, as the fabric's price of a minute.
  const whisper = p.config.roles.get('whisper-1')!.backends[0]!;
  assert.deepEqual(p.config.prices.get(whisper), { input: 0, output: 0, gpuHour: undefined, audioMinute: 0.006 });
  assert.equal([...p.warnings.keys()].some((k) => k.includes('input_cost_per_second')), false, 'taken, not warned of');
  const { config } = roundTrip(text, { OPENAI_API_KEY: 'sk-x' });
  assert.equal(config.roles.get('audio-transcribe')!.kind, 'transcription');
});

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync, chmodSync } from 'node:fs';
import { join, relative } from 'node:path';
import { loadFabricConfig } from './load.ts';
import { ConfigError, formatIssue } from './issues.ts';
import { configFiles } from '../../test/support/config-files.ts';

const { file, errorsOf } = configFiles('fabric-config-');

const MINIMAL = `version: 1
backends:
  a:
    engine: vllm
    url: http://127.0.0.1:8000/v1
    model: m
roles:
  chat-fast:
    kind: chat
    backends: [a]
`;

test('the seeds example is valid and reproduces their fabric', () => {
  const { config } = loadFabricConfig(new URL('../../examples/seeds.fabric.yaml', import.meta.url).pathname, {});
  assert.deepEqual([...config.roles.keys()], ['chat-fast', 'chat-deep', 'embeddings-general', 'openai/strong', 'openai/cheap']);
  assert.equal(config.backends.get('armitage-qwen')!.model, 'Qwen/Qwen2.5-7B-Instruct-AWQ');
  assert.equal(config.backends.get('armitage-qwen')!.node, 'armitage');
  assert.equal(config.backends.get('wintermute-llama')!.model, 'casperhansen/llama-3-8b-instruct-awq');
  assert.equal(config.backends.get('motoko-bge')!.url, 'http://motoko.pangolin-vega.ts.net:8200/v1');
  assert.equal(config.roles.get('embeddings-general')!.dimensions, 768);
  assert.deepEqual(config.roles.get('chat-fast')!.fallbacks, ['chat-deep', 'openai/strong']);
  assert.deepEqual(config.roles.get('chat-fast')!.rules, [{ inputTokensOver: 12000, routeTo: 'openai/strong' }]);
  assert.equal(config.nodes.get('wintermute')!.power, 'workstation');
  assert.equal(config.nodes.get('motoko')!.gpus[0]!.memoryBytes, 8 * 1024 ** 3);
  assert.deepEqual(config.backends.get('openai-strong')!.apiKey, { env: 'OPENAI_API_KEY' });
});

test('a minimal config gets defaults', () => {
  const { config } = loadFabricConfig(file(MINIMAL), {});
  const b = config.backends.get('a')!;
  assert.equal(b.timeouts.connectMs, 3000);
  assert.equal(config.gateway.port, 4000);
  assert.equal(config.roles.get('chat-fast')!.strategy, 'round-robin');
});

test('unknown keys are named with their line and a suggestion', () => {
  const errs = errorsOf(file(MINIMAL.replace('    backends: [a]', '    backends: [a]\n    fallback: [x]')));
  assert.equal(errs.length, 1);
  assert.match(errs[0]!, /fabric\.yaml:11:5: error: roles\.chat-fast\.fallback: unknown key \(did you mean "fallbacks"\?\)/);
});

test('every error is reported, each with file, line and key path', () => {
  const text = `backends:
  a:
    engine: vllmm
    url: ftp://x
    model: m
    timeouts: { connect: soon }
roles:
  chat-fast:
    kind: chat
    backends: [a, b]
    fallbacks: [chat-slow]
`;
  const errs = errorsOf(file(text));
  const joined = errs.join('\n');
  assert.match(joined, /:3:13: error: backends\.a\.engine: must be one of .* \(did you mean "vllm"\?\)/);
  assert.match(joined, /:4:10: error: backends\.a\.url: must be an http:\/\/ or https:\/\/ URL/);
  assert.match(joined, /:6:26: error: backends\.a\.timeouts\.connect: must be a duration/);
  assert.match(joined, /:10:19: error: roles\.chat-fast\.backends\[1\]: names a backend that is not defined: "b"/);
  assert.match(joined, /:11:17: error: roles\.chat-fast\.fallbacks\[0\]: names no role or role alias: "chat-slow"/);
  assert.equal(errs.length, 5);
});

test('YAML syntax errors carry their line', () => {
  const errs = errorsOf(file('backends:\n  a: [unclosed\nroles: {}\n'));
  assert.match(errs[0]!, /fabric\.yaml:2:6: error: \(yaml\): the "\[" opened here/);
});

test('a literal secret is refused without echoing it', () => {
  const errs = errorsOf(file(MINIMAL.replace('    model: m', '    model: m\n    api_key: sk-live-abcdef123456')));
  assert.equal(errs.length, 1);
  assert.match(errs[0]!, /backends\.a\.api_key: must reference a secret, not contain it/);
  assert.doesNotMatch(errs[0]!, /sk-live/);
});

test('duplicate names across roles and aliases are refused', () => {
  const errs = errorsOf(file(MINIMAL + '    aliases: [chat-fast]\n'));
  assert.match(errs[0]!, /roles\.chat-fast\.aliases\[0\]: "chat-fast" is already used by role chat-fast/);
});

test('a fallback of the wrong kind is refused', () => {
  const text = MINIMAL + `    fallbacks: [emb]
  emb:
    kind: embeddings
    backends: [a]
`;
  const errs = errorsOf(file(text));
  assert.match(errs[0]!, /roles\.chat-fast\.fallbacks\[0\]: "emb" is a embeddings role but chat-fast is chat/);
});

test('secrets come from the environment or .env; a loose .env is warned about; an unset master key is an error', () => {
  const p = file(MINIMAL.replace('version: 1', 'version: 1\ngateway:\n  master_key: env:FABRIC_MASTER_KEY'));
  const errs = errorsOf(p);
  assert.match(errs[0]!, /gateway\.master_key: environment variable FABRIC_MASTER_KEY is not set/);
  const envPath = join(p, '..', '.env');
  writeFileSync(envPath, 'FABRIC_MASTER_KEY="topsecret-value-1"\n');
  chmodSync(envPath, 0o644);
  const loaded = loadFabricConfig(p, {});
  assert.equal(loaded.secrets.get('FABRIC_MASTER_KEY'), 'topsecret-value-1');
  const warn = loaded.issues.map(formatIssue).join('\n');
  assert.match(warn, /readable by group or others .*chmod 600/);
  assert.doesNotMatch(warn, /topsecret/);
  chmodSync(envPath, 0o600);
  assert.equal(loadFabricConfig(p, {}).issues.length, 0);
  // The environment wins over the file.
  assert.equal(loadFabricConfig(p, { FABRIC_MASTER_KEY: 'from-env' }).secrets.get('FABRIC_MASTER_KEY'), 'from-env');
});

test('an unset backend key is a warning, not an error', () => {
  const p = file(MINIMAL.replace('    model: m', '    model: m\n    api_key: env:ARMITAGE_KEY'));
  const { issues } = loadFabricConfig(p, {});
  assert.equal(issues.length, 1);
  assert.equal(issues[0]!.severity, 'warning');
  assert.match(issues[0]!.message, /ARMITAGE_KEY is not set/);
});

test('an unset variable is reported at the value that names it', () => {
  const text = MINIMAL.replace('version: 1', 'version: 1\ngateway:\n  master_key: env:MK\n  store: { url: env:PG_URL }')
    .replace('    model: m', '    model: m\n    api_key: { env: ARMITAGE_KEY }');
  const p = file(text);
  try {
    loadFabricConfig(p, {});
    assert.fail('an unset master key is an error');
  } catch (e) {
    const at = (path: string): string => {
      const i = (e as ConfigError).issues.find((x) => x.path === path);
      return `${i?.line}:${i?.col}`;
    };
    assert.equal(at('gateway.master_key'), '3:15');
    assert.equal(at('gateway.store.url'), '4:17');
    assert.equal(at('backends.a.api_key'), '10:21');
  }
  // Both forms of reference: env:NAME and { env: NAME }, with the same formatted line.
  const w = loadFabricConfig(file(MINIMAL.replace('    model: m', '    model: m\n    api_key: env:ARMITAGE_KEY')), {}).issues[0]!;
  assert.match(formatIssue(w), /fabric\.yaml:7:14: warning: backends\.a\.api_key: environment variable ARMITAGE_KEY is not set/);
  const missingEnv = errorsOf(file(MINIMAL.replace('version: 1', 'version: 1\ngateway:\n  env_file: secrets.env')));
  assert.match(missingEnv[0]!, /fabric\.yaml:3:13: error: gateway\.env_file: .*secrets\.env does not exist/);
});

test('issues name the file as it was given, not its absolute path', () => {
  const p = file(MINIMAL.replace('    model: m', '    model: m\n    api_key: env:ARMITAGE_KEY'));
  const rel = relative(process.cwd(), p);
  const { issues, config } = loadFabricConfig(rel, {});
  assert.equal(issues[0]!.file, rel);
  // Paths in the config still resolve beside it, wherever the process runs later.
  assert.equal(config.file, p);
  // A YAML syntax error and a file that cannot be read, too.
  const broken = relative(process.cwd(), file('backends: {a: [}\n'));
  assert.ok(errorsOf(broken)[0]!.startsWith(`${broken}:1:`), errorsOf(broken)[0]);
  assert.ok(errorsOf('no/such/fabric.yaml')[0]!.startsWith('no/such/fabric.yaml: error: (file): cannot read: ENOENT'));
});

test('keep_alive: Ollama backends only, a duration with its unit or forever; one Ollama model asked with two windows is warned about', () => {
  const ollama = (extra: string, name = 'a', ctx = ''): string => `  ${name}:
    engine: ollama
    url: http://127.0.0.1:11434
    model: qwen2.5:7b${ctx}
${extra}`;
  const cfg = (backends: string): string => `backends:\n${backends}roles:\n  chat-fast:\n    kind: chat\n    backends: [a]\n`;
  const ok = loadFabricConfig(file(cfg(ollama('    keep_alive: 30m\n'))), {}).config.backends.get('a')!;
  assert.equal(ok.keepAliveSeconds, 1800);
  assert.equal(loadFabricConfig(file(cfg(ollama('    keep_alive: forever\n'))), {}).config.backends.get('a')!.keepAliveSeconds, -1);
  assert.equal(loadFabricConfig(file(cfg(ollama('    keep_alive: 0\n'))), {}).config.backends.get('a')!.keepAliveSeconds, 0);
  // Go's durations, as Ollama reads them: compound, fractional, negative for good; and a day count.
  for (const [v, want] of [['1h30m', 5400], ['.5h', 1800], ['-5m', -1], ['1d', 86_400], ['"0s"', 0], ['500ms', 1]] as const) {
    assert.equal(loadFabricConfig(file(cfg(ollama(`    keep_alive: ${v}\n`))), {}).config.backends.get('a')!.keepAliveSeconds, want, v);
  }
  // A bare number would be seconds to Ollama and milliseconds to every other duration here.
  assert.match(errorsOf(file(cfg(ollama('    keep_alive: 300\n')))).join('\n'), /:6:17: error: backends\.a\.keep_alive: must be a duration with its unit.*\(write 300s for 300 seconds/);
  assert.match(errorsOf(file(cfg(ollama('    keep_alive: 9999999999h\n')))).join('\n'), /keep_alive: is longer than Ollama can take .*write forever/);
  const vllm = MINIMAL.replace('    model: m', '    model: m\n    keep_alive: 10m');
  assert.match(errorsOf(file(vllm)).join('\n'), /backends\.a\.keep_alive: applies to Ollama backends only .* engine is vllm/);

  const two = ollama('', 'a', '\n    context_window: 8192') + ollama('', 'b', '\n    context_window: 16384');
  const { issues } = loadFabricConfig(file(cfg(two)), {});
  const warned = issues.find((i) => /reloads the model/.test(i.message));
  assert.ok(warned, JSON.stringify(issues));
  assert.equal(warned.severity, 'warning');
  assert.match(warned.message, /a context of 16384 tokens, and backend a with a context of 8192 tokens/);
  assert.equal(warned.line, 11, 'at b\'s context_window');
  // The same server by another name, the same model without its tag; b sets no window: the warning points at b.
  const renamed = ollama('', 'a', '\n    context_window: 8192') + ollama('', 'b').replace('127.0.0.1', 'localhost').replace('qwen2.5:7b', 'qwen2.5');
  const other = loadFabricConfig(file(cfg(renamed.replace('model: qwen2.5\n', 'model: qwen2.5:latest\n'))), {}).issues;
  assert.equal(other.filter((i) => /reloads the model/.test(i.message)).length, 0, 'qwen2.5:latest is another model than qwen2.5:7b');
  const tagged = (ollama('', 'a', '\n    context_window: 8192') + ollama('', 'b')).replace('qwen2.5:7b\n    context_window', 'llama3\n    context_window').replace(/qwen2\.5:7b\n$/, 'llama3:latest\n');
  assert.equal(loadFabricConfig(file(cfg(tagged)), {}).issues.filter((i) => /reloads the model/.test(i.message)).length, 1, 'llama3 is llama3:latest');
  const same = ollama('', 'a', '\n    context_window: 8192') + ollama('', 'b').replace('127.0.0.1', 'localhost');
  const sameIssues = loadFabricConfig(file(cfg(same)), {}).issues;
  const atB = sameIssues.find((i) => /reloads the model/.test(i.message));
  assert.ok(atB, JSON.stringify(sameIssues));
  assert.match(atB.message, /with the server's default context, and backend a with a context of 8192 tokens/);
  assert.equal(atB.line, 7, 'at the backend b itself');
  // Equal windows: no warning; different keep_alive: one.
  const kept = ollama('    keep_alive: forever\n', 'a') + ollama('    keep_alive: 10m\n', 'b');
  const keptIssues = loadFabricConfig(file(cfg(kept)), {}).issues;
  assert.equal(keptIssues.filter((i) => /reloads the model/.test(i.message)).length, 0);
  assert.match(keptIssues.find((i) => /keep_alive/.test(i.message))?.message ?? '', /loaded for 10m, and backend a for good: each request resets it/);
  // 5m is what Ollama keeps a model without one: no clash.
  const same5 = ollama('', 'a') + ollama('    keep_alive: 5m\n', 'b');
  assert.equal(loadFabricConfig(file(cfg(same5)), {}).issues.filter((i) => /keep_alive/.test(i.message)).length, 0);
});

test('a duration written as a bare number is milliseconds, and warned of (LiteLLM\'s 600 seconds would be 0.6 s here); 0 and numbers with units are not', () => {
  const cfg = (timeouts: string): string => MINIMAL.replace('    model: m\n', `    model: m\n    timeouts: { ${timeouts} }\n`);
  const { config, issues } = loadFabricConfig(file(cfg('total: 600, connect: "2000", idle: 0, first_byte: 30s')), {});
  assert.deepEqual(config.backends.get('a')!.timeouts, { totalMs: 600, connectMs: 2000, idleMs: 0, firstByteMs: 30_000 }, 'still taken as milliseconds');
  assert.deepEqual(issues.map((i) => [i.severity, i.line, i.message]), [
    ['warning', 7, 'a bare number is milliseconds: 600 is 600 ms; write 600ms to say so, or 600s if seconds were meant'],
    ['warning', 7, 'a bare number is milliseconds: 2000 is 2 s; write 2000ms to say so, or 2000s if seconds were meant'],
  ]);
  assert.deepEqual(loadFabricConfig(file(cfg('total: 600s, connect: 2000ms')), {}).issues, []);
});

test('gateway.tracing: a collector\'s base URL gets /v1/traces; credentials only by reference; every mistake named', () => {
  const ok = loadFabricConfig(file(`gateway:
  tracing:
    endpoint: http://collector:4318
    headers: { Authorization: env:OTLP_TOKEN, x-scope-orgid: lab }
    sample: 0.25
${MINIMAL}`), { OTLP_TOKEN: 't' }).config.gateway.tracing!;
  assert.deepEqual(ok, { endpoint: 'http://collector:4318/v1/traces', headers: [['Authorization', { env: 'OTLP_TOKEN' }], ['x-scope-orgid', 'lab']], sample: 0.25, serviceName: 'ai-fabric' });
  // A full traces URL is taken as written; a base URL with a path (Grafana Cloud's …/otlp) gets the traces path.
  assert.equal(loadFabricConfig(file(`gateway:\n  tracing: { endpoint: "https://otel.example.net/otlp/v1/traces" }\n${MINIMAL}`), {}).config.gateway.tracing!.endpoint, 'https://otel.example.net/otlp/v1/traces');
  assert.equal(loadFabricConfig(file(`gateway:\n  tracing: { endpoint: "https://otlp-gateway.example.net/otlp/" }\n${MINIMAL}`), {}).config.gateway.tracing!.endpoint, 'https://otlp-gateway.example.net/otlp/v1/traces');
  const joined = errorsOf(file(`gateway:
  tracing:
    headers: { authorization: Bearer abc, bad header: x }
    sample: 2
${MINIMAL}`)).join('\n');
  assert.match(joined, /error: gateway\.tracing\.endpoint: is required: the OTLP\/HTTP collector/);
  assert.equal(joined.match(/is required/g)!.length, 1);
  assert.match(joined, /:3:31: error: gateway\.tracing\.headers\.authorization: must reference a secret, not contain it/);
  assert.match(joined, /gateway\.tracing\.headers\.bad header: is not a valid header name/);
  assert.match(joined, /:4:13: error: gateway\.tracing\.sample: must be a number from 0 to 1/);
  assert.doesNotMatch(joined, /abc/, 'the value is never quoted back');
});

test('gateway.cache: defaults, a role\'s own policy or none; Redis only with gateway.redis; every mistake named with its line', () => {
  const on = loadFabricConfig(file(`gateway:\n  cache: true\n${MINIMAL}`), {}).config;
  assert.deepEqual(on.gateway.cache, { ttlMs: 3_600_000, when: 'deterministic', scope: 'key', store: 'memory', maxSizeBytes: 64 * 2 ** 20, maxEntryBytes: 2 ** 20 });
  assert.equal(loadFabricConfig(file(MINIMAL), {}).config.gateway.cache, undefined, 'off unless asked for');
  assert.equal(loadFabricConfig(file(`gateway:\n  cache: false\n${MINIMAL}`), {}).config.gateway.cache, undefined);
  // With gateway.redis, Redis is the default store (shared by every instance).
  const shared = loadFabricConfig(file(`gateway:\n  redis: { url: env:REDIS_URL }\n  cache: { ttl: 10m, when: always, scope: shared, max_entry: 256KiB }\n${MINIMAL}`), { REDIS_URL: 'redis://127.0.0.1' }).config.gateway.cache!;
  assert.deepEqual([shared.store, shared.ttlMs, shared.when, shared.scope, shared.maxEntryBytes], ['redis', 600_000, 'always', 'shared', 256 * 1024]);
  const roles = loadFabricConfig(file(`gateway:\n  cache: { ttl: 1h }\n${MINIMAL}  chat-deep: { kind: chat, backends: [a], cache: false }\n  chat-notes: { kind: chat, backends: [a], cache: { ttl: 7d } }\n`), {}).config.roles;
  assert.equal(roles.get('chat-fast')!.cache, undefined);
  assert.equal(roles.get('chat-deep')!.cache, false);
  assert.deepEqual(roles.get('chat-notes')!.cache, { ttlMs: 7 * 86_400_000 });

  const joined = errorsOf(file(`gateway:
  cache: { ttl: 500ms, when: sometimes, store: redis, max_size: 1MiB, max_entry: 2MiB, scop: key }
${MINIMAL}  chat-deep: { kind: chat, backends: [a], cache: { ttl: forever } }
`)).join('\n');
  assert.match(joined, /:2:17: error: gateway\.cache\.ttl: must be at least 1s/);
  assert.match(joined, /error: gateway\.cache\.when: must be one of deterministic, always/);
  assert.match(joined, /error: gateway\.cache\.store: is redis, but gateway\.redis is not set/);
  assert.match(joined, /error: gateway\.cache\.scop: .*did you mean "scope"/);
  assert.match(joined, /error: roles\.chat-deep\.cache\.ttl: /);
  const noMemory = errorsOf(file(`gateway:\n  cache: { max_size: 1MiB, max_entry: 2MiB }\n${MINIMAL}`)).join('\n');
  assert.match(noMemory, /error: gateway\.cache\.max_entry: must be at most max_size/);
  assert.match(joined, /error: gateway\.cache\.max_entry: must be at most max_size/, 'Redis is bounded by max_size too');
  // A role's policy with the cache off is a mistake: it would do nothing.
  const off = errorsOf(file(`${MINIMAL}  chat-deep: { kind: chat, backends: [a], cache: { ttl: 1h } }\n`)).join('\n');
  assert.match(off, /error: roles\.chat-deep\.cache: sets how this role's answers are cached, but the response cache is off: turn it on with gateway\.cache/);
  assert.equal(joined.match(/roles\.chat-deep\.cache\.ttl/g)!.length, 1, 'one error for one mistake');
  // The cache's own name in usage records is no backend's.
  const named = errorsOf(file(`gateway:\n  cache: true\nbackends:\n  "(cache)": { engine: vllm, url: http://127.0.0.1:8000/v1, model: m }\nroles:\n  chat-fast: { kind: chat, backends: ["(cache)"] }\n`)).join('\n');
  assert.match(named, /:4:3: error: backends\.\(cache\): "\(cache\)" is the name usage records and metrics give answers from the response cache/);
});

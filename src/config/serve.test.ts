import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseFabricText } from './load.ts';
import { formatIssue } from './issues.ts';

const FILE = '/x/fabric.yaml';

function check(text: string): { errors: string[]; config: ReturnType<typeof parseFabricText>['config'] } {
  const { config, issues } = parseFabricText(text, FILE);
  return { errors: issues.filter((i) => i.severity === 'error').map(formatIssue), config };
}

const BASE = (serve: string, extra = ''): string => `version: 1
nodes:
  box:
    power: always-on
    gpus: [{ model: RTX 2080, memory: 8GiB, reserved: 512MiB }]
    runtime: podman
${extra}backends:
  a:
    engine: vllm
    node: box
    url: http://box.lan:8001/v1
    model: Qwen/Qwen2.5-7B-Instruct-AWQ
    serve:
${serve}
roles:
  r: { kind: chat, backends: [a] }
`;

test('a full serve block is read into the config model', () => {
  const { errors, config } = check(BASE(`      quantization: AWQ
      dtype: float16
      kv_cache_dtype: fp8
      max_model_len: 8192
      gpu_memory_utilization: 0.45
      port: 8001
      gpu: 0
      max_num_seqs: 64
      max_num_batched_tokens: 4096
      enforce_eager: true
      image: vllm/vllm-openai:v0.9.2
      extra_args: [--enable-prefix-caching]
      env: { VLLM_LOGGING_LEVEL: INFO, API_TOKEN: env:ENGINE_TOKEN }
      hf_token: env:HF_TOKEN
      hf_config: models/qwen/config.json
      models_dir: /srv/models`));
  assert.deepEqual(errors, []);
  const s = config.backends.get('a')!.serve!;
  assert.equal(s.engine, 'vllm');
  assert.equal(s.model, 'Qwen/Qwen2.5-7B-Instruct-AWQ', 'defaults to the backend model');
  assert.equal(s.quantization, 'awq');
  assert.equal(s.kvCacheDtype, 'fp8');
  assert.equal(s.maxModelLen, 8192);
  assert.equal(s.gpuMemoryUtilization, 0.45);
  assert.equal(s.port, 8001);
  assert.equal(s.host, '0.0.0.0');
  assert.deepEqual(s.gpus, [0]);
  assert.equal(s.enforceEager, true);
  assert.deepEqual(s.extraArgs, ['--enable-prefix-caching']);
  assert.deepEqual([...s.env], [['VLLM_LOGGING_LEVEL', 'INFO'], ['API_TOKEN', { env: 'ENGINE_TOKEN' }]]);
  assert.deepEqual(s.hfToken, { env: 'HF_TOKEN' });
  assert.equal(config.nodes.get('box')!.runtime, 'podman');
  assert.equal(config.nodes.get('box')!.gpus[0]!.reservedBytes, 512 * 1024 ** 2);
});

test('tool_parser and reasoning_parser: vLLM\'s, read as names; on another engine an error that says what that engine does', () => {
  const { errors, config } = check(BASE(`      tool_parser: hermes
      reasoning_parser: deepseek_r1`));
  assert.deepEqual(errors, []);
  assert.deepEqual([config.backends.get('a')!.serve!.toolParser, config.backends.get('a')!.serve!.reasoningParser], ['hermes', 'deepseek_r1']);
  assert.match(check(BASE('      tool_parser: "hermes --evil"')).errors.join('\n'), /tool_parser: must be a parser's name/);
  // A name vLLM does not ship is a warning with a did-you-mean: plugins and newer images have their own.
  const typo = parseFabricText(BASE('      tool_parser: hermess'), FILE);
  assert.deepEqual(typo.issues.filter((i) => i.severity === 'error'), []);
  assert.match(typo.issues.map(formatIssue).join('\n'), /warning.*tool_parser.*"hermess" is not a tool parser vLLM 0\.11 ships \(did you mean hermes\?\)/);
  const twice = parseFabricText(BASE('      tool_parser: hermes\n      extra_args: [--enable-auto-tool-choice, --tool-call-parser, hermes]'), FILE);
  assert.match(twice.issues.map(formatIssue).join('\n'), /warning.*extra_args: sets the tool parser that tool_parser renders too/);
  const twiceReasoning = parseFabricText(BASE('      reasoning_parser: qwen3\n      extra_args: [--reasoning-parser=qwen3]'), FILE);
  assert.match(twiceReasoning.issues.map(formatIssue).join('\n'), /warning.*extra_args: sets the reasoning parser that reasoning_parser renders too/);
  const ollama = check(BASE('      tool_parser: hermes').replace('engine: vllm', 'engine: ollama').replace('http://box.lan:8001/v1', 'http://box.lan:11434'));
  assert.match(ollama.errors.join('\n'), /tool_parser: is vLLM's; Ollama parses each model's tool calls and thinking itself/);
});

test('serve takes its port from the URL and listens on loopback when reached there', () => {
  const { config } = check(BASE('      max_model_len: 4096').replace('http://box.lan:8001/v1', 'http://127.0.0.1:8001/v1'));
  assert.equal(config.backends.get('a')!.serve!.port, 8001);
  assert.equal(config.backends.get('a')!.serve!.host, '127.0.0.1');
});

test('serve keys are checked with file:line:col and did-you-mean', () => {
  const { errors } = check(BASE(`      max_model_lenght: 4096
      gpu_memory_utilization: 1.5
      quantization: awk
      port: 8000
      gpu: 3
      env: { HF_TOKEN: hf_abcdef }`));
  const all = errors.join('\n');
  assert.match(all, /fabric\.yaml:14:7: error: backends\.a\.serve\.max_model_lenght: unknown key \(did you mean "max_model_len"\?\)/);
  assert.match(all, /fabric\.yaml:15:31: error: backends\.a\.serve\.gpu_memory_utilization: must be a fraction above 0 and at most 1/);
  assert.match(all, /fabric\.yaml:16:21: error: backends\.a\.serve\.quantization: must be one of .* \(did you mean "awq"\?\)/);
  assert.match(all, /fabric\.yaml:17:13: error: backends\.a\.serve\.port: is 8000 but the gateway reaches this backend at port 8001/);
  assert.match(all, /fabric\.yaml:18:12: error: backends\.a\.serve\.gpu: node box has 1 GPU \(index 0\), not GPU 3/);
  assert.match(all, /backends\.a\.serve\.env\.HF_TOKEN: looks like a secret: write env:NAME/);
  assert.doesNotMatch(all, /hf_abcdef/);
  assert.equal(errors.length, 6);
});

test('a secret in extra_args or an env value is refused with file:line:col, never echoed; ordinary values pass', () => {
  // Built here so no secret-looking literal sits in the source.
  const openai = ['sk', 'proj', 'Ab3dEfGhIjKlMnOpQrStUvWxYz0123456789'].join('-');
  const hf = `hf_${'AbCdEfGhIjKlMnOpQr'}${'StUvWxYzAbCdEfGh'}`;
  const github = `ghp_${'A1b2C3d4E5f6G7h8I9j0'}${'K1l2M3n4O5p6Q7r8'}`;
  const slack = ['xoxb', '1234567890123', '1234567890123', 'AbCdEfGhIjKlMnOpQrStUvWx'].join('-');
  const aws = `AKIA${'IOSFODNN7EXAMPLE'}`;
  const random = 'Zx8Qw2Er5Ty7Ui9Op0' + 'As3Df6Gh1Jk4Lz';
  const { errors } = check(BASE(`      extra_args:
        - --api-key
        - ${openai}
        - --hf-token=whatever
        - -hft
        - plain-looking
        - --some-option
        - ${hf}
        - '--override-generation-config={"key":"${openai}"}'
      env:
        MY_SETTING: ${hf}
        GH: ${github}
        SLACK: ${slack}
        AWS: ${aws}
        OTHER: ${random}`));
  const all = errors.join('\n');
  const advice = "set the backend's api_key: env:NAME instead (the gateway sends it; fabric render gives it to vLLM and llama.cpp engines as VLLM_API_KEY or LLAMA_API_KEY, by reference)";
  assert.match(all, new RegExp(`fabric\\.yaml:16:11: error: backends\\.a\\.serve\\.extra_args\\[1\\]: is the value of --api-key, a secret: fabric render would write it into compose\\.yaml, the launch scripts and gateway/fabric\\.yaml; ${advice.replace(/[().]/g, '\\$&')}`));
  assert.match(all, /fabric\.yaml:17:11: error: backends\.a\.serve\.extra_args\[2\]: holds the value of --hf-token, a secret: .*; write serve\.hf_token: env:HF_TOKEN instead/);
  assert.match(all, /fabric\.yaml:19:11: error: backends\.a\.serve\.extra_args\[4\]: is the value of -hft, a secret/);
  assert.match(all, /fabric\.yaml:21:11: error: backends\.a\.serve\.extra_args\[6\]: looks like a Hugging Face token \(hf_…\), a secret: .*; reference it instead \(serve\.env NAME: env:NAME, serve\.hf_token, or the backend's api_key\)/);
  assert.match(all, /fabric\.yaml:22:11: error: backends\.a\.serve\.extra_args\[7\]: looks like an API key \(sk-…\), a secret/);
  assert.match(all, /fabric\.yaml:24:21: error: backends\.a\.serve\.env\.MY_SETTING: looks like a Hugging Face token \(hf_…\), a secret: write env:NAME/);
  assert.match(all, /backends\.a\.serve\.env\.GH: looks like a GitHub token, a secret/);
  assert.match(all, /backends\.a\.serve\.env\.SLACK: looks like a Slack token \(xox…-\), a secret/);
  assert.match(all, /backends\.a\.serve\.env\.AWS: looks like an AWS access key id \(AKIA…\), a secret/);
  assert.match(all, /backends\.a\.serve\.env\.OTHER: looks like a long random token, a secret/);
  assert.equal(errors.length, 10, all);
  for (const v of [openai, hf, github, slack, aws, random, 'whatever']) assert.ok(!all.includes(v), 'the value is never echoed');

  // What must pass: paths, model ids (a slug may start sk-), hex revisions, UUIDs, a key file, token counts.
  const ok = check(BASE(`      extra_args:
        - --api-key-file
        - /run/secrets/vllm-key
        - --max-num-batched-tokens
        - "4096"
        - --tokenizer
        - hf-internal-testing/llama-tokenizer
        - --revision
        - 5f0b02c75b57c5855da9ae460ce51323ea669d8a
        - --served-model-name
        - sk-llama-3-8b-instruct-awq-finetuned
        - --lora-modules
        - sql-lora=/models/sql-lora-adapter
        - --chat-template=/vllm-workspace/examples/tool_chat_template_llama3.1_json.jinja
        - --speculative-model=TheBloke/Mistral-7B-Instruct-v0.2-GPTQ
        - --tokenizer-mode
        - mistral
      env:
        HF_HOME: /data/hf_cache_directory_for_models
        PYTORCH_CUDA_ALLOC_CONF: expandable_segments:True
        RUN_ID: e3b0c442-98fc-1c14-9afb-f4c8996fb924
        DIGEST: e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855
        MODEL: RedHatAI/Meta-Llama-3.1-70B-Instruct-quantized.w4a16
        VLLM_LOGGING_LEVEL: INFO`));
  assert.deepEqual(ok.errors, []);
});

test('serve needs a launchable engine on a node with GPUs', () => {
  const cloud = check(`backends:
  o:
    engine: openai
    model: gpt-4o-mini
    api_key: env:OPENAI_API_KEY
    serve: { max_model_len: 4096 }
roles:
  r: { kind: chat, backends: [o] }
`).errors.join('\n');
  assert.match(cloud, /backends\.o\.serve: fabric can launch engines vllm, ollama, llamacpp, not openai/);
  const nodeless = check(`nodes:
  cpu: { power: always-on }
backends:
  a: { engine: vllm, url: 'http://x:8000/v1', model: m, serve: {} }
  b: { engine: ollama, node: cpu, url: 'http://x:11434', model: 'qwen2.5:7b', aliases: [bb], serve: { gpu_memory_utilization: 0.5 } }
roles:
  r: { kind: chat, backends: [a] }
`).errors.join('\n');
  assert.match(nodeless, /backends\.a\.serve: needs the backend's node/);
  assert.match(nodeless, /backends\.b\.serve: node cpu lists no gpus/);
  assert.match(nodeless, /backends\.b\.serve\.gpu_memory_utilization: is vLLM's; ollama takes the memory its model and context need/);
});

test('llama.cpp needs a GGUF file; two engines cannot share a port on one node, Ollama models can', () => {
  const { errors } = check(`nodes:
  box: { power: always-on, gpus: [{ model: RTX 3090, memory: 24GiB }] }
backends:
  l: { engine: llamacpp, node: box, url: 'http://box:8080/v1', model: llama, serve: {} }
  v1: { engine: vllm, node: box, url: 'http://box:8000/v1', model: Qwen/Qwen2.5-0.5B-Instruct, serve: {} }
  v2: { engine: vllm, node: box, url: 'http://box:8000/v1', model: Qwen/Qwen2.5-1.5B-Instruct, aliases: [v2], serve: {} }
  o1: { engine: ollama, node: box, url: 'http://box:11434', model: 'qwen2.5:7b', aliases: [o1], serve: {} }
  o2: { engine: ollama, node: box, url: 'http://box:11434', model: 'llama3.1:8b', aliases: [o2], serve: {} }
roles:
  r: { kind: chat, backends: [l, v1] }
`);
  const all = errors.join('\n');
  assert.match(all, /backends\.l\.serve\.model: is required for llama\.cpp: the GGUF file to load/);
  assert.match(all, /backends\.v2\.serve: port 8000 on node box is already served by backend v1/);
  assert.doesNotMatch(all, /backends\.o2/);
  assert.equal(errors.length, 2);
});

test('node runtime and os are checked', () => {
  const { errors } = check(BASE('      max_model_len: 4096').replace('    runtime: podman', '    runtime: containerd\n    os: macos'));
  assert.match(errors.join('\n'), /nodes\.box\.runtime: must be one of docker, podman/);
  assert.match(errors.join('\n'), /nodes\.box\.os: must be one of linux, windows/);
});

test('a GPU\'s memory must be more than 0, and what is reserved less than it', () => {
  const zero = check(BASE('      max_model_len: 4096').replace('memory: 8GiB, reserved: 512MiB', 'memory: 0GiB'));
  assert.deepEqual(zero.errors, ['/x/fabric.yaml:5:39: error: nodes.box.gpus[0].memory: must be more than 0, got string "0GiB"']);
  const over = check(BASE('      max_model_len: 4096').replace('reserved: 512MiB', 'reserved: 8GiB'));
  assert.deepEqual(over.errors.filter((e) => e.includes('reserved')), ['/x/fabric.yaml:5:55: error: nodes.box.gpus[0].reserved: must be less than the GPU\'s memory (8GiB), got 8GiB']);
  assert.deepEqual(check(BASE('      max_model_len: 4096')).errors, []);
});

test('a mistyped engine is the one error: its serve block is not judged against a stand-in engine', () => {
  // The engine falls back to openai-compatible internally; "not openai-compatible" named a value nobody wrote.
  const { errors } = check(BASE('      quantization: AWQ').replace('engine: vllm', 'engine: vlm'));
  assert.equal(errors.length, 1, errors.join('\n'));
  assert.match(errors[0]!, /fabric\.yaml:9:13: error: backends\.a\.engine: must be one of .* \(did you mean "vllm"\?\)/);
  // Nor does a missing url add a second error when the engine (which decides whether one is needed) is wrong.
  const noUrl = check(BASE('      quantization: AWQ').replace('engine: vllm', 'engine: opnai').replace(/ {4}url: .*\n/, '')).errors;
  assert.equal(noUrl.length, 1, noUrl.join('\n'));
  assert.match(noUrl[0]!, /did you mean "openai"/);
  // A valid engine that fabric cannot launch still gets its error.
  const ext = check(BASE('      quantization: AWQ').replace('engine: vllm', 'engine: openai-compatible')).errors;
  assert.match(ext.join('\n'), /fabric can launch engines vllm, ollama, llamacpp, not openai-compatible/);
});

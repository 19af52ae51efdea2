// fabric smoke as an operator runs it, against a gateway in front of simulated engines: every
// role and alias end to end, the dimension check, the failure report, the cloud left unbilled,
// the failure drill, and exit codes.

import { test, before, after, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { parseFabricText } from '../src/config/load.ts';
import { Secrets } from '../src/config/env-file.ts';
import { silentLogger } from '../src/core/log.ts';
import { startGateway, type RunningGateway } from '../src/main.ts';
import { startFleet, type SimFleet } from '../src/sim/fleet.ts';
import { freePort } from './support/servers.ts';
import { runFabric } from './support/proc.ts';
import { tempDir } from './support/temp-dir.ts';

const FAST = { ttftMs: 2, tokensPerSecond: 5000, maxConcurrency: 16, maxQueue: 64 };
const KEY = 'smoke-test-master-key';

let fleet: SimFleet;
let gw: RunningGateway;

before(async () => {
  fleet = await startFleet([
    { name: 'fast', protocol: 'vllm', model: 'm-fast', kind: 'chat', timing: FAST },
    { name: 'deep', protocol: 'ollama', model: 'llama3.1:8b', kind: 'chat', timing: FAST },
    { name: 'emb', protocol: 'vllm', model: 'bge', kind: 'embeddings', dimensions: 768, timing: FAST },
    { name: 'small', protocol: 'llamacpp', model: 'minilm', kind: 'embeddings', dimensions: 384, timing: FAST },
    { name: 'cloud', protocol: 'openai', model: 'gpt-4.1-mini', kind: 'chat', timing: FAST },
    { name: 'whisper', protocol: 'vllm', model: 'openai/whisper-large-v3', kind: 'transcription', timing: FAST },
    { name: 'rerank', protocol: 'llamacpp', model: 'bge-reranker-v2-m3', kind: 'rerank', timing: FAST },
  ]);
  const url = (n: string): string => fleet.get(n).url;
  const { config } = parseFabricText(`
gateway:
  master_key: env:FABRIC_MASTER_KEY
  # On, as in the seeds' example: every check must still reach a backend (smoke sends Cache-Control: no-store).
  cache: true
  health_interval: 200ms
  health: { cooldown: 300ms, probe_timeout: 150ms, load_interval: 0 }
nodes:
  armitage: { power: workstation }
backends:
  fast: { engine: vllm, node: armitage, url: ${url('fast')}/v1, model: m-fast, aliases: [fast-physical], max_retries: 0 }
  deep: { engine: ollama, url: ${url('deep')}, model: "llama3.1:8b" }
  emb: { engine: vllm, url: ${url('emb')}/v1, model: bge, max_retries: 0 }
  small: { engine: llamacpp, url: ${url('small')}/v1, model: minilm }
  cloud: { engine: openai-compatible, url: ${url('cloud')}/v1, model: gpt-4.1-mini, cloud: true }
  whisper: { engine: vllm, url: ${url('whisper')}/v1, model: openai/whisper-large-v3, max_retries: 0 }
  rerank: { engine: llamacpp, url: ${url('rerank')}/v1, model: bge-reranker-v2-m3, max_retries: 0 }
roles:
  chat-fast: { kind: chat, backends: [fast], aliases: [local/chat], fallbacks: [chat-deep] }
  chat-deep: { kind: chat, backends: [deep], aliases: [local/reasoner], fallbacks: [openai/strong] }
  embeddings-general: { kind: embeddings, backends: [emb], aliases: [local/embed], dimensions: 768 }
  emb-384: { kind: embeddings, backends: [small], dimensions: 768 }
  openai/strong: { kind: chat, backends: [cloud] }
  audio-transcribe: { kind: transcription, backends: [whisper], aliases: [whisper-1] }
  rerank-general: { kind: rerank, backends: [rerank], aliases: [local/rerank] }
`, 'smoke.yaml');
  gw = await startGateway(config, new Secrets({ FABRIC_MASTER_KEY: KEY }), { host: '127.0.0.1', port: 0, log: silentLogger, dataDir: tempDir('fabric-smoke-') });
});

after(async () => {
  await gw.close(500);
  await fleet.close();
});

afterEach(async () => {
  for (const e of fleet.engines.values()) await e.setFault(null);
  for (const b of gw.app.gateway.backends.values()) { b.consecutiveFailures = 0; b.coolUntil = 0; b.trips = 0; b.state = 'up'; }
});

const smoke = (args: string[], env: NodeJS.ProcessEnv = { SMOKE_KEY: KEY }) => runFabric(['smoke', '--url', gw.url, ...args], { PATH: process.env.PATH, ...env }, 30_000);

const cloudRequests = (): number => fleet.get('cloud').stats().requests;

test('every role and alias, end to end: a clear report of the one that fails, the cloud never billed, progress on stderr, exit 1', async () => {
  const billed = cloudRequests();
  const r = await smoke(['--key', 'env:SMOKE_KEY']);
  assert.equal(r.code, 1, r.stderr);
  const row = (target: string, check: string, result: string): RegExp => new RegExp(`^${target.replace(/[/.]/g, '\\$&')}\\s+${check}\\s+${result}\\s`, 'm');
  assert.match(r.stdout, row('chat-fast', 'chat', 'PASS'));
  assert.match(r.stdout, row('chat-fast', 'stream', 'PASS'));
  assert.match(r.stdout, row('chat-deep', 'stream', 'PASS'));
  assert.match(r.stdout, row('embeddings-general', 'embeddings', 'PASS'));
  assert.match(r.stdout, row('local/chat → chat-fast', 'chat', 'PASS'));
  assert.match(r.stdout, row('local/embed → embeddings-general', 'embeddings', 'PASS'));
  assert.match(r.stdout, row('fast-physical → fast', 'chat', 'PASS'));
  // A transcription role: a second of silence uploaded as a WAV file, its text checked.
  assert.match(r.stdout, row('audio-transcribe', 'transcription', 'PASS'));
  assert.match(r.stdout, row('whisper-1 → audio-transcribe', 'transcription', 'PASS'));
  const upload = fleet.get('whisper').requests().at(-1)!;
  assert.equal(upload.path, '/v1/audio/transcriptions');
  assert.equal((upload.body as { files: { file: { size: number } } }).files.file.size, 32_044);
  // A rerank role: two documents, a score for each.
  assert.match(r.stdout, row('rerank-general', 'rerank', 'PASS'));
  assert.match(r.stdout, row('local/rerank → rerank-general', 'rerank', 'PASS'));
  const ranked = fleet.get('rerank').requests().at(-1)!;
  assert.equal(ranked.path, '/v1/rerank');
  assert.deepEqual((ranked.body as { documents: string[] }).documents.length, 2);
  assert.match(r.stdout, /^openai\/strong\s+chat\s+SKIP\s+-\s+-\s+openai\/strong is served by a cloud API \(--include-cloud to check it\)/m);
  assert.match(r.stdout, /chat-fast\s+chat\s+PASS\s+\d+ ms\s+chat-fast \/ fast/);
  assert.match(r.stdout, /FAILED emb-384 embeddings: the embedding has 384 dimensions, the role promises 768/);
  assert.match(r.stdout, /  sent:      POST \/v1\/embeddings -H 'cache-control: no-cache, no-store' \{"model":"emb-384","input":"fabric smoke test"\}/);
  assert.match(r.stdout, /  came back: HTTP 200 \{/);
  assert.match(r.stdout, /\d+ passed, 1 failed, 0 warnings, 2 skipped/);
  assert.doesNotMatch(r.stdout, /\x1b\[/, 'plain when piped');
  assert.match(r.stderr, /^\[ 1\/\d+\] chat-fast chat … pass \d+ ms  chat-fast \/ fast$/m);
  assert.equal(cloudRequests(), billed, 'nothing was sent to the cloud backend');
});

test('--json and --only; the key from $FABRIC_API_KEY; a refused key and a gateway that is down exit 2', async () => {
  const r = await smoke(['--only', 'chat-fast,local/embed', '--json'], { FABRIC_API_KEY: KEY });
  assert.equal(r.code, 0, r.stderr);
  const j = JSON.parse(r.stdout);
  assert.equal(j.ok, true);
  assert.deepEqual(j.checks.map((c: any) => `${c.target}:${c.check}:${c.status}`), ['chat-fast:chat:pass', 'chat-fast:stream:pass', 'local/embed:embeddings:pass']);
  assert.ok(j.checks.every((c: any) => typeof c.ms === 'number' && c.served_backend !== null));
  const refused = await smoke(['--only', 'chat-fast'], {});
  assert.equal(refused.code, 2);
  assert.match(refused.stderr, /refused the key \(HTTP 401\)/);
  const port = await freePort(); // nothing listens there (fetch refuses "bad ports" such as 1)
  const down = await smoke(['--url', `http://127.0.0.1:${port}`]);
  assert.equal(down.code, 2);
  assert.match(down.stderr, new RegExp(`gateway at http://127\\.0\\.0\\.1:${port} is down \\(critical\\): connection refused`));
});

test('a check with no answer in --timeout says so once, with the timeout; the default outlasts a backend\'s first_byte and a fallback', async () => {
  // Slow answers, not a wedged server: its health probes still pass (a hang would have them
  // cool it down before the smoke's request, which then gets a 503, not a timeout).
  await fleet.get('emb').setFault({ kind: 'slow', factor: 2500 });
  const r = await smoke(['--only', 'embeddings-general', '--key', 'env:SMOKE_KEY', '--timeout', '300ms']);
  assert.equal(r.code, 1);
  assert.match(r.stdout, /FAILED embeddings-general embeddings: no answer before the timeout \(0\.3s\)/);
  assert.doesNotMatch(r.stdout, /no answer: no answer/);
  const help = await runFabric(['smoke', '--help'], { PATH: process.env.PATH });
  assert.match(help.stdout, /--timeout S +per request \(default 150s: longer than a backend's first_byte timeout/);
});

test('fabric health --probe: a mended backend still cooling down is probed back at once; without the master key it is refused, exit 2', async () => {
  const emb = gw.app.gateway.backends.get('emb')!;
  // Failed three times, and cooling down for a minute more; its engine is mended meanwhile.
  for (let i = 0; i < 3; i++) emb.recordFailure('health check: connection refused', Date.now(), true);
  emb.coolUntil = Date.now() + 60_000;
  assert.equal(emb.state, 'down');
  const before = await runFabric(['health', 'emb', '--url', gw.url, '--json'], { PATH: process.env.PATH });
  assert.equal(JSON.parse(before.stdout).backends[0].status, 'down');
  // A key the gateway does not take: its last error is hidden, not absent, and the key is said to be refused.
  const wrongKey = await runFabric(['health', 'emb', '--url', gw.url, '--key', 'not-the-key'], { PATH: process.env.PATH });
  assert.match(wrongKey.stdout, /^emb +down .* \(hidden\)$/m);
  assert.equal(wrongKey.stderr, 'fabric health: the gateway did not take the key given (--key or $FABRIC_API_KEY) as its master key: backend URLs and last errors are hidden\n');
  const rightKey = await runFabric(['health', 'emb', '--url', gw.url], { PATH: process.env.PATH, FABRIC_API_KEY: KEY });
  assert.match(rightKey.stdout, /^emb +down .* health check: connection refused$/m);
  assert.equal(rightKey.stderr, '');
  const noKey = await runFabric(['health', '--probe', '--url', gw.url], { PATH: process.env.PATH });
  assert.equal(noKey.code, 2);
  assert.match(noKey.stderr, /--probe needs the master key/);
  const wrong = await runFabric(['health', '--probe', '--url', `${gw.url}/v1`, '--key', 'not-the-key'], { PATH: process.env.PATH });
  assert.equal(wrong.code, 2);
  assert.match(wrong.stderr, /the gateway refused the probe \(HTTP 401\): the key given \(--key or \$FABRIC_API_KEY\) was refused: it is not the gateway's master key/);
  const r = await runFabric(['health', 'emb', '--probe', '--url', gw.url, '--key', 'env:SMOKE_KEY', '--json'], { PATH: process.env.PATH, SMOKE_KEY: KEY });
  assert.equal(r.code, 0, r.stderr);
  assert.equal(JSON.parse(r.stdout).backends[0].status, 'up');
  assert.equal(emb.state, 'up');
  assert.equal(emb.coolUntil, 0);
  // The admin route names what it probed, and refuses a name it does not know.
  const api = await fetch(`${gw.url}/admin/health/probe`, { method: 'POST', headers: { authorization: `Bearer ${KEY}` }, body: JSON.stringify({ backends: ['emb', 'nope'] }) });
  assert.equal(api.status, 404);
  assert.match(((await api.json()) as { error: { message: string } }).error.message, /no backend named "nope"/);
  const one = await fetch(`${gw.url}/admin/health/probe`, { method: 'POST', headers: { authorization: `Bearer ${KEY}` }, body: JSON.stringify({ backends: ['emb'] }) });
  assert.deepEqual(((await one.json()) as { data: unknown[] }).data, [{ backend: 'emb', ok: true, detail: 'ok', state: 'up' }]);
  // `only`: a node's backends, as `fabric health NODE --probe` asks.
  const node = await fetch(`${gw.url}/admin/health/probe`, { method: 'POST', headers: { authorization: `Bearer ${KEY}` }, body: JSON.stringify({ only: 'armitage' }) });
  assert.deepEqual(((await node.json()) as { data: Array<{ backend: string }> }).data.map((d) => d.backend), ['fast']);
});

test('a role the gateway cannot serve: what was sent and what came back', async () => {
  await fleet.get('emb').setFault({ kind: 'error', status: 500 });
  const r = await smoke(['--only', 'embeddings-general', '--key', 'env:SMOKE_KEY']);
  assert.equal(r.code, 1);
  assert.match(r.stdout, /FAILED embeddings-general embeddings: HTTP 503 no_backend_available: no backend could serve `embeddings-general`/);
  assert.match(r.stdout, /came back: HTTP 503 \{"error":\{"message":"no backend could serve/);
});

test('a primary that is down: served by its fallback (reported); a check the fallback would send to the cloud is skipped', async () => {
  await fleet.get('fast').setFault({ kind: 'down' });
  await fleet.get('deep').setFault({ kind: 'down' });
  const fast = gw.app.gateway.backends.get('fast')!;
  const deep = gw.app.gateway.backends.get('deep')!;
  // Each wait has its own deadline (a loaded machine probes late), and says when it runs out.
  const seenDown = async (...bs: typeof fast[]): Promise<void> => {
    const until = Date.now() + 10_000;
    while (bs.some((b) => b.state !== 'down') && Date.now() < until) await new Promise((res) => setTimeout(res, 20));
    assert.deepEqual(bs.map((b) => b.state), bs.map(() => 'down'), 'the probes found them down');
  };
  await seenDown(fast, deep);
  await fleet.get('deep').setFault(null);
  deep.consecutiveFailures = 0; deep.coolUntil = 0; deep.state = 'up';
  const r = await smoke(['--only', 'chat-fast', '--key', 'env:SMOKE_KEY', '--json']);
  assert.equal(r.code, 0, r.stdout);
  const chat = JSON.parse(r.stdout).checks[0];
  assert.deepEqual([chat.status, chat.served_role, chat.served_backend, chat.rerouted], ['pass', 'chat-deep', 'deep', true]);
  assert.equal(chat.detail, 'served by fallback chat-deep / deep');

  await fleet.get('deep').setFault({ kind: 'down' });
  await seenDown(deep);
  // Held in its cooldown for the smoke's run: the test's 300 ms one can end before a loaded
  // machine has started the CLI, and a backend out of cooldown counts as serving its role again.
  deep.coolUntil = Date.now() + 60_000;
  const billed = cloudRequests();
  const c = await smoke(['--only', 'chat-deep', '--key', 'env:SMOKE_KEY']);
  assert.equal(c.code, 0);
  assert.match(c.stdout, /chat-deep's own backends are unavailable and its fallback openai\/strong is a cloud API/);
  assert.equal(cloudRequests(), billed);
});

test('--drill: per role the primary is treated as failed for that request only, and the step that served is reported', async () => {
  const billed = cloudRequests();
  const r = await smoke(['--drill', '--only', 'chat-fast,chat-deep,embeddings-general', '--key', 'env:SMOKE_KEY', '--json']);
  assert.equal(r.code, 0, r.stderr);
  const drills = JSON.parse(r.stdout).checks.filter((c: any) => c.check.startsWith('drill'));
  const by = Object.fromEntries(drills.map((c: any) => [c.target, c]));
  assert.deepEqual([by['chat-fast'].status, by['chat-fast'].served_role, by['chat-fast'].served_backend], ['pass', 'chat-deep', 'deep']);
  assert.match(by['chat-fast'].detail, /fallback step chat-deep served/);
  assert.equal(by['chat-deep'].status, 'skip', 'its drill would be served by the cloud');
  assert.equal(by['embeddings-general'].status, 'warn');
  assert.match(by['embeddings-general'].detail, /no fallback chain/);
  assert.equal(cloudRequests(), billed);
  assert.equal(gw.app.gateway.backends.get('fast')!.consecutiveFailures, 0, 'the drill is not a failure of live traffic');

  const paid = await smoke(['--drill', '--include-cloud', '--only', 'chat-deep', '--key', 'env:SMOKE_KEY']);
  assert.equal(paid.code, 0, paid.stdout);
  assert.match(paid.stdout, /chat-deep\s+drill \(chat\)\s+PASS\s+\d+ ms\s+openai\/strong \/ cloud \(rerouted\)/);
  assert.ok(cloudRequests() > billed, 'asked to: the cloud was used');
});

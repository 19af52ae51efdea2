// Audio transcription and translation end to end: the seeds' audio-transcribe role (Whisper on
// vLLM) behind the gateway, called with the official openai SDK and raw multipart over
// loopback, against simulated vLLM engines that read the upload with their own multipart
// parser and answer as vLLM does (text as JSON, no srt or vtt, a string duration).

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import OpenAI, { toFile } from 'openai';
import { parseFabricText } from '../src/config/load.ts';
import { formatIssue } from '../src/config/issues.ts';
import { startFabric, post, eventually, waitForLog, openaiSchemaValidator, type Fabric } from './helpers.ts';

const MASTER = 'fabric-master-key-for-audio-tests';
const FAST = { ttftMs: 2, tokensPerSecond: 5000, maxConcurrency: 8, maxQueue: 16 };
const WHISPER = 'openai/whisper-large-v3';
const auth = { authorization: `Bearer ${MASTER}` };

let f: Fabric;
let client: OpenAI;
const sent = (engine: string): number => f.fleet.get(engine).stats().requests;
const lastForm = (engine: string): any => f.fleet.get(engine).requests().at(-1)!.body;

/** A WAV file: 16 kHz, 16-bit mono, `seconds` long, a tone whose pitch makes each file its own. */
function wav(seconds: number, hz = 440): Buffer {
  const samples = Math.round(16_000 * seconds);
  const b = Buffer.alloc(44 + samples * 2);
  b.write('RIFF', 0); b.writeUInt32LE(36 + samples * 2, 4); b.write('WAVEfmt ', 8); b.writeUInt32LE(16, 16);
  b.writeUInt16LE(1, 20); b.writeUInt16LE(1, 22); b.writeUInt32LE(16_000, 24); b.writeUInt32LE(32_000, 28);
  b.writeUInt16LE(2, 32); b.writeUInt16LE(16, 34); b.write('data', 36); b.writeUInt32LE(samples * 2, 40);
  for (let i = 0; i < samples; i++) b.writeInt16LE(Math.round(8000 * Math.sin((2 * Math.PI * hz * i) / 16_000)), 44 + i * 2);
  return b;
}

/** A multipart body by hand, for what the SDK will not send. */
function multipart(fields: Record<string, string>, file?: { name: string; bytes: Buffer }): { body: Buffer; type: string } {
  const boundary = '----fabric-test-boundary';
  const parts: Buffer[] = [];
  for (const [k, v] of Object.entries(fields)) parts.push(Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="${k}"\r\n\r\n${v}\r\n`));
  if (file !== undefined) {
    parts.push(Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="${file.name}"\r\nContent-Type: audio/wav\r\n\r\n`), file.bytes, Buffer.from('\r\n'));
  }
  parts.push(Buffer.from(`--${boundary}--\r\n`));
  return { body: Buffer.concat(parts), type: `multipart/form-data; boundary=${boundary}` };
}

async function upload(path: string, fields: Record<string, string>, file?: { name: string; bytes: Buffer }, headers: Record<string, string> = auth) {
  const m = multipart(fields, file);
  const r = await fetch(f.url + path, { method: 'POST', headers: { ...headers, 'content-type': m.type }, body: m.body });
  const text = await r.text();
  let json: any;
  try { json = JSON.parse(text); } catch { json = undefined; }
  return { status: r.status, headers: r.headers, text, json };
}

before(async () => {
  f = await startFabric({
    env: { FABRIC_MASTER_KEY: MASTER },
    apiKey: MASTER,
    engines: [
      { name: 'motoko', protocol: 'vllm', model: WHISPER, kind: 'transcription', timing: FAST },
      { name: 'spare', protocol: 'vllm', model: WHISPER, kind: 'transcription', timing: FAST },
      { name: 'armitage', protocol: 'vllm', model: 'Qwen/Qwen2.5-7B-Instruct-AWQ', kind: 'chat', timing: FAST },
      // OpenAI's whisper-1: every format, and a stream request answered whole once the audio is decoded (300 ms here).
      { name: 'cloud', protocol: 'openai', model: 'whisper-1', kind: 'transcription', timing: { ...FAST, ttftMs: 300 } },
    ],
    yaml: (url) => `
gateway:
  master_key: env:FABRIC_MASTER_KEY
  accounting: { flush_interval: 20ms }
  # On: it keeps the text of what is asked and answered, never audio.
  request_log: {}
  limits: { max_audio: 2MiB, max_body_in_flight: 3MiB }
  # On: audio must still reach a backend every time.
  cache: { when: always }
backends:
  motoko-whisper: { engine: vllm, url: ${url('motoko')}/v1, model: ${WHISPER}, max_retries: 0 }
  spare-whisper: { engine: vllm, url: ${url('spare')}/v1, model: ${WHISPER}, max_retries: 0 }
  armitage-qwen: { engine: vllm, url: ${url('armitage')}/v1, model: Qwen/Qwen2.5-7B-Instruct-AWQ }
  cloud-whisper: { engine: openai-compatible, cloud: true, url: ${url('cloud')}/v1, model: whisper-1, max_retries: 0, timeouts: { first_byte: 100ms } }
  budgeted-whisper: { engine: openai-compatible, cloud: true, url: ${url('cloud')}/v1, model: whisper-1, max_retries: 0 }
budgets:
  tight: { amount: 0.005, period: month, backends: [budgeted-whisper] }
roles:
  audio-transcribe: { kind: transcription, backends: [motoko-whisper], aliases: [whisper-1], fallbacks: [audio-spare] }
  audio-spare: { kind: transcription, backends: [spare-whisper] }
  chat-fast: { kind: chat, backends: [armitage-qwen] }
  openai/whisper: { kind: transcription, backends: [cloud-whisper] }
  openai/whisper-budgeted: { kind: transcription, backends: [budgeted-whisper] }
`,
  });
  client = new OpenAI({ baseURL: `${f.url}/v1`, apiKey: MASTER, maxRetries: 0, timeout: 10_000 });
});

after(async () => {
  await f.close();
});

test('the openai SDK transcribes through a role and its alias: the backend gets its own model and the same audio; the answer is OpenAI\'s', async () => {
  const audio = wav(2);
  const before = sent('motoko');
  const { data, response } = await client.audio.transcriptions.create({ file: await toFile(audio, 'note.wav', { type: 'audio/wav' }), model: 'whisper-1', language: 'en' }).withResponse();
  assert.equal(typeof data.text, 'string');
  assert.ok(data.text.length > 0);
  assert.deepEqual([response.headers.get('x-fabric-role'), response.headers.get('x-fabric-backend')], ['audio-transcribe', 'motoko-whisper']);
  assert.equal(sent('motoko') - before, 1);
  const form = lastForm('motoko');
  assert.equal(form.fields.model, WHISPER, 'the physical model, never the role name');
  assert.equal(form.fields.language, 'en', 'the other fields go on as sent');
  assert.equal(form.fields.response_format, 'json');
  assert.equal(form.files.file.filename, 'note.wav');
  assert.equal(form.files.file.size, audio.length);
  assert.equal(form.files.file.digest, (await import('node:crypto')).createHash('sha256').update(audio).digest('hex'), 'the same bytes');
  assert.deepEqual(openaiSchemaValidator()('CreateTranscriptionResponseJson', data), []);
  assert.deepEqual((data as unknown as { usage: unknown }).usage, { type: 'duration', seconds: Math.ceil(audio.length / 32_000) }, 'the engine\'s own count (the simulator\'s: 32,000 bytes a second)');
});

test('every response format: text as plain text (vLLM answers it with JSON), verbose JSON with a numeric duration, and srt and vtt written from the segments (vLLM refuses both)', async () => {
  const file = { name: 'memo.wav', bytes: wav(3, 523) };
  const json = await upload('/v1/audio/transcriptions', { model: 'audio-transcribe' }, file);
  const text = await upload('/v1/audio/transcriptions', { model: 'audio-transcribe', response_format: 'text' }, file);
  assert.equal(text.status, 200, text.text);
  assert.match(text.headers.get('content-type')!, /^text\/plain/);
  assert.equal(text.text, json.json.text);
  const verbose = await upload('/v1/audio/transcriptions', { model: 'audio-transcribe', response_format: 'verbose_json' }, file);
  assert.equal(lastForm('motoko').fields.response_format, 'verbose_json');
  assert.equal(verbose.json.duration, 3);
  assert.deepEqual(verbose.json.usage, { type: 'duration', seconds: 3 });
  assert.equal(verbose.json.text, json.json.text);
  assert.ok(verbose.json.segments.length >= 1);
  const srt = await upload('/v1/audio/transcriptions', { model: 'audio-transcribe', response_format: 'srt' }, file);
  assert.equal(srt.status, 200, srt.text);
  assert.equal(lastForm('motoko').fields.response_format, 'verbose_json', 'asked of vLLM as verbose JSON');
  const seg = verbose.json.segments;
  const stamp = (s: number, sep: string) => `00:00:${String(Math.floor(s)).padStart(2, '0')}${sep}${String(Math.round((s % 1) * 1000)).padStart(3, '0')}`;
  assert.equal(srt.text, seg.map((s: any, i: number) => `${i + 1}\n${stamp(s.start, ',')} --> ${stamp(s.end, ',')}\n${s.text.trim()}\n`).join('\n'));
  const vtt = await upload('/v1/audio/transcriptions', { model: 'audio-transcribe', response_format: 'vtt' }, file);
  assert.match(vtt.headers.get('content-type')!, /^text\/vtt/);
  assert.equal(vtt.text, `WEBVTT\n\n${seg.map((s: any) => `${stamp(s.start, '.')} --> ${stamp(s.end, '.')}\n${s.text.trim()}\n`).join('\n')}`);
  assert.ok(srt.text.includes('00:00:03,000'), srt.text);
  assert.deepEqual(openaiSchemaValidator()('CreateTranscriptionResponseVerboseJson', verbose.json), [], 'vLLM\'s null words and no_speech_prob mended');
});

test('OpenAI as a backend: every format as the client asked, its verbose answer kept; a stream request it answers whole, after the first-byte timeout, is one delta and the end', async () => {
  const file = { name: 'call.wav', bytes: wav(2, 350) };
  const json = await upload('/v1/audio/transcriptions', { model: 'openai/whisper' }, file);
  assert.equal(json.status, 200, json.text);
  assert.equal(lastForm('cloud').fields.response_format, 'json');
  const text = await upload('/v1/audio/transcriptions', { model: 'openai/whisper', response_format: 'text' }, file);
  assert.equal(text.text, json.json.text);
  const verbose = await upload('/v1/audio/transcriptions', { model: 'openai/whisper', response_format: 'verbose_json', language: 'de' }, file);
  assert.deepEqual([verbose.json.language, verbose.json.task, typeof verbose.json.duration], ['german', 'transcribe', 'number']);
  assert.deepEqual(openaiSchemaValidator()('CreateTranscriptionResponseVerboseJson', verbose.json), []);
  const vtt = await upload('/v1/audio/transcriptions', { model: 'openai/whisper', response_format: 'vtt' }, file);
  assert.match(vtt.text, /^WEBVTT\n\n00:00:00\.000 --> /);
  // whisper-1 ignores stream and answers whole, 300 ms on: past this backend's first_byte (100 ms), which audio streams do not keep.
  const stream = await client.audio.transcriptions.create({ file: await toFile(file.bytes, 'call.wav', { type: 'audio/wav' }), model: 'openai/whisper', stream: true });
  const events: any[] = [];
  for await (const e of stream) events.push(e);
  assert.equal(lastForm('cloud').fields.stream, 'true');
  assert.equal(lastForm('cloud').fields.stream_include_usage, undefined, 'a field OpenAI would refuse');
  assert.deepEqual(events, [{ type: 'transcript.text.delta', delta: json.json.text }, { type: 'transcript.text.done', text: json.json.text }]);
});

test('whisper-1 is billed by the minute (OpenAI\'s list price, or prices: audio_minute): transcriptions by their usage, translations by the duration asked of them', async () => {
  /** The cost its usage record and log line carry. */
  const costOf = async (r: { headers: Headers }): Promise<number> => (await waitForLog(f, 0, (l) => l.msg === 'request' && l.id === r.headers.get('x-request-id'))).cost;
  const minute = await upload('/v1/audio/transcriptions', { model: 'openai/whisper' }, { name: 'min.wav', bytes: wav(60, 410) });
  assert.equal(minute.status, 200, minute.text);
  assert.deepEqual(minute.json.usage, { type: 'duration', seconds: 61 }, 'whisper-1 reports whole seconds, rounded up');
  assert.ok(Math.abs(await costOf(minute) - (61 / 60) * 0.006) < 1e-12);
  const t = await upload('/v1/audio/translations', { model: 'openai/whisper' }, { name: 'fr.wav', bytes: wav(30, 420) });
  assert.deepEqual(t.json, { text: t.json.text }, 'the JSON a translation has, though verbose JSON was asked of whisper-1');
  assert.equal(lastForm('cloud').fields.response_format, 'verbose_json');
  assert.ok(Math.abs(await costOf(t) - (30 / 60) * 0.006) < 1e-6);
  // Local Whisper costs nothing unless priced.
  const local = await upload('/v1/audio/transcriptions', { model: 'audio-transcribe' }, { name: 'min.wav', bytes: wav(1, 410) });
  assert.equal(await costOf(local), undefined);
});

test('translations: the SDK\'s own call, answered as OpenAI answers it', async () => {
  const before = sent('motoko');
  const t = await client.audio.translations.create({ file: await toFile(wav(1, 300), 'fr.wav', { type: 'audio/wav' }), model: 'audio-transcribe' });
  assert.ok(t.text.length > 0);
  assert.equal(sent('motoko') - before, 1);
  assert.equal(f.fleet.get('motoko').requests().at(-1)!.path, '/v1/audio/translations');
  assert.deepEqual(openaiSchemaValidator()('CreateTranslationResponseJson', t), []);
});

test('a backend down: the fallback role transcribes the same upload', async () => {
  await f.fleet.get('motoko').setFault({ kind: 'down' });
  try {
    const r = await upload('/v1/audio/transcriptions', { model: 'audio-transcribe' }, { name: 'a.wav', bytes: wav(1) });
    assert.equal(r.status, 200, r.text);
    assert.deepEqual([r.headers.get('x-fabric-role'), r.headers.get('x-fabric-rerouted')], ['audio-spare', 'true']);
    assert.equal(lastForm('spare').files.file.size, wav(1).length);
  } finally {
    await f.fleet.get('motoko').setFault(null);
  }
});

test('bad uploads get a clear error naming the field, and nothing is sent upstream', async () => {
  const before = sent('motoko') + sent('spare');
  const file = { name: 'a.wav', bytes: wav(1) };
  const cases: Array<[Promise<{ status: number; json: any }>, number, string, string | null, RegExp]> = [
    [upload('/v1/audio/transcriptions', { model: 'audio-transcribe' }), 400, 'invalid_request', 'file', /`file` is required/],
    [upload('/v1/audio/transcriptions', { model: 'audio-transcribe', file: 'not a file' }), 400, 'invalid_request', 'file', /must be a file part/],
    [upload('/v1/audio/transcriptions', {}, file), 400, 'invalid_request', 'model', /`model` is required/],
    [upload('/v1/audio/transcriptions', { model: 'audio-transcribe', response_format: 'mp3' }, file), 400, 'invalid_request', 'response_format', /must be one of json, text, srt, verbose_json, vtt/],
    [upload('/v1/audio/transcriptions', { model: 'audio-transcribe', stream: 'true', response_format: 'srt' }, file), 400, 'invalid_request', 'response_format', /a stream carries text as it is made: `response_format` json or text, not srt/],
    [upload('/v1/audio/transcriptions', { model: 'audio-transcribe', stream: 'maybe' }, file), 400, 'invalid_request', 'stream', /must be true or false, got "maybe"/],
    [upload('/v1/audio/transcriptions', { model: 'audio-transcribe', api_base: 'http://evil' }, file), 400, 'forbidden_parameter', 'api_base', /not accepted/],
    [upload('/v1/audio/transcriptions', { model: 'chat-fast' }, file), 400, 'wrong_model_kind', 'model', /a chat model; use \/v1\/chat\/completions/],
    [upload('/v1/audio/transcriptions', { model: 'whisper-2' }, file), 404, 'model_not_found', 'model', /whisper-2/],
    [upload('/v1/audio/transcriptions', { model: 'audio-transcribe' }, { name: 'big.wav', bytes: Buffer.alloc(3 * 2 ** 20) }), 413, 'body_too_large', null, /gateway\.limits\.max_audio/],
    [post(f.url, '/v1/audio/transcriptions', { model: 'audio-transcribe', file: 'x' }, auth), 415, 'unsupported_media_type', null, /takes multipart\/form-data/],
    [post(f.url, '/v1/chat/completions', { model: 'audio-transcribe', messages: [{ role: 'user', content: 'hi' }] }, auth), 400, 'wrong_model_kind', 'model', /a transcription model; use \/v1\/audio\/transcriptions/],
    [upload('/v1/audio/transcriptions', { model: 'audio-transcribe' }, file, {}), 401, 'invalid_api_key', null, /API key/],
  ];
  for (const [i, [p, status, code, param, message]] of cases.entries()) {
    const r = await p;
    assert.equal(r.status, status, `case ${i}: ${JSON.stringify(r.json)}`);
    assert.equal(r.json.error.code, code, `case ${i}`);
    assert.equal(r.json.error.param, param, `case ${i}`);
    assert.match(r.json.error.message, message, `case ${i}`);
  }
  assert.equal(sent('motoko') + sent('spare'), before);
});

test('an engine\'s refusal is passed on as OpenAI\'s error; the request is logged and recorded under its role', async () => {
  await f.fleet.get('motoko').setFault({ kind: 'error', status: 400 }, 1);
  const refused = await upload('/v1/audio/transcriptions', { model: 'audio-transcribe' }, { name: 'b.wav', bytes: wav(1, 700) });
  assert.equal(refused.status, 400, refused.text);
  assert.equal(refused.json.error.code, 'upstream_rejected');
  assert.equal(refused.json.error.message, 'HTTP 400', 'the engine\'s own words');
  const from = f.logs.length;
  const r = await upload('/v1/audio/transcriptions', { model: 'audio-transcribe', response_format: 'json' }, { name: 'b.wav', bytes: wav(1, 700) });
  assert.equal(r.status, 200);
  const line = await waitForLog(f, from, (l) => l.msg === 'request' && l.op === 'transcriptions' && l.status === 200);
  assert.equal(line.role, 'audio-transcribe', JSON.stringify(line));
  assert.equal(line.audio_bytes, wav(1).length);
  const usage = await eventually(async () => (await fetch(`${f.url}/admin/usage?by=role`, { headers: auth })).json() as Promise<any>, (u) => u.data?.some((x: any) => x.role === 'audio-transcribe' && x.requests >= 5));
  assert.ok(usage.data.some((x: any) => x.role === 'audio-transcribe' && x.requests >= 5), JSON.stringify(usage));
});

test('a transcription role takes only engines that serve the audio endpoints; rules on text do not apply to it', () => {
  const { issues } = parseFabricText(`
backends:
  o: { engine: ollama, url: http://127.0.0.1:11434, model: whisper }
  l: { engine: llamacpp, url: http://127.0.0.1:8080/v1, model: whisper }
  v: { engine: vllm, url: http://127.0.0.1:8000/v1, model: ${WHISPER} }
gateway:
  cache: true
roles:
  audio: { kind: transcription, backends: [v, o, l], rules: [{ if_input_tokens_over: 10, route_to: audio2 }, { if_input_has: image, route_to: audio2 }] }
  audio2: { kind: transcription, backends: [v], cache: { ttl: 1h } }
patterns:
  - { match: "whisper-*", kind: transcription, backends: [o] }
`, '/etc/fabric/fabric.yaml');
  const lines = issues.map(formatIssue).map((l) => l.replace(/^.*?(error|warning): /, '$1: '));
  assert.deepEqual(lines.filter((l) => l.startsWith('error')), [
    'error: roles.audio.backends[1]: o runs on ollama, which does not serve /v1/audio/transcriptions: use vllm (a Whisper model), openai, or openai-compatible (speaches, LocalAI)',
    'error: roles.audio.backends[2]: l runs on llamacpp, which does not serve /v1/audio/transcriptions: use vllm (a Whisper model), openai, or openai-compatible (speaches, LocalAI)',
    'error: roles.audio.rules[0].if_input_tokens_over: a transcription request\'s input is audio, with no text to count',
    'error: roles.audio.rules[1].if_input_has: only chat requests carry images, audio or tools: this is a transcription role',
    'error: patterns[0].backends[0]: o runs on ollama, which does not serve /v1/audio/transcriptions: use vllm (a Whisper model), openai, or openai-compatible (speaches, LocalAI)',
  ]);
  assert.ok(lines.includes('warning: roles.audio2.cache: audio is never cached: this setting does nothing on a transcription role'), lines.join('\n'));
});

test('max_audio gives way to a smaller max_body_in_flight when left at its default; set above it, it is refused', () => {
  const cfg = (limits: string) => parseFabricText(`gateway:\n  limits: ${limits}\nbackends:\n  v: { engine: vllm, url: http://127.0.0.1:8000/v1, model: m }\nroles:\n  chat: { kind: chat, backends: [v] }\n`, '/etc/fabric/fabric.yaml');
  const small = cfg('{ max_body: 4MiB, max_body_in_flight: 16MiB }');
  assert.deepEqual(small.issues, [], 'a config of before audio loads as it did');
  assert.equal(small.config.gateway.limits.maxAudioBytes, 16 * 2 ** 20);
  assert.equal(cfg('{}').config.gateway.limits.maxAudioBytes, 25 * 2 ** 20);
  assert.match(formatIssue(cfg('{ max_audio: 32MiB, max_body_in_flight: 16MiB }').issues[0]!), /error: gateway\.limits\.max_audio: must be at most max_body_in_flight \(16777216 bytes\)/);
});

test('keys: a key\'s roles and rate limits hold on audio as on chat; audio is never cached, whatever the cache says', async () => {
  const admin = (body: unknown) => fetch(`${f.url}/admin/keys`, { method: 'POST', headers: { ...auth, 'content-type': 'application/json' }, body: JSON.stringify(body) }).then((r) => r.json() as Promise<any>);
  const chatOnly = await admin({ name: 'chat-only', roles: ['chat-fast'] });
  const file = { name: 'k.wav', bytes: wav(1, 620) };
  const refused = await upload('/v1/audio/transcriptions', { model: 'audio-transcribe' }, file, { authorization: `Bearer ${chatOnly.key}` });
  assert.equal(refused.status, 403, refused.text);
  assert.equal(refused.json.error.code, 'model_not_allowed');
  const once = await admin({ name: 'one-a-minute', roles: ['audio-transcribe'], rpm: 1 });
  const before = sent('motoko');
  const first = await upload('/v1/audio/transcriptions', { model: 'audio-transcribe' }, file, { authorization: `Bearer ${once.key}` });
  assert.equal(first.status, 200, first.text);
  assert.equal(first.headers.get('x-fabric-cache'), null);
  const second = await upload('/v1/audio/transcriptions', { model: 'audio-transcribe' }, file, { authorization: `Bearer ${once.key}` });
  assert.equal(second.status, 429, second.text);
  assert.ok(Number(second.headers.get('retry-after')) > 0);
  const again = await upload('/v1/audio/transcriptions', { model: 'audio-transcribe' }, file);
  assert.equal(again.status, 200);
  assert.equal(sent('motoko') - before, 2, 'the same upload twice: both transcribed, neither from the cache');
});

test('uploads held while a slow Whisper works count against max_body_in_flight: past it the next is a 503 to retry, and the first is answered', async () => {
  await f.fleet.get('motoko').setFault({ kind: 'slow', factor: 200 });
  const big = { name: 'long.wav', bytes: wav(50) }; // 1.5 MiB: two are past 3 MiB
  const before = sent('motoko');
  const first = upload('/v1/audio/transcriptions', { model: 'audio-transcribe' }, big);
  await eventually(() => sent('motoko') - before, (n) => n === 1);
  const second = await upload('/v1/audio/transcriptions', { model: 'audio-transcribe' }, { name: 'long2.wav', bytes: wav(50, 200) });
  assert.equal(second.status, 503, second.text);
  assert.equal(second.json.error.code, 'gateway_overloaded');
  // Refused as it arrives, or once whole: either way the upload held is what it meets.
  assert.match(second.json.error.message, /hold 1\.5 MiB of the 3 MiB the gateway buffers at once \(gateway\.limits\.max_body_in_flight\): retry shortly/);
  assert.equal(second.headers.get('retry-after'), '1');
  await f.fleet.get('motoko').setFault(null);
  assert.equal((await first).status, 200);
  const third = await upload('/v1/audio/transcriptions', { model: 'audio-transcribe' }, { name: 'long2.wav', bytes: wav(50, 200) });
  assert.equal(third.status, 200, 'given back once answered');
});

test('a stream: vLLM\'s transcription chunks become OpenAI\'s transcript.text events, with the usage vLLM was asked for; the SDK reads them', async () => {
  const audio = wav(2, 880);
  const stream = await client.audio.transcriptions.create({ file: await toFile(audio, 'live.wav', { type: 'audio/wav' }), model: 'audio-transcribe', stream: true });
  const events: any[] = [];
  for await (const e of stream) events.push(e);
  const form = lastForm('motoko');
  assert.deepEqual([form.fields.stream, form.fields.stream_include_usage, form.fields.response_format], ['true', 'true', 'json']);
  const deltas = events.filter((e) => e.type === 'transcript.text.delta');
  const done = events.at(-1);
  assert.ok(deltas.length > 1, 'the text as it is made');
  assert.equal(done.type, 'transcript.text.done');
  assert.equal(done.text, deltas.map((d) => d.delta).join(''));
  assert.equal(done.usage.type, 'tokens');
  assert.ok(done.usage.input_tokens > 0 && done.usage.output_tokens === deltas.length, JSON.stringify(done.usage));
  const v = openaiSchemaValidator();
  for (const e of events) assert.deepEqual(v(e.type === 'transcript.text.done' ? 'TranscriptTextDoneEvent' : 'TranscriptTextDeltaEvent', e), [], JSON.stringify(e));
  // The same audio whole gives the same text.
  const whole = await client.audio.transcriptions.create({ file: await toFile(audio, 'live.wav', { type: 'audio/wav' }), model: 'audio-transcribe' });
  assert.equal(whole.text, done.text);
});

test('a stream falls back before its first byte, and one that breaks after it ends with an error event the SDK raises', async () => {
  await f.fleet.get('motoko').setFault({ kind: 'down' });
  try {
    const r = await upload('/v1/audio/transcriptions', { model: 'audio-transcribe', stream: 'true' }, { name: 'a.wav', bytes: wav(1) });
    assert.equal(r.status, 200);
    assert.equal(r.headers.get('x-fabric-role'), 'audio-spare');
    assert.match(r.text, /"type":"transcript\.text\.done"/);
  } finally {
    await f.fleet.get('motoko').setFault(null);
  }
  await f.fleet.get('motoko').setFault({ kind: 'drop', afterChunks: 2 }, 1);
  const stream = await client.audio.transcriptions.create({ file: await toFile(wav(2, 990), 'cut.wav', { type: 'audio/wav' }), model: 'audio-transcribe', stream: true });
  const got: any[] = [];
  await assert.rejects(async () => { for await (const e of stream) got.push(e); }, /interrupted/);
  assert.ok(got.length >= 1 && got.every((e) => e.type === 'transcript.text.delta'), JSON.stringify(got));
});

test('a budget holds what an upload could cost before it is sent: its bytes at 8 kbit/s, at the minute\'s price', async () => {
  const before = sent('cloud');
  // 1 s of WAV is 32,044 bytes: held as 32 s of audio, $0.0032 of the $0.005 budget.
  const small = await upload('/v1/audio/transcriptions', { model: 'openai/whisper-budgeted' }, { name: 's.wav', bytes: wav(1, 500) });
  assert.equal(small.status, 200, small.text);
  // 2 s: held as 64 s, $0.0064, more than the budget has: not sent.
  const big = await upload('/v1/audio/transcriptions', { model: 'openai/whisper-budgeted' }, { name: 'b.wav', bytes: wav(2, 500) });
  assert.equal(big.status, 429, big.text);
  assert.equal(big.json.error.code, 'insufficient_quota');
  assert.match(big.json.error.message, /tight/);
  assert.equal(sent('cloud') - before, 1, 'the second never reached the backend');
});

test('the request log keeps an upload\'s record but none of its audio, nor the transcript', async () => {
  const file = { name: 'private.wav', bytes: wav(1, 777) };
  const r = await upload('/v1/audio/transcriptions', { model: 'audio-transcribe', prompt: 'names: Case, Molly' }, file);
  assert.equal(r.status, 200, r.text);
  await f.gw.app.accounting!.writer.flush();
  const logged = await fetch(`${f.url}/admin/requests?id=${r.headers.get('x-request-id')}`, { headers: auth }).then((x) => x.json()) as any;
  assert.equal(logged.enabled, true);
  assert.equal(logged.data.length, 1, JSON.stringify(logged));
  const e = logged.data[0];
  for (const v of [e.request, e.response]) assert.ok(v === null || v === undefined || v === '', `no body kept: ${String(v).slice(0, 100)}`);
  assert.ok(!JSON.stringify(e).includes(r.json.text), 'the transcript is not kept');
  assert.ok(!JSON.stringify(e).includes('Molly'), 'nor the prompt field');
});

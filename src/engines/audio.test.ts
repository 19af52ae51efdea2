import { test } from 'node:test';
import assert from 'node:assert/strict';
import { AudioStreamTranslator, audioAnswer, upstreamBody } from './audio.ts';
import { parseAudioRequest } from '../http/audio.ts';

const parse = (s: string): unknown[] => s.split('\n\n').filter((e) => e !== '').map((e) => JSON.parse(e.replace(/^data: /, '')));

test('vLLM\'s stream: each chunk\'s text a delta; its usage chunk and [DONE] the done event with the whole text and tokens', () => {
  const t = new AudioStreamTranslator();
  const chunk = (content: string, extra = {}) => `data: ${JSON.stringify({ id: 'transcribe-1', object: 'transcription.chunk', created: 1, model: 'w', choices: [{ delta: { content }, ...extra }] })}`;
  assert.deepEqual(parse(t.line(chunk(' Hello'))), [{ type: 'transcript.text.delta', delta: ' Hello' }]);
  assert.equal(t.line(''), '', 'the blank line between events');
  assert.equal(t.line(': keep-alive'), '');
  assert.deepEqual(parse(t.line(chunk(' world.', { finish_reason: 'stop', stop_reason: null }))), [{ type: 'transcript.text.delta', delta: ' world.' }]);
  assert.equal(t.line(`data: ${JSON.stringify({ id: 'x', object: 'transcription.chunk', choices: [], usage: { prompt_tokens: 207, total_tokens: 210, completion_tokens: 3 } })}`), '');
  assert.equal(t.done(), false);
  assert.deepEqual(parse(t.line('data: [DONE]')), [{ type: 'transcript.text.done', text: ' Hello world.', usage: { type: 'tokens', input_tokens: 207, output_tokens: 3, total_tokens: 210 } }]);
  assert.equal(t.done(), true);
  assert.deepEqual(t.usage(), { prompt_tokens: 207, completion_tokens: 3, total_tokens: 210 });
});

test('OpenAI\'s own events pass as sent; a whole JSON answer (whisper-1 does not stream) is one delta and the end', () => {
  const t = new AudioStreamTranslator();
  const delta = 'data: {"type":"transcript.text.delta","delta":"Hi"}';
  assert.equal(t.line(delta), `${delta}\n\n`);
  const done = 'data: {"type":"transcript.text.done","text":"Hi","usage":{"type":"tokens","input_tokens":9,"output_tokens":1,"total_tokens":10}}';
  assert.equal(t.line(done), `${done}\n\n`);
  assert.equal(t.done(), true);
  assert.deepEqual(t.usage(), { prompt_tokens: 9, completion_tokens: 1, total_tokens: 10 });
  const w = new AudioStreamTranslator();
  assert.equal(w.line('{'), '', 'pretty-printed: kept until the upstream ends');
  assert.equal(w.line('  "text": "Good morning." }'), '');
  assert.equal(w.done(), false);
  assert.deepEqual(parse(w.end()), [{ type: 'transcript.text.delta', delta: 'Good morning.' }, { type: 'transcript.text.done', text: 'Good morning.' }]);
  assert.equal(w.done(), true);
  // Read once, at the end: lines of something else are refused at the first, never parsed again and again.
  assert.throws(() => new AudioStreamTranslator().line('['), /neither a stream nor JSON/);
  const big = new AudioStreamTranslator();
  big.line('{"text": "');
  assert.throws(() => { for (let i = 0; i < 20_000; i++) big.line('x'.repeat(100)); }, /of a size a transcription has/);
  assert.throws(() => { const t = new AudioStreamTranslator(); t.line('{"text": '); t.end(); }, /neither a stream nor JSON/);
});

test('an error event or an event that is no transcription fails the stream (before its start, the attempt)', () => {
  assert.throws(() => new AudioStreamTranslator().line('data: {"error":{"message":"EngineCore died","code":500}}'), /error event: EngineCore died/);
  assert.throws(() => new AudioStreamTranslator().line('data: {"object":"chat.completion"}'), /no transcription chunk/);
  assert.throws(() => new AudioStreamTranslator().line('data: {nope'), /not JSON/);
  assert.throws(() => { const t = new AudioStreamTranslator(); t.line('{"answer": 1}'); t.end(); }, /not a transcription/);
});

test('answers in every format: subtitles from the segments (hours, milliseconds), one cue when there are none', () => {
  const verbose = { duration: '3725.50', language: 'en', text: ' One. Two.', segments: [{ id: 0, start: 0, end: 1.5, text: ' One.' }, { id: 1, start: 3723.25, end: 3725.5, text: ' Two.' }], words: null };
  const srt = audioAnswer('transcriptions', 'srt', verbose, 200);
  assert.equal(srt.text, '1\n00:00:00,000 --> 00:00:01,500\nOne.\n\n2\n01:02:03,250 --> 01:02:05,500\nTwo.\n');
  assert.equal(audioAnswer('transcriptions', 'vtt', verbose, 200).text, 'WEBVTT\n\n00:00:00.000 --> 00:00:01.500\nOne.\n\n01:02:03.250 --> 01:02:05.500\nTwo.\n');
  const v = JSON.parse(audioAnswer('transcriptions', 'verbose_json', verbose, 200).text);
  assert.equal(v.duration, 3725.5);
  assert.deepEqual(v.usage, { type: 'duration', seconds: 3726 });
  assert.equal(JSON.parse(audioAnswer('translations', 'verbose_json', verbose, 200).text).usage, undefined, 'OpenAI\'s verbose translation has no usage');
  assert.equal(audioAnswer('transcriptions', 'srt', { text: ' Just this. ', duration: 2 }, 200).text, '1\n00:00:00,000 --> 00:00:02,000\nJust this.\n');
  assert.equal(audioAnswer('transcriptions', 'text', { text: 'plain' }, 200).text, 'plain');
  assert.deepEqual(audioAnswer('transcriptions', 'json', { text: 'x', usage: { type: 'tokens', input_tokens: 5, output_tokens: 2 } }, 200).usage, { prompt_tokens: 5, completion_tokens: 2, total_tokens: 7 });
  assert.throws(() => audioAnswer('transcriptions', 'json', { object: 'error' }, 200), /not a transcription/);
});

test('each backend\'s form: its model, the format the gateway reads, the client\'s other parts and file as sent; vLLM alone is asked for stream usage', async () => {
  const form = new FormData();
  form.set('model', 'audio-transcribe');
  form.set('file', new Blob([Buffer.from('RIFF....WAVE\r\n--not-the-boundary')], { type: 'audio/wav' }), 'memo.wav');
  form.set('language', 'de');
  form.append('timestamp_granularities[]', 'segment');
  form.set('response_format', 'srt');
  const r = new Response(form);
  const sent = Buffer.from(await r.arrayBuffer());
  const req = parseAudioRequest('transcriptions', sent, r.headers.get('content-type')!);
  assert.deepEqual([req.model, req.format, req.stream, req.fileBytes], ['audio-transcribe', 'srt', false, 32]);
  const read = async (engine: 'vllm' | 'openai', q: typeof req) => {
    const u = upstreamBody(q, 'openai/whisper-large-v3', engine);
    return new Response(Buffer.concat(u.body), { headers: { 'content-type': u.contentType } }).formData();
  };
  // Read back by the platform's own parser, as an engine reads it.
  const got = await read('vllm', req);
  assert.deepEqual([...got.keys()], ['model', 'response_format', 'file', 'language', 'timestamp_granularities[]']);
  assert.equal(got.get('model'), 'openai/whisper-large-v3');
  assert.equal(got.get('response_format'), 'verbose_json');
  assert.equal(got.get('language'), 'de');
  const file = got.get('file') as File;
  assert.deepEqual([file.name, file.type], ['memo.wav', 'audio/wav']);
  assert.equal(Buffer.from(await file.arrayBuffer()).toString(), 'RIFF....WAVE\r\n--not-the-boundary');
  assert.equal(got.get('stream'), null);
  assert.equal(upstreamBody(req, 'openai/whisper-large-v3', 'vllm'), upstreamBody(req, 'openai/whisper-large-v3', 'vllm'), 'made once for an engine and model');
  const streamed = { ...req, format: 'json' as const, stream: true, encoded: undefined };
  assert.deepEqual([(await read('vllm', streamed)).get('stream'), (await read('vllm', streamed)).get('stream_include_usage')], ['true', 'true']);
  assert.deepEqual([(await read('openai', streamed)).get('stream'), (await read('openai', streamed)).get('stream_include_usage')], ['true', null]);
});

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseEngineError } from './errors.ts';

test('engine error bodies are read in each engine\'s own shape; context-length errors are recognised', () => {
  const cases: [string, number, string, { message: string; contextLength: boolean; code?: string }][] = [
    ['OpenAI', 400, '{"error":{"message":"This model\'s maximum context length is 8192 tokens","type":"invalid_request_error","code":"context_length_exceeded"}}',
      { message: "This model's maximum context length is 8192 tokens", contextLength: true, code: 'context_length_exceeded' }],
    ['vLLM', 400, '{"object":"error","message":"This model\'s maximum context length is 8192 tokens. However, you requested 9000 tokens","type":"BadRequestError","param":null,"code":400}',
      { message: "This model's maximum context length is 8192 tokens. However, you requested 9000 tokens", contextLength: true, code: '400' }],
    ['llama.cpp', 400, '{"error":{"code":400,"message":"the request exceeds the available context size, try increasing it","type":"exceed_context_size_error"}}',
      { message: 'the request exceeds the available context size, try increasing it', contextLength: true, code: '400' }],
    ['Ollama', 404, '{"error":"model \\"qwen2.5:7b\\" not found, try pulling it first"}',
      { message: 'model "qwen2.5:7b" not found, try pulling it first', contextLength: false }],
    ['plain text', 502, 'Bad Gateway', { message: 'Bad Gateway', contextLength: false }],
    ['empty', 500, '', { message: 'HTTP 500', contextLength: false }],
    ['llama.cpp, a pooling input past its physical batch (a 500)', 500, '{"error":{"code":500,"message":"input (807 tokens) is too large to process. increase the physical batch size (current batch size: 512)","type":"server_error"}}',
      { message: 'input (807 tokens) is too large to process. increase the physical batch size (current batch size: 512) (start llama-server with --ubatch-size as large as its context size)', contextLength: true }],
    ['llama.cpp before it named the sizes', 500, '{"error":{"code":500,"message":"input is too large to process. increase the physical batch size","type":"server_error"}}',
      { message: 'input is too large to process. increase the physical batch size (start llama-server with --ubatch-size as large as its context size)', contextLength: true }],
    ['context words on a 5xx are not a context error', 500, '{"error":"maximum context length reached in the scheduler"}',
      { message: 'maximum context length reached in the scheduler', contextLength: false }],
  ];
  for (const [name, status, body, want] of cases) {
    const got = parseEngineError(status, body);
    assert.equal(got.message, want.message, name);
    assert.equal(got.contextLength, want.contextLength, name);
    if (want.code !== undefined) assert.equal(got.code, want.code, name);
  }
});

test('the field an engine names as wrong: OpenAI\'s param, or vLLM\'s matryoshka refusal (param null) as dimensions; never free text', () => {
  assert.equal(parseEngineError(400, JSON.stringify({ error: { message: "Invalid value for 'temperature'", type: 'invalid_request_error', param: 'temperature', code: null } })).param, 'temperature');
  assert.equal(parseEngineError(400, JSON.stringify({ object: 'error', message: 'Model "BAAI/bge-base-en-v1.5" does not support matryoshka representation, changing output dimensions will lead to poor results.', type: 'BadRequestError', param: null, code: 400 })).param, 'dimensions');
  assert.equal(parseEngineError(400, JSON.stringify({ error: { message: 'x', param: 'not a field name; it has spaces' } })).param, undefined);
  assert.equal(parseEngineError(400, JSON.stringify({ error: 'bad' })).param, undefined);
});

test('refusals that come from how a server was started name the field and the fix, so that the backend is passed over, not blamed', () => {
  const vllm = parseEngineError(400, JSON.stringify({ error: { message: '"auto" tool choice requires --enable-auto-tool-choice and --tool-call-parser to be set', type: 'BadRequestError', param: null, code: 400 } }));
  assert.equal(vllm.unsupportedParam, 'tool_choice');
  assert.match(vllm.message, /serve\.tool_parser/);
  const jinja = parseEngineError(500, JSON.stringify({ error: { code: 500, message: 'tools param requires --jinja flag', type: 'server_error' } }));
  assert.equal(jinja.unsupportedParam, 'tools');
  assert.match(jinja.message, /^tools param requires --jinja flag \(start llama-server with --jinja\)$/);
  assert.equal(parseEngineError(500, JSON.stringify({ error: { code: 500, message: 'tool_choice param requires --jinja flag', type: 'server_error' } })).unsupportedParam, 'tool_choice');
  // The same words from a gateway in front of it (a 502) or quoted in other text are not a refusal.
  assert.equal(parseEngineError(502, 'tools param requires --jinja flag').unsupportedParam, undefined);
  assert.equal(parseEngineError(500, 'upstream said: tools param requires --jinja flag').unsupportedParam, undefined);
});

// The fleet API and the operator control server.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { startFleet } from './fleet.ts';
import { FAST, at, post, withFleet } from './test-helpers.ts';

const specs = [
  { name: 'armitage', protocol: 'vllm' as const, model: 'm1', kind: 'chat' as const, timing: FAST },
  { name: 'wintermute', protocol: 'ollama' as const, model: 'm2:7b', kind: 'chat' as const, timing: FAST },
];

async function send(url: string, method: string, body?: unknown): Promise<{ status: number; json: unknown }> {
  const res = await fetch(url, { method, body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body) });
  const text = await res.text();
  return { status: res.status, json: text === '' ? undefined : JSON.parse(text) };
}

test('startFleet: engines by name, urls without /v1, get() throws on unknown names', async () => {
  await withFleet(specs, async (fleet) => {
    assert.deepEqual([...fleet.engines.keys()], ['armitage', 'wintermute']);
    const a = fleet.get('armitage');
    assert.equal(a.protocol, 'vllm');
    assert.equal(a.model, 'm1');
    assert.match(a.url, /^http:\/\/127\.0\.0\.1:\d+$/);
    assert.equal(a.url, `http://127.0.0.1:${a.port}`);
    assert.equal(fleet.controlUrl, undefined);
    assert.throws(() => fleet.get('case'), /no simulated engine named case/);
  });
});

test('duplicate names are refused', async () => {
  await assert.rejects(startFleet([specs[0]!, specs[0]!]), /duplicate/);
});

test('control server: list, set, count down and clear faults', async () => {
  await withFleet(specs, async (fleet) => {
    const control = fleet.controlUrl!;
    assert.match(control, /^http:\/\/127\.0\.0\.1:\d+$/);
    const list = await send(`${control}/engines`, 'GET');
    assert.equal(list.status, 200);
    assert.deepEqual((list.json as { name: string }[]).map((e) => e.name), ['armitage', 'wintermute']);
    assert.equal(at(list.json, 0, 'fault'), null);
    assert.equal(at(list.json, 0, 'stats', 'requests'), 0);
    assert.equal(at(list.json, 1, 'url'), fleet.get('wintermute').url);

    const a = fleet.get('armitage');
    const set = await send(`${control}/engines/armitage/fault`, 'PUT', { kind: 'error', status: 502, remaining: 1 });
    assert.equal(set.status, 200);
    // The fault once, in the shape the PUT took (not nested in a second `fault`).
    assert.deepEqual(at(set.json, 'fault'), { kind: 'error', status: 502, remaining: 1 });
    assert.equal((await post(`${a.url}/v1/chat/completions`, { messages: [{ role: 'user', content: 'x' }] })).status, 502);
    assert.equal((await post(`${a.url}/v1/chat/completions`, { messages: [{ role: 'user', content: 'x' }] })).status, 200);
    assert.equal(at((await send(`${control}/engines/armitage`, 'GET')).json, 'fault'), null);

    await send(`${control}/engines/armitage/fault`, 'PUT', { kind: 'down' });
    await assert.rejects(fetch(`${a.url}/health`), TypeError);
    const cleared = await send(`${control}/engines/armitage/fault`, 'DELETE');
    assert.equal(cleared.status, 200);
    assert.equal((await fetch(`${a.url}/health`)).status, 200);

    const recs = await send(`${control}/engines/armitage/requests`, 'GET');
    assert.equal((recs.json as unknown[]).length, 2);
  }, { controlPort: 0 });
});

test('control server rejects bad faults and unknown engines', async () => {
  await withFleet(specs, async (fleet) => {
    const control = fleet.controlUrl!;
    assert.equal((await send(`${control}/engines/nobody/fault`, 'PUT', { kind: 'down' })).status, 404);
    assert.equal((await send(`${control}/engines/armitage/fault`, 'PUT', { kind: 'explode' })).status, 400);
    assert.equal((await send(`${control}/engines/armitage/fault`, 'PUT', '{oops')).status, 400);
    assert.equal((await send(`${control}/engines/armitage/fault`, 'PUT', { kind: 'slow', factor: 'x' })).status, 400);
    assert.equal((await send(`${control}/engines/armitage/fault`, 'PUT', { kind: 'hang', remaining: 0 })).status, 400);
    assert.equal((await send(`${control}/nothing`, 'GET')).status, 404);
    assert.equal(fleet.get('armitage').stats().requests, 0);
  }, { controlPort: 0 });
});

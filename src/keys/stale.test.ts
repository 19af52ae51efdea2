import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseFabricText } from '../config/load.ts';
import type { KeyRecord } from '../store/types.ts';
import { configResolves, staleKeyWarnings, staleRefs } from './stale.ts';

const { config } = parseFabricText(`
backends:
  a: { engine: vllm, url: http://127.0.0.1:9/v1, model: org/model-a, aliases: [box-a] }
roles:
  chat-fast: { kind: chat, backends: [a], aliases: [local/chat] }
patterns:
  - { match: "ft:*", backends: [a] }
`, 't.yaml');

const key = (over: Partial<KeyRecord>): KeyRecord => ({
  id: 'key_1', hash: 'h', hint: 'sk-fabric-ab…', name: 'k', metadata: {}, roles: undefined, expiresAt: undefined, budget: undefined,
  rpm: undefined, tpm: undefined, roleLimits: {}, createdAt: 0, updatedAt: 0, revokedAt: undefined, ...over,
});

test('a key\'s names are stale when nothing the gateway serves resolves them: roles, aliases, backend aliases, patterns and model ids all count', () => {
  const resolves = configResolves(config);
  assert.equal(staleRefs(key({ roles: ['chat-fast', 'local/chat', 'box-a', 'ft:x', 'org/model-a'], roleLimits: { 'chat-fast': { rpm: 1 } } }), resolves), undefined);
  assert.deepEqual(staleRefs(key({ roles: ['chat-fast', 'chat-cpp'], roleLimits: { 'chat-old': { rpm: 2 }, 'local/chat': { rpm: 1 } } }), resolves),
    { roles: ['chat-cpp'], roleLimits: ['chat-old'] });
  // No roles (all), or none at all ([]), names nothing.
  assert.equal(staleRefs(key({ roles: [] }), resolves), undefined);
});

test('only keys in use are warned of, by name and id; one whose every role is gone is said to be refused everything', () => {
  const resolves = configResolves(config);
  const lines = staleKeyWarnings([
    key({ id: 'key_a', name: 'gone', roles: ['chat-cpp'] }),
    key({ id: 'key_b', name: 'revoked', roles: ['chat-cpp'], revokedAt: 1 }),
    key({ id: 'key_c', name: 'expired', roles: ['chat-cpp'], expiresAt: 5 }),
    key({ id: 'key_d', name: 'partly', roles: ['chat-cpp', 'chat-fast'] }),
  ], resolves, 10);
  assert.equal(lines.length, 2);
  assert.match(lines[0]!, /^keys: key "gone" \(key_a\): its roles "chat-cpp" .* \(it is refused every model: 403/);
  assert.match(lines[1]!, /^keys: key "partly" \(key_d\): its roles "chat-cpp" name no role, alias or model of the config, so the key can no longer use it\. /);
});

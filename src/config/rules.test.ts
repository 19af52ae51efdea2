// Routing rules in the config: conditions on the input's size and on the virtual key, each
// checked with its line and key path, and a rule that an earlier one always takes warned of.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseFabricText } from './load.ts';
import { formatIssue } from './issues.ts';

const FILE = '/etc/fabric/fabric.yaml';
const fabric = (rules: string): string => `version: 1
backends:
  a: { engine: vllm, url: http://127.0.0.1:8000/v1, model: big }
  b: { engine: ollama, url: http://127.0.0.1:11434, model: small }
roles:
  chat:
    kind: chat
    backends: [a]
    rules:
${rules}
  chat-small: { kind: chat, backends: [b] }
`;
const parse = (rules: string) => {
  const r = parseFabricText(fabric(rules), FILE);
  return { rules: r.config.roles.get('chat')!.rules, lines: r.issues.map(formatIssue) };
};

test('a rule may set any of its three conditions; each is kept as written, metadata values as text', () => {
  const { rules, lines } = parse(`      - { if_input_has: [image, tools], route_to: chat-small }
      - { if_key_metadata: { tier: [free, trial], plan: 2 }, route_to: chat-small }
      - { if_key: bulk-bot, if_input_tokens_over: 500, route_to: chat-small }
      - { if_key: [a, b], route_to: chat-small }
      - { if_input_tokens_over: 12000, route_to: chat-small }`);
  assert.deepEqual(lines, []);
  assert.deepEqual(rules, [
    { routeTo: 'chat-small', inputHas: ['image', 'tools'] },
    { routeTo: 'chat-small', keyMetadata: { tier: ['free', 'trial'], plan: ['2'] } },
    { routeTo: 'chat-small', inputTokensOver: 500, keys: ['bulk-bot'] },
    { routeTo: 'chat-small', keys: ['a', 'b'] },
    { routeTo: 'chat-small', inputTokensOver: 12000 },
  ]);
});

test('a rule without a condition, or with an empty or malformed one, is an error at its line and key path, and later rules keep their index', () => {
  const { rules, lines } = parse(`      - { route_to: chat-small }
      - { if_key: [], route_to: chat-small }
      - { if_key_metadata: {}, route_to: chat-small }
      - { if_key_metadata: { tier: { nested: 1 } }, route_to: chat-small }
      - { if_key_metadata: free, route_to: chat-small }
      - { if_key_metadata: { tier: [] }, route_to: chat-small }
      - { if_input_tokens_over: 0, route_to: chat-small }
      - { if_key: x, route_to: chat-nope }
      - { if_key: x, when: y, route_to: chat-small }
      - just-a-name
      -
      - { if_key: [x], route_to: chat-nope }`);
  assert.equal(rules.length, 12);
  const errors = lines.filter((l) => l.includes(': error: '));
  const expect = [
    /fabric\.yaml:10:9: error: roles\.chat\.rules\[0\]: needs a condition: if_input_tokens_over \(a token count\), if_input_has \(image, audio, tools\), if_key \(virtual key names\) or if_key_metadata/,
    /fabric\.yaml:11:\d+: error: roles\.chat\.rules\[1\]\.if_key: names no key/,
    /fabric\.yaml:12:\d+: error: roles\.chat\.rules\[2\]\.if_key_metadata: is empty/,
    /fabric\.yaml:13:\d+: error: roles\.chat\.rules\[3\]\.if_key_metadata\.tier: must be a text, number or true\/false/,
    /fabric\.yaml:14:\d+: error: roles\.chat\.rules\[4\]\.if_key_metadata: must be a mapping of metadata fields to values, such as \{ tier: free \}, got string "free"/,
    /fabric\.yaml:15:\d+: error: roles\.chat\.rules\[5\]\.if_key_metadata\.tier: lists no value/,
    /fabric\.yaml:16:\d+: error: roles\.chat\.rules\[6\]\.if_input_tokens_over: must be an integer of at least 1, got number 0/,
    /fabric\.yaml:17:\d+: error: roles\.chat\.rules\[7\]\.route_to: names no role or role alias: "chat-nope"$/,
    /fabric\.yaml:18:\d+: error: roles\.chat\.rules\[8\]\.when: unknown key; allowed: if_input_tokens_over, if_input_has, if_key, if_key_metadata, route_to/,
    /fabric\.yaml:19:\d+: error: roles\.chat\.rules\[9\]: must be a mapping, got string "just-a-name"/,
    /fabric\.yaml:20:\d+: error: roles\.chat\.rules\[10\]: is empty: a rule is a condition and route_to/,
    /fabric\.yaml:21:\d+: error: roles\.chat\.rules\[11\]\.route_to: names no role or role alias: "chat-nope"$/,
  ];
  assert.equal(errors.length, expect.length, errors.join('\n'));
  expect.forEach((re, i) => assert.match(errors[i]!, re));
});

test('a rule an earlier one always takes is warned of, naming the earlier one; rules are tried in the order written', () => {
  const { lines } = parse(`      - { if_input_tokens_over: 12000, route_to: chat-small }
      - { if_input_tokens_over: 50000, route_to: chat-small }
      - { if_key_metadata: { tier: [free, trial] }, route_to: chat-small }
      - { if_key_metadata: { tier: free, region: eu }, if_key: [k1], route_to: chat-small }
      - { if_key: [k1, k2], route_to: chat-small }
      - { if_key: [k2], if_input_tokens_over: 100, route_to: chat-small }
      - { if_key_metadata: { tier: paid }, route_to: chat-small }`);
  const warnings = lines.filter((l) => l.includes(': warning: '));
  assert.deepEqual(warnings.map((w) => w.replace(/^.*?roles\.chat\./, '').replace(/ \(a role's.*/, '')), [
    'rules[1]: never applies: rules[0] comes first and takes every request this one would',
    'rules[3]: never applies: rules[2] comes first and takes every request this one would',
    'rules[5]: never applies: rules[4] comes first and takes every request this one would',
  ]);
  assert.match(warnings[0]!, /fabric\.yaml:11:\d+: warning/);
  // Narrower first is fine: nothing to warn of.
  const fine = parse(`      - { if_input_tokens_over: 50000, route_to: chat-small }
      - { if_input_tokens_over: 12000, route_to: chat-small }
      - { if_key: [k1], if_key_metadata: { tier: free }, route_to: chat-small }
      - { if_key_metadata: { tier: free }, route_to: chat-small }`);
  assert.deepEqual(fine.lines, []);
});

test('if_input_has takes image, audio and tools, one or a list; a typo gets a did-you-mean; an embeddings role refuses it', () => {
  const { lines } = parse(`      - { if_input_has: imagse, route_to: chat-small }
      - { if_input_has: [], route_to: chat-small }`);
  assert.match(lines[0]!, /fabric\.yaml:10:\d+: error: roles\.chat\.rules\[0\]\.if_input_has: must be one of image, audio, tools, got string "imagse" \(did you mean "image"\?\)/);
  assert.match(lines[1]!, /fabric\.yaml:11:\d+: error: roles\.chat\.rules\[1\]\.if_input_has: names nothing/);
  const r = parseFabricText(fabric('      - { if_input_has: tools, route_to: chat-small }').replace('  chat-small: { kind: chat, backends: [b] }', '  chat-small: { kind: chat, backends: [b] }\n  embed: { kind: embeddings, backends: [b], rules: [{ if_input_has: image, route_to: embed2 }] }\n  embed2: { kind: embeddings, backends: [a] }'), FILE);
  assert.deepEqual(r.issues.map(formatIssue).filter((l) => l.includes('error')).map((l) => l.replace(/^.*?error: /, '')), [
    'roles.embed.rules[0].if_input_has: only chat requests carry images, audio or tools: this is an embeddings role',
  ]);
  // An image rule takes every request an image-and-tools rule would.
  const w = parse(`      - { if_input_has: image, route_to: chat-small }
      - { if_input_has: [tools, image], route_to: chat-small }
      - { if_input_has: tools, route_to: chat-small }`);
  assert.deepEqual(w.lines.map((l) => l.replace(/^.*?warning: /, '').replace(/ comes first.*/, '')), ['roles.chat.rules[1]: never applies: rules[0]']);
});

test('a condition left empty is refused, never a rule that takes every request; a key named by its id or secret is refused', () => {
  const { rules, lines } = parse(`      - if_key:
        route_to: chat-small
      - { if_input_tokens_over: ~, route_to: chat-small }
      - { if_key: ~, if_input_tokens_over: 500, route_to: chat-small }
      - { if_key: [key_0123456789abcdef, sk-fabric-abc], route_to: chat-small }`);
  const errors = lines.filter((l) => l.includes(': error: ')).map((l) => l.replace(/^.*?error: /, ''));
  assert.deepEqual(errors, [
    'roles.chat.rules[0].if_key: is empty: give its value, or leave the key out',
    'roles.chat.rules[1].if_input_tokens_over: is empty: give its value, or leave the key out',
    'roles.chat.rules[2].if_key: is empty: give its value, or leave the key out',
    'roles.chat.rules[3].if_key[0]: names a key by its id or its secret: give its name (fabric keys list)',
    'roles.chat.rules[3].if_key[1]: names a key by its id or its secret: give its name (fabric keys list)',
  ]);
  assert.equal(rules.length, 4);
  // Nothing is warned of beside a refused rule: it is compared with no other.
  const w = parse(`      - { if_key: [k], if_key_metadata: { tier: [free, { a: 1 }] }, route_to: chat-small }
      - { if_key: [k], if_key_metadata: { tier: free }, route_to: chat-small }`);
  assert.equal(w.lines.filter((l) => l.includes(': warning: ')).length, 0, w.lines.join('\n'));
  assert.equal(w.lines.filter((l) => l.includes(': error: ')).length, 1);
});

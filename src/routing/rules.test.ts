import { test } from 'node:test';
import assert from 'node:assert/strict';
import { inputHasAll, keyConditionsHold, keyRuleMark, type RouteRule } from './rules.ts';

const rule = (r: Partial<RouteRule<string>>): RouteRule<string> => ({ inputTokensOver: undefined, inputHas: undefined, keys: undefined, keyMetadata: undefined, target: 't', ...r });
const key = (name: string, metadata: Record<string, unknown> = {}) => ({ name, metadata });

test('a key condition holds for the keys named, or a key whose metadata has every field given, with one of its values (as text)', () => {
  const named = rule({ keys: new Set(['bot', 'notes']) });
  assert.equal(keyConditionsHold(named, key('bot')), true);
  assert.equal(keyConditionsHold(named, key('editor')), false);
  const tier = rule({ keyMetadata: [['tier', ['free', 'trial']], ['seats', ['1']]] });
  assert.equal(keyConditionsHold(tier, key('a', { tier: 'trial', seats: 1 })), true, 'a number is compared as its text');
  assert.equal(keyConditionsHold(tier, key('a', { tier: 'free', seats: '1', other: 'x' })), true);
  assert.equal(keyConditionsHold(tier, key('a', { tier: 'paid', seats: 1 })), false);
  assert.equal(keyConditionsHold(tier, key('a', { tier: 'free' })), false, 'every field must be there');
  assert.equal(keyConditionsHold(tier, key('a', { tier: ['free'], seats: 1 })), false, 'a list is not any of its items');
  assert.equal(keyConditionsHold(rule({ keyMetadata: [['on', ['true']]] }), key('a', { on: true })), true);
  // Fields inherited by every object are not the key's metadata.
  assert.equal(keyConditionsHold(rule({ keyMetadata: [['constructor', ['function Object() { [native code] }']]] }), key('a')), false);
  assert.equal(keyConditionsHold(rule({ keyMetadata: [['toString', ['x']]] }), key('a')), false);
});

test('no key (the master key, an open gateway) meets no key condition; a rule without any holds for everyone', () => {
  assert.equal(keyConditionsHold(rule({ keys: new Set(['bot']) }), undefined), false);
  assert.equal(keyConditionsHold(rule({ keyMetadata: [['tier', ['free']]] }), undefined), false);
  assert.equal(keyConditionsHold(rule({ inputTokensOver: 100 }), undefined), true);
  assert.equal(keyConditionsHold(rule({ inputTokensOver: 100 }), key('bot')), true);
});

test('the mark says which rules with key conditions hold, one character each; none such gives ""', () => {
  const rules = [rule({ inputTokensOver: 10 }), rule({ keys: new Set(['bot']) }), rule({ keyMetadata: [['tier', ['free']]] })];
  assert.equal(keyRuleMark(rules, key('bot', { tier: 'free' })), '11');
  assert.equal(keyRuleMark(rules, key('bot', { tier: 'paid' })), '10');
  assert.equal(keyRuleMark(rules, key('x', { tier: 'free' })), '01');
  assert.equal(keyRuleMark(rules, undefined), '00');
  assert.equal(keyRuleMark([rule({ inputTokensOver: 10 })], key('bot')), '');
});

test('what a request carries: image and audio parts in any message, tools when listed', () => {
  const image = { type: 'image_url', image_url: { url: 'data:image/png;base64,AAAA' } };
  const audio = { type: 'input_audio', input_audio: { data: 'AAAA', format: 'wav' } };
  const body = (content: unknown, extra: Record<string, unknown> = {}) => ({ messages: [{ role: 'system', content: 'be brief' }, { role: 'user', content }], ...extra });
  assert.equal(inputHasAll(body([{ type: 'text', text: 'hi' }, image]), ['image']), true);
  assert.equal(inputHasAll(body([{ type: 'input_image', image_url: 'https://x/y.png' }]), ['image']), true);
  assert.equal(inputHasAll(body('an image_url in words is text'), ['image']), false);
  assert.equal(inputHasAll(body([{ type: 'text', text: 'hi' }]), ['image']), false);
  assert.equal(inputHasAll(body([audio]), ['audio']), true);
  assert.equal(inputHasAll(body([{ type: 'audio_url', audio_url: { url: 'https://x/a.wav' } }]), ['audio']), true, 'vLLM\'s audio parts too');
  assert.equal(inputHasAll(body([audio]), ['image']), false);
  assert.equal(inputHasAll(body([image, audio]), ['image', 'audio']), true);
  assert.equal(inputHasAll(body([image]), ['image', 'audio']), false, 'every feature listed');
  assert.equal(inputHasAll(body('x', { tools: [{ type: 'function', function: { name: 'f' } }] }), ['tools']), true);
  assert.equal(inputHasAll(body('x', { tools: [] }), ['tools']), false);
  assert.equal(inputHasAll({ prompt: 'legacy' }, ['image']), false);
  assert.equal(inputHasAll({ messages: [null, { content: [null, 7, image] }] }, ['image']), true, 'odd entries are passed over');
});

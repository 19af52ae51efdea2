// Alert levels as the runbook sets them, and the webhook: called once per change of level,
// coalesced inside the quiet period, Slack or generic JSON — against a local HTTP listener.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { AlertMonitor, EXIT_CODE, evaluate, webhookBody, type AlertState } from './alerts.ts';
import { silentLogger } from '../core/log.ts';
import type { AlertsConfig } from '../config/types.ts';
import type { BackendReport } from './report.ts';

type B = Pick<BackendReport, 'name' | 'status' | 'kinds' | 'last_error'>;
const b = (name: string, status: B['status'], kinds: B['kinds'] = ['chat']): B => ({ name, status, kinds, last_error: status === 'up' ? null : 'connection refused' });

test('levels: the runbook\'s thresholds', () => {
  const fleet = (...bs: B[]) => evaluate({ backends: bs });
  assert.equal(fleet(b('motoko', 'up', ['embeddings']), b('armitage', 'up')).level, 'ok');
  const off = fleet(b('motoko', 'up', ['embeddings']), b('armitage', 'offline (expected)'), b('wintermute', 'offline (expected)'));
  assert.equal(off.level, 'info', 'workstations off: information only');
  assert.match(off.reasons.join('\n'), /armitage is offline \(workstation off, expected\)/);
  assert.equal(fleet(b('motoko', 'up', ['embeddings']), b('cloud', 'down')).level, 'info', 'one chat backend down');
  assert.equal(fleet(b('motoko', 'up', ['embeddings']), b('cloud', 'unconfigured')).level, 'info', 'a backend without its API key');
  const two = fleet(b('motoko', 'up', ['embeddings']), b('cloud', 'down'), b('other', 'down'), b('x', 'up'));
  assert.equal(two.level, 'warning');
  assert.match(two.reasons[0]!, /2 backends down: cloud \(connection refused\), other/);
  const emb = fleet(b('motoko', 'down', ['embeddings']), b('armitage', 'up'));
  assert.equal(emb.level, 'warning');
  assert.match(emb.reasons[0]!, /always-on embeddings backend motoko .* is down/);
  // On a workstation that is on (its engine answered with errors): a warning too, named as such.
  const wsEmb = evaluate({ backends: [{ ...b('bge', 'down', ['embeddings']), power: 'workstation' }, b('armitage', 'up')] });
  assert.equal(wsEmb.level, 'warning');
  assert.match(wsEmb.reasons[0]!, /^workstation embeddings backend bge .* is down/);
  // A reranker too: retrieval goes on without it, but its results are no longer ranked.
  const rr = fleet(b('motoko-rerank', 'down', ['rerank']), b('armitage', 'up'));
  assert.equal(rr.level, 'warning');
  assert.match(rr.reasons[0]!, /^always-on rerank backend motoko-rerank .* is down/);
  const none = fleet(b('motoko', 'down', ['embeddings']), b('armitage', 'offline (expected)'), b('cloud', 'unconfigured'));
  assert.equal(none.level, 'critical');
  assert.match(none.reasons[0]!, /no backend can serve/);
  assert.equal(fleet(b('a', 'failing'), b('c', 'up')).level, 'ok', 'failing is not down yet');
  // …but with nothing up, requests are failing now.
  const allFailing = fleet(b('a', 'failing'), b('c', 'failing'));
  assert.equal(allFailing.level, 'warning');
  assert.match(allFailing.reasons[0]!, /no backend is up: a \(connection refused\), c \(connection refused\) failing/);
  assert.equal(evaluate({ backends: [b('a', 'up')], draining: true }).level, 'info');
  assert.deepEqual(EXIT_CODE, { ok: 0, info: 0, warning: 1, critical: 2 });
});

test('webhook bodies: Slack {text}, or generic JSON', () => {
  const s = JSON.parse(webhookBody('slack', { level: 'warning', reasons: ['motoko-bge is down'] }, 'ok', 0, false));
  assert.deepEqual(Object.keys(s), ['text']);
  assert.match(s.text, /WARNING \(was ok\)\n• motoko-bge is down/);
  const j = JSON.parse(webhookBody('json', { level: 'ok', reasons: [] }, 'warning', 0, true));
  assert.deepEqual(Object.keys(j), ['source', 'host', 'level', 'previous', 'reasons', 'at', 'simulated']);
  assert.equal(j.source, 'ai-fabric');
  assert.equal(j.level, 'ok');
  assert.equal(j.previous, 'warning');
  assert.equal(j.simulated, true);
  assert.equal(j.at, '1970-01-01T00:00:00.000Z');
});

async function listener(status = 200): Promise<{ server: Server; url: string; bodies: unknown[]; setStatus(s: number): void }> {
  const bodies: unknown[] = [];
  let code = status;
  const server = createServer((req, res) => {
    let raw = '';
    req.on('data', (c) => { raw += c; });
    req.on('end', () => {
      bodies.push(JSON.parse(raw));
      res.statusCode = code;
      res.end('ok');
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return { server, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook?token=t`, bodies, setStatus: (s) => { code = s; } };
}

test('AlertMonitor: once per change, coalesced in the quiet period, below-threshold changes silent, failed calls not hammered', async () => {
  const l = await listener();
  let state: AlertState = { level: 'ok', reasons: [] };
  let now = 1_000_000;
  const config: AlertsConfig = { webhook: { url: l.url }, format: 'json', intervalMs: 1_000, minIntervalMs: 60_000, notify: 'warning' };
  const m = new AlertMonitor({ snapshot: () => state, settings: () => ({ config, url: l.url, simulated: false }), log: silentLogger, now: () => now });
  const levels = () => l.bodies.map((x) => `${(x as { previous: string }).previous}->${(x as { level: string }).level}`);
  try {
    await m.check();
    assert.equal(l.bodies.length, 0, 'ok at start: nothing to say');
    state = { level: 'info', reasons: ['armitage off'] };
    await m.check();
    assert.equal(l.bodies.length, 0, 'info is below the notify level: recorded silently');
    assert.equal(m.reported.level, 'info');
    state = { level: 'warning', reasons: ['motoko-bge down'] };
    await m.check();
    await m.check();
    await m.check();
    assert.deepEqual(levels(), ['info->warning'], 'once, however many checks see it');
    // Flapping inside the quiet period: nothing is sent until it ends, then one call with where things stand.
    now += 1_000;
    state = { level: 'info', reasons: [] };
    await m.check();
    state = { level: 'warning', reasons: ['motoko-bge down'] };
    await m.check();
    state = { level: 'critical', reasons: ['nothing serves'] };
    await m.check();
    assert.equal(l.bodies.length, 1);
    now += 60_000;
    await m.check();
    assert.deepEqual(levels(), ['info->warning', 'warning->critical']);
    // Back to where it was last reported before the quiet period ended: no call at all.
    now += 1_000;
    state = { level: 'warning', reasons: [] };
    await m.check();
    state = { level: 'critical', reasons: ['nothing serves'] };
    now += 60_000;
    await m.check();
    assert.equal(l.bodies.length, 2);
    // A webhook that fails is retried after the quiet period, not on every check.
    l.setStatus(500);
    state = { level: 'ok', reasons: [] };
    await m.check();
    await m.check();
    assert.equal(l.bodies.length, 3);
    assert.equal(m.reported.level, 'critical', 'not reported: the call failed');
    l.setStatus(200);
    now += 60_001;
    await m.check();
    assert.deepEqual(levels(), ['info->warning', 'warning->critical', 'critical->ok', 'critical->ok']);
    assert.equal(m.reported.level, 'ok');
  } finally {
    l.server.close();
  }
});

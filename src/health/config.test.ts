// The fleet-health keys of a fabric config: gateway.health, gateway.wake, gateway.alerts,
// nodes.NAME.wol, backends.NAME.health / cloud, roles.NAME.affinity and the least-loaded
// strategy — defaults, overrides, and errors at file:line:col with their key path.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseFabricText } from '../config/load.ts';
import { formatIssue } from '../config/issues.ts';
import { DEFAULT_HEALTH_POLICY } from '../config/types.ts';
import { isCloud } from '../config/cloud.ts';

const BASE = `backends:
  a: { engine: vllm, node: ws, url: http://127.0.0.1:8000/v1, model: m }
  b: { engine: vllm, url: http://127.0.0.1:8001/v1, model: m, health: { failure_threshold: 5, cooldown: 10s } }
roles:
  r: { kind: chat, backends: [a, b], strategy: least-loaded, affinity: true }
`;

function errors(text: string): string[] {
  const { issues } = parseFabricText(text, 'f.yaml');
  const errs = issues.filter((i) => i.severity === 'error').map(formatIssue);
  assert.ok(errs.length > 0, 'expected errors');
  return errs;
}

test('defaults: threshold 3, cooldown 30s doubling to 5m, probes every 60s with a 5s timeout; wake off; no alerts', () => {
  const { config } = parseFabricText(`nodes:\n  ws: { power: workstation }\n${BASE}`, 'f.yaml');
  const g = config.gateway;
  assert.equal(g.healthIntervalMs, 60_000);
  assert.deepEqual(g.health, { ...DEFAULT_HEALTH_POLICY, probeTimeoutMs: 5_000, loadIntervalMs: 5_000 });
  assert.deepEqual(g.wake, { enabled: false, minIntervalMs: 300_000, bootTimeoutMs: 180_000 });
  assert.equal(g.alerts, undefined);
  assert.deepEqual(config.backends.get('a')!.health, { failureThreshold: 3, cooldownMs: 30_000, maxCooldownMs: 300_000 });
  assert.deepEqual(config.backends.get('b')!.health, { failureThreshold: 5, cooldownMs: 10_000, maxCooldownMs: 300_000 }, 'per-backend override over the gateway default');
  assert.equal(config.roles.get('r')!.strategy, 'least-loaded');
  assert.equal(config.roles.get('r')!.affinity, true);
});

test('every key set: gateway defaults flow to backends; wol; alerts by env reference or URL', () => {
  const { config, issues } = parseFabricText(`gateway:
  health_interval: 20s
  health: { failure_threshold: 2, cooldown: 5s, max_cooldown: 1m, probe_timeout: 2s, load_interval: 1s }
  wake: { enabled: true, min_interval: 2m, boot_timeout: 90s }
  alerts: { webhook: env:FABRIC_ALERT_WEBHOOK, format: json, interval: 10s, min_interval: 30s, notify: info }
nodes:
  ws: { power: workstation, wol: { mac: "AA:BB:CC:DD:EE:FF", broadcast: 192.168.1.255, port: 7 } }
${BASE.replace('model: m, health', 'model: m, cloud: false, health')}`, 'f.yaml');
  assert.deepEqual(issues, []);
  const g = config.gateway;
  assert.deepEqual(g.health, { failureThreshold: 2, cooldownMs: 5_000, maxCooldownMs: 60_000, probeTimeoutMs: 2_000, loadIntervalMs: 1_000 });
  assert.deepEqual(g.wake, { enabled: true, minIntervalMs: 120_000, bootTimeoutMs: 90_000 });
  assert.deepEqual(g.alerts, { webhook: { env: 'FABRIC_ALERT_WEBHOOK' }, format: 'json', intervalMs: 10_000, minIntervalMs: 30_000, notify: 'info' });
  assert.deepEqual(config.nodes.get('ws')!.wol, { mac: 'AA:BB:CC:DD:EE:FF', broadcast: '192.168.1.255', port: 7 });
  assert.deepEqual(config.backends.get('a')!.health, { failureThreshold: 2, cooldownMs: 5_000, maxCooldownMs: 60_000 });
  assert.deepEqual(config.backends.get('b')!.health, { failureThreshold: 5, cooldownMs: 10_000, maxCooldownMs: 60_000 });
  assert.equal(config.backends.get('b')!.cloud, false);
  const byUrl = parseFabricText(`gateway: { alerts: { webhook: "https://hooks.example.com/x?token=abc" } }\nnodes:\n  ws: { power: workstation, wol: { mac: aabbccddeeff } }\n${BASE}`, 'f.yaml').config;
  assert.deepEqual(byUrl.gateway.alerts?.webhook, { url: 'https://hooks.example.com/x?token=abc' });
  assert.equal(byUrl.gateway.alerts?.format, 'slack');
  assert.equal(byUrl.gateway.alerts?.notify, 'warning');
  assert.deepEqual(byUrl.nodes.get('ws')!.wol, { mac: 'aabbccddeeff', broadcast: '255.255.255.255', port: 9 });
});

test('mistakes are reported at file:line:col with the key path', () => {
  const errs = errors(`gateway:
  health: { failure_threshold: 0, cooldown: soon, max_cooldown: 1s, probe_timeout: 2s, treshold: 3 }
  wake: { enabled: yes }
  alerts: { format: teams }
nodes:
  ws:
    power: workstation
    wol: { mac: "aa:bb:cc", broadcast: everyone, port: 70000 }
backends:
  a: { engine: vllm, node: ws, url: http://127.0.0.1:8000/v1, model: m, cloud: maybe, health: { cooldown: 1m, max_cooldown: 10s } }
roles:
  r: { kind: chat, backends: [a], strategy: least-busy, affinity: sometimes }
`);
  const want = [
    /^f\.yaml:2:\d+: error: gateway\.health\.failure_threshold: must be an integer from 1 to 100/,
    /^f\.yaml:2:\d+: error: gateway\.health\.cooldown: must be a duration/,
    /^f\.yaml:2:\d+: error: gateway\.health\.treshold: unknown key/,
    /^f\.yaml:3:\d+: error: gateway\.wake\.enabled: must be true or false/,
    /^f\.yaml:4:\d+: error: gateway\.alerts\.webhook: is required/,
    /^f\.yaml:4:\d+: error: gateway\.alerts\.format: must be one of slack, json, got string "teams"/,
    /^f\.yaml:8:\d+: error: nodes\.ws\.wol\.mac: must be a MAC address/,
    /^f\.yaml:8:\d+: error: nodes\.ws\.wol\.broadcast: must be an IPv4 broadcast address/,
    /^f\.yaml:8:\d+: error: nodes\.ws\.wol\.port: must be an integer from 1 to 65535/,
    /^f\.yaml:10:\d+: error: backends\.a\.cloud: must be true or false/,
    /^f\.yaml:10:\d+: error: backends\.a\.health\.max_cooldown: must be at least the cooldown/,
    /^f\.yaml:12:\d+: error: roles\.r\.strategy: must be one of round-robin, weighted, least-outstanding, least-loaded/,
    /^f\.yaml:12:\d+: error: roles\.r\.affinity: must be true or false/,
  ];
  for (const re of want) assert.ok(errs.some((e) => re.test(e)), `${re}\nin:\n${errs.join('\n')}`);
});

test('warnings: wake on with nothing to wake; affinity on an embeddings role', () => {
  const { issues } = parseFabricText(`gateway: { wake: { enabled: true } }
backends:
  e: { engine: vllm, url: http://127.0.0.1:8000/v1, model: m }
roles:
  emb: { kind: embeddings, backends: [e], affinity: true }
`, 'f.yaml');
  const text = issues.map(formatIssue).join('\n');
  assert.match(text, /f\.yaml:1:\d+: warning: gateway\.wake\.enabled: no node has a wol/);
  assert.match(text, /f\.yaml:5:\d+: warning: roles\.emb\.affinity: only chat conversations/);
});

test('cloud: a backend is billed per token when it is OpenAI or an OpenAI-compatible API on a public host, unless it says otherwise', () => {
  const { config } = parseFabricText(`backends:
  oai: { engine: openai, url: https://api.openai.com/v1, model: gpt-4.1-mini }
  hosted: { engine: openai-compatible, url: https://api.together.xyz/v1, model: m }
  lan: { engine: openai-compatible, url: http://192.168.1.20:8000/v1, model: m }
  tailnet: { engine: openai-compatible, url: http://motoko.example.ts.net:8000/v1, model: m }
  vllm: { engine: vllm, url: https://gpu.example.com/v1, model: m }
  declared: { engine: vllm, url: http://127.0.0.1:8000/v1, model: m, cloud: true }
roles:
  r: { kind: chat, backends: [oai, hosted, lan, tailnet, vllm, declared] }
`, 'f.yaml');
  const cloud = [...config.backends.values()].filter(isCloud).map((b) => b.name);
  assert.deepEqual(cloud, ['oai', 'hosted', 'declared']);
});

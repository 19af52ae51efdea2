// fabric render's monitoring files against a real Prometheus: it scrapes a gateway (with its
// master key) and the simulated vLLM engines with the rendered prometheus.yml, loads the
// rendered rules, and evaluates every expression of the rendered Grafana dashboard. Then the
// fleet fails step by step and the rules that should fire do, with the runbook's levels.

import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseFabricText } from '../src/config/load.ts';
import { Secrets } from '../src/config/env-file.ts';
import { createLogger } from '../src/core/log.ts';
import { startGateway, type RunningGateway } from '../src/main.ts';
import { renderFabric } from '../src/render/index.ts';
import { MASTER_KEY_FILE } from '../src/render/monitoring.ts';
import { startFleet, type SimFleet } from '../src/sim/fleet.ts';
import { freePort, startPrometheus, type PrometheusServer } from './support/servers.ts';
import { tempDir } from './support/temp-dir.ts';
import { eventually } from './helpers.ts';

const MASTER = 'mk-monitoring-test-0123456789abcdef0123456789';
const TIMING = { ttftMs: 5, tokensPerSecond: 2000, maxConcurrency: 8, maxQueue: 64 };
const PRICE = 1_000; // USD per million tokens: a few requests spend a visible share of the budget

const fabricYaml = (url: (n: string) => string, port: number): string => `
gateway:
  host: 127.0.0.1
  port: ${port}
  master_key: env:FABRIC_MASTER_KEY
  cache: true
  health_interval: 300ms
  health: { failure_threshold: 2, load_interval: 300ms }
backends:
  fast: { engine: vllm, url: ${url('fast')}/v1, model: m-fast }
  deep: { engine: vllm, url: ${url('deep')}/v1, model: m-deep }
roles:
  chat-fast: { kind: chat, backends: [fast], fallbacks: [chat-deep] }
  chat-deep: { kind: chat, backends: [deep] }
prices:
  deep: { input: ${PRICE}, output: ${PRICE} }
budgets:
  deep-monthly: { amount: 100, period: month, backends: [deep] }
`;

let fleet: SimFleet;
let gw: RunningGateway | undefined;
let prom: PrometheusServer | undefined;
let skip: string | undefined;
let dashboard: any;
let ruleNames: string[] = [];
const dir = tempDir('fabric-monitoring-');
const dataDir = tempDir('fabric-monitoring-data-');

before(async () => {
  fleet = await startFleet([
    { name: 'fast', protocol: 'vllm', model: 'm-fast', kind: 'chat', timing: TIMING },
    { name: 'deep', protocol: 'vllm', model: 'm-deep', kind: 'chat', timing: TIMING },
  ]);
  const port = await freePort();
  const text = fabricYaml((n) => fleet.get(n).url, port);
  const { config } = parseFabricText(text, 'monitoring.fabric.yaml');
  const files = new Map(renderFabric(config, 'monitoring.fabric.yaml', text).map((f) => [f.path, f.content]));
  const promYml = files.get('monitoring/prometheus.yml')!;
  const rules = files.get('monitoring/ai-fabric-alerts.yml')!;
  dashboard = JSON.parse(files.get('monitoring/grafana-dashboard.json')!);
  ruleNames = [...rules.matchAll(/- alert: (\w+)/g)].map((m) => m[1]!);
  // As rendered, but for the master key's file (here, not /etc) and a scrape every second.
  assert.ok(promYml.includes(MASTER_KEY_FILE), 'a gateway with a master key is scraped with it');
  writeFileSync(join(dir, 'master-key'), MASTER, { mode: 0o600 });
  writeFileSync(join(dir, 'prometheus.yml'), promYml.replaceAll(MASTER_KEY_FILE, join(dir, 'master-key')).replace(/(scrape|evaluation)_interval: 15s/g, '$1_interval: 1s'));
  writeFileSync(join(dir, 'ai-fabric-alerts.yml'), rules);

  const secrets = new Secrets({ FABRIC_MASTER_KEY: MASTER });
  gw = await startGateway(config, secrets, { host: '127.0.0.1', port, log: createLogger({ level: 'error', write: () => {} }), dataDir });
  const p = await startPrometheus(join(dir, 'prometheus.yml'));
  if (typeof p === 'string') skip = p;
  else prom = p;
});

after(async () => {
  await prom?.close();
  await gw?.close(1000);
  await fleet.close();
});

const auth = { authorization: `Bearer ${MASTER}` };

let rounds = 0;
async function traffic(): Promise<void> {
  for (let i = 0; i < 6; i++) {
    for (const model of ['chat-fast', 'chat-deep']) {
      const r = await fetch(`${gw!.url}/v1/chat/completions`, { method: 'POST', headers: { ...auth, 'content-type': 'application/json' }, body: JSON.stringify({ model, messages: [{ role: 'user', content: 'hello there' }], max_tokens: 8, stream: i % 2 === 0 }) });
      await r.arrayBuffer();
      assert.equal(r.status, 200);
    }
  }
  // Asked twice at temperature 0: a miss, then a hit (gateway.cache).
  const question = `the same question, round ${++rounds}`;
  for (let i = 0; i < 2; i++) {
    const r = await fetch(`${gw!.url}/v1/chat/completions`, { method: 'POST', headers: { ...auth, 'content-type': 'application/json' }, body: JSON.stringify({ model: 'chat-fast', messages: [{ role: 'user', content: question }], max_tokens: 8, temperature: 0 }) });
    await r.arrayBuffer();
    assert.equal(r.headers.get('x-fabric-cache'), i === 0 ? 'miss' : 'hit');
  }
  const missing = await fetch(`${gw!.url}/v1/chat/completions`, { method: 'POST', headers: { ...auth, 'content-type': 'application/json' }, body: JSON.stringify({ model: 'no-such-role', messages: [{ role: 'user', content: 'hi' }] }) });
  await missing.arrayBuffer();
  assert.equal(missing.status, 404);
}

/** One value of an instant query (the first series), or undefined while it has none. */
async function value(expr: string, where: (m: Record<string, string>) => boolean = () => true): Promise<number | undefined> {
  const r = await prom!.query(expr);
  assert.equal(r.status, 'success', `${expr}: ${r.error}`);
  const s = r.data!.result.find((x) => where(x.metric));
  return s === undefined ? undefined : Number(s.value[1]);
}

const alerts = async (): Promise<Array<Record<string, string>>> => {
  const r = await prom!.query('ALERTS');
  return r.data!.result.map((x) => x.metric);
};

test('Prometheus scrapes the gateway with its master key, and the vLLM engines', async (t) => {
  if (skip !== undefined) return t.skip(skip);
  await traffic();
  const up = await eventually(() => value('up{job="ai-fabric"}'), (v) => v === 1, 15_000);
  if (up !== 1) {
    const targets = (await (await fetch(`${prom!.url}/api/v1/targets`)).json()) as any;
    assert.fail(`the gateway is not scraped: ${JSON.stringify(targets.data.activeTargets.map((x: any) => [x.labels.job, x.lastError]))}`);
  }
  for (const backend of ['fast', 'deep']) {
    assert.equal(await eventually(() => value('up{job="ai-fabric-engines"}', (m) => m.backend === backend), (v) => v === 1, 15_000), 1, `engine ${backend}`);
  }
  // The engines' own metrics, under vLLM's names, with the rendered labels.
  assert.notEqual(await value('vllm:num_requests_running{job="ai-fabric-engines", backend="fast", engine="vllm"}'), undefined);
  assert.equal(await eventually(() => value('fabric_health_level{job="ai-fabric"}'), (v) => v === 0, 15_000), 0);
});

test('every expression of the Grafana dashboard evaluates, and the core panels have data', async (t) => {
  if (skip !== undefined) return t.skip(skip);
  // Counted after the first scrapes: a rate needs the counters to move between two of them.
  await traffic();
  const panels = (dashboard.panels as any[]).filter((p) => p.type !== 'row');
  // Layout: ids unique, every panel inside the 24-column grid, none overlapping another.
  const ids = (dashboard.panels as any[]).map((p) => p.id);
  assert.equal(new Set(ids).size, ids.length);
  const cells = new Set<string>();
  for (const p of dashboard.panels as any[]) {
    const g = p.gridPos;
    assert.ok(g.x >= 0 && g.x + g.w <= 24 && g.h > 0, `${p.title}: ${JSON.stringify(g)}`);
    for (let x = g.x; x < g.x + g.w; x++) for (let y = g.y; y < g.y + g.h; y++) {
      assert.ok(!cells.has(`${x},${y}`), `${p.title} overlaps another panel at ${x},${y}`);
      cells.add(`${x},${y}`);
    }
  }
  // The variables' own queries: label_values(METRIC{…}, LABEL) lists the roles and backends.
  for (const v of dashboard.templating.list.filter((x: any) => x.type === 'query')) {
    const [, metric, label] = /^label_values\((.+), (\w+)\)$/.exec(v.query.query)!;
    const r = (await (await fetch(`${prom!.url}/api/v1/label/${label}/values?match[]=${encodeURIComponent(metric!)}`)).json()) as any;
    assert.equal(r.status, 'success');
    for (const want of label === 'role' ? ['chat-fast', 'chat-deep'] : ['fast', 'deep']) assert.ok(r.data.includes(want), `${v.name}: ${JSON.stringify(r.data)}`);
  }
  const expand = (e: string): string => e.replaceAll('$__rate_interval', '1m').replaceAll('$role', '.*').replaceAll('$backend', '.*');
  // Panels whose series this traffic must have produced (histograms and rates need two scrapes).
  const mustHaveData = new Set([
    'Alert level', 'Gateway up', 'Requests in flight', 'Roles servable', 'Backends in rotation', 'Backend status now',
    'Requests per second by role', 'Requests per second by backend', 'Error ratio', 'Errors by code',
    'Request time by role (p50, p95, p99)', 'Time to first token by backend (p50, p95)',
    'Engine requests running and waiting', 'KV cache usage', 'Requests in flight to each backend',
    'Tokens per second', 'Cost per hour', 'Budgets spent', 'Gateway memory', 'Gateway CPU', 'Usage records waiting', 'Response cache',
  ]);
  assert.deepEqual(panels.map((p) => p.title).filter((x) => !mustHaveData.has(x)), ['Fallbacks, retries and failed attempts'], 'every panel but the failures one is checked for data');
  for (const p of panels) {
    for (const target of p.targets) {
      assert.equal(target.datasource.uid, '${datasource}');
      const expr = expand(target.expr);
      const r = await prom!.query(expr);
      assert.equal(r.status, 'success', `${p.title}: ${expr}: ${r.error}`);
    }
    if (!mustHaveData.has(p.title)) continue;
    // Some panel target has data (a panel with two kinds of series may miss one, as 4xx beside 5xx).
    await eventually(async () => {
      for (const target of p.targets) if ((await prom!.query(expand(target.expr))).data!.result.length > 0) return true;
      return false;
    }, (ok) => ok, 15_000).catch(() => undefined);
    let any = false;
    for (const target of p.targets) if ((await prom!.query(expand(target.expr))).data!.result.length > 0) any = true;
    assert.ok(any, `${p.title} has no data: ${p.targets.map((x: any) => expand(x.expr)).join(' | ')}`);
  }
  // Figures that say the panels read the right series.
  const perRole = await eventually(() => value(expand('sum by (role) (rate(fabric_requests_total{job="ai-fabric",role=~"$role"}[$__rate_interval]))'), (m) => m.role === 'chat-deep'), (v) => v !== undefined && v > 0, 10_000);
  assert.ok(perRole !== undefined && perRole > 0, `chat-deep at ${perRole} requests/s`);
  const hits = await eventually(() => value(expand('sum by (role) (rate(fabric_cache_requests_total{job="ai-fabric",role=~"$role",result="hit"}[$__rate_interval])) / sum by (role) (rate(fabric_cache_requests_total{job="ai-fabric",role=~"$role"}[$__rate_interval]))'), (m) => m.role === 'chat-fast'), (v) => v !== undefined && v > 0, 10_000);
  assert.ok(hits !== undefined && hits > 0 && hits < 1, `chat-fast's cache hit ratio ${hits}`);
  const spent = await value('max by (budget, period) (fabric_budget_spent_usd{job="ai-fabric"}) / max by (budget, period) (fabric_budget_limit_usd{job="ai-fabric"})', (m) => m.budget === 'deep-monthly');
  assert.ok(spent !== undefined && spent > 0 && spent < 1, `budget share ${spent}`);
});

test('the rendered rules fire as the fleet fails: a backend down (info), then nothing to serve (critical), then the gateway down', async (t) => {
  if (skip !== undefined) return t.skip(skip);
  for (const r of ['AIFabricGatewayDown', 'AIFabricCritical', 'AIFabricWarning', 'AIFabricBackendDown', 'AIFabricRoleUnservable', 'AIFabricErrorRate', 'AIFabricSlowFirstToken', 'AIFabricUsageNotStored', 'AIFabricBudgetNearlySpent', 'AIFabricBudgetSpent', 'AIFabricKvCacheFull']) {
    assert.ok(ruleNames.includes(r), r);
  }
  const loaded = (await (await fetch(`${prom!.url}/api/v1/rules`)).json()) as any;
  assert.equal(loaded.data.groups[0].rules.length, ruleNames.length, 'Prometheus loaded every rule');
  assert.ok(loaded.data.groups[0].rules.every((r: any) => r.health !== 'err'), JSON.stringify(loaded.data.groups[0].rules.filter((r: any) => r.health === 'err')));
  assert.deepEqual(await alerts(), [], 'a healthy fleet raises nothing');

  await fleet.get('deep').setFault({ kind: 'down' });
  const down = await eventually(alerts, (as) => as.some((a) => a.alertname === 'AIFabricBackendDown'), 20_000);
  const a = down.find((x) => x.alertname === 'AIFabricBackendDown')!;
  assert.equal(a.backend, 'deep');
  assert.equal(a.severity, 'info');
  assert.equal(await value('fabric_health_level{job="ai-fabric"}'), 1, 'one chat backend down is information');
  assert.equal(await value('fabric_backend_status{job="ai-fabric", backend="deep", status="down"}'), 1);
  assert.equal(await value('fabric_backend_status{job="ai-fabric", backend="deep", status="up"}'), 0);
  // chat-deep has no fallback: nothing can serve it now; chat-fast falls back to it no more, but has its own.
  const unservable = await eventually(alerts, (as) => as.some((x) => x.alertname === 'AIFabricRoleUnservable'), 10_000);
  assert.deepEqual(unservable.filter((x) => x.alertname === 'AIFabricRoleUnservable').map((x) => [x.role, x.severity]), [['chat-deep', 'info']]);
  assert.ok(!unservable.some((x) => x.alertname === 'AIFabricCritical'), JSON.stringify(unservable));

  await fleet.get('fast').setFault({ kind: 'down' });
  const none = await eventually(alerts, (as) => as.some((x) => x.alertname === 'AIFabricCritical') && as.filter((x) => x.alertname === 'AIFabricRoleUnservable').length === 2, 20_000);
  assert.equal(none.find((x) => x.alertname === 'AIFabricCritical')!.severity, 'critical');
  assert.deepEqual(none.filter((x) => x.alertname === 'AIFabricRoleUnservable').map((x) => x.role).sort(), ['chat-deep', 'chat-fast']);

  await gw!.close(500);
  gw = undefined;
  const gone = await eventually(alerts, (as) => as.some((x) => x.alertname === 'AIFabricGatewayDown'), 20_000);
  assert.equal(gone.find((x) => x.alertname === 'AIFabricGatewayDown')!.severity, 'critical');
});

test('the seeds\' render: promtool finds the configuration and its rules valid', async (t) => {
  if (skip !== undefined) return t.skip(skip);
  const { spawnSync } = await import('node:child_process');
  const text = readFileSync(new URL('../examples/seeds.fabric.yaml', import.meta.url), 'utf8');
  const { config } = parseFabricText(text, 'seeds.fabric.yaml');
  const out = tempDir('fabric-monitoring-seeds-');
  for (const f of renderFabric(config, 'seeds.fabric.yaml', text)) {
    if (f.path.startsWith('monitoring/') && f.path.endsWith('.yml')) writeFileSync(join(out, f.path.slice('monitoring/'.length)), f.content);
  }
  const r = spawnSync('promtool', ['check', 'config', join(out, 'prometheus.yml')], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stdout + r.stderr);
  assert.match(r.stdout + r.stderr, /SUCCESS: \d+ rules found/);
});

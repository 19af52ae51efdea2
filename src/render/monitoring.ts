// fabric render's monitoring files: what the runbook's "Monitoring & Observability" phase asks
// (request rate per backend, latency percentiles, error rates and fallbacks, backend health),
// made from the fabric config so they name its own backends, roles and budgets:
//
//   monitoring/prometheus.yml          scrape jobs: the gateway, and the engines that export metrics
//   monitoring/ai-fabric-alerts.yml    alerting rules: the runbook's levels, as GET /health judges them
//   monitoring/grafana-dashboard.json  a Grafana dashboard over the gateway's /metrics
//
// Every expression reads metrics the gateway exports (src/metrics/gateway-metrics.ts); the test
// suite has a real Prometheus scrape a gateway with these files and evaluate each one.

// Grafana's own schema package: the dashboard is typed against it (types only: nothing of it
// runs, so it is a development dependency).
import type { Dashboard, Panel, RowPanel, ValueMapping, VariableModel } from '@grafana/schema';
import type { Options as BarGaugeOptions } from '@grafana/schema/dist/esm/raw/composable/bargauge/panelcfg/x/BarGaugePanelCfg_types.gen';
import type { Options as StatOptions } from '@grafana/schema/dist/esm/raw/composable/stat/panelcfg/x/StatPanelCfg_types.gen';
import type { Options as StateTimelineOptions } from '@grafana/schema/dist/esm/raw/composable/statetimeline/panelcfg/x/StateTimelinePanelCfg_types.gen';
import type { Options as TableOptions } from '@grafana/schema/dist/esm/raw/composable/table/panelcfg/x/TablePanelCfg_types.gen';
import type { Options as TimeSeriesOptions } from '@grafana/schema/dist/esm/raw/composable/timeseries/panelcfg/x/TimeSeriesPanelCfg_types.gen';
import type { BackendConfig, FabricConfig } from '../config/types.ts';
import { yamlDoc, type RenderContext } from './common.ts';
import { localGatewayUrl } from './systemd.ts';

/** The gateway's scrape job; the rules and the dashboard's `up` panels name it. */
const GATEWAY_JOB = 'ai-fabric';
const ENGINES_JOB = 'ai-fabric-engines';
/** Where Prometheus reads the master key from (a file only it can read): the token is never written here. */
export const MASTER_KEY_FILE = '/etc/prometheus/ai-fabric-master-key';

/** The runbook's "Slow Response Times: requests take > 10 s", when the config sets no `health.slow`. */
const RUNBOOK_SLOW_S = 10;

/** A name as a PromQL regular expression matches it, and only it. */
const escapeRegex = (s: string): string => s.replace(/[.*+?^${}()|[\]\\]/g, '\\\\$&');

/** An engine that exports Prometheus metrics at /metrics of its URL's origin, and the label set it is scraped with. */
interface EngineTarget {
  target: string;
  scheme: string;
  backends: BackendConfig[];
}

/**
 * Engines Prometheus can scrape: vLLM always exports /metrics; llama-server only when started
 * with --metrics (which fabric render's launch adds: backends with a serve block), and not behind
 * its API key (which guards /metrics; vLLM's does not). SGLang needs --enable-metrics, which the
 * render does not launch, so it is left out.
 */
function engineTargets(cfg: FabricConfig): EngineTarget[] {
  const byOrigin = new Map<string, EngineTarget>();
  for (const b of cfg.backends.values()) {
    const exports = b.engine === 'vllm' || (b.engine === 'llamacpp' && b.serve !== undefined && b.apiKey === undefined);
    if (!exports || b.cloud === true) continue;
    let u: URL;
    try { u = new URL(b.url); } catch { continue; }
    const key = `${u.protocol}//${u.host}`;
    const t = byOrigin.get(key);
    if (t === undefined) byOrigin.set(key, { target: u.host, scheme: u.protocol.slice(0, -1), backends: [b] });
    else t.backends.push(b);
  }
  return [...byOrigin.values()];
}

export function prometheusConfig(ctx: RenderContext): string {
  const cfg = ctx.cfg;
  const gw = new URL(localGatewayUrl(ctx));
  const gatewayJob: Record<string, unknown> = { job_name: GATEWAY_JOB, metrics_path: '/metrics', scheme: gw.protocol.slice(0, -1) };
  if (cfg.gateway.masterKey !== undefined) gatewayJob.authorization = { type: 'Bearer', credentials_file: MASTER_KEY_FILE };
  // Asked on loopback, where the certificate's name does not apply.
  if (cfg.gateway.tls !== undefined) gatewayJob.tls_config = { insecure_skip_verify: true };
  gatewayJob.static_configs = [{ targets: [gw.host] }];
  const jobs: Record<string, unknown>[] = [gatewayJob];
  const engines = engineTargets(cfg);
  for (const scheme of ['http', 'https']) {
    const these = engines.filter((e) => e.scheme === scheme);
    if (these.length === 0) continue;
    jobs.push({
      job_name: scheme === 'http' ? ENGINES_JOB : `${ENGINES_JOB}-https`,
      metrics_path: '/metrics',
      scheme,
      static_configs: these.map((e) => ({
        targets: [e.target],
        labels: { backend: e.backends.map((b) => b.name).join(','), engine: e.backends[0]!.engine, ...(e.backends[0]!.node === undefined ? {} : { node: e.backends[0]!.node }) },
      })),
    });
  }
  const notes = [
    'Start Prometheus with it (prometheus --config.file=prometheus.yml), or copy its scrape_configs into',
    'your own prometheus.yml and ai-fabric-alerts.yml beside it. It scrapes the gateway on loopback: run',
    'Prometheus on the gateway\'s machine, or put the gateway\'s address in its target.',
  ];
  if (cfg.gateway.masterKey !== undefined) {
    notes.push(`/metrics needs the master key: write it (${cfg.gateway.masterKey.env}) into ${MASTER_KEY_FILE},`, 'readable by Prometheus alone (chown prometheus, chmod 600).');
  }
  if (engines.length > 0) notes.push(`${ENGINES_JOB}: each engine's own /metrics (a workstation switched off is a target down, which no rule here alerts on).`);
  notes.push('Alerts go to an Alertmanager: add an alerting: section, or use gateway.alerts (a webhook) instead.');
  return yamlDoc(ctx, 'Prometheus scrape configuration for AI Fabric.', {
    global: { scrape_interval: '15s', evaluation_interval: '15s' },
    rule_files: ['ai-fabric-alerts.yml'],
    scrape_configs: jobs,
  }, notes, 'PLAIN');
}

interface Rule {
  alert: string;
  expr: string;
  for: string;
  labels: { severity: 'critical' | 'warning' | 'info' };
  annotations: { summary: string; description: string };
}

/** Alerting rules. Each worker of a gateway exports its own series (label worker): rules take the worst. */
export function alertRules(ctx: RenderContext): string {
  const cfg = ctx.cfg;
  const rules: Rule[] = [];
  const add = (alert: string, expr: string, forTime: string, severity: Rule['labels']['severity'], summary: string, description: string): void => {
    rules.push({ alert, expr, for: forTime, labels: { severity }, annotations: { summary, description } });
  };
  const job = `job="${GATEWAY_JOB}"`;
  add('AIFabricGatewayDown', `up{${job}} == 0`, '1m', 'critical',
    'The AI Fabric gateway on {{ $labels.instance }} does not answer',
    'Prometheus cannot scrape the gateway: every app that uses the endpoint is failing. systemctl status ai-fabric-gateway; journalctl -u ai-fabric-gateway.');
  add('AIFabricCritical', `max by (instance) (fabric_health_level{${job}}) >= 3`, '1m', 'critical',
    'AI Fabric: no backend can serve',
    'The gateway judges the fleet critical (every backend down or unusable). fabric health lists each backend and its last error.');
  add('AIFabricWarning', `max by (instance) (fabric_health_level{${job}}) == 2`, '5m', 'warning',
    'AI Fabric is degraded',
    'The gateway judges the fleet at warning: two or more backends down, an embeddings or rerank backend down (not a workstation switched off), a slow backend, or a config reload refused. fabric health (or GET /health) gives the reasons.');
  add('AIFabricBackendDown', `max by (instance, backend, node) (fabric_backend_status{${job},status="down"}) == 1`, '5m', 'info',
    'Backend {{ $labels.backend }} is down',
    'The gateway has taken {{ $labels.backend }} (node {{ $labels.node }}) out of rotation; its roles use their other backends and fallbacks. A workstation that is switched off is "offline (expected)", not down.');
  // Information, as the runbook has a chat backend down: a role without fallbacks on a workstation
  // switched off is unservable as expected. The level (above) says when it is worse.
  add('AIFabricRoleUnservable', `min by (instance, role) (fabric_role_servable{${job}}) == 0`, '2m', 'info',
    'No backend can serve {{ $labels.role }}',
    'Neither {{ $labels.role }} nor any role of its fallback chain has a backend that could be tried now: requests for it fail with 503 (a workstation switched off, or backends down). A fallback role in the fabric config keeps it served.');
  add('AIFabricErrorRate', `sum by (instance) (rate(fabric_requests_total{${job},status=~"5.."}[5m])) / sum by (instance) (rate(fabric_requests_total{${job}}[5m])) > 0.05`, '5m', 'warning',
    'More than 5% of AI Fabric requests fail',
    'Over 5 minutes more than 5% of requests were answered with a 5xx (after fallbacks). fabric_errors_total gives the codes; the request log lines say what each attempt met.');
  // Each backend's own `slow` threshold (its health block over gateway.health); a config that sets
  // none anywhere gets the runbook's 10 s for every backend; a backend set to off gets no rule.
  // The first token is timed from the request received: a fallback's wait counts to the backend that served.
  const anySlow = cfg.gateway.health.slowMs !== undefined || [...cfg.backends.values()].some((b) => b.health?.slowMs !== undefined);
  const byThreshold = new Map<number, string[]>();
  for (const b of cfg.backends.values()) {
    const ms = anySlow ? b.health?.slowMs : RUNBOOK_SLOW_S * 1000;
    if (ms !== undefined) byThreshold.set(ms, [...(byThreshold.get(ms) ?? []), b.name]);
  }
  if (byThreshold.size > 0) {
    const ttft = (names: string[]): string => `histogram_quantile(0.95, sum by (instance, backend, le) (rate(fabric_time_to_first_token_seconds_bucket{${job},backend=~"${names.map(escapeRegex).join('|')}"}[5m])))`;
    const expr = [...byThreshold].map(([ms, names]) => `${ttft(names)} > ${ms / 1000}`).join(' or ');
    add('AIFabricSlowFirstToken', expr, '10m', 'warning',
      'Streams from {{ $labels.backend }} wait long for their first token',
      `The p95 time to first token from {{ $labels.backend }} ({{ $value | humanizeDuration }}) has been over its slow threshold (health.slow${anySlow ? '' : `, here the runbook's ${RUNBOOK_SLOW_S} s`}) for 10 minutes, the runbook's "Slow Response Times": the engine is queueing or the GPU is shared. fabric health shows its recent p95.`);
  }
  add('AIFabricUsageNotStored', `min by (instance) (fabric_accounting_store_up{${job}}) == 0`, '10m', 'warning',
    'AI Fabric cannot write usage to its store',
    'Usage records wait in the spool on disk and are written when the store is back; nothing is lost while the disk has room. The gateway log names the store error.');
  if (cfg.budgets.length > 0) {
    add('AIFabricBudgetNearlySpent', `max by (instance, budget, period) (fabric_budget_spent_usd{${job}}) / max by (instance, budget, period) (fabric_budget_limit_usd{${job}}) > 0.8`, '0m', 'info',
      'Budget {{ $labels.budget }} is over 80% spent',
      'Budget {{ $labels.budget }} has spent over 80% of its {{ $labels.period }} amount; once spent, its backends are passed over until the period resets.');
    add('AIFabricBudgetSpent', `max by (instance, budget) (fabric_budget_exhausted{${job}}) == 1`, '0m', 'warning',
      'Budget {{ $labels.budget }} is spent',
      'The backends budget {{ $labels.budget }} counts are passed over until its period resets (requests go to the fallbacks). fabric usage shows the spend.');
  }
  if ([...cfg.backends.values()].some((b) => ['vllm', 'sglang', 'llamacpp'].includes(b.engine))) {
    add('AIFabricKvCacheFull', `max by (instance, backend) (fabric_backend_engine_kv_cache_usage_ratio{${job}}) > 0.95 and max by (instance, backend) (fabric_backend_engine_requests_waiting{${job}}) > 0`, '10m', 'info',
      'The KV cache of {{ $labels.backend }} is full and requests queue',
      'The engine behind {{ $labels.backend }} has used over 95% of its KV cache with requests waiting for 10 minutes: more GPU memory for the cache, a shorter max_model_len or fewer concurrent sequences (fabric plan sizes them).');
  }
  return yamlDoc(ctx, 'Prometheus alerting rules for AI Fabric: the runbook\'s levels (critical, warning, info).', {
    groups: [{ name: 'ai-fabric', rules }],
  }, ['Loaded by prometheus.yml (rule_files). Thresholds are plain numbers here: edit them in the fabric config\'s', 'gateway.health.slow, or here after rendering.'], 'PLAIN');
}

// ── The Grafana dashboard ──────────────────────────────────────────────────────────────────

/**
 * A Grafana type as JSON writes it: its enums as their string values, every field optional
 * (Grafana fills a panel's defaults), no field it does not have.
 */
type Json<T> = T extends string ? `${T}` : T extends readonly (infer U)[] ? Json<U>[] : T extends object ? { [K in keyof T]?: Json<T[K]> } : T;

interface Target { expr: string; legend: string; instant?: boolean }

interface PanelSpec {
  title: string;
  type: 'timeseries' | 'stat' | 'table' | 'bargauge' | 'state-timeline';
  description: string;
  unit?: string;
  w: number;
  h: number;
  targets: Target[];
  mappings?: Json<ValueMapping>[];
  thresholds?: { color: string; value: number | null }[];
  min?: number;
  max?: number;
}

const DS = { type: 'prometheus', uid: '${datasource}' };
const RATE = '$__rate_interval';
const G = `job="${GATEWAY_JOB}"`;

const LEVEL_MAPPINGS: Json<ValueMapping>[] = [{
  type: 'value',
  options: {
    0: { text: 'OK', color: 'green', index: 0 },
    1: { text: 'info', color: 'blue', index: 1 },
    2: { text: 'warning', color: 'orange', index: 2 },
    3: { text: 'critical', color: 'red', index: 3 },
  },
}];
const UP_MAPPINGS: Json<ValueMapping>[] = [{ type: 'value', options: { 0: { text: 'out', color: 'red', index: 0 }, 1: { text: 'in rotation', color: 'green', index: 1 } } }];

function quantiles(metric: string, by: string, filter: string, qs: number[]): Target[] {
  return qs.map((q) => ({
    expr: `histogram_quantile(${q}, sum by (${by}, le) (rate(${metric}_bucket{${filter}}[${RATE}])))`,
    legend: `{{${by}}} p${Math.round(q * 100)}`,
  }));
}

function rows(cfg: FabricConfig): { title: string; panels: PanelSpec[] }[] {
  const role = `${G},role=~"$role"`;
  const backend = `${G},backend=~"$backend"`;
  const fleet: PanelSpec[] = [
    { title: 'Alert level', type: 'stat', w: 4, h: 4, description: 'The runbook\'s level as GET /health and fabric health judge it.', targets: [{ expr: `max(fabric_health_level{${G}})`, legend: 'level' }], mappings: LEVEL_MAPPINGS },
    { title: 'Gateway up', type: 'stat', w: 4, h: 4, description: 'Whether Prometheus can scrape the gateway.', targets: [{ expr: `min(up{${G}})`, legend: 'up' }], mappings: [{ type: 'value', options: { 0: { text: 'DOWN', color: 'red', index: 0 }, 1: { text: 'up', color: 'green', index: 1 } } }] },
    { title: 'Requests in flight', type: 'stat', w: 4, h: 4, description: 'Inference requests being served now.', targets: [{ expr: `sum(fabric_requests_in_flight{${G}})`, legend: 'in flight' }] },
    { title: 'Roles servable', type: 'stat', w: 12, h: 4, description: 'Whether each role, or a role of its fallback chain, has a backend that could be tried now.', targets: [{ expr: `min by (role) (fabric_role_servable{${role}})`, legend: '{{role}}' }], mappings: [{ type: 'value', options: { 0: { text: 'unservable', color: 'red', index: 0 }, 1: { text: 'servable', color: 'green', index: 1 } } }] },
    { title: 'Backends in rotation', type: 'state-timeline', w: 12, h: 8, description: 'In rotation (up, or not yet known) or out (failing, cooled down, offline).', targets: [{ expr: `min by (backend) (fabric_backend_up{${backend}})`, legend: '{{backend}}' }], mappings: UP_MAPPINGS },
    { title: 'Backend status now', type: 'table', w: 12, h: 8, description: 'Each backend\'s status as GET /health gives it; a workstation switched off is "offline (expected)".', targets: [{ expr: `max by (backend, node, status) (fabric_backend_status{${backend}}) == 1`, legend: '', instant: true }] },
  ];
  const traffic: PanelSpec[] = [
    { title: 'Requests per second by role', type: 'timeseries', unit: 'reqps', w: 12, h: 8, description: 'Answered requests, by the role that served them.', targets: [{ expr: `sum by (role) (rate(fabric_requests_total{${role}}[${RATE}]))`, legend: '{{role}}' }] },
    { title: 'Requests per second by backend', type: 'timeseries', unit: 'reqps', w: 12, h: 8, description: 'Answered requests, by the backend that served them (a failed one: the last it reached).', targets: [{ expr: `sum by (backend) (rate(fabric_requests_total{${backend}}[${RATE}]))`, legend: '{{backend}}' }] },
    { title: 'Error ratio', type: 'timeseries', unit: 'percentunit', w: 8, h: 8, description: 'Share of requests answered with a 5xx (the fleet failed them) and a 4xx (refused).', targets: [
      { expr: `sum(rate(fabric_requests_total{${G},status=~"5.."}[${RATE}])) / sum(rate(fabric_requests_total{${G}}[${RATE}]))`, legend: '5xx' },
      { expr: `sum(rate(fabric_requests_total{${G},status=~"4.."}[${RATE}])) / sum(rate(fabric_requests_total{${G}}[${RATE}]))`, legend: '4xx' },
    ] },
    { title: 'Errors by code', type: 'timeseries', unit: 'reqps', w: 8, h: 8, description: 'Requests answered with an error, by its code.', targets: [{ expr: `sum by (code) (rate(fabric_errors_total{${G}}[${RATE}]))`, legend: '{{code}}' }] },
    { title: 'Fallbacks, retries and failed attempts', type: 'timeseries', unit: 'reqps', w: 8, h: 8, description: 'Requests served by another role than asked; attempts sent again; attempts that failed, by class.', targets: [
      { expr: `sum by (role, served_role) (rate(fabric_fallbacks_total{${G}}[${RATE}]))`, legend: '{{role}} → {{served_role}}' },
      { expr: `sum by (backend) (rate(fabric_retries_total{${backend}}[${RATE}]))`, legend: 'retry {{backend}}' },
      { expr: `sum by (backend, class) (rate(fabric_attempt_failures_total{${backend}}[${RATE}]))`, legend: '{{backend}} {{class}}' },
    ] },
  ];
  if (cfg.gateway.cache !== undefined) {
    traffic.push({ title: 'Response cache', type: 'timeseries', unit: 'percentunit', min: 0, max: 1, w: 24, h: 8, description: 'The share of requests on cached routes answered from the cache (gateway.cache), by role; bypass: not looked up (sampled requests, the client\'s Cache-Control).', targets: [
      { expr: `sum by (role) (rate(fabric_cache_requests_total{${role},result="hit"}[${RATE}])) / sum by (role) (rate(fabric_cache_requests_total{${role}}[${RATE}]))`, legend: '{{role}} hits' },
      { expr: `sum by (role) (rate(fabric_cache_requests_total{${role},result="bypass"}[${RATE}])) / sum by (role) (rate(fabric_cache_requests_total{${role}}[${RATE}]))`, legend: '{{role}} bypass' },
    ] });
  }
  const latency: PanelSpec[] = [
    { title: 'Request time by role (p50, p95, p99)', type: 'timeseries', unit: 's', w: 12, h: 8, description: 'From the request received to its last byte sent (a stream: its whole generation).', targets: quantiles('fabric_request_duration_seconds', 'role', role, [0.5, 0.95, 0.99]) },
    { title: 'Time to first token by backend (p50, p95)', type: 'timeseries', unit: 's', w: 12, h: 8, description: 'Streams: from the request received to the first byte sent to the client.', targets: quantiles('fabric_time_to_first_token_seconds', 'backend', backend, [0.5, 0.95]) },
  ];
  const engines: PanelSpec[] = [
    { title: 'Engine requests running and waiting', type: 'timeseries', unit: 'short', w: 8, h: 8, description: 'What each engine reports (vLLM and llama.cpp /metrics, Ollama /api/ps).', targets: [
      { expr: `max by (backend) (fabric_backend_engine_requests_running{${backend}})`, legend: '{{backend}} running' },
      { expr: `max by (backend) (fabric_backend_engine_requests_waiting{${backend}})`, legend: '{{backend}} waiting' },
    ] },
    { title: 'KV cache usage', type: 'timeseries', unit: 'percentunit', min: 0, max: 1, w: 8, h: 8, description: 'The share of its KV cache each engine reports in use.', targets: [{ expr: `max by (backend) (fabric_backend_engine_kv_cache_usage_ratio{${backend}})`, legend: '{{backend}}' }] },
    { title: 'Requests in flight to each backend', type: 'timeseries', unit: 'short', w: 8, h: 8, description: 'This gateway\'s requests outstanding per backend (what least-outstanding balancing reads).', targets: [{ expr: `sum by (backend) (fabric_backend_outstanding_requests{${backend}})`, legend: '{{backend}}' }] },
  ];
  const tokens: PanelSpec[] = [
    { title: 'Tokens per second', type: 'timeseries', unit: 'short', w: 12, h: 8, description: 'Prompt (in) and completion (out) tokens as the backends reported them.', targets: [{ expr: `sum by (backend, direction) (rate(fabric_tokens_total{${backend}}[${RATE}]))`, legend: '{{backend}} {{direction}}' }] },
    { title: 'Cost per hour', type: 'timeseries', unit: 'currencyUSD', w: 12, h: 8, description: 'Spend by backend, from the price table, as a rate per hour.', targets: [{ expr: `sum by (backend) (rate(fabric_cost_usd_total{${backend}}[${RATE}])) * 3600`, legend: '{{backend}}' }] },
  ];
  if (cfg.budgets.length > 0) {
    tokens.push({ title: 'Budgets spent', type: 'bargauge', unit: 'percentunit', min: 0, max: 1, w: 24, h: 6, description: 'Each budget\'s spend in its current period against its amount.', targets: [{ expr: `max by (budget, period) (fabric_budget_spent_usd{${G}}) / max by (budget, period) (fabric_budget_limit_usd{${G}})`, legend: '{{budget}} ({{period}})', instant: true }],
      thresholds: [{ color: 'green', value: null }, { color: 'orange', value: 0.8 }, { color: 'red', value: 1 }] });
  }
  const gateway: PanelSpec[] = [
    { title: 'Gateway memory', type: 'timeseries', unit: 'bytes', w: 8, h: 8, description: 'Resident memory of each gateway process (a worker each, with --workers).', targets: [{ expr: `process_resident_memory_bytes{${G}}`, legend: '{{instance}} {{worker}}' }] },
    { title: 'Gateway CPU', type: 'timeseries', unit: 'percentunit', w: 8, h: 8, description: 'CPU time of each gateway process, as a share of one core.', targets: [{ expr: `rate(process_cpu_seconds_total{${G}}[${RATE}])`, legend: '{{instance}} {{worker}}' }] },
    { title: 'Usage records waiting', type: 'timeseries', unit: 'short', w: 8, h: 8, description: 'Records spooled on disk, not yet in the store; the store\'s state (1 up).', targets: [
      { expr: `sum(fabric_accounting_queue_records{${G}})`, legend: 'waiting' },
      { expr: `min(fabric_accounting_store_up{${G}})`, legend: 'store up' },
    ] },
  ];
  return [
    { title: 'Fleet', panels: fleet },
    { title: 'Traffic and errors', panels: traffic },
    { title: 'Latency', panels: latency },
    { title: 'Engines and GPUs', panels: engines },
    { title: 'Tokens and cost', panels: tokens },
    { title: 'Gateway', panels: gateway },
  ];
}

function panelOptions(p: PanelSpec): Record<string, unknown> {
  const reduce = { calcs: ['lastNotNull'], fields: '', values: false };
  switch (p.type) {
    case 'timeseries': return { legend: { displayMode: 'list', placement: 'bottom', showLegend: true, calcs: [] }, tooltip: { mode: 'multi', sort: 'desc' } } satisfies Json<TimeSeriesOptions>;
    case 'stat': return { reduceOptions: reduce, colorMode: 'background', graphMode: 'none', textMode: 'value_and_name', orientation: 'auto' } satisfies Json<StatOptions>;
    case 'bargauge': return { reduceOptions: reduce, orientation: 'horizontal', displayMode: 'gradient' } satisfies Json<BarGaugeOptions>;
    case 'state-timeline': return { showValue: 'never', mergeValues: true, rowHeight: 0.9, legend: { displayMode: 'list', placement: 'bottom', showLegend: false, calcs: [] }, tooltip: { mode: 'single', sort: 'none' } } satisfies Json<StateTimelineOptions>;
    case 'table': return { showHeader: true } satisfies Json<TableOptions>;
  }
}

function panelJson(p: PanelSpec, id: number, x: number, y: number): Panel {
  const defaults = {
    unit: p.unit ?? 'none',
    thresholds: { mode: 'absolute', steps: p.thresholds ?? [{ color: 'green', value: null }] },
    mappings: p.mappings ?? [],
    ...(p.min === undefined ? {} : { min: p.min }),
    ...(p.max === undefined ? {} : { max: p.max }),
    ...(p.mappings !== undefined ? { color: { mode: 'thresholds' } } : p.type === 'stat' ? { color: { mode: 'palette-classic' } } : {}),
  } satisfies Json<NonNullable<Panel['fieldConfig']>['defaults']>;
  return {
    id, type: p.type, title: p.title, description: p.description, datasource: DS,
    gridPos: { h: p.h, w: p.w, x, y },
    fieldConfig: { defaults: defaults as NonNullable<Panel['fieldConfig']>['defaults'], overrides: [] },
    options: panelOptions(p),
    targets: p.targets.map((t, i) => ({
      datasource: DS, refId: String.fromCharCode(65 + i), expr: t.expr, legendFormat: t.legend,
      ...(t.instant === true ? { instant: true, range: false, format: 'table' } : { range: true }),
    })),
    ...(p.type === 'table' ? { transformations: [{ id: 'organize', options: { excludeByName: { Time: true, Value: true } } }] } : {}),
  };
}

export function grafanaDashboard(ctx: RenderContext): string {
  const panels: Array<Panel | RowPanel> = [];
  let id = 1;
  let y = 0;
  for (const row of rows(ctx.cfg)) {
    panels.push({ id: id++, type: 'row', title: row.title, collapsed: false, gridPos: { h: 1, w: 24, x: 0, y }, panels: [] });
    y += 1;
    let x = 0;
    let rowH = 0;
    for (const p of row.panels) {
      if (x + p.w > 24) { x = 0; y += rowH; rowH = 0; }
      panels.push(panelJson(p, id++, x, y));
      x += p.w;
      rowH = Math.max(rowH, p.h);
    }
    y += rowH;
  }
  const variable = (name: string, label: string, metric: string): VariableModel => ({
    type: 'query', name, label, datasource: DS,
    query: { query: `label_values(${metric}{${G}}, ${name})`, refId: `${name}-values` },
    refresh: 2, includeAll: true, multi: true, allValue: '.*', current: { selected: true, text: ['All'], value: ['$__all'] }, sort: 1,
  });
  const dashboard: Dashboard = {
    title: 'AI Fabric',
    uid: 'ai-fabric',
    description: `The AI Fabric gateway and its fleet. Generated by fabric render from ${ctx.source}: edit that and re-render; changes made here are overwritten.`,
    tags: ['ai-fabric', 'llm'],
    timezone: 'browser',
    schemaVersion: 39,
    version: 1,
    editable: true,
    graphTooltip: 1,
    refresh: '30s',
    time: { from: 'now-6h', to: 'now' },
    templating: {
      list: [
        { type: 'datasource', name: 'datasource', label: 'Data source', query: 'prometheus', hide: 0, refresh: 1 },
        variable('role', 'Role', 'fabric_requests_total'),
        variable('backend', 'Backend', 'fabric_backend_up'),
      ],
    },
    annotations: { list: [] },
    panels,
  };
  return JSON.stringify(dashboard, null, 2) + '\n';
}

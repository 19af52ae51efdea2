// fabric health [BACKEND|NODE]: the gateway and every backend in one table, from the
// gateway's GET /health — status, probe latency, served model, load, node power and last
// error — with an exit code by the runbook's alert levels, for people and for timers.

import { EXIT_CODE, LEVEL_RANK, evaluate, gatewayDown, reloadRefusedText, type AlertState } from '../health/alerts.ts';
import type { BackendReport, NodeReport, RoleReport } from '../health/report.ts';
import {
  UsageError, adminRefusal, authHeaders, countFlag, durationFlag, gatewayKey, gatewayUrl, netError, painter, table, useColor, type Paint,
} from './client.ts';
import { parseCommand, usageError } from './args.ts';
import { formatMs } from '../config/units.ts';
import { defaultStateFile, notifyChange, notifyUrl, type NotifySettings } from './health-notify.ts';

const HELP = `Usage: fabric health [BACKEND|NODE] [--json] [--watch [--interval S] [--count N]] [--probe]
                     [--url URL] [--key KEY] [--timeout S]
                     [--notify URL [--notify-format slack|json] [--notify-level L] [--state FILE]]

Shows the gateway and every backend from the gateway's GET /health: status, probe
latency, the p95 of its live traffic over the last minutes (answers' latency, and
streams' time to first token), served model, load (engine queue, running requests, KV
cache), node power state and last error. Coloured on a terminal, plain when piped.

  BACKEND|NODE   only this backend, or every backend of this node
  --json         the report as JSON, with its alert level and exit code
  --watch        refresh until interrupted (Ctrl-C)
  --interval S   --watch refresh period (default 2s)
  --count N      --watch: stop after N refreshes
  --probe        have the gateway probe its backends first (needs the master key): one
                 that answers is back at once, its cooldown cut short — after mending an
                 engine, to verify recovery without waiting for the next probe
  --url URL      the gateway (default: $FABRIC_URL, else ${'http://127.0.0.1:4000'})
  --key KEY      the master key: /health then shows each backend's last error (hidden
                 without it); env:NAME reads it from the environment (default: $FABRIC_API_KEY)
  --timeout S    how long to wait for the gateway (default 5s)
  --notify URL   call this webhook when the alert level changed since the last run, as the
                 gateway's own alerts do, but from outside it: a timer running this sees the
                 gateway down (critical), which the gateway cannot report; env:NAME reads the
                 URL from the environment (it may hold a token, and is never printed)
  --notify-format S  slack ({"text"}, the default) or json, as gateway.alerts.format
  --notify-level L   info, warning (the default) or critical: changes that stay below it
                 on both sides are only recorded, as gateway.alerts.notify
  --state FILE   where the level last reported is kept (default: $STATE_DIRECTORY/health-level
                 under systemd, else $XDG_STATE_HOME/ai-fabric/health-level, else
                 ~/.local/state/ai-fabric/health-level); a failed call is tried again next run

Exit status, by the runbook's alert levels:
  0  all up, or information only: a workstation off (expected), one chat backend down
  1  warning: two or more backends down, or an embeddings backend down (always-on,
     or a workstation's whose machine answers) (with BACKEND|NODE: any of those
     backends down); a backend slow (its p95 above its health policy's slow threshold)
  2  critical: the gateway is down, or no backend can serve; also bad usage
`;

interface HealthBody {
  status: string;
  simulated: boolean;
  uptime_s: number;
  backends: BackendReport[];
  nodes?: NodeReport[];
  roles?: RoleReport[];
  /** Absent from gateways older than it. */
  config?: { loaded_at: string | null; reload_refused_at: string | null; reload_refused: string | null };
  /** Whether backend URLs and last errors are shown (the master key's holder, or no master key set); absent from older gateways. */
  details?: 'full' | 'hidden';
}

export interface HealthSnapshot {
  url: string;
  gateway: { status: string; latency_ms: number | null; uptime_s: number | null; simulated: boolean | null; error: string | null };
  backends: BackendReport[];
  nodes: NodeReport[];
  roles: RoleReport[];
  /** The gateway's backend URLs and last errors: shown, hidden (not the master key), or null (an older gateway, or none reached). */
  details: 'full' | 'hidden' | null;
  alert: AlertState;
  exit_code: number;
}

/**
 * POST /admin/health/probe before looking: the exit code when the gateway refuses it (no or a
 * wrong key, no master key at all: 2), else undefined — a gateway that cannot be reached is the
 * snapshot's to report. Asked even without a key: only the gateway knows whether it has a
 * master key, and so whether any key would do.
 */
async function probeFirst(url: string, key: string | undefined, timeoutMs: number, only: string | undefined): Promise<number | undefined> {
  let r: Response;
  try {
    // A probe waits for its engine's answer: the gateway's probe timeout, not this command's.
    r = await fetch(`${url}/admin/health/probe`, { method: 'POST', headers: { ...authHeaders(key), 'content-type': 'application/json' }, body: JSON.stringify(only === undefined ? {} : { only }), signal: AbortSignal.timeout(Math.max(timeoutMs, 15_000)) });
  } catch (e) {
    process.stderr.write(`fabric health: cannot ask for probes: ${netError(e)}\n`);
    return undefined;
  }
  const text = await r.text();
  if (r.ok) return undefined;
  const refusal = adminRefusal(r.status, text, key, '--probe', 'fabric health without --probe shows the backends as the gateway\'s own probes last found them');
  let message = refusal ?? text;
  if (refusal === undefined) try { message = (JSON.parse(text) as { error?: { message?: string } }).error?.message ?? text; } catch { /* as sent */ }
  process.stderr.write(`fabric health: the gateway refused the probe (HTTP ${r.status}): ${message}\n`);
  return 2;
}

/** One look at the gateway: never throws for a gateway that is down, that is the critical level. */
export async function snapshot(url: string, key: string | undefined, timeoutMs: number, only?: string): Promise<HealthSnapshot> {
  const started = performance.now();
  const down = (error: string): HealthSnapshot => {
    const alert = gatewayDown(url, error);
    return {
      url, gateway: { status: 'down', latency_ms: null, uptime_s: null, simulated: null, error }, backends: [], nodes: [], roles: [], details: null, alert, exit_code: EXIT_CODE[alert.level],
    };
  };
  let body: HealthBody;
  let latency: number;
  try {
    const res = await fetch(`${url}/health`, { headers: authHeaders(key), signal: AbortSignal.timeout(timeoutMs) });
    const text = await res.text();
    latency = performance.now() - started;
    if (res.status !== 200) return down(`GET /health answered HTTP ${res.status}${text === '' ? '' : `: ${text.slice(0, 200)}`}`);
    body = JSON.parse(text) as HealthBody;
    if (!Array.isArray(body.backends)) return down('GET /health answered without a backends list (is this an AI Fabric gateway?)');
  } catch (e) {
    return down(e instanceof SyntaxError ? 'GET /health answered with a body that is not JSON' : netError(e));
  }
  let backends = body.backends;
  let nodes = body.nodes ?? [];
  if (only !== undefined) {
    backends = backends.filter((b) => b.name === only || b.node === only);
    nodes = nodes.filter((n) => n.name === only || backends.some((b) => b.node === n.name));
    if (backends.length === 0) {
      const names = [...body.backends.map((b) => b.name), ...(body.nodes ?? []).map((n) => n.name)];
      throw new UsageError(`no backend or node named ${JSON.stringify(only)}; the gateway has: ${names.join(', ')}`);
    }
  }
  const c = body.config;
  const reloadRefused = c?.reload_refused_at == null ? undefined
    : reloadRefusedText({ loadedAt: Date.parse(c.loaded_at ?? ''), refused: { at: Date.parse(c.reload_refused_at), reason: c.reload_refused ?? '' } });
  const alert = evaluate({ backends, draining: body.status === 'draining', partial: only !== undefined, reloadRefused });
  if (only !== undefined && LEVEL_RANK[alert.level] < LEVEL_RANK.warning) {
    // Asked about one machine: it being down is the answer, whatever the fleet-wide rules say.
    const down = backends.filter((b) => b.status === 'down');
    if (down.length > 0) {
      alert.level = 'warning';
      alert.reasons.unshift(`${down.map((b) => b.name).join(', ')} down`);
    }
  }
  return {
    url,
    gateway: { status: body.status === 'ok' || body.status === 'degraded' ? 'up' : body.status, latency_ms: Math.round(latency * 10) / 10, uptime_s: body.uptime_s, simulated: body.simulated, error: null },
    backends, nodes, roles: body.roles ?? [], details: body.details === 'full' || body.details === 'hidden' ? body.details : null, alert, exit_code: EXIT_CODE[alert.level],
  };
}

const STATUS_STYLE: Record<string, Parameters<Paint>[1][]> = {
  up: ['green'], failing: ['yellow'], down: ['red', 'bold'], 'offline (expected)': ['dim'], waking: ['cyan'], unknown: ['dim'], unconfigured: ['yellow'],
};
const LEVEL_STYLE: Record<AlertState['level'], Parameters<Paint>[1][]> = { ok: ['green'], info: ['blue'], warning: ['yellow', 'bold'], critical: ['red', 'bold'] };

function ms(v: number | null): string {
  return v === null ? '-' : formatMs(v);
}

/** The p95 of the backend's recent answers and of its streams' first tokens (older gateways report neither). */
function recentText(b: BackendReport): string {
  const r = b.recent as BackendReport['recent'] | undefined;
  if (r === undefined) return '-';
  const parts: string[] = [];
  if (r.latency_p95_ms !== null) parts.push(ms(r.latency_p95_ms));
  if (r.ttft_p95_ms !== null) parts.push(`ttft ${ms(r.ttft_p95_ms)}`);
  return parts.length === 0 ? '-' : parts.join(', ');
}

function duration(s: number): string {
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
}

export function loadText(b: BackendReport): string {
  const l = b.load;
  const parts: string[] = [];
  if (l.running !== null) parts.push(`${l.running} running`);
  if (l.waiting !== null) parts.push(`${l.waiting} queued`);
  if (l.kv_cache_usage !== null) parts.push(`kv ${Math.round(l.kv_cache_usage * 100)}%`);
  if (parts.length === 0 && b.outstanding > 0) parts.push(`${b.outstanding} in flight`);
  if (b.model_loaded === false) parts.push('not loaded');
  else if (b.model_loaded === true && l.running === null) parts.push('loaded');
  if (l.overloaded) parts.push('OVERLOADED');
  return parts.length === 0 ? '-' : parts.join(', ');
}

export function render(s: HealthSnapshot, paint: Paint): string {
  let out = '';
  const g = s.gateway;
  const gwStatus = paint(g.status, ...(g.status === 'up' ? ['green'] as const : g.status === 'draining' ? ['yellow'] as const : ['red', 'bold'] as const));
  out += `${paint('gateway', 'bold')}  ${s.url}  ${gwStatus}`;
  if (g.error !== null) out += `  ${g.error}`;
  else out += `  ${ms(g.latency_ms)}  up ${duration(g.uptime_s ?? 0)}${g.simulated === true ? paint('  (SIMULATED fleet)', 'yellow') : ''}`;
  out += '\n';
  if (s.backends.length > 0) {
    const rows: string[][] = [['BACKEND', 'STATUS', 'LATENCY', 'P95 (5M)', 'ENGINE', 'MODEL', 'LOAD', 'NODE', 'LAST ERROR'].map((h) => paint(h, 'bold'))];
    for (const b of s.backends) {
      let status = b.status as string;
      if (b.status === 'down' && b.cooldown_remaining_s !== null) status += ` (cooling ${b.cooldown_remaining_s}s)`;
      else if (b.status === 'down' && b.circuit === 'half-open') status += ' (probing back)';
      // Older gateways do not report it.
      if (b.rate_limited_remaining_s != null) status += ` (rate limited by the backend for ${b.rate_limited_remaining_s}s)`;
      const node = b.node === null ? '-' : `${b.node}${b.node_state === null ? '' : ` (${b.node_state})`}`;
      // Hidden is not the same as none: a backend not up may well have an error the key did not show.
      const err = b.status === 'up' ? '-' : b.last_error ?? (s.details === 'hidden' ? '(hidden)' : '-');
      rows.push([
        b.name + (b.cloud ? paint(' (cloud)', 'dim') : ''),
        paint(status, ...(STATUS_STYLE[b.status] ?? [])),
        ms(b.latency_ms),
        paint(recentText(b), ...(b.slow == null ? [] : ['yellow'] as const)),
        b.engine + (b.engine_version === null || b.engine_version === undefined ? '' : ` ${b.engine_version}`),
        (b.served_model ?? b.model) + (b.served_context === null || b.served_context === undefined ? '' : paint(` (${b.served_context} ctx)`, 'dim')),
        loadText(b),
        node,
        err === '-' ? err : paint(err, 'dim'),
      ]);
    }
    out += '\n' + table(rows);
  }
  const rerouted = s.roles.filter((r) => r.serving !== r.name);
  if (rerouted.length > 0) {
    out += '\n';
    for (const r of rerouted) {
      out += r.serving === null
        ? `role ${r.name}: ${paint('nothing can serve it now', 'red')}\n`
        : `role ${r.name}: served by its fallback ${r.serving} (its own backends are unavailable)\n`;
    }
  }
  const level = s.alert.level;
  // Failing backends (recent errors, not yet down) do not raise the level, but are named: the
  // requests they fail are real even before the circuit opens.
  const failing = s.backends.filter((b) => b.status === 'failing').map((b) => b.name);
  const summary = failing.length > 0 ? ` — failing, not down yet: ${failing.join(', ')} (recent requests failed; the next one ${failing.length === 1 ? 'it answers' : 'each answers'} clears it)`
    : s.alert.reasons.length > 0 ? '' : s.backends.every((b) => b.status === 'up') ? ' — all backends up' : ' — nothing that needs attention';
  out += `\n${paint(`level: ${level.toUpperCase()}`, ...LEVEL_STYLE[level])}${summary}\n`;
  for (const r of s.alert.reasons) out += `  ${r}\n`;
  return out;
}

export async function runHealth(argv: string[]): Promise<number> {
  const parsed = parseCommand('health', HELP, {
    args: argv, allowPositionals: true,
    options: {
      json: { type: 'boolean' }, watch: { type: 'boolean', short: 'w' }, interval: { type: 'string' }, count: { type: 'string' },
      url: { type: 'string' }, key: { type: 'string' }, timeout: { type: 'string' }, probe: { type: 'boolean' }, help: { type: 'boolean', short: 'h' },
      notify: { type: 'string' }, 'notify-format': { type: 'string' }, 'notify-level': { type: 'string' }, state: { type: 'string' },
    },
  });
  if (typeof parsed === 'number') return parsed;
  const v = parsed.values;
  if (v.probe === true && v.watch === true) return usageError('health', '--probe and --watch: probe once, then watch', HELP);
  if (parsed.positionals.length > 1) return usageError('health', 'one BACKEND or NODE at most', HELP);
  try {
    const url = gatewayUrl(v.url);
    const key = gatewayKey(v.key);
    const timeoutMs = durationFlag('timeout', v.timeout, 5_000);
    const intervalMs = durationFlag('interval', v.interval, 2_000);
    const count = countFlag('count', v.count);
    const only = parsed.positionals[0];
    const format = v['notify-format'] ?? 'slack';
    if (format !== 'slack' && format !== 'json') throw new UsageError('--notify-format must be slack or json');
    const level = v['notify-level'] ?? 'warning';
    if (level !== 'info' && level !== 'warning' && level !== 'critical') throw new UsageError('--notify-level must be info, warning or critical');
    if (v.notify === undefined && (v['notify-format'] !== undefined || v['notify-level'] !== undefined || v.state !== undefined)) {
      throw new UsageError('--notify-format, --notify-level and --state go with --notify URL');
    }
    const notify: NotifySettings | undefined = v.notify === undefined ? undefined
      : { url: notifyUrl(v.notify), format, notify: level, stateFile: v.state ?? defaultStateFile() };
    /** With --notify: the webhook called when the level changed since the last run, said on stderr. */
    const report = async (s: HealthSnapshot): Promise<void> => {
      if (notify === undefined) return;
      const said = await notifyChange(s.alert, s.gateway.simulated === true, notify);
      if (said !== undefined) process.stderr.write(`fabric health: ${said}\n`);
    };
    const tty = process.stdout.isTTY === true;
    const paint = painter(useColor(process.stdout));
    const show = (s: HealthSnapshot): void => {
      if (v.json === true) process.stdout.write(JSON.stringify(s, null, v.watch === true ? undefined : 2) + '\n');
      else if (v.watch === true && tty) process.stdout.write(`\x1b[H\x1b[2J${render(s, paint)}`);
      else process.stdout.write((v.watch === true ? `— ${new Date().toISOString()}\n` : '') + render(s, paint));
    };
    if (v.probe === true) {
      const refused = await probeFirst(url, key, timeoutMs, only);
      if (refused !== undefined) return refused;
    }
    // Said once, on stderr: a key given, yet the details hidden, is a key the gateway did not take.
    let keyNoted = false;
    const noteKey = (s: HealthSnapshot): void => {
      if (keyNoted || key === undefined || s.details !== 'hidden') return;
      keyNoted = true;
      process.stderr.write('fabric health: the gateway did not take the key given (--key or $FABRIC_API_KEY) as its master key: backend URLs and last errors are hidden\n');
    };
    if (v.watch !== true) {
      const s = await snapshot(url, key, timeoutMs, only);
      noteKey(s);
      show(s);
      await report(s);
      return s.exit_code;
    }
    let stop = false;
    let wake: (() => void) | undefined;
    const onSignal = (): void => { stop = true; wake?.(); };
    process.once('SIGINT', onSignal);
    process.once('SIGTERM', onSignal);
    let last = 0;
    try {
      for (let n = 1; !stop; n++) {
        const s = await snapshot(url, key, timeoutMs, only);
        noteKey(s);
        show(s);
        await report(s);
        last = s.exit_code;
        if (count !== undefined && n >= count) break;
        await new Promise<void>((resolve) => {
          const t = setTimeout(resolve, intervalMs);
          wake = () => { clearTimeout(t); resolve(); };
        });
      }
    } finally {
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
    }
    return last;
  } catch (e) {
    if (!(e instanceof UsageError)) throw e;
    return usageError('health', e.message);
  }
}

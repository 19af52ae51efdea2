// fabric smoke: every role and alias end to end through the gateway — chat, streamed chat,
// embeddings with their dimension checked — with latency, progress on stderr, a report of
// each failure (what was sent, what came back) and a non-zero exit on failure. Nothing is
// sent that a cloud API would bill unless --include-cloud. --drill rehearses the runbook's
// failure drill: per role, the gateway treats the primary as failed for that one request
// (x-fabric-drill: fail-primary) and the check reports which fallback step served.

import type { BackendReport, RoleReport } from '../health/report.ts';
import { KIND_ENDPOINTS, type RoleKind } from '../config/types.ts';
import {
  UsageError, authHeaders, gatewayFlags, netError, painter, table, useColor, type Paint,
} from './client.ts';
import { parseCommand, usageError } from './args.ts';

const HELP = `Usage: fabric smoke [--json] [--drill] [--include-cloud] [--only NAMES] [--url URL] [--key KEY] [--timeout S]

Checks every role and alias end to end through the gateway: a chat completion and a
streamed one for chat roles, an embedding (its dimension checked) for embeddings roles,
one request per alias (checking it reaches its role). Progress goes to stderr; the report
(latency per check, which backend served, and for each failure what was sent and what came
back) to stdout.

  --drill          also rehearse the failure drill: per role, the gateway treats the
                   primary's backends as failed for that request only (x-fabric-drill) and
                   the check reports which fallback step served
  --include-cloud  also check roles that a cloud API (which bills) would serve; by default
                   they are skipped, and so is any check a fallback would send to the cloud
  --only NAMES     only these roles or aliases (comma-separated)
  --json           the report as JSON
  --url URL        the gateway (default: $FABRIC_URL, else http://127.0.0.1:4000)
  --key KEY        the gateway key; env:NAME reads it from the environment
                   (default: $FABRIC_API_KEY)
  --timeout S      per request (default 150s: longer than a backend's first_byte timeout
                   (60s by default) plus a fallback's answer, so that a check the gateway
                   would still serve from its fallback is not failed before it does); the
                   gateway's own /health and /v1/models get 10s

Exit status: 0 every check passed (or was skipped), 1 a check failed, 2 the gateway could
not be reached or refused the key, or bad usage.
`;

type CheckKind = 'chat' | 'stream' | RoleKind;

/** The one check of a role's kind (a chat role also gets a streamed one). */
function checkOf(kind: RoleKind | undefined): CheckKind {
  return kind ?? 'chat';
}

/** What a rerank check asks: the second document is the one about the query. */
const RERANK_QUERY = 'fabric smoke test';
const RERANK_DOCUMENTS = ['an unrelated sentence', 'the fabric smoke test document'];

/** A second of silence as a WAV file (16 kHz, 16-bit mono): what a transcription check uploads. */
function silence(): Buffer {
  const b = Buffer.alloc(44 + 32_000);
  b.write('RIFF', 0); b.writeUInt32LE(36 + 32_000, 4); b.write('WAVEfmt ', 8); b.writeUInt32LE(16, 16);
  b.writeUInt16LE(1, 20); b.writeUInt16LE(1, 22); b.writeUInt32LE(16_000, 24); b.writeUInt32LE(32_000, 28);
  b.writeUInt16LE(2, 32); b.writeUInt16LE(16, 34); b.write('data', 36); b.writeUInt32LE(32_000, 40);
  return b;
}

interface Plan {
  target: string;
  via: 'role' | 'alias' | 'backend-alias';
  /** The role a role or alias stands for; the backend for a backend alias. */
  of: string;
  check: CheckKind;
  drill: boolean;
  dimensions: number | null;
  /** Set when the check is not sent, and why. */
  skip?: string;
  /** Drill of a role with no fallback chain: a 503 is the honest answer, reported as a warning. */
  noFallback?: boolean;
}

export interface CheckResult {
  target: string;
  via: Plan['via'];
  of: string;
  check: string;
  status: 'pass' | 'fail' | 'skip' | 'warn';
  ms: number | null;
  served_role: string | null;
  served_backend: string | null;
  rerouted: boolean;
  detail: string;
  sent?: { method: string; path: string; headers: Record<string, string>; body: unknown };
  came_back?: { status: number | null; body: string };
}

interface HealthBody { backends: BackendReport[]; roles?: RoleReport[] }

const PROMPT = 'Reply with one word: ok';

function planChecks(h: HealthBody, includeCloud: boolean, drill: boolean, only: Set<string> | undefined): Plan[] {
  const roles = h.roles ?? [];
  const byName = new Map<string, RoleReport>();
  for (const r of roles) {
    byName.set(r.name, r);
    for (const a of r.aliases) byName.set(a, r);
  }
  const isCloudRole = (name: string | null): boolean => name !== null && byName.get(name)?.cloud === true;
  /** Why a check of role r must not be sent: whatever would serve it now bills. */
  const cloudSkip = (r: RoleReport): string | undefined => {
    if (includeCloud) return undefined;
    if (r.cloud) return `${r.name} is served by a cloud API (--include-cloud to check it)`;
    if (r.serving !== r.name && isCloudRole(r.serving)) return `${r.name}'s own backends are unavailable and its fallback ${r.serving} is a cloud API (--include-cloud to check it)`;
    return undefined;
  };
  const want = (name: string): boolean => only === undefined || only.has(name);
  const plans: Plan[] = [];
  const checksFor = (r: RoleReport): CheckKind[] => (r.kind === 'chat' ? ['chat', 'stream'] : [checkOf(r.kind)]);
  for (const r of roles) {
    if (!want(r.name)) continue;
    const skip = cloudSkip(r);
    for (const check of checksFor(r)) plans.push({ target: r.name, via: 'role', of: r.name, check, drill: false, dimensions: r.dimensions, ...(skip === undefined ? {} : { skip }) });
  }
  for (const r of roles) {
    const skip = cloudSkip(r);
    for (const a of r.aliases) {
      if (!want(a)) continue;
      plans.push({ target: a, via: 'alias', of: r.name, check: checkOf(r.kind), drill: false, dimensions: r.dimensions, ...(skip === undefined ? {} : { skip }) });
    }
  }
  for (const b of h.backends) {
    for (const a of b.aliases ?? []) {
      if (!want(a) || byName.has(a)) continue;
      const skip = b.cloud && !includeCloud ? `${b.name} is a cloud API (--include-cloud to check it)`
        : b.status === 'offline (expected)' || b.status === 'waking' ? `${b.name} is ${b.status}; a backend alias has no fallback`
          : undefined;
      plans.push({
        target: a, via: 'backend-alias', of: b.name, check: checkOf(b.kinds.find((k) => k !== 'chat')), drill: false, dimensions: null,
        ...(skip === undefined ? {} : { skip }),
      });
    }
  }
  if (drill) {
    for (const r of roles) {
      if (!want(r.name)) continue;
      const check = checkOf(r.kind);
      const base = { target: r.name, via: 'role' as const, of: r.name, check, drill: true, dimensions: r.dimensions };
      if (r.fallbacks.length === 0) {
        plans.push({ ...base, noFallback: true });
        continue;
      }
      const next = r.fallbacks.find((f) => byName.get(f)?.available === true) ?? null;
      const skip = includeCloud || !isCloudRole(next) ? undefined : `the drill would be served by ${next}, a cloud API (--include-cloud to rehearse it)`;
      plans.push({ ...base, ...(skip === undefined ? {} : { skip }) });
    }
  }
  return plans;
}

function bodyFor(p: Plan): Record<string, unknown> {
  if (p.check === 'embeddings') return { model: p.target, input: 'fabric smoke test' };
  if (p.check === 'rerank') return { model: p.target, query: RERANK_QUERY, documents: RERANK_DOCUMENTS };
  if (p.check === 'transcription') return { model: p.target, file: 'smoke.wav (a second of silence, multipart/form-data)' };
  return { model: p.target, messages: [{ role: 'user', content: PROMPT }], max_tokens: 8, temperature: 0, ...(p.check === 'stream' ? { stream: true } : {}) };
}

const PATH: Record<CheckKind, string> = { ...KIND_ENDPOINTS, stream: '/v1/chat/completions' };

function errorSummary(status: number, text: string): string {
  try {
    const e = (JSON.parse(text) as { error?: { code?: string; message?: string } }).error;
    if (e !== undefined) return `HTTP ${status} ${e.code ?? ''}: ${e.message ?? ''}`.replace(' :', ':');
  } catch { /* not JSON */ }
  return `HTTP ${status}${text === '' ? '' : `: ${text.slice(0, 200)}`}`;
}

/** Verifies a 200 answer; returns what is wrong with it, or undefined. */
function verify(p: Plan, text: string, contentType: string): string | undefined {
  if (p.check === 'stream') {
    if (!contentType.includes('text/event-stream')) return `answered ${contentType || 'no content type'}, not an event stream`;
    let chunks = 0;
    let done = false;
    for (const line of text.split('\n')) {
      if (!line.startsWith('data:')) continue;
      const data = line.slice(5).trim();
      if (data === '[DONE]') { done = true; continue; }
      let ev: { error?: { message?: string }; choices?: { delta?: { content?: unknown }; finish_reason?: unknown }[] };
      try { ev = JSON.parse(data); } catch { return `a stream event is not JSON: ${data.slice(0, 100)}`; }
      if (ev.error !== undefined) return `the stream ended with an error event: ${ev.error.message ?? JSON.stringify(ev.error)}`;
      if (ev.choices?.some((c) => typeof c.delta?.content === 'string' || c.finish_reason != null)) chunks++;
    }
    if (chunks === 0) return 'the stream carried no chunks';
    if (!done) return 'the stream ended without data: [DONE]';
    return undefined;
  }
  let json: unknown;
  try { json = JSON.parse(text); } catch { return 'the answer is not JSON'; }
  if (p.check === 'transcription') return typeof (json as { text?: unknown }).text === 'string' ? undefined : 'the answer has no text';
  if (p.check === 'rerank') {
    const r = (json as { results?: { index?: unknown; relevance_score?: unknown }[] }).results;
    if (!Array.isArray(r) || r.length !== RERANK_DOCUMENTS.length || r.some((x) => typeof x?.index !== 'number' || typeof x.relevance_score !== 'number')) {
      return `the answer has no results with an index and a relevance_score for each of the ${RERANK_DOCUMENTS.length} documents`;
    }
    return undefined;
  }
  if (p.check === 'chat') {
    const c = (json as { choices?: { message?: { content?: unknown } }[] }).choices?.[0];
    if (c === undefined || typeof c.message?.content !== 'string') return 'the answer has no choices[0].message.content';
    return undefined;
  }
  const emb = (json as { data?: { embedding?: unknown }[] }).data?.[0]?.embedding;
  if (!Array.isArray(emb) || emb.length === 0 || typeof emb[0] !== 'number') return 'the answer has no data[0].embedding vector';
  if (p.dimensions !== null && emb.length !== p.dimensions) return `the embedding has ${emb.length} dimensions, the role promises ${p.dimensions}`;
  return undefined;
}

/**
 * Per request: past a backend's first_byte timeout (60 s by default), after which the gateway
 * falls back, plus time for the fallback to answer (a model that loads first).
 */
const DEFAULT_TIMEOUT_MS = 150_000;

async function runCheck(url: string, key: string | undefined, p: Plan, timeoutMs: number): Promise<CheckResult> {
  const name = p.drill ? `drill (${p.check})` : p.check;
  const base = { target: p.target, via: p.via, of: p.of, check: name, served_role: null, served_backend: null, rerouted: false };
  if (p.skip !== undefined) return { ...base, status: 'skip', ms: null, detail: p.skip };
  // A check is of the backends: never answered from the response cache (no-cache), and keeps nothing there (no-store).
  const headers: Record<string, string> = { 'content-type': 'application/json', 'cache-control': 'no-cache, no-store', ...(p.drill ? { 'x-fabric-drill': 'fail-primary' } : {}) };
  const body = bodyFor(p);
  const sent = { method: 'POST', path: PATH[p.check], headers: { ...headers }, body };
  const started = performance.now();
  let status: number;
  let text: string;
  let res: Response;
  try {
    let payload: string | FormData = JSON.stringify(body);
    const h: Record<string, string> = { ...headers, ...authHeaders(key) };
    if (p.check === 'transcription') {
      payload = new FormData();
      payload.set('model', p.target);
      payload.set('file', new Blob([silence()], { type: 'audio/wav' }), 'smoke.wav');
      delete h['content-type']; // multipart, with the boundary fetch chooses
    }
    res = await fetch(url + PATH[p.check], { method: 'POST', headers: h, body: payload, signal: AbortSignal.timeout(timeoutMs) });
    status = res.status;
    text = await res.text();
  } catch (e) {
    const elapsed = Math.round(performance.now() - started);
    const why = netError(e);
    return { ...base, status: 'fail', ms: elapsed, detail: why.startsWith('no answer') ? `${why} (${timeoutMs / 1000}s)` : `no answer: ${why}`, sent, came_back: { status: null, body: netError(e) } };
  }
  const elapsed = Math.round(performance.now() - started);
  const served = {
    served_role: res.headers.get('x-fabric-role'), served_backend: res.headers.get('x-fabric-backend'), rerouted: res.headers.get('x-fabric-rerouted') === 'true',
  };
  const fail = (detail: string): CheckResult => ({ ...base, ...served, status: 'fail', ms: elapsed, detail, sent, came_back: { status, body: text.slice(0, 2000) } });
  if (p.noFallback === true) {
    if (status === 503) return { ...base, ...served, status: 'warn', ms: elapsed, detail: `${p.of} has no fallback chain: with its primary down its requests fail (503 in ${elapsed} ms)` };
    if (status === 200 && !served.rerouted) return fail(`the primary served: the gateway did not honour x-fabric-drill (is it older than this CLI?)`);
  }
  if (status !== 200) return fail(errorSummary(status, text));
  const wrong = verify(p, text, res.headers.get('content-type') ?? '');
  if (wrong !== undefined) return fail(wrong);
  const by = `${served.served_role ?? '?'} / ${served.served_backend ?? '?'}`;
  if (p.drill) {
    if (!served.rerouted || served.served_role === p.of) return fail(`the primary (${by}) served: the gateway did not honour x-fabric-drill (is it older than this CLI?)`);
    return { ...base, ...served, status: 'pass', ms: elapsed, detail: `primary treated as failed; fallback step ${served.served_role} served (${served.served_backend})` };
  }
  if (p.via === 'backend-alias' && served.served_backend !== p.of) return fail(`reached ${by}, not backend ${p.of}`);
  if (p.via === 'alias' && !served.rerouted && served.served_role !== p.of) return fail(`reached role ${served.served_role}, not ${p.of}`);
  const note = served.rerouted ? `served by fallback ${by}` : `served by ${by}`;
  return { ...base, ...served, status: 'pass', ms: elapsed, detail: note };
}

const STATUS_STYLE: Record<CheckResult['status'], Parameters<Paint>[1][]> = { pass: ['green'], fail: ['red', 'bold'], skip: ['dim'], warn: ['yellow'] };

function report(results: CheckResult[], paint: Paint): string {
  const rows = [['TARGET', 'CHECK', 'RESULT', 'LATENCY', 'SERVED BY', 'DETAIL'].map((h) => paint(h, 'bold'))];
  for (const r of results) {
    rows.push([
      r.via === 'role' ? r.target : `${r.target} → ${r.of}`,
      r.check,
      paint(r.status.toUpperCase(), ...STATUS_STYLE[r.status]),
      r.ms === null ? '-' : `${r.ms} ms`,
      r.served_backend === null ? '-' : `${r.served_role ?? '?'} / ${r.served_backend}${r.rerouted ? ' (rerouted)' : ''}`,
      r.status === 'pass' ? '' : r.detail,
    ]);
  }
  let out = table(rows);
  const failed = results.filter((r) => r.status === 'fail');
  for (const f of failed) {
    out += `\n${paint('FAILED', 'red', 'bold')} ${f.target} ${f.check}: ${f.detail}\n`;
    if (f.sent !== undefined) {
      const hdrs = Object.entries(f.sent.headers).filter(([k]) => k !== 'content-type').map(([k, v]) => ` -H '${k}: ${v}'`).join('');
      out += `  sent:      ${f.sent.method} ${f.sent.path}${hdrs} ${JSON.stringify(f.sent.body)}\n`;
    }
    if (f.came_back !== undefined) out += `  came back: ${f.came_back.status === null ? '(no response)' : `HTTP ${f.came_back.status}`} ${f.came_back.body.replace(/\s+/g, ' ').slice(0, 600)}\n`;
  }
  const count = (s: CheckResult['status']): number => results.filter((r) => r.status === s).length;
  const summary = `${count('pass')} passed, ${count('fail')} failed, ${count('warn')} warnings, ${count('skip')} skipped`;
  out += `\n${failed.length > 0 ? paint(summary, 'red', 'bold') : paint(summary, 'green')}\n`;
  return out;
}

export async function runSmoke(argv: string[]): Promise<number> {
  const parsed = parseCommand('smoke', HELP, {
    args: argv,
    options: {
      json: { type: 'boolean' }, drill: { type: 'boolean' }, 'include-cloud': { type: 'boolean' }, only: { type: 'string' },
      url: { type: 'string' }, key: { type: 'string' }, timeout: { type: 'string' }, help: { type: 'boolean', short: 'h' },
    },
  });
  if (typeof parsed === 'number') return parsed;
  const v = parsed.values;
  let target: ReturnType<typeof gatewayFlags>;
  try {
    target = gatewayFlags(v, DEFAULT_TIMEOUT_MS);
  } catch (e) {
    if (!(e instanceof UsageError)) throw e;
    return usageError('smoke', e.message);
  }
  const { url, key, timeoutMs } = target;
  const err = (msg: string): number => {
    process.stderr.write(`fabric smoke: ${msg}\n`);
    if (v.json === true) process.stdout.write(JSON.stringify({ url, ok: false, error: msg, checks: [] }, null, 2) + '\n');
    return 2;
  };
  let health: HealthBody;
  // The gateway's own answers (no backend behind them) within 10 s: --timeout is the checks', and
  // one set short for a quick generation must not call a busy gateway down.
  const askMs = 10_000;
  try {
    const res = await fetch(`${url}/health`, { headers: authHeaders(key), signal: AbortSignal.timeout(askMs) });
    if (res.status !== 200) return err(`the gateway at ${url} answered GET /health with HTTP ${res.status}`);
    health = await res.json() as HealthBody;
    // /v1/models is behind the key: a refusal here is better said once than in every check.
    const models = await fetch(`${url}/v1/models`, { headers: authHeaders(key), signal: AbortSignal.timeout(askMs) });
    await models.arrayBuffer();
    if (models.status === 401) return err(`the gateway refused the key (HTTP 401): pass --key env:NAME or set FABRIC_API_KEY`);
  } catch (e) {
    return err(`the gateway at ${url} is down (critical): ${netError(e)}`);
  }
  if (!Array.isArray(health.roles)) return err(`GET /health lists no roles: is ${url} an AI Fabric gateway, and as recent as this CLI?`);
  const only = v.only === undefined ? undefined : new Set(v.only.split(',').map((s) => s.trim()).filter((s) => s !== ''));
  const plans = planChecks(health, v['include-cloud'] === true, v.drill === true, only);
  if (only !== undefined && plans.length === 0) return err(`--only ${v.only}: no such role or alias`);
  const results: CheckResult[] = [];
  const progress = painter(useColor(process.stderr));
  const w = String(plans.length).length;
  for (const [i, p] of plans.entries()) {
    const r = await runCheck(url, key, p, timeoutMs);
    results.push(r);
    const where = r.served_backend === null ? '' : `  ${r.served_role} / ${r.served_backend}`;
    process.stderr.write(`[${String(i + 1).padStart(w)}/${plans.length}] ${r.target} ${r.check} … ${progress(r.status, ...STATUS_STYLE[r.status])}${r.ms === null ? '' : ` ${r.ms} ms`}${where}${r.status === 'pass' ? '' : `  ${r.detail}`}\n`);
  }
  const failed = results.some((r) => r.status === 'fail');
  if (v.json === true) {
    const count = (s: CheckResult['status']): number => results.filter((r) => r.status === s).length;
    process.stdout.write(JSON.stringify({ url, ok: !failed, passed: count('pass'), failed: count('fail'), warned: count('warn'), skipped: count('skip'), checks: results }, null, 2) + '\n');
  } else {
    process.stdout.write(report(results, painter(useColor(process.stdout))));
  }
  return failed ? 1 : 0;
}

// The fleet dashboard's script (GET /dashboard): reads /health, and with the master key
// /admin/usage and /admin/cache, every 5 s, and draws the fleet as the gateway sees it. Plain
// browser JavaScript, no build step, no library; every text goes in with textContent (a backend's
// error or a model name is never markup). The key, when one is asked for, stays in this tab
// (sessionStorage) and is sent only to this gateway.
'use strict';

const REFRESH_MS = 5000;
/** A gateway that does not answer within this is said to be unreachable (the view is then stale). */
const TIMEOUT_MS = 4000;
const KEY_ITEM = 'ai-fabric-key';
let key = sessionStorage.getItem(KEY_ITEM) || '';
let timer;
/** Only the newest refresh draws: one begun by the key form overtakes the one under way. */
let seq = 0;
/** When the view last showed the gateway's answer. */
let lastGood = 0;
/** Admin endpoints this gateway does not have (no store, no cache): not asked again. */
const missing = new Set();

function el(tag, attrs, children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'text') e.textContent = String(v);
    else e.setAttribute(k, String(v));
  }
  for (const c of children || []) if (c !== null && c !== undefined) e.append(c);
  return e;
}

async function get(path) {
  const headers = key === '' ? {} : { authorization: 'Bearer ' + key };
  const r = await fetch(path, { headers, cache: 'no-store', redirect: 'error', signal: AbortSignal.timeout(TIMEOUT_MS) });
  let body;
  try { body = await r.json(); } catch { body = undefined; }
  return { status: r.status, body };
}

const fmt = {
  ms: (v) => (v === null || v === undefined ? '–' : v < 1000 ? Math.round(v) + ' ms' : (v / 1000).toFixed(1) + ' s'),
  pct: (v) => (v === null || v === undefined ? '–' : Math.round(v * 100) + '%'),
  n: (v) => (v === null || v === undefined ? '–' : Number(v).toLocaleString('en')),
  usd: (v) => '$' + Number(v || 0).toFixed(v >= 100 ? 0 : 2),
  age: (s) => (s < 90 ? s + ' s' : s < 5400 ? Math.round(s / 60) + ' min' : s < 172800 ? Math.round(s / 3600) + ' h' : Math.round(s / 86400) + ' d'),
};

function badge(text, kind) {
  return el('span', { class: 'badge ' + kind, text });
}

/** Status words as the gateway gives them, to a colour. */
function tone(status) {
  if (status === 'up' || status === 'on' || status === 'ok') return 'good';
  if (status === 'down' || status === 'critical' || status === 'unconfigured') return 'bad';
  // A workstation switched off is expected: information, not a warning.
  if (status === 'offline (expected)' || status === 'off' || status === 'unknown' || status === 'info') return 'quiet';
  return 'warn';
}

function table(head, rows, id) {
  return el('table', { id }, [
    el('thead', {}, [el('tr', {}, head.map((h) => el('th', { text: h })))]),
    el('tbody', {}, rows.map((r) => el('tr', { 'data-name': r.name }, r.cells.map((c) => (c instanceof Node ? el('td', {}, [c]) : el('td', { text: c })))))),
  ]);
}

function section(title, id, content) {
  return el('section', { id }, [el('h2', { text: title }), content]);
}

function header(h) {
  const alert = h.alert;
  const reasons = el('ul', { id: 'reasons' }, alert.reasons.map((r) => el('li', { text: r })));
  return el('header', {}, [
    el('h1', { text: 'AI Fabric' }),
    badge(alert.level === 'ok' ? 'OK' : alert.level, tone(alert.level === 'ok' ? 'ok' : alert.level)),
    h.simulated ? badge('simulated', 'warn') : null,
    el('span', { class: 'meta', text: 'up ' + fmt.age(h.uptime_s) + (h.config && h.config.reload_refused_at ? ' · last reload refused' : '') }),
    reasons,
  ]);
}

function nodes(h) {
  const byName = new Map(h.backends.map((b) => [b.name, b]));
  const cards = h.nodes.map((n) => el('div', { class: 'card', 'data-name': n.name }, [
    el('h3', { text: n.name }),
    badge(n.state, tone(n.state)),
    el('span', { class: 'meta', text: n.power === 'workstation' ? ' workstation' : ' always on' }),
    el('ul', {}, n.backends.map((name) => {
      const b = byName.get(name);
      return el('li', {}, [el('span', { class: 'dot ' + tone(b ? b.status : 'unknown') }), el('span', { text: ' ' + name + (b ? ' · ' + b.model : '') })]);
    })),
  ]));
  return el('div', { class: 'cards', id: 'node-cards' }, cards);
}

function roles(h) {
  return table(['role', 'kind', 'served by now', 'backends', 'fallbacks', 'aliases'], h.roles.map((r) => ({
    name: r.name,
    cells: [r.name, r.kind, badge(r.serving === null ? 'unservable' : r.serving === r.name ? 'itself' : r.serving, r.serving === null ? 'bad' : r.serving === r.name ? 'good' : 'warn'),
      r.backends.join(', '), r.fallbacks.join(' → ') || '–', r.aliases.join(', ') || '–'],
  })), 'roles-table');
}

/**
 * A backend taken out of rotation, probed now (POST /admin/health/probe, the master key's):
 * one mended answers and is back at once, rather than at the end of its cooldown.
 */
function probeButton(b) {
  const button = el('button', { type: 'button', class: 'probe', text: 'probe now' });
  button.addEventListener('click', async () => {
    button.disabled = true;
    button.textContent = 'probing…';
    try {
      const r = await fetch('/admin/health/probe', {
        method: 'POST', headers: { authorization: 'Bearer ' + key, 'content-type': 'application/json' },
        body: JSON.stringify({ backends: [b.name] }), redirect: 'error', signal: AbortSignal.timeout(20000),
      });
      const body = await r.json().catch(() => undefined);
      const result = body && Array.isArray(body.data) ? body.data[0] : undefined;
      button.textContent = result === undefined ? 'HTTP ' + r.status : result.ok ? 'answers' : result.detail;
    } catch (e) {
      button.textContent = 'failed: ' + (e && e.message ? e.message : String(e));
    }
    void refresh();
  });
  return button;
}

function backends(h) {
  // Probing needs the master key: shown only where the page has it (details: full and a key).
  const canProbe = h.details === 'full' && key !== '';
  return table(['backend', 'node', 'engine', 'model', 'status', 'load', 'KV cache', 'requests / errors', 'p50 / p95', 'first token p50', 'last error'], h.backends.map((b) => {
    const l = b.load || {};
    const load = l.running === null || l.running === undefined ? String(b.outstanding) + ' out' : l.running + ' run · ' + (l.waiting || 0) + ' wait';
    const r = b.recent || {};
    return {
      name: b.name,
      cells: [b.name, b.node || '–', b.engine, b.model,
        canProbe && b.status !== 'up' && b.status !== 'unconfigured' ? el('span', {}, [badge(b.status, tone(b.status)), ' ', probeButton(b)]) : badge(b.status, tone(b.status)),
        load, fmt.pct(l.kv_cache_usage),
        fmt.n(r.requests) + ' / ' + fmt.n(r.errors), fmt.ms(r.latency_p50_ms) + ' / ' + fmt.ms(r.latency_p95_ms), fmt.ms(r.ttft_p50_ms), b.last_error || '–'],
    };
  }), 'backends-table');
}

function usage(u) {
  return table(['role', 'requests', 'errors', 'tokens in', 'tokens out', 'cost', 'mean latency'], u.data.map((r) => ({
    name: r.role,
    cells: [r.role || '(none)', fmt.n(r.requests), fmt.n(r.errors), fmt.n(r.prompt_tokens), fmt.n(r.completion_tokens), fmt.usd(r.cost_usd), fmt.ms(r.avg_latency_ms)],
  })), 'usage-table');
}

function cache(c) {
  if (!c.enabled) return el('p', { text: 'off (gateway.cache)' });
  const parts = ['store ' + c.store, 'ttl ' + fmt.age(c.ttl_s), 'when ' + c.when, 'scope ' + c.scope];
  if (c.store === 'memory') parts.push(fmt.n(c.entries) + (c.entries === 1 ? ' answer' : ' answers'), (c.bytes / 1048576).toFixed(1) + ' of ' + (c.max_size_bytes / 1048576).toFixed(0) + ' MiB');
  return el('p', { id: 'cache-line', text: parts.join(' · ') });
}

// The key form: made once and put back on each refresh, so what is being typed stays.
const keyInput = el('input', { type: 'password', id: 'key', autocomplete: 'off', placeholder: 'master key' });
const keyLabel = el('label', { for: 'key' });
const keyForm = el('form', { id: 'key-form' }, [keyLabel, keyInput, el('button', { type: 'submit', text: 'Use key' })]);
keyForm.addEventListener('submit', (ev) => {
  ev.preventDefault();
  key = keyInput.value.trim();
  keyInput.value = '';
  sessionStorage.setItem(KEY_ITEM, key);
  missing.clear();
  void refresh();
});

/** An admin view, unless this gateway said it has none (no master key, no store, no cache). */
async function admin(path) {
  if (missing.has(path)) return undefined;
  const r = await get(path);
  if (r.status === 200 && r.body) return r.body;
  if (r.status === 404 || (r.body && r.body.error && r.body.error.code === 'no_master_key')) missing.add(path);
  return undefined;
}

async function refresh() {
  clearTimeout(timer);
  const mine = ++seq;
  const main = document.getElementById('main');
  const status = document.getElementById('status');
  try {
    const h = await get('/health');
    if (h.body === undefined || !Array.isArray(h.body.backends)) throw new Error('the gateway answered /health with HTTP ' + h.status);
    const parts = [header(h.body), section('Nodes', 'nodes', nodes(h.body)), section('Roles', 'roles', roles(h.body)), section('Backends', 'backends', backends(h.body))];
    if (h.body.details !== 'full') {
      keyLabel.textContent = key === '' ? 'Errors, usage and the cache need the master key:' : 'That key was not the master key:';
      parts.splice(1, 0, keyForm);
    } else if (key !== '') {
      // Only a gateway with a master key has an admin API: an open one is not asked.
      const [u, c] = await Promise.all([admin('/admin/usage?by=role&since=today'), admin('/admin/cache')]);
      if (u !== undefined && Array.isArray(u.data)) parts.push(section('Usage today', 'usage', usage(u)));
      if (c !== undefined) parts.push(section('Response cache', 'cache', cache(c)));
    }
    if (mine !== seq) return;
    main.replaceChildren(...parts);
    main.className = '';
    lastGood = Date.now();
    status.textContent = 'updated ' + new Date(lastGood).toLocaleTimeString('en-GB');
    status.className = 'meta';
  } catch (e) {
    if (mine !== seq) return;
    const why = e && e.name === 'TimeoutError' ? 'no answer within ' + TIMEOUT_MS / 1000 + ' s' : e && e.message ? e.message : String(e);
    status.textContent = 'cannot reach the gateway: ' + why + (lastGood === 0 ? '' : '; what is shown is from ' + new Date(lastGood).toLocaleTimeString('en-GB'));
    status.className = 'meta error';
    main.className = 'stale';
  }
  if (mine === seq) timer = setTimeout(refresh, REFRESH_MS);
}

void refresh();

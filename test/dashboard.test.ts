// The fleet dashboard (GET /dashboard) in a real headless Chromium: what an operator sees of a
// simulated fleet, before and after giving the master key, as backends fail; that no text from
// the fleet becomes markup; and that the browser reports nothing wrong (no exception, no
// console error, no Content-Security-Policy refusal).

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startFabric, post, chat, seedEngine, type Fabric } from './helpers.ts';
import { startBrowser, type Browser, type Page } from './support/browser.ts';

const MASTER = 'fabric-master-key-for-dashboard-tests';
const FAST = { ttftMs: 5, tokensPerSecond: 2000, maxConcurrency: 16, maxQueue: 64 };
const auth = { authorization: `Bearer ${MASTER}` };
/** A model id that would be markup if the page wrote it as HTML. */
const NASTY = '<img src=x onerror="window.pwned=1">';

let f: Fabric;
let browser: Browser | string | undefined;

before(async () => {
  f = await startFabric({
    env: { FABRIC_MASTER_KEY: MASTER },
    apiKey: MASTER,
    engines: [
      seedEngine('armitage', FAST),
      seedEngine('wintermute', FAST),
      seedEngine('motoko', FAST),
      { name: 'odd', protocol: 'vllm', model: NASTY, kind: 'chat', timing: FAST },
    ],
    yaml: (url) => `
gateway:
  master_key: env:FABRIC_MASTER_KEY
  cache: true
  accounting: { flush_interval: 20ms }
  health: { failure_threshold: 2, cooldown: 1m }
nodes:
  motoko: { power: always-on }
  wintermute: { power: workstation }
  armitage: { power: workstation }
backends:
  armitage-qwen: { engine: vllm, node: armitage, url: ${url('armitage')}/v1, model: Qwen/Qwen2.5-7B-Instruct-AWQ, max_retries: 0 }
  wintermute-llama: { engine: vllm, node: wintermute, url: ${url('wintermute')}/v1, model: casperhansen/llama-3-8b-instruct-awq }
  motoko-bge: { engine: vllm, node: motoko, url: ${url('motoko')}/v1, model: BAAI/bge-base-en-v1.5 }
  odd: { engine: vllm, url: ${url('odd')}/v1, model: '${NASTY}', aliases: [odd-one] }
roles:
  chat-fast: { kind: chat, backends: [armitage-qwen], aliases: [local/chat], fallbacks: [chat-deep] }
  chat-deep: { kind: chat, backends: [wintermute-llama] }
  embeddings-general: { kind: embeddings, backends: [motoko-bge] }
`,
  });
  browser = await startBrowser();
});

after(async () => {
  try {
    if (browser !== undefined && typeof browser !== 'string') await browser.close();
  } finally {
    await f?.close();
  }
});

/** A cell of the row named `row` in the table `table`, by its column's heading. */
const cell = (page: Page, table: string, row: string, column: string): Promise<string> => page.evaluate(`(() => {
  const t = document.getElementById(${JSON.stringify(table)});
  const i = [...t.querySelectorAll('th')].findIndex((th) => th.textContent === ${JSON.stringify(column)});
  const tr = [...t.querySelectorAll('tbody tr')].find((r) => r.dataset.name === ${JSON.stringify(row)});
  return tr === undefined || i < 0 ? null : tr.children[i].textContent;
})()`);

test('the page is served with a policy that lets it load nothing but its own files', async () => {
  const r = await fetch(`${f.url}/dashboard`);
  assert.equal(r.status, 200);
  assert.match(r.headers.get('content-type')!, /^text\/html/);
  const csp = r.headers.get('content-security-policy')!;
  assert.match(csp, /default-src 'none'/);
  assert.match(csp, /script-src 'self'(;|$)/, 'no inline script, no other origin');
  assert.match(csp, /frame-ancestors 'none'/);
  assert.equal(r.headers.get('x-content-type-options'), 'nosniff');
  const js = await fetch(`${f.url}/dashboard/app.js`);
  assert.match(js.headers.get('content-type')!, /^text\/javascript/);
  assert.match(await js.text(), /textContent/);
  assert.equal((await fetch(`${f.url}/dashboard/nothing.js`)).status, 404);
  assert.equal((await fetch(`${f.url}/dashboard`, { method: 'POST' })).status, 405);
});

test('in Chromium: the fleet, then with the master key its usage and cache; a backend that fails shows so', async (t) => {
  if (typeof browser !== 'object') return t.skip(String(browser));
  // The same question twice: a backend's answer, then the cache's. (Probes are off here: a
  // backend is "unknown" until a request has reached it.)
  for (let i = 0; i < 2; i++) assert.equal((await post(f.url, '/v1/chat/completions', chat('chat-fast', 'same question', { temperature: 0 }), auth)).status, 200);
  const page = await browser.open(`${f.url}/dashboard`);
  // Without the key: the fleet as /health shows anyone, and a form for the key.
  await page.waitFor(`document.getElementById('backends-table')`);
  assert.equal(await page.evaluate(`document.querySelector('header .badge').textContent`), 'OK');
  assert.deepEqual(await page.evaluate(`[...document.querySelectorAll('#node-cards .card')].map((c) => c.dataset.name)`), ['motoko', 'wintermute', 'armitage']);
  assert.match(await page.evaluate<string>(`document.querySelector('#node-cards [data-name=armitage]').textContent`), /^armitageon workstation armitage-qwen · Qwen\/Qwen2\.5-7B-Instruct-AWQ$/);
  assert.equal(await cell(page, 'backends-table', 'armitage-qwen', 'status'), 'up');
  assert.equal(await cell(page, 'roles-table', 'chat-fast', 'served by now'), 'itself');
  assert.equal(await cell(page, 'roles-table', 'chat-fast', 'fallbacks'), 'chat-deep');
  assert.ok(await page.evaluate(`document.getElementById('key-form') !== null`), 'the key is asked for');
  assert.equal(await page.evaluate(`document.querySelectorAll('button.probe').length`), 0, 'no probing without the key');
  assert.equal(await page.evaluate(`document.getElementById('usage')`), null, 'no usage without the key');

  // A wrong key is said to be wrong; the right one opens usage and the cache.
  const submit = (key: string): Promise<unknown> => page.evaluate(`(() => { document.getElementById('key').value = ${JSON.stringify(key)}; document.getElementById('key-form').requestSubmit(); })()`);
  await submit('not-the-key');
  await page.waitFor(`document.querySelector('#key-form label')?.textContent.startsWith('That key was not the master key')`);
  await submit(MASTER);
  await page.waitFor(`document.getElementById('usage-table') && document.getElementById('cache-line')`);
  assert.equal(await page.evaluate(`document.getElementById('key-form')`), null);
  assert.equal(await cell(page, 'usage-table', 'chat-fast', 'requests'), '2');
  assert.match(await page.evaluate<string>(`document.getElementById('cache-line').textContent`), /store memory · ttl 60 min · when deterministic · scope key · 1 answer · /);
  assert.equal(await cell(page, 'backends-table', 'armitage-qwen', 'requests / errors'), '1 / 0', 'the second was the cache\'s');
  assert.equal(await page.evaluate(`sessionStorage.getItem('ai-fabric-key')`), MASTER, 'kept in this tab only');

  // armitage fails twice: down, and chat-fast is served by its fallback.
  await f.fleet.get('armitage').setFault({ kind: 'error', status: 500 });
  for (let i = 0; i < 2; i++) await post(f.url, '/v1/chat/completions', chat('chat-fast', `question ${i}`), auth);
  await page.evaluate('refresh()');
  await page.waitFor(`document.querySelector('#backends-table tr[data-name="armitage-qwen"] .badge')?.textContent === 'down'`);
  assert.equal(await cell(page, 'roles-table', 'chat-fast', 'served by now'), 'chat-deep');
  assert.notEqual(await page.evaluate(`document.querySelector('header .badge').textContent`), 'OK');
  assert.match(await page.evaluate<string>(`document.getElementById('reasons').textContent`), /armitage-qwen/);
  assert.match(await cell(page, 'backends-table', 'armitage-qwen', 'last error'), /500/);
  assert.match(await page.evaluate<string>(`document.querySelector('#node-cards [data-name=armitage] .dot').className`), /bad/);

  // Mended: "probe now" brings it back at once, not at the end of its 1 min cooldown.
  // Every backend not up has the button (never asked yet, as motoko-bge, included); those up have none.
  assert.equal(await page.evaluate(`document.querySelectorAll('#backends-table tr[data-name="wintermute-llama"] button.probe').length`), 0);
  await f.fleet.get('armitage').setFault(null);
  await page.evaluate(`document.querySelector('#backends-table tr[data-name="armitage-qwen"] button.probe').click()`);
  await page.waitFor(`document.querySelector('#backends-table tr[data-name="armitage-qwen"] .badge')?.textContent === 'up'`);
  assert.equal(await cell(page, 'roles-table', 'chat-fast', 'served by now'), 'itself');
  assert.equal(await page.evaluate(`document.querySelectorAll('#backends-table tr[data-name="armitage-qwen"] button.probe').length`), 0);

  // What the fleet says is text, never markup.
  assert.equal(await cell(page, 'backends-table', 'odd', 'model'), NASTY);
  assert.equal(await page.evaluate(`document.querySelectorAll('main img').length`), 0);
  assert.equal(await page.evaluate(`typeof window.pwned`), 'undefined', 'no handler of the fleet\'s text ran');
  assert.deepEqual(page.problems, [], 'the browser reported nothing wrong');
});

test('in Chromium: a gateway that fails or hangs is said to be unreachable, its last view marked stale, and the page recovers when it is back', async (t) => {
  if (typeof browser !== 'object') return t.skip(String(browser));
  const page = await browser.open(`${f.url}/dashboard`);
  await page.waitFor(`document.getElementById('backends-table')`);
  // The page's own fetch, made to fail as a network error would.
  await page.evaluate(`window.realFetch = window.fetch; window.fetch = () => Promise.reject(new TypeError('Failed to fetch'))`);
  await page.evaluate('refresh()');
  await page.waitFor(`document.getElementById('status').textContent.startsWith('cannot reach the gateway: Failed to fetch; what is shown is from')`);
  assert.ok(await page.evaluate(`document.getElementById('backends-table') !== null`), 'the last view stays');
  assert.equal(await page.evaluate(`document.getElementById('main').className`), 'stale');
  // A gateway that never answers: given up on after 4 s, not waited for for ever.
  await page.evaluate(`window.fetch = (url, init) => new Promise((_, reject) => init.signal.addEventListener('abort', () => reject(init.signal.reason)))`);
  await page.evaluate('refresh()');
  await page.waitFor(`document.getElementById('status').textContent.startsWith('cannot reach the gateway: no answer within 4 s')`, 8_000);
  await page.evaluate(`window.fetch = window.realFetch`);
  await page.evaluate('refresh()');
  await page.waitFor(`document.getElementById('status').textContent.startsWith('updated')`);
  assert.equal(await page.evaluate(`document.getElementById('main').className`), '');
  assert.deepEqual(page.problems, []);
});

test('in Chromium: a gateway without a master key shows its fleet, asks for no key and no admin view (it has none)', async (t) => {
  if (typeof browser !== 'object') return t.skip(String(browser));
  const open = await startFabric({
    engines: [{ name: 'motoko', protocol: 'vllm', model: 'BAAI/bge-base-en-v1.5', kind: 'embeddings', dimensions: 768, timing: FAST }],
    yaml: (url) => `
gateway:
  health: { failure_threshold: 1 }
nodes:
  motoko: { power: always-on }
  wintermute: { power: workstation }
backends:
  motoko-bge: { engine: vllm, node: motoko, url: ${url('motoko')}/v1, model: BAAI/bge-base-en-v1.5 }
  wintermute-llama: { engine: vllm, node: wintermute, url: http://127.0.0.1:9/v1, model: llama, max_retries: 0 }
roles:
  embeddings-general: { kind: embeddings, backends: [motoko-bge] }
  chat-deep: { kind: chat, backends: [wintermute-llama] }
`,
  });
  try {
    // The workstation is switched off (nothing listens): offline, which is no warning.
    await post(open.url, '/v1/chat/completions', chat('chat-deep'));
    const from = open.logs.length;
    const page = await browser.open(`${open.url}/dashboard`);
    await page.waitFor(`document.getElementById('backends-table')`);
    await page.evaluate('refresh()');
    await page.waitFor(`document.getElementById('status').textContent.startsWith('updated')`);
    assert.equal(await page.evaluate(`document.getElementById('key-form')`), null, 'no key to ask for');
    assert.equal(await page.evaluate(`document.getElementById('usage')`), null);
    assert.equal(await cell(page, 'backends-table', 'wintermute-llama', 'status'), 'offline (expected)');
    assert.match(await page.evaluate<string>(`document.querySelector('#backends-table tr[data-name="wintermute-llama"] .badge').className`), /quiet/);
    assert.equal(open.logs.slice(from).filter((l) => l.includes('/admin/')).length, 0, 'the admin API was not asked');
    assert.deepEqual(page.problems, []);
  } finally {
    await open.close();
  }
});

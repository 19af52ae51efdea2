// A real headless Chromium for tests of the dashboard, driven over the Chrome DevTools Protocol
// with Node's own WebSocket: no driver library. Each page records what the browser reports as
// going wrong (uncaught exceptions, console errors, and the log's errors, where Content-Security-
// Policy refusals appear), so a test can assert there were none. Without Chromium the tests are
// skipped locally and fail under CI=true (.ci/run installs Debian's chromium).

import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { tempDir } from './temp-dir.ts';
import { stopper, unavailable } from './servers.ts';

type Json = Record<string, any>;

export interface Page {
  /** The value of a JavaScript expression in the page (awaited when it is a promise). */
  evaluate<T = unknown>(expression: string): Promise<T>;
  /** Until `expression` is truthy in the page, or `ms` pass (then it throws, naming it). */
  waitFor(expression: string, ms?: number): Promise<void>;
  /** Exceptions, console errors and error log entries (CSP refusals among them), as the browser gave them. */
  readonly problems: string[];
  navigate(url: string): Promise<void>;
}

export interface Browser {
  open(url: string): Promise<Page>;
  close(): Promise<void>;
}

function chromiumBinary(): string | undefined {
  for (const dir of [...(process.env.PATH ?? '').split(':'), '/usr/bin']) {
    for (const name of ['chromium', 'chromium-browser', 'google-chrome']) {
      if (dir !== '' && existsSync(join(dir, name))) return join(dir, name);
    }
  }
  return undefined;
}

export async function startBrowser(): Promise<Browser | string> {
  const bin = chromiumBinary();
  if (bin === undefined) return unavailable('Chromium', 'chromium not found (apt-get install chromium)');
  const dir = tempDir('fabric-chromium-');
  const child: ChildProcess = spawn(bin, [
    '--headless', '--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage', '--no-first-run', '--no-default-browser-check',
    '--remote-debugging-port=0', `--user-data-dir=${dir}`, 'about:blank',
  ], { stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  // A binary that cannot be run: reported below as "did not start", not an unhandled error.
  child.once('error', (e) => { err += String(e); });
  const wsUrl = await new Promise<string | undefined>((resolve) => {
    const timer = setTimeout(() => resolve(undefined), 20_000);
    child.stderr!.on('data', (d: Buffer) => {
      err += d.toString();
      const m = /DevTools listening on (ws:\/\/\S+)/.exec(err);
      if (m !== null) {
        clearTimeout(timer);
        resolve(m[1]);
      }
    });
    child.once('exit', () => { clearTimeout(timer); resolve(undefined); });
    child.once('error', () => { clearTimeout(timer); resolve(undefined); });
  });
  const stop = stopper(child, dir, 'SIGKILL');
  if (wsUrl === undefined) {
    await stop();
    return unavailable('Chromium', `chromium did not start: ${err.slice(-1000)}`);
  }

  const ws = new WebSocket(wsUrl);
  try {
    await new Promise<void>((resolve, reject) => {
      ws.addEventListener('open', () => resolve(), { once: true });
      ws.addEventListener('error', () => reject(new Error('cannot connect to Chromium\'s DevTools')), { once: true });
    });
  } catch (e) {
    await stop();
    throw e;
  }
  let next = 0;
  const waiting = new Map<number, { resolve: (v: Json) => void; reject: (e: Error) => void }>();
  const listeners = new Map<string, (method: string, params: Json) => void>();
  ws.addEventListener('message', (ev) => {
    const m = JSON.parse(String(ev.data)) as Json;
    if (typeof m.id === 'number') {
      const w = waiting.get(m.id);
      waiting.delete(m.id);
      if (m.error !== undefined) w?.reject(new Error(`${m.error.message} (${m.error.code})`));
      else w?.resolve(m.result as Json);
    } else if (typeof m.method === 'string') {
      listeners.get(m.sessionId ?? '')?.(m.method, m.params as Json);
    }
  });
  // Chromium gone: every call waiting fails at once, rather than at the test's timeout.
  const failAll = (why: string): void => {
    for (const w of waiting.values()) w.reject(new Error(why));
    waiting.clear();
  };
  ws.addEventListener('close', () => failAll('Chromium\'s DevTools connection closed'));
  child.once('exit', (code, signal) => failAll(`Chromium exited (${signal ?? code})`));
  const send = (method: string, params: Json = {}, sessionId?: string): Promise<Json> => new Promise((resolve, reject) => {
    const id = ++next;
    const timer = setTimeout(() => {
      waiting.delete(id);
      reject(new Error(`${method}: no answer from Chromium within 15 s`));
    }, 15_000);
    waiting.set(id, { resolve: (v) => { clearTimeout(timer); resolve(v); }, reject: (e) => { clearTimeout(timer); reject(e); } });
    ws.send(JSON.stringify({ id, method, params, ...(sessionId === undefined ? {} : { sessionId }) }));
  });

  return {
    async open(url) {
      const { targetId } = await send('Target.createTarget', { url: 'about:blank' });
      const { sessionId } = await send('Target.attachToTarget', { targetId, flatten: true }) as { sessionId: string };
      const problems: string[] = [];
      let loaded: (() => void) | undefined;
      listeners.set(sessionId, (method, p) => {
        if (method === 'Runtime.exceptionThrown') problems.push(`exception: ${p.exceptionDetails?.exception?.description ?? p.exceptionDetails?.text}`);
        else if (method === 'Runtime.consoleAPICalled' && (p.type === 'error' || p.type === 'assert')) problems.push(`console.${p.type}: ${(p.args as Json[]).map((a) => a.value ?? a.description).join(' ')}`);
        else if (method === 'Log.entryAdded' && p.entry?.level === 'error') problems.push(`log: ${p.entry.text}${p.entry.url ? ` (${p.entry.url})` : ''}`);
        else if (method === 'Page.loadEventFired') loaded?.();
      });
      await Promise.all([send('Runtime.enable', {}, sessionId), send('Log.enable', {}, sessionId), send('Page.enable', {}, sessionId)]);
      const evaluate = async <T>(expression: string): Promise<T> => {
        const r = await send('Runtime.evaluate', { expression, returnByValue: true, awaitPromise: true }, sessionId);
        if (r.exceptionDetails !== undefined) throw new Error(`${expression}: ${r.exceptionDetails.exception?.description ?? r.exceptionDetails.text}`);
        return r.result.value as T;
      };
      const page: Page = {
        problems,
        evaluate,
        async waitFor(expression, ms = 10_000) {
          const until = Date.now() + ms;
          for (;;) {
            if (await evaluate<boolean>(`Boolean(${expression})`)) return;
            if (Date.now() > until) throw new Error(`not so within ${ms} ms: ${expression}`);
            await new Promise((r) => setTimeout(r, 50));
          }
        },
        async navigate(to) {
          let timer: NodeJS.Timeout | undefined;
          const done = new Promise<void>((resolve, reject) => {
            loaded = resolve;
            timer = setTimeout(() => reject(new Error(`${to} did not load within 15 s`)), 15_000);
          });
          const r = await send('Page.navigate', { url: to }, sessionId);
          if (typeof r.errorText === 'string') {
            clearTimeout(timer);
            throw new Error(`${to}: ${r.errorText}`);
          }
          await done.finally(() => clearTimeout(timer));
        },
      };
      await page.navigate(url);
      return page;
    },
    async close() {
      ws.close();
      await stop();
    },
  };
}

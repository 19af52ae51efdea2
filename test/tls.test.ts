// HTTPS on the gateway's port (gateway.tls): `fabric serve` as a process answers the official
// openai SDK over TLS, streams included; a renewed certificate written over the files is served
// to new connections without a restart; `fabric config check` names what is wrong with the
// files (missing, a key of another certificate, a key others can read, expiry) by file:line.
// Certificates are made with openssl (.ci/run installs it).

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { chmodSync, copyFileSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { connect } from 'node:tls';
import OpenAI from 'openai';
import { Agent, fetch as undiciFetch } from 'undici';
import { startFleet, type SimFleet } from '../src/sim/fleet.ts';
import { parseFabricText } from '../src/config/load.ts';
import { Secrets } from '../src/config/env-file.ts';
import { createLogger } from '../src/core/log.ts';
import { startGateway } from '../src/main.ts';
import { tlsIssues } from '../src/config/tls.ts';
import type { FabricConfig } from '../src/config/types.ts';
import { gatewayHealthScript } from '../src/render/common.ts';
import { tempDir } from './support/temp-dir.ts';

const MAIN = new URL('../src/cli/main.ts', import.meta.url).pathname;
const FAST = { ttftMs: 2, tokensPerSecond: 2000, maxConcurrency: 64, maxQueue: 256 };

let fleet: SimFleet;
let dir: string;

/** A self-signed certificate for 127.0.0.1 and localhost, valid `days`. */
function makeCert(name: string, days = 30): { cert: string; key: string; pem: Buffer; fingerprint: string } {
  const cert = join(dir, `${name}.crt`);
  const key = join(dir, `${name}.key`);
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', key, '-out', cert,
    '-days', String(days), '-subj', `/CN=${name}`, '-addext', 'subjectAltName=IP:127.0.0.1,DNS:localhost'], { stdio: 'ignore' });
  chmodSync(key, 0o600);
  const pem = readFileSync(cert);
  return { cert, key, pem, fingerprint: new X509Certificate(pem).fingerprint256 };
}

before(async () => {
  fleet = await startFleet([{ name: 'armitage', protocol: 'vllm', model: 'Qwen/Qwen2.5-7B-Instruct-AWQ', kind: 'chat', timing: FAST }]);
  dir = tempDir('fabric-tls-');
});
after(async () => { await fleet.close(); });

const yaml = (tls: string): string => `
gateway:
  health_interval: 1h
  master_key: env:TLS_TEST_MASTER
  tls: ${tls}
backends:
  armitage-qwen: { engine: vllm, url: ${fleet.get('armitage').url}/v1, model: Qwen/Qwen2.5-7B-Instruct-AWQ }
roles:
  chat-fast: { kind: chat, backends: [armitage-qwen], aliases: [local/chat] }
`;
const MASTER = 'tls-test-master-key-0123456789abcdef0123';

function run(args: string[]): { code: number; out: string } {
  const r = spawnSync(process.execPath, [MAIN, ...args], { encoding: 'utf8', env: { ...process.env, TLS_TEST_MASTER: MASTER } });
  return { code: r.status ?? -1, out: r.stdout + r.stderr };
}

/** The certificate a new TLS connection to the port is shown (its SHA-256 fingerprint). */
function servedFingerprint(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = connect({ host: '127.0.0.1', port, rejectUnauthorized: false }, () => {
      resolve(s.getPeerX509Certificate()!.fingerprint256);
      s.destroy();
    });
    s.on('error', reject);
  });
}

test('fabric serve with gateway.tls answers the openai SDK over HTTPS (streams too), not plain HTTP; a renewed certificate is served without a restart', async () => {
  const a = makeCert('fabric-a');
  const b = makeCert('fabric-b');
  // Relative paths resolve beside the config.
  copyFileSync(a.cert, join(dir, 'gateway.crt'));
  copyFileSync(a.key, join(dir, 'gateway.key'));
  chmodSync(join(dir, 'gateway.key'), 0o600);
  const file = join(dir, 'fabric.yaml');
  writeFileSync(file, yaml('{ cert: gateway.crt, key: gateway.key }'));
  const proc: ChildProcess = spawn(process.execPath, [MAIN, 'serve', '--config', file, '--port', '0'], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, FABRIC_CONFIG: '', TLS_TEST_MASTER: MASTER } });
  let out = '';
  proc.stdout!.setEncoding('utf8').on('data', (c: string) => { out += c; });
  proc.stderr!.setEncoding('utf8').on('data', (c: string) => { out += c; });
  const waitFor = async (re: RegExp, ms = 15_000): Promise<RegExpExecArray> => {
    for (const until = Date.now() + ms; ;) {
      const m = re.exec(out);
      if (m !== null) return m;
      if (Date.now() > until || proc.exitCode !== null) throw new Error(`no ${re} in:\n${out}`);
      await new Promise((r) => setTimeout(r, 20));
    }
  };
  try {
    const url = (await waitFor(/listening on (https:\/\/127\.0\.0\.1:\d+)/))[1]!;
    const port = Number(new URL(url).port);
    const trusting = (ca: Buffer): OpenAI => {
      const dispatcher = new Agent({ connect: { ca } });
      return new OpenAI({ baseURL: `${url}/v1`, apiKey: MASTER, maxRetries: 0, timeout: 10_000, fetch: ((u: string, init: object) => undiciFetch(u, { ...init, dispatcher })) as unknown as typeof fetch });
    };
    const client = trusting(a.pem);
    const r = await client.chat.completions.create({ model: 'local/chat', messages: [{ role: 'user', content: 'hello' }], max_tokens: 8 });
    assert.equal(r.object, 'chat.completion');
    assert.ok((r.choices[0]!.message.content ?? '').length > 0);
    let text = '';
    for await (const c of await client.chat.completions.create({ model: 'chat-fast', messages: [{ role: 'user', content: 'hello' }], max_tokens: 8, stream: true })) text += c.choices[0]?.delta.content ?? '';
    assert.ok(text.length > 0, 'a stream over TLS');
    // Without the certificate trusted, the client refuses the server, as it should.
    await assert.rejects(trusting(b.pem).models.list(), (e: Error) => e.constructor.name === 'APIConnectionError');
    // Plain HTTP on the HTTPS port gets no answer.
    await assert.rejects(fetch(`http://127.0.0.1:${port}/health/live`));
    assert.equal(await servedFingerprint(port), a.fingerprint);
    // The rendered containers' health check passes against it.
    const script = gatewayHealthScript({ gateway: { port, tls: { cert: 'c', key: 'k' } } } as FabricConfig);
    assert.equal(spawnSync(process.execPath, ['-e', script], { timeout: 10_000 }).status, 0, script);

    // The CLI: an untrusted certificate is named, with the fix; trusted, it reads the gateway.
    const cli = (env: Record<string, string>) => spawnSync(process.execPath, [MAIN, 'health', '--url', url, '--key', 'env:TLS_TEST_MASTER', '--json'], { encoding: 'utf8', env: { ...process.env, TLS_TEST_MASTER: MASTER, ...env } });
    const untrusted = cli({});
    assert.notEqual(untrusted.status, 0);
    assert.match(untrusted.stdout + untrusted.stderr, /TLS certificate is not trusted here \(DEPTH_ZERO_SELF_SIGNED_CERT\): point NODE_EXTRA_CA_CERTS/);
    const trusted = cli({ NODE_EXTRA_CA_CERTS: a.cert });
    assert.equal(JSON.parse(trusted.stdout).gateway.status, 'up', trusted.stdout + trusted.stderr);

    // Renewal: the new pair is renamed over the old files (as certbot or tailscale cert leave them).
    copyFileSync(b.key, join(dir, 'next.key'));
    copyFileSync(b.cert, join(dir, 'next.crt'));
    chmodSync(join(dir, 'next.key'), 0o600);
    renameSync(join(dir, 'next.key'), join(dir, 'gateway.key'));
    renameSync(join(dir, 'next.crt'), join(dir, 'gateway.crt'));
    await waitFor(/TLS certificate and key replaced/);
    // A pair that does not match (a renewal caught between its writes, made to stay so) is
    // refused whole: no half-done reload, and the gateway says it still serves the old config.
    const c = makeCert('fabric-c');
    copyFileSync(c.cert, join(dir, 'next.crt'));
    renameSync(join(dir, 'next.crt'), join(dir, 'gateway.crt'));
    await waitFor(/config reload refused[^\n]*gateway\.tls\.key[^\n]*not the private key of that certificate/);
    assert.equal(await servedFingerprint(port), b.fingerprint, 'the pair that matched is still served');
    const reloads = (out.match(/config reloaded/g) ?? []).length;
    copyFileSync(b.cert, join(dir, 'next.crt'));
    renameSync(join(dir, 'next.crt'), join(dir, 'gateway.crt'));
    await waitFor(new RegExp(`(config reloaded[\\s\\S]*){${reloads + 1}}`));
    assert.equal(await servedFingerprint(port), b.fingerprint, 'a new connection gets the renewed certificate');
    const renewed = await trusting(b.pem).chat.completions.create({ model: 'local/chat', messages: [{ role: 'user', content: 'hi' }], max_tokens: 4 });
    assert.equal(renewed.object, 'chat.completion');
    assert.ok(!out.includes(readFileSync(b.key, 'utf8').split('\n')[1]!), 'no line of the key is ever logged');
  } finally {
    proc.kill('SIGTERM');
    if (proc.exitCode === null) await new Promise((r) => proc.once('exit', r));
  }
});

test('fabric config check names what is wrong with the TLS files by file:line: missing, a key of another certificate, a key others can read, no PEM', () => {
  const a = makeCert('check-a');
  const b = makeCert('check-b');
  const check = (tls: string): { code: number; out: string } => {
    const file = join(dir, 'check.yaml');
    writeFileSync(file, yaml(tls));
    return run(['config', 'check', file]);
  };
  assert.equal(check(`{ cert: ${a.cert}, key: ${a.key} }`).code, 0);
  const missing = check(`{ cert: ${join(dir, 'nope.crt')}, key: ${a.key} }`);
  assert.equal(missing.code, 1);
  assert.match(missing.out, /check\.yaml:5:\d+: error: gateway\.tls\.cert: .*nope\.crt does not exist/);
  const other = check(`{ cert: ${a.cert}, key: ${b.key} }`);
  assert.equal(other.code, 1);
  assert.match(other.out, /error: gateway\.tls\.key: .*check-b\.key is not the private key of that certificate/);
  const notPem = join(dir, 'not.crt');
  writeFileSync(notPem, 'hello\n');
  assert.match(check(`{ cert: ${notPem}, key: ${a.key} }`).out, /gateway\.tls\.cert: .*holds no PEM certificate/);
  assert.match(check(`{ cert: ${a.cert} }`).out, /gateway\.tls\.key/);
  chmodSync(a.key, 0o644);
  const open = check(`{ cert: ${a.cert}, key: ${a.key} }`);
  assert.equal(open.code, 0, 'a warning');
  assert.match(open.out, /warning: gateway\.tls\.key: .*readable by group or others \(mode 644\).*chmod 600/);
  for (const o of [missing, other, open]) assert.ok(!o.out.includes('PRIVATE KEY'), 'no key material in any message');
});

test('a certificate that expires within 14 days, or has expired, is a warning saying when', () => {
  const a = makeCert('expiring', 30);
  const { config } = parseFabricText(yaml(`{ cert: ${a.cert}, key: ${a.key} }`), join(dir, 'x.yaml'));
  const until = Date.parse(new X509Certificate(a.pem).validTo);
  assert.deepEqual(tlsIssues(config, until - 20 * 86_400_000), []);
  const soon = tlsIssues(config, until - 3.5 * 86_400_000);
  assert.equal(soon.length, 1);
  assert.equal(soon[0]!.severity, 'warning');
  assert.match(soon[0]!.message, /expires in 3 days/);
  assert.match(tlsIssues(config, until + 1000)[0]!.message, /expired on/);
});

test('a reload whose TLS pair does not match throws before anything is swapped (the running gateway stays whole)', async () => {
  const a = makeCert('inproc-a');
  const b = makeCert('inproc-b');
  const text = (cert: string, key: string): string => yaml(`{ cert: ${cert}, key: ${key} }`);
  const { config } = parseFabricText(text(a.cert, a.key), join(dir, 'inproc.yaml'));
  const gw = await startGateway(config, new Secrets({ TLS_TEST_MASTER: MASTER }), { host: '127.0.0.1', port: 0, probe: false, accounting: false, log: createLogger({ write: () => {} }) });
  try {
    const before = gw.app.gateway;
    const next = parseFabricText(text(b.cert, a.key), join(dir, 'inproc.yaml')).config;
    assert.throws(() => gw.reload(next, new Secrets({ TLS_TEST_MASTER: MASTER })), /mismatch|key values/i);
    assert.equal(gw.app.gateway, before, 'the gateway in place is the one from before');
  } finally {
    await gw.close(100);
  }
});

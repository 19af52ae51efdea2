// Node power: the magic packet, a sleeping workstation woken when a request needs it (once per
// min_interval), the node states, and waking by hand — packets caught by a UDP listener on loopback.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createSocket, type Socket } from 'node:dgram';
import { once } from 'node:events';
import { magicPacket, parseMac, sendMagicPacket } from './wol.ts';
import { PowerManager, nodeState } from './power.ts';
import { parseFabricText } from '../config/load.ts';
import { Secrets } from '../config/env-file.ts';
import { Gateway } from '../core/gateway.ts';
import { silentLogger } from '../core/log.ts';
import type { BackendRuntime } from '../core/backend.ts';

async function udpListener(): Promise<{ socket: Socket; port: number; packets: Buffer[]; next(): Promise<Buffer> }> {
  const socket = createSocket('udp4');
  const packets: Buffer[] = [];
  let waiting: ((b: Buffer) => void) | undefined;
  socket.on('message', (m) => {
    packets.push(m);
    waiting?.(m);
    waiting = undefined;
  });
  socket.bind(0, '127.0.0.1');
  await once(socket, 'listening');
  return {
    socket, port: socket.address().port, packets,
    next: () => new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error('no magic packet within 2s')), 2_000);
      waiting = (b) => { clearTimeout(t); resolve(b); };
    }),
  };
}

test('the magic packet: six 0xFF, then the MAC sixteen times; any usual MAC spelling', () => {
  const p = magicPacket('AA:bb:cc:dd:ee:0f');
  assert.equal(p.length, 102);
  assert.ok(p.subarray(0, 6).every((x) => x === 0xff));
  for (let i = 0; i < 16; i++) assert.deepEqual([...p.subarray(6 + i * 6, 12 + i * 6)], [0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0x0f]);
  assert.deepEqual(parseMac('aa-bb-cc-dd-ee-0f'), parseMac('aabbccddee0f'));
  assert.equal(parseMac('aa:bb:cc'), undefined);
  assert.throws(() => magicPacket('nope'), /not a MAC/);
});

test('sendMagicPacket: the datagram reaches a listener', async () => {
  const l = await udpListener();
  try {
    const got = l.next();
    await sendMagicPacket({ mac: '01:02:03:04:05:06', broadcast: '127.0.0.1', port: l.port });
    assert.deepEqual(await got, magicPacket('01:02:03:04:05:06'));
  } finally {
    l.socket.close();
  }
});

function fabric(port: number, wake = 'enabled: true, min_interval: 5m, boot_timeout: 3m'): Gateway {
  const { config } = parseFabricText(`
gateway: { wake: { ${wake} } }
nodes:
  armitage: { power: workstation, wol: { mac: "aa:bb:cc:dd:ee:01", broadcast: 127.0.0.1, port: ${port} } }
  neuromancer: { power: workstation }
  motoko: { power: always-on, wol: { mac: "aa:bb:cc:dd:ee:03", broadcast: 127.0.0.1, port: ${port} } }
backends:
  a: { engine: vllm, node: armitage, url: http://127.0.0.1:9/v1, model: m }
  n: { engine: vllm, node: neuromancer, url: http://127.0.0.1:9/v1, model: m }
  m: { engine: vllm, node: motoko, url: http://127.0.0.1:9/v1, model: m }
roles:
  only-armitage: { kind: chat, backends: [a] }
  mixed: { kind: chat, backends: [a, m] }
  nowol: { kind: chat, backends: [n] }
`, 'power.yaml');
  return new Gateway(config, new Secrets({}));
}

const trip = (b: BackendRuntime, now: number): void => { for (let i = 0; i < 3; i++) b.recordFailure('health check: connection refused', now); };

test('wakeFor: a sleeping workstation is woken once per min_interval, only when a role has nothing else', async () => {
  const l = await udpListener();
  const gw = fabric(l.port);
  const woken: string[] = [];
  const pm = new PowerManager(gw.config, gw.backends, { log: silentLogger, onWake: (n, bs) => woken.push(`${n.name}:${bs.map((b) => b.name).join(',')}`) });
  const [a, n, m] = ['a', 'n', 'm'].map((x) => gw.backends.get(x)!) as [BackendRuntime, BackendRuntime, BackendRuntime];
  try {
    const now = Date.now();
    assert.deepEqual(pm.wakeFor([a], now), [], 'not known to be asleep yet');
    trip(a, now);
    trip(n, now);
    assert.equal(pm.state('armitage', now), 'off');
    assert.equal(pm.state('motoko', now), 'unknown');
    assert.deepEqual(pm.wakeFor([a, m], now), [], 'the role has a backend on an always-on node');
    const got = l.next();
    assert.deepEqual(pm.wakeFor([a], now), ['armitage']);
    assert.deepEqual(await got, magicPacket('aa:bb:cc:dd:ee:01'));
    assert.deepEqual(woken, ['armitage:a']);
    assert.equal(pm.state('armitage', now + 1), 'waking');
    assert.deepEqual(pm.wakeFor([a], now + 1_000), [], 'waking already');
    assert.deepEqual(pm.wakeFor([a], now + 4 * 60_000), [], 'boot timeout over (off again) but still inside min_interval');
    assert.deepEqual(pm.wakeFor([a], now + 5 * 60_000 + 1), ['armitage'], 'after min_interval');
    assert.deepEqual(pm.wakeFor([n], now), [], 'no wol block: nothing to send');
    a.recordProbeSuccess(3, now + 6 * 60_000, true);
    assert.equal(pm.state('armitage'), 'on');
    await new Promise((r) => setTimeout(r, 50));
    assert.equal(l.packets.length, 2);
  } finally {
    l.socket.close();
    await gw.close();
  }
});

test('wakeFor does nothing unless gateway.wake is enabled; wake() by hand always sends', async () => {
  const l = await udpListener();
  const gw = fabric(l.port, 'enabled: false');
  const pm = new PowerManager(gw.config, gw.backends, { log: silentLogger });
  try {
    trip(gw.backends.get('a')!, Date.now());
    assert.deepEqual(pm.wakeFor([gw.backends.get('a')!]), []);
    const got = l.next();
    const out = await pm.wake('armitage');
    assert.equal(out.sent, true);
    assert.match(out.detail, /aa:bb:cc:dd:ee:01 sent to 127\.0\.0\.1:/);
    await got;
    assert.equal((await pm.wake('neuromancer')).sent, false);
    assert.match((await pm.wake('nowhere')).detail, /no node named nowhere/);
    const failing = new PowerManager(gw.config, gw.backends, { log: silentLogger, send: async () => { throw new Error('EPERM'); } });
    assert.deepEqual(await failing.wake('armitage'), { node: 'armitage', sent: false, detail: 'could not send the magic packet: EPERM' });
  } finally {
    l.socket.close();
    await gw.close();
  }
});

test('nodeState: on, off (workstation), down (always-on), waking, unknown', async () => {
  const l = await udpListener();
  const gw = fabric(l.port);
  try {
    const a = gw.backends.get('a')!;
    const m = gw.backends.get('m')!;
    const now = Date.now();
    assert.equal(nodeState([a], now, 1_000), 'unknown');
    trip(a, now);
    trip(m, now);
    assert.equal(nodeState([a], now, 1_000), 'off');
    assert.equal(nodeState([m], now, 1_000), 'down');
    a.wakeRequestedAt = now;
    assert.equal(nodeState([a], now + 10, 1_000), 'waking');
    assert.equal(nodeState([a], now + 1_001, 1_000), 'off');
    a.recordSuccess(1);
    assert.equal(nodeState([a], now, 1_000), 'on');
  } finally {
    l.socket.close();
    await gw.close();
  }
});

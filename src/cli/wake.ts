// fabric wake NODE: send a node's Wake-on-LAN magic packet by hand (nodes.NODE.wol in the
// config, or --mac), and with --wait probe its backends until one answers.

import { isIP } from 'node:net';
import { loadFabricConfig } from '../config/load.ts';
import { ConfigError, formatIssue } from '../config/issues.ts';
import { Secrets } from '../config/env-file.ts';
import type { FabricConfig, WolTarget } from '../config/types.ts';
import { BackendRuntime } from '../core/backend.ts';
import { probeBackend } from '../health/probe.ts';
import { parseMac, sendMagicPacket } from '../health/wol.ts';
import { UsageError, countFlag, durationFlag } from './client.ts';
import { parseCommand, usageError } from './args.ts';

const HELP = `Usage: fabric wake NODE [--config FILE] [--wait] [--timeout S] [--json]
       fabric wake --mac MAC [--broadcast ADDR] [--port N]

Sends a Wake-on-LAN magic packet to NODE: to the MAC, broadcast address and UDP port of its
wol block in the config (nodes.NODE.wol: { mac, broadcast, port }). Send it from a machine
on the sleeping node's LAN segment (broadcasts do not cross routers or a tailnet).

  --config FILE     the fabric config (default: $FABRIC_CONFIG)
  --wait            then probe the node's backends until one answers (engine health, as
                    the gateway probes), printing progress
  --timeout S       how long --wait waits (default: the config's gateway.wake.boot_timeout, 3m)
  --mac MAC         wake this MAC without a config (with --broadcast, default
                    255.255.255.255, and --port, default 9)
  --json            the outcome as JSON

The gateway notices a woken node by itself: its probes find the backends answering and
traffic returns to them. Exit status: 0 sent (and, with --wait, the node answers), 1 the
packet could not be sent or --wait timed out, 2 bad usage, unknown node or no wol block.
`;

interface Outcome { node: string; sent: boolean; target?: WolTarget; up?: string[]; waited_ms?: number; error?: string }

function print(json: boolean, o: Outcome, line: string): void {
  process.stdout.write(json ? JSON.stringify(o, null, 2) + '\n' : line + '\n');
}

async function waitForNode(config: FabricConfig, secrets: Secrets, node: string, timeoutMs: number, json: boolean): Promise<{ up: string[]; ms: number }> {
  const backends = [...config.backends.values()].filter((b) => b.node === node).map((b) => new BackendRuntime(b, config.nodes.get(node), secrets));
  const started = Date.now();
  try {
    if (backends.length === 0) return { up: [], ms: 0 };
    for (;;) {
      const results = await Promise.all(backends.map(async (b) => ({ b, r: await probeBackend(b, 3_000) })));
      const up = results.filter((x) => x.r.ok).map((x) => x.b.name);
      const ms = Date.now() - started;
      if (up.length > 0) return { up, ms };
      if (!json) process.stderr.write(`  ${Math.round(ms / 1000)}s: ${results.map((x) => `${x.b.name} ${x.r.detail}`).join('; ')}\n`);
      if (ms + 2_000 > timeoutMs) return { up: [], ms };
      await new Promise((r) => setTimeout(r, 2_000));
    }
  } finally {
    await Promise.all(backends.map((b) => b.close()));
  }
}

export async function runWake(argv: string[]): Promise<number> {
  const parsed = parseCommand('wake', HELP, {
    args: argv, allowPositionals: true,
    options: {
      config: { type: 'string', short: 'c' }, wait: { type: 'boolean' }, timeout: { type: 'string' }, json: { type: 'boolean' },
      mac: { type: 'string' }, broadcast: { type: 'string' }, port: { type: 'string' }, help: { type: 'boolean', short: 'h' },
    },
  });
  if (typeof parsed === 'number') return parsed;
  const v = parsed.values;
  const json = v.json === true;
  const usage = (msg: string): number => usageError('wake', msg);
  const node = parsed.positionals[0];
  if (parsed.positionals.length > 1) return usage('one NODE at a time');
  let target: WolTarget;
  let config: FabricConfig | undefined;
  let secrets: Secrets | undefined;
  try {
    if (v.mac !== undefined) {
      if (parseMac(v.mac) === undefined) return usage(`--mac must be a MAC address such as aa:bb:cc:dd:ee:ff, got ${JSON.stringify(v.mac)}`);
      const port = v.port === undefined ? 9 : countFlag('port', v.port)!;
      if (port > 65535) return usage('--port must be at most 65535');
      target = { mac: v.mac, broadcast: v.broadcast ?? '255.255.255.255', port };
    } else {
      if (node === undefined) return usage(`a NODE (or --mac) is required\n\n${HELP}`);
      const file = v.config ?? process.env.FABRIC_CONFIG;
      if (file === undefined || file === '') return usage('--config FILE (or $FABRIC_CONFIG) is required to look NODE up; or give --mac');
      try {
        // A magic packet needs no secret: this may run on any machine of the LAN, which may not hold them.
        ({ config, secrets } = loadFabricConfig(file, process.env, 'unused', false));
      } catch (e) {
        if (!(e instanceof ConfigError)) throw e;
        for (const i of e.issues.filter((x) => x.severity === 'error')) process.stderr.write(formatIssue(i) + '\n');
        return usage(`the config ${file} is invalid`);
      }
      const n = config.nodes.get(node);
      if (n === undefined) return usage(`no node named ${JSON.stringify(node)} in ${file}; nodes: ${[...config.nodes.keys()].join(', ') || '(none)'}`);
      if (n.wol === undefined) return usage(`node ${node} has no wol block: add  wol: { mac: aa:bb:cc:dd:ee:ff, broadcast: 192.168.1.255 }  under nodes.${node}`);
      target = n.wol;
      if (v.broadcast !== undefined) target = { ...target, broadcast: v.broadcast };
      if (v.port !== undefined) target = { ...target, port: countFlag('port', v.port)! };
    }
  } catch (e) {
    if (!(e instanceof UsageError)) throw e;
    return usage(e.message);
  }
  if (isIP(target.broadcast) === 0) return usage(`--broadcast must be an IP address such as 192.168.1.255, got ${JSON.stringify(target.broadcast)}`);
  const name = node ?? target.mac;
  try {
    await sendMagicPacket(target);
  } catch (e) {
    const error = String((e as Error).message ?? e);
    print(json, { node: name, sent: false, target, error }, `fabric wake: could not send the magic packet to ${target.broadcast}:${target.port}: ${error}`);
    return 1;
  }
  const sentLine = `magic packet for ${node === undefined ? target.mac : `${node} (${target.mac})`} sent to ${target.broadcast}:${target.port}`;
  if (v.wait !== true || config === undefined || secrets === undefined || node === undefined) {
    print(json, { node: name, sent: true, target }, sentLine);
    return 0;
  }
  let timeoutMs: number;
  try {
    timeoutMs = durationFlag('timeout', v.timeout, config.gateway.wake.bootTimeoutMs);
  } catch (e) {
    return usage((e as Error).message);
  }
  if (!json) process.stdout.write(`${sentLine}; waiting up to ${Math.round(timeoutMs / 1000)}s for its backends to answer\n`);
  const { up, ms } = await waitForNode(config, secrets, node, timeoutMs, json);
  if (up.length > 0) {
    print(json, { node, sent: true, target, up, waited_ms: ms }, `${node} is up after ${(ms / 1000).toFixed(1)}s: ${up.join(', ')} answering`);
    return 0;
  }
  print(json, { node, sent: true, target, up: [], waited_ms: ms, error: 'no backend answered in time' }, `${node} did not answer within ${Math.round(timeoutMs / 1000)}s`);
  return 1;
}

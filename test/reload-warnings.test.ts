// A config reload swaps routing, keys and limits at once; what the listening server was built
// with (the fast lane, the header limit, the address) waits for a restart, and says so.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseFabricText } from '../src/config/load.ts';
import { Secrets } from '../src/config/env-file.ts';
import { startFabric } from './helpers.ts';

const FAST = { ttftMs: 1, tokensPerSecond: 2000, maxConcurrency: 8, maxQueue: 8 };

test('a reload that changes gateway.fast_lane or limits.max_header warns that it waits for a restart; one that does not, does not', async () => {
  const yaml = (url: string, extra: string): string => `
gateway:
  fast_lane: true
  ${extra}
backends:
  a: { engine: vllm, url: ${url}/v1, model: m }
roles:
  chat: { kind: chat, backends: [a] }
`;
  const f = await startFabric({ engines: [{ name: 'a', protocol: 'vllm', model: 'm', kind: 'chat', timing: FAST }], yaml: (url) => yaml(url('a'), '') });
  try {
    const url = f.fleet.get('a').url;
    const warned = (): string[] => (f.gw.app.log.flush(), f.logs).filter((l) => l.includes('take effect at the next restart'));
    f.gw.reload(parseFabricText(yaml(url, 'retry: { base: 10ms }'), 'test.yaml').config, new Secrets({}));
    assert.deepEqual(warned(), []);
    f.gw.reload(parseFabricText(yaml(url, 'limits: { max_header: 4KiB }').replace('fast_lane: true', 'fast_lane: false'), 'test.yaml').config, new Secrets({}));
    assert.equal(warned().length, 1);
    assert.match(warned()[0]!, /gateway\.fast_lane, gateway\.limits\.max_header changes/);
  } finally {
    await f.close();
  }
});

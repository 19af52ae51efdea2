// The shared Redis connection reads maxmemory-policy when it first connects, and warns in one
// line of a policy that lets Redis evict the gateway's rate-limit buckets and budget holds
// (allkeys-*, volatile-ttl, volatile-random); nothing for noeviction or volatile-lru, and only a
// debug line when CONFIG is refused (managed Redis). A real server, its policy set per test.

import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createClient } from 'redis';
import { openRedis } from '../src/limits/redis-client.ts';
import { createLogger } from '../src/core/log.ts';
import { startRedis, type RedisServer } from './support/servers.ts';

const redis = await startRedis();
const stopRedis = (): Promise<void> | undefined => (typeof redis === 'string' ? undefined : redis.close());
after(stopRedis);

describe('the eviction policy, checked at the first connection', { skip: typeof redis === 'string' ? redis : false }, () => {
  const server = redis as RedisServer;
  const admin = createClient({ url: server.url });
  const ready = admin.connect();
  after(async () => {
    if (admin.isOpen) await admin.close();
    await stopRedis();
  });

  /** Every line a gateway's connection logs while opening (it waits for the check), at debug level. */
  async function linesAtOpen(policy: string, url = server.url): Promise<Array<{ level: string; msg: string; error?: string }>> {
    await ready;
    await admin.configSet('maxmemory-policy', policy);
    const lines: string[] = [];
    const log = createLogger({ level: 'debug', write: (s) => { lines.push(...s.trimEnd().split('\n')); } });
    const r = await openRedis(url, { prefix: 'policy', log });
    assert.equal(r.ready, true);
    await r.close();
    log.flush();
    return lines.map((l) => JSON.parse(l) as { level: string; msg: string; error?: string });
  }

  for (const policy of ['allkeys-lru', 'allkeys-lfu', 'allkeys-random', 'volatile-random', 'volatile-ttl']) {
    test(`${policy}: one warning, naming what to set`, async () => {
      const warnings = (await linesAtOpen(policy)).filter((l) => l.level === 'warn');
      assert.equal(warnings.length, 1, JSON.stringify(warnings));
      assert.match(warnings[0]!.msg, new RegExp(`^redis: maxmemory-policy ${policy} lets Redis evict the gateway's rate-limit buckets and budget holds at maxmemory`));
      assert.match(warnings[0]!.msg, /set noeviction with a maxmemory well above gateway\.cache\.max_size .*, or volatile-lru$/);
    });
  }

  for (const policy of ['volatile-lru', 'volatile-lfu', 'noeviction']) {
    test(`${policy}: nothing said`, async () => {
      assert.deepEqual((await linesAtOpen(policy)).filter((l) => l.level !== 'debug'), []);
    });
  }

  test('CONFIG refused (a managed Redis): no warning, a debug line, and the connection serves', async () => {
    await ready;
    await admin.aclSetUser('fabric-no-config', ['on', '>no-config-secret', '~*', '&*', '+@all', '-config']);
    const url = server.url.replace('redis://', 'redis://fabric-no-config:no-config-secret@');
    const lines = await linesAtOpen('allkeys-lru', url);
    assert.deepEqual(lines.filter((l) => l.level !== 'debug'), []);
    assert.ok(lines.some((l) => l.msg === 'redis: could not read maxmemory-policy' && /NOPERM|config/i.test(l.error ?? '')), JSON.stringify(lines));
  });
});

// fabric cache: the running gateway's response cache (gateway.cache), through its admin API:
// what it holds, and forgetting it all.

import { UsageError, adminRefusal, authHeaders, gatewayFlags, netError } from './client.ts';
import { parseCommand, usageError } from './args.ts';

const HELP = `Usage: fabric cache [stats | clear] [--url URL] [--key KEY] [--timeout S] [--json]

The gateway's response cache (gateway.cache in the fabric config):

  stats    (the default) its settings, and what the memory store holds: answers, bytes,
           evictions (with --workers, the worker that answers)
  clear    forget every answer kept: each worker's memory, and Redis when it is the store
           (after a change the cache cannot see, such as a chat template edited on an engine;
           a change of a role's backends or models in the config starts it afresh by itself)

  --url URL       the gateway (default: $FABRIC_URL, else http://127.0.0.1:4000)
  --key KEY       the master key, or env:NAME (default: $FABRIC_API_KEY)
  --timeout S     how long to wait for the gateway (default 10s)
  --json          the gateway's answer as JSON

Exit status: 0 done, 1 the gateway could not be reached or failed, 2 bad usage or the key refused.
`;

function bytes(n: number): string {
  return n < 1024 ? `${n} B` : n < 2 ** 20 ? `${(n / 1024).toFixed(1)} KiB` : `${(n / 2 ** 20).toFixed(1)} MiB`;
}

export async function runCache(argv: string[]): Promise<number> {
  const parsed = parseCommand('cache', HELP, {
    args: argv, allowPositionals: true,
    options: { url: { type: 'string' }, key: { type: 'string' }, timeout: { type: 'string' }, json: { type: 'boolean' }, help: { type: 'boolean', short: 'h' } },
  });
  if (typeof parsed === 'number') return parsed;
  const v = parsed.values;
  const sub = parsed.positionals[0] ?? 'stats';
  if (sub !== 'stats' && sub !== 'clear') return usageError('cache', `unknown subcommand ${JSON.stringify(sub)}: stats or clear`, HELP);
  if (parsed.positionals.length > 1) return usageError('cache', 'one subcommand at a time', HELP);
  let target: ReturnType<typeof gatewayFlags>;
  try {
    target = gatewayFlags(v, 10_000);
  } catch (e) {
    if (!(e instanceof UsageError)) throw e;
    return usageError('cache', e.message, HELP);
  }
  const { url, key, timeoutMs } = target;
  let r: Response;
  try {
    r = await fetch(`${url}/admin/cache`, { method: sub === 'clear' ? 'DELETE' : 'GET', headers: authHeaders(key), signal: AbortSignal.timeout(timeoutMs) });
  } catch (e) {
    process.stderr.write(`fabric cache: cannot reach the gateway at ${url}: ${netError(e)}\n`);
    return 1;
  }
  const text = await r.text();
  if (!r.ok) {
    const refusal = adminRefusal(r.status, text, key, 'fabric cache', 'the cache is then per process and goes with a restart');
    let message = refusal ?? text;
    if (refusal === undefined) try { message = (JSON.parse(text) as { error?: { message?: string } }).error?.message ?? text; } catch { /* as sent */ }
    process.stderr.write(`fabric cache: HTTP ${r.status}: ${message}\n`);
    return r.status === 401 || r.status === 403 ? 2 : 1;
  }
  if (v.json === true) {
    process.stdout.write(text.endsWith('\n') ? text : `${text}\n`);
    return 0;
  }
  const b = JSON.parse(text) as Record<string, unknown>;
  if (sub === 'clear') {
    const redis = typeof b.redis_entries === 'number' ? `, ${b.redis_entries} from Redis` : '';
    process.stdout.write(`cache cleared: ${String(b.memory_entries)} answers from memory${redis}\n`);
    return 0;
  }
  if (b.enabled !== true) {
    process.stdout.write('the response cache is off (set gateway.cache in the fabric config to turn it on)\n');
    return 0;
  }
  const lines = [`store ${String(b.store)}, ttl ${String(b.ttl_s)} s, when ${String(b.when)}, scope ${String(b.scope)}, answers up to ${bytes(Number(b.max_entry_bytes))}`];
  if (b.store === 'memory') lines.push(`${String(b.entries)} answers, ${bytes(Number(b.bytes))} of ${bytes(Number(b.max_size_bytes))}; ${String(b.evictions)} evicted to make room`);
  else lines.push(b.redis === true ? 'entries are in Redis, under gateway.redis.prefix:cache:' : 'no Redis connection: nothing is cached');
  process.stdout.write(lines.join('\n') + '\n');
  return 0;
}

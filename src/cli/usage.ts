// fabric usage: requests, tokens, cost and errors, grouped by key, role, backend, model or day.

import { ConfigError } from '../config/issues.ts';
import { parseWhen, usd } from '../accounting/periods.ts';
import { FabricError } from '../core/errors.ts';
import { KeyAdmin } from '../keys/admin.ts';
import { usageCsv, usageJson } from '../http/admin.ts';
import { USAGE_GROUPS, type UsageGroup, type UsageRow } from '../store/types.ts';
import { table, UsageError } from './client.ts';
import { reportConfigError } from './fabric-file.ts';
import { api, closeTarget, openTarget, type Target } from './state-target.ts';
import { parseCommand, usageError } from './args.ts';

const HELP = `Usage: fabric usage [--by key|role|backend|model|day|status] [--since WHEN] [--until WHEN] [--key-id ID] [--json|--csv]
                    [--url URL --key KEY | --config FILE | --data-dir DIR]

A report of requests, errors, tokens in and out, cost and average latency, grouped by
--by (default key), from a running gateway's admin API or, with --config, the store itself.
Records older than gateway.accounting.retention (default 90d) are kept as daily totals:
before then, a period counts whole UTC days, each from its start.

  --since WHEN      from: a duration back (7d, 24h, 30m), today, week, month, an ISO date, unix seconds
  --until WHEN      to (exclusive); default now
  --key-id ID       only this virtual key's requests (its id, key_…, or its name)
  --json | --csv    machine-readable output; the CSV is headed by the grouping (key, role, …),
                    with key_id beside the key's name
  --url URL         the gateway (default: $FABRIC_URL, else http://127.0.0.1:4000)
  --key KEY         its master key; env:NAME reads it from the environment
                    (default: $FABRIC_API_KEY)
  --config FILE     read the store the config names instead (no running gateway needed)
  --data-dir DIR    the gateway's data directory, where its SQLite store is: with --config, when
                    the gateway keeps it elsewhere than the config says ($FABRIC_DATA_DIR; the
                    rendered systemd unit: /var/lib/ai-fabric); alone, for a gateway started
                    without a config: $FABRIC_DATA_DIR, else $XDG_DATA_HOME/ai-fabric, else
                    ~/.local/share/ai-fabric
`;

/**
 * The master key: --key, as in every other command; --auth is its old name, still accepted.
 * --key used to filter by virtual key id: a key id there is refused with the new flag's name
 * rather than sent to the gateway as a master key.
 */
function masterKeyFlag(v: { key?: string; auth?: string; config?: string }): string | undefined {
  if (v.key !== undefined && v.auth !== undefined && v.key !== v.auth) throw new UsageError('--auth is the old name of --key: give one of them');
  const key = v.key ?? v.auth;
  if (key?.startsWith('key_') === true) throw new UsageError(`--key is the gateway's master key; to report one virtual key's requests use --key-id ${key}`);
  // With --config the store is read directly and no key is needed: a --key there is most
  // likely the old filter, which would otherwise be dropped without a word.
  if (key !== undefined && v.config !== undefined) throw new UsageError(`--key is the gateway's master key, for --url; with --config none is needed (to report one virtual key's requests: --key-id ID)`);
  return key;
}

async function rows(t: Target, by: UsageGroup, since: number | undefined, until: number | undefined, key: string | undefined): Promise<UsageRow[]> {
  if (t.kind === 'store') {
    const keyId = key === undefined ? undefined : (await new KeyAdmin(t.store).find(key)).id;
    return t.store.usageSummary({ by, since, until, keyId });
  }
  const q = new URLSearchParams({ by });
  if (since !== undefined) q.set('since', String(Math.floor(since / 1000)));
  if (until !== undefined) q.set('until', String(Math.floor(until / 1000)));
  if (key !== undefined) q.set('key', key);
  const j = await api(t, 'GET', `/admin/usage?${q}`);
  return (j.data as Record<string, any>[]).map((r) => ({
    group: String(r[by]), ...(typeof r.key_id === 'string' ? { keyId: r.key_id } : {}), requests: r.requests, errors: r.errors, promptTokens: r.prompt_tokens, completionTokens: r.completion_tokens,
    cost: r.cost_usd, avgLatencyMs: r.avg_latency_ms,
  }));
}

const num = (n: number): string => n.toLocaleString('en-US');
/** Dollars: cents, or two significant digits below a cent (a few tokens of a cheap model). */
const money = (n: number): string => (n === 0 ? '$0' : usd(n));

export function usageTable(by: UsageGroup, rs: readonly UsageRow[]): string {
  if (rs.length === 0) return 'no requests in this period\n';
  const out = [[by.toUpperCase(), 'REQUESTS', 'ERRORS', 'TOKENS IN', 'TOKENS OUT', 'COST', 'AVG MS']];
  const t = { requests: 0, errors: 0, pin: 0, pout: 0, cost: 0 };
  // Two keys may share a name: those are told apart by their ids.
  const named = new Map<string, number>();
  for (const r of rs) named.set(r.group, (named.get(r.group) ?? 0) + 1);
  for (const r of rs) {
    const label = r.keyId !== undefined && named.get(r.group)! > 1 ? `${r.group} (${r.keyId})` : r.group;
    out.push([label, num(r.requests), num(r.errors), num(r.promptTokens), num(r.completionTokens), money(r.cost), r.avgLatencyMs.toFixed(0)]);
    t.requests += r.requests; t.errors += r.errors; t.pin += r.promptTokens; t.pout += r.completionTokens; t.cost += r.cost;
  }
  out.push(['total', num(t.requests), num(t.errors), num(t.pin), num(t.pout), money(t.cost), '']);
  return table(out);
}

export async function runUsage(argv: string[]): Promise<number> {
  const parsed = parseCommand('usage', HELP, {
    args: argv,
    options: {
      by: { type: 'string' }, since: { type: 'string' }, until: { type: 'string' }, 'key-id': { type: 'string' }, json: { type: 'boolean' }, csv: { type: 'boolean' },
      url: { type: 'string' }, key: { type: 'string' }, auth: { type: 'string' }, config: { type: 'string', short: 'c' }, 'data-dir': { type: 'string' }, help: { type: 'boolean', short: 'h' },
    },
  });
  if (typeof parsed === 'number') return parsed;
  const v = parsed.values;
  const by = (v.by ?? 'key') as UsageGroup;
  if (!(USAGE_GROUPS as readonly string[]).includes(by)) return usageError('usage', `--by must be one of ${USAGE_GROUPS.join(', ')}`);
  const now = Date.now();
  const when = (name: string, s: string | undefined): number | undefined => {
    if (s === undefined) return undefined;
    const t = parseWhen(s, now);
    if (t === undefined) throw new UsageError(`--${name} must be a duration back (7d, 24h), today, week, month, an ISO date or unix seconds, got ${JSON.stringify(s)}`);
    return t;
  };
  // A command line to mend is exit 2, as --by's is; what the gateway or store refuses, 1.
  let since: number | undefined, until: number | undefined, masterKey: string | undefined;
  try {
    if (v.csv === true && v.json === true) throw new UsageError('--json or --csv: one output format');
    since = when('since', v.since);
    until = when('until', v.until);
    // An empty period is a mistyped one, not a report of no requests.
    if (since !== undefined && until !== undefined && until <= since) {
      throw new UsageError(`--until must be after --since: ${new Date(until).toISOString()} is not after ${new Date(since).toISOString()}`);
    }
    masterKey = masterKeyFlag(v);
  } catch (e) {
    return usageError('usage', (e as Error).message);
  }
  let t: Target | undefined;
  try {
    t = await openTarget('usage', { url: v.url, key: masterKey, config: v.config, 'data-dir': v['data-dir'] });
    const rs = await rows(t, by, since, until, v['key-id']);
    if (v.csv === true) process.stdout.write(usageCsv(by, rs));
    else if (v.json === true) process.stdout.write(JSON.stringify(usageJson(by, since, until, rs), null, 2) + '\n');
    else process.stdout.write(usageTable(by, rs));
    return 0;
  } catch (e) {
    if (e instanceof ConfigError) return reportConfigError('usage', v.config ?? '', e);
    if (e instanceof UsageError || e instanceof FabricError) {
      process.stderr.write(`fabric usage: ${e.message}\n`);
      return 1;
    }
    throw e;
  } finally {
    if (t !== undefined) await closeTarget(t);
  }
}

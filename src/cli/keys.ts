// fabric keys: virtual keys for applications and people — create, update, list, show, revoke, rotate.

import { ConfigError } from '../config/issues.ts';
import { roleByName } from '../config/types.ts';
import { KeyAdmin, keyView } from '../keys/admin.ts';
import { parseKeyInput } from '../keys/input.ts';
import { configResolves, staleField, staleNote } from '../keys/stale.ts';
import { keyRevision } from '../store/rows.ts';
import type { KeyPatch, KeyRecord } from '../store/types.ts';
import { FabricError } from '../core/errors.ts';
import { usd } from '../accounting/periods.ts';
import { parseDuration } from '../config/units.ts';
import { table, UsageError } from './client.ts';
import { reportConfigError } from './fabric-file.ts';
import { api, apiCall, ApiRefusal, closeTarget, openTarget, type Target } from './state-target.ts';
import { parseCommand } from './args.ts';

const HELP = `Usage: fabric keys create NAME [--roles R,R] [--rpm N] [--tpm N] [--role-limit R:rpm=N,tpm=N]... [--budget USD[/PERIOD]]
                         [--expires WHEN] [--meta K=V]...
       fabric keys update ID|NAME [the same flags: only those given change]
       fabric keys list
       fabric keys show ID|NAME
       fabric keys revoke ID|NAME
       fabric keys rotate ID|NAME
  common: [--url URL --key KEY | --config FILE | --data-dir DIR] [--json]

Virtual keys for applications and people (obsidian, trailblazer, …). A name belongs to one key
in use at a time (a revoked or expired key's name is free again), so a name can stand for the
key's id wherever one is asked for. A key is shown once,
when it is created or rotated, and stored only as its SHA-256. Revoking or rotating takes
effect at once on the gateway process that does it. Other gateway processes sharing the
store reload their keys when it changes: at once with PostgreSQL (LISTEN/NOTIFY), else at
their next poll of the keys version (gateway.accounting.sync_interval, default 2s). With
--config, every running gateway learns of it that way. list and show flag a key whose roles or
role limits name no role, alias or model of the config any more (a role renamed under it).

  --roles R,R       the models (roles or aliases) the key may use; default: all
  --rpm N, --tpm N  requests / tokens per minute: 60, 20000, 20k (a malformed one is an error, exit 2)
  --role-limit R:rpm=N,tpm=N   limits for one role on top of the key-wide ones (repeatable);
                    update: merged, the roles not given keep theirs; R:none takes them off
  --budget USD[/PERIOD]        spend limit per day, week, month (default) or total, e.g. 10/month
  --expires WHEN    a duration from now (30d, 12h) or an ISO date-time (2027-01-31,
                    2027-01-31T18:00:00Z; without a zone, this machine's local time)
  --meta K=V        metadata (repeatable), e.g. --meta app=obsidian --meta tier=free; routing
                    rules may send a key by it (if_key_metadata). update: sets that field,
                    the others stay; --meta K= removes it
  update also takes --roles all, --rpm none, --tpm none, --budget none, --expires never.
  update merges --meta and --role-limit into the key as it is when written: a change another
  update makes meanwhile is kept (the key is read and merged again; after 5 tries, exit 1)
  --url URL         the gateway (default: $FABRIC_URL, else http://127.0.0.1:4000)
  --key KEY         its master key; env:NAME reads it from the environment
                    (default: $FABRIC_API_KEY)
  --config FILE     act on the store the config names instead (no running gateway needed)
  --data-dir DIR    the gateway's data directory, where its SQLite store is: with --config, when
                    the gateway keeps it elsewhere than the config says ($FABRIC_DATA_DIR; the
                    rendered systemd unit: /var/lib/ai-fabric); alone, for a gateway started
                    without a config: $FABRIC_DATA_DIR, else $XDG_DATA_HOME/ai-fabric, else
                    ~/.local/share/ai-fabric
  --json            machine-readable output
`;

function budgetFlag(v: string): { amount: number; period: string } {
  const m = /^\$?(\d+(?:\.\d+)?)(?:\/(day|week|month|total|daily|weekly|monthly))?$/.exec(v.trim());
  if (m === null) throw new UsageError(`--budget must be USD[/PERIOD] such as 10/month or 2.5/day, got ${JSON.stringify(v)}`);
  return { amount: Number(m[1]), period: m[2] ?? 'month' };
}

/** --role-limit R:rpm=N,tpm=N; on update, R:none (null) takes the role's limits off. */
function roleLimits(vs: string[], update: boolean): Record<string, { rpm?: number; tpm?: number } | null> {
  const out: Record<string, { rpm?: number; tpm?: number } | null> = {};
  for (const v of vs) {
    const off = update ? /^(.+):none$/i.exec(v) : null;
    if (off !== null) {
      out[off[1]!] = null;
      continue;
    }
    const m = /^(.+):((?:rpm|tpm)=\d+(?:,(?:rpm|tpm)=\d+)?)$/.exec(v);
    if (m === null) throw new UsageError(`--role-limit must be ROLE:rpm=N[,tpm=N]${update ? ' or ROLE:none' : ''}, got ${JSON.stringify(v)}`);
    const lim: { rpm?: number; tpm?: number } = {};
    for (const part of m[2]!.split(',')) {
      const [k, n] = part.split('=') as ['rpm' | 'tpm', string];
      lim[k] = Number(n);
    }
    out[m[1]!] = lim;
  }
  return out;
}

/** A per-minute limit: N, Nk or Nm, with or without /min; anything else is a usage error, never "no limit". */
function perMinute(flag: string, v: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*([km]?)(?:\s*\/\s*min)?$/i.exec(v.trim());
  const raw = m === null ? NaN : Number(m[1]) * (m[2]!.toLowerCase() === 'k' ? 1e3 : m[2]!.toLowerCase() === 'm' ? 1e6 : 1);
  // 16.1k is 16100 (floating point makes it 16099.999…); 1.5 is no whole number.
  const n = Math.abs(raw - Math.round(raw)) < 1e-6 ? Math.round(raw) : raw;
  if (!Number.isSafeInteger(n) || n < 1) throw new UsageError(`--${flag} must be a whole number per minute such as 60, 20000 or 20k, got ${JSON.stringify(v)}`);
  return n;
}

const EXPIRES_FORMS = 'a duration from now such as 30d or 12h, or an ISO date-time such as 2027-01-31 or 2027-01-31T18:00:00Z';
const ISO_DATE_TIME = /^(\d{4})-(\d{2})-(\d{2})(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?)?$/i;

/**
 * --expires in the forms the help gives, checked here: a typo is the command line's to mend
 * (exit 2, naming the flag), not the admin API's expires_at. A date or date-time without a zone
 * is read where the operator is (JavaScript would take a date alone as UTC), and sent in UTC,
 * whatever the gateway's own zone.
 */
function expiresFlag(v: string, now: number = Date.now()): { expires_in: string } | { expires_at: string } {
  const s = v.trim();
  if (/^\d+(\.\d+)?\s*(ms|s|m|h|d)$/.test(s)) {
    if (!(parseDuration(s)! > 0)) throw new UsageError(`--expires must be ${EXPIRES_FORMS}, got ${JSON.stringify(v)}`);
    return { expires_in: s };
  }
  const m = ISO_DATE_TIME.exec(s);
  const t = m === null ? NaN : Date.parse(/^[\d-]+$/.test(s) ? `${s}T00:00` : s);
  // Date.parse rolls a day the month lacks over into the next month (2027-02-30 is 2 March).
  const day = m === null ? undefined : new Date(Date.UTC(Number(m[1]), Number(m[2]) - 1, Number(m[3])));
  if (!Number.isFinite(t) || day === undefined || day.getUTCMonth() !== Number(m![2]) - 1 || day.getUTCDate() !== Number(m![3])) {
    throw new UsageError(`--expires must be ${EXPIRES_FORMS}, got ${JSON.stringify(v)}`);
  }
  if (t <= now) throw new UsageError(`--expires must be a time to come, got ${JSON.stringify(v)} (${new Date(t).toISOString()}, already past)`);
  return { expires_at: new Date(t).toISOString() };
}

type Flags = Record<string, string | string[] | boolean | undefined>;

/** --meta K=V pairs, in order; K= (an empty value) stands for "remove K" on update. */
function metaFlags(v: Flags): [string, string][] {
  return ((v.meta as string[] | undefined) ?? []).map((kv) => {
    const i = kv.indexOf('=');
    if (i <= 0) throw new UsageError(`--meta must be KEY=VALUE, got ${JSON.stringify(kv)}`);
    return [kv.slice(0, i), kv.slice(i + 1)];
  });
}

/** The admin API's fields for the flags given; on update, the words that clear a setting are taken too. */
function keyFields(v: Flags, update: boolean): Record<string, unknown> {
  const body: Record<string, unknown> = {};
  const clear = (flag: string, word: string): boolean => update && typeof v[flag] === 'string' && (v[flag] as string).trim().toLowerCase() === word;
  if (clear('roles', 'all')) body.roles = null;
  else if (typeof v.roles === 'string') {
    body.roles = v.roles.split(',').map((s) => s.trim()).filter((s) => s !== '');
    // An empty list would be a key that may use nothing: never what was meant.
    if ((body.roles as string[]).length === 0) throw new UsageError(`--roles must be one or more roles or aliases${update ? ' (or all)' : ''}, got ${JSON.stringify(v.roles)}`);
  }
  if (clear('rpm', 'none')) body.rpm = null;
  else if (typeof v.rpm === 'string') body.rpm = perMinute('rpm', v.rpm);
  if (clear('tpm', 'none')) body.tpm = null;
  else if (typeof v.tpm === 'string') body.tpm = perMinute('tpm', v.tpm);
  if (clear('budget', 'none')) body.budget = null;
  else if (typeof v.budget === 'string') body.budget = budgetFlag(v.budget);
  if (clear('expires', 'never')) body.expires_at = null;
  else if (typeof v.expires === 'string') Object.assign(body, expiresFlag(v.expires));
  const meta = metaFlags(v);
  if (meta.length > 0 && !update) body.metadata = Object.fromEntries(meta);
  const rl = v['role-limit'] as string[] | undefined;
  if (rl !== undefined && rl.length > 0) body.role_limits = roleLimits(rl, update);
  return body;
}

type View = Record<string, any>;

/** When a revocation reaches the gateways, as the key ring works (src/keys/keyring.ts): no promise it cannot keep. */
function revokedWhere(t: Target): string {
  const others = 'other gateways sharing the store stop accepting it at once with PostgreSQL (NOTIFY), else at their next keys sync (sync_interval)';
  if (t.kind === 'api') return `it stops working at once on this gateway; ${others}`;
  const pg = t.config.gateway.store.kind === 'postgres';
  return pg ? 'running gateways stop accepting it at once (PostgreSQL NOTIFY), or at the latest at their next keys sync (sync_interval)'
    : `running gateways stop accepting it at their next keys sync (gateway.accounting.sync_interval: ${t.config.gateway.accounting.syncIntervalMs} ms)`;
}

function describeKey(k: View): string {
  const lines = [
    `id        ${k.id}`,
    `name      ${k.name}`,
    `key       ${k.hint}`,
    `status    ${k.status}`,
    `roles     ${k.roles === null ? 'all' : k.roles.join(', ')}`,
    `limits    ${k.rpm === null ? '-' : `${k.rpm} rpm`}, ${k.tpm === null ? '-' : `${k.tpm} tpm`}` +
      (Object.keys(k.role_limits ?? {}).length > 0 ? `; ${Object.entries(k.role_limits).map(([r, l]: [string, any]) => `${r}: ${[l.rpm && `${l.rpm} rpm`, l.tpm && `${l.tpm} tpm`].filter(Boolean).join(' ')}`).join('; ')}` : ''),
    `budget    ${k.budget === null ? '-' : `${usd(k.budget.amount)} per ${k.budget.period}`}${k.spend ? ` (${usd(k.spend.spent)} spent, resets ${k.spend.resetsAt ?? 'never'})` : ''}`,
    `expires   ${k.expires_at ?? 'never'}`,
    `created   ${k.created_at}`,
  ];
  if (k.revoked_at !== null) lines.push(`revoked   ${k.revoked_at}`);
  if (k.stale !== undefined && k.stale !== null && k.status === 'active') lines.push(`warning   ${staleNote(k.stale)}`);
  if (Object.keys(k.metadata ?? {}).length > 0) lines.push(`metadata  ${JSON.stringify(k.metadata)}`);
  return lines.join('\n') + '\n';
}

/**
 * The key's fields for the store itself (--config / --data-dir), checked as the gateway's admin
 * API would: roles that the config serves, limits kept under the role's name (not an alias).
 */
function checkedPatch(t: Target & { kind: 'store' }, body: Record<string, unknown>, mode: 'create' | 'update', v: Flags): KeyPatch {
  const patch = parseKeyInput(body, mode);
  // A store opened by --data-dir comes with no config: its roles cannot be checked here.
  for (const r of t.config.roles.size === 0 ? [] : patch.roles ?? []) {
    const known = roleByName(t.config.roles, r) !== undefined || [...t.config.backends.values()].some((b) => b.aliases.includes(r) || b.model === r);
    if (!known) throw new UsageError(`--roles: ${r} is not a role, alias or model of ${String(v.config)}`);
  }
  if (patch.roleLimits !== undefined && t.config.roles.size > 0) {
    const byRole: typeof patch.roleLimits = {};
    for (const [r, limits] of Object.entries(patch.roleLimits)) {
      const role = roleByName(t.config.roles, r);
      if (role === undefined) throw new UsageError(`--role-limit: ${r} is not a role or role alias of ${String(v.config)}`);
      byRole[role.name] = limits;
    }
    patch.roleLimits = byRole;
  }
  return patch;
}

/** How many times `fabric keys update` reads, merges and writes a key that other updates keep changing in between. */
const UPDATE_TRIES = 5;

/**
 * --meta and --role-limit are merged into what the key has, so the change is written on
 * condition that the key is still as it was read (If-Match with its ETag; its revision, with
 * --config): an update made in between (another operator, a script) is not written over, but
 * read, merged with, and written again. A gateway too old to send an ETag gets the change as
 * before, unconditionally.
 */
async function updateKey(
  t: Target, admin: KeyAdmin | undefined, id: string, fields: Record<string, unknown>, meta: [string, string][], v: Flags, view: (k: KeyRecord) => View,
): Promise<View> {
  const merges = meta.length > 0 || fields.role_limits !== undefined;
  for (let attempt = 1; ; attempt++) {
    let was: View;
    let revision: string | undefined;
    if (t.kind === 'api') {
      ({ json: was, etag: revision } = await apiCall(t, 'GET', `/admin/keys/${encodeURIComponent(id)}`));
      // The gateway's ETags are strong: a weak one was made so on the way (nginx's gzip weakens
      // those of what it compresses), and would never match (If-Match compares strongly).
      revision = revision?.replace(/^W\//, '');
    } else {
      const k = await admin!.find(id);
      [was, revision] = [keyView(k), keyRevision(k)];
    }
    const body = { ...fields };
    if (body.role_limits !== undefined) {
      // Merged as --meta is: a role given changes (or, with none, loses) its limits, the others keep theirs.
      const merged: Record<string, unknown> = { ...was.role_limits };
      for (const [r, l] of Object.entries(body.role_limits as Record<string, unknown>)) if (l === null) delete merged[r]; else merged[r] = l;
      body.role_limits = merged;
    }
    if (meta.length > 0) {
      // Merged into what the key has: --meta tier=premium changes the tier and keeps the owner.
      const md: Record<string, unknown> = { ...was.metadata };
      for (const [k, val] of meta) if (val === '') delete md[k]; else md[k] = val;
      body.metadata = md;
    }
    const ifMatch = merges && revision !== undefined ? revision : undefined;
    try {
      if (t.kind === 'api') return (await apiCall(t, 'PATCH', `/admin/keys/${encodeURIComponent(was.id)}`, body, ifMatch === undefined ? undefined : { 'if-match': ifMatch })).json;
      return view(await admin!.update(was.id, checkedPatch(t, body, 'update', v), Date.now(), ifMatch === undefined ? undefined : [ifMatch]));
    } catch (e) {
      const stale = e instanceof ApiRefusal ? e.status === 412 : e instanceof FabricError && e.code === 'precondition_failed';
      if (!stale) throw e;
      if (attempt === UPDATE_TRIES) {
        throw new UsageError(`key ${was.id} (${was.name}) was changed by other updates each of the ${UPDATE_TRIES} times this one read it; nothing of this update was written: run it again`);
      }
      // Apart, so that updates racing each other do not meet again at once.
      await new Promise((r) => setTimeout(r, Math.random() * 50 * attempt));
    }
  }
}

async function run(t: Target, sub: string, args: string[], v: Flags): Promise<number> {
  const json = v.json === true;
  const out = (x: unknown, text: string): void => { process.stdout.write(json ? JSON.stringify(x, null, 2) + '\n' : text); };
  const admin = t.kind === 'store' ? new KeyAdmin(t.store) : undefined;
  // With --config the config says what the keys may name (a --data-dir store alone has none to say).
  const resolves = t.kind === 'store' && t.config.backends.size > 0 ? configResolves(t.config) : undefined;
  const view = (k: KeyRecord): View => (resolves === undefined ? keyView(k) : { ...keyView(k), stale: staleField(k, resolves) });
  const need = (what: string, placeholder: string): string => {
    if (args[0] === undefined) throw new UsageError(`${what} is required: fabric keys ${sub} ${placeholder}`);
    return args[0];
  };
  switch (sub) {
    case 'create': {
      const body = { name: need('a NAME', 'NAME'), ...keyFields(v, false) };
      let created: View;
      if (t.kind === 'api') created = await api(t, 'POST', '/admin/keys', body);
      else {
        const { record, secret } = await admin!.create(checkedPatch(t, body, 'create', v));
        created = { ...keyView(record), key: secret };
      }
      out(created, `${describeKey(created)}\n${created.key}\n\nThis is the only time the key is shown: store it now (the gateway keeps only its hash).\n`);
      return 0;
    }
    case 'update': {
      const id = need('an ID or NAME', 'ID|NAME');
      const body = keyFields(v, true);
      const meta = metaFlags(v);
      if (Object.keys(body).length === 0 && meta.length === 0) throw new UsageError('nothing to change: give --roles, --rpm, --tpm, --role-limit, --budget, --expires or --meta');
      const k = await updateKey(t, admin, id, body, meta, v, view);
      out(k, `updated ${k.id} (${k.name})\n${describeKey(k)}`);
      return 0;
    }
    case 'list': {
      const keys: View[] = t.kind === 'api' ? (await api(t, 'GET', '/admin/keys')).data : (await admin!.list()).map(view);
      const rows = [['ID', 'NAME', 'STATUS', 'KEY', 'ROLES', 'RPM', 'TPM', 'BUDGET', 'EXPIRES']];
      for (const k of keys) {
        rows.push([k.id, k.name, k.status, k.hint, k.roles === null ? 'all' : k.roles.join(','), k.rpm ?? '-', k.tpm ?? '-',
          k.budget === null ? '-' : `$${k.budget.amount}/${k.budget.period}`, k.expires_at ?? 'never'].map(String));
      }
      // Keys in use that name what the config no longer serves, under the table.
      const notes = keys.filter((k) => k.stale !== undefined && k.stale !== null && k.status === 'active').map((k) => `warning: key ${k.name} (${k.id}) ${staleNote(k.stale)}\n`);
      out(keys, keys.length === 0 ? 'no keys yet: fabric keys create NAME\n' : table(rows) + notes.join(''));
      return 0;
    }
    case 'show': {
      const id = need('an ID or NAME', 'ID|NAME');
      const k: View = t.kind === 'api' ? await api(t, 'GET', `/admin/keys/${encodeURIComponent(id)}`) : view(await admin!.find(id));
      out(k, describeKey(k));
      return 0;
    }
    case 'revoke': {
      const id = need('an ID or NAME', 'ID|NAME');
      const was: View = t.kind === 'api' ? await api(t, 'GET', `/admin/keys/${encodeURIComponent(id)}`) : keyView(await admin!.find(id));
      const k: View = t.kind === 'api' ? await api(t, 'POST', `/admin/keys/${encodeURIComponent(id)}/revoke`, {}) : keyView(await admin!.revoke(id));
      out(k, was.status === 'revoked' ? `${k.id} (${k.name}) was already revoked\n` : `revoked ${k.id} (${k.name}); ${revokedWhere(t)}\n`);
      return 0;
    }
    case 'rotate': {
      const id = need('an ID or NAME', 'ID|NAME');
      let k: View;
      if (t.kind === 'api') k = await api(t, 'POST', `/admin/keys/${encodeURIComponent(id)}/rotate`, {});
      else {
        const { record, secret } = await admin!.rotate(id);
        k = { ...keyView(record), key: secret };
      }
      out(k, `rotated ${k.id} (${k.name}); the old key no longer works. The new one:\n\n${k.key}\n\nThis is the only time it is shown: store it now.\n`);
      return 0;
    }
    default:
      throw new UsageError(`unknown subcommand "${sub}"`);
  }
}

export async function runKeys(argv: string[]): Promise<number> {
  const [sub, ...rest] = argv;
  if (sub === undefined || sub === '--help' || sub === '-h' || sub === 'help') {
    process.stdout.write(HELP);
    return sub === undefined ? 2 : 0;
  }
  const parsed = parseCommand('keys', HELP, {
    args: rest, allowPositionals: true,
    options: {
      url: { type: 'string' }, key: { type: 'string' }, config: { type: 'string', short: 'c' }, 'data-dir': { type: 'string' }, json: { type: 'boolean' },
      roles: { type: 'string' }, rpm: { type: 'string' }, tpm: { type: 'string' }, budget: { type: 'string' }, expires: { type: 'string' },
      meta: { type: 'string', multiple: true }, 'role-limit': { type: 'string', multiple: true }, help: { type: 'boolean', short: 'h' },
    },
  });
  if (typeof parsed === 'number') return parsed;
  let t: Target | undefined;
  try {
    t = await openTarget('keys', parsed.values, sub === 'create');
    return await run(t, sub, parsed.positionals, parsed.values);
  } catch (e) {
    if (e instanceof ConfigError) return reportConfigError('keys', parsed.values.config ?? '', e);
    if (e instanceof UsageError || e instanceof FabricError) {
      process.stderr.write(`fabric keys: ${e.message}\n`);
      // Exit 2 for a command line to mend (as for an unknown option: a missing or malformed
      // argument), 1 for what was refused (the gateway, the store, the config's roles).
      return e instanceof UsageError && /unknown subcommand|is required|must be|nothing to change/.test(e.message) ? 2 : 1;
    }
    throw e;
  } finally {
    if (t !== undefined) await closeTarget(t);
  }
}

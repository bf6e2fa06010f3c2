/**
 * `herald keys create|list|revoke` (an admin key's work: POST/GET/DELETE /v1/keys) and `herald audit`
 * (GET /v1/audit: who changed what, newest first). A created key's bearer is printed once, as the server
 * answers it once; nothing here stores it.
 */
import { InvalidArgumentError, type Command } from 'commander';
import { SCOPES } from '../domain/api-keys.js';
import { contextOf, positiveInt } from './context.js';
import { table } from './format.js';

type Obj = Record<string, unknown>;

/** `--scopes read,send`: each one a known scope (the server checks again). */
export function scopeList(value: string): string[] {
  const scopes = value
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '');
  const unknown = scopes.filter((s) => !(SCOPES as readonly string[]).includes(s));
  if (scopes.length === 0 || unknown.length > 0)
    throw new InvalidArgumentError(
      `scopes are a comma-separated list of ${SCOPES.join(', ')}${unknown.length > 0 ? `; not ${unknown.join(', ')}` : ''}`,
    );
  return scopes;
}

const when = (v: unknown): string => (typeof v === 'string' ? v.replace('T', ' ').replace(/\.\d+Z$/, 'Z') : '-');

export function keyTable(keys: readonly Obj[]): string {
  return table([
    ['id', 'name', 'scopes', 'created', 'revoked', 'last used'],
    ...keys.map((k) => [
      String(k.id),
      String(k.name ?? ''),
      Array.isArray(k.scopes) ? k.scopes.join(',') : '',
      when(k.created_at),
      when(k.revoked_at),
      when(k.last_used_at),
    ]),
  ]);
}

export function auditTable(items: readonly Obj[]): string {
  return table([
    ['at', 'action', 'campaign', 'status', 'key', 'request'],
    ...items.map((a) => [
      when(a.at),
      String(a.action),
      a.campaign_id === null || a.campaign_id === undefined ? '-' : String(a.campaign_id),
      a.status_before === null && a.status_after === null ? '-' : `${String(a.status_before ?? '-')} → ${String(a.status_after ?? '-')}`,
      `${String(a.key_id)}${a.key_name ? ` (${String(a.key_name)})` : ''}`,
      String(a.request_id),
    ]),
  ]);
}

export function keyCommands(program: Command): void {
  const keys = program.command('keys').description('API keys and their scopes (needs an admin key)');

  keys
    .command('create')
    .argument('<name>', "the key's name (shown in the audit trail)")
    .requiredOption('-s, --scopes <list>', `comma-separated scopes: ${SCOPES.join(', ')} (admin holds every scope)`, scopeList)
    .description('create a key; its bearer is printed once and never again')
    .action(async (name: string, opts: { scopes: string[] }, cmd: Command) => {
      const ctx = contextOf(cmd);
      const k = await ctx.client().call('POST', '/v1/keys', { name, scopes: opts.scopes });
      ctx.print(
        `key ${String(k.id)} (${String(k.name)}) with scopes ${opts.scopes.join(', ')}:\n${String(k.key)}\nShown once: store it now (HERALD_API_KEY=…).`,
        k,
      );
    });

  keys
    .command('list')
    .description('every key (no secrets), then the bootstrap keys of HERALD_API_KEYS')
    .action(async (_opts: unknown, cmd: Command) => {
      const ctx = contextOf(cmd);
      const r = await ctx.client().call('GET', '/v1/keys');
      ctx.print(keyTable(r.keys as Obj[]), r);
    });

  keys
    .command('revoke')
    .argument('<id>', "the key's id (hk_… keys; bootstrap keys are revoked by removing them from HERALD_API_KEYS)")
    .description('revoke a key: refused at once here, within seconds by every process')
    .action(async (id: string, _opts: unknown, cmd: Command) => {
      const ctx = contextOf(cmd);
      const k = await ctx.client().call('DELETE', `/v1/keys/${encodeURIComponent(id)}`);
      ctx.print(`key ${String(k.id)} revoked at ${when(k.revoked_at)}`, k);
    });

  program
    .command('audit')
    .description('the audit trail, newest first: who started, paused, changed what (GET /v1/audit)')
    .option('-c, --campaign <id>', "only this campaign's actions", positiveInt)
    .option('-n, --limit <n>', 'how many (1-500)', positiveInt, 50)
    .option('--before <id>', 'the page after this audit id', positiveInt)
    .action(async (opts: { campaign?: number; limit: number; before?: number }, cmd: Command) => {
      const ctx = contextOf(cmd);
      const q = new URLSearchParams({ limit: String(opts.limit) });
      if (opts.campaign !== undefined) q.set('campaign_id', String(opts.campaign));
      if (opts.before !== undefined) q.set('before', String(opts.before));
      const r = await ctx.client().call('GET', `/v1/audit?${q.toString()}`);
      const items = r.items as Obj[];
      const more = r.next_before === null ? '' : `\nmore: herald audit --before ${String(r.next_before)}`;
      ctx.print(items.length === 0 ? 'no audit records' : auditTable(items) + more, r);
    });
}

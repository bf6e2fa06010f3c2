import { createHash } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Herald } from '../../src/main.js';
import { tokenSecret } from '../../src/config.js';
import { KEY_CACHE_MS } from '../../src/config/timings.js';
import { SCOPES, type Scope } from '../../src/domain/api-keys.js';
import { unsubscribeToken } from '../../src/domain/tokens.js';
import { apiRoutes, type ApiDeps } from '../../src/api/routes.js';
import { Api, apiFor, createNamespace, startTestHerald, type Namespace } from '../helpers/herald.js';
import { RawWsClient } from '../helpers/raw-ws.js';

/** A value for each path parameter: ids are numbers, the rest plain text. */
const fill = (p: string): string =>
  p.replace(/:([A-Za-z0-9_]+)/g, (_, name: string) => (name === 'user_id' || name === 'token' ? 'someone' : '987654'));
const PUBLIC_ROUTES = [
  'dashboardAudiences',
  'dashboardCampaign',
  'dashboardCharts',
  'dashboardCore',
  'dashboardCreate',
  'dashboardPage',
  'dashboardPreview',
  'dashboardScript',
  'dashboardStyles',
  'getHealth',
  'getMetrics',
  'getOpenApi',
  'trackingPixel',
  'unsubscribePage',
  'unsubscribe',
];

describe('API keys, scopes and the audit trail', () => {
  let ns: Namespace;
  let herald: Herald;
  let admin: Api;
  let db: pg.Client;
  const keys = new Map<string, { id: string; key: string; api: Api }>();

  /** A key with exactly these scopes, made through the API (once per set). */
  const keyWith = async (scopes: Scope[], name = `key ${scopes.join('+') || 'none'}`): Promise<{ id: string; key: string; api: Api }> => {
    const label = `${scopes.join(',')} ${name}`;
    const known = keys.get(label);
    if (known !== undefined) return known;
    const r = await admin.call('POST', '/v1/keys', { name, scopes });
    expect(r.status, JSON.stringify(r.body)).toBe(201);
    const k = { id: r.body.id as string, key: r.body.key as string, api: new Api(admin.base, r.body.key as string) };
    keys.set(label, k);
    return k;
  };
  const audit = async (query: string): Promise<any> => {
    const r = await admin.call('GET', `/v1/audit?${query}`);
    expect(r.status, JSON.stringify(r.body)).toBe(200);
    return r.body;
  };

  beforeAll(async () => {
    ns = await createNamespace({ workers: 0 });
    herald = await startTestHerald(ns);
    admin = apiFor(herald);
    db = new pg.Client({ connectionString: ns.config.databaseUrl });
    await db.connect();
  });

  afterAll(async () => {
    await db?.end();
    await herald?.stop();
    await ns?.drop();
  });

  it('every route declares its access, and a key without the scope gets 403 naming it', async () => {
    const table = apiRoutes({} as ApiDeps);
    expect(
      table
        .filter((r) => r.auth === 'public')
        .map((r) => r.name)
        .sort(),
    ).toEqual([...PUBLIC_ROUTES].sort());
    const doc = (await admin.call('GET', '/v1/openapi.json')).body;
    let checked = 0;
    for (const route of table) {
      expect([...SCOPES, 'user', 'public'], route.name).toContain(route.auth);
      const op = doc.paths[route.path.replace(/:([A-Za-z0-9_]+)/g, '{$1}')][route.method];
      expect(op['x-scope'], route.name).toBe(route.auth);
      if (route.auth === 'public') continue;
      const needed: Scope = route.auth === 'user' ? 'read' : route.auth;
      // every scope but the one needed (and admin, which holds them all)
      const without = await keyWith(SCOPES.filter((s) => s !== needed && s !== 'admin'));
      const path = fill(route.path);
      const body = route.method === 'get' ? undefined : '';
      const refused = await without.api.call(route.method.toUpperCase(), path, body);
      expect(refused.status, `${route.method} ${route.path}`).toBe(403);
      expect(refused.body, route.name).toMatchObject({ code: 'FORBIDDEN', field: 'authorization', scope: needed });
      expect(refused.body.error, route.name).toContain(needed);
      // with only the scope needed it passes the check (whatever the handler answers an empty body)
      const only = await keyWith([needed]);
      const allowed = await only.api.call(route.method.toUpperCase(), path, body);
      expect([401, 403], `${route.name} with ${needed}: ${JSON.stringify(allowed.body)}`).not.toContain(allowed.status);
      checked++;
    }
    expect(checked).toBeGreaterThan(30);
  });

  it('the WebSocket needs read: 403 naming it for a key without, a socket for a key with it', async () => {
    const send = await keyWith(['send']);
    await expect(RawWsClient.open(herald.port, '/v1/ws', { authorization: `Bearer ${send.key}` })).rejects.toThrow(/403/);
    await expect(
      RawWsClient.open(herald.port, '/v1/ws', { authorization: 'Bearer hk_0123456789abcdef_' + 'A'.repeat(43) }),
    ).rejects.toThrow(/401/);
    const read = await keyWith(['read']);
    const ws = await RawWsClient.open(herald.port, '/v1/ws', { authorization: `Bearer ${read.key}` });
    ws.destroy();
  });

  it('shows a secret once, stores only its SHA-256, and lists keys without secrets', async () => {
    const r = await admin.call('POST', '/v1/keys', { name: 'ci deploys', scopes: ['send', 'read'] });
    expect(r.status).toBe(201);
    expect(r.body).toMatchObject({ name: 'ci deploys', scopes: ['read', 'send'], revoked_at: null, bootstrap: false });
    const key = r.body.key as string;
    const secret = key.slice(`hk_${r.body.id}_`.length);
    expect(key).toMatch(/^hk_[0-9a-f]{16}_[A-Za-z0-9_-]{43}$/);

    const list = await admin.call('GET', '/v1/keys');
    const listed = list.body.keys.find((k: { id: string }) => k.id === r.body.id);
    expect(listed).toMatchObject({ id: r.body.id, name: 'ci deploys', scopes: ['read', 'send'] });
    expect(listed.key).toBeUndefined();
    expect(JSON.stringify(list.body)).not.toContain(secret);
    expect(list.body.keys.find((k: { id: string }) => k.id === 'env:1')).toMatchObject({ scopes: ['admin'], bootstrap: true });

    const row = await db.query('SELECT secret_sha256, row_to_json(k)::text AS text FROM api_keys k WHERE id = $1', [r.body.id]);
    expect((row.rows[0].secret_sha256 as Buffer).equals(createHash('sha256').update(secret).digest())).toBe(true);
    expect(row.rows[0].text).not.toContain(secret);
    expect(row.rows[0].text).not.toContain(Buffer.from(secret).toString('hex'));
    const everything = await db.query(`SELECT string_agg(row_to_json(a)::text, '') AS t FROM audit_log a`);
    expect(everything.rows[0].t).not.toContain(secret);

    const k = new Api(admin.base, key);
    expect((await k.call('GET', '/v1/campaigns')).status).toBe(200);
    expect((await k.call('POST', '/v1/keys', { name: 'x', scopes: ['read'] })).body).toMatchObject({ code: 'FORBIDDEN', scope: 'admin' });
  });

  it('refuses bad key bodies with 400 naming the field', async () => {
    expect((await admin.call('POST', '/v1/keys', { name: 'x', scopes: ['write'] })).body).toMatchObject({
      code: 'BAD_REQUEST',
      field: 'scopes[0]',
    });
    expect((await admin.call('POST', '/v1/keys', { name: 'x', scopes: ['read', 'root'] })).body).toMatchObject({ field: 'scopes[1]' });
    expect((await admin.call('POST', '/v1/keys', { scopes: ['read'] })).body).toMatchObject({ field: 'name' });
    expect((await admin.call('POST', '/v1/keys', { name: 'x', scopes: [] })).body).toMatchObject({ field: 'scopes' });
    expect((await admin.call('DELETE', '/v1/keys/env:1')).body).toMatchObject({ code: 'BAD_REQUEST', field: 'id' });
    expect((await admin.call('DELETE', '/v1/keys/not-a-key')).status).toBe(400);
    expect((await admin.call('DELETE', '/v1/keys/0123456789abcdef')).status).toBe(404);
  });

  it('revoke: 401 at once in this process, and within the cache bound in another', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'herald-keys-'));
    const other = await startTestHerald(ns, { workers: 0, spoolDir: dir });
    try {
      const made = await admin.call('POST', '/v1/keys', { name: 'to revoke', scopes: ['read'] });
      const here = new Api(admin.base, made.body.key);
      const there = new Api(apiFor(other).base, made.body.key);
      expect((await here.call('GET', '/v1/campaigns')).status).toBe(200);
      expect((await there.call('GET', '/v1/campaigns')).status).toBe(200);

      const revoked = await admin.call('DELETE', `/v1/keys/${made.body.id}`);
      const at = Date.now();
      expect(revoked.status).toBe(200);
      expect(revoked.body.revoked_at).not.toBeNull();
      const refused = await here.call('GET', '/v1/campaigns');
      expect(refused).toMatchObject({ status: 401, body: { code: 'UNAUTHORIZED', field: 'authorization' } });
      // The other process still trusts what it read (no PostgreSQL round trip per request) …
      expect((await there.call('GET', '/v1/campaigns')).status).toBe(200);
      // … until the bound.
      let status = 200;
      while (status === 200 && Date.now() - at < KEY_CACHE_MS + 3000) {
        await new Promise((r) => setTimeout(r, 100));
        status = (await there.call('GET', '/v1/campaigns')).status;
      }
      expect(status).toBe(401);
      expect(Date.now() - at).toBeLessThanOrEqual(KEY_CACHE_MS + 500);

      // Revoking again changes nothing and records nothing.
      const again = await admin.call('DELETE', `/v1/keys/${made.body.id}`);
      expect(again.body.revoked_at).toBe(revoked.body.revoked_at);
      const rows = (await audit('limit=500')).items.filter((i: any) => i.action === 'key.revoke' && i.detail.key_id === made.body.id);
      expect(rows).toHaveLength(1);
      expect(rows[0]).toMatchObject({ key_id: 'env:1', key_name: 'HERALD_API_KEYS #1' });
    } finally {
      await other.stop();
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('records start, pause, resume and cancel with the key, the request id and the status before and after', async () => {
    const sender = await keyWith(['send'], 'campaign driver');
    const audienceId = await admin.audience(3, 'aud-a');
    const created = await sender.api.call(
      'POST',
      '/v1/campaigns',
      { name: 'audited', audience_id: audienceId, channel: { type: 'null' }, content: { title: 't', body: 'b' } },
      { 'x-request-id': 'req-create-1' },
    );
    expect(created.status).toBe(201);
    const id = created.body.id as number;
    const steps = [
      ['start', 'draft', 'sending'],
      ['pause', 'sending', 'paused'],
      ['resume', 'paused', 'sending'],
      ['cancel', 'sending', 'cancelled'],
    ] as const;
    for (const [command, , to] of steps) {
      const res = await fetch(`${admin.base}/v1/campaigns/${id}/${command}`, {
        method: 'POST',
        headers: { authorization: `Bearer ${sender.key}`, 'x-request-id': `req-${command}-1` },
      });
      expect(res.status).toBe(200);
      expect(res.headers.get('x-request-id')).toBe(`req-${command}-1`);
      expect(((await res.json()) as { status: string }).status).toBe(to);
    }
    // a refused move changes nothing and records nothing
    expect((await sender.api.call('POST', `/v1/campaigns/${id}/pause`)).status).toBe(409);

    const { items, next_before } = await audit(`campaign_id=${id}`);
    expect(next_before).toBeNull();
    expect(items.map((i: any) => [i.action, i.status_before, i.status_after, i.request_id])).toEqual([
      ...[...steps].reverse().map(([c, from, to]) => [`campaign.${c}`, from, to, `req-${c}-1`]),
      ['campaign.create', null, 'draft', 'req-create-1'],
    ]);
    for (const item of items) {
      expect(item).toMatchObject({ key_id: sender.id, key_name: 'campaign driver', campaign_id: id });
      expect(Object.keys(item).sort()).toEqual(
        ['id', 'at', 'key_id', 'key_name', 'request_id', 'action', 'campaign_id', 'status_before', 'status_after', 'detail'].sort(),
      );
      expect(Number.isNaN(Date.parse(item.at))).toBe(false);
    }
    expect(items.map((i: any) => i.id)).toEqual([...items.map((i: any) => i.id)].sort((a: number, b: number) => b - a));
  });

  it('records PATCH, test sends, imports, suppressions, topics and unsubscribes', async () => {
    const sender = await keyWith(['send'], 'campaign driver');
    const lists = await keyWith(['audience'], 'list manager');
    const a = await lists.api.call('POST', '/v1/audiences', { name: 'audited audience' });
    const imported = await lists.api.importRecipients(a.body.id, '{"user_id":"p1","address":"p1@x.test"}\n{"user_id":"p2"}');
    expect(imported.status).toBe(200);
    const id = await sender.api.nullCampaign(a.body.id, { topic: 'news' });
    expect((await sender.api.call('PATCH', `/v1/campaigns/${id}`, { rate_limit: 50 })).status).toBe(200);
    expect((await sender.api.call('PATCH', `/v1/campaigns/${id}`, { schedule_at: '2100-01-01T00:00:00Z' })).body.status).toBe('scheduled');
    const test = await sender.api.call('POST', `/v1/campaigns/${id}/test`, { user_ids: ['p1'] });
    expect(test.status, JSON.stringify(test.body)).toBe(200);
    const ndjson = { 'content-type': 'application/x-ndjson' };
    const put = await lists.api.call('PUT', '/v1/suppressions', '{"user_id":"p2"}\n{"nope":1}', ndjson);
    expect(put.body.accepted).toBe(1);
    expect((await lists.api.call('DELETE', '/v1/suppressions', '{"user_id":"p2"}', ndjson)).status).toBe(200);
    expect((await lists.api.call('PUT', '/v1/topics/news', { cap: { max: 2, window_s: 60 } })).status).toBe(200);
    const token = unsubscribeToken(tokenSecret(herald.config), id, 'p1', 'news');
    const unsub = await fetch(`${admin.base}/u/${token}`, { method: 'POST', headers: { 'x-request-id': 'unsub-1' } });
    expect(unsub.status).toBe(200);
    expect(unsub.headers.get('x-request-id')).toBe('unsub-1');
    // the second unsubscribe changes nothing: no row
    expect((await fetch(`${admin.base}/u/${token}`, { method: 'POST' })).status).toBe(200);

    const campaignRows = (await audit(`campaign_id=${id}`)).items;
    expect(campaignRows.map((i: any) => [i.action, i.status_before, i.status_after, i.key_id])).toEqual([
      ['suppression.unsubscribe', null, null, 'token'],
      ['campaign.test', 'scheduled', 'scheduled', sender.id],
      ['campaign.update', 'draft', 'scheduled', sender.id],
      ['campaign.update', 'draft', 'draft', sender.id],
      ['campaign.create', null, 'draft', sender.id],
    ]);
    expect(campaignRows[0]).toMatchObject({ request_id: 'unsub-1', detail: { user_id: 'p1', topic: 'news' } });
    expect(campaignRows[1].detail).toMatchObject({ test_id: test.body.test_id, user_ids: ['p1'] });
    expect(campaignRows[2].detail).toEqual({ schedule_at: '2100-01-01T00:00:00.000Z' });
    expect(campaignRows[3].detail).toEqual({ rate_limit: 50 });

    const recent = (await audit('limit=20')).items.filter((i: any) => i.key_id === lists.id);
    expect(recent.map((i: any) => i.action)).toEqual(['topic.put', 'suppressions.delete', 'suppressions.put', 'import.start']);
    expect(recent[2].detail).toEqual({ batch_id: put.body.id, accepted: 1, rejected_count: 1, total: 2, changed: 1 });
    expect(recent[3].detail).toMatchObject({ import_id: imported.body.import_id, audience_id: a.body.id, format: 'ndjson' });
    expect(recent[0].detail).toEqual({ topic: 'news', cap: { max: 2, window_s: 60 } });
  });

  it('a body that streams in while its key is looked up arrives whole', async () => {
    // a key never used yet: its first request waits for PostgreSQL while the body is already arriving
    const fresh = await keyWith(['audience'], 'first use');
    const a = await fresh.api.call('POST', '/v1/audiences', { name: 'held body' });
    expect(a.status).toBe(201);
    const other = await keyWith(['audience'], 'first use of another');
    const lines: string[] = [];
    for (let i = 1; i <= 60_000; i++) lines.push(`{"user_id":"h${i}","address":"h${i}@example.test","attrs":{"n":${i}}}`);
    const r = await other.api.importRecipients(a.body.id, lines.join('\n'));
    expect(r.status, JSON.stringify(r.body).slice(0, 300)).toBe(200);
    expect(r.body).toMatchObject({ imported: 60_000, rejected_count: 0 });
    // refused without reading the body: the connection is answered and the next request served
    const send = await keyWith(['send']);
    const refused = await send.api.call('POST', `/v1/audiences/${a.body.id}/recipients`, lines.join('\n'), {
      'content-type': 'application/x-ndjson',
    });
    expect(refused.body).toMatchObject({ code: 'FORBIDDEN', scope: 'audience' });
  });

  it('pages the trail newest first by id, and refuses bad parameters naming them', async () => {
    const all = (await audit('limit=500')).items;
    expect(all.length).toBeGreaterThan(10);
    const seen: number[] = [];
    let before: number | null = null;
    for (let pages = 0; pages < 100; pages++) {
      const page: any = await audit(`limit=3${before === null ? '' : `&before=${before}`}`);
      seen.push(...page.items.map((i: any) => i.id));
      expect(page.items.length).toBeLessThanOrEqual(3);
      if (page.next_before === null) break;
      expect(page.next_before).toBe(page.items[2].id);
      before = page.next_before;
    }
    expect(seen).toEqual(all.map((i: any) => i.id));
    for (const [query, field] of [
      ['limit=0', 'limit'],
      ['limit=501', 'limit'],
      ['before=abc', 'before'],
      ['campaign_id=-1', 'campaign_id'],
    ]) {
      expect((await admin.call('GET', `/v1/audit?${query}`)).body, query).toMatchObject({ code: 'BAD_REQUEST', field });
    }
    // read is enough, send is not
    expect((await (await keyWith(['read'])).api.call('GET', '/v1/audit')).status).toBe(200);
    expect((await (await keyWith(['send'])).api.call('GET', '/v1/audit')).body).toMatchObject({ scope: 'read' });
  });

  it('answers every response with an x-request-id: the client one when sane, else a new one', async () => {
    for (const [method, p, auth] of [
      ['GET', '/v1/not-a-route', true],
      ['GET', '/v1/campaigns', false],
      ['GET', '/healthz', false],
      ['GET', '/t/forged', false],
      ['GET', '/v1/campaigns', true],
    ] as const) {
      const headers: Record<string, string> = auth ? { authorization: `Bearer ${admin.key}` } : {};
      const mine = await fetch(`${admin.base}${p}`, { method, headers: { ...headers, 'x-request-id': 'trace-42' } });
      expect(mine.headers.get('x-request-id'), p).toBe('trace-42');
      const none = await fetch(`${admin.base}${p}`, { method, headers });
      expect(none.headers.get('x-request-id'), p).toMatch(/^[0-9a-f-]{36}$/);
      const insane = await fetch(`${admin.base}${p}`, { method, headers: { ...headers, 'x-request-id': 'a b;c'.repeat(40) } });
      expect(insane.headers.get('x-request-id'), p).toMatch(/^[0-9a-f-]{36}$/);
    }
  });
});

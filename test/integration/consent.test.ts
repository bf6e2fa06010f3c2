import type { ChildProcess } from 'node:child_process';
import { createServer, type Server } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Herald } from '../../src/main.js';
import { tokenSecret } from '../../src/config.js';
import { unsubscribeToken } from '../../src/domain/tokens.js';
import { Api, apiFor, createNamespace, eventCounts, startTestHerald, API_KEY, type Namespace } from '../helpers/herald.js';
import { spawnHerald } from '../helpers/child-herald.js';
import { listenLocal } from '../helpers/local-http.js';
import { WsClient, type Frame } from '../helpers/ws-client.js';

interface Message {
  user_id: string;
  unsubscribe_url: string;
}

const OUTCOMES = ['delivered', 'failed', 'skipped', 'suppressed', 'capped', 'aborted', 'pending'] as const;
const balanced = (c: Record<string, unknown>): boolean => OUTCOMES.reduce((s, k) => s + Number(c[k] ?? 0), 0) === Number(c.total ?? 0);
const ndjson = { 'content-type': 'application/x-ndjson' };

describe('consent: suppression lists, one-click unsubscribe, frequency caps', () => {
  let ns: Namespace;
  let herald: Herald;
  let api: Api;
  let sink: Server;
  let sinkUrl: string;
  /** user id → when each message to it arrived */
  const received = new Map<string, number[]>();
  const firstMessages: Message[] = [];
  let child: ChildProcess | undefined;

  beforeAll(async () => {
    sink = createServer((req, res) => {
      let data = '';
      req.on('data', (d: Buffer) => (data += d.toString()));
      req.on('end', () => {
        const body = JSON.parse(data) as { messages: Message[] };
        const now = Date.now();
        for (const m of body.messages) {
          if (firstMessages.length < 5) firstMessages.push(m);
          const at = received.get(m.user_id) ?? [];
          at.push(now);
          received.set(m.user_id, at);
        }
        res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
      });
    });
    sinkUrl = await listenLocal(sink);
    ns = await createNamespace();
    herald = await startTestHerald(ns);
    api = apiFor(herald);
  });

  afterAll(async () => {
    if (child && child.exitCode === null) {
      const exited = new Promise((r) => child!.once('exit', r));
      child.kill('SIGTERM');
      await exited;
    }
    await herald?.stop();
    await ns?.drop();
    sink?.close();
  });

  it('takes bulk suppressions with bad lines (line numbers; the rest kept), lists and lifts them', async () => {
    const body = [
      '{"user_id":"b1"}',
      '{"user_id":"b2","topic":"news","reason":"asked"}',
      'not json',
      '',
      '{"user_id":""}',
      '{"user_id":"b3","topic":"bad topic"}',
      '{"user_id":"b4","reason":5}',
      '[1]',
      '{"user_id":"b2","topic":"news","reason":"asked again"}',
      '{"user_id":"b2"}',
    ].join('\n');
    const r = await api.call('PUT', '/v1/suppressions', body, ndjson);
    expect(r.status).toBe(200);
    expect(r.body).toMatchObject({ accepted: 4, rejected_count: 5, total: 9 });
    expect(r.body.rejected.map((x: { line: number }) => x.line)).toEqual([3, 5, 6, 7, 8]);
    expect(r.body.rejected[0].error).toMatch(/JSON/);
    expect(r.body.rejected[2].error).toMatch(/^topic/);
    expect(r.body.rejected[3].error).toMatch(/^reason/);
    const b2 = await api.call('GET', '/v1/users/b2/suppressions');
    expect(b2.body.suppressions).toEqual([
      { topic: null, reason: null, created_at: expect.any(String) },
      { topic: 'news', reason: 'asked again', created_at: expect.any(String) },
    ]);
    const del = await api.call('DELETE', '/v1/suppressions', '{"user_id":"b2","topic":"news"}\n{"nope":1}\n', ndjson);
    expect(del.body).toMatchObject({ accepted: 1, rejected_count: 1, rejected: [{ line: 2, error: expect.stringMatching(/^user_id/) }] });
    expect((await api.call('GET', '/v1/users/b2/suppressions')).body.suppressions).toEqual([
      { topic: null, reason: null, created_at: expect.any(String) },
    ]);
    expect((await api.call('PUT', '/v1/suppressions', '{}', { 'content-type': 'application/json' })).status).toBe(415);
    expect((await new Api(api.base, 'wrong-key-000000').call('PUT', '/v1/suppressions', '', ndjson)).status).toBe(401);
  });

  it('validates topics, caps, and a campaign’s topic and priority, naming the field', async () => {
    const bad = await api.call('PUT', '/v1/topics/news', { cap: { max: 0, window_s: 'x' } });
    expect(bad.status).toBe(400);
    expect(bad.body.fields.map((f: { field: string }) => f.field)).toEqual(['cap.max', 'cap.window_s']);
    expect((await api.call('PUT', '/v1/topics/bad%20topic', { cap: null })).body.field).toBe('topic');
    expect((await api.call('PUT', '/v1/topics/news', {})).body.field).toBe('cap');
    expect((await api.call('GET', '/v1/topics/unknown')).status).toBe(404);
    const ok = await api.call('PUT', '/v1/topics/news', { cap: null });
    expect(ok.body).toMatchObject({ topic: 'news', cap: null });
    const audienceId = await api.audience(3, 'v');
    const c = await api.call('POST', '/v1/campaigns', {
      name: 'x',
      audience_id: audienceId,
      channel: { type: 'null' },
      content: { title: 't', body: 'b' },
      topic: 'no spaces please',
      priority: 'urgent',
    });
    expect(c.status).toBe(400);
    expect(c.body.fields.map((f: { field: string }) => f.field)).toEqual(['topic', 'priority']);
  });

  it('withholds the global and the topic list at send time; critical bypasses the topic list only; the equation holds', async () => {
    const n = 1000;
    const audienceId = await api.audience(n, 's');
    const lines: string[] = [];
    for (let i = 1; i <= 100; i++) lines.push(JSON.stringify({ user_id: `s${i * 10}` }));
    for (let i = 1; i <= 50; i++) lines.push(JSON.stringify({ user_id: `s${i * 10 - 5}`, topic: 'news' }));
    lines.push(JSON.stringify({ user_id: 's10', topic: 'news' }));
    expect((await api.call('PUT', '/v1/suppressions', lines.join('\n'), ndjson)).body.accepted).toBe(151);
    const normal = await api.nullCampaign(audienceId, { topic: 'news', chunk_size: 50 });
    const critical = await api.nullCampaign(audienceId, { topic: 'news', priority: 'critical', chunk_size: 50 });
    const plain = await api.nullCampaign(audienceId, { chunk_size: 50 });
    for (const id of [normal, critical, plain]) await api.call('POST', `/v1/campaigns/${id}/start`);
    const [a, b, c] = await Promise.all([normal, critical, plain].map((id) => api.waitForStatus(id, ['completed'])));
    expect(a).toMatchObject({ topic: 'news', priority: 'normal', delivered: 850, suppressed: 150, capped: 0, pending: 0 });
    expect(b).toMatchObject({ priority: 'critical', delivered: 900, suppressed: 100 });
    expect(c).toMatchObject({ topic: null, delivered: 900, suppressed: 100 });
    for (const v of [a, b, c]) expect(balanced(v)).toBe(true);
    const rows = await herald.ch.rows<{ error: string; n: string }>(
      `SELECT error, count() AS n FROM message_events WHERE campaign_id = ${normal} AND kind = 'suppressed' GROUP BY error ORDER BY error`,
    );
    expect(rows.map((r) => [r.error, Number(r.n)])).toEqual([
      ['on the global suppression list', 100],
      ['on the suppression list of topic news', 50],
    ]);
  });

  it('unsubscribes in one POST from the message’s unsubscribe_url: nothing after it; GET only shows the form; forged tokens record nothing', async () => {
    const n = 3000;
    const audienceId = await api.audience(n, 'w');
    const id = await api.webhookCampaign(audienceId, sinkUrl, { rate_limit: 1000, topic: 'weekly' });
    expect(id).toBeGreaterThan(0);
    const ws = await WsClient.open(`ws://127.0.0.1:${herald.port}/v1/ws`, { authorization: `Bearer ${API_KEY}` });
    ws.send({ subscribe: String(id) });
    await api.call('POST', `/v1/campaigns/${id}/start`);
    for (let i = 0; i < 100 && firstMessages.length === 0; i++) await new Promise((r) => setTimeout(r, 50));
    const url = new URL(firstMessages[0]!.unsubscribe_url);
    expect(url.pathname).toMatch(/^\/u\/s2\./);
    const base = `http://127.0.0.1:${herald.port}`;
    // A mail scanner's GET changes nothing.
    const page = await fetch(`${base}${url.pathname}`);
    expect(page.status).toBe(200);
    expect(await page.text()).toContain('<form method="post"');
    expect((await api.call('GET', `/v1/users/${firstMessages[0]!.user_id}/suppressions`)).body.suppressions).toEqual([]);
    // Forged and altered tokens: 400, nothing recorded.
    const secret = tokenSecret(herald.config);
    const genuine = unsubscribeToken(secret, id, 'w2999', 'weekly');
    const forged = [
      unsubscribeToken('another-secret-entirely', id, 'w2999', ''),
      genuine.slice(0, -2) + (genuine.endsWith('AA') ? 'BB' : 'AA'),
      genuine.replace('s1.', 't1.'),
      'garbage',
    ];
    for (const t of forged) {
      const r = await fetch(`${base}/u/${encodeURIComponent(t)}`, { method: 'POST' });
      expect(r.status).toBe(400);
    }
    expect((await api.call('GET', '/v1/users/w2999/suppressions')).body.suppressions).toEqual([]);
    // Users later in the audience unsubscribe mid-campaign: an empty body, and the RFC 8058 form body.
    const later = ['w2999', 'w2500', 'w2000'];
    const answeredAt = new Map<string, number>();
    for (const [i, u] of later.entries()) {
      const t = unsubscribeToken(secret, id, u, i === 0 ? '' : 'weekly');
      const r = await fetch(`${base}/u/${t}`, {
        method: 'POST',
        ...(i === 1 ? { body: 'List-Unsubscribe=One-Click', headers: { 'content-type': 'application/x-www-form-urlencoded' } } : {}),
      });
      expect(r.status).toBe(200);
      answeredAt.set(u, Date.now());
      expect((await fetch(`${base}/u/${t}`, { method: 'POST' })).status).toBe(200); // idempotent
    }
    const one = await fetch(`${base}${url.pathname}`, { method: 'POST', body: 'List-Unsubscribe=One-Click' });
    expect(one.status).toBe(200);
    const mid = await api.call('GET', `/v1/campaigns/${id}`);
    expect(mid.body.status).toBe('sending');
    expect(balanced(mid.body)).toBe(true);
    const done = await api.waitForStatus(id, ['completed']);
    await new Promise((r) => setTimeout(r, 1500));
    ws.ws.close();
    for (const u of later) expect(received.get(u) ?? [], u).toEqual([]);
    expect(done).toMatchObject({ suppressed: 3, delivered: n - 3, pending: 0 });
    expect(balanced(done)).toBe(true);
    const frames = ws.frames.map((f) => f.frame).filter((f: Frame) => f.campaign_id === id);
    expect(frames.length).toBeGreaterThan(2);
    for (const f of frames) expect(balanced(f), JSON.stringify(f)).toBe(true);
    expect((await api.call('GET', `/v1/users/${firstMessages[0]!.user_id}/suppressions`)).body.suppressions).toMatchObject([
      { topic: 'weekly', reason: `unsubscribed from campaign ${id}` },
    ]);
  });

  it('caps exactly with two campaigns in two processes, and rebuilds the cap from ClickHouse once Redis lost it', async () => {
    const n = 4000;
    const audienceId = await api.audience(n, 'k');
    expect((await api.call('PUT', '/v1/topics/promo', { cap: { max: 1, window_s: 86400 } })).status).toBe(200);
    child = await spawnHerald(ns, []);
    const first = await api.nullCampaign(audienceId, { topic: 'promo', chunk_size: 50 });
    const second = await api.nullCampaign(audienceId, { topic: 'promo', chunk_size: 50 });
    await Promise.all([first, second].map((id) => api.call('POST', `/v1/campaigns/${id}/start`)));
    const [a, b] = await Promise.all([first, second].map((id) => api.waitForStatus(id, ['completed'])));
    expect(a.delivered + b.delivered).toBe(n);
    expect(a.capped + b.capped).toBe(n);
    for (const v of [a, b]) expect(balanced(v)).toBe(true);
    const both = await herald.ch.rows<{ u: string }>(
      `SELECT uniqExact(user_id) AS u FROM message_events WHERE campaign_id IN (${first}, ${second}) AND kind = 'delivered'`,
    );
    expect(Number(both[0]!.u)).toBe(n);
    // Redis loses the caps: the next campaign finds every user's message of the day in ClickHouse.
    const keys = await herald.redis.keys(`${ns.config.redisPrefix}:{cap:promo}:*`);
    expect(keys.length).toBeGreaterThan(0);
    await herald.redis.del(...keys);
    const third = await api.nullCampaign(audienceId, { topic: 'promo', chunk_size: 500 });
    await api.call('POST', `/v1/campaigns/${third}/start`);
    const c = await api.waitForStatus(third, ['completed']);
    expect(c).toMatchObject({ delivered: 0, capped: n });
    expect(await eventCounts(herald, third, 'capped')).toEqual({ n, u: n });
  });
});

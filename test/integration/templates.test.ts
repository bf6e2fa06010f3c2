import { createServer, type Server } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Api, eventCounts, useHerald } from '../helpers/herald.js';
import { listenLocal } from '../helpers/local-http.js';

interface Message {
  user_id: string;
  address: string | null;
  title: string;
  body: string;
  data?: Record<string, unknown>;
  idempotency_key: string;
  test?: boolean;
}

/** `t1..tn`; every third has no first_name, every fifth no address; all have a city. */
function lines(n: number, prefix: string): string {
  const out: string[] = [];
  for (let i = 1; i <= n; i++) {
    const attrs: Record<string, unknown> = { city: `C${i % 4}`, plan: i % 2 === 0 ? 'pro' : 'free', unused: 'x'.repeat(50) };
    if (i % 3 !== 0) attrs.first_name = `N${i}`;
    out.push(JSON.stringify({ user_id: `${prefix}${i}`, ...(i % 5 === 0 ? {} : { address: `${prefix}${i}@x.test` }), attrs }));
  }
  return out.join('\n');
}

describe('templates', () => {
  const h = useHerald({ webhookBatchSize: 50 });
  let receiver: Server;
  let url: string;
  const received = new Map<string, Message[]>();

  beforeAll(async () => {
    receiver = createServer((req, res) => {
      let text = '';
      req.on('data', (d: Buffer) => (text += d.toString()));
      req.on('end', () => {
        const body = JSON.parse(text) as { campaign_id: number; messages: Message[] };
        const key = String(body.campaign_id);
        received.set(key, [...(received.get(key) ?? []), ...body.messages]);
        res.writeHead(200).end('{}');
      });
    });
    url = await listenLocal(receiver);
  });
  afterAll(() => receiver?.close());

  async function audience(n: number, prefix: string): Promise<number> {
    const a = await h.api.call('POST', '/v1/audiences', { name: `tpl-${prefix}` });
    const r = await h.api.importRecipients(a.body.id, lines(n, prefix));
    expect(r.body.imported).toBe(n);
    return a.body.id as number;
  }

  const content = {
    title: 'Hi {{ recipient.attrs.first_name }}',
    body: '{{ recipient.attrs.first_name }} in {{ recipient.attrs.city }} on {{ recipient.attrs.plan | upcase }}: {{ variables.promo }} ({{ campaign.name }})',
    data: { link: 'https://x.test/{{ recipient.user_id }}?c={{ campaign.id }}', n: 1 },
  };

  it('refuses a template that does not parse with 400 naming the field and position', async () => {
    const aud = await audience(3, 'bad');
    const r = await h.api.call('POST', '/v1/campaigns', {
      name: 'bad',
      audience_id: aud,
      channel: { type: 'null' },
      content: { title: 'ok', body: 'x\n{% for %}', data: { a: '{% include "x" %}' } },
      missing: 'sometimes',
    });
    expect(r.status).toBe(400);
    expect(r.body.fields).toEqual([
      { field: 'missing', error: 'must be "empty" or "skip"' },
      { field: 'content.body', error: expect.stringMatching(/line 2 col 1$/) },
      { field: 'content.data.a', error: expect.stringContaining('{% include %} is not allowed') },
    ]);
  });

  it('webhook: renders per message; missing "empty" renders nothing', async () => {
    const n = 300;
    const aud = await audience(n, 'e');
    const id = await h.api.webhookCampaign(aud, url, {
      name: 'Spring',
      content,
      variables: { promo: 'P10' },
      channel: { type: 'webhook', url, tracking: false },
    });
    await h.api.call('POST', `/v1/campaigns/${id}/start`);
    const done = await h.api.waitForStatus(id, ['completed']);
    expect(done).toMatchObject({ total: n, delivered: n, skipped: 0, failed: 0, missing: 'empty', variables: { promo: 'P10' } });
    const msgs = received.get(String(id))!;
    expect(msgs).toHaveLength(n);
    const byUser = new Map(msgs.map((m) => [m.user_id, m]));
    expect(byUser.get('e2')).toEqual({
      user_id: 'e2',
      address: 'e2@x.test',
      title: 'Hi N2',
      body: 'N2 in C2 on PRO: P10 (Spring)',
      data: { link: `https://x.test/e2?c=${id}`, n: 1 },
      idempotency_key: `${id}:e2`,
      unsubscribe_url: expect.stringMatching(/\/u\/s2\./) as unknown,
    });
    expect(byUser.get('e3')).toMatchObject({ title: 'Hi ', body: ' in C3 on FREE: P10 (Spring)' });
  });

  it('webhook: missing "skip" withholds recipients lacking a value, with the reason, and the counts add up', async () => {
    const n = 300;
    const aud = await audience(n, 's');
    const id = await h.api.webhookCampaign(aud, url, { name: 'Spring', content, variables: { promo: 'P10' }, missing: 'skip' });
    await h.api.call('POST', `/v1/campaigns/${id}/start`);
    const done = await h.api.waitForStatus(id, ['completed']);
    const skipped = n / 3;
    expect(done).toMatchObject({ total: n, delivered: n - skipped, skipped, failed: 0, pending: 0 });
    const msgs = received.get(String(id))!;
    expect(msgs).toHaveLength(n - skipped);
    expect(msgs.some((m) => m.user_id === 's3')).toBe(false);
    const rows = await h.herald.ch.rows<{ user_id: string; error: string }>(
      `SELECT user_id, error FROM message_events WHERE campaign_id = ${id} AND kind = 'skipped' ORDER BY user_id LIMIT 1`,
    );
    expect(rows[0]).toEqual({ user_id: 's102', error: 'missing recipient.attrs.first_name' });
    expect((await eventCounts(h.herald, id, 'skipped')).u).toBe(skipped);
  });

  it("inbox: renders when the inbox is read, from that user's attributes; skipped users see nothing", async () => {
    const n = 30;
    const aud = await audience(n, 'i');
    const inbox = { type: 'inbox' };
    const plain = await h.api.nullCampaign(aud, { name: 'Plain', channel: inbox, content: { title: 'Plain', body: 'for all' } });
    const skip = await h.api.nullCampaign(aud, { name: 'Skip', channel: inbox, content, variables: { promo: 'P1' }, missing: 'skip' });
    const empty = await h.api.nullCampaign(aud, {
      name: 'Empty',
      channel: inbox,
      content: { title: '{{ recipient.attrs.first_name }}!', body: 'b' },
    });
    for (const id of [plain, skip, empty]) {
      await h.api.call('POST', `/v1/campaigns/${id}/start`);
      await h.api.waitForStatus(id, ['completed']);
    }
    expect(await h.api.call('GET', `/v1/campaigns/${skip}`)).toMatchObject({ body: { delivered: n - n / 3, skipped: n / 3, pending: 0 } });
    const i2 = (await h.api.call('GET', '/v1/users/i2/inbox')).body.messages;
    expect(i2.map((m: { campaign_id: number }) => m.campaign_id)).toEqual([empty, skip, plain]);
    expect(i2[0]).toMatchObject({ title: 'N2!', body: 'b' });
    expect(i2[1]).toMatchObject({
      title: 'Hi N2',
      body: 'N2 in C2 on PRO: P1 (Skip)',
      data: { link: `https://x.test/i2?c=${skip}`, n: 1 },
    });
    expect(i2[2]).toEqual(expect.objectContaining({ title: 'Plain', body: 'for all' }));
    expect(i2[2].data).toBeUndefined();
    const i3 = (await h.api.call('GET', '/v1/users/i3/inbox')).body.messages;
    expect(i3.map((m: { campaign_id: number }) => m.campaign_id)).toEqual([empty, plain]);
    expect(i3[0]).toMatchObject({ title: '!' });
  });

  it('preview renders for real recipients: chosen ones or a sample, skips and unknown ids named', async () => {
    const aud = await audience(12, 'p');
    const id = await h.api.webhookCampaign(aud, url, { name: 'Prev', content, variables: { promo: 'P2' }, missing: 'skip' });
    const chosen = await h.api.call('POST', `/v1/campaigns/${id}/preview`, { user_ids: ['p2', 'p3'] });
    expect(chosen).toMatchObject({
      status: 200,
      body: {
        previews: [
          { user_id: 'p2', title: 'Hi N2', body: 'N2 in C2 on PRO: P2 (Prev)', data: { link: `https://x.test/p2?c=${id}`, n: 1 } },
          { user_id: 'p3', skipped: 'missing recipient.attrs.first_name' },
        ],
      },
    });
    const sample = await h.api.call('POST', `/v1/campaigns/${id}/preview`, { sample: 4 });
    expect(sample.body.previews.map((p: { user_id: string }) => p.user_id)).toEqual(['p1', 'p2', 'p3', 'p4']);
    const unknown = await h.api.call('POST', `/v1/campaigns/${id}/preview`, { user_ids: ['p1', 'nobody', 'x9'] });
    expect(unknown).toMatchObject({ status: 400, body: { field: 'user_ids', error: expect.stringContaining('nobody, x9') } });
    expect((await h.api.call('POST', `/v1/campaigns/${id}/preview`, { sample: 1000 })).status).toBe(400);
    // nothing was sent or stored
    expect(received.get(String(id))).toBeUndefined();
    expect(await h.api.call('GET', `/v1/campaigns/${id}`)).toMatchObject({ body: { status: 'draft', delivered: 0, skipped: 0 } });
  });

  it('previews a campaign not saved, and samples a segment campaign from its segment', async () => {
    const aud = await audience(12, 'q');
    const before = (await h.api.call('GET', '/v1/campaigns?limit=500')).body.campaigns.length;
    const draft = await h.api.call('POST', '/v1/previews', {
      audience_id: aud,
      content,
      variables: { promo: 'D' },
      missing: 'skip',
      sample: 3,
    });
    expect(draft).toMatchObject({
      status: 200,
      body: {
        previews: [
          { user_id: 'q1', title: 'Hi N1', body: 'N1 in C1 on FREE: D (preview)' },
          { user_id: 'q2', title: 'Hi N2' },
          { user_id: 'q3', skipped: 'missing recipient.attrs.first_name' },
        ],
      },
    });
    // The same 400 as creation, naming the field and the position; and nothing was created.
    const bad = await h.api.call('POST', '/v1/previews', { audience_id: aud, content: { title: 'ok', body: 'Hi {{ recipient.user_id ' } });
    expect(bad.status).toBe(400);
    expect(bad.body.field).toBe('content.body');
    expect((await h.api.call('POST', '/v1/previews', { content })).body.field).toBe('audience_id');
    expect((await h.api.call('GET', '/v1/campaigns?limit=500')).body.campaigns.length).toBe(before);

    // A segment (plan = pro: the even users): the sample is its first recipients, saved or not.
    const seg = (await h.api.call('POST', '/v1/segments', { name: 'pro', audience_id: aud, filter: { attr: 'plan', eq: 'pro' } })).body.id;
    const unsaved = await h.api.call('POST', '/v1/previews', { audience_id: aud, segment_id: seg, content, sample: 3 });
    expect(unsaved.body.previews.map((p: { user_id: string }) => p.user_id)).toEqual(['q2', 'q4', 'q6']);
    const id = await h.api.webhookCampaign(aud, url, { content, segment_id: seg });
    const saved = await h.api.call('POST', `/v1/campaigns/${id}/preview`, { sample: 3 });
    expect(saved.body.previews.map((p: { user_id: string }) => p.user_id)).toEqual(['q2', 'q4', 'q6']);
    const inline = await h.api.call('POST', '/v1/previews', { audience_id: aud, filter: { attr: 'city', eq: 'C3' }, content, sample: 2 });
    expect(inline.body.previews.map((p: { user_id: string }) => p.user_id)).toEqual(['q3', 'q7']);
    const other = await audience(2, 'qo');
    expect((await h.api.call('POST', '/v1/previews', { audience_id: other, segment_id: seg, content })).body.field).toBe('segment_id');
  });

  it('test sends go to those recipients only, as test events no campaign count includes', async () => {
    const aud = await audience(20, 'x');
    const id = await h.api.webhookCampaign(aud, url, { name: 'Test', content, variables: { promo: 'P3' }, missing: 'skip' });
    const r = await h.api.call('POST', `/v1/campaigns/${id}/test`, { user_ids: ['x1', 'x3', 'x4'] });
    expect(r.status).toBe(200);
    expect(r.body.results).toEqual([
      expect.objectContaining({ user_id: 'x1', outcome: 'delivered', error: null, title: 'Hi N1' }),
      { user_id: 'x3', outcome: 'skipped', error: 'missing recipient.attrs.first_name' },
      expect.objectContaining({ user_id: 'x4', outcome: 'delivered', body: 'N4 in C0 on PRO: P3 (Test)' }),
    ]);
    const msgs = received.get(String(id))!;
    expect(msgs.map((m) => m.user_id)).toEqual(['x1', 'x4']);
    expect(msgs[0]).toMatchObject({ test: true, idempotency_key: `${id}:x1:${r.body.test_id}` });
    expect(msgs[0]).not.toHaveProperty('tracking_url');
    expect((await h.api.call('POST', `/v1/campaigns/${id}/test`, { user_ids: ['x1', 'zz'] })).status).toBe(400);
    const rows = await h.herald.ch.rows<{ user_id: string; kind: string }>(
      `SELECT user_id, toString(kind) AS kind FROM message_tests WHERE campaign_id = ${id} ORDER BY user_id`,
    );
    expect(rows).toEqual([
      { user_id: 'x1', kind: 'delivered' },
      { user_id: 'x3', kind: 'skipped' },
      { user_id: 'x4', kind: 'delivered' },
    ]);
    // the campaign itself: untouched, and its counts see none of it, before and after its real send
    const before = await h.api.call('GET', `/v1/campaigns/${id}`);
    expect(before.body).toMatchObject({ status: 'draft', sent: 0, delivered: 0, failed: 0, skipped: 0 });
    await h.api.call('POST', `/v1/campaigns/${id}/start`);
    const done = await h.api.waitForStatus(id, ['completed']);
    expect(done).toMatchObject({ total: 20, delivered: 14, skipped: 6, failed: 0, pending: 0 });
    const stats = await h.api.call('GET', `/v1/campaigns/${id}/stats`);
    expect(stats.body.totals).toMatchObject({ total: 20, delivered: 14, skipped: 6 });
    expect((await eventCounts(h.herald, id)).n).toBe(14);
  });
  it("inbox test sends show in those users' inboxes only, marked as tests, counted nowhere", async () => {
    const aud = await audience(6, 'v');
    const id = await h.api.nullCampaign(aud, { name: 'Draft', channel: { type: 'inbox' }, content, variables: { promo: 'P5' } });
    const asUser = async (u: string): Promise<Api> => new Api(h.api.base, (await h.api.call('POST', `/v1/users/${u}/token`)).body.token);
    const [v1, v2, v4] = await Promise.all(['v1', 'v2', 'v4'].map(asUser));
    const inboxOf = async (api: Api, u: string, query = ''): Promise<any> => (await api.call('GET', `/v1/users/${u}/inbox${query}`)).body;
    const unreadOf = async (api: Api, u: string): Promise<number> =>
      (await api.call('GET', `/v1/users/${u}/inbox/unread_count`)).body.unread;

    const r = await h.api.call('POST', `/v1/campaigns/${id}/test`, { user_ids: ['v1', 'v2'] });
    expect(r.body.results.map((x: { outcome: string }) => x.outcome)).toEqual(['delivered', 'delivered']);
    const testId = r.body.test_id as string;
    // a webhook campaign's test to the same user is no inbox item
    const hook = await h.api.webhookCampaign(aud, url, { content: { title: 'hook', body: 'b' } });
    expect((await h.api.call('POST', `/v1/campaigns/${hook}/test`, { user_ids: ['v1'] })).status).toBe(200);

    const draft1 = await inboxOf(v1!, 'v1');
    expect(draft1.messages).toEqual([]);
    expect(draft1.tests).toEqual([
      {
        campaign_id: id,
        test: true,
        test_id: testId,
        title: 'Hi N1',
        body: 'N1 in C1 on FREE: P5 (Draft)',
        data: { link: `https://x.test/v1?c=${id}`, n: 1 },
        delivered_at: expect.any(String),
      },
    ]);
    expect(Math.abs(Date.parse(draft1.tests[0].delivered_at) - Date.now())).toBeLessThan(60_000);
    expect((await inboxOf(v2!, 'v2')).tests).toEqual([
      expect.objectContaining({ campaign_id: id, test: true, test_id: testId, title: 'Hi N2', body: 'N2 in C2 on PRO: P5 (Draft)' }),
    ]);
    expect(await inboxOf(v4!, 'v4')).toEqual({ messages: [], next_before: null, tests: [] });
    // another user's token still cannot look
    expect((await v4!.call('GET', '/v1/users/v1/inbox')).status).toBe(403);
    expect(await unreadOf(v1!, 'v1')).toBe(0);
    // a draft's test item cannot be read: nothing reaches message_events
    expect((await v1!.call('POST', `/v1/users/v1/inbox/${id}/read`)).status).toBe(404);
    expect(await h.api.call('GET', `/v1/campaigns/${id}`)).toMatchObject({ body: { status: 'draft', delivered: 0, read: 0 } });
    expect((await eventCounts(h.herald, id)).n).toBe(0);
    expect((await eventCounts(h.herald, id, 'read')).n).toBe(0);

    // The real send: the real item in `messages`, the test item still apart in `tests`.
    await h.api.call('POST', `/v1/campaigns/${id}/start`);
    expect(await h.api.waitForStatus(id, ['completed'])).toMatchObject({ total: 6, delivered: 6, read: 0 });
    const real1 = await inboxOf(v1!, 'v1');
    expect(real1.messages).toEqual([
      expect.objectContaining({ campaign_id: id, title: 'Hi N1', body: 'N1 in C1 on FREE: P5 (Draft)', read: false }),
    ]);
    expect(real1.messages[0]).not.toHaveProperty('test');
    expect(real1.tests).toEqual(draft1.tests);
    expect(await unreadOf(v1!, 'v1')).toBe(1);
    expect((await inboxOf(v4!, 'v4')).messages.map((m: { campaign_id: number }) => m.campaign_id)).toEqual([id]);
    expect((await inboxOf(v4!, 'v4')).tests).toEqual([]);
    // a later page carries no tests (they are not paginated)
    expect((await inboxOf(v1!, 'v1', `?before=${id + 1}`)).tests).toEqual([]);
    // the campaign's counts: its real send only
    expect(await h.api.call('GET', `/v1/campaigns/${id}/stats`)).toMatchObject({ body: { totals: { total: 6, delivered: 6 } } });
    expect((await eventCounts(h.herald, id)).n).toBe(6);
  });
});

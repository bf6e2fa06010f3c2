import { describe, expect, it } from 'vitest';
import { API_KEY, startTestHerald, useHerald } from '../helpers/herald.js';
import { WsClient as Client } from '../helpers/ws-client.js';

describe('live progress over WebSockets', () => {
  const ctx = useHerald({ wsTickMs: 250 });
  const wsUrl = (q = ''): string => `ws://127.0.0.1:${ctx.herald.port}/v1/ws${q}`;

  it('refuses unauthenticated upgrades, and takes the admin key or a connect token', async () => {
    await expect(Client.open(wsUrl())).rejects.toThrow(/refused/);
    await expect(Client.open(wsUrl('?token=w1.9999999999.forged'))).rejects.toThrow(/refused/);
    const byKey = await Client.open(wsUrl(), { authorization: `Bearer ${API_KEY}` });
    const t = await ctx.api.call('POST', '/v1/ws/token');
    expect(t.body.token).toMatch(/^w1\./);
    const byToken = await Client.open(wsUrl(`?token=${t.body.token}`));
    // Bad messages get an error frame; the connection stays and still works.
    byToken.send('not json');
    byToken.send({ subscribe: 'abc' });
    byToken.send({ hello: 1 });
    await byToken.waitFor((f) => f.error === 'message: malformed JSON');
    await byToken.waitFor((f) => /subscribe: must be a campaign id/.test(f.error ?? ''));
    await byToken.waitFor((f) => /exactly one of/.test(f.error ?? ''));
    byToken.send({ subscribe: '987654321' });
    await byToken.waitFor((f) => f.error === 'campaign 987654321 not found');
    expect(byToken.closed).toBeNull();
    byKey.ws.close();
    byToken.ws.close();
  });

  it('streams a 100,000-recipient campaign: counts never go down, a pause shows within a second, the last frame equals GET', async () => {
    const { api } = ctx;
    const n = 100_000;
    const audienceId = await api.audience(n, 'ws');
    // Rate-limited so it runs for a few seconds.
    const id = await api.nullCampaign(audienceId, { name: 'live', rate_limit: 25_000, chunk_size: 1_000 });
    const json = await Client.open(wsUrl(), { authorization: `Bearer ${API_KEY}` });
    const packed = await Client.open(wsUrl('?format=msgpack'), { authorization: `Bearer ${API_KEY}` });
    const all = await Client.open(wsUrl(), { authorization: `Bearer ${API_KEY}` });
    json.send({ subscribe: String(id) });
    packed.send({ subscribe: id });
    all.send({ subscribe: '*' });
    await json.waitFor((f) => f.campaign_id === id && f.status === 'draft');
    await api.call('POST', `/v1/campaigns/${id}/start`);
    await json.waitFor((f) => f.campaign_id === id && (f.sent ?? 0) > 20_000);
    const pausedAt = Date.now();
    expect((await api.call('POST', `/v1/campaigns/${id}/pause`)).body.status).toBe('paused');
    const paused = await json.waitFor((f) => f.status === 'paused', 5_000);
    expect(paused.at - pausedAt).toBeLessThan(1_000);
    await api.call('POST', `/v1/campaigns/${id}/resume`);
    await json.waitFor((f) => f.status === 'completed', 60_000);
    const last = json.frames.filter((x) => x.frame.campaign_id === id).at(-1)!.frame;
    const got = (await api.call('GET', `/v1/campaigns/${id}`)).body;
    for (const k of ['status', 'total', 'sent', 'delivered', 'failed', 'aborted', 'pending', 'read', 'unique_readers'])
      expect(last[k]).toEqual(got[k]);
    expect(last).toMatchObject({ status: 'completed', delivered: n, pending: 0 });
    // Counts never go down, in any client, and frames came at least once a second while sending.
    for (const c of [json, packed, all]) {
      const mine = c.frames.map((x) => x.frame).filter((f) => f.campaign_id === id);
      expect(mine.length).toBeGreaterThan(3);
      for (let i = 1; i < mine.length; i++) expect(mine[i]!.sent!).toBeGreaterThanOrEqual(mine[i - 1]!.sent!);
    }
    const sending = json.frames.filter((x) => x.frame.campaign_id === id && x.frame.status === 'sending').map((x) => x.at);
    for (let i = 1; i < sending.length; i++) expect(sending[i]! - sending[i - 1]!).toBeLessThan(1_500);
    const rated = json.frames.find((x) => x.frame.status === 'sending' && Number(x.frame.rate_per_s) > 0);
    expect(rated?.frame.eta_s).toEqual(expect.any(Number));
    // msgpack clients got binary frames with the same fields
    expect(packed.frames.at(-1)!.frame).toMatchObject({ campaign_id: id, status: 'completed', delivered: n });
    // the `*` subscriber saw it too, without naming it
    await all.waitFor((f) => f.campaign_id === id && f.status === 'completed');
    // Unsubscribed: nothing more of it.
    json.send({ unsubscribe: String(id) });
    await new Promise((r) => setTimeout(r, 300));
    const before = json.frames.length;
    await api.call('POST', '/v1/events', [{ campaign_id: id, user_id: 'ws1', kind: 'read' }]);
    await packed.waitFor((f) => f.campaign_id === id && f.read === 1, 5_000);
    expect(json.frames.length).toBe(before);
    for (const c of [json, packed, all]) c.ws.close();
  });

  it('shows a client on a process without dispatchers the progress of campaigns others dispatch', async () => {
    const { api } = ctx;
    // An API-only Herald on the same services: it dispatches nothing itself.
    const front = await startTestHerald(ctx.ns, { workers: 0, wsTickMs: 250 });
    try {
      const audienceId = await api.audience(30_000, 'fr');
      const id = await api.nullCampaign(audienceId, { name: 'elsewhere', rate_limit: 15_000, chunk_size: 1_000 });
      const client = await Client.open(`ws://127.0.0.1:${front.port}/v1/ws`, { authorization: `Bearer ${API_KEY}` });
      client.send({ subscribe: id });
      await client.waitFor((f) => f.campaign_id === id && f.status === 'draft');
      await api.call('POST', `/v1/campaigns/${id}/start`); // through the dispatching process
      await client.waitFor((f) => f.campaign_id === id && f.status === 'sending' && (f.sent ?? 0) > 0, 10_000);
      const done = await client.waitFor((f) => f.campaign_id === id && f.status === 'completed', 30_000);
      expect(done.frame).toMatchObject({ delivered: 30_000, pending: 0 });
      client.ws.close();
    } finally {
      await front.stop();
    }
  });
});

describe('live counters ahead of ClickHouse', () => {
  // The sink holds events for seconds: ClickHouse (and so GET) shows nothing of a sub-batch for that long.
  const ctx = useHerald({ wsTickMs: 250, sinkFlushMs: 4_000, sinkFlushRows: 1_000_000, sinkMaxBufferedRows: 2_000_000 });

  it('shows sends in frames before they reach ClickHouse, and ends on the ClickHouse figures', async () => {
    const { api } = ctx;
    const n = 20_000;
    const audienceId = await api.audience(n, 'lv');
    const id = await api.nullCampaign(audienceId, { name: 'live', rate_limit: 10_000, chunk_size: 1_000 });
    const client = await Client.open(`ws://127.0.0.1:${ctx.herald.port}/v1/ws`, { authorization: `Bearer ${API_KEY}` });
    client.send({ subscribe: id });
    await client.waitFor((f) => f.campaign_id === id && f.status === 'draft');
    await api.call('POST', `/v1/campaigns/${id}/start`);
    const early = await client.waitFor((f) => f.campaign_id === id && (f.sent ?? 0) > 0, 3_000);
    const get = (await api.call('GET', `/v1/campaigns/${id}`)).body;
    expect(get.sent).toBe(0);
    expect(early.frame.delivered).toBe(early.frame.sent);
    const done = await client.waitFor((f) => f.campaign_id === id && f.status === 'completed', 60_000);
    const final = (await api.call('GET', `/v1/campaigns/${id}`)).body;
    expect(done.frame).toMatchObject({ delivered: n, sent: n, pending: 0 });
    for (const k of ['sent', 'delivered', 'failed', 'pending']) expect(done.frame[k]).toEqual(final[k]);
    const mine = client.frames.map((x) => x.frame).filter((f) => f.campaign_id === id);
    for (let i = 1; i < mine.length; i++) expect(mine[i]!.sent!).toBeGreaterThanOrEqual(mine[i - 1]!.sent!);
    client.ws.close();
  });
});

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Herald } from '../../src/main.js';
import { apiFor, createNamespace, startTestHerald, type Api, type Namespace } from '../helpers/herald.js';

describe('a null-channel campaign end to end', () => {
  let ns: Namespace;
  let herald: Herald;
  let api: Api;

  beforeAll(async () => {
    ns = await createNamespace();
    herald = await startTestHerald(ns);
    api = apiFor(herald);
  });

  afterAll(async () => {
    await herald?.stop();
    await ns?.drop();
  });

  it('sends 100,000 recipients exactly once and reports it from ClickHouse', async () => {
    const audienceId = await api.audience(100_000);
    const created = await api.call('POST', '/v1/campaigns', {
      name: 'null 100k',
      audience_id: audienceId,
      channel: { type: 'null' },
      content: { title: 'Hello', body: 'World' },
    });
    expect(created.status).toBe(201);
    expect(created.body.status).toBe('draft');
    const id = created.body.id as number;

    const started = await api.call('POST', `/v1/campaigns/${id}/start`);
    expect(started.status).toBe(200);
    expect(started.body).toEqual({ id, status: 'sending' });

    const done = await api.waitForStatus(id, ['completed', 'failed']);
    expect(done.status).toBe('completed');
    expect(done.total).toBe(100_000);
    expect(done.delivered).toBe(100_000);
    expect(done.sent).toBe(100_000);
    expect(done.failed).toBe(0);
    expect(done.planned_chunks).toBe(200);
    expect(done.started_at).not.toBeNull();
    expect(done.finished_at).not.toBeNull();

    // The raw events: one delivered row per recipient, none twice, none missing.
    const rows = await herald.ch.rows<{ n: string; u: string }>(
      `SELECT count() AS n, uniqExact(user_id) AS u FROM message_events WHERE campaign_id = ${id} AND kind = 'delivered'`,
    );
    expect(Number(rows[0]!.n)).toBe(100_000);
    expect(Number(rows[0]!.u)).toBe(100_000);

    // The stream is gone once the campaign is complete; a second start is refused with the status.
    expect(await herald.redis.exists(`${ns.config.redisPrefix}:{c${id}}:chunks`)).toBe(0);
    const again = await api.call('POST', `/v1/campaigns/${id}/start`);
    expect(again.status).toBe(409);
    expect(again.body.status).toBe('completed');

    const list = await api.call('GET', '/v1/campaigns?status=completed&limit=5');
    expect(list.status).toBe(200);
    expect(list.body.campaigns[0].id).toBe(id);
    expect(list.body.campaigns[0].delivered).toBe(100_000);
  });

  it('cooperates across two dispatcher processes sharing one consumer group', async () => {
    const second = await startTestHerald(ns, { port: 0 });
    try {
      const audienceId = await api.audience(20_000, 'co');
      const id = await api.nullCampaign(audienceId, { chunk_size: 100 });
      await api.call('POST', `/v1/campaigns/${id}/start`);
      const done = await api.waitForStatus(id, ['completed']);
      expect(done.delivered).toBe(20_000);
      const rows = await herald.ch.rows<{ n: string; u: string }>(
        `SELECT count() AS n, uniqExact(user_id) AS u FROM message_events WHERE campaign_id = ${id}`,
      );
      expect(Number(rows[0]!.n)).toBe(20_000);
      expect(Number(rows[0]!.u)).toBe(20_000);
    } finally {
      await second.stop();
    }
  });

  it('starts a scheduled campaign on time without a request, once', async () => {
    const audienceId = await api.audience(5_000, 'sch');
    const at = new Date(Date.now() + 1500);
    const c = await api.call('POST', '/v1/campaigns', {
      name: 'scheduled',
      audience_id: audienceId,
      channel: { type: 'null' },
      content: { title: 't', body: 'b' },
      schedule_at: at.toISOString(),
    });
    expect(c.body.status).toBe('scheduled');
    expect((await api.call('GET', `/v1/campaigns/${c.body.id}`)).body.schedule_at).toBe(at.toISOString());
    await new Promise((r) => setTimeout(r, 500));
    expect((await api.call('GET', `/v1/campaigns/${c.body.id}`)).body.status).toBe('scheduled');
    const done = await api.waitForStatus(c.body.id, ['completed'], 30_000);
    expect(new Date(done.started_at).getTime()).toBeGreaterThanOrEqual(at.getTime() - 1000);
    expect(done.delivered).toBe(5_000);
    // A scheduled campaign can be cancelled before its time.
    const later = await api.call('POST', '/v1/campaigns', {
      name: 'cancelled before its time',
      audience_id: audienceId,
      channel: { type: 'null' },
      content: { title: 't', body: 'b' },
      schedule_at: new Date(Date.now() + 60_000).toISOString(),
    });
    expect((await api.call('POST', `/v1/campaigns/${later.body.id}/cancel`)).body.status).toBe('cancelled');
  });

  it('reschedules a scheduled campaign before it starts, and refuses once it has', async () => {
    const audienceId = await api.audience(1_000, 'rs');
    const id = await api.nullCampaign(audienceId, { name: 'rescheduled', schedule_at: new Date(Date.now() + 3_600_000).toISOString() });
    // Unscheduled (back to draft), scheduled again, then moved up to a second from now.
    expect((await api.call('PATCH', `/v1/campaigns/${id}`, { schedule_at: null })).body).toMatchObject({
      status: 'draft',
      schedule_at: null,
    });
    expect(
      (await api.call('PATCH', `/v1/campaigns/${id}`, { schedule_at: new Date(Date.now() + 3_600_000).toISOString() })).body.status,
    ).toBe('scheduled');
    const at = new Date(Date.now() + 1_000);
    expect((await api.call('PATCH', `/v1/campaigns/${id}`, { schedule_at: at.toISOString() })).body).toMatchObject({
      status: 'scheduled',
      schedule_at: at.toISOString(),
    });
    const done = await api.waitForStatus(id, ['completed'], 30_000);
    expect(new Date(done.started_at).getTime()).toBeGreaterThanOrEqual(at.getTime() - 1000);
    expect(done.delivered).toBe(1_000);
    const late = await api.call('PATCH', `/v1/campaigns/${id}`, { schedule_at: new Date(Date.now() + 60_000).toISOString() });
    expect(late).toMatchObject({ status: 409, body: { status: 'completed' } });
  });

  it('completes a campaign whose audience is empty', async () => {
    const a = await api.call('POST', '/v1/audiences', { name: 'nobody' });
    const id = await api.nullCampaign(a.body.id);
    await api.call('POST', `/v1/campaigns/${id}/start`);
    const done = await api.waitForStatus(id, ['completed'], 30_000);
    expect(done).toMatchObject({ total: 0, delivered: 0, pending: 0, planned_chunks: 0 });
  });
});

/**
 * A campaign's filter holds through every later plan: a re-plan after Redis lost the stream (a
 * redis-server of the test's own, restarted empty mid-campaign) and a retry round send to the segment's
 * recipients only, each exactly once per round, and a cancel records as aborted exactly the segment's
 * recipients that were not sent.
 */
import type { Server } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Herald } from '../../src/main.js';
import { apiFor, createNamespace, startTestHerald, type Api, type Namespace } from '../helpers/herald.js';
import { listenLocal, rejectingReceiver } from '../helpers/local-http.js';
import { OwnRedis } from '../helpers/redis-server.js';

const NDJSON = { 'content-type': 'application/x-ndjson' };
/** user s<i>: in the segment when i % 3 == 0 (plan pro); fails its first delivery when i % 7 == 0. */
const inSegment = (i: number): boolean => i % 3 === 0;
const FILTER = { attr: 'plan', eq: 'pro' };

describe('a segment through re-plans and retry rounds', () => {
  let ns: Namespace;
  let herald: Herald;
  let api: Api;
  let redis: OwnRedis;
  let sink: Server;
  let sinkUrl: string;
  /** idempotency key → attempts */
  const posted = new Map<string, number>();
  let failFirst = false;

  beforeAll(async () => {
    sink = rejectingReceiver({
      posted,
      rejects: (user, attempt) => (failFirst && Number(user.slice(1)) % 7 === 0 && attempt === 1 ? 'full' : null),
      latencyMs: 10,
    });
    sinkUrl = await listenLocal(sink);
    redis = await OwnRedis.start();
    ns = await createNamespace({
      redisUrl: redis.url,
      subBatchSize: 20,
      webhookBatchSize: 20,
      workers: 2,
      pollMs: 100,
      reclaimIdleMs: 2_000,
    });
    herald = await startTestHerald(ns);
    api = apiFor(herald);
  });

  afterAll(async () => {
    await herald?.stop();
    await ns?.drop();
    await redis?.kill();
    sink?.close();
  });

  async function audience(n: number): Promise<number> {
    const a = (await api.call('POST', '/v1/audiences', { name: `rounds ${n}` })).body.id as number;
    const lines = Array.from({ length: n }, (_, k) =>
      JSON.stringify({ user_id: `s${k + 1}`, attrs: { plan: inSegment(k + 1) ? 'pro' : 'free' } }),
    );
    const r = await api.importRecipients(a, lines.join('\n'), NDJSON);
    expect(r.body.imported).toBe(n);
    return a;
  }

  const segmentUsers = (n: number): number[] => Array.from({ length: n }, (_, k) => k + 1).filter(inSegment);

  it('re-plans after Redis restarted empty with the same filter: the segment exactly once, nobody else', async () => {
    const n = 9_000;
    const audienceId = await audience(n);
    const id = await api.webhookCampaign(audienceId, sinkUrl, {
      name: 'replan',
      filter: FILTER,
      channel: { type: 'webhook', url: sinkUrl, concurrency: 4 },
    });
    const keys = (): string[] => [...posted.keys()].filter((k) => k.startsWith(`${id}:`));
    await api.call('POST', `/v1/campaigns/${id}/start`);
    while (keys().length < 600) await new Promise((r) => setTimeout(r, 5));
    await redis.kill();
    await new Promise((r) => setTimeout(r, 300));
    await redis.up();
    const done = await api.waitForStatus(id, ['completed'], 90_000);
    const want = segmentUsers(n).map((i) => `${id}:s${i}`);
    expect(keys().sort()).toEqual([...want].sort());
    expect(keys().filter((k) => posted.get(k) !== 1)).toEqual([]);
    expect(done).toMatchObject({ total: want.length, delivered: want.length });
    const gen = await herald.db.query('SELECT plan_generation FROM campaigns WHERE id = $1', [id]);
    expect(gen.rows[0].plan_generation).toBe(1);
  });

  it('a retry round sends again to the segment failures only', async () => {
    failFirst = true;
    const n = 3_000;
    const audienceId = await audience(n);
    const id = await api.webhookCampaign(audienceId, sinkUrl, { name: 'retry', filter: FILTER });
    await api.call('POST', `/v1/campaigns/${id}/start`);
    const seg = segmentUsers(n);
    const failing = seg.filter((i) => i % 7 === 0);
    expect(await api.waitForStatus(id, ['completed'], 60_000)).toMatchObject({ total: seg.length, failed: failing.length });
    const retry = await api.call('POST', `/v1/campaigns/${id}/retry-failed`);
    expect(retry.body).toMatchObject({ status: 'sending', retrying: failing.length });
    expect(await api.waitForStatus(id, ['completed'], 60_000)).toMatchObject({ delivered: seg.length, failed: 0, retried: failing.length });
    const keys = [...posted.keys()].filter((k) => k.startsWith(`${id}:`));
    expect(keys.sort()).toEqual(seg.map((i) => `${id}:s${i}`).sort());
    for (const i of seg) expect(posted.get(`${id}:s${i}`), `s${i}`).toBe(i % 7 === 0 ? 2 : 1);
  });

  it('a cancel records as aborted exactly the segment recipients not sent', async () => {
    failFirst = false;
    const n = 9_000;
    const audienceId = await audience(n);
    const id = await api.webhookCampaign(audienceId, sinkUrl, {
      name: 'cancel',
      filter: FILTER,
      channel: { type: 'webhook', url: sinkUrl, concurrency: 2 },
    });
    await api.call('POST', `/v1/campaigns/${id}/start`);
    while ([...posted.keys()].filter((k) => k.startsWith(`${id}:`)).length < 300) await new Promise((r) => setTimeout(r, 5));
    expect((await api.call('POST', `/v1/campaigns/${id}/cancel`)).status).toBe(200);
    const t0 = Date.now();
    let c = (await api.call('GET', `/v1/campaigns/${id}`)).body;
    while (c.aborts_recorded_at === null && Date.now() - t0 < 60_000) {
      await new Promise((r) => setTimeout(r, 100));
      c = (await api.call('GET', `/v1/campaigns/${id}`)).body;
    }
    const seg = segmentUsers(n).map((i) => `s${i}`);
    expect(c).toMatchObject({ status: 'cancelled', total: seg.length, pending: 0 });
    expect(c.delivered + c.aborted).toBe(seg.length);
    expect(c.aborted).toBeGreaterThan(0);
    const rows = await herald.ch.rows<{ user_id: string; kind: string }>(
      `SELECT user_id, kind FROM message_events WHERE campaign_id = ${id} AND kind IN ('delivered', 'aborted')`,
    );
    expect(rows.map((r) => r.user_id).sort()).toEqual([...seg].sort());
  });
});

/**
 * DATABASE_READ_URL on a real streaming replica (test/helpers/pg-standby.ts: the test's own primary and a
 * hot standby of it). The planner's pages and the segment and plan counts run on the replica once it
 * holds their rows; with replay paused (replica lag on demand) a plan waits rather than missing the
 * recipients the primary committed, and sends every one of them when replay resumes; past
 * HERALD_READ_REPLICA_WAIT_MS the reads run on the primary instead, still exactly.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Herald } from '../../src/main.js';
import { apiFor, createNamespace, eventCounts, startTestHerald, type Api, type Namespace } from '../helpers/herald.js';
import { postgresBin, startPgPair, type PgPair } from '../helpers/pg-standby.js';

describe.skipIf(postgresBin() === null)('DATABASE_READ_URL: reads on a replica, never missing what the primary committed', () => {
  let pair: PgPair;
  let ns: Namespace;
  let herald: Herald;
  let api: Api;

  beforeAll(async () => {
    pair = await startPgPair();
    ns = await createNamespace({}, pair.onPrimary);
    herald = await startTestHerald(ns, { databaseReadUrl: pair.onStandby(ns.config.databaseUrl), readReplicaWaitMs: 120_000 });
    api = apiFor(herald);
  });

  afterAll(async () => {
    await herald?.stop();
    await ns?.drop();
    await pair?.stop();
  });

  /** An audience of `n` (`prefix`<i>, plan pro when i % 4 == 0). */
  async function audience(n: number, prefix: string): Promise<number> {
    const a = await api.call('POST', '/v1/audiences', { name: prefix });
    const lines = Array.from({ length: n }, (_, k) =>
      JSON.stringify({ user_id: `${prefix}${k + 1}`, attrs: { plan: (k + 1) % 4 === 0 ? 'pro' : 'free' } }),
    );
    const r = await api.importRecipients(a.body.id, lines.join('\n'));
    expect(r.body.imported).toBe(n);
    return a.body.id as number;
  }

  const PRO = { filter: { attr: 'plan', eq: 'pro' } };

  it('reads pages and counts on the replica once it holds them', async () => {
    const n = 20_000;
    const aud = await audience(n, 'a');
    await pair.caughtUp();
    const before = { ...herald.reads.stats };
    const seg = await api.call('POST', '/v1/segments', { name: 'pro', audience_id: aud, ...PRO });
    expect((await api.call('GET', `/v1/segments/${seg.body.id}/count`)).body).toMatchObject({ count: n / 4 });
    const id = await api.nullCampaign(aud, { chunk_size: 1000 });
    await api.call('POST', `/v1/campaigns/${id}/start`);
    expect(await api.waitForStatus(id, ['completed'], 60_000)).toMatchObject({ total: n, delivered: n });
    expect(await eventCounts(herald, id)).toEqual({ n, u: n });
    const s = herald.reads.stats;
    expect(s.replica - before.replica).toBeGreaterThanOrEqual(3); // a count, the plan's count, its pages
    expect(s.primary - before.primary).toBe(0);
    expect(s.fellBack - before.fellBack).toBe(0);
  });

  it('waits for a lagging replica instead of missing recipients, and sends them all when it catches up', async () => {
    const n = 8_000;
    await pair.pauseReplay();
    let resumed = false;
    try {
      const aud = await audience(n, 'b');
      const id = await api.nullCampaign(aud, { chunk_size: 1000 });
      await api.call('POST', `/v1/campaigns/${id}/start`);
      await new Promise((r) => setTimeout(r, 2_500));
      const waiting = (await api.call('GET', `/v1/campaigns/${id}`)).body;
      expect(waiting).toMatchObject({ status: 'sending', delivered: 0, planned_chunks: 0 });
      await pair.resumeReplay();
      resumed = true;
      expect(await api.waitForStatus(id, ['completed'], 60_000)).toMatchObject({ total: n, delivered: n, failed: 0 });
      expect(await eventCounts(herald, id)).toEqual({ n, u: n });
    } finally {
      if (!resumed) await pair.resumeReplay();
    }
  });

  it('reads on the primary once HERALD_READ_REPLICA_WAIT_MS has passed, still exactly', async () => {
    await herald.stop();
    herald = await startTestHerald(ns, { databaseReadUrl: pair.onStandby(ns.config.databaseUrl), readReplicaWaitMs: 300 });
    api = apiFor(herald);
    const n = 6_000;
    await pair.pauseReplay();
    try {
      const aud = await audience(n, 'c');
      const seg = await api.call('POST', '/v1/segments', { name: 'pro c', audience_id: aud, ...PRO });
      expect((await api.call('GET', `/v1/segments/${seg.body.id}/count`)).body).toMatchObject({ count: n / 4 });
      const id = await api.nullCampaign(aud, { segment_id: seg.body.id, chunk_size: 500 });
      await api.call('POST', `/v1/campaigns/${id}/start`);
      expect(await api.waitForStatus(id, ['completed'], 60_000)).toMatchObject({ total: n / 4, delivered: n / 4 });
      expect(await eventCounts(herald, id)).toEqual({ n: n / 4, u: n / 4 });
      expect(herald.reads.stats.fellBack).toBeGreaterThanOrEqual(2);
      expect(herald.reads.stats.replica).toBe(0);
    } finally {
      await pair.resumeReplay();
    }
  });
});

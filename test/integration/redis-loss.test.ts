import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Herald } from '../../src/main.js';
import { apiFor, createNamespace, startTestHerald, type Api, type Namespace } from '../helpers/herald.js';
import { OwnRedis } from '../helpers/redis-server.js';
import { SlowSink } from '../helpers/slow-sink.js';

describe('Redis restarted empty in the middle of a campaign', () => {
  let ns: Namespace;
  let herald: Herald;
  let api: Api;
  let redis: OwnRedis;
  const sink = new SlowSink(10);

  beforeAll(async () => {
    await sink.start();
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
    sink.server?.close();
  });

  it('re-plans from PostgreSQL and completes with every recipient exactly once', async () => {
    const n = 3_000;
    const audienceId = await api.audience(n, 'rx');
    const id = await api.webhookCampaign(audienceId, sink.url, { name: 'redis loss' });
    await api.call('POST', `/v1/campaigns/${id}/start`);
    while (sink.seen.size < 600) await new Promise((r) => setTimeout(r, 5));

    await redis.kill();
    await new Promise((r) => setTimeout(r, 300));
    await redis.up();

    const done = await api.waitForStatus(id, ['completed'], 90_000);
    expect(sink.seen.size).toBe(n);
    expect([...sink.seen.values()].filter((t) => t.length !== 1)).toEqual([]);
    expect(done.delivered).toBe(n);
    const gen = await herald.db.query('SELECT plan_generation FROM campaigns WHERE id = $1', [id]);
    expect(gen.rows[0].plan_generation).toBe(1);
  });
});

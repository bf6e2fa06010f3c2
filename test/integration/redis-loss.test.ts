import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startHerald, type Herald } from '../../src/main.js';
import { apiFor, createNamespace, eventCounts, startTestHerald, type Api, type Namespace } from '../helpers/herald.js';
import { OwnRedis } from '../helpers/redis-server.js';
import { SlowSink } from '../helpers/slow-sink.js';

/** Starts the campaign, restarts Redis empty once 600 messages have arrived, and waits for it to complete. */
async function loseRedisMidCampaign(api: Api, id: number, redis: OwnRedis, sink: SlowSink): Promise<Record<string, any>> {
  await api.call('POST', `/v1/campaigns/${id}/start`);
  while (sink.seen.size < 600) await new Promise((r) => setTimeout(r, 5));
  await redis.kill();
  await new Promise((r) => setTimeout(r, 300));
  await redis.up();
  return api.waitForStatus(id, ['completed'], 90_000);
}

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
    const done = await loseRedisMidCampaign(api, id, redis, sink);
    expect(sink.seen.size).toBe(n);
    expect([...sink.seen.values()].filter((t) => t.length !== 1)).toEqual([]);
    expect(done.delivered).toBe(n);
    const gen = await herald.db.query('SELECT plan_generation FROM campaigns WHERE id = $1', [id]);
    expect(gen.rows[0].plan_generation).toBe(1);
  });
});

describe('Redis restarted empty under two processes whose lease is shorter than a re-plan', () => {
  let ns: Namespace;
  let redis: OwnRedis;
  const heralds: Herald[] = [];
  /** each process's log lines, by its index in `heralds` */
  const logs: string[][] = [[], []];
  const sink = new SlowSink(10);

  beforeAll(async () => {
    await sink.start();
    redis = await OwnRedis.start();
    // A re-plan waits two flush intervals and a grace (seconds); the lease lapses in 600 ms unless renewed.
    ns = await createNamespace({ redisUrl: redis.url, subBatchSize: 20, webhookBatchSize: 20, workers: 2, pollMs: 100, leaseMs: 600 });
    for (const lines of logs) {
      const logger = pino({ level: 'info' }, { write: (line: string) => void lines.push(line) });
      heralds.push(await startHerald(Object.freeze({ ...ns.config, port: 0 }), { migrate: false, logger }));
    }
  });

  afterAll(async () => {
    for (const h of heralds) await h.stop();
    await ns?.drop();
    await redis?.kill();
    sink.server?.close();
  });

  it('is re-planned by one of them, which keeps the lease meanwhile, and every recipient is sent once', async () => {
    const api = apiFor(heralds[0]!);
    const n = 3_000;
    const id = await api.webhookCampaign(await api.audience(n, 'r2'), sink.url, { name: 'redis loss, two processes' });
    const done = await loseRedisMidCampaign(api, id, redis, sink);
    // Both may start the re-plan (the one that held the lease before Redis lost it does not know yet), but
    // only the lease's holder gets as far as restarting the plan. Without the renewal the lease lapsed
    // during the waits, the other process took it, found the stream still lost and went on to re-plan
    // beside the first: two planners of one generation cut its chunks apart.
    const restarting = logs.filter((lines) =>
      lines.some((l) => /"msg":"campaign (re-planned under a new generation|already re-planned by another process)"/.test(l)),
    );
    expect(restarting.length).toBe(1);
    expect(sink.seen.size).toBe(n);
    expect([...sink.seen.values()].filter((t) => t.length !== 1)).toEqual([]);
    expect(done).toMatchObject({ delivered: n, failed: 0, pending: 0 });
    expect(await eventCounts(heralds[0]!, id)).toEqual({ n, u: n });
    const gen = await heralds[0]!.db.query('SELECT plan_generation FROM campaigns WHERE id = $1', [id]);
    expect(gen.rows[0].plan_generation).toBe(1);
  });
});

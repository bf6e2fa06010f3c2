/**
 * Redis loses a campaign's work state while a chunk's request is out in a process that is not the owner,
 * and that request is answered only after the owner has re-planned (a slow receiver, or a request waiting
 * for its retry, outlasts any grace). The owner raises the plan key before it re-plans, so the late
 * answer's ledger step finds the chunk stale and its rows are never written: the new plan sends those
 * recipients again (the receiver sees them twice, under their idempotency keys) and every recipient is
 * counted once. Two Heralds share the namespace; the test gives the lease to the one not holding the chunk
 * in the same step that empties the campaign's keys, as a Redis restarted empty would let it win.
 * A cancel while the stream is lost: the closer walks the audience again and records as aborted whoever
 * the lost plan did not send to.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Herald } from '../../src/main.js';
import { apiFor, createNamespace, eventCounts, startTestHerald, type Api, type Namespace } from '../helpers/herald.js';
import { emptyCampaignKeys, heldFirstReceiver, useHeraldWithHeldReceiver, type HeldReceiver } from '../helpers/held-receiver.js';
import { CHUNK_GROUP, Keys } from '../../src/stream/keys.js';

const N = 60;
const CHUNK = 10;

const perKey = (posts: HeldReceiver['posts']): Map<string, number> => {
  const m = new Map<string, number>();
  for (const p of posts) for (const k of p.keys) m.set(k, (m.get(k) ?? 0) + 1);
  return m;
};

describe('a re-plan after Redis lost the state, with a chunk still out elsewhere', () => {
  let ns: Namespace;
  let a: Herald;
  let b: Herald;
  let api: Api;

  beforeAll(async () => {
    // One chunk at a time per process, and the idle reclaim far away: the held chunk stays where it is.
    ns = await createNamespace({
      workers: 1,
      webhookConcurrency: 1,
      subBatchSize: CHUNK,
      webhookBatchSize: CHUNK,
      webhookTimeoutMs: 60_000,
      reclaimIdleMs: 120_000,
      leaseMs: 60_000,
      pollMs: 50,
    });
    a = await startTestHerald(ns);
    b = await startTestHerald(ns);
    api = apiFor(a);
  });

  afterAll(async () => {
    await a?.stop();
    await b?.stop();
    await ns?.drop();
  });

  /**
   * The held chunk's request is answered after the other process re-planned and completed the campaign;
   * with `secondLoss`, Redis loses the campaign's keys once more before that, plan key included, so the
   * late step finds no key at all and only PostgreSQL can tell it was re-planned.
   */
  async function lateAnswer(name: string, secondLoss: boolean): Promise<void> {
    const rx = await heldFirstReceiver();
    try {
      const keys = new Keys(ns.config.redisPrefix);
      const audienceId = await api.audience(N, name);
      const id = await api.webhookCampaign(audienceId, rx.url, { name, chunk_size: CHUNK });
      expect((await api.call('POST', `/v1/campaigns/${id}/start`)).status).toBe(200);
      await rx.first;
      // The other chunks go through the other process; only the held one stays pending.
      const deadline = Date.now() + 30_000;
      let pending: Array<[string, string]> = [];
      for (;;) {
        const answered = new Set(rx.posts.slice(1).flatMap((p) => p.keys));
        pending = (await a.redis.xpending(keys.chunks(id), CHUNK_GROUP, '-', '+', 10)) as Array<[string, string]>;
        if (answered.size === N - CHUNK && pending.length === 1) break;
        if (Date.now() > deadline) throw new Error(`answered ${answered.size}, pending ${pending.length}`);
        await new Promise((r) => setTimeout(r, 50));
      }
      const holderOf = (consumer: string): string => consumer.slice(0, consumer.lastIndexOf('-'));
      const holder = holderOf(pending[0]![1]);
      const consumers = (await a.redis.xinfo('CONSUMERS', keys.chunks(id), CHUNK_GROUP)) as Array<Array<string | number>>;
      const others = [...new Set(consumers.map((c) => holderOf(String(c[1]))))].filter((h) => h !== holder);
      expect(others).toHaveLength(1);
      // Redis loses every key of the campaign, and the process not holding the chunk wins the lease.
      await emptyCampaignKeys(a.redis, ns.config.redisPrefix, id, { key: keys.lease(id), value: `${others[0]!}:1000` });
      // The owner re-plans without the held sub-batch (it has no outcome) and the new plan sends it.
      const done = await api.waitForStatus(id, ['completed'], 60_000);
      expect(done).toMatchObject({ status: 'completed', delivered: N, failed: 0 });
      const first = rx.posts[0]!.keys;
      expect(rx.posts.slice(1).some((p) => p.keys.some((k) => first.includes(k)))).toBe(true);
      if (secondLoss) await emptyCampaignKeys(a.redis, ns.config.redisPrefix, id);
      // Only now is the first request answered: its step finds the chunk re-planned, so nothing of it is written.
      rx.release();
      await new Promise((r) => setTimeout(r, 3_000));
      expect(await eventCounts(a, id)).toEqual({ n: N, u: N });
      expect((await api.call('GET', `/v1/campaigns/${id}`)).body).toMatchObject({ status: 'completed', delivered: N, failed: 0 });
      const posted = perKey(rx.posts);
      expect(posted.size).toBe(N);
      expect([...posted.values()].filter((n) => n === 2)).toHaveLength(CHUNK);
    } finally {
      rx.release();
      rx.server.close();
    }
  }

  it('does not count the late sub-batch beside the new plan’s send of it', () => lateAnswer('replan fence', false));

  it('does not count it either when Redis has lost the raised plan key again by then', () => lateAnswer('replan fence twice', true));
});

describe('a cancel while Redis has lost the campaign’s state', () => {
  const ctx = useHeraldWithHeldReceiver({
    workers: 1,
    webhookConcurrency: 1,
    subBatchSize: CHUNK,
    webhookBatchSize: CHUNK,
    webhookTimeoutMs: 60_000,
  });

  it('records as aborted everyone the lost plan did not send, once', async () => {
    const { api, herald, rx, ns } = ctx;
    const n = 40;
    const audienceId = await api.audience(n, 'rc');
    const id = await api.webhookCampaign(audienceId, rx.url, { name: 'cancel after loss', chunk_size: CHUNK });
    expect((await api.call('POST', `/v1/campaigns/${id}/start`)).status).toBe(200);
    await rx.first;
    // Redis loses every key of the campaign while its first request is out; the campaign is cancelled.
    await emptyCampaignKeys(herald.redis, ns.config.redisPrefix, id);
    expect((await api.call('POST', `/v1/campaigns/${id}/cancel`)).status).toBe(200);
    rx.release();
    // Closed: the closer has recorded the aborted recipients (GET counts the unsent as aborted before that).
    const deadline = Date.now() + 60_000;
    const closed = async (): Promise<boolean> =>
      (await herald.db.query('SELECT aborts_recorded_at FROM campaigns WHERE id = $1', [id])).rows[0].aborts_recorded_at !== null;
    while (!(await closed())) {
      if (Date.now() > deadline) throw new Error('the cancelled campaign was not closed');
      await new Promise((r) => setTimeout(r, 200));
    }
    // The request that was out is recorded (nobody had re-planned), the rest aborted; nothing else posted.
    const c = (await api.call('GET', `/v1/campaigns/${id}`)).body;
    expect(c).toMatchObject({ status: 'cancelled', delivered: CHUNK, aborted: n - CHUNK, pending: 0 });
    expect(rx.posts).toHaveLength(1);
    expect(await eventCounts(herald, id, 'aborted')).toEqual({ n: n - CHUNK, u: n - CHUNK });
    expect(await eventCounts(herald, id)).toEqual({ n: CHUNK, u: CHUNK });
  });
});

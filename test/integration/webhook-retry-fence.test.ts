/**
 * A webhook retry goes out only while the sender still holds the chunk (issue 18): the first request of a
 * campaign's only sub-batch is held by the receiver past the sender's ownership trust (1 s at the default
 * liveness ttl of 3 s) and answered 503. In between, one case hands the chunk to another consumer in Redis
 * (a `ghost` process whose heartbeat the test keeps alive, so nothing takes it back meanwhile): the retry
 * must not be posted, and nothing is recorded as failed. In another Redis loses the plan meanwhile: the
 * retry is posted, since nobody else holds the chunk, and the sub-batch is recorded whole. In the last the
 * chunk stays where it is: the retry is posted and delivered.
 */
import { createServer, type Server } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Herald } from '../../src/main.js';
import { apiFor, createNamespace, eventCounts, startTestHerald, type Api, type Namespace } from '../helpers/herald.js';
import { listenLocal } from '../helpers/local-http.js';
import { CHUNK_GROUP, Keys } from '../../src/stream/keys.js';

const N = 10;
/** past the ownership trust (ownershipTrustMs: a third of the liveness ttl, 1 s) */
const HOLD_MS = 1_400;

interface Post {
  at: number;
  keys: string[];
}

/** Per campaign: what was posted; the first post waits for `firstAnswer` and is answered 503. */
interface Script {
  posts: Post[];
  firstAnswer: Promise<void>;
  firstArrived: () => void;
  arrived: Promise<void>;
}

describe('webhook retries fenced by chunk ownership', () => {
  let ns: Namespace;
  let herald: Herald;
  let api: Api;
  let receiver: Server;
  let url: string;
  let keys: Keys;
  const scripts = new Map<number, Script>();

  beforeAll(async () => {
    receiver = createServer((req, res) => {
      let data = '';
      req.on('data', (d: Buffer) => (data += d.toString()));
      req.on('end', () => {
        const body = JSON.parse(data) as { campaign_id: number; messages: Array<{ idempotency_key: string }> };
        const s = scripts.get(body.campaign_id)!;
        s.posts.push({ at: Date.now(), keys: body.messages.map((m) => m.idempotency_key) });
        if (s.posts.length > 1) {
          res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
          return;
        }
        s.firstArrived();
        void s.firstAnswer.then(() => res.writeHead(503).end('busy'));
      });
    });
    url = await listenLocal(receiver);
    // The idle reclaim and the lease far away: only liveness moves chunks, and the ghost's heartbeat is kept.
    ns = await createNamespace({ reclaimIdleMs: 120_000, leaseMs: 60_000, webhookBackoffMs: 50, webhookAttempts: 4 });
    herald = await startTestHerald(ns);
    api = apiFor(herald);
    keys = new Keys(ns.config.redisPrefix);
  });

  afterAll(async () => {
    await herald?.stop();
    await ns?.drop();
    receiver?.close();
  });

  async function campaign(name: string, firstAnswer: Promise<void>): Promise<{ id: number; script: Script }> {
    const audienceId = await api.audience(N, name);
    const id = await api.webhookCampaign(audienceId, url, { name });
    let firstArrived!: () => void;
    const arrived = new Promise<void>((r) => (firstArrived = r));
    const script: Script = { posts: [], firstAnswer, firstArrived, arrived };
    scripts.set(id, script);
    expect((await api.call('POST', `/v1/campaigns/${id}/start`)).status).toBe(200);
    await script.arrived;
    return { id, script };
  }

  function postsOfEachKey(s: Script): number[] {
    const per = new Map<string, number>();
    for (const p of s.posts) for (const k of p.keys) per.set(k, (per.get(k) ?? 0) + 1);
    return [...per.values()];
  }

  it('does not post the retry once the chunk was taken over, and records nothing as failed', async () => {
    let answer!: () => void;
    const { id, script } = await campaign('fenced', new Promise<void>((r) => (answer = r)));
    // Taken over while the first request waits: the chunk is now pending on a live ghost's consumer.
    const pending = (await herald.redis.xpending(keys.chunks(id), CHUNK_GROUP, '-', '+', 10)) as Array<[string, string]>;
    expect(pending).toHaveLength(1);
    await herald.redis.zadd(keys.alive(id), Date.now() + 600_000, 'ghost');
    await herald.redis.xclaim(keys.chunks(id), CHUNK_GROUP, 'ghost-0', 0, pending[0]![0]);
    await new Promise((r) => setTimeout(r, HOLD_MS));
    answer();
    // The backoff is 50 ms: a retry would be here long before this.
    await new Promise((r) => setTimeout(r, 1_500));
    expect(script.posts).toHaveLength(1);
    const mid = (await api.call('GET', `/v1/campaigns/${id}`)).body;
    expect(mid).toMatchObject({ delivered: 0, failed: 0 });
    expect((await eventCounts(herald, id, 'failed')).n).toBe(0);
    // The ghost's heartbeat lapses: its chunk is taken back by liveness and sent by its new holder, once.
    await herald.redis.zadd(keys.alive(id), Date.now() - 1_000, 'ghost');
    const done = await api.waitForStatus(id, ['completed'], 30_000);
    expect(done).toMatchObject({ status: 'completed', delivered: N, failed: 0 });
    expect(script.posts).toHaveLength(2);
    expect(postsOfEachKey(script)).toEqual(new Array<number>(N).fill(2));
    expect((await eventCounts(herald, id)).u).toBe(N);
    expect((await eventCounts(herald, id, 'failed')).n).toBe(0);
  });

  it('posts the retry when Redis lost the plan meanwhile, and records the sub-batch whole so the re-plan leaves it out', async () => {
    let answer!: () => void;
    const { id, script } = await campaign('lost', new Promise<void>((r) => (answer = r)));
    // Redis loses the campaign's state while the first request waits (as a restart with nothing on disk does)
    await herald.redis.del(keys.chunks(id), keys.plan(id), keys.ledger(id), keys.records(id), keys.lease(id));
    await new Promise((r) => setTimeout(r, HOLD_MS));
    const answeredAt = Date.now();
    answer();
    const done = await api.waitForStatus(id, ['completed'], 30_000);
    expect(done).toMatchObject({ status: 'completed', delivered: N, failed: 0, pending: 0 });
    // the retry, right after the 503 (the backoff is 50 ms), not the re-plan's send after its grace
    expect(script.posts).toHaveLength(2);
    expect(script.posts[1]!.at - answeredAt).toBeLessThan(500);
    expect(postsOfEachKey(script)).toEqual(new Array<number>(N).fill(2));
    expect(await eventCounts(herald, id)).toEqual({ n: N, u: N });
  });

  it('posts the retry when the chunk is still held, however long the first request took', async () => {
    const { id, script } = await campaign('held', new Promise<void>((r) => setTimeout(r, HOLD_MS)));
    const done = await api.waitForStatus(id, ['completed'], 30_000);
    expect(done).toMatchObject({ status: 'completed', delivered: N, failed: 0 });
    expect(script.posts).toHaveLength(2);
    // The retry, not a takeover's send: right after the 503 (within the backoff and a check).
    expect(script.posts[1]!.at - script.posts[0]!.at).toBeLessThan(HOLD_MS + 1_000);
    expect(postsOfEachKey(script)).toEqual(new Array<number>(N).fill(2));
    expect(herald.dispatcher!.statsOf(id)?.reclaimed).toBe(0);
    expect((await eventCounts(herald, id)).u).toBe(N);
  });
});

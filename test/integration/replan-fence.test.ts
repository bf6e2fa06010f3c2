/**
 * Redis loses a campaign's work state while a chunk's request is out in a process that is not the owner,
 * and that request is answered only after the owner has re-planned (a slow receiver, or a request waiting
 * for its retry, outlasts any grace). The owner raises the plan key before it re-plans, so the late
 * answer's ledger step finds the chunk stale and its rows are never written: the new plan sends those
 * recipients again (the receiver sees them twice, under their idempotency keys) and every recipient is
 * counted once. Two Heralds share the namespace; the test gives the lease to the one not holding the chunk
 * in the same step that empties the campaign's keys, as a Redis restarted empty would let it win.
 */
import { createServer, type Server } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Herald } from '../../src/main.js';
import { apiFor, createNamespace, eventCounts, startTestHerald, type Api, type Namespace } from '../helpers/herald.js';
import { listenLocal } from '../helpers/local-http.js';
import { CHUNK_GROUP, Keys } from '../../src/stream/keys.js';

const N = 60;
const CHUNK = 10;

describe('a re-plan after Redis lost the state, with a chunk still out elsewhere', () => {
  let ns: Namespace;
  let a: Herald;
  let b: Herald;
  let api: Api;
  let receiver: Server;
  let url: string;
  const posts: Array<{ at: number; keys: string[] }> = [];
  let release!: () => void;
  const released = new Promise<void>((r) => (release = r));
  let heldArrived!: () => void;
  const held = new Promise<void>((r) => (heldArrived = r));

  beforeAll(async () => {
    // The first post is held until the test releases it; every other is answered at once.
    receiver = createServer((req, res) => {
      let data = '';
      req.on('data', (d: Buffer) => (data += d.toString()));
      req.on('end', () => {
        const body = JSON.parse(data) as { messages: Array<{ idempotency_key: string }> };
        posts.push({ at: Date.now(), keys: body.messages.map((m) => m.idempotency_key) });
        if (posts.length > 1) {
          res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
          return;
        }
        heldArrived();
        void released.then(() => res.writeHead(200, { 'content-type': 'application/json' }).end('{}'));
      });
    });
    url = await listenLocal(receiver);
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
    release();
    await a?.stop();
    await b?.stop();
    await ns?.drop();
    receiver?.close();
  });

  it('does not count the late sub-batch beside the new plan’s send of it', async () => {
    const keys = new Keys(ns.config.redisPrefix);
    const audienceId = await api.audience(N, 'rf');
    const id = await api.webhookCampaign(audienceId, url, { name: 'replan fence', chunk_size: CHUNK });
    expect((await api.call('POST', `/v1/campaigns/${id}/start`)).status).toBe(200);
    await held;
    // The other chunks go through the other process; only the held one stays pending.
    const deadline = Date.now() + 30_000;
    let pending: Array<[string, string]> = [];
    for (;;) {
      const answered = new Set(posts.slice(1).flatMap((p) => p.keys));
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
    const owner = others[0]!;
    // Redis loses every key of the campaign, and the process not holding the chunk wins the lease.
    await a.redis.eval(
      `local cursor = '0'
       repeat
         local r = redis.call('SCAN', cursor, 'MATCH', ARGV[1], 'COUNT', 1000)
         cursor = r[1]
         for _, k in ipairs(r[2]) do redis.call('DEL', k) end
       until cursor == '0'
       redis.call('SET', KEYS[1], ARGV[2], 'PX', 60000)
       return 1`,
      1,
      keys.lease(id),
      `${ns.config.redisPrefix}:{c${id}}:*`,
      `${owner}:1000`,
    );
    // The owner re-plans without the held sub-batch (it has no outcome) and the new plan sends it.
    const done = await api.waitForStatus(id, ['completed'], 60_000);
    expect(done).toMatchObject({ status: 'completed', delivered: N, failed: 0 });
    const again = posts.slice(1).filter((p) => p.keys.some((k) => posts[0]!.keys.includes(k)));
    expect(again.length).toBeGreaterThan(0);
    // Only now is the first request answered: its step finds the plan raised, so nothing of it is written.
    release();
    await new Promise((r) => setTimeout(r, 3_000));
    expect(await eventCounts(a, id)).toEqual({ n: N, u: N });
    const after = (await api.call('GET', `/v1/campaigns/${id}`)).body;
    expect(after).toMatchObject({ status: 'completed', delivered: N, failed: 0 });
    const perKey = new Map<string, number>();
    for (const p of posts) for (const k of p.keys) perKey.set(k, (perKey.get(k) ?? 0) + 1);
    expect(perKey.size).toBe(N);
    expect([...perKey.values()].filter((n) => n === 2)).toHaveLength(CHUNK);
  });
});

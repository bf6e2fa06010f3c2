import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Redis } from 'ioredis';
import type { Herald } from '../../src/main.js';
import { CHUNK_GROUP, Keys } from '../../src/stream/keys.js';
import { ChunkProtocol } from '../../src/stream/chunk-protocol.js';
import { RedisGateway } from '../../src/stream/redis-gateway.js';
import { Planner } from '../../src/planner/planner.js';
import { CampaignRepo } from '../../src/store/campaign-repo.js';
import { RecipientReader } from '../../src/store/recipient-reader.js';
import { createDb, type Db } from '../../src/store/db.js';
import { encodeRecord } from '../../src/domain/sub-batch.js';
import { apiFor, createNamespace, startTestHerald, type Api, type Namespace } from '../helpers/herald.js';
import { SlowSink } from '../helpers/slow-sink.js';

describe('pause, resume and reclaim send every recipient exactly once', () => {
  let ns: Namespace;
  let herald: Herald;
  let api: Api;
  const sink = new SlowSink(15);

  beforeAll(async () => {
    await sink.start();
    ns = await createNamespace({ subBatchSize: 20, webhookBatchSize: 20, workers: 2, webhookConcurrency: 2, reclaimIdleMs: 500 });
    herald = await startTestHerald(ns);
    api = apiFor(herald);
  });

  afterAll(async () => {
    await herald?.stop();
    await ns?.drop();
    sink.server?.close();
  });

  it('stops within one sub-batch per request in flight of a pause, reports the overshoot, and resumes without repeats', async () => {
    const n = 3_000;
    const audienceId = await api.audience(n, 'pz');
    const id = await api.webhookCampaign(audienceId, sink.url, { name: 'pause webhook' });
    await api.call('POST', `/v1/campaigns/${id}/start`);
    while (sink.seen.size < 200) await new Promise((r) => setTimeout(r, 10));
    const paused = await api.call('POST', `/v1/campaigns/${id}/pause`);
    const pausedAt = Date.now();
    expect(paused.body.status).toBe('paused');
    await new Promise((r) => setTimeout(r, 600));
    const afterPause = sink.receivedAfter(pausedAt);
    const mid = (await api.call('GET', `/v1/campaigns/${id}`)).body;
    // Herald's own account: at most the sub-batch each request in flight carried (webhookConcurrency 2 × 20)
    // was recorded after the pause. The receiver runs in this test process, whose event loop Herald shares,
    // so a request that reached it just before the pause answered can be seen just after: one more each.
    expect(mid.overshoot).toBeLessThanOrEqual(40);
    expect(afterPause).toBeLessThanOrEqual(mid.overshoot + 40);
    expect(sink.seen.size).toBeLessThan(n);
    expect(mid.aborted).toBe(0);
    expect(mid.delivered + mid.failed + mid.aborted + mid.pending).toBe(n);
    const frozen = sink.seen.size;
    await new Promise((r) => setTimeout(r, 400));
    expect(sink.seen.size).toBe(frozen);

    await api.call('POST', `/v1/campaigns/${id}/resume`);
    const done = await api.waitForStatus(id, ['completed'], 60_000);
    expect(done.delivered).toBe(n);
    expect(sink.seen.size).toBe(n);
    expect([...sink.seen.values()].filter((t) => t.length !== 1)).toEqual([]);
  });

  it('cancels mid-campaign: nothing more is sent, and what was not sent is counted as aborted', async () => {
    const n = 2_000;
    const audienceId = await api.audience(n, 'cx');
    const id = await api.webhookCampaign(audienceId, sink.url, { name: 'cancel webhook' });
    await api.call('POST', `/v1/campaigns/${id}/start`);
    const mine = (): number => [...sink.seen.keys()].filter((k) => k.startsWith(`${id}:`)).length;
    while (mine() < 300) await new Promise((r) => setTimeout(r, 5));
    expect((await api.call('POST', `/v1/campaigns/${id}/cancel`)).body.status).toBe('cancelled');
    await new Promise((r) => setTimeout(r, 600));
    const settled = mine();
    await new Promise((r) => setTimeout(r, 500));
    expect(mine()).toBe(settled);
    const got = (await api.call('GET', `/v1/campaigns/${id}`)).body;
    expect(got.status).toBe('cancelled');
    expect(got.delivered).toBe(settled);
    expect(got.pending).toBe(0);
    expect(got.aborted).toBe(n - settled);
    expect(got.delivered + got.failed + got.aborted + got.pending).toBe(n);

    // Every recipient not sent is recorded as aborted in ClickHouse, once; then the stream goes.
    const deadline = Date.now() + 30_000;
    let closed = got;
    while (closed.aborts_recorded_at === null && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 100));
      closed = (await api.call('GET', `/v1/campaigns/${id}`)).body;
    }
    expect(closed.aborts_recorded_at).not.toBeNull();
    const rows = await herald.ch.rows<{ kind: string; n: string; u: string }>(
      `SELECT toString(kind) AS kind, count() AS n, uniqExact(user_id) AS u FROM message_events WHERE campaign_id = ${id} GROUP BY kind ORDER BY kind`,
    );
    expect(rows.map((r) => [r.kind, Number(r.n), Number(r.u)])).toEqual([
      ['aborted', n - settled, n - settled],
      ['delivered', settled, settled],
    ]);
    const both = await herald.ch.rows<{ n: string }>(`SELECT uniqExact(user_id) AS n FROM message_events WHERE campaign_id = ${id}`);
    expect(Number(both[0]!.n)).toBe(n);
    expect(await herald.redis.exists(`${ns.config.redisPrefix}:{c${id}}:chunks`)).toBe(0);
  });

  it('continues a reclaimed chunk after the part its dead holder already sent', async () => {
    const redis = new Redis(ns.config.redisUrl);
    const db: Db = createDb(ns.config.databaseUrl, 2);
    try {
      const keys = new Keys(ns.config.redisPrefix);
      const audienceId = await api.audience(500, 'lg');
      const id = await api.webhookCampaign(audienceId, sink.url, { name: 'ledger' });
      // While the campaign is paused (no dispatcher hosts it), plan it and hand its first chunk to a
      // consumer that "sends" 40 of its 100 recipients and dies; then resume it through the API.
      await db.query("UPDATE campaigns SET status = 'paused', started_at = now() WHERE id = $1", [id]);
      const stream = new ChunkProtocol(new RedisGateway(redis, keys, { livenessTtlMs: 0 }));
      await new Planner(new CampaignRepo(db), new RecipientReader(db), stream).plan(id);
      await redis.xreadgroup('GROUP', CHUNK_GROUP, 'dead', 'COUNT', 1, 'STREAMS', keys.chunks(id), '>');
      // Its ledger step recorded them with their record, as chunk-step-9.lua does; the events never reached
      // ClickHouse (it died first): the next holder rebuilds them from the record.
      await redis.hset(keys.ledger(id), '0-1', '40');
      await redis.hset(
        keys.records(id),
        '0-1',
        encodeRecord({
          from: 0,
          n: 40,
          atSec: 1_700_000_000,
          failed: new Map([[7, 'HTTP 410: gone']]),
          // withheld recipients (domain/withheld.ts) are rebuilt with their own outcomes too
          withheld: new Map([
            [3, { kind: 'suppressed', reason: 'unsubscribed' }],
            [12, { kind: 'capped', reason: 'cap' }],
            [25, { kind: 'skipped', reason: 'missing recipient.attrs.name' }],
          ]),
        }),
      );
      expect((await api.call('POST', `/v1/campaigns/${id}/resume`)).body.status).toBe('sending');
      const done = await api.waitForStatus(id, ['completed'], 60_000);
      // The 40 the dead consumer sent are not sent again; everything else exactly once.
      const mine = [...sink.seen.keys()].filter((k) => k.startsWith(`${id}:`));
      expect(mine).toHaveLength(460);
      expect(mine.every((k) => sink.seen.get(k)!.length === 1)).toBe(true);
      expect(mine.filter((k) => /:lg([1-9]|[1-3][0-9]|40)$/.test(k))).toEqual([]);
      expect(done).toMatchObject({ delivered: 496, failed: 1, suppressed: 1, capped: 1, skipped: 1, pending: 0, aborted: 0 });
      const withheld = await herald.ch.rows<{ kind: string; user_id: string; error: string }>(
        `SELECT toString(kind) AS kind, user_id, error FROM message_events
         WHERE campaign_id = ${id} AND kind IN ('suppressed', 'capped', 'skipped') ORDER BY user_id`,
      );
      expect(withheld).toEqual([
        { kind: 'capped', user_id: 'lg13', error: 'cap' },
        { kind: 'skipped', user_id: 'lg26', error: 'missing recipient.attrs.name' },
        { kind: 'suppressed', user_id: 'lg4', error: 'unsubscribed' },
      ]);
    } finally {
      redis.disconnect();
      await db.end();
    }
  });
});

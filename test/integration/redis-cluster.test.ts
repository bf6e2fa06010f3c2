import type { ChildProcess } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Herald } from '../../src/main.js';
import { CHUNK_GROUP, Keys } from '../../src/stream/keys.js';
import { isCluster } from '../../src/stream/redis-connect.js';
import { LiveCounters } from '../../src/progress/live-counters.js';
import { API_KEY, apiFor, createNamespace, eventCounts, startTestHerald, type Api, type Namespace } from '../helpers/herald.js';
import { spawnHerald } from '../helpers/child-herald.js';
import { OwnRedisCluster } from '../helpers/redis-cluster.js';
import { SlowSink } from '../helpers/slow-sink.js';
import { WsClient } from '../helpers/ws-client.js';

/**
 * Herald's core on a 3-master Redis Cluster of the file's own (no replicas): dispatch, pause and resume with
 * WebSocket frames, several campaigns on several shards, kill -9 of a process, and a master lost mid-campaign.
 * The same files also run whole on a cluster with HERALD_TEST_REDIS=cluster (test/helpers/services.ts).
 */
describe('Herald on a Redis Cluster', () => {
  let cluster: OwnRedisCluster;
  let ns: Namespace;
  let herald: Herald;
  let api: Api;
  let keys: Keys;
  const sink = new SlowSink(5);
  const children: ChildProcess[] = [];
  const extra: Herald[] = [];

  beforeAll(async () => {
    cluster = await OwnRedisCluster.start(3);
    await sink.start();
    ns = await createNamespace({
      redisClusterNodes: cluster.nodes,
      subBatchSize: 50,
      webhookBatchSize: 50,
      workers: 2,
      reclaimIdleMs: 2_000,
      leaseMs: 3_000,
      wsTickMs: 250,
    });
    herald = await startTestHerald(ns);
    api = apiFor(herald);
    keys = new Keys(ns.config.redisPrefix);
  });

  afterAll(async () => {
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
    for (const h of extra) await h.stop();
    await herald?.stop();
    await ns?.drop();
    await cluster?.stop();
    sink.server?.close();
  });

  it('sends a null campaign exactly once through the cluster', async () => {
    expect(isCluster(herald.redis)).toBe(true);
    const n = 20_000;
    const id = await api.nullCampaign(await api.audience(n, 'cn'), { chunk_size: 500 });
    expect((await api.call('POST', `/v1/campaigns/${id}/start`)).status).toBe(200);
    const done = await api.waitForStatus(id, ['completed', 'failed']);
    expect(done).toMatchObject({ status: 'completed', total: n, delivered: n, failed: 0, pending: 0, planned_chunks: 40 });
    expect(await eventCounts(herald, id)).toEqual({ n, u: n });
    // The plan key stays a week after the stream goes: it is on the one master serving the campaign's slot.
    const owner = cluster.nodeOf(keys.plan(id));
    expect(cluster.ports.map((_, i) => cluster.holds(i, keys.plan(id)))).toEqual(cluster.ports.map((_, i) => i === owner));
    expect(await herald.redis.exists(keys.chunks(id))).toBe(0);
    const health = await api.call('GET', '/healthz');
    expect(health.status).toBe(200);
  });

  it('runs four campaigns at once on several shards, each recipient once', async () => {
    const n = 5_000;
    const audienceId = await api.audience(n, 'cs');
    const ids: number[] = [];
    for (let i = 0; i < 4; i++) ids.push(await api.nullCampaign(audienceId, { name: `shard ${i}`, chunk_size: 250, rate_limit: 4_000 }));
    const shards = new Set(ids.map((id) => cluster.nodeOf(keys.chunks(id))));
    expect(shards.size).toBeGreaterThanOrEqual(2);
    await Promise.all(ids.map((id) => api.call('POST', `/v1/campaigns/${id}/start`)));
    // While they send, each stream lives on its slot's master and nowhere else.
    const seenOn = new Map<number, number>();
    const t0 = Date.now();
    while (seenOn.size < ids.length && Date.now() - t0 < 30_000) {
      for (const id of ids) {
        const at = cluster.ports.findIndex((_, i) => cluster.holds(i, keys.chunks(id)));
        if (at !== -1) seenOn.set(id, at);
      }
      await new Promise((r) => setTimeout(r, 20));
    }
    expect(seenOn).toEqual(new Map(ids.map((id) => [id, cluster.nodeOf(keys.chunks(id))])));
    // The overshoot MGET and the live-counter pipeline span the four campaigns' slots.
    expect([...(await herald.gateway.overshoot(ids)).keys()].sort()).toEqual([...ids].sort());
    for (const id of ids) {
      const done = await api.waitForStatus(id, ['completed', 'failed']);
      expect(done).toMatchObject({ status: 'completed', delivered: n, pending: 0 });
      expect(await eventCounts(herald, id)).toEqual({ n, u: n });
    }
    const live = await new LiveCounters(herald.gateway).read(ids);
    for (const id of ids) expect(live.get(id)).toMatchObject({ delivered: n, failed: 0 });
  });

  it('pauses and resumes with WebSocket frames carried by pub/sub across the cluster', async () => {
    const n = 20_000;
    const id = await api.nullCampaign(await api.audience(n, 'cw'), { name: 'live', rate_limit: 8_000, chunk_size: 500 });
    // A second process: its status changes reach this process's hub through the cluster's pub/sub.
    const other = await startTestHerald(ns, { port: 0 });
    extra.push(other);
    const ws = await WsClient.open(`ws://127.0.0.1:${herald.port}/v1/ws`, { authorization: `Bearer ${API_KEY}` });
    ws.send({ subscribe: String(id) });
    await ws.waitFor((f) => f.campaign_id === id && f.status === 'draft');
    const viaOther = apiFor(other);
    await viaOther.call('POST', `/v1/campaigns/${id}/start`);
    await ws.waitFor((f) => f.campaign_id === id && (f.sent ?? 0) > 4_000, 30_000);
    const pausedAt = Date.now();
    expect((await viaOther.call('POST', `/v1/campaigns/${id}/pause`)).body.status).toBe('paused');
    const paused = await ws.waitFor((f) => f.campaign_id === id && f.status === 'paused', 5_000);
    expect(paused.at - pausedAt).toBeLessThan(1_000);
    const atPause = (await api.waitForStatus(id, ['paused'])).sent as number;
    expect(atPause).toBeLessThan(n);
    await viaOther.call('POST', `/v1/campaigns/${id}/resume`);
    await ws.waitFor((f) => f.campaign_id === id && f.status === 'completed', 60_000);
    ws.ws.close();
    const got = (await api.call('GET', `/v1/campaigns/${id}`)).body;
    const last = ws.frames.filter((x) => x.frame.campaign_id === id).at(-1)!.frame;
    for (const k of ['status', 'total', 'sent', 'delivered', 'failed', 'pending']) expect(last[k]).toEqual(got[k]);
    expect(got).toMatchObject({ status: 'completed', delivered: n, pending: 0 });
    const mine = ws.frames.map((x) => x.frame).filter((f) => f.campaign_id === id);
    for (let i = 1; i < mine.length; i++) expect(mine[i]!.sent!).toBeGreaterThanOrEqual(mine[i - 1]!.sent!);
    expect(await eventCounts(herald, id)).toEqual({ n, u: n });
  });

  it('takes over the chunks of a process killed with -9, each recipient counted once', async () => {
    const n = 20_000;
    const lines: string[] = [];
    const child = await spawnHerald(ns, lines, {
      HERALD_SUBBATCH_SIZE: '50',
      HERALD_WEBHOOK_BATCH_SIZE: '50',
      HERALD_WEBHOOK_CONCURRENCY: '2',
      HERALD_RECLAIM_IDLE_MS: '2000',
      HERALD_LEASE_MS: '3000',
      // The child's events wait in its buffer: the ones it recorded must come back from the ledger.
      HERALD_SINK_FLUSH_MS: '60000',
      HERALD_SINK_FLUSH_ROWS: '1000000',
      HERALD_SINK_MAX_BUFFERED_ROWS: '1000000',
    });
    children.push(child);
    sink.seen.clear();
    const id = await api.webhookCampaign(await api.audience(n, 'ck'), sink.url, { name: 'kill -9 on a cluster' });
    await api.call('POST', `/v1/campaigns/${id}/start`);
    const mark = `-${child.pid}-`;
    const onChild = async (): Promise<number> => {
      const p = (await herald.redis.xpending(keys.chunks(id), CHUNK_GROUP, '-', '+', 10_000)) as Array<[string, string]>;
      return p.filter(([, consumer]) => consumer.includes(mark)).length;
    };
    while (sink.seen.size < 4_000 || !lines.some((l) => l.includes('campaign actor activated')) || (await onChild()) === 0) {
      await new Promise((r) => setTimeout(r, 10));
    }
    const exited = new Promise((r) => child.once('exit', r));
    const killedAt = Date.now();
    child.kill('SIGKILL');
    await exited;
    const done = await api.waitForStatus(id, ['completed'], 120_000);
    expect(sink.seen.size).toBe(n);
    const repeated = [...sink.seen.values()].filter((times) => times.length > 1);
    expect(repeated.length).toBeLessThanOrEqual(2 * 2 * 50); // the child's in-flight sub-batches
    expect(repeated.every((times) => times.length === 2 && times[1]! > killedAt)).toBe(true);
    expect(done).toMatchObject({ delivered: n, pending: 0 });
    expect(await eventCounts(herald, id)).toEqual({ n, u: n });
    expect((await new LiveCounters(herald.gateway).read([id])).get(id)).toMatchObject({ delivered: n, failed: 0 });
  });

  it('recovers a campaign whose master was killed and came back empty, from PostgreSQL, while another shard goes on', async () => {
    const n = 3_000;
    sink.seen.clear();
    const lostId = await api.webhookCampaign(await api.audience(n, 'cl'), sink.url, { name: 'master lost', chunk_size: 100 });
    const lostNode = cluster.nodeOf(keys.chunks(lostId));
    // A campaign on another master, created until one lands there: it must not notice the loss.
    const keptAudience = await api.audience(n, 'ck2');
    let keptId = await api.nullCampaign(keptAudience, { name: 'other shard', rate_limit: 1_000, chunk_size: 100 });
    while (cluster.nodeOf(keys.chunks(keptId)) === lostNode) {
      keptId = await api.nullCampaign(keptAudience, { name: 'other shard', rate_limit: 1_000, chunk_size: 100 });
    }
    await api.call('POST', `/v1/campaigns/${keptId}/start`);
    await api.call('POST', `/v1/campaigns/${lostId}/start`);
    // The other campaign's channel is null: the receiver sees only the lost one's messages.
    while (sink.seen.size < 600) await new Promise((r) => setTimeout(r, 5));

    await cluster.kill(lostNode);
    await new Promise((r) => setTimeout(r, 300));
    await cluster.up(lostNode);
    await cluster.waitOk();
    expect(cluster.holds(lostNode, keys.plan(lostId))).toBe(false); // it came back empty

    const done = await api.waitForStatus(lostId, ['completed'], 90_000);
    expect(done.delivered).toBe(n);
    expect(sink.seen.size).toBe(n);
    expect([...sink.seen.values()].filter((t) => t.length !== 1)).toEqual([]);
    expect(await eventCounts(herald, lostId)).toEqual({ n, u: n });
    const kept = await api.waitForStatus(keptId, ['completed'], 90_000);
    expect(kept.delivered).toBe(n);
    expect(await eventCounts(herald, keptId)).toEqual({ n, u: n });
    const gen = await herald.db.query('SELECT id, plan_generation FROM campaigns WHERE id = ANY($1) ORDER BY id', [[lostId, keptId]]);
    const byId = new Map(gen.rows.map((r: { id: number; plan_generation: number }) => [r.id, r.plan_generation]));
    expect(byId.get(lostId)).toBe(1); // re-planned once, from PostgreSQL
    expect(byId.get(keptId)).toBe(0); // its shard never lost anything
  });
});

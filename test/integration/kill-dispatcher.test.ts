import type { ChildProcess } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Herald } from '../../src/main.js';
import { apiFor, createNamespace, eventCounts, startTestHerald, type Api, type Namespace } from '../helpers/herald.js';
import { spawnHerald } from '../helpers/child-herald.js';
import { SlowSink } from '../helpers/slow-sink.js';
import { LiveCounters } from '../../src/progress/live-counters.js';
import { CHUNK_GROUP, Keys } from '../../src/stream/keys.js';

const n = 200_000;
const subBatch = 50;
const childWorkers = 2;
/** requests the child has in flight: what a kill can make the receiver get twice is this many sub-batches */
const childConcurrency = 2;

/**
 * The child's settings: the same idle time and lease as the in-process Herald, and its events held for
 * seconds before being written: when it dies, the ones it recorded in the ledger are in no ClickHouse row
 * yet, and only the ledger's records can bring them back.
 */
function childEnv(reclaimIdleMs: number, leaseMs: number): Record<string, string> {
  return {
    HERALD_WORKERS: String(childWorkers),
    HERALD_WEBHOOK_CONCURRENCY: String(childConcurrency),
    HERALD_SUBBATCH_SIZE: String(subBatch),
    HERALD_WEBHOOK_BATCH_SIZE: String(subBatch),
    HERALD_RECLAIM_IDLE_MS: String(reclaimIdleMs),
    HERALD_LEASE_MS: String(leaseMs),
    HERALD_SINK_FLUSH_MS: '60000',
    HERALD_SINK_FLUSH_ROWS: '1000000',
    HERALD_SINK_MAX_BUFFERED_ROWS: '1000000',
  };
}

/** Kills the child (SIGKILL) and waits until it has exited; resolves with when it was killed. */
async function kill(child: ChildProcess): Promise<number> {
  const exited = new Promise((r) => child.once('exit', r));
  const killedAt = Date.now();
  child.kill('SIGKILL');
  await exited;
  return killedAt;
}

/** After the kill: the campaign completes, every recipient once in ClickHouse, at most the in-flight sub-batches sent twice. */
async function expectEveryRecipientOnce(t: {
  herald: Herald;
  survivor: Herald;
  api: Api;
  sink: SlowSink;
  id: number;
  killedAt: number;
}): Promise<void> {
  const done = await t.api.waitForStatus(t.id, ['completed'], 240_000);
  expect(done.status).toBe('completed');
  // The receiver: every recipient, and repeats only of what the child had in flight (sent, not recorded).
  expect(t.sink.seen.size).toBe(n);
  const repeated = [...t.sink.seen.values()].filter((times) => times.length > 1);
  expect(repeated.length).toBeLessThanOrEqual(childConcurrency * subBatch);
  expect(repeated.every((times) => times.length === 2 && times[1]! > t.killedAt)).toBe(true);

  // ClickHouse: one delivered row per recipient, though the child died holding unwritten events.
  expect(await eventCounts(t.herald, t.id)).toEqual({ n, u: n });
  expect(done.delivered).toBe(n);
  expect(done.pending).toBe(0);
  // The live counters (raised in the ledger step) counted each recipient once too, across the takeover.
  const live = await new LiveCounters(t.herald.gateway).read([t.id]);
  expect(live.get(t.id)).toEqual({ delivered: n, failed: 0, skipped: 0, suppressed: 0, capped: 0 });
  // The survivor took the child's chunks over (reclaim) and rebuilt events from the ledger.
  expect(t.survivor.dispatcher!.statsOf(t.id)?.reclaimed).toBeGreaterThan(0);
}

interface KillSetup {
  ns: Namespace;
  /** the in-process Herald: API, and dispatcher unless `apiOnly` */
  herald: Herald;
  api: Api;
  child: ChildProcess;
  childLog: string[];
  sink: SlowSink;
  /** a second in-process dispatcher started by the test, if any (stopped after) */
  survivor?: Herald;
}

/** An in-process Herald and a `bin/herald serve` child on a namespace of their own; read the fields inside tests. */
function killSetup(o: { reclaimIdleMs: number; leaseMs: number; apiOnly?: boolean }): KillSetup {
  const t = { childLog: [] as string[], sink: new SlowSink(1) } as KillSetup;
  beforeAll(async () => {
    await t.sink.start();
    t.ns = await createNamespace({
      subBatchSize: subBatch,
      webhookBatchSize: subBatch,
      workers: 2,
      reclaimIdleMs: o.reclaimIdleMs,
      leaseMs: o.leaseMs,
    });
    t.herald = await startTestHerald(t.ns, o.apiOnly === true ? { workers: 0 } : {});
    t.api = apiFor(t.herald);
    t.child = await spawnHerald(t.ns, t.childLog, childEnv(o.reclaimIdleMs, o.leaseMs));
  });
  afterAll(async () => {
    if (t.child && t.child.exitCode === null && t.child.signalCode === null) t.child.kill('SIGKILL');
    await t.survivor?.stop();
    await t.herald?.stop();
    await t.ns?.drop();
    t.sink.server?.close();
  });
  return t;
}

describe('kill -9 of a dispatcher process in the middle of a webhook campaign', () => {
  const t = killSetup({ reclaimIdleMs: 2_000, leaseMs: 3_000 });

  it('completes with every recipient exactly once in ClickHouse, and at most the in-flight sub-batches sent twice', async () => {
    const { api, sink, childLog } = t;
    const audienceId = await api.audience(n, 'k');
    const id = await api.webhookCampaign(audienceId, sink.url, { name: 'kill -9' });
    await api.call('POST', `/v1/campaigns/${id}/start`);
    // Both processes are sending (the child has logged its actor) and a good part is out.
    while (sink.seen.size < 60_000 || !childLog.some((l) => l.includes('campaign actor activated'))) {
      await new Promise((r) => setTimeout(r, 20));
    }
    const killedAt = await kill(t.child);
    await expectEveryRecipientOnce({ herald: t.herald, survivor: t.herald, api, sink, id, killedAt });
  });
});

// The idle-time reclaim and the lease are set far beyond the test's bounds: only the liveness heartbeat
// (HERALD_LIVENESS_TTL_MS, default 3 s) can explain a quick takeover of the dead process's chunks and lease.
describe('kill -9 of the process that owns a webhook campaign, with the idle reclaim and the lease out of reach', () => {
  const leaseMs = 60_000;
  // The API alone at first, so the child is the first dispatcher to see the campaign and owns its lease.
  const t = killSetup({ reclaimIdleMs: 120_000, leaseMs, apiOnly: true });

  it('has its chunks and lease taken over within seconds, and every recipient counted once', async () => {
    const { api, sink, herald: front } = t;
    const audienceId = await api.audience(n, 'kt');
    const id = await api.webhookCampaign(audienceId, sink.url, { name: 'kill -9 takeover' });
    await api.call('POST', `/v1/campaigns/${id}/start`);
    const keys = new Keys(t.ns.config.redisPrefix);
    const mark = `-${t.child.pid}-`;
    while (!String(await front.redis.get(keys.lease(id))).includes(mark)) await new Promise((r) => setTimeout(r, 20));
    const survivor = (t.survivor = await startTestHerald(t.ns));
    // Both processes send, and a good part is out.
    while (sink.seen.size < 60_000 || (survivor.dispatcher!.statsOf(id)?.chunks ?? 0) === 0) await new Promise((r) => setTimeout(r, 20));

    const onChild = async (): Promise<number> => {
      const p = (await front.redis.xpending(keys.chunks(id), CHUNK_GROUP, '-', '+', 10_000)) as Array<[string, string]>;
      return p.filter(([, consumer]) => consumer.includes(mark)).length;
    };
    expect(await onChild()).toBeGreaterThan(0);
    const killedAt = await kill(t.child);
    while ((await onChild()) > 0) await new Promise((r) => setTimeout(r, 20));
    // Taken by liveness, long before the idle time or the lease could have let anyone take them (a bound
    // for a busy machine, not the speed: bench/reclaim.ts measures that).
    expect(Date.now() - killedAt).toBeLessThan(30_000);
    const lease = await front.redis.get(keys.lease(id));
    expect(lease).not.toBeNull();
    expect(lease).not.toContain(mark);

    await expectEveryRecipientOnce({ herald: front, survivor, api, sink, id, killedAt });
    expect(Date.now() - killedAt).toBeLessThan(leaseMs);
  });
});

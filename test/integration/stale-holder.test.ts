import type { ChildProcess } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Herald } from '../../src/main.js';
import { apiFor, createNamespace, eventCounts, startTestHerald, type Api, type Namespace } from '../helpers/herald.js';
import { spawnHerald } from '../helpers/child-herald.js';
import { SlowSink } from '../helpers/slow-sink.js';
import { CHUNK_GROUP, Keys } from '../../src/stream/keys.js';

interface StallCase {
  /** HERALD_RECLAIM_IDLE_MS and HERALD_LEASE_MS of both processes (the liveness ttl is the default, 3 s) */
  reclaimIdleMs: number;
  leaseMs: number;
  /** how long the child stays stopped */
  stallMs: number;
}

interface Stalled {
  herald: Herald;
  api: Api;
  sink: SlowSink;
  /** stops the child for the case's stallMs and wakes it; resolves with when it was woken */
  stall(): Promise<number>;
  /** entries of a campaign pending on the child's consumers */
  heldByChild(campaignId: number): Promise<number>;
}

/**
 * An in-process Herald and a `bin/herald serve` child with the same settings, on a namespace of their own.
 * Read the fields inside tests (they are set in beforeAll).
 */
function stalledChild(c: StallCase): Stalled {
  let ns: Namespace;
  let child: ChildProcess | undefined;
  const childLog: string[] = [];
  const t = { sink: new SlowSink(10) } as Stalled;

  beforeAll(async () => {
    await t.sink.start();
    // Two requests in flight per process, so what a stalled process can have sent unrecorded is 2 × 20.
    ns = await createNamespace({
      subBatchSize: 20,
      webhookBatchSize: 20,
      webhookConcurrency: 2,
      workers: 2,
      reclaimIdleMs: c.reclaimIdleMs,
      leaseMs: c.leaseMs,
    });
    t.herald = await startTestHerald(ns);
    t.api = apiFor(t.herald);
    child = await spawnHerald(ns, childLog, {
      HERALD_SUBBATCH_SIZE: '20',
      HERALD_WEBHOOK_BATCH_SIZE: '20',
      HERALD_WEBHOOK_CONCURRENCY: '2',
      HERALD_RECLAIM_IDLE_MS: String(c.reclaimIdleMs),
      HERALD_LEASE_MS: String(c.leaseMs),
    });
    t.stall = async () => {
      child!.kill('SIGSTOP');
      await new Promise((r) => setTimeout(r, c.stallMs));
      const wokeAt = Date.now();
      child!.kill('SIGCONT');
      return wokeAt;
    };
    const keys = new Keys(ns.config.redisPrefix);
    t.heldByChild = async (campaignId) => {
      const p = (await t.herald.redis.xpending(keys.chunks(campaignId), CHUNK_GROUP, '-', '+', 1000)) as Array<[string, string]>;
      return p.filter(([, consumer]) => consumer.includes(`-${child!.pid}-`)).length;
    };
  });

  afterAll(async () => {
    if (child && child.exitCode === null) {
      child.kill('SIGCONT');
      const exited = new Promise((r) => child!.once('exit', r));
      child.kill('SIGTERM');
      await exited;
    }
    await t.herald?.stop();
    await ns?.drop();
    t.sink.server?.close();
  });
  return t;
}

/** Starts a 4,000-recipient webhook campaign, stalls the child once 400 have arrived and it holds chunks; the campaign id and when it woke. */
async function campaignWithStall(t: Stalled, name: string): Promise<{ id: number; wokeAt: number }> {
  const audienceId = await t.api.audience(4_000, name.replace(/\W/g, ''));
  const id = await t.api.webhookCampaign(audienceId, t.sink.url, { name });
  await t.api.call('POST', `/v1/campaigns/${id}/start`);
  while (t.sink.seen.size < 400 || (await t.heldByChild(id)) === 0) await new Promise((r) => setTimeout(r, 5));
  const wokeAt = await t.stall();
  const done = await t.api.waitForStatus(id, ['completed'], 90_000);
  expect(done.status).toBe('completed');
  expect(t.sink.seen.size).toBe(4_000);
  return { id, wokeAt };
}

/** The contract: a holder woken after its chunks were taken over sends nothing more of them and records nothing. */
async function takenOverAndSilent(t: Stalled): Promise<number> {
  const n = 4_000;
  const { id, wokeAt } = await campaignWithStall(t, 'stalled holder');
  const repeated = [...t.sink.seen.entries()].filter(([, times]) => times.length > 1);
  // Only what the stalled process had in flight when it stopped (one sub-batch per request in flight) can arrive
  // twice: it was sent, but its ledger step never ran. Nothing is sent by it after it wakes.
  expect(repeated.length).toBeLessThanOrEqual(2 * 20);
  const secondAfterWake = repeated.filter(([, times]) => times[1]! > wokeAt + 200);
  expect(secondAfterWake).toEqual([]);
  // ClickHouse has every recipient's outcome, and the counts count each once: the woken process's unwritten
  // events of the chunks it lost are left out by the sink's fence (the new holder rebuilt them), and a
  // sub-batch stored twice all the same (the process froze just as its insert left) still counts once.
  expect((await eventCounts(t.herald, id)).u).toBe(n);
  expect((await t.api.call('GET', `/v1/campaigns/${id}`)).body).toMatchObject({ delivered: n, failed: 0, pending: 0 });
  return id;
}

describe('a dispatcher stalled past its hold (SIGSTOP) and woken again (SIGCONT)', () => {
  // Past the reclaim time (2 s) and the lease (3 s): the other process takes over its chunks.
  const t = stalledChild({ reclaimIdleMs: 2_000, leaseMs: 3_000, stallMs: 5_000 });
  it('has its chunks taken over and, once awake, sends nothing more of them', async () => {
    await takenOverAndSilent(t);
  });
});

describe('a dispatcher stalled past its liveness ttl, with the idle reclaim and the lease out of reach', () => {
  // Past the liveness ttl (3 s) only: its heartbeat lapsed, so its chunks (and its lease, if it held it)
  // are taken over by liveness; the same contract holds when it wakes.
  const t = stalledChild({ reclaimIdleMs: 120_000, leaseMs: 60_000, stallMs: 5_000 });
  it('has its chunks taken over by liveness and, once awake, sends nothing more of them', async () => {
    const id = await takenOverAndSilent(t);
    expect(t.herald.dispatcher!.statsOf(id)?.reclaimed).toBeGreaterThan(0);
  });
});

describe('a dispatcher stalled for less than its liveness ttl (an event-loop stall under load)', () => {
  // 1.5 s: its heartbeat (renewed every 500 ms, ttl 3 s) never lapses, so nothing is taken from it and
  // nothing is sent twice.
  const t = stalledChild({ reclaimIdleMs: 120_000, leaseMs: 60_000, stallMs: 1_500 });
  it('keeps its chunks: nothing taken over, nothing sent twice', async () => {
    const { id } = await campaignWithStall(t, 'short stall');
    expect([...t.sink.seen.values()].filter((times) => times.length > 1)).toEqual([]);
    expect(t.herald.dispatcher!.statsOf(id)?.reclaimed).toBe(0);
    expect((await eventCounts(t.herald, id)).u).toBe(4_000);
  });
});

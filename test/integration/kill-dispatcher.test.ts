import type { ChildProcess } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Herald } from '../../src/main.js';
import { apiFor, createNamespace, eventCounts, startTestHerald, type Api, type Namespace } from '../helpers/herald.js';
import { spawnHerald } from '../helpers/child-herald.js';
import { SlowSink } from '../helpers/slow-sink.js';
import { LiveCounters } from '../../src/progress/live-counters.js';
import { Keys } from '../../src/stream/keys.js';

describe('kill -9 of a dispatcher process in the middle of a webhook campaign', () => {
  let ns: Namespace;
  let herald: Herald;
  let api: Api;
  let child: ChildProcess | undefined;
  const childLog: string[] = [];
  const sink = new SlowSink(1);
  const subBatch = 50;
  const childWorkers = 2;

  beforeAll(async () => {
    await sink.start();
    ns = await createNamespace({ subBatchSize: subBatch, webhookBatchSize: subBatch, workers: 2, reclaimIdleMs: 2_000, leaseMs: 3_000 });
    herald = await startTestHerald(ns);
    api = apiFor(herald);
    child = await spawnHerald(ns, childLog, {
      HERALD_WORKERS: String(childWorkers),
      HERALD_SUBBATCH_SIZE: String(subBatch),
      HERALD_WEBHOOK_BATCH_SIZE: String(subBatch),
      HERALD_RECLAIM_IDLE_MS: '2000',
      HERALD_LEASE_MS: '3000',
      // The child holds its events for seconds before writing them: when it dies, the ones it recorded in
      // the ledger are in no ClickHouse row yet, and only the ledger's records can bring them back.
      HERALD_SINK_FLUSH_MS: '60000',
      HERALD_SINK_FLUSH_ROWS: '1000000',
      HERALD_SINK_MAX_BUFFERED_ROWS: '1000000',
    });
  });

  afterAll(async () => {
    if (child && child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    await herald?.stop();
    await ns?.drop();
    sink.server?.close();
  });

  it('completes with every recipient exactly once in ClickHouse, and at most the in-flight sub-batches sent twice', async () => {
    const n = 200_000;
    const audienceId = await api.audience(n, 'k');
    const id = await api.webhookCampaign(audienceId, sink.url, { name: 'kill -9' });
    await api.call('POST', `/v1/campaigns/${id}/start`);
    // Both processes are sending (the child has logged its actor) and a good part is out.
    while (sink.seen.size < 60_000 || !childLog.some((l) => l.includes('campaign actor activated'))) {
      await new Promise((r) => setTimeout(r, 20));
    }
    const exited = new Promise((r) => child!.once('exit', r));
    const killedAt = Date.now();
    child!.kill('SIGKILL');
    await exited;

    const done = await api.waitForStatus(id, ['completed'], 240_000);
    expect(done.status).toBe('completed');
    // The receiver: every recipient, and repeats only of what the child had in flight (sent, not recorded).
    expect(sink.seen.size).toBe(n);
    const repeated = [...sink.seen.values()].filter((times) => times.length > 1);
    expect(repeated.length).toBeLessThanOrEqual(childWorkers * subBatch);
    expect(repeated.every((times) => times.length === 2 && times[1]! > killedAt)).toBe(true);

    // ClickHouse: one delivered row per recipient, though the child died holding unwritten events.
    expect(await eventCounts(herald, id)).toEqual({ n, u: n });
    expect(done.delivered).toBe(n);
    expect(done.pending).toBe(0);
    // The live counters (raised in the ledger step) counted each recipient once too, across the takeover.
    const live = await new LiveCounters(herald.redis, new Keys(herald.config.redisPrefix)).read([id]);
    expect(live.get(id)).toEqual({ delivered: n, failed: 0 });
    // The survivor took the child's chunks over (reclaim) and rebuilt events from the ledger.
    expect(herald.dispatcher!.statsOf(id)?.reclaimed).toBeGreaterThan(0);
  });
});

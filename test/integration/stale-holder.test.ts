import type { ChildProcess } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Herald } from '../../src/main.js';
import { apiFor, createNamespace, eventCounts, startTestHerald, type Api, type Namespace } from '../helpers/herald.js';
import { spawnHerald } from '../helpers/child-herald.js';
import { SlowSink } from '../helpers/slow-sink.js';

describe('a dispatcher stalled past its hold (SIGSTOP) and woken again (SIGCONT)', () => {
  let ns: Namespace;
  let herald: Herald;
  let api: Api;
  let child: ChildProcess | undefined;
  const childLog: string[] = [];
  const sink = new SlowSink(10);

  beforeAll(async () => {
    await sink.start();
    ns = await createNamespace({ subBatchSize: 20, webhookBatchSize: 20, workers: 2, reclaimIdleMs: 2_000, leaseMs: 3_000 });
    herald = await startTestHerald(ns);
    api = apiFor(herald);
    child = await spawnHerald(ns, childLog, {
      HERALD_SUBBATCH_SIZE: '20',
      HERALD_WEBHOOK_BATCH_SIZE: '20',
      HERALD_RECLAIM_IDLE_MS: '2000',
      HERALD_LEASE_MS: '3000',
    });
  });

  afterAll(async () => {
    if (child && child.exitCode === null) {
      child.kill('SIGCONT');
      const exited = new Promise((r) => child!.once('exit', r));
      child.kill('SIGTERM');
      await exited;
    }
    await herald?.stop();
    await ns?.drop();
    sink.server?.close();
  });

  it('has its chunks taken over and, once awake, sends nothing more of them', async () => {
    const n = 4_000;
    const audienceId = await api.audience(n, 'st');
    const id = await api.webhookCampaign(audienceId, sink.url, { name: 'stalled holder' });
    await api.call('POST', `/v1/campaigns/${id}/start`);
    while (sink.seen.size < 400) await new Promise((r) => setTimeout(r, 5));

    child!.kill('SIGSTOP');
    // Past the reclaim time (2 s) and the lease (3 s): the other process takes over its chunks.
    await new Promise((r) => setTimeout(r, 5_000));
    const wokeAt = Date.now();
    child!.kill('SIGCONT');

    const done = await api.waitForStatus(id, ['completed'], 90_000);
    expect(done.status).toBe('completed');
    expect(sink.seen.size).toBe(n);
    const repeated = [...sink.seen.entries()].filter(([, times]) => times.length > 1);
    // Only what the stalled process had in flight when it stopped (one sub-batch per consumer) can arrive
    // twice: it was sent, but its ledger step never ran. Nothing is sent by it after it wakes.
    expect(repeated.length).toBeLessThanOrEqual(2 * 20);
    const secondAfterWake = repeated.filter(([, times]) => times[1]! > wokeAt + 200);
    expect(secondAfterWake).toEqual([]);
    // ClickHouse has every recipient's outcome, and the counts count each once: the woken process's unwritten
    // events of the chunks it lost are left out by the sink's fence (the new holder rebuilt them), and a
    // sub-batch stored twice all the same (the process froze just as its insert left) still counts once.
    expect((await eventCounts(herald, id)).u).toBe(n);
    expect((await api.call('GET', `/v1/campaigns/${id}`)).body).toMatchObject({ delivered: n, failed: 0, pending: 0 });
  });
});

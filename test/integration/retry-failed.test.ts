import type { Server } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Herald } from '../../src/main.js';
import { apiFor, createNamespace, eventCounts, startTestHerald, type Api, type Namespace } from '../helpers/herald.js';
import { listenLocal, rejectingReceiver } from '../helpers/local-http.js';

/** user `r<i>`: i % 7 == 0 fails its first delivery, i % 49 == 0 fails every time. */
const failsNow = (user: string, attempt: number): boolean => {
  const i = Number(user.slice(1));
  return i % 49 === 0 || (i % 7 === 0 && attempt === 1);
};

describe('retry-failed sends again to exactly the failed subset', () => {
  let ns: Namespace;
  let herald: Herald;
  let api: Api;
  let sink: Server;
  let sinkUrl: string;
  /** idempotency key → how many times it was posted */
  const posted = new Map<string, number>();

  beforeAll(async () => {
    sink = rejectingReceiver({ posted, rejects: (user, attempt) => (failsNow(user, attempt) ? `mailbox full (try ${attempt})` : null) });
    sinkUrl = await listenLocal(sink);
    ns = await createNamespace({ webhookBatchSize: 50, subBatchSize: 50 });
    herald = await startTestHerald(ns);
    api = apiFor(herald);
  });

  afterAll(async () => {
    await herald?.stop();
    await ns?.drop();
    sink?.close();
  });

  async function allFailures(id: number): Promise<Array<{ user_id: string; error: string; attempts: number }>> {
    const out: Array<{ user_id: string; error: string; attempts: number }> = [];
    for (let after = ''; ;) {
      const r = await api.call('GET', `/v1/campaigns/${id}/failures?limit=100${after ? `&after=${after}` : ''}`);
      expect(r.status).toBe(200);
      out.push(...r.body.failures);
      if (r.body.next_after === null) return out;
      after = r.body.next_after as string;
    }
  }

  it('retries only the current failures, round after round, and keeps the counts whole', async () => {
    const n = 3_000;
    const every7 = Math.floor(n / 7); // 428 fail the first time
    const every49 = Math.floor(n / 49); // 61 of them fail every time
    const audienceId = await api.audience(n, 'r');
    const id = await api.webhookCampaign(audienceId, sinkUrl, { name: 'retry' });
    expect((await api.call('POST', `/v1/campaigns/${id}/retry-failed`)).status).toBe(409); // a draft
    await api.call('POST', `/v1/campaigns/${id}/start`);
    const first = await api.waitForStatus(id, ['completed'], 60_000);
    expect(first).toMatchObject({ delivered: n - every7, failed: every7, pending: 0, retried: 0 });
    expect((await allFailures(id)).length).toBe(every7);

    const retry = await api.call('POST', `/v1/campaigns/${id}/retry-failed`);
    expect(retry).toMatchObject({ status: 200, body: { id, status: 'sending', retrying: every7 } });
    // Mid-round the sums still hold: those being retried are pending, not failed.
    const mid = (await api.call('GET', `/v1/campaigns/${id}`)).body;
    expect(mid.delivered + mid.failed + mid.pending + mid.aborted).toBe(n);
    const again = await api.call('POST', `/v1/campaigns/${id}/retry-failed`);
    expect(again).toMatchObject({ status: 409, body: { status: 'sending' } });

    const second = await api.waitForStatus(id, ['completed'], 60_000);
    expect(second).toMatchObject({ total: n, delivered: n - every49, failed: every49, pending: 0, sent: n, retried: every7 });
    const failures = await allFailures(id);
    expect(failures.map((f) => f.user_id).sort()).toEqual(Array.from({ length: every49 }, (_, k) => `r${(k + 1) * 49}`).sort());
    expect(failures.every((f) => f.attempts === 2 && f.error === 'mailbox full (try 2)')).toBe(true);

    // The receiver: the first round's failures twice, everyone else once.
    for (let i = 1; i <= n; i++) expect(posted.get(`${id}:r${i}`) ?? 0).toBe(i % 7 === 0 ? 2 : 1);
    expect(await eventCounts(herald, id)).toEqual({ n: n - every49, u: n - every49 });

    // A third round takes only the 61 still failing.
    expect((await api.call('POST', `/v1/campaigns/${id}/retry-failed`)).body).toMatchObject({ retrying: every49 });
    const third = await api.waitForStatus(id, ['completed'], 60_000);
    expect(third).toMatchObject({ delivered: n - every49, failed: every49, pending: 0, retried: every7 + every49 });
    expect((await allFailures(id)).every((f) => f.attempts === 3)).toBe(true);
  });

  it('answers retrying: 0 and stays completed when nothing failed', async () => {
    const audienceId = await api.audience(200, 'ok');
    const id = await api.nullCampaign(audienceId);
    await api.call('POST', `/v1/campaigns/${id}/start`);
    await api.waitForStatus(id, ['completed'], 30_000);
    const r = await api.call('POST', `/v1/campaigns/${id}/retry-failed`);
    expect(r).toMatchObject({ status: 200, body: { id, status: 'completed', retrying: 0 } });
    expect((await api.call('POST', '/v1/campaigns/999999999/retry-failed')).status).toBe(404);
  });
});

/**
 * A pause is looked at again when a sub-batch's first request is about to go, not only before the
 * sub-batch starts: under load the time between the two (building the request, waiting for the campaign's
 * in-flight byte budget) is what let requests out after a pause had been heard. Here the second chunk's
 * sub-batch has passed its look before the pause and waits for the byte budget (1 KiB: one request at a
 * time) behind the first chunk's request, which the receiver holds; the campaign is paused, and only then
 * is the first request answered. The second request must not go out; after the resume every recipient
 * gets the message exactly once.
 */
import { describe, expect, it } from 'vitest';
import { useHeraldWithHeldReceiver } from '../helpers/held-receiver.js';

const N = 40;
const CHUNK = 10;

describe('a pause heard while a sub-batch waits to post', () => {
  const ctx = useHeraldWithHeldReceiver({
    workers: 1,
    webhookConcurrency: 2,
    subBatchSize: CHUNK,
    webhookBatchSize: CHUNK,
    webhookMaxInflightBytes: 1024,
    webhookTimeoutMs: 30_000,
    pollMs: 50,
  });

  it('lets nothing out after the pause, and sends each recipient once after the resume', async () => {
    const { api, rx } = ctx;
    const audienceId = await api.audience(N, 'pg');
    const id = await api.webhookCampaign(audienceId, rx.url, { name: 'pause gate', chunk_size: CHUNK });
    expect((await api.call('POST', `/v1/campaigns/${id}/start`)).status).toBe(200);
    await rx.first;
    // the second chunk's sub-batch is built by now and waits for the byte budget
    await new Promise((r) => setTimeout(r, 300));
    expect((await api.call('POST', `/v1/campaigns/${id}/pause`)).status).toBe(200);
    const pausedAt = Date.now();
    // heard by the consumer (control channel, or the status poll every 50 ms)
    await new Promise((r) => setTimeout(r, 300));
    rx.release();
    await new Promise((r) => setTimeout(r, 1_000));
    expect(rx.posts.filter((p) => p.at > pausedAt)).toEqual([]);
    expect(rx.posts).toHaveLength(1);
    const paused = (await api.call('GET', `/v1/campaigns/${id}`)).body;
    expect(paused).toMatchObject({ status: 'paused', delivered: CHUNK, overshoot: CHUNK });

    expect((await api.call('POST', `/v1/campaigns/${id}/resume`)).status).toBe(200);
    const done = await api.waitForStatus(id, ['completed'], 30_000);
    expect(done).toMatchObject({ status: 'completed', delivered: N, failed: 0 });
    const perKey = new Map<string, number>();
    for (const p of rx.posts) for (const k of p.keys) perKey.set(k, (perKey.get(k) ?? 0) + 1);
    expect(perKey.size).toBe(N);
    expect([...perKey.values()].every((n) => n === 1)).toBe(true);
  });
});

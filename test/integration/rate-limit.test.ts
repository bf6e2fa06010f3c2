import { createServer, type Server } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Herald } from '../../src/main.js';
import { apiFor, createNamespace, startTestHerald, type Api, type Namespace } from '../helpers/herald.js';
import { listenLocal } from '../helpers/local-http.js';

describe('campaign send rate', () => {
  let ns: Namespace;
  let herald: Herald;
  let second: Herald;
  let api: Api;
  let sink: Server;
  let sinkUrl: string;
  let sinkCalls = 0;
  const keys = new Map<string, number>();

  beforeAll(async () => {
    // Answers the very first request with 429 Retry-After: 1, everything else with 200.
    sink = createServer((req, res) => {
      let data = '';
      req.on('data', (d: Buffer) => (data += d.toString()));
      req.on('end', () => {
        sinkCalls++;
        if (sinkCalls === 1) {
          res.writeHead(429, { 'retry-after': '1' }).end('slow down');
          return;
        }
        for (const m of (JSON.parse(data) as { messages: Array<{ idempotency_key: string }> }).messages) {
          keys.set(m.idempotency_key, (keys.get(m.idempotency_key) ?? 0) + 1);
        }
        res.writeHead(200).end();
      });
    });
    sinkUrl = await listenLocal(sink, '/');
    // One attempt only: a 429 that spent an attempt would fail its messages.
    ns = await createNamespace({ webhookAttempts: 1, webhookBatchSize: 50 });
    herald = await startTestHerald(ns);
    // A second process: the limit is shared by every consumer of every process.
    second = await startTestHerald(ns);
    api = apiFor(herald);
  });

  afterAll(async () => {
    await second?.stop();
    await herald?.stop();
    await ns?.drop();
    sink?.close();
  });

  const campaign = (audienceId: number, extra: Record<string, unknown>): Promise<number> =>
    api.nullCampaign(audienceId, { chunk_size: 100, ...extra });

  it('holds a campaign to its rate across consumers and processes', async () => {
    const audienceId = await api.audience(10_000, 'rl');
    const id = await campaign(audienceId, { rate_limit: 4000 });
    expect((await api.call('GET', `/v1/campaigns/${id}`)).body.rate_limit).toBe(4000);
    const t0 = Date.now();
    await api.call('POST', `/v1/campaigns/${id}/start`);
    const done = await api.waitForStatus(id, ['completed']);
    // 10,000 at 4,000/s is 2.5 s; the schedule allows a 100 ms head start.
    expect(Date.now() - t0).toBeGreaterThanOrEqual(2_300);
    expect(done.delivered).toBe(10_000);
  });

  it('applies a rate changed while sending', async () => {
    const audienceId = await api.audience(20_000, 'rc');
    const id = await campaign(audienceId, { rate_limit: 500 });
    await api.call('POST', `/v1/campaigns/${id}/start`);
    await new Promise((r) => setTimeout(r, 1_000));
    const before = (await api.call('GET', `/v1/campaigns/${id}`)).body;
    // at 500/s, 20,000 would take 40 s
    expect(before.sent).toBeLessThan(2_000);
    const patched = await api.call('PATCH', `/v1/campaigns/${id}`, { rate_limit: null });
    expect(patched.status).toBe(200);
    expect(patched.body.rate_limit).toBeNull();
    const done = await api.waitForStatus(id, ['completed'], 20_000);
    expect(done.delivered).toBe(20_000);

    expect((await api.call('PATCH', `/v1/campaigns/${id}`, { rate_limit: 5 })).body).toMatchObject({ status: 'completed' });
    expect((await api.call('PATCH', `/v1/campaigns/${id}`, { rate_limit: 0 })).body.field).toBe('rate_limit');
    expect((await api.call('PATCH', `/v1/campaigns/${id}`, { name: 'x' })).body.field).toBe('name');
    expect((await api.call('PATCH', '/v1/campaigns/987654', { rate_limit: 5 })).status).toBe(404);
  });

  it('slows down on 429 with Retry-After instead of failing', async () => {
    const audienceId = await api.audience(1_000, 'th');
    const c = await api.call('POST', '/v1/campaigns', {
      name: 'throttled',
      audience_id: audienceId,
      channel: { type: 'webhook', url: sinkUrl },
      content: { title: 't', body: 'b' },
      chunk_size: 100,
    });
    const t0 = Date.now();
    await api.call('POST', `/v1/campaigns/${c.body.id}/start`);
    const done = await api.waitForStatus(c.body.id, ['completed']);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(1_000);
    expect(done).toMatchObject({ delivered: 1_000, failed: 0 });
    expect(keys.size).toBe(1_000);
    expect([...keys.values()].every((n) => n === 1)).toBe(true);
  });
});

import { createServer, type Server } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Herald } from '../../src/main.js';
import { apiFor, createNamespace, startTestHerald, type Api, type Namespace } from '../helpers/herald.js';
import { listenLocal } from '../helpers/local-http.js';

interface Received {
  campaign_id: number;
  messages: Array<{ user_id: string; address: string | null; title: string; body: string; idempotency_key: string; tracking_url: string }>;
}

describe('webhook channel against a local HTTP sink', () => {
  let ns: Namespace;
  let herald: Herald;
  let api: Api;
  let sink: Server;
  let sinkUrl: string;
  const attemptsByBatch = new Map<string, number>();
  const delivered = new Map<string, number>();
  const samples: Received[] = [];

  beforeAll(async () => {
    // The sink sees batches of 10 consecutive users (w1..w10, w11..w20, …). Batch number b = (first - 1) / 10:
    // b % 10 == 2 answers 500 twice and then 200; b % 10 == 6 answers 422; in a 200, users ending in 9 are
    // listed as failed.
    sink = createServer((req, res) => {
      let data = '';
      req.on('data', (d: Buffer) => (data += d.toString()));
      req.on('end', () => {
        const body = JSON.parse(data) as Received;
        if (samples.length < 3) samples.push(body);
        const first = body.messages[0]!.user_id;
        const b = (Number(first.slice(1)) - 1) / 10;
        const n = (attemptsByBatch.get(first) ?? 0) + 1;
        attemptsByBatch.set(first, n);
        if (b % 10 === 2 && n <= 2) {
          res.writeHead(500).end('try later');
          return;
        }
        if (b % 10 === 6) {
          res.writeHead(422).end('bad batch');
          return;
        }
        const failed = body.messages
          .filter((m) => m.user_id.endsWith('9'))
          .map((m) => ({ idempotency_key: m.idempotency_key, error: 'no such user' }));
        for (const m of body.messages) {
          if (!m.user_id.endsWith('9')) delivered.set(m.idempotency_key, (delivered.get(m.idempotency_key) ?? 0) + 1);
        }
        res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ failed }));
      });
    });
    sinkUrl = await listenLocal(sink);
    ns = await createNamespace({ webhookBackoffMs: 10, webhookBatchSize: 10, webhookAttempts: 4 });
    herald = await startTestHerald(ns);
    api = apiFor(herald);
  });

  afterAll(async () => {
    await herald?.stop();
    await ns?.drop();
    sink?.close();
  });

  it('retries 5xx, fails 4xx and per-message rejections, and counts both exactly', async () => {
    const n = 2000;
    const audienceId = await api.audience(n, 'w');
    const c = await api.call('POST', '/v1/campaigns', {
      name: 'webhook',
      audience_id: audienceId,
      channel: { type: 'webhook', url: sinkUrl },
      content: { title: 'T', body: 'B' },
      chunk_size: 100,
    });
    expect(c.status).toBe(201);
    await api.call('POST', `/v1/campaigns/${c.body.id}/start`);
    const done = await api.waitForStatus(c.body.id, ['completed']);

    // 200 batches: 20 retried twice, 20 rejected whole (200 failed), 180 with one user ending in 9 (180 failed).
    expect(attemptsByBatch.size).toBe(200);
    const retried = [...attemptsByBatch.entries()].filter(([first]) => ((Number(first.slice(1)) - 1) / 10) % 10 === 2);
    expect(retried).toHaveLength(20);
    for (const [, attempts] of retried) expect(attempts).toBe(3);
    const expectedFailed = 200 + 180;
    expect(delivered.size).toBe(n - expectedFailed);
    expect(done.total).toBe(n);
    expect(done.delivered).toBe(delivered.size);
    expect(done.failed).toBe(expectedFailed);
    expect(done.delivered + done.failed).toBe(n);
    for (const count of delivered.values()) expect(count).toBe(1);
    const err = await herald.ch.rows<{ error: string; n: string }>(
      `SELECT error, count() AS n FROM message_events WHERE campaign_id = ${c.body.id} AND kind = 'failed' GROUP BY error`,
    );
    expect(err.find((e) => e.error === 'no such user')).toBeDefined();
    expect(err.find((e) => e.error.startsWith('HTTP 422: bad batch'))).toBeDefined();
    // The payload: campaign id, and per message the user, address, content and a stable idempotency key.
    const m = samples[0]!.messages[0]!;
    expect(samples[0]!.campaign_id).toBe(c.body.id);
    expect(m).toEqual({
      user_id: m.user_id,
      address: `${m.user_id}@example.test`,
      title: 'T',
      body: 'B',
      idempotency_key: `${c.body.id}:${m.user_id}`,
      tracking_url: expect.stringMatching(new RegExp(`^http://127\\.0\\.0\\.1:${herald.port}/t/t2\\.${c.body.id}\\.`)),
      // no topic: the global list
      unsubscribe_url: expect.stringMatching(new RegExp(`^http://127\\.0\\.0\\.1:${herald.port}/u/s2\\.${c.body.id}\\.[^.]+\\.\\.`)),
    });
    // The message's own links work: its pixel records a read, and the same body under the unsubscribe
    // kind (the other half of the message's HMAC) records none (the pixel answers its image either way).
    await fetch(m.tracking_url.replace('/t/t2.', '/t/s2.'));
    expect((await fetch(m.tracking_url)).status).toBe(200);
    for (let i = 0; i < 100; i++) {
      if ((await api.call('GET', `/v1/campaigns/${c.body.id}`)).body.read >= 1) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    expect((await api.call('GET', `/v1/campaigns/${c.body.id}`)).body.read).toBe(1);
  });

  it('lists failed recipients page by page with their latest error', async () => {
    const list = await api.call('GET', '/v1/campaigns?status=completed&limit=1');
    const id = list.body.campaigns[0].id as number;
    const seen: Array<{ user_id: string; error: string; attempts: number }> = [];
    let after = '';
    for (let page = 0; page < 10; page++) {
      const r = await api.call('GET', `/v1/campaigns/${id}/failures?limit=100&after=${encodeURIComponent(after)}`);
      expect(r.status).toBe(200);
      seen.push(...r.body.failures);
      if (r.body.next_after === null) break;
      after = r.body.next_after;
    }
    expect(seen).toHaveLength(380);
    expect(new Set(seen.map((f) => f.user_id)).size).toBe(380);
    expect(seen.every((f) => f.attempts === 1)).toBe(true);
    expect(seen.filter((f) => f.error === 'no such user')).toHaveLength(180);
    expect(seen.filter((f) => f.error.startsWith('HTTP 422'))).toHaveLength(200);
    expect((await api.call('GET', `/v1/campaigns/${id}/failures?limit=5000`)).body.field).toBe('limit');
    expect((await api.call('GET', '/v1/campaigns/987654/failures')).status).toBe(404);
  });

  it('leaves the tracking URL out of messages when the campaign says channel.tracking false', async () => {
    const seen: Received['messages'] = [];
    const plain = createServer((req, res) => {
      const parts: Buffer[] = [];
      req.on('data', (d: Buffer) => parts.push(d));
      req.on('end', () => {
        seen.push(...(JSON.parse(Buffer.concat(parts).toString()) as Received).messages);
        res.writeHead(200).end();
      });
    });
    const url = await listenLocal(plain, '/plain');
    try {
      const bad = await api.call('POST', '/v1/campaigns', {
        name: 'bad',
        audience_id: 1,
        channel: { type: 'webhook', url, tracking: 'no' },
        content: { title: 't', body: 'b' },
      });
      expect(bad.status).toBe(400);
      expect(bad.body.field).toBe('channel.tracking');
      const audienceId = await api.audience(30, 'nt');
      const id = await api.webhookCampaign(audienceId, url, { channel: { type: 'webhook', url, tracking: false } });
      expect((await api.call('GET', `/v1/campaigns/${id}`)).body.channel).toEqual({ type: 'webhook', url, tracking: false });
      await api.call('POST', `/v1/campaigns/${id}/start`);
      expect((await api.waitForStatus(id, ['completed'])).delivered).toBe(30);
      expect(seen).toHaveLength(30);
      for (const m of seen) expect(m).not.toHaveProperty('tracking_url');
    } finally {
      plain.close();
    }
  });
});

import { createServer, type Server } from 'node:http';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startHerald, type Herald } from '../../src/main.js';
import { tokenSecret } from '../../src/config.js';
import { API_KEY, Api, apiFor, createNamespace, eventually, startTestHerald, type Namespace } from '../helpers/herald.js';
import { listenLocal } from '../helpers/local-http.js';
import { scrape, sumOf, type Sample } from '../helpers/prometheus.js';
import { WsClient } from '../helpers/ws-client.js';

const METRICS_KEY = 'metrics-key-0123456789';

/** Herald's own series: the process and Node.js ones appear as they are first observed (a GC kind's histogram). */
function ownSeries(samples: readonly Sample[]): number {
  return samples.filter((s) => !/^herald_(nodejs|process)_/.test(s.name)).length;
}

/** Distinct campaigns that have any series. */
function campaignsIn(samples: readonly Sample[]): Set<string> {
  return new Set(samples.filter((s) => s.labels.campaign !== undefined).map((s) => s.labels.campaign!));
}

describe('GET /metrics on a serve process', () => {
  let ns: Namespace;
  let herald: Herald;
  let api: Api;
  let receiver: Server;
  let receiverUrl: string;
  let requests = 0;

  beforeAll(async () => {
    // First request 429 (no wait), every other one 400: every message fails, one throttle counted.
    receiver = createServer((req, res) => {
      req.resume();
      req.on('end', () => {
        requests++;
        if (requests === 1) res.writeHead(429, { 'retry-after': '0' }).end('slow down');
        else res.writeHead(400).end('no such users');
      });
    });
    receiverUrl = await listenLocal(receiver);
    ns = await createNamespace({ webhookBackoffMs: 10 });
    herald = await startTestHerald(ns);
    api = apiFor(herald);
  });

  afterAll(async () => {
    await herald?.stop();
    await ns?.drop();
    await new Promise((r) => receiver?.close(r));
  });

  it('counts a null campaign while it sends and after, as the campaign counts it', async () => {
    const total = 6000;
    const audience = await api.audience(total, 'm');
    const id = await api.nullCampaign(audience, { chunk_size: 100, rate_limit: 3000 });
    const label = String(id);
    expect((await api.call('POST', `/v1/campaigns/${id}/start`)).status).toBe(200);

    // During: some delivered, fewer than all, the stream and the rate-limit waits visible.
    const during = await eventually(
      () => scrape(api.base),
      (s) => sumOf(s, 'herald_messages_total', { campaign: label, outcome: 'delivered' }) > 0,
    );
    const deliveredDuring = sumOf(during, 'herald_messages_total', { campaign: label, outcome: 'delivered' });
    expect(deliveredDuring).toBeGreaterThan(0);
    expect(deliveredDuring).toBeLessThan(total);
    expect(during.some((s) => s.name === 'herald_stream_length_chunks' && s.labels.campaign === label)).toBe(true);
    expect(sumOf(during, 'herald_stream_length_chunks', { campaign: label })).toBeGreaterThan(0);
    expect(sumOf(during, 'herald_campaigns_hosted')).toBe(1);
    const seen = await api.call('GET', `/v1/campaigns/${id}`);
    expect(seen.body.status).toBe('sending');

    const done = await api.waitForStatus(id, ['completed']);
    // The campaign's own counts (ClickHouse and the ledger) are final once its events landed.
    const view = await eventually(
      async () => (await api.call('GET', `/v1/campaigns/${id}`)).body,
      (c) => c.delivered === total,
    );
    expect(done.status).toBe('completed');
    // The actor stops hosting the campaign once its completion's last duties are done (the count check
    // reads ClickHouse twice when a view lags), a moment after the status says completed.
    const after = await eventually(
      () => scrape(api.base),
      (s) => sumOf(s, 'herald_campaigns_hosted') === 0,
    );
    for (const outcome of ['delivered', 'failed', 'skipped', 'suppressed', 'capped', 'aborted']) {
      expect(sumOf(after, 'herald_messages_total', { campaign: label, channel: 'null', outcome }), outcome).toBe(view[outcome]);
    }
    expect(view.delivered).toBe(total);
    // Recently finished: still there (retention is 10 minutes by default); no longer hosted, so no stream.
    expect(sumOf(after, 'herald_campaigns_hosted')).toBe(0);
    expect(after.some((s) => s.name === 'herald_stream_length_chunks' && s.labels.campaign === label)).toBe(false);
    expect(sumOf(after, 'herald_rate_limit_waits_total', { campaign: label })).toBeGreaterThan(0);
    expect(sumOf(after, 'herald_rate_limit_wait_seconds_total', { campaign: label })).toBeGreaterThan(0.5);
    // One chunk per 100 recipients, each one channel call (the null channel sends a chunk at once).
    expect(sumOf(after, 'herald_chunk_duration_seconds_count', { channel: 'null' })).toBe(total / 100);
    expect(sumOf(after, 'herald_send_duration_seconds_count', { channel: 'null' })).toBe(total / 100);
    expect(sumOf(after, 'herald_sink_inserted_rows_total')).toBeGreaterThanOrEqual(total);
    expect(sumOf(after, 'herald_sink_flush_duration_seconds_count')).toBeGreaterThan(0);
    expect(sumOf(after, 'herald_sink_buffered_rows')).toBe(0);
    // The import of the audience, and the process's own collectors.
    expect(sumOf(after, 'herald_imports_started_total')).toBeGreaterThanOrEqual(1);
    expect(sumOf(after, 'herald_imports_finished_total', { outcome: 'completed' })).toBeGreaterThanOrEqual(1);
    expect(sumOf(after, 'herald_import_rows_total', { kind: 'imported' })).toBeGreaterThanOrEqual(total);
    expect(sumOf(after, 'herald_process_cpu_seconds_total')).toBeGreaterThan(0);
    expect(after.some((s) => s.name === 'herald_nodejs_heap_size_used_bytes')).toBe(true);
  });

  it('counts a cancelled campaign’s unsent recipients as aborted, as the campaign does', async () => {
    const total = 4000;
    const id = await api.nullCampaign(await api.audience(total, 'ab'), { chunk_size: 100, rate_limit: 1000 });
    const label = String(id);
    expect((await api.call('POST', `/v1/campaigns/${id}/start`)).status).toBe(200);
    await eventually(
      () => scrape(api.base),
      (s) => sumOf(s, 'herald_messages_total', { campaign: label, outcome: 'delivered' }) > 0,
    );
    expect((await api.call('POST', `/v1/campaigns/${id}/cancel`)).status).toBe(200);
    const view = await eventually(
      async () => (await api.call('GET', `/v1/campaigns/${id}`)).body,
      (c) => c.aborts_recorded_at !== null && c.delivered + c.aborted === total,
    );
    expect(view.aborted).toBeGreaterThan(0);
    expect(view.delivered + view.aborted).toBe(total);
    const s = await scrape(api.base);
    expect(sumOf(s, 'herald_messages_total', { campaign: label, outcome: 'delivered' })).toBe(view.delivered);
    expect(sumOf(s, 'herald_messages_total', { campaign: label, outcome: 'aborted' })).toBe(view.aborted);
  });

  it('counts webhook failures as failed, and the receiver’s 429', async () => {
    const total = 250;
    const audience = await api.audience(total, 'wf');
    const id = await api.webhookCampaign(audience, receiverUrl);
    const label = String(id);
    expect((await api.call('POST', `/v1/campaigns/${id}/start`)).status).toBe(200);
    await api.waitForStatus(id, ['completed']);
    const view = await eventually(
      async () => (await api.call('GET', `/v1/campaigns/${id}`)).body,
      (c) => c.failed === total,
    );
    expect(view.failed).toBe(total);
    const s = await scrape(api.base);
    expect(sumOf(s, 'herald_messages_total', { campaign: label, channel: 'webhook', outcome: 'failed' })).toBe(total);
    expect(sumOf(s, 'herald_messages_total', { campaign: label, channel: 'webhook', outcome: 'delivered' })).toBe(0);
    expect(sumOf(s, 'herald_webhook_throttled_total', { campaign: label })).toBe(1);
    expect(sumOf(s, 'herald_send_duration_seconds_count', { channel: 'webhook' })).toBe(Math.ceil(total / 100));
  });

  it('counts WebSocket clients, and those gone', async () => {
    const before = await scrape(api.base);
    const a = await WsClient.open(`${api.base.replace('http', 'ws')}/v1/ws`, { authorization: `Bearer ${API_KEY}` });
    const b = await WsClient.open(`${api.base.replace('http', 'ws')}/v1/ws`, { authorization: `Bearer ${API_KEY}` });
    expect(sumOf(await scrape(api.base), 'herald_ws_clients')).toBe(sumOf(before, 'herald_ws_clients') + 2);
    a.ws.close();
    const after = await eventually(
      () => scrape(api.base),
      (s) => sumOf(s, 'herald_ws_closed_total', { reason: 'other' }) > sumOf(before, 'herald_ws_closed_total', { reason: 'other' }),
    );
    expect(sumOf(after, 'herald_ws_closed_total', { reason: 'other' })).toBe(
      sumOf(before, 'herald_ws_closed_total', { reason: 'other' }) + 1,
    );
    expect(sumOf(after, 'herald_ws_clients')).toBe(sumOf(before, 'herald_ws_clients') + 1);
    expect(sumOf(after, 'herald_ws_slow_clients')).toBe(0);
    b.ws.close();
  });

  it('asks for a bearer key when HERALD_METRICS_KEY is set', async () => {
    const keyed = await startTestHerald(ns, { metricsKey: METRICS_KEY, workers: 0 });
    try {
      const base = `http://127.0.0.1:${keyed.port}`;
      const none = await fetch(`${base}/metrics`);
      expect(none.status).toBe(401);
      expect(((await none.json()) as { field: string }).field).toBe('authorization');
      expect((await fetch(`${base}/metrics`, { headers: { authorization: `Bearer ${API_KEY}` } })).status).toBe(401);
      const samples = await scrape(base, { authorization: `Bearer ${METRICS_KEY}` });
      expect(samples.some((s) => s.name === 'herald_messages_total' || s.name === 'herald_campaigns_hosted')).toBe(true);
    } finally {
      await keyed.stop();
    }
  });
});

describe('a worker process', () => {
  let ns: Namespace;
  let front: Herald;
  let worker: Herald;
  let api: Api;
  let workerBase: string;
  const retentionMs = 1000;

  beforeAll(async () => {
    ns = await createNamespace();
    // The API process (HERALD_ROLE=api, its consumer count left at the default) sends nothing: every
    // campaign goes through the worker.
    front = await startTestHerald(ns, { role: 'api' });
    api = apiFor(front);
    // No API key: a worker needs none, only the API's token secret for the links it signs.
    const cfg = Object.freeze({ ...ns.config, apiKeys: [], secret: tokenSecret(ns.config), metricsRetentionMs: retentionMs });
    worker = await startHerald(cfg, { role: 'worker', migrate: false, logger: pino({ level: cfg.logLevel }) });
    workerBase = `http://127.0.0.1:${worker.port}`;
  });

  afterAll(async () => {
    await worker?.stop();
    await front?.stop();
    await ns?.drop();
  });

  it('refuses to start without a way to sign links', async () => {
    const cfg = Object.freeze({ ...ns.config, apiKeys: [], secret: '' });
    await expect(startHerald(cfg, { role: 'worker', migrate: false, logger: pino({ level: 'silent' }) })).rejects.toMatchObject({
      code: 'CONFIG_INVALID',
      details: { field: 'HERALD_SECRET' },
    });
  });

  it('answers /healthz and /metrics, 404 on the API, and dispatches', async () => {
    expect(worker.dispatcher).not.toBeNull();
    expect(front.dispatcher).toBeNull();
    expect(front.config.workers).toBeGreaterThan(0);
    const health = await fetch(`${workerBase}/healthz`);
    expect(health.status).toBe(200);
    expect(((await health.json()) as { status: string }).status).toBe('ok');
    for (const path of ['/v1/campaigns', '/v1/openapi.json', '/v1/ws/clients', '/']) {
      const r = await new Api(workerBase).call('GET', path);
      expect(r.status, path).toBe(404);
    }
    expect((await new Api(workerBase).call('POST', '/v1/campaigns', {})).status).toBe(404);

    const total = 500;
    const id = await api.nullCampaign(await api.audience(total, 'wk'), { chunk_size: 50 });
    expect((await api.call('POST', `/v1/campaigns/${id}/start`)).status).toBe(200);
    await api.waitForStatus(id, ['completed']);
    const s = await scrape(workerBase);
    expect(sumOf(s, 'herald_messages_total', { campaign: String(id), outcome: 'delivered' })).toBe(total);
    // The API process sent none of it.
    expect(sumOf(await scrape(api.base), 'herald_messages_total', { campaign: String(id) })).toBe(0);
  });

  it('keeps the per-campaign series bounded over 100 campaigns', async () => {
    const audience = await api.audience(3, 'card');
    const perBatch = 10;
    /** campaign → when it was seen completed (after its last count) */
    const finishedAt = new Map<string, number>();
    // The earlier test's campaign may still be within its retention.
    for (const c of campaignsIn(await scrape(workerBase))) finishedAt.set(c, Date.now());
    let most = 0;
    /** Herald's own series when the most campaigns had series */
    let seriesAtMost = 0;
    for (let batch = 0; batch < 100 / perBatch; batch++) {
      const ids: number[] = [];
      for (let i = 0; i < perBatch; i++) ids.push(await api.nullCampaign(audience));
      const startedAt = Date.now();
      await Promise.all(ids.map((id) => api.call('POST', `/v1/campaigns/${id}/start`)));
      await Promise.all(ids.map((id) => api.waitForStatus(id, ['completed'])));
      for (const id of ids) finishedAt.set(String(id), Date.now());
      const scrapedAt = Date.now();
      const s = await scrape(workerBase);
      const present = campaignsIn(s);
      if (present.size >= most) seriesAtMost = ownSeries(s);
      most = Math.max(most, present.size);
      // This batch's campaigns, counted since it started, are all there if that is within the retention ...
      if (scrapedAt - startedAt < retentionMs) {
        for (const id of ids) expect(sumOf(s, 'herald_messages_total', { campaign: String(id), outcome: 'delivered' })).toBe(3);
      }
      // ... and none that finished more than the retention before.
      for (const c of present) expect(finishedAt.get(c)!, `campaign ${c}`).toBeGreaterThan(scrapedAt - retentionMs);
    }
    console.log(`most campaigns with series at once: ${most} of 100`);
    expect(most).toBeGreaterThanOrEqual(perBatch);
    expect(most).toBeLessThan(100);
    expect(worker.metrics.campaignsWithSeries().length).toBeLessThan(100);
    // Once the retention has passed, no campaign has a series, and there are fewer series than when the most
    // campaigns had theirs. (Not fewer than after the first batch: series of other families appear as they
    // are first observed, and a CI run saw as many appear meanwhile as the first batch's campaigns had.)
    await new Promise((r) => setTimeout(r, retentionMs + 500));
    const s = await scrape(workerBase);
    expect(campaignsIn(s).size).toBe(0);
    expect(worker.metrics.campaignsWithSeries()).toEqual([]);
    expect(ownSeries(s)).toBeLessThan(seriesAtMost);
  });
});

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Herald } from '../../src/main.js';
import { apiFor, createNamespace, startTestHerald, type Api, type Namespace } from '../helpers/herald.js';
import { SlowSink } from '../helpers/slow-sink.js';
import { proxyFor, type TcpProxy } from '../helpers/tcp-proxy.js';

describe('ClickHouse unavailable during a campaign', () => {
  let ns: Namespace;
  let herald: Herald;
  let api: Api;
  let proxy: TcpProxy;
  const sink = new SlowSink(5);

  beforeAll(async () => {
    await sink.start();
    ns = await createNamespace({ subBatchSize: 50, webhookBatchSize: 50, workers: 2, sinkFlushRows: 500, sinkMaxBufferedRows: 2_000 });
    // Herald reaches the real ClickHouse through a proxy the test can cut.
    const behind = await proxyFor(ns.config.clickhouseUrl, 8123);
    proxy = behind.proxy;
    herald = await startTestHerald(ns, { clickhouseUrl: behind.url });
    api = apiFor(herald);
  });

  afterAll(async () => {
    await herald?.stop();
    await proxy?.close();
    await ns?.drop();
    sink.server?.close();
  });

  it('keeps the events while it is away and, once back, counts exactly what the receiver got', async () => {
    const n = 6_000;
    const audienceId = await api.audience(n, 'co');
    const id = await api.webhookCampaign(audienceId, sink.url, { name: 'clickhouse outage' });
    await api.call('POST', `/v1/campaigns/${id}/start`);
    while (sink.seen.size < 500) await new Promise((r) => setTimeout(r, 5));

    proxy.cut();
    await new Promise((r) => setTimeout(r, 1_500));
    // Sending goes on only until the unwritten-events buffer is full (backpressure), then waits.
    const during = sink.seen.size;
    expect(during).toBeLessThan(n);
    await new Promise((r) => setTimeout(r, 700));
    expect(sink.seen.size).toBe(during);
    const status = (await api.call('GET', `/v1/campaigns/${id}`)).status;
    expect(status).toBe(503);

    proxy.restore();
    const done = await api.waitForStatus(id, ['completed'], 90_000);
    expect(sink.seen.size).toBe(n);
    expect([...sink.seen.values()].filter((t) => t.length !== 1)).toEqual([]);
    expect(done.delivered).toBe(n);
    const rows = await herald.ch.rows<{ n: string; u: string }>(
      `SELECT count() AS n, uniqExact(user_id) AS u FROM message_events WHERE campaign_id = ${id}`,
    );
    expect(rows[0]).toEqual({ n: String(n), u: String(n) });
  });
});

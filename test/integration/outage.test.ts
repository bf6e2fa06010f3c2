import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Herald } from '../../src/main.js';
import { apiFor, createNamespace, startTestHerald, type Api, type Namespace } from '../helpers/herald.js';
import { SlowSink } from '../helpers/slow-sink.js';
import { proxyFor, type TcpProxy } from '../helpers/tcp-proxy.js';

describe('PostgreSQL unavailable during a campaign', () => {
  let ns: Namespace;
  let herald: Herald;
  let api: Api;
  let proxy: TcpProxy;
  const sink = new SlowSink(10);

  beforeAll(async () => {
    await sink.start();
    ns = await createNamespace({ subBatchSize: 20, webhookBatchSize: 20, workers: 2, pollMs: 100 });
    // Herald reaches the real PostgreSQL through a proxy the test can cut.
    const behind = await proxyFor(ns.config.databaseUrl, 5432);
    proxy = behind.proxy;
    herald = await startTestHerald(ns, { databaseUrl: behind.url });
    api = apiFor(herald);
  });

  afterAll(async () => {
    await herald?.stop();
    await proxy?.close();
    await ns?.drop();
    sink.server?.close();
  });

  it('holds dispatch while PostgreSQL is away and finishes exactly once when it is back', async () => {
    const n = 3_000;
    const audienceId = await api.audience(n, 'pg');
    const id = await api.webhookCampaign(audienceId, sink.url, { name: 'outage' });
    await api.call('POST', `/v1/campaigns/${id}/start`);
    while (sink.seen.size < 300) await new Promise((r) => setTimeout(r, 5));

    proxy.cut();
    // The next poll (100 ms) fails; sub-batches already under way finish, and then nothing starts.
    await new Promise((r) => setTimeout(r, 500));
    const settled = sink.seen.size;
    await new Promise((r) => setTimeout(r, 1_000));
    expect(sink.seen.size).toBe(settled);
    expect(settled).toBeLessThan(n);
    expect((await api.call('GET', `/v1/campaigns/${id}`)).status).toBe(503);

    proxy.restore();
    const done = await api.waitForStatus(id, ['completed'], 60_000);
    expect(done.delivered).toBe(n);
    expect(sink.seen.size).toBe(n);
    expect([...sink.seen.values()].filter((t) => t.length !== 1)).toEqual([]);
  });
});

/**
 * Herald on a ClickHouse cluster (scripts/services up --clickhouse-cluster: ZooKeeper and two servers, two
 * shards) beside Herald on one server: the same campaigns on both give the same counts, stats, failures
 * and analyst answers; a shard's server stopped in the middle of a campaign loses nothing and counts
 * nothing twice once it is back.
 */
import { readdir, readFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Herald } from '../../src/main.js';
import { splitStatements } from '../../src/migrate/migrate.js';
import { SCHEMAS_DIR } from '../../src/migrate/migrate.js';
import { apiFor, createNamespace, eventCounts, eventually, startTestHerald, type Api, type Namespace } from '../helpers/herald.js';
import { listenLocal } from '../helpers/local-http.js';
import {
  CLUSTER,
  NODE_URLS,
  clusterUnavailable,
  dropClusterDatabase,
  restartStopped,
  rowsPerShard,
  startCluster,
  stopCluster,
  killNode,
} from '../helpers/clickhouse-cluster.js';

const COUNTRIES = ['FR', 'DE', 'US'];
const unavailable = clusterUnavailable();

interface Side {
  ns: Namespace;
  herald: Herald;
  api: Api;
}

/** A webhook receiver per side (path /single, /cluster): users ending in 7 fail; every 5th batch answers 500 once. */
class Receiver {
  server!: Server;
  url = '';
  readonly delivered = new Map<string, Map<string, number>>();
  private readonly attempts = new Map<string, number>();
  delayMs = 0;
  /** while set, batches of `held.key` past `held.after` delivered recipients wait for it */
  held: { key: string; after: number; until: Promise<void> } | null = null;

  async start(): Promise<void> {
    this.server = createServer((req, res) => {
      let data = '';
      req.on('data', (d: Buffer) => (data += d.toString()));
      req.on('end', () => {
        const side = req.url!.split('/').pop()!;
        const body = JSON.parse(data) as { campaign_id: number; messages: Array<{ user_id: string; idempotency_key: string }> };
        const first = body.messages[0]!.user_id;
        const key = `${side} ${body.campaign_id} ${first}`;
        const n = (this.attempts.get(key) ?? 0) + 1;
        this.attempts.set(key, n);
        const held = this.held;
        const wait =
          held !== null && held.key === `${side} ${body.campaign_id}` && (this.delivered.get(held.key)?.size ?? 0) >= held.after
            ? held.until
            : Promise.resolve();
        void wait.then(() =>
          setTimeout(() => {
            if (Number(first.slice(1)) % 500 === 1 && n === 1) {
              res.writeHead(500).end('try later');
              return;
            }
            const got = this.delivered.get(`${side} ${body.campaign_id}`) ?? new Map<string, number>();
            this.delivered.set(`${side} ${body.campaign_id}`, got);
            const failed = [];
            for (const m of body.messages) {
              if (m.user_id.endsWith('7')) failed.push({ idempotency_key: m.idempotency_key, error: `no such user ${m.user_id}` });
              else got.set(m.user_id, (got.get(m.user_id) ?? 0) + 1);
            }
            res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ failed }));
          }, this.delayMs),
        );
      });
    });
    this.url = await listenLocal(this.server);
  }
}

async function audience(api: Api, n: number, prefix: string): Promise<number> {
  const a = await api.call('POST', '/v1/audiences', { name: `cluster ${prefix}` });
  const lines = Array.from({ length: n }, (_, k) =>
    JSON.stringify({ user_id: `${prefix}${k + 1}`, address: `${prefix}${k + 1}@example.test`, attrs: { country: COUNTRIES[(k + 1) % 3] } }),
  );
  const r = await api.importRecipients(a.body.id, lines.join('\n'));
  expect(r.body.imported).toBe(n);
  return a.body.id as number;
}

/** The analyst queries of schemas/clickhouse/queries/, for campaign `id`, each statement's rows. */
async function analystAnswers(h: Herald, id: number): Promise<Record<string, unknown[][]>> {
  const dir = `${SCHEMAS_DIR}clickhouse/queries/`;
  const out: Record<string, unknown[][]> = {};
  for (const f of (await readdir(dir)).filter((n) => n.endsWith('.sql')).sort()) {
    const sql = (await readFile(dir + f, 'utf8')).replace(/campaign_id = 1\b/g, `campaign_id = ${id}`);
    out[f] = [];
    for (const stmt of splitStatements(sql)) out[f].push(await h.ch.rows(stmt));
  }
  return out;
}

describe.skipIf(unavailable !== null)(`Herald on a ClickHouse cluster${unavailable ? ` (skipped: ${unavailable})` : ''}`, () => {
  let startedHere = false;
  let single: Side;
  let cluster: Side;
  const receiver = new Receiver();
  const heraldOptions = { webhookBackoffMs: 10, webhookAttempts: 4 };

  beforeAll(async () => {
    startedHere = await startCluster();
    await receiver.start();
    const sides = await Promise.all([
      createNamespace(heraldOptions),
      createNamespace({ ...heraldOptions, clickhouseUrl: NODE_URLS[0], clickhouseCluster: CLUSTER }),
    ]);
    const heralds = await Promise.all(sides.map((ns) => startTestHerald(ns)));
    single = { ns: sides[0]!, herald: heralds[0]!, api: apiFor(heralds[0]!) };
    cluster = { ns: sides[1]!, herald: heralds[1]!, api: apiFor(heralds[1]!) };
  }, 180_000);

  afterAll(async () => {
    await Promise.all([single?.herald.stop(), cluster?.herald.stop()]);
    await single?.ns.drop();
    if (cluster) {
      await cluster.ns.drop();
      await dropClusterDatabase(cluster.ns.config.clickhouseDb).catch(() => undefined);
    }
    receiver.server?.close();
    if (startedHere) await stopCluster();
  }, 120_000);

  it('is migrated as Replicated tables on each shard behind Distributed tables', async () => {
    const db = cluster.ns.config.clickhouseDb;
    const tables = await cluster.herald.ch.rows<{ name: string; engine: string }>(
      `SELECT name, engine FROM system.tables WHERE database = '${db}' ORDER BY name`,
    );
    const engines = new Map(tables.map((t) => [t.name, t.engine]));
    expect(engines.get('message_events')).toBe('Distributed');
    expect(engines.get('message_events_local')).toBe('ReplicatedMergeTree');
    expect(engines.get('campaign_batch_counts_local')).toBe('ReplicatedReplacingMergeTree');
    expect(engines.get('campaign_counts_local')).toBe('ReplicatedAggregatingMergeTree');
    expect(engines.get('campaign_minutes_local')).toBe('ReplicatedSummingMergeTree');
    // the same tables on the other server
    expect(await rowsPerShard(db, 'herald_migrations', '1')).toEqual(expect.arrayContaining([expect.any(Number)]));
  });

  it('counts a null campaign exactly, all of it on the shard of its campaign id', async () => {
    const n = 20_000;
    const ids: number[] = [];
    for (const side of [single, cluster]) {
      const aud = await audience(side.api, n, 'n');
      const id = await side.api.nullCampaign(aud);
      await side.api.call('POST', `/v1/campaigns/${id}/start`);
      expect(await side.api.waitForStatus(id, ['completed'])).toMatchObject({ delivered: n, failed: 0, pending: 0 });
      expect(await eventCounts(side.herald, id)).toEqual({ n, u: n });
      ids.push(id);
    }
    expect(ids[0]).toBe(ids[1]);
    const perShard = await rowsPerShard(cluster.ns.config.clickhouseDb, 'message_events', `campaign_id = ${ids[1]}`);
    // Distributed(…, campaign_id): shard index campaign_id % 2
    expect(perShard).toEqual(ids[1]! % 2 === 0 ? [n, 0] : [0, n]);
  }, 120_000);

  it('gives the same progress, stats, failures and analyst answers as one server for the same webhook campaign', async () => {
    const n = 6_000;
    const answers = [];
    for (const [name, side] of [
      ['single', single],
      ['cluster', cluster],
    ] as const) {
      const aud = await audience(side.api, n, 'w');
      const id = await side.api.webhookCampaign(aud, `${receiver.url}/${name}`, { segment_by: 'country' });
      await side.api.call('POST', `/v1/campaigns/${id}/start`);
      await side.api.waitForStatus(id, ['completed']);
      // reads: every third recipient, the first 300 of them twice
      const readers = Array.from({ length: n / 3 }, (_, k) => `w${3 * k + 1}`).filter((u) => !u.endsWith('7'));
      const reads = [...readers, ...readers.slice(0, 300)].map((u) => ({ campaign_id: id, user_id: u, kind: 'read' }));
      for (let k = 0; k < reads.length; k += 1000) {
        const r = await side.api.call('POST', '/v1/events', reads.slice(k, k + 1000));
        expect(r.body.rejected).toEqual([]);
      }
      // The views' rows are written after the events' own within each insert: wait for every view's answer.
      const statsNow = async (): Promise<any> => (await side.api.call('GET', `/v1/campaigns/${id}/stats?bucket=minute`)).body;
      const stats = await eventually(
        statsNow,
        (st) =>
          st.totals?.read === reads.length &&
          st.totals.unique_readers === readers.length &&
          st.by_segment.reduce((k: number, g: { unique_readers: number }) => k + g.unique_readers, 0) === readers.length &&
          st.by_segment.reduce((k: number, g: { reads: number }) => k + g.reads, 0) === reads.length &&
          st.series.reduce((k: number, p: { read: number }) => k + p.read, 0) === reads.length &&
          st.time_to_read.p99 !== null,
      );
      const failures = [];
      for (let after = ''; ;) {
        const page = (await side.api.call('GET', `/v1/campaigns/${id}/failures?limit=250&after=${after}`)).body;
        failures.push(...page.failures);
        if (page.next_after === null) break;
        after = page.next_after;
      }
      const campaign = (await side.api.call('GET', `/v1/campaigns/${id}`)).body;
      answers.push({
        id,
        campaign,
        stats,
        failures,
        analyst: await analystAnswers(side.herald, id),
        readers: readers.length,
        reads: reads.length,
      });
    }
    const [one, many] = answers as [(typeof answers)[0], (typeof answers)[0]];
    const failed = n / 10;
    expect(one.campaign).toMatchObject({ delivered: n - failed, failed, read: one.reads, unique_readers: one.readers, pending: 0 });
    expect(receiver.delivered.get(`cluster ${many.id}`)!.size).toBe(n - failed);

    const counts = (c: Record<string, unknown>): unknown => {
      const { delivered, failed: f, skipped, suppressed, capped, aborted, pending, read, unique_readers, total } = c;
      return { delivered, failed: f, skipped, suppressed, capped, aborted, pending, read, unique_readers, total };
    };
    expect(counts(many.campaign)).toEqual(counts(one.campaign));
    expect(many.failures).toEqual(one.failures);
    expect(many.failures).toHaveLength(failed);
    expect(many.failures[0]).toMatchObject({ attempts: 1, error: expect.stringMatching(/^no such user w/) });
    // stats: the same totals and segments; the series and time to read differ only by when each ran
    expect(many.stats.totals).toEqual(one.stats.totals);
    expect(many.stats.by_segment).toEqual(one.stats.by_segment);
    expect(many.stats.by_segment.map((s: { segment: string }) => s.segment).sort()).toEqual([...COUNTRIES].sort());
    const sums = (s: { series: Array<{ delivered: number; read: number }> }): number[] =>
      s.series.reduce((a, p) => [a[0]! + p.delivered, a[1]! + p.read], [0, 0]);
    expect(sums(many.stats)).toEqual(sums(one.stats));
    expect(sums(many.stats)).toEqual([n - failed, one.reads]);
    for (const q of ['p50', 'p90', 'p99']) {
      expect(many.stats.time_to_read[q]).not.toBeNull();
      expect(Math.abs(many.stats.time_to_read[q] - one.stats.time_to_read[q])).toBeLessThanOrEqual(10);
    }
    // analyst queries: read_rate_by_hour summed over hours (the hours are when each ran)
    const hourly = (rows: unknown[][]): number[] =>
      (rows[0] as Array<{ delivered: string; reads: string }>).reduce(
        (a, r) => [a[0]! + Number(r.delivered), a[1]! + Number(r.reads)],
        [0, 0],
      );
    expect(hourly(many.analyst['read_rate_by_hour.sql']!)).toEqual(hourly(one.analyst['read_rate_by_hour.sql']!));
    expect(many.analyst['read_rate_by_segment.sql']).toEqual(one.analyst['read_rate_by_segment.sql']);
    expect(many.analyst['read_rate_by_segment.sql']![0]).toHaveLength(3);
    expect(many.analyst['readers_within_an_hour.sql']![0]).toEqual(one.analyst['readers_within_an_hour.sql']![0]);
    expect(many.analyst['readers_within_an_hour.sql']![0]![0]).toMatchObject({ readers: String(one.readers) });
  }, 120_000);

  it("loses nothing and counts nothing twice when its shard's server stops mid-campaign", async () => {
    const { api, herald } = cluster;
    const n = 20_000;
    const aud = await audience(api, n, 'o');
    let id = await api.webhookCampaign(aud, `${receiver.url}/cluster`);
    // the campaign must live on node 2 (shard 2: odd ids), not on node 1 which Herald talks to
    if (id % 2 === 0) id = await api.webhookCampaign(aud, `${receiver.url}/cluster`);
    // the receiver holds every batch past the first fifth until the shard is down, then sending goes on
    let release!: () => void;
    receiver.held = { key: `cluster ${id}`, after: n / 5, until: new Promise<void>((r) => (release = r)) };
    receiver.delayMs = 20;
    const failedBefore = herald.sink.stats.failedInserts;
    await api.call('POST', `/v1/campaigns/${id}/start`);
    const got = (): number => receiver.delivered.get(`cluster ${id}`)?.size ?? 0;
    await eventually(
      async () => got(),
      (k) => k >= n / 5,
      60_000,
    );
    const t0 = Date.now();
    await killNode(2);
    const atStop = got();
    await new Promise((r) => setTimeout(r, 1000));
    release();
    await new Promise((r) => setTimeout(r, 2000));
    const whileDown = got() - atStop;
    await restartStopped();
    const t1 = Date.now();
    receiver.held = null;
    receiver.delayMs = 0;
    const done = await api.waitForStatus(id, ['completed'], 90_000);
    console.log(
      `shard down ${t1 - t0} ms at ${atStop}/${n} (+${whileDown} meanwhile); completed ${Date.now() - t1} ms after; ${JSON.stringify(herald.sink.stats)}`,
    );
    const failed = n / 10;
    expect(done).toMatchObject({ delivered: n - failed, failed, pending: 0 });
    // inserts failed while the shard was down, and sending went on meanwhile
    expect(herald.sink.stats.failedInserts).toBeGreaterThan(failedBefore);
    expect(atStop).toBeLessThan(n / 2);
    expect(whileDown).toBeGreaterThan(0);
    expect(receiver.delivered.get(`cluster ${id}`)!.size).toBe(n - failed);
    expect(await eventCounts(herald, id)).toEqual({ n: n - failed, u: n - failed });
    expect(await eventCounts(herald, id, 'failed')).toEqual({ n: failed, u: failed });
    expect(await rowsPerShard(cluster.ns.config.clickhouseDb, 'message_events', `campaign_id = ${id}`)).toEqual([0, n]);
    // the summing views too: a sub-batch whose shard stopped between its parts is added once, at completion
    const whole = (st: any): boolean =>
      st.series.reduce((k: number, p: { delivered: number }) => k + p.delivered, 0) === n - failed &&
      st.by_segment.reduce((k: number, g: { delivered: number }) => k + g.delivered, 0) === n - failed;
    const stats = await eventually(async () => (await api.call('GET', `/v1/campaigns/${id}/stats`)).body, whole, 10_000);
    expect(whole(stats)).toBe(true);
    const counted = await herald.ch.rows<{ kind: string; n: string }>(
      `SELECT toString(kind) AS kind, countMerge(events) AS n FROM campaign_counts WHERE campaign_id = ${id} GROUP BY kind ORDER BY kind`,
    );
    expect(counted).toEqual([
      { kind: 'delivered', n: String(n - failed) },
      { kind: 'failed', n: String(failed) },
    ]);
  }, 150_000);
});

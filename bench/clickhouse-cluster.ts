/**
 * Progress queries on the project-local ClickHouse cluster (scripts/services up --clickhouse-cluster),
 * with the tables sharded by campaign_id (Herald's choice) and by cityHash64(user_id): one campaign of N
 * delivered recipients (sub-batches of 100,000) and 30 % of them read, inserted through the Distributed
 * tables; then the medians of GET /v1/campaigns/:id's counts and of /stats, and whether the counts are right.
 *
 *   N=1000000 npx tsx bench/clickhouse-cluster.ts
 */
import { ClickHouse } from '../src/clickhouse/client.js';
import { packStrings } from '../src/domain/packed-ids.js';
import { ClusterSchema, clusterMigrations } from '../src/migrate/cluster-schema.js';
import { loadMigrations, splitStatements } from '../src/migrate/migrate.js';
import { ProgressReader } from '../src/progress/progress-reader.js';
import { StatsReader } from '../src/progress/stats-reader.js';
import { EventBlockWriter } from '../src/sink/native-block.js';

const url = process.env.CLICKHOUSE_URL ?? 'http://127.0.0.1:18141';
const cluster = process.env.HERALD_CLICKHOUSE_CLUSTER ?? 'herald_cluster';
const N = Number(process.env.N ?? 1_000_000);
const SUB = 100_000;
const CAMPAIGN = 7;

async function median(runs: number, fn: () => Promise<unknown>): Promise<number> {
  const t: number[] = [];
  for (let i = 0; i < runs; i++) {
    const t0 = performance.now();
    await fn();
    t.push(performance.now() - t0);
  }
  t.sort((a, b) => a - b);
  return Math.round(t[runs >> 1]! * 10) / 10;
}

const files = (await loadMigrations('clickhouse')).map((m) => ({ name: m.name, statements: splitStatements(m.sql) }));
const admin = new ClickHouse({ url, database: 'default', cluster });
const at = Math.floor(Date.now() / 1000) - 3600;
for (const shardBy of ['campaign', 'user'] as const) {
  const database = `herald_bench_shard_by_${shardBy}`;
  const schema = new ClusterSchema({ cluster, database, shardBy });
  await admin.command(schema.dropDatabase());
  await admin.command(schema.createDatabase());
  const ch = new ClickHouse({ url, database, cluster });
  for (const f of clusterMigrations(files, schema)) for (const s of f.statements) await ch.command(s);

  const t0 = performance.now();
  for (let from = 0; from < N; from += SUB) {
    const ids = Array.from({ length: Math.min(SUB, N - from) }, (_, k) => `user-${from + k}`);
    const w = new EventBlockWriter(ids.length, BigInt(from / SUB + 1));
    w.addOutcomes(
      CAMPAIGN,
      packStrings(ids),
      ids.length,
      new Map(),
      at,
      'delivered',
      ids.map((_, k) => ['FR', 'DE', 'US'][k % 3]!),
    );
    await ch.insertRaw('message_events', 'Native', w.finish());
  }
  const reads = new EventBlockWriter(N * 0.3, 999_999n);
  for (let k = 0; k < N; k += 10)
    for (const j of [0, 3, 6]) reads.add(CAMPAIGN, `user-${k + j}`, 'read', at + 60 + (k % 600), '', at, ['FR', 'DE', 'US'][(k + j) % 3]);
  await ch.insertRaw('message_events', 'Native', reads.finish());
  const insertS = (performance.now() - t0) / 1000;

  const progress = new ProgressReader(ch);
  const stats = new StatsReader(ch);
  const counts = (await progress.counts([CAMPAIGN])).get(CAMPAIGN)!;
  const countsMs = await median(21, () => progress.counts([CAMPAIGN]));
  const statsMs = await median(11, () => stats.read(CAMPAIGN, 'minute'));
  // the two halves of the counts: per-kind counts from campaign_batch_counts, unique readers (a uniqExact state)
  const kindsMs = await median(21, () =>
    ch.rows(`SELECT campaign_id, kind, sum(r) AS n FROM (SELECT campaign_id, toString(kind) AS kind, batch, max(rows) AS r
      FROM campaign_batch_counts WHERE campaign_id IN (${CAMPAIGN}) GROUP BY campaign_id, kind, batch) GROUP BY campaign_id, kind`),
  );
  const readersMs = await median(21, () =>
    ch.rows(
      `SELECT campaign_id, uniqExactMerge(readers) AS n FROM campaign_readers WHERE campaign_id IN (${CAMPAIGN}) GROUP BY campaign_id`,
    ),
  );
  const perShard = await ch.rows<{ s: string; n: string }>(
    `SELECT hostName() AS s, count() AS n FROM remote('127.0.0.1:${19141}', ${database}, message_events_local) GROUP BY s`,
  );
  console.log(
    JSON.stringify({
      shardBy,
      N,
      insertS: Math.round(insertS * 10) / 10,
      countsMs,
      kindsMs,
      readersMs,
      statsMs,
      delivered: counts.delivered,
      read: counts.read,
      uniqueReaders: counts.uniqueReaders,
      rowsOnNode1: Number(perShard[0]?.n ?? 0),
      right: counts.delivered === N && counts.read === N * 0.3 && counts.uniqueReaders === N * 0.3,
    }),
  );
  await ch.close();
  await admin.command(schema.dropDatabase());
}
await admin.close();

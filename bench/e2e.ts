/**
 * End-to-end benchmark: a campaign on the null channel through a Herald process of its own, from
 * `POST /start` to `completed` with every event visible in ClickHouse.
 *   unit: recipients per second (wall clock, start → completed); method: one run per configuration,
 *   the audience imported once over the HTTP API; Herald runs as a child process so its peak RSS is
 *   its own (VmHWM). Ceilings are measured in the same run, on the same machine, right after:
 *   - ClickHouse: Herald's event rows (Native blocks) into a copy of message_events (with its views), 100k-row batches
 *   - PostgreSQL: the planner's read of the audience (100k-row keyset pages over COPY)
 *   - the bare path (peers/bare-path.ts): XREADGROUP of Herald-encoded chunks, no-op sends, Native
 *     inserts, XACK, with nothing of Herald around it; and the raw XADD rate (pipelined)
 * Peers, same audience, chunk size and event rows, same run (peers/): BullMQ (addBulk of chunk jobs, one
 * Worker process with tuned concurrency) and the naive design (a `message_items` row per recipient in
 * PostgreSQL). Also per design: progress-query latency at the end (median of 5) and bytes stored per
 * recipient (ClickHouse parts on disk for Herald and BullMQ; the table with its index for the naive one).
 * --populated: Herald runs in a database that has been used, as every deployment's is (populated.ts:
 * `--database`, kept between runs, shared with bench:import and the other benches, filled first where
 * short). The run's own audience is dropped again at the end; its events stay (more history).
 *   npm run bench:e2e -- [--recipients N] [--workers 1,2,4] [--bullmq-concurrency 100] [--naive-workers 4] [--naive-seconds 60] [--variants "K=V,K=V;K=V"]
 *   [--no-peers] [--profile] [--rounds 3] [--populated [--database herald_bench_populated] [--populated-recipients 20000000] [--populated-events 50000000]]
 *   (--profile: CPU profiles of the Herald process into bench/results/prof/)
 */
import type { ChildProcess } from 'node:child_process';
import { createWriteStream, writeFileSync, mkdirSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { cpus, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { Redis } from 'ioredis';
import { loadConfig } from '../src/config.js';
import { migrateClickHouse, migratePostgres } from '../src/migrate/migrate.js';
import { ClickHouse } from '../src/clickhouse/client.js';
import { createDb } from '../src/store/db.js';
import { RecipientReader } from '../src/store/recipient-reader.js';
import { EventBlockWriter } from '../src/sink/native-block.js';
import { packStrings } from '../src/domain/packed-ids.js';
import { deleteKeysWithPrefix } from '../src/stream/keys.js';
import { runBarePath } from './peers/bare-path.js';
import { runBullmq } from './peers/bullmq.js';
import { median, naiveBytes, naiveProgress, runNaive } from './peers/naive.js';
import type { PeerResult } from './peers/peer.js';
import { cpuByService, cpuSince, peakRssMb } from './proc.js';
import { importNdjson, ndjsonLines, spawnServe, stopServe } from './namespace.js';
import { populate, populatedOptions } from './populated.js';

function arg(name: string, dflt: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i === -1 ? dflt : (process.argv[i + 1] ?? dflt);
}

const N = Number(arg('recipients', '1000000'));
const WORKERS = arg('workers', '2').split(',').map(Number);
// Paired comparisons: each consumer count runs once per variant, in turn (`;` between variants, `,`
// between a variant's K=V settings; an empty variant is the defaults).
const VARIANTS = arg('variants', '')
  .split(';')
  .map((v) => v.trim());
const variantEnv = (v: string): Record<string, string> =>
  Object.fromEntries(
    v
      .split(',')
      .filter((kv) => kv.includes('='))
      .map((kv) => [kv.slice(0, kv.indexOf('=')).trim(), kv.slice(kv.indexOf('=') + 1).trim()]),
  );
const BULLMQ_CONCURRENCY = Number(arg('bullmq-concurrency', '100'));
const NAIVE_WORKERS = Number(arg('naive-workers', '4'));
const NAIVE_SECONDS = Number(arg('naive-seconds', '60'));
const PEERS = !process.argv.includes('--no-peers');
const POPULATED_OPTIONS = populatedOptions();
const POPULATED = POPULATED_OPTIONS !== null;
// Herald and the BullMQ peers alternate this many times; ratios are the medians of the rounds' ratios.
const ROUNDS = Number(arg('rounds', '1'));
const CHUNK = 500;
const KEY = 'bench-key-0123456789';
const PORT = 18_480;
const run = Date.now().toString(36);
const base = loadConfig();
// A namespace of its own per run (PostgreSQL database, ClickHouse database, Redis prefix), dropped at the
// end; or, --populated, the used database, kept.
const dbName = POPULATED_OPTIONS?.database ?? `herald_bench_${run}`;
const dbUrl = new URL(base.databaseUrl);
dbUrl.pathname = `/${dbName}`;
const env = {
  ...process.env,
  DATABASE_URL: dbUrl.toString(),
  CLICKHOUSE_DB: dbName,
  HERALD_REDIS_PREFIX: `herald-bench-${run}`,
  HERALD_API_KEYS: KEY,
  HERALD_PORT: String(PORT),
  HERALD_HOST: '127.0.0.1',
  HERALD_LOG_LEVEL: 'warn',
};
const api = `http://127.0.0.1:${PORT}`;
const auth = { authorization: `Bearer ${KEY}` };
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function call(method: string, path: string, body?: unknown): Promise<any> {
  const res = await fetch(`${api}${path}`, {
    method,
    headers: { ...auth, 'content-type': 'application/json' },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  const json = await res.json();
  if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${JSON.stringify(json)}`);
  return json;
}

const children = new Set<ChildProcess>();
process.on('exit', () => {
  for (const c of children) c.kill('SIGKILL');
});

async function startHerald(workers: number, variant = ''): Promise<ChildProcess> {
  if (
    await fetch(`${api}/healthz`).then(
      () => true,
      () => false,
    )
  )
    throw new Error(`port ${PORT} is taken: stop what listens there`);
  // bin/herald, as deployed (its node flags included); --profile adds the profiler's
  const flags = process.argv.includes('--profile') ? { HERALD_NODE_FLAGS: '--cpu-prof --cpu-prof-dir=bench/results/prof' } : {};
  const child = await spawnServe({ ...env, ...flags, HERALD_WORKERS: String(workers), ...variantEnv(variant) }, PORT, 20_000);
  children.add(child);
  child.once('exit', () => children.delete(child));
  return child;
}

const stopHerald = stopServe;

await migratePostgres(env.DATABASE_URL);
await migrateClickHouse(base.clickhouseUrl, dbName);
const redis = new Redis(base.redisUrl);
const ch = new ClickHouse({ url: base.clickhouseUrl, database: dbName });
const db = createDb(env.DATABASE_URL, 4);

// Import once, with the first Herald process.
let herald = await startHerald(WORKERS[0]!, VARIANTS[0]);
const used =
  POPULATED_OPTIONS === null
    ? null
    : await populate({ ...base, databaseUrl: env.DATABASE_URL, clickhouseDb: dbName }, POPULATED_OPTIONS, api, KEY);
// ClickHouse's bytes before this run's campaigns, so a used database's history is not counted as theirs.
const bytesBefore = Number(
  (await ch.rows<{ b: string }>(`SELECT sum(bytes_on_disk) AS b FROM system.parts WHERE database = '${dbName}' AND active`))[0]?.b ?? 0,
);

const audience = await call('POST', '/v1/audiences', { name: `bench ${run}` });
// The client uploads a file, as `curl -T` would: written before the clock starts, so building a
// million JSON strings in this process does not compete with Herald for the two cores while timed.
const upload = join(tmpdir(), `herald-bench-${run}.ndjson`);
await pipeline(Readable.from(ndjsonLines(N, `b${run}-`)), createWriteStream(upload));
let t = performance.now();
const imported = await importNdjson(api, KEY, audience.id, upload);
const importS = (performance.now() - t) / 1000;
await rm(upload, { force: true });
if (imported.imported !== N) throw new Error(`imported ${imported.imported} of ${N}`);
// The import's ceiling: PostgreSQL inserting the same rows into a table shaped like `recipients` (both
// its indexes), from a table already in PostgreSQL: no HTTP, no parsing, no de-duplication.
await db.query('DROP TABLE IF EXISTS import_ceiling');
await db.query('CREATE TABLE import_ceiling (LIKE recipients INCLUDING ALL)');
t = performance.now();
await db.query('INSERT INTO import_ceiling SELECT * FROM recipients WHERE audience_id = $1', [audience.id]);
const importCeiling = N / ((performance.now() - t) / 1000);
await db.query('DROP TABLE import_ceiling');
console.log(
  `import: ${N.toLocaleString()} NDJSON lines (a file uploaded) over HTTP in ${importS.toFixed(2)} s = ${Math.round(N / importS).toLocaleString()} rows/s; ` +
    `ceiling (INSERT … SELECT of the same rows into a copy of recipients with its indexes) ${Math.round(importCeiling).toLocaleString()} rows/s: ` +
    `${Math.round((100 * N) / importS / importCeiling)} %`,
);

interface Result {
  /** --rounds: Herald and the BullMQ peers alternate, round by round */
  round: number;
  workers: number;
  /** settings of this run beside the defaults (--variants) */
  variant?: string;
  recipients: number;
  seconds: number;
  recipientsPerSec: number;
  planMs: number;
  firstChunkMs: number;
  peakRssMb: number;
  redisPeakMb: number;
  clickhouseRowsPerSec: number;
  /** GET /v1/campaigns/:id at the end, median of 5 */
  progressQueryMs: number;
  /** CPU seconds each service used during the campaign (2 cores: at most 2 × seconds in all) */
  cpuSeconds: Record<string, number>;
}
const results: Result[] = [];

interface PeerReport extends PeerResult {
  /** CPU seconds per service while it ran; `herald` is the peer's own process (this one) */
  cpuSeconds: Record<string, number>;
  recipientsPerSec: number;
  progressQueryMs: number;
  bytesPerRecipient: number;
  /** --rounds: the rate of each round */
  runs?: number[];
}
// The BullMQ peers: each job done once its events are stored, and the usual buffering build.
async function bullPeer(mode: 'stored' | 'buffered', bullCampaign: number): Promise<PeerReport> {
  // In a used database the peers write where Herald writes: the populated event table, whose background
  // merges (of every earlier round's rows too) they then share. In a fresh run each gets a fresh database.
  const peerDb = POPULATED ? dbName : `${dbName}_bullmq_${mode}`;
  if (!POPULATED) await migrateClickHouse(base.clickhouseUrl, peerDb);
  const chPeer = new ClickHouse({ url: base.clickhouseUrl, database: peerDb });
  const bullCpu0 = cpuByService(process.pid);
  const b = await runBullmq({
    redisUrl: base.redisUrl,
    prefix: `${env.HERALD_REDIS_PREFIX}-bull`,
    pool: db,
    ch: chPeer,
    audienceId: audience.id,
    campaignId: bullCampaign,
    chunk: CHUNK,
    concurrency: BULLMQ_CONCURRENCY,
    batchRows: 50_000,
    mode,
  });
  if (b.recipients !== N) throw new Error(`BullMQ peer (${mode}) sent ${b.recipients} of ${N}`);
  const bullCpu = cpuSince(bullCpu0, process.pid);
  // Its progress: the same kind of ClickHouse count Herald answers from (events by kind, per campaign).
  const bullMs: number[] = [];
  let bullCount = 0;
  for (let i = 0; i < 5; i++) {
    const q = performance.now();
    const r = await chPeer.rows<{ n: string }>(
      `SELECT count() AS n FROM message_events WHERE campaign_id = ${bullCampaign} AND kind = 'delivered'`,
    );
    bullMs.push(performance.now() - q);
    bullCount = Number(r[0]!.n);
  }
  if (bullCount !== N) throw new Error(`BullMQ peer (${mode}): ClickHouse holds ${bullCount} of ${N}`);
  // A shared database's parts hold everyone's rows: bytes per recipient are measured in fresh runs only.
  const bullBytes = POPULATED
    ? [{ b: 'NaN' }]
    : await chPeer.rows<{ b: string }>(`SELECT sum(bytes_on_disk) AS b FROM system.parts WHERE database = '${peerDb}' AND active`);
  if (!POPULATED) await chPeer.command(`DROP DATABASE ${peerDb}`).catch(() => undefined);
  await chPeer.close();
  return {
    ...b,
    recipientsPerSec: N / b.seconds,
    progressQueryMs: median(bullMs),
    bytesPerRecipient: Number(bullBytes[0]!.b) / N,
    cpuSeconds: bullCpu,
  };
}
/** The BullMQ peers' runs, one per round, alternating with Herald's. */
const bullRuns: Record<'stored' | 'buffered', PeerReport[]> = { stored: [], buffered: [] };
/** the peers' campaign ids of this run: far above Herald's own, and new each run */
const PEER_CAMPAIGNS = 1_000_000_000 + (Date.now() % 1_000_000_000) * 100;

for (const [round, workers, variant] of Array.from({ length: ROUNDS }, (_, r) => r + 1).flatMap((r) =>
  WORKERS.flatMap((w) => VARIANTS.map((v) => [r, w, v] as const)),
)) {
  if (results.length > 0) herald = await startHerald(workers, variant);
  const c = await call('POST', '/v1/campaigns', {
    name: `bench ${run} w${workers}`,
    audience_id: audience.id,
    channel: { type: 'null' },
    content: { title: 'Bench', body: 'Body' },
  });
  const redisBase = Number(/used_memory:(\d+)/.exec(await redis.info('memory'))![1]);
  let redisPeak = redisBase;
  let planMs = NaN;
  let firstChunkMs = NaN;
  const key = `${env.HERALD_REDIS_PREFIX}:{c${c.id}}:chunks`;
  const cpu0 = cpuByService(herald.pid!);
  t = performance.now();
  await call('POST', `/v1/campaigns/${c.id}/start`);
  for (;;) {
    const row = (await db.query('SELECT status, planning_done FROM campaigns WHERE id = $1', [c.id])).rows[0];
    const now = performance.now() - t;
    if (Number.isNaN(planMs) && row.planning_done) planMs = now;
    if (Number.isNaN(firstChunkMs)) {
      const groups = (await redis.xinfo('GROUPS', key).catch(() => [])) as unknown[][];
      const g = groups[0];
      if (g && String(g[g.indexOf('last-delivered-id') + 1]) !== '0-0') firstChunkMs = now;
    }
    redisPeak = Math.max(redisPeak, Number(/used_memory:(\d+)/.exec(await redis.info('memory'))![1]));
    if (row.status === 'completed') break;
    if (row.status !== 'sending') throw new Error(`campaign ${c.id} ended ${row.status}`);
    await sleep(10);
  }
  const seconds = (performance.now() - t) / 1000;
  const cpu = cpuSince(cpu0, herald.pid!);
  const got = await call('GET', `/v1/campaigns/${c.id}`);
  if (got.delivered !== N) throw new Error(`ClickHouse shows ${got.delivered} delivered of ${N}`);
  const progressMs: number[] = [];
  for (let i = 0; i < 5; i++) {
    const q = performance.now();
    await call('GET', `/v1/campaigns/${c.id}`);
    progressMs.push(performance.now() - q);
  }
  const rss = peakRssMb(herald.pid!);
  await stopHerald(herald);
  const r: Result = {
    round,
    workers,
    ...(variant === '' ? {} : { variant }),
    recipients: N,
    seconds,
    recipientsPerSec: Math.round(N / seconds),
    planMs: Math.round(planMs),
    firstChunkMs: Math.round(firstChunkMs),
    peakRssMb: Math.round(rss),
    redisPeakMb: Math.round(((redisPeak - redisBase) / 2 ** 20) * 10) / 10,
    clickhouseRowsPerSec: Math.round(N / seconds),
    progressQueryMs: Math.round(median(progressMs) * 10) / 10,
    cpuSeconds: cpu,
  };
  results.push(r);
  console.log(
    `e2e null channel, ${workers} consumer(s)${variant === '' ? '' : ` [${variant}]`}: ${N.toLocaleString()} recipients in ${seconds.toFixed(2)} s = ` +
      `${r.recipientsPerSec.toLocaleString()} recipients/s; plan ${r.planMs} ms; first chunk ${r.firstChunkMs} ms; ` +
      `peak RSS ${r.peakRssMb} MB; Redis +${r.redisPeakMb} MB`,
  );
  console.log(
    `  CPU seconds during the campaign: ${Object.entries(cpu)
      .map(([k, v]) => `${k} ${v}`)
      .join(', ')}`,
  );
  const lastOfRound = workers === WORKERS[WORKERS.length - 1] && variant === VARIANTS[VARIANTS.length - 1];
  if (PEERS && lastOfRound) {
    // A campaign id of its own per run and round: in a used database every run's rows share one table.
    bullRuns.stored.push(await bullPeer('stored', PEER_CAMPAIGNS + 10 * round + 1));
    bullRuns.buffered.push(await bullPeer('buffered', PEER_CAMPAIGNS + 10 * round + 3));
    for (const mode of ['stored', 'buffered'] as const) {
      const p = bullRuns[mode][bullRuns[mode].length - 1]!;
      console.log(`  round ${round}: peer bullmq ${mode} ${Math.round(p.recipientsPerSec).toLocaleString()} recipients/s`);
    }
  }
}

// Ceiling 1: ClickHouse, Herald's encoding and table (with its views), 100k-row batches.
await migrateClickHouse(base.clickhouseUrl, `${dbName}_ceiling`);
const chc = new ClickHouse({ url: base.clickhouseUrl, database: `${dbName}_ceiling` });
const ids = packStrings(Array.from({ length: 100_000 }, (_, i) => `b${run}-${i}`));
t = performance.now();
for (let b = 0; b < N / 100_000; b++) {
  const w = new EventBlockWriter(100_000);
  w.addOutcomes(1, ids, 100_000, new Map(), Math.floor(Date.now() / 1000));
  await chc.insertRaw('message_events', 'Native', w.finish());
}
const chCeiling = N / ((performance.now() - t) / 1000);
await chc.command(`DROP DATABASE ${dbName}_ceiling`).catch(() => undefined);
await chc.close();

// Ceiling 2: PostgreSQL read of the audience as the planner does it (keyset pages over COPY), one reader.
const reader = new RecipientReader(db);
const extent = await reader.extent(audience.id);
t = performance.now();
let read = 0;
for (let afterId = 0; ;) {
  const p = await reader.page({ audienceId: audience.id, afterId, maxId: extent.maxId, limit: 100_000, withAddress: false });
  read += p.ids.length;
  if (p.ids.length < 100_000) break;
  afterId = p.ids[p.ids.length - 1]!;
}
const pgCeiling = read / ((performance.now() - t) / 1000);

// Bytes ClickHouse keeps per recipient for Herald (every table of its database: events and views).
const heraldBytes = await ch.rows<{ b: string }>(
  `SELECT sum(bytes_on_disk) AS b FROM system.parts WHERE database = '${dbName}' AND active`,
);
// In a used database the BullMQ peers' rows (one per recipient, the same views) are in the same tables:
// what the run added is shared out over every campaign's rows, the peers' included.
const runsInDb = results.length + (POPULATED ? bullRuns.stored.length + bullRuns.buffered.length : 0);
const heraldBytesPerRecipient = (Number(heraldBytes[0]!.b) - bytesBefore) / (N * runsInDb);
// …so there the peers' rows (Herald's encoding, the same views) cost what Herald's do.
if (POPULATED) for (const r of [...bullRuns.stored, ...bullRuns.buffered]) r.bytesPerRecipient = heraldBytesPerRecipient;

// Ceiling 3: the bare path, and the raw XADD rate.
const bareDb = `${dbName}_bare`;
await migrateClickHouse(base.clickhouseUrl, bareDb);
const chBare = new ClickHouse({ url: base.clickhouseUrl, database: bareDb });
const bare = await runBarePath(redis, chBare, `${env.HERALD_REDIS_PREFIX}:bare`, N, CHUNK, 100_000);
await chBare.command(`DROP DATABASE ${bareDb}`).catch(() => undefined);
await chBare.close();
console.log(
  `ceiling bare path (XREADGROUP 20 × ${CHUNK}-recipient chunks, no-op sends, Native 100k inserts, XACK): ` +
    `${Math.round(bare.recipientsPerSec).toLocaleString()} recipients/s; raw XADD ${Math.round(bare.xaddPerSec).toLocaleString()} chunks/s (pipelined)`,
);

const peers: Record<string, PeerReport> = {};
if (PEERS) {
  // Each BullMQ peer's median run (with all its rates in `runs`).
  const medianRun = (runs: PeerReport[]): PeerReport => {
    const m = median(runs.map((x) => x.recipientsPerSec));
    return { ...runs.find((x) => x.recipientsPerSec === m)!, runs: runs.map((x) => Math.round(x.recipientsPerSec)) };
  };
  peers.bullmq = medianRun(bullRuns.stored);
  peers.bullmq_buffered = medianRun(bullRuns.buffered);

  const naiveCampaign = 900_002;
  const naiveCpu0 = cpuByService(process.pid);
  const nv = await runNaive({
    pool: db,
    audienceId: audience.id,
    campaignId: naiveCampaign,
    chunk: CHUNK,
    workers: NAIVE_WORKERS,
    maxSeconds: NAIVE_SECONDS,
  });
  if (nv.recipients !== N && nv.extra.cutShortAfterSeconds === 0) throw new Error(`naive peer sent ${nv.recipients} of ${N}`);
  const naiveCpu = cpuSince(naiveCpu0, process.pid);
  const np = await naiveProgress(db, naiveCampaign);
  if (np.counts.sent !== N) throw new Error(`naive peer: ${JSON.stringify(np.counts)}`);
  peers.naive = {
    ...nv,
    recipientsPerSec: nv.recipients / nv.seconds,
    progressQueryMs: np.ms,
    bytesPerRecipient: (await naiveBytes(db)) / N,
    cpuSeconds: naiveCpu,
  };
  for (const [name, p] of Object.entries(peers)) {
    console.log(
      `peer ${name}: ${p.recipients.toLocaleString()} recipients in ${p.seconds.toFixed(2)} s = ${Math.round(p.recipientsPerSec).toLocaleString()} recipients/s; ` +
        `first message ${p.firstMessageMs} ms; progress query ${p.progressQueryMs.toFixed(1)} ms; ${p.bytesPerRecipient.toFixed(1)} bytes/recipient`,
    );
    console.log(
      `  CPU seconds while it ran: ${Object.entries(p.cpuSeconds)
        .map(([k, v]) => `${k === 'herald' ? 'peer process' : k} ${v}`)
        .join(', ')}`,
    );
  }
}

// Each round's best Herald run; with several rounds, the median of them.
const roundBest = Array.from({ length: ROUNDS }, (_, i) =>
  Math.max(...results.filter((r) => r.round === i + 1).map((r) => r.recipientsPerSec)),
);
const best = median(roundBest);
const bestRun = results.find((r) => r.recipientsPerSec === best)!;
const tightest = Math.min(chCeiling, pgCeiling, bare.recipientsPerSec);
console.log(`ceiling ClickHouse insert (Native, 100k-row batches, with views): ${Math.round(chCeiling).toLocaleString()} rows/s`);
console.log(`ceiling PostgreSQL audience read (100k-row keyset pages over COPY): ${Math.round(pgCeiling).toLocaleString()} rows/s`);
console.log(
  `Herald best (${bestRun.workers} consumer(s)) = ${((100 * best) / tightest).toFixed(0)}% of the tightest ceiling, ` +
    `${((100 * best) / bare.recipientsPerSec).toFixed(0)}% of the bare path; progress query ${bestRun.progressQueryMs} ms; ` +
    `${heraldBytesPerRecipient.toFixed(1)} bytes/recipient in ClickHouse`,
);
const ratios: Record<string, number> = {};
const perRound: Record<string, PeerReport[]> = { bullmq: bullRuns.stored, bullmq_buffered: bullRuns.buffered };
for (const [name, p] of Object.entries(peers)) {
  // A peer run in every round: the median of the rounds' ratios (each taken within one round).
  const rounds = perRound[name];
  ratios[`herald/${name}`] =
    rounds !== undefined && rounds.length === ROUNDS
      ? median(rounds.map((x, i) => roundBest[i]! / x.recipientsPerSec))
      : best / p.recipientsPerSec;
  console.log(
    `Herald/${name}: throughput ${ratios[`herald/${name}`]!.toFixed(2)}×${ROUNDS > 1 && rounds !== undefined ? ` (median of ${ROUNDS} rounds)` : ''}; progress query Herald ${bestRun.progressQueryMs} ms (GET), ` +
      `${name} ${p.progressQueryMs.toFixed(1)} ms; bytes per recipient ${name}/Herald ${(p.bytesPerRecipient / heraldBytesPerRecipient).toFixed(1)}×`,
  );
}

const out = {
  bench: 'e2e',
  at: new Date().toISOString(),
  machine: { cpus: cpus().length, cpu: cpus()[0]?.model, memGb: Math.round(totalmem() / 2 ** 30), node: process.version },
  populated: used,
  import: { rows: N, seconds: importS, rowsPerSec: Math.round(N / importS), ceilingRowsPerSec: Math.round(importCeiling) },
  results,
  heraldBytesPerRecipient,
  ceilings: {
    clickhouseRowsPerSec: Math.round(chCeiling),
    postgresKeysetRowsPerSec: Math.round(pgCeiling),
    barePathRecipientsPerSec: Math.round(bare.recipientsPerSec),
    xaddChunksPerSec: Math.round(bare.xaddPerSec),
  },
  fractionOfTightestCeiling: best / tightest,
  fractionOfBarePath: best / bare.recipientsPerSec,
  peers,
  ratios,
};
mkdirSync('bench/results', { recursive: true });
writeFileSync(`bench/results/e2e-${N}${POPULATED ? '-populated' : ''}.json`, `${JSON.stringify(out, null, 2)}\n`);
if (POPULATED) {
  // The used database keeps its size in recipients: this run's audience goes again (its events stay).
  await db.query(`ALTER TABLE recipients DETACH PARTITION recipients_a${audience.id}`);
  await db.query(`DROP TABLE recipients_a${audience.id}`);
  await db.query('DROP TABLE IF EXISTS message_items');
  await db.end();
  await ch.close();
} else {
  await db.end();
  await ch.command(`DROP DATABASE IF EXISTS ${dbName}`);
  await ch.close();
  const admin = createDb(base.databaseUrl, 1);
  await admin.query(`DROP DATABASE IF EXISTS ${dbName} WITH (FORCE)`);
  await admin.end();
}
// and every Redis key of the run, Herald's and the BullMQ peer's
await deleteKeysWithPrefix(redis, env.HERALD_REDIS_PREFIX);
await deleteKeysWithPrefix(redis, `${env.HERALD_REDIS_PREFIX}-bull`);
redis.disconnect();

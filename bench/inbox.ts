/**
 * Inbox benchmark, three figures from one run:
 *   1. delivery of an inbox campaign to N recipients (default 1,000,000): recipients/s from `start` to
 *      `completed` (every event in ClickHouse), and PostgreSQL rows written per recipient meanwhile
 *      (pg_stat_database: inserted + updated + deleted tuples of the bench's database);
 *   2. inbox query latency for a user in 50 campaigns: GET /v1/users/:id/inbox?limit=50 and
 *      /inbox/unread_count, p50 / p99 over 200 sequential calls each;
 *   3. read-receipt ingest over HTTP, end to end into ClickHouse (each call answers once its reads are
 *      stored): POST /v1/events with 1,000 reads per call, `--callback-concurrency` (16) calls at a time;
 *      and the pixel, 256 at a time.
 *   It also prints the analyst queries of schemas/clickhouse/queries run on the campaign.
 *   method: Herald in this process for 1 and 2, a namespace (databases, key prefix) of its own, dropped at
 *   the end. The ingest (3) goes to a `bin/herald serve` child on the same namespace that dispatches
 *   nothing, so the requests are made in another process than the one answering them, as a receiver of
 *   read receipts would see it; `--in-process-ingest` sends them to this process's Herald instead.
 *   With `--personalised`: recipients also have first_name, plan and city, and after 2. the same user gets 50
 *   more campaigns whose title and body are templates reading them (rendered when the inbox is read); their
 *   inbox query is timed the same way, in the same run, and compared (target: p99 ≤ 2× the plain one).
 *   npm run bench:inbox -- [--recipients 1000000] [--reads 200000] [--callback-concurrency 16] [--in-process-ingest]
 *     [--personalised]
 */
import { spawn } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { cpus } from 'node:os';
import { mkdirSync, writeFileSync } from 'node:fs';
import { pino } from 'pino';
import { loadConfig, tokenSecret } from '../src/config.js';
import { startHerald } from '../src/main.js';
import { trackingToken } from '../src/domain/tokens.js';
import { splitStatements } from '../src/migrate/migrate.js';
import { apiCaller, childHeraldEnv, dropNamespace, namespaced } from './namespace.js';

function arg(name: string, dflt: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i === -1 ? dflt : (process.argv[i + 1] ?? dflt);
}

const N = Number(arg('recipients', '1000000'));
const READS = Math.min(Number(arg('reads', '200000')), N);
const CALLBACK_CONCURRENCY = Number(arg('callback-concurrency', '16'));
const KEY = 'bench-key-0123456789';
const ns = `herald_inbox_${Date.now().toString(36)}`;
const base = loadConfig({ ...process.env, HERALD_API_KEYS: KEY });
const cfg = namespaced(base, ns);
const herald = await startHerald(cfg, { logger: pino({ level: 'warn' }) });
const api = `http://127.0.0.1:${herald.port}`;
const call = apiCaller(api, KEY);
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const COUNTRIES = ['FR', 'DE', 'US', 'BR', 'IN'];
const PERSONALISED = process.argv.includes('--personalised');
const personal = (i: number): string =>
  PERSONALISED ? `,"first_name":"N${i}","plan":"${i % 2 ? 'pro' : 'free'}","city":"C${i % 50}"` : '';

async function audience(name: string, n: number): Promise<number> {
  const a = await call('POST', '/v1/audiences', { name });
  // In slices, so the bench itself never holds a 1M-line body.
  for (let from = 0; from < n; from += 200_000) {
    const lines: string[] = [];
    for (let i = from; i < Math.min(n, from + 200_000); i++)
      lines.push(`{"user_id":"m${i + 1}","attrs":{"country":"${COUNTRIES[i % 5]}"${personal(i)}}}`);
    await call('POST', `/v1/audiences/${a.id}/recipients`, lines.join('\n'), 'application/x-ndjson');
  }
  return a.id as number;
}

async function runCampaign(
  audienceId: number,
  name: string,
  content: { title: string; body: string } = { title: name, body: 'b' },
): Promise<{ id: number; ms: number }> {
  const c = await call('POST', '/v1/campaigns', {
    name,
    audience_id: audienceId,
    channel: { type: 'inbox' },
    content,
    segment_by: 'country',
  });
  const t0 = performance.now();
  await call('POST', `/v1/campaigns/${c.id}/start`);
  for (;;) {
    const g = await call('GET', `/v1/campaigns/${c.id}`);
    if (g.status === 'completed') return { id: c.id as number, ms: performance.now() - t0 };
    await sleep(20);
  }
}

const pgWrites = async (): Promise<number> => {
  const r = await herald.db.query(
    'SELECT tup_inserted + tup_updated + tup_deleted AS n FROM pg_stat_database WHERE datname = current_database()',
  );
  return Number(r.rows[0].n);
};

function percentile(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]!;
}

async function pool<T>(items: T[], width: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: width }, async () => {
      while (next < items.length) await fn(items[next++]!);
    }),
  );
}

// 1. Delivery
const bigAudience = await audience('inbox bench', N);
await sleep(1_500); // pg_stat counters are flushed about once a second
const writesBefore = await pgWrites();
const big = await runCampaign(bigAudience, 'inbox 1');
await sleep(1_500);
const writes = (await pgWrites()) - writesBefore;
const delivery = {
  recipients: N,
  ms: Math.round(big.ms),
  perSec: Math.round(N / (big.ms / 1000)),
  pgRowsWritten: writes,
  pgRowsPerRecipient: writes / N,
};
console.log(
  `inbox delivery: ${N.toLocaleString('en')} recipients in ${(big.ms / 1000).toFixed(2)} s = ${delivery.perSec.toLocaleString('en')} recipients/s; ` +
    `PostgreSQL rows written meanwhile: ${writes} (${delivery.pgRowsPerRecipient.toFixed(6)} per recipient)`,
);

// 2. Inbox latency for a user in 50 campaigns (the big one and 49 of 1,000 recipients that hold m1).
const small = await audience('inbox small', 1_000);
for (let k = 2; k <= 50; k++) await runCampaign(small, `inbox ${k}`);
const time = async (path: string): Promise<number[]> => {
  const out: number[] = [];
  for (let i = 0; i < 200; i++) {
    const t = performance.now();
    await call('GET', path);
    out.push(performance.now() - t);
  }
  return out;
};
const check = await call('GET', '/v1/users/m1/inbox?limit=50');
if (check.messages.length !== 50) throw new Error(`expected 50 messages in m1's inbox, got ${check.messages.length}`);
const inboxMs = await time('/v1/users/m1/inbox?limit=50');
const unreadMs = await time('/v1/users/m1/inbox/unread_count');
const latency = {
  campaigns: 50,
  inboxP50: +percentile(inboxMs, 50).toFixed(1),
  inboxP99: +percentile(inboxMs, 99).toFixed(1),
  unreadP50: +percentile(unreadMs, 50).toFixed(1),
  unreadP99: +percentile(unreadMs, 99).toFixed(1),
};
console.log(
  `inbox query, user in 50 campaigns: inbox p50 ${latency.inboxP50} ms, p99 ${latency.inboxP99} ms; unread_count p50 ${latency.unreadP50} ms, p99 ${latency.unreadP99} ms`,
);

// 2b. The same query when the 50 newest campaigns are personalised (rendered from m1's attributes when read).
let personalised: { inboxP50: number; inboxP99: number; p99Ratio: number } | null = null;
if (PERSONALISED) {
  const content = {
    title: '{{ recipient.attrs.first_name }}, news for {{ recipient.attrs.plan }} users',
    body: 'Hello {{ recipient.attrs.first_name }}, this week in {{ recipient.attrs.city }}: {{ campaign.name }}.',
  };
  for (let k = 1; k <= 50; k++) await runCampaign(small, `personal ${k}`, content);
  const sample = await call('GET', '/v1/users/m1/inbox?limit=50');
  if (sample.messages.length !== 50 || sample.messages[0].title !== 'N0, news for free users')
    throw new Error(`unexpected personalised inbox: ${JSON.stringify(sample.messages[0])}`);
  const ms = await time('/v1/users/m1/inbox?limit=50');
  const p99 = +percentile(ms, 99).toFixed(1);
  personalised = { inboxP50: +percentile(ms, 50).toFixed(1), inboxP99: p99, p99Ratio: +(p99 / latency.inboxP99).toFixed(2) };
  console.log(
    `inbox query, 50 personalised campaigns: p50 ${personalised.inboxP50} ms, p99 ${p99} ms = ${personalised.p99Ratio}× the plain p99 (target ≤ 2×)`,
  );
}

// 3. Read ingest: callbacks, then the pixel.
const IN_PROCESS_INGEST = process.argv.includes('--in-process-ingest');
const INGEST_PORT = 18_291;
const child = IN_PROCESS_INGEST
  ? null
  : spawn('bin/herald', ['serve'], {
      env: childHeraldEnv(cfg, KEY, { HERALD_HOST: '127.0.0.1', HERALD_PORT: String(INGEST_PORT), HERALD_WORKERS: '0' }),
      stdio: ['ignore', 'inherit', 'inherit'],
    });
const ingestApi = child === null ? api : `http://127.0.0.1:${INGEST_PORT}`;
if (child !== null) {
  for (let i = 0; ; i++) {
    if (
      await fetch(`${ingestApi}/healthz`).then(
        (r) => r.ok,
        () => false,
      )
    )
      break;
    if (i > 300) throw new Error('the ingest child did not start');
    await sleep(100);
  }
}
const ingestCall = apiCaller(ingestApi, KEY);
const batches: string[][] = [];
for (let i = 0; i < READS; i += 1_000) batches.push(Array.from({ length: Math.min(1_000, READS - i) }, (_, k) => `m${i + k + 1}`));
let t0 = performance.now();
await pool(batches, CALLBACK_CONCURRENCY, async (users) => {
  const r = await ingestCall(
    'POST',
    '/v1/events',
    users.map((u) => ({ campaign_id: big.id, user_id: u, kind: 'read' })),
  );
  if (r.accepted !== users.length) throw new Error(`accepted ${r.accepted} of ${users.length}`);
});
const callbackPerSec = Math.round(READS / ((performance.now() - t0) / 1000));
const secret = tokenSecret(cfg);
const pixels = Array.from({ length: 5_000 }, (_, k) => `m${READS + k + 1}`).filter((_, k) => READS + k < N);
t0 = performance.now();
await pool(pixels, 256, async (u) => {
  const r = await fetch(`${ingestApi}/t/${trackingToken(secret, big.id, u)}`);
  await r.arrayBuffer();
});
const pixelPerSec = Math.round(pixels.length / ((performance.now() - t0) / 1000));
const got = await call('GET', `/v1/campaigns/${big.id}`);
const ingest = {
  callbackReads: READS,
  callbackPerSec,
  pixelReads: pixels.length,
  pixelPerSec,
  storedReads: got.read as number,
  answeredBy: child === null ? 'the bench process' : 'a child process',
};
console.log(
  `read ingest, stored in ClickHouse before each answer: callbacks ${callbackPerSec.toLocaleString('en')} reads/s (1,000 per call, ${CALLBACK_CONCURRENCY} at a time); ` +
    `pixel ${pixelPerSec.toLocaleString('en')} reads/s (256 at a time); ClickHouse holds ${got.read} reads; ` +
    (child === null ? 'requests made in the answering process' : 'answered by a child process'),
);
if (child !== null) {
  child.kill('SIGTERM');
  await new Promise((r) => child.once('exit', r));
}

// The analyst queries on this campaign.
for (const file of ['read_rate_by_hour.sql', 'read_rate_by_segment.sql', 'readers_within_an_hour.sql']) {
  const sql = (await readFile(`schemas/clickhouse/queries/${file}`, 'utf8')).replace(/campaign_id = 1\b/g, `campaign_id = ${big.id}`);
  console.log(`\n-- schemas/clickhouse/queries/${file}`);
  for (const stmt of splitStatements(sql)) {
    const rows = await herald.ch.rows<Record<string, unknown>>(stmt);
    if (rows.length > 0) console.log(Object.keys(rows[0]!).join('\t'));
    for (const r of rows) console.log(Object.values(r).map(String).join('\t'));
  }
}

console.log(`\nmachine: ${cpus().length} × ${cpus()[0]?.model ?? 'cpu'}, node ${process.version}`);
mkdirSync('bench/results', { recursive: true });
writeFileSync(
  PERSONALISED ? 'bench/results/inbox-personalised.json' : 'bench/results/inbox.json',
  `${JSON.stringify({ bench: 'inbox', at: new Date().toISOString(), delivery, latency, personalised, ingest }, null, 2)}\n`,
);
await herald.stop();
await dropNamespace(base, ns);

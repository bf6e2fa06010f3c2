/**
 * Webhook benchmark: the webhook channel against a local HTTP receiver, per receiver latency.
 *   unit: recipients/s from `start` to `completed` (every recipient answered, events in ClickHouse);
 *   the receiver's requests per TCP connection (keep-alive pooling) and the most requests it held at
 *   once; and the throughput as a fraction of what the concurrency allows at that latency (requests in
 *   flight × messages per request / latency).
 *   method: Herald in this process with its default settings (HERALD_WORKERS consumers sharing
 *   HERALD_WEBHOOK_CONCURRENCY requests in flight of HERALD_SUBBATCH_SIZE messages; the flags override
 *   them); the receiver in a child process answering after each latency; one campaign of `--recipients`
 *   per latency, in one run; exactness checked (each idempotency key once). A last pass at 0 ms without
 *   tracking URLs (`channel.tracking: false`) shows what their HMAC per message costs.
 *   With `--peers`, each latency with tracking URLs is also run by the two BullMQ peers (bench/peers/
 *   bullmq.ts: a job completes once its events are stored, or buffers them and returns at once), each
 *   job POSTing its recipients to a fresh receiver with Node's fetch (peers/webhook-send.ts: the same
 *   message shape, a tracking HMAC each), tuned to Herald's requests in flight unless
 *   `--peer-concurrency` says; the ratio Herald ÷ peer is printed per latency. Herald and the peers
 *   alternate on the same machine, one after the other, never at once.
 *   With `--templates`: every recipient has three attributes, and each latency runs twice, alternating: the
 *   same message as plain text, then as a template reading the three attributes (rendered per message);
 *   the ratio of the two is the cost of rendering (target ≥ 0.70). Written to bench/results/webhook-templates.json.
 *   npm run bench:webhook -- [--latency 0,5,20,50,100] [--workers N] [--concurrency N] [--subbatch N]
 *     [--recipients 1000000] [--compress] [--peers] [--peer-concurrency N] [--templates]
 *     [--populated [--database herald_bench_populated] [--populated-recipients N] [--populated-events N]]
 *   --populated: Herald runs in the used database of populated.ts (filled first where short; its audience is
 *   kept there as one more earlier one), into results/webhook-populated.json; the peers keep a ClickHouse
 *   database of their own.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { cpus } from 'node:os';
import { mkdirSync, writeFileSync } from 'node:fs';
import { pino } from 'pino';
import { loadConfig } from '../src/config.js';
import { startHerald } from '../src/main.js';
import { apiCaller, namespaced } from './namespace.js';
import { dropRun, inPopulated, populate, populatedOptions } from './populated.js';
import { tokenSecret } from '../src/config.js';
import { migrateClickHouse } from '../src/migrate/migrate.js';
import { ClickHouse } from '../src/clickhouse/client.js';
import { createDb } from '../src/store/db.js';
import { runBullmq } from './peers/bullmq.js';
import { webhookSend } from './peers/webhook-send.js';
import { cpuByService, cpuSince } from './proc.js';

function arg(name: string, dflt: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i === -1 ? dflt : (process.argv[i + 1] ?? dflt);
}
const LATENCIES = arg('latency', '0,5,20,50,100').split(',').map(Number);
const N = Number(arg('recipients', '1000000'));
const COMPRESS = process.argv.includes('--compress');
const TEMPLATES = process.argv.includes('--templates');
/** the same message, as plain text and as a template reading three attributes (the bench's audience has them all) */
const PLAIN = { title: 'Hi Ann', body: 'Ann, your pro plan in Oslo is ready: see what is new this week.' };
const TEMPLATED = {
  title: 'Hi {{ recipient.attrs.first_name }}',
  body: '{{ recipient.attrs.first_name }}, your {{ recipient.attrs.plan }} plan in {{ recipient.attrs.city }} is ready: see what is new this week.',
};
const KEY = 'bench-key-0123456789';
const ns = `herald_webhook_${Date.now().toString(36)}`;
const base = loadConfig({ ...process.env, HERALD_API_KEYS: KEY });
const WORKERS = Number(arg('workers', String(base.workers)));
const CONCURRENCY = Number(arg('concurrency', String(base.webhookConcurrency)));
const SUBBATCH = Number(arg('subbatch', String(base.subBatchSize)));
/** messages per POST: a sub-batch, split into requests of at most HERALD_WEBHOOK_BATCH_SIZE */
const PER_REQUEST = Math.min(SUBBATCH, base.webhookBatchSize);
/** POSTs in flight: each chunk in flight has one sub-batch out, in ⌈sub-batch / batch size⌉ requests */
const IN_FLIGHT = CONCURRENCY * Math.ceil(SUBBATCH / base.webhookBatchSize);
const CHUNK = 500;
const PEERS = process.argv.includes('--peers');
/** BullMQ jobs at once: by default as many requests in flight as Herald's (a job POSTs its chunk at once) */
const PEER_CONCURRENCY = Number(arg('peer-concurrency', String(Math.ceil(IN_FLIGHT / Math.ceil(CHUNK / base.webhookBatchSize)))));

interface SinkStats {
  messages: number;
  unique: number;
  requests: number;
  connections: number;
  lastAt: number;
  maxOpen: number;
  firstAt: number;
  openMs: number;
  /** the receiver process's CPU time so far */
  cpuMs: number;
}
function ask(child: ChildProcess): Promise<SinkStats> {
  return new Promise((resolve) => {
    child.once('message', (m) => resolve(m as SinkStats));
    child.send('stats');
  });
}

const POPULATED = populatedOptions();
const own = namespaced(base, ns, { workers: WORKERS, subBatchSize: SUBBATCH, webhookConcurrency: CONCURRENCY });
// --populated: Herald's PostgreSQL and ClickHouse are the used database's (populated.ts); Redis stays the run's own
const cfg = POPULATED === null ? own : inPopulated(own, POPULATED);
const herald = await startHerald(cfg, { logger: pino({ level: 'warn' }) });
const call = apiCaller(`http://127.0.0.1:${herald.port}`, KEY);
const used = POPULATED === null ? null : await populate(cfg, POPULATED, `http://127.0.0.1:${herald.port}`, KEY);
const audience = await call('POST', '/v1/audiences', { name: 'webhook bench' });
const attrs = (i: number): string => `,"attrs":{"first_name":"N${i}","plan":"${i % 2 ? 'pro' : 'free'}","city":"C${i % 50}","since":2020}`;
const lines = Array.from({ length: N }, (_, i) => `{"user_id":"w${i}","address":"w${i}@example.test"${TEMPLATES ? attrs(i) : ''}}`).join(
  '\n',
);
const imported = await call('POST', `/v1/audiences/${audience.id}/recipients`, lines, 'application/x-ndjson');
if (imported.imported !== N) throw new Error(`imported ${JSON.stringify(imported)}`);

interface Result {
  latencyMs: number;
  tracking: boolean;
  templated: boolean;
  consumers: number;
  concurrency: number;
  subBatch: number;
  compress: boolean;
  recipients: number;
  seconds: number;
  recipientsPerSec: number;
  repeats: number;
  requests: number;
  connections: number;
  requestsPerConnection: number;
  maxConcurrentRequests: number;
  concurrencyBoundPerSec: number;
  fractionOfConcurrencyBound: number;
  /** recipients/s from the receiver's first request to its last answer */
  receiverRecipientsPerSec: number;
  /** requests the receiver held, on average over that span */
  meanRequestsInFlight: number;
  /** CPU seconds of Herald's process (this one) and of the receiver's during the campaign */
  heraldCpuSec: number;
  receiverCpuSec: number;
}
const results: Result[] = [];

interface PeerRun {
  mode: 'stored' | 'buffered';
  latencyMs: number;
  concurrency: number;
  seconds: number;
  recipientsPerSec: number;
  /** Herald's rate at the same latency, and Herald ÷ peer */
  herald: number;
  cpuSec: Record<string, number>;
}
const peerResults: PeerRun[] = [];
const peerDb = createDb(cfg.databaseUrl, 8);
/** A BullMQ peer's campaign to a fresh receiver at `latency`: the same recipients, events into a ClickHouse database of its own. */
async function peer(mode: 'stored' | 'buffered', latency: number): Promise<Omit<PeerRun, 'herald'>> {
  const sink = fork(new URL('./webhook-sink.ts', import.meta.url).pathname, ['--latency', String(latency)], {
    execArgv: ['--import', 'tsx'],
  });
  const { port } = await new Promise<{ port: number }>((r) => sink.once('message', (m) => r(m as { port: number })));
  const db = `${ns}_bullmq_${mode}`;
  await migrateClickHouse(base.clickhouseUrl, db);
  const ch = new ClickHouse({ url: base.clickhouseUrl, database: db });
  const campaignId = 900_000_000 + latency;
  const cpu0 = cpuByService(process.pid);
  const b = await runBullmq({
    redisUrl: base.redisUrl,
    prefix: `${cfg.redisPrefix}-bull-${mode}`,
    pool: peerDb,
    ch,
    audienceId: audience.id as number,
    campaignId,
    chunk: CHUNK,
    concurrency: PEER_CONCURRENCY,
    batchRows: 50_000,
    mode,
    send: webhookSend({
      url: `http://127.0.0.1:${port}/hook`,
      campaignId,
      batchSize: base.webhookBatchSize,
      secret: tokenSecret(cfg),
      publicUrl: 'http://127.0.0.1',
    }),
  });
  const cpu = cpuSince(cpu0, process.pid);
  const s = await ask(sink);
  sink.send('stop');
  await new Promise((r) => sink.once('exit', r));
  const stored = await ch.rows<{ n: string }>(`SELECT count() AS n FROM message_events WHERE campaign_id = ${campaignId}`);
  await ch.command(`DROP DATABASE ${db}`).catch(() => undefined);
  await ch.close();
  if (b.recipients !== N || s.unique !== N || Number(stored[0]!.n) !== N)
    throw new Error(`BullMQ peer (${mode}): sent ${b.recipients}, receiver saw ${s.unique}, ClickHouse holds ${stored[0]!.n} of ${N}`);
  const run = {
    mode,
    latencyMs: latency,
    concurrency: PEER_CONCURRENCY,
    seconds: Math.round(b.seconds * 100) / 100,
    recipientsPerSec: Math.round(N / b.seconds),
    cpuSec: cpu,
  };
  console.log(
    `  BullMQ peer (${mode}, ${PEER_CONCURRENCY} jobs at once, fetch): ${run.recipientsPerSec.toLocaleString()} recipients/s; CPU s ${JSON.stringify(cpu)}`,
  );
  return run;
}
// Each latency with tracking URLs (the default), then 0 ms without them (`channel.tracking: false`);
// with --templates, each latency plain then templated, and no pass without tracking.
const passes = TEMPLATES
  ? LATENCIES.flatMap((latency) => [
      { latency, tracking: true, templated: false },
      { latency, tracking: true, templated: true },
    ])
  : [
      ...LATENCIES.map((latency) => ({ latency, tracking: true, templated: false })),
      ...(LATENCIES.includes(0) ? [{ latency: 0, tracking: false, templated: false }] : []),
    ];
for (const { latency, tracking, templated } of passes) {
  const sink = fork(new URL('./webhook-sink.ts', import.meta.url).pathname, ['--latency', String(latency)], {
    execArgv: ['--import', 'tsx'],
  });
  const { port } = await new Promise<{ port: number }>((r) => sink.once('message', (m) => r(m as { port: number })));
  const c = await call('POST', '/v1/campaigns', {
    name: `latency ${latency}`,
    audience_id: audience.id,
    channel: { type: 'webhook', url: `http://127.0.0.1:${port}/hook`, tracking, ...(COMPRESS ? { compress: true } : {}) },
    content: TEMPLATES ? (templated ? TEMPLATED : PLAIN) : { title: 't', body: 'b' },
    chunk_size: CHUNK,
  });
  const sinkCpu0 = (await ask(sink)).cpuMs;
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  await call('POST', `/v1/campaigns/${c.id}/start`);
  let got;
  for (;;) {
    got = await call('GET', `/v1/campaigns/${c.id}`);
    if (got.status === 'completed') break;
    if (got.status !== 'sending') throw new Error(`campaign ended ${got.status}`);
    await new Promise((r) => setTimeout(r, 20));
  }
  const seconds = (performance.now() - t0) / 1000;
  const cpu = process.cpuUsage(cpu0);
  const s = await ask(sink);
  const heraldCpuSec = Math.round((cpu.user + cpu.system) / 10_000) / 100;
  // The receiver's view, from the first request to the last answer: the steady rate, without the start
  // (planning the first page) and the end (the last events stored, completion noticed).
  const busySec = (s.lastAt - s.firstAt) / 1000;
  const receiverRate = Math.round(N / busySec);
  const meanInFlight = Math.round((s.openMs / (s.lastAt - s.firstAt)) * 10) / 10;
  const receiverCpuSec = Math.round((s.cpuMs - sinkCpu0) / 10) / 100;
  if (got.delivered !== N || s.unique !== N) throw new Error(`delivered ${got.delivered}, receiver saw ${s.unique} distinct of ${N}`);
  const allowed = latency === 0 ? Infinity : (IN_FLIGHT * PER_REQUEST) / (latency / 1000);
  const r: Result = {
    latencyMs: latency,
    tracking,
    templated,
    consumers: WORKERS,
    concurrency: CONCURRENCY,
    subBatch: SUBBATCH,
    compress: COMPRESS,
    recipients: N,
    seconds: Math.round(seconds * 100) / 100,
    recipientsPerSec: Math.round(N / seconds),
    repeats: s.messages - s.unique,
    requests: s.requests,
    connections: s.connections,
    requestsPerConnection: Math.round(s.requests / Math.max(1, s.connections)),
    maxConcurrentRequests: s.maxOpen,
    concurrencyBoundPerSec: latency === 0 ? NaN : Math.round(allowed),
    fractionOfConcurrencyBound: latency === 0 ? NaN : Math.round((N / seconds / allowed) * 100) / 100,
    receiverRecipientsPerSec: receiverRate,
    meanRequestsInFlight: meanInFlight,
    heraldCpuSec,
    receiverCpuSec,
  };
  results.push(r);
  console.log(
    `receiver latency ${latency} ms${tracking ? '' : ', no tracking URLs'}${templated ? ', templated' : ''}: ${N.toLocaleString()} recipients in ${r.seconds} s = ${r.recipientsPerSec.toLocaleString()} recipients/s` +
      (latency === 0
        ? ''
        : ` (${Math.round(r.fractionOfConcurrencyBound * 100)}% of ${Math.round(allowed).toLocaleString()}/s, the bound of ${IN_FLIGHT} requests × ${PER_REQUEST} in flight)`) +
      `; ${s.requests.toLocaleString()} requests over ${s.connections} connection(s), at most ${s.maxOpen} at once (mean ${meanInFlight}); ` +
      `${receiverRate.toLocaleString()}/s from the first request to the last answer; ${r.repeats} repeats; ` +
      `CPU s: Herald ${heraldCpuSec}, receiver ${receiverCpuSec}, of ${Math.round(seconds * cpus().length * 100) / 100} on the machine`,
  );
  sink.send('stop');
  await new Promise((r) => sink.once('exit', r));
  if (PEERS && tracking && latency > 0) {
    for (const mode of ['stored', 'buffered'] as const) peerResults.push({ ...(await peer(mode, latency)), herald: r.recipientsPerSec });
  }
}
await herald.stop();
await peerDb.end();
await dropRun(base, ns, POPULATED);
const zero = TEMPLATES ? undefined : results.find((r) => r.latencyMs === 0 && r.tracking);
for (const r of results.filter((x) => x.templated)) {
  const plain = results.find((x) => !x.templated && x.latencyMs === r.latencyMs)!;
  console.log(
    `latency ${r.latencyMs} ms: templated ${r.recipientsPerSec.toLocaleString()}/s = ${(r.recipientsPerSec / plain.recipientsPerSec).toFixed(2)}× plain (${plain.recipientsPerSec.toLocaleString()}/s); CPU ${r.heraldCpuSec} against ${plain.heraldCpuSec} s`,
  );
}
if (zero)
  for (const r of results)
    if (r !== zero)
      console.log(
        `latency ${r.latencyMs} ms${r.tracking ? '' : ' without tracking URLs'}: ${(r.recipientsPerSec / zero.recipientsPerSec).toFixed(2)}× the 0 ms throughput`,
      );
for (const p of peerResults)
  console.log(`latency ${p.latencyMs} ms: Herald ${(p.herald / p.recipientsPerSec).toFixed(2)}× the BullMQ peer (${p.mode})`);
console.log(
  `settings: ${WORKERS} consumers, concurrency ${CONCURRENCY}, sub-batch ${SUBBATCH}, batch size ${base.webhookBatchSize}${COMPRESS ? ', gzip' : ''}`,
);
console.log(`machine: ${cpus().length} × ${cpus()[0]?.model ?? 'cpu'}, node ${process.version}`);
mkdirSync('bench/results', { recursive: true });
writeFileSync(
  `bench/results/${TEMPLATES ? 'webhook-templates' : 'webhook'}${POPULATED === null ? '' : '-populated'}.json`,
  `${JSON.stringify({ bench: TEMPLATES ? 'webhook-templates' : 'webhook', at: new Date().toISOString(), populated: used, results, ...(PEERS ? { peers: peerResults } : {}) }, null, 2)}\n`,
);

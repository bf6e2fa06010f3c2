/**
 * Webhook benchmark: the webhook channel against a local HTTP receiver, per receiver latency.
 *   unit: recipients/s from `start` to `completed` (every recipient answered, events in ClickHouse);
 *   the receiver's requests per TCP connection (keep-alive pooling); and the throughput as a fraction of
 *   what the concurrency allows at that latency (consumers × sub-batch / latency).
 *   method: Herald in this process with a fixed concurrency (`--workers` consumers, each with one
 *   sub-batch of `--subbatch` messages in flight, one POST each); the receiver in a child process
 *   answering after 0, 5 or 50 ms; one campaign of `--recipients` per latency, in one run; exactness
 *   checked (each idempotency key once). A last pass at 0 ms without tracking URLs (`channel.tracking:
 *   false`) shows what their HMAC per message costs.
 *   npm run bench:webhook -- [--latency 0,5,50] [--workers 8] [--subbatch 100] [--recipients 200000]
 */
import { fork, type ChildProcess } from 'node:child_process';
import { cpus } from 'node:os';
import { mkdirSync, writeFileSync } from 'node:fs';
import { pino } from 'pino';
import { loadConfig } from '../src/config.js';
import { startHerald } from '../src/main.js';
import { apiCaller, dropNamespace, namespaced } from './namespace.js';

function arg(name: string, dflt: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i === -1 ? dflt : (process.argv[i + 1] ?? dflt);
}
const LATENCIES = arg('latency', '0,5,50').split(',').map(Number);
const WORKERS = Number(arg('workers', '8'));
const SUBBATCH = Number(arg('subbatch', '100'));
const N = Number(arg('recipients', '200000'));
const KEY = 'bench-key-0123456789';
const ns = `herald_webhook_${Date.now().toString(36)}`;

interface SinkStats {
  messages: number;
  unique: number;
  requests: number;
  connections: number;
  lastAt: number;
}
function ask(child: ChildProcess): Promise<SinkStats> {
  return new Promise((resolve) => {
    child.once('message', (m) => resolve(m as SinkStats));
    child.send('stats');
  });
}

const base = loadConfig({ ...process.env, HERALD_API_KEYS: KEY });
const cfg = namespaced(base, ns, { workers: WORKERS, subBatchSize: SUBBATCH, webhookBatchSize: SUBBATCH });
const herald = await startHerald(cfg, { logger: pino({ level: 'warn' }) });
const call = apiCaller(`http://127.0.0.1:${herald.port}`, KEY);
const audience = await call('POST', '/v1/audiences', { name: 'webhook bench' });
const lines = Array.from({ length: N }, (_, i) => `{"user_id":"w${i}","address":"w${i}@example.test"}`).join('\n');
const imported = await call('POST', `/v1/audiences/${audience.id}/recipients`, lines, 'application/x-ndjson');
if (imported.imported !== N) throw new Error(`imported ${JSON.stringify(imported)}`);

interface Result {
  latencyMs: number;
  tracking: boolean;
  consumers: number;
  subBatch: number;
  recipients: number;
  seconds: number;
  recipientsPerSec: number;
  repeats: number;
  requests: number;
  connections: number;
  requestsPerConnection: number;
  fractionOfConcurrencyBound: number;
}
const results: Result[] = [];
// Each latency with tracking URLs (the default), then 0 ms without them (`channel.tracking: false`).
const passes = [
  ...LATENCIES.map((latency) => ({ latency, tracking: true })),
  ...(LATENCIES.includes(0) ? [{ latency: 0, tracking: false }] : []),
];
for (const { latency, tracking } of passes) {
  const sink = fork(new URL('./webhook-sink.ts', import.meta.url).pathname, ['--latency', String(latency)], {
    execArgv: ['--import', 'tsx'],
  });
  const { port } = await new Promise<{ port: number }>((r) => sink.once('message', (m) => r(m as { port: number })));
  const c = await call('POST', '/v1/campaigns', {
    name: `latency ${latency}`,
    audience_id: audience.id,
    channel: { type: 'webhook', url: `http://127.0.0.1:${port}/hook`, tracking },
    content: { title: 't', body: 'b' },
    chunk_size: 500,
  });
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
  const s = await ask(sink);
  if (got.delivered !== N || s.unique !== N) throw new Error(`delivered ${got.delivered}, receiver saw ${s.unique} distinct of ${N}`);
  const allowed = latency === 0 ? Infinity : (WORKERS * SUBBATCH) / (latency / 1000);
  const r: Result = {
    latencyMs: latency,
    tracking,
    consumers: WORKERS,
    subBatch: SUBBATCH,
    recipients: N,
    seconds: Math.round(seconds * 100) / 100,
    recipientsPerSec: Math.round(N / seconds),
    repeats: s.messages - s.unique,
    requests: s.requests,
    connections: s.connections,
    requestsPerConnection: Math.round(s.requests / Math.max(1, s.connections)),
    fractionOfConcurrencyBound: latency === 0 ? NaN : Math.round((N / seconds / allowed) * 100) / 100,
  };
  results.push(r);
  console.log(
    `receiver latency ${latency} ms${tracking ? '' : ', no tracking URLs'}: ${N.toLocaleString()} recipients in ${r.seconds} s = ${r.recipientsPerSec.toLocaleString()} recipients/s` +
      (latency === 0
        ? ''
        : ` (${Math.round(r.fractionOfConcurrencyBound * 100)}% of ${Math.round(allowed).toLocaleString()}/s, the bound of ${WORKERS} × ${SUBBATCH} in flight)`) +
      `; ${s.requests.toLocaleString()} requests over ${s.connections} connection(s); ${r.repeats} repeats`,
  );
  sink.send('stop');
  await new Promise((r) => sink.once('exit', r));
}
await herald.stop();
await dropNamespace(base, ns);
const zero = results.find((r) => r.latencyMs === 0 && r.tracking);
if (zero)
  for (const r of results)
    if (r !== zero)
      console.log(
        `latency ${r.latencyMs} ms${r.tracking ? '' : ' without tracking URLs'}: ${(r.recipientsPerSec / zero.recipientsPerSec).toFixed(2)}× the 0 ms throughput`,
      );
console.log(`machine: ${cpus().length} × ${cpus()[0]?.model ?? 'cpu'}, node ${process.version}`);
mkdirSync('bench/results', { recursive: true });
writeFileSync('bench/results/webhook.json', `${JSON.stringify({ bench: 'webhook', at: new Date().toISOString(), results }, null, 2)}\n`);

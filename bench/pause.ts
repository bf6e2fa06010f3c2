/**
 * Pause benchmark: how far a webhook campaign goes after a pause is recorded, with Herald's defaults.
 *   unit: messages the receiver accepted (answered) after Redis recorded the pause (its own time, kept by
 *   announce-3.lua: what Herald's overshoot counts from, against the receiver's clock on the same machine),
 *   after the receiver heard it on Herald's control channel (published in the same step), and
 *   after the pause request answered, beside Herald's own `overshoot`; messages whose request arrived
 *   after the answer; ms from the pause's answer to the last request to arrive and to the last answer,
 *   against the bound of one receiver round trip + 100 ms.
 *   method: one Herald in this process with its default settings (HERALD_WORKERS consumers sharing
 *   HERALD_WEBHOOK_CONCURRENCY requests of HERALD_SUBBATCH_SIZE messages; the flags override them); the
 *   receiver in a child process (`webhook-sink.ts`) answering after each `--latency`; a 50,000-recipient
 *   campaign paused once 10,000 were accepted; one campaign per latency, in one run.
 *   npm run bench:pause -- [--latency 20,100] [--workers N] [--concurrency N] [--subbatch N] [--populated [--database D] …]
 *   --populated: Herald runs in the used database of populated.ts (filled first where short), into results/pause-populated.json.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { cpus } from 'node:os';
import { mkdirSync, writeFileSync } from 'node:fs';
import { pino } from 'pino';
import { loadConfig } from '../src/config.js';
import { startHerald } from '../src/main.js';
import { apiCaller, namespaced } from './namespace.js';
import { dropRun, inPopulated, populate, populatedOptions } from './populated.js';
import { Keys } from '../src/stream/keys.js';

function arg(name: string, dflt: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i === -1 ? dflt : (process.argv[i + 1] ?? dflt);
}

const LATENCIES = arg('latency', '20,100').split(',').map(Number);
const N = 50_000;
const PAUSE_AT = 10_000;
const KEY = 'bench-key-0123456789';
const ns = `herald_pause_${Date.now().toString(36)}`;
const base = loadConfig({ ...process.env, HERALD_API_KEYS: KEY });
const WORKERS = Number(arg('workers', String(base.workers)));
const CONCURRENCY = Number(arg('concurrency', String(base.webhookConcurrency)));
const SUBBATCH = Number(arg('subbatch', String(base.subBatchSize)));

interface After {
  since: number;
  arrived: number;
  answered: number;
  lastArrivedAt: number;
  lastAnsweredAt: number;
}
function ask<T>(child: ChildProcess, m: unknown): Promise<T> {
  return new Promise((resolve) => {
    child.once('message', (r) => resolve(r as T));
    child.send(m as string);
  });
}

const POPULATED = populatedOptions();
const own = namespaced(base, ns, { workers: WORKERS, subBatchSize: SUBBATCH, webhookConcurrency: CONCURRENCY });
// --populated: Herald's PostgreSQL and ClickHouse are the used database's (populated.ts); Redis stays the run's own
const cfg = POPULATED === null ? own : inPopulated(own, POPULATED);
const herald = await startHerald(cfg, { logger: pino({ level: 'warn' }) });
const call = apiCaller(`http://127.0.0.1:${herald.port}`, KEY);
const used = POPULATED === null ? null : await populate(cfg, POPULATED, `http://127.0.0.1:${herald.port}`, KEY);
const results: Array<Record<string, number>> = [];
for (const latency of LATENCIES) {
  const control = ['--control', cfg.redisUrl, `${cfg.redisPrefix}:control`];
  const sink = fork(new URL('./webhook-sink.ts', import.meta.url).pathname, ['--latency', String(latency), ...control], {
    execArgv: ['--import', 'tsx'],
  });
  const { port } = await new Promise<{ port: number }>((r) => sink.once('message', (m) => r(m as { port: number })));
  const aud = await call('POST', '/v1/audiences', { name: `pause ${latency}` });
  const lines = Array.from({ length: N }, (_, i) => `{"user_id":"p${latency}-${i}","address":"p${i}@example.test"}`).join('\n');
  await call('POST', `/v1/audiences/${aud.id}/recipients`, lines, 'application/x-ndjson');
  const c = await call('POST', '/v1/campaigns', {
    name: `pause ${latency}`,
    audience_id: aud.id,
    channel: { type: 'webhook', url: `http://127.0.0.1:${port}/hook` },
    content: { title: 't', body: 'b' },
    chunk_size: 500,
  });
  await call('POST', `/v1/campaigns/${c.id}/start`);
  while ((await ask<{ messages: number }>(sink, 'stats')).messages < PAUSE_AT) await new Promise((r) => setTimeout(r, 2));
  const t0 = Date.now();
  await call('POST', `/v1/campaigns/${c.id}/pause`);
  const pausedAt = Date.now();
  await new Promise((r) => setTimeout(r, 1_000 + latency));
  const after = await ask<After>(sink, { since: pausedAt });
  const sinceRequest = await ask<After>(sink, { since: t0 });
  const sinceRecorded = await ask<After>(sink, { since: 'paused' });
  // Redis's own time of the pause (announce-3.lua), the moment Herald's overshoot counts from: the
  // receiver's answers after it, by the same machine's clock, are what the pause let through.
  const announcedAt = Number(await herald.redis.get(new Keys(cfg.redisPrefix).statusAt(c.id)));
  const sinceAnnounced = await ask<After>(sink, { since: announcedAt });
  const got = await call('GET', `/v1/campaigns/${c.id}`);
  const r = {
    latencyMs: latency,
    consumers: WORKERS,
    concurrency: CONCURRENCY,
    subBatch: SUBBATCH,
    inFlightBound: CONCURRENCY * SUBBATCH,
    acceptedAfterAnnounced: sinceAnnounced.answered,
    acceptedAfterRecorded: sinceRecorded.answered,
    msFromRequestToRecorded: sinceRecorded.since - t0,
    acceptedAfterPause: after.answered,
    acceptedAfterPauseRequest: sinceRequest.answered,
    overshoot: got.overshoot as number,
    arrivedAfterPause: after.arrived,
    msToLastArrival: after.lastArrivedAt - pausedAt,
    msToLastAnswer: after.lastAnsweredAt - pausedAt,
    boundMs: latency + 100,
  };
  results.push(r);
  console.log(
    `receiver latency ${latency} ms: ${r.acceptedAfterAnnounced} messages accepted after Redis recorded the pause, Herald's overshoot ${r.overshoot}, ` +
      `bound ${CONCURRENCY} × ${SUBBATCH} = ${r.inFlightBound}; ${r.acceptedAfterRecorded} accepted after the receiver heard it ` +
      `(${r.msFromRequestToRecorded} ms after the request); ` +
      `${r.acceptedAfterPause} accepted after the pause answered, ${r.acceptedAfterPauseRequest} after it was requested; ${r.arrivedAfterPause} arrived after it answered; ` +
      `last request arrived ${r.msToLastArrival} ms and was answered ${r.msToLastAnswer} ms after the pause answered (bound ${r.boundMs} ms)`,
  );
  await call('POST', `/v1/campaigns/${c.id}/cancel`);
  sink.send('stop');
  await new Promise((r) => sink.once('exit', r));
}
await herald.stop();
await dropRun(base, ns, POPULATED);
console.log(`settings: ${WORKERS} consumers, concurrency ${CONCURRENCY}, sub-batch ${SUBBATCH}, batch size ${base.webhookBatchSize}`);
console.log(`machine: ${cpus().length} × ${cpus()[0]?.model ?? 'cpu'}, node ${process.version}`);
mkdirSync('bench/results', { recursive: true });
writeFileSync(
  `bench/results/pause${POPULATED === null ? '' : '-populated'}.json`,
  `${JSON.stringify({ bench: 'pause', at: new Date().toISOString(), populated: used, results }, null, 2)}\n`,
);

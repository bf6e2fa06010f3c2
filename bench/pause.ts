/**
 * Pause benchmark: how far a campaign goes after a pause is recorded, per consumer count.
 *   unit: messages received by the webhook receiver after the pause answered (and Herald's own
 *   `overshoot` count), and milliseconds from the pause request to the last message received.
 *   method: one Herald in this process, a local webhook receiver answering after 5 ms, a 20,000-recipient
 *   campaign paused once 2,000 have arrived; one run per consumer count, in one process run.
 *   npm run bench:pause -- [--workers 1,4,16] [--subbatch 50]
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { cpus } from 'node:os';
import { mkdirSync, writeFileSync } from 'node:fs';
import { pino } from 'pino';
import { loadConfig } from '../src/config.js';
import { startHerald } from '../src/main.js';

function arg(name: string, dflt: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i === -1 ? dflt : (process.argv[i + 1] ?? dflt);
}

const WORKERS = arg('workers', '1,4,16').split(',').map(Number);
const SUBBATCH = Number(arg('subbatch', '50'));
const N = 20_000;
const KEY = 'bench-key-0123456789';
const run = Date.now().toString(36);
const received: number[] = [];
const sink = createServer((req, res) => {
  let data = '';
  req.on('data', (d: Buffer) => (data += d.toString()));
  req.on('end', () =>
    setTimeout(() => {
      const now = Date.now();
      for (let i = (JSON.parse(data) as { messages: unknown[] }).messages.length; i > 0; i--) received.push(now);
      res.writeHead(200).end();
    }, 5),
  );
});
await new Promise<void>((r) => sink.listen(0, '127.0.0.1', r));
const sinkUrl = `http://127.0.0.1:${(sink.address() as AddressInfo).port}/`;

const base = loadConfig({ ...process.env, HERALD_API_KEYS: KEY });
const dbUrl = new URL(base.databaseUrl);
dbUrl.pathname = `/herald_pause_${run}`;
const results: Array<Record<string, number>> = [];
for (const workers of WORKERS) {
  const cfg = Object.freeze({
    ...base,
    databaseUrl: dbUrl.toString(),
    clickhouseDb: `herald_pause_${run}`,
    redisPrefix: `herald-pause-${run}`,
    port: 0,
    host: '127.0.0.1',
    workers,
    subBatchSize: SUBBATCH,
    webhookBatchSize: SUBBATCH,
    logLevel: 'warn',
  });
  const herald = await startHerald(cfg, { logger: pino({ level: 'warn' }) });
  const api = `http://127.0.0.1:${herald.port}`;
  const call = async (method: string, path: string, body?: unknown): Promise<any> => {
    const r = await fetch(`${api}${path}`, {
      method,
      headers: { authorization: `Bearer ${KEY}`, 'content-type': 'application/json' },
      ...(body === undefined ? {} : { body: typeof body === 'string' ? body : JSON.stringify(body) }),
    });
    return r.json();
  };
  const aud = await call('POST', '/v1/audiences', { name: `pause w${workers}` });
  const lines = Array.from({ length: N }, (_, i) => `{"user_id":"p${workers}-${i}"}`).join('\n');
  await fetch(`${api}/v1/audiences/${aud.id}/recipients`, {
    method: 'POST',
    headers: { authorization: `Bearer ${KEY}`, 'content-type': 'application/x-ndjson' },
    body: lines,
  });
  const c = await call('POST', '/v1/campaigns', {
    name: `pause w${workers}`,
    audience_id: aud.id,
    channel: { type: 'webhook', url: sinkUrl },
    content: { title: 't', body: 'b' },
    chunk_size: 500,
  });
  received.length = 0;
  await call('POST', `/v1/campaigns/${c.id}/start`);
  while (received.length < 2_000) await new Promise((r) => setTimeout(r, 2));
  const t0 = Date.now();
  await call('POST', `/v1/campaigns/${c.id}/pause`);
  const pausedAt = Date.now();
  await new Promise((r) => setTimeout(r, 1_000));
  const after = received.filter((t) => t > pausedAt);
  const got = await call('GET', `/v1/campaigns/${c.id}`);
  const r = {
    consumers: workers,
    subBatch: SUBBATCH,
    receivedAfterPause: after.length,
    overshoot: got.overshoot as number,
    perConsumer: Math.round((after.length / workers) * 10) / 10,
    msFromPauseToLastMessage: after.length === 0 ? 0 : Math.max(...after) - t0,
  };
  results.push(r);
  console.log(
    `${workers} consumer(s), sub-batch ${SUBBATCH}: ${r.receivedAfterPause} messages after the pause answered ` +
      `(${r.perConsumer} per consumer; Herald's overshoot ${r.overshoot}); last one ${r.msFromPauseToLastMessage} ms after the request`,
  );
  await call('POST', `/v1/campaigns/${c.id}/cancel`);
  await herald.stop();
}
sink.close();
console.log(`machine: ${cpus().length} × ${cpus()[0]?.model ?? 'cpu'}, node ${process.version}`);
mkdirSync('bench/results', { recursive: true });
writeFileSync('bench/results/pause.json', `${JSON.stringify({ bench: 'pause', at: new Date().toISOString(), results }, null, 2)}\n`);
// The bench's own namespace goes.
const { ClickHouse } = await import('../src/clickhouse/client.js');
const ch = new ClickHouse({ url: base.clickhouseUrl, database: 'default' });
await ch.command(`DROP DATABASE IF EXISTS herald_pause_${run}`);
await ch.close();
const { createDb } = await import('../src/store/db.js');
const admin = createDb(base.databaseUrl, 1);
await admin.query(`DROP DATABASE IF EXISTS herald_pause_${run} WITH (FORCE)`);
await admin.end();

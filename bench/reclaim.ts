/**
 * Reclaim benchmark: how long the chunks of a dispatcher killed with SIGKILL wait before another process
 * takes them over and finishes them.
 *   unit: ms from the kill until no chunk is pending on the dead process's consumers (claimed), and until
 *   every chunk it held is acknowledged (finished, events stored); both also as a ratio of
 *   HERALD_RECLAIM_IDLE_MS, the configured idle time before a takeover.
 *   method: one Herald in this process (the survivor) and one `bin/herald serve` child, 2 consumers each,
 *   a local webhook receiver answering in 5 ms, a 40,000-recipient campaign in 100-recipient chunks
 *   (sub-batch 50); the child is killed once 5,000 messages have arrived and it holds chunks. One run per
 *   idle time, in one process run. Whether the child held the campaign's lease (then the survivor must
 *   also wait for the lease, HERALD_LEASE_MS = 1.5 × the idle time) is reported.
 *   npm run bench:reclaim -- [--idle 1000,3000]
 */
import { spawn } from 'node:child_process';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { cpus } from 'node:os';
import { mkdirSync, writeFileSync } from 'node:fs';
import { pino } from 'pino';
import { loadConfig } from '../src/config.js';
import { startHerald } from '../src/main.js';
import { CHUNK_GROUP, Keys } from '../src/stream/keys.js';
import { apiCaller, childHeraldEnv, dropNamespace, namespaced } from './namespace.js';

function arg(name: string, dflt: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i === -1 ? dflt : (process.argv[i + 1] ?? dflt);
}

const IDLES = arg('idle', '1000,3000').split(',').map(Number);
const N = 40_000;
const KEY = 'bench-key-0123456789';
const run = Date.now().toString(36);
let received = 0;
const sink = createServer((req, res) => {
  let data = '';
  req.on('data', (d: Buffer) => (data += d.toString()));
  req.on('end', () =>
    setTimeout(() => {
      received += (JSON.parse(data) as { messages: unknown[] }).messages.length;
      res.writeHead(200).end();
    }, 5),
  );
});
await new Promise<void>((r) => sink.listen(0, '127.0.0.1', r));
const sinkUrl = `http://127.0.0.1:${(sink.address() as AddressInfo).port}/`;
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

const base = loadConfig({ ...process.env, HERALD_API_KEYS: KEY });
const results: Array<Record<string, number | boolean>> = [];
for (const idle of IDLES) {
  const ns = `herald_reclaim_${run}_${idle}`;
  const cfg = namespaced(base, ns, {
    workers: 2,
    subBatchSize: 50,
    webhookBatchSize: 50,
    reclaimIdleMs: idle,
    leaseMs: Math.round(idle * 1.5),
  });
  const herald = await startHerald(cfg, { logger: pino({ level: 'warn' }) });
  const child = spawn('bin/herald', ['serve'], {
    env: childHeraldEnv(cfg, KEY, {
      HERALD_PORT: '0',
      HERALD_WORKERS: '2',
      HERALD_SUBBATCH_SIZE: '50',
      HERALD_WEBHOOK_BATCH_SIZE: '50',
      HERALD_RECLAIM_IDLE_MS: String(idle),
      HERALD_LEASE_MS: String(cfg.leaseMs),
    }),
    stdio: 'ignore',
  });
  const api = `http://127.0.0.1:${herald.port}`;
  const call = apiCaller(api, KEY);
  const aud = await call('POST', '/v1/audiences', JSON.stringify({ name: `reclaim ${idle}` }));
  const lines = Array.from({ length: N }, (_, i) => `{"user_id":"k${i}"}`).join('\n');
  await call('POST', `/v1/audiences/${aud.id}/recipients`, lines, 'application/x-ndjson');
  const c = await call(
    'POST',
    '/v1/campaigns',
    JSON.stringify({
      name: 'reclaim',
      audience_id: aud.id,
      channel: { type: 'webhook', url: sinkUrl },
      content: { title: 't', body: 'b' },
      chunk_size: 100,
    }),
  );
  received = 0;
  await call('POST', `/v1/campaigns/${c.id}/start`);
  const keys = new Keys(cfg.redisPrefix);
  const stream = keys.chunks(c.id);
  const childMark = `-${child.pid}-`;
  const held = async (): Promise<string[]> => {
    const p = (await herald.redis.xpending(stream, CHUNK_GROUP, '-', '+', 1000)) as Array<[string, string, number, number]>;
    return p.filter(([, consumer]) => consumer.includes(childMark)).map(([id]) => id);
  };
  let ids: string[] = [];
  while (received < 5_000 || (ids = await held()).length === 0) await sleep(5);
  const childOwned = String(await herald.redis.get(keys.lease(c.id))).includes(childMark);
  const killedAt = Date.now();
  child.kill('SIGKILL');
  let claimedAt = 0;
  let finishedAt = 0;
  while (finishedAt === 0) {
    const p = (await herald.redis.xpending(stream, CHUNK_GROUP, '-', '+', 1000)) as Array<[string, string, number, number]>;
    const stillHeld = p.filter(([id]) => ids.includes(id));
    if (claimedAt === 0 && stillHeld.every(([, consumer]) => !consumer.includes(childMark))) claimedAt = Date.now();
    if (stillHeld.length === 0) finishedAt = Date.now();
    await sleep(5);
  }
  const r = {
    idleMs: idle,
    chunksHeld: ids.length,
    childHeldLease: childOwned,
    msToClaim: claimedAt - killedAt,
    msToFinish: finishedAt - killedAt,
    claimPerIdle: Math.round(((claimedAt - killedAt) / idle) * 100) / 100,
    finishPerIdle: Math.round(((finishedAt - killedAt) / idle) * 100) / 100,
  };
  results.push(r);
  console.log(
    `reclaim idle ${idle} ms: the killed process held ${r.chunksHeld} chunk(s)${childOwned ? ' and the lease' : ''}; ` +
      `claimed ${r.msToClaim} ms after the kill (${r.claimPerIdle} × idle), finished ${r.msToFinish} ms after (${r.finishPerIdle} × idle)`,
  );
  await call('POST', `/v1/campaigns/${c.id}/cancel`);
  await herald.stop();
  await dropNamespace(base, ns);
}
sink.close();
console.log(`machine: ${cpus().length} × ${cpus()[0]?.model ?? 'cpu'}, node ${process.version}`);
mkdirSync('bench/results', { recursive: true });
writeFileSync('bench/results/reclaim.json', `${JSON.stringify({ bench: 'reclaim', at: new Date().toISOString(), results }, null, 2)}\n`);

/**
 * Reclaim benchmark: how soon the chunks of a dispatcher killed with SIGKILL are taken over and finished
 * by the other process, with the default settings (HERALD_LIVENESS_TTL_MS 3 s, HERALD_RECLAIM_IDLE_MS 30 s,
 * HERALD_LEASE_MS 10 s), and, with `--modes liveness,idle`, on the idle-time path alone (liveness off).
 *   unit: ms from the kill until no chunk the dead process held is pending on its consumers (claimed), and
 *   until every one of them is acknowledged (finished, its events stored in ClickHouse).
 *   method: an API-only Herald and a dispatcher Herald (the survivor) in this process, and one
 *   `bin/herald serve` child, 2 consumers each with the default chunk (500) and sub-batch (50); a local
 *   receiver answering in 5 ms; a 200,000-recipient webhook campaign. The process meant to own the campaign's
 *   lease (`--owners child,survivor`) starts dispatching first; the other joins once the lease is taken. The
 *   child is killed once 60,000 messages have arrived and it holds chunks. Then the campaign must complete
 *   with every recipient delivered, at most the child's in-flight sub-batches (2 × 50) received twice, and
 *   one `delivered` row per recipient in ClickHouse (checked). The survivor's event-loop delay over the run
 *   (max, p99) is reported, as the stall the liveness ttl must outlast. One run per mode and owner.
 *   npm run bench:reclaim -- [--modes liveness,idle] [--owners child,survivor] [--recipients 200000]
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { cpus } from 'node:os';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { mkdirSync, writeFileSync } from 'node:fs';
import { pino } from 'pino';
import { DEFAULTS, loadConfig } from '../src/config.js';
import { startHerald, type Herald } from '../src/main.js';
import { CHUNK_GROUP, Keys } from '../src/stream/keys.js';
import { apiCaller, childHeraldEnv, dropNamespace, namespaced } from './namespace.js';

function arg(name: string, dflt: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i === -1 ? dflt : (process.argv[i + 1] ?? dflt);
}

const MODES = arg('modes', 'liveness').split(',') as Array<'liveness' | 'idle'>;
const OWNERS = arg('owners', 'child,survivor').split(',') as Array<'child' | 'survivor'>;
const N = Number(arg('recipients', '200000'));
const KILL_AT = Math.min(60_000, Math.floor(N * 0.3));
const WORKERS = 2;
const KEY = 'bench-key-0123456789';
const run = Date.now().toString(36);
const seen = new Map<string, number>();
let received = 0;
const receiver = createServer((req, res) => {
  const parts: Buffer[] = [];
  req.on('data', (d: Buffer) => parts.push(d));
  req.on('end', () =>
    setTimeout(() => {
      for (const m of (JSON.parse(Buffer.concat(parts).toString()) as { messages: Array<{ idempotency_key: string }> }).messages) {
        seen.set(m.idempotency_key, (seen.get(m.idempotency_key) ?? 0) + 1);
        received++;
      }
      res.writeHead(200).end();
    }, 5),
  );
});
await new Promise<void>((r) => receiver.listen(0, '127.0.0.1', r));
const receiverUrl = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/`;
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const until = async (what: () => Promise<boolean> | boolean): Promise<void> => {
  while (!(await what())) await sleep(5);
};

const base = loadConfig({ ...process.env, HERALD_API_KEYS: KEY });
const results: Array<Record<string, number | boolean | string>> = [];
for (const mode of MODES) {
  for (const owner of OWNERS) {
    const ns = `herald_reclaim_${run}_${mode}_${owner}`;
    const livenessTtlMs = mode === 'liveness' ? DEFAULTS.livenessTtlMs : 0;
    // Every other setting is the default; the idle path only turns liveness off.
    const cfg = namespaced(base, ns, { workers: WORKERS, livenessTtlMs });
    const logger = pino({ level: 'warn' });
    const front = await startHerald({ ...cfg, workers: 0 }, { logger });
    const call = apiCaller(`http://127.0.0.1:${front.port}`, KEY);
    const aud = await call('POST', '/v1/audiences', JSON.stringify({ name: `reclaim ${mode} ${owner}` }));
    const lines = Array.from({ length: N }, (_, i) => `{"user_id":"r${i}"}`).join('\n');
    await call('POST', `/v1/audiences/${aud.id}/recipients`, lines, 'application/x-ndjson');
    const c = await call(
      'POST',
      '/v1/campaigns',
      JSON.stringify({
        name: 'reclaim',
        audience_id: aud.id,
        channel: { type: 'webhook', url: receiverUrl },
        content: { title: 't', body: 'b' },
      }),
    );
    const keys = new Keys(cfg.redisPrefix);
    const lease = async (): Promise<string> => String(await front.redis.get(keys.lease(c.id)));
    const spawnChild = (): ChildProcess =>
      spawn('bin/herald', ['serve'], {
        env: childHeraldEnv(cfg, KEY, { HERALD_PORT: '0', HERALD_WORKERS: String(WORKERS), HERALD_LIVENESS_TTL_MS: String(livenessTtlMs) }),
        stdio: 'ignore',
      });
    seen.clear();
    received = 0;
    const loopDelay = monitorEventLoopDelay({ resolution: 10 });
    let survivor: Herald;
    let child: ChildProcess;
    if (owner === 'child') {
      child = spawnChild();
      await call('POST', `/v1/campaigns/${c.id}/start`);
      await until(async () => (await lease()).includes(`-${child.pid}-`));
      loopDelay.enable();
      survivor = await startHerald(cfg, { logger, api: false });
    } else {
      loopDelay.enable();
      survivor = await startHerald(cfg, { logger, api: false });
      await call('POST', `/v1/campaigns/${c.id}/start`);
      await until(async () => (await lease()) !== 'null');
      child = spawnChild();
    }
    const mark = `-${child.pid}-`;
    const pending = async (): Promise<Array<[string, string]>> =>
      (await front.redis.xpending(keys.chunks(c.id), CHUNK_GROUP, '-', '+', 10_000)) as Array<[string, string]>;
    let ids: string[] = [];
    await until(
      async () => received >= KILL_AT && (ids = (await pending()).filter(([, who]) => who.includes(mark)).map(([id]) => id)).length > 0,
    );
    const childOwned = (await lease()).includes(mark);
    const exited = new Promise((r) => child.once('exit', r));
    const killedAt = Date.now();
    child.kill('SIGKILL');
    let claimedAt = 0;
    let ackedAt = 0;
    while (ackedAt === 0) {
      const still = (await pending()).filter(([id]) => ids.includes(id));
      if (claimedAt === 0 && still.every(([, who]) => !who.includes(mark))) claimedAt = Date.now();
      if (still.length === 0) ackedAt = Date.now();
      await sleep(5);
    }
    await exited;
    for (;;) {
      const s = await call('GET', `/v1/campaigns/${c.id}`);
      if (s.status === 'completed') break;
      await sleep(100);
    }
    const completedMs = Date.now() - killedAt;
    loopDelay.disable();
    const [rows] = await front.ch.rows<{ n: string; u: string }>(
      `SELECT count() AS n, uniqExact(user_id) AS u FROM message_events WHERE campaign_id = ${c.id} AND kind = 'delivered'`,
    );
    const twice = [...seen.values()].filter((k) => k > 1).length;
    const r = {
      mode,
      livenessTtlMs,
      reclaimIdleMs: cfg.reclaimIdleMs,
      leaseMs: cfg.leaseMs,
      recipients: N,
      chunksHeld: ids.length,
      childHeldLease: childOwned,
      msToClaim: claimedAt - killedAt,
      msToAck: ackedAt - killedAt,
      msToComplete: completedMs,
      receivedUnique: seen.size,
      receivedTwice: twice,
      clickhouseRows: Number(rows!.n),
      clickhouseUnique: Number(rows!.u),
      survivorLoopDelayMaxMs: Math.round(loopDelay.max / 1e6),
      survivorLoopDelayP99Ms: Math.round(loopDelay.percentile(99) / 1e6),
      // What the dead process had in flight may arrive twice: its send slots × a sub-batch each.
      exact:
        seen.size === N && twice <= DEFAULTS.webhookConcurrency * DEFAULTS.subBatchSize && Number(rows!.n) === N && Number(rows!.u) === N,
    };
    results.push(r);
    console.log(
      `reclaim, ${mode === 'liveness' ? `liveness ttl ${livenessTtlMs} ms` : 'idle time only (liveness off)'}, idle ${r.reclaimIdleMs} ms, ` +
        `lease ${r.leaseMs} ms: the killed process held ${r.chunksHeld} chunk(s)${childOwned ? ' and the lease' : ''}; claimed ` +
        `${r.msToClaim} ms after the kill, acked ${r.msToAck} ms after, campaign completed ${completedMs} ms after; ` +
        `receiver ${r.receivedUnique}/${N} unique, ${twice} twice; ClickHouse ${r.clickhouseRows} rows, ${r.clickhouseUnique} unique; ` +
        `survivor's event-loop delay max ${r.survivorLoopDelayMaxMs} ms, p99 ${r.survivorLoopDelayP99Ms} ms; ${r.exact ? 'exact' : 'NOT EXACT'}`,
    );
    await survivor.stop();
    await front.stop();
    await dropNamespace(base, ns);
  }
}
receiver.close();
console.log(`machine: ${cpus().length} × ${cpus()[0]?.model ?? 'cpu'}, node ${process.version}`);
mkdirSync('bench/results', { recursive: true });
writeFileSync('bench/results/reclaim.json', `${JSON.stringify({ bench: 'reclaim', at: new Date().toISOString(), results }, null, 2)}\n`);

/**
 * Redis Cluster benchmark: four campaigns at once on a 3-master Redis Cluster against the same four on one Redis.
 *   unit: recipients per second of the four together (4 × --recipients over the wall time from the first
 *   start to the last completion, as GET /v1/campaigns/:id reports it), and each campaign's seconds; the
 *   ratio cluster / one Redis, per round and of the medians. Which master holds each campaign's keys.
 *   method: one PostgreSQL and ClickHouse namespace and one audience of --recipients null-channel users for
 *   both; each round starts a Herald in this process with its default settings on one Redis (REDIS_URL),
 *   then on the cluster (REDIS_CLUSTER_NODES; default the one `bash scripts/services up --redis-cluster`
 *   starts), creates four campaigns on the audience and starts them together; the two kinds alternate
 *   for --rounds rounds in one run, so both see the same machine and the same populated database.
 *   npm run bench:cluster -- [--recipients 1000000] [--rounds 2]
 */
import { cpus, totalmem } from 'node:os';
import { mkdirSync, writeFileSync } from 'node:fs';
import { pino } from 'pino';
import { loadConfig, type Config } from '../src/config.js';
import { startHerald } from '../src/main.js';
import { deleteKeysWithPrefix, Keys } from '../src/stream/keys.js';
import { connectRedis, isCluster } from '../src/stream/redis-connect.js';
import { apiCaller, dropNamespace, namespaced } from './namespace.js';

function arg(name: string, dflt: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i === -1 ? dflt : (process.argv[i + 1] ?? dflt);
}

const N = Number(arg('recipients', '1000000'));
const ROUNDS = Number(arg('rounds', '2'));
const CAMPAIGNS = 4;
const KEY = 'bench-key-0123456789';
const ns = `herald_rcluster_${Date.now().toString(36)}`;
const base = loadConfig({ ...process.env, HERALD_API_KEYS: KEY });
const nodes = base.redisClusterNodes.length > 0 ? base.redisClusterNodes : ['127.0.0.1:7001', '127.0.0.1:7002', '127.0.0.1:7003'];
const single = namespaced(base, ns, { redisClusterNodes: [] });
const clustered = namespaced(base, ns, { redisClusterNodes: nodes });

async function clusterReady(): Promise<void> {
  const c = connectRedis({ url: clustered.redisUrl, clusterNodes: nodes });
  c.on('error', () => undefined);
  try {
    const info = String(
      await Promise.race([c.cluster('INFO'), new Promise((_, rej) => setTimeout(() => rej(new Error('no answer in 5 s')), 5_000))]),
    );
    if (!/cluster_state:ok/.test(info)) throw new Error(`cluster_state is not ok:\n${info}`);
  } catch (err) {
    throw new Error(`no Redis Cluster at ${nodes.join(',')} (run: bash scripts/services up --redis-cluster): ${(err as Error).message}`);
  } finally {
    c.disconnect();
  }
}

async function waitImport(call: ReturnType<typeof apiCaller>, r: any): Promise<void> {
  if (r.import_id === undefined || r.imported !== undefined) return;
  for (;;) {
    const job = await call('GET', `/v1/imports/${r.import_id}`);
    if (job.status === 'completed') return;
    if (job.status === 'failed') throw new Error(`import failed: ${JSON.stringify(job)}`);
    await new Promise((res) => setTimeout(res, 200));
  }
}

interface Round {
  kind: 'one Redis' | 'cluster';
  round: number;
  wallS: number;
  recipientsPerS: number;
  campaignS: number[];
  /** on the cluster: the master (host:port) serving each campaign's keys */
  masters?: string[];
}

/** The master serving `key`'s slot. */
async function masterOf(cfg: Readonly<Config>, key: string): Promise<string> {
  const c = connectRedis({ url: cfg.redisUrl, clusterNodes: cfg.redisClusterNodes });
  try {
    if (!isCluster(c)) return cfg.redisUrl;
    const slot = Number(await c.cluster('KEYSLOT', key));
    const hit = (await c.cluster('SLOTS')).find(([lo, hi]) => slot >= lo && slot <= hi);
    const master = hit?.[2];
    return master === undefined ? '?' : `${master[0]}:${master[1]}`;
  } finally {
    c.disconnect();
  }
}

async function runRound(kind: Round['kind'], cfg: Readonly<Config>, round: number, audienceId: number): Promise<Round> {
  const herald = await startHerald(cfg, { migrate: false, logger: pino({ level: 'warn' }) });
  try {
    const call = apiCaller(`http://127.0.0.1:${herald.port}`, KEY);
    const ids: number[] = [];
    for (let i = 0; i < CAMPAIGNS; i++) {
      const c = await call('POST', '/v1/campaigns', {
        name: `${kind} ${round}.${i}`,
        audience_id: audienceId,
        channel: { type: 'null' },
        content: { title: 't', body: 'b' },
      });
      ids.push(c.id as number);
    }
    const t0 = performance.now();
    await Promise.all(ids.map((id) => call('POST', `/v1/campaigns/${id}/start`)));
    const doneAt = new Map<number, number>();
    while (doneAt.size < ids.length) {
      await new Promise((r) => setTimeout(r, 100));
      for (const id of ids) {
        if (doneAt.has(id)) continue;
        const c = await call('GET', `/v1/campaigns/${id}`);
        if (c.status === 'failed' || c.status === 'cancelled') throw new Error(`campaign ${id} ${c.status}`);
        if (c.status === 'completed') {
          if (c.delivered !== N) throw new Error(`campaign ${id} delivered ${c.delivered} of ${N}`);
          doneAt.set(id, performance.now());
        }
      }
    }
    const wallS = (Math.max(...doneAt.values()) - t0) / 1000;
    const keys = new Keys(cfg.redisPrefix);
    const r: Round = {
      kind,
      round,
      wallS: Math.round(wallS * 100) / 100,
      recipientsPerS: Math.round((CAMPAIGNS * N) / wallS),
      campaignS: ids.map((id) => Math.round((doneAt.get(id)! - t0) / 10) / 100),
    };
    if (kind === 'cluster') r.masters = await Promise.all(ids.map((id) => masterOf(cfg, keys.plan(id))));
    return r;
  } finally {
    await herald.stop();
  }
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 === 1 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};

await clusterReady();
const rounds: Round[] = [];
try {
  // Migrations and the audience, once: both kinds send to the same recipients from the same database.
  const setup = await startHerald(single, { logger: pino({ level: 'warn' }) });
  const call = apiCaller(`http://127.0.0.1:${setup.port}`, KEY);
  const audience = await call('POST', '/v1/audiences', { name: 'cluster bench' });
  const lines: string[] = [];
  for (let i = 1; i <= N; i++) lines.push(`{"user_id":"u${i}","address":"u${i}@example.test"}`);
  await waitImport(call, await call('POST', `/v1/audiences/${audience.id}/recipients`, lines.join('\n'), 'application/x-ndjson'));
  lines.length = 0;
  await setup.stop();

  for (let round = 1; round <= ROUNDS; round++) {
    // Alternating, and the first kind of a round alternating too, so neither always runs on a warmer machine.
    const order: Array<[Round['kind'], Readonly<Config>]> = [
      ['one Redis', single],
      ['cluster', clustered],
    ];
    if (round % 2 === 0) order.reverse();
    for (const [kind, cfg] of order) {
      const r = await runRound(kind, cfg, round, audience.id as number);
      rounds.push(r);
      console.log(
        `round ${round} ${kind.padEnd(9)} ${r.recipientsPerS.toLocaleString('en')} recipients/s (${r.wallS} s for ${CAMPAIGNS} × ${N.toLocaleString('en')})` +
          (r.masters ? `  masters: ${r.masters.join(' ')}` : ''),
      );
    }
  }
} finally {
  await dropNamespace(base, ns).catch((err: unknown) => console.error('cleanup (one Redis):', err));
  // The databases went with the first; the cluster's keys are left.
  const c = connectRedis({ url: clustered.redisUrl, clusterNodes: nodes });
  await deleteKeysWithPrefix(c, ns).catch((err: unknown) => console.error('cleanup (cluster):', err));
  c.disconnect();
}

const one = median(rounds.filter((r) => r.kind === 'one Redis').map((r) => r.recipientsPerS));
const clu = median(rounds.filter((r) => r.kind === 'cluster').map((r) => r.recipientsPerS));
const ratio = Math.round((clu / one) * 100) / 100;
const machine = { cpus: cpus().length, cpu: cpus()[0]?.model ?? '', memGiB: Math.round(totalmem() / 2 ** 30), node: process.version };
console.log(`\nmedian: one Redis ${one.toLocaleString('en')}/s, cluster ${clu.toLocaleString('en')}/s, cluster / one Redis ${ratio}×`);
console.log(`machine: ${machine.cpus} × ${machine.cpu}, node ${machine.node}; Redis and the cluster's 3 masters on the same cores`);
mkdirSync(new URL('./results/', import.meta.url), { recursive: true });
writeFileSync(
  new URL('./results/redis-cluster.json', import.meta.url),
  JSON.stringify(
    {
      unit: `recipients/s of ${CAMPAIGNS} null campaigns of ${N} at once (first start to last completion)`,
      method:
        'one Herald in the bench process, default settings; the same database and audience for both; one Redis and the 3-master cluster alternating',
      recipients: N,
      campaigns: CAMPAIGNS,
      clusterNodes: nodes,
      machine,
      rounds,
      median: { oneRedis: one, cluster: clu, ratio },
    },
    null,
    2,
  ) + '\n',
);

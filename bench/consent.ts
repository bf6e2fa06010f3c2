/**
 * Consent benchmark: the null campaign's rate with 1M suppressed users and a topic frequency cap on,
 * against the same campaign without them, in one run (issue 16's target: ≥ 70 %).
 *   unit: recipients per second, from `start` answered to `completed` (every event in ClickHouse); the
 *   ratio of the consent campaign's rate to the plain one's; the bulk PUT of the suppressions, first byte
 *   to its batch applied (and to the answer, 202 when the apply outlasts HERALD_IMPORT_ANSWER_WAIT_MS); the
 *   Herald process's peak RSS; CPU seconds per service and Redis's time per command, per round.
 *   method: one `bin/herald serve` child (its defaults, 2 consumers) on a namespace of its own; an audience
 *   of --recipients users imported over HTTP; --suppressed users put on the global list and the topic's
 *   list in one streamed NDJSON request, --overlap of them audience members (so that share of the audience
 *   is `suppressed`), the rest not; the topic's cap --cap max/window_s. First --rounds plain null campaigns
 *   with no suppressions and no cap (the rate "without them"), then the PUT and the cap, then a one-user
 *   campaign of the topic (its cap state is built once per topic and Redis lifetime: ~1.5 s, reported as
 *   `warmMs`), then --rounds campaigns with `topic` set (screened by both lists and the cap). Campaigns after
 *   the first of the topic find users already counted, so a cap of 1 caps them all: the default 2 lets
 *   two consent rounds through.
 *   npm run bench:consent -- [--recipients 1000000] [--suppressed 1000000] [--overlap 0.1] [--cap 2/86400 | none] [--rounds 1]
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { loadConfig } from '../src/config.js';
import { migrate } from '../src/main.js';
import { apiCaller, childHeraldEnv, dropNamespace, namespaced, spawnServe, stopServe } from './namespace.js';
import { cpuByService, cpuSince, peakRssMb } from './proc.js';
import { Redis } from 'ioredis';

function arg(name: string, dflt: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i === -1 ? dflt : (process.argv[i + 1] ?? dflt);
}

const N = Number(arg('recipients', '1000000'));
const S = Number(arg('suppressed', '1000000'));
const OVERLAP = Number(arg('overlap', '0.1'));
// `--cap none`: the lists alone, no cap on the topic
const CAP = arg('cap', '2/86400');
const [CAP_MAX, CAP_WINDOW_S] = CAP === 'none' ? [0, 0] : (CAP.split('/').map(Number) as [number, number]);
const ROUNDS = Number(arg('rounds', '1'));
const KEY = 'bench-key-0123456789';
const PORT = 18000 + Math.floor(Math.random() * 1000);
const TOPIC = 'bench';

const base = loadConfig({ ...process.env, HERALD_API_KEYS: KEY });
const ns = `herald_bench_consent_${Date.now().toString(36)}`;
const cfg = namespaced(base, ns);
await migrate(cfg);
const api = apiCaller(`http://127.0.0.1:${PORT}`, KEY);
const child = await spawnServe(childHeraldEnv(cfg, KEY, { HERALD_PORT: String(PORT) }), PORT);
const report: Record<string, unknown> = {
  unit: 'recipients/s from start to completed; ms for the bulk PUT',
  machine: `${cpus().length} × ${cpus()[0]?.model ?? '?'}`,
  recipients: N,
  suppressed: S,
  overlap: OVERLAP,
  cap: CAP === 'none' ? null : { max: CAP_MAX, window_s: CAP_WINDOW_S },
};

const redis = new Redis(cfg.redisUrl);

/** Redis's own time per command in µs over a round (INFO commandstats, reset before it). */
async function redisUsec(): Promise<Record<string, number>> {
  const info = await redis.info('commandstats');
  const out: Record<string, number> = {};
  for (const m of info.matchAll(/cmdstat_(\w+):calls=(\d+),usec=(\d+)/g)) out[m[1]!] = Number(m[3]);
  return out;
}

interface Round {
  rate: number;
  counts: Record<string, number>;
  cpu: Record<string, number>;
  redisUsec: Record<string, number>;
}

async function runCampaign(audienceId: number, extra: Record<string, unknown>): Promise<Round> {
  const c = await api('POST', '/v1/campaigns', {
    name: 'bench',
    audience_id: audienceId,
    channel: { type: 'null' },
    content: { title: 't', body: 'b' },
    ...extra,
  });
  await redis.config('RESETSTAT');
  const cpu0 = cpuByService(child.pid!);
  const t0 = performance.now();
  await api('POST', `/v1/campaigns/${c.id}/start`);
  for (;;) {
    const g = await api('GET', `/v1/campaigns/${c.id}`);
    if (g.status === 'completed') {
      const s = (performance.now() - t0) / 1000;
      return {
        rate: Math.round(N / s),
        counts: { delivered: g.delivered, suppressed: g.suppressed, capped: g.capped, total: g.total },
        cpu: cpuSince(cpu0, child.pid!),
        redisUsec: await redisUsec(),
      };
    }
    await new Promise((r) => setTimeout(r, 20));
  }
}

try {
  const aud = await api('POST', '/v1/audiences', { name: 'consent bench' });
  const lines: string[] = [];
  for (let i = 1; i <= N; i++) lines.push(`{"user_id":"u${i}"}`);
  const imp = await api('POST', `/v1/audiences/${aud.id}/recipients`, lines.join('\n'), 'application/x-ndjson');
  if (imp.status === 'merging')
    for (
      let j = await api('GET', `/v1/imports/${imp.import_id}`);
      j.status !== 'completed';
      j = await api('GET', `/v1/imports/${imp.import_id}`)
    )
      await new Promise((r) => setTimeout(r, 200));
  const plain: Round[] = [];
  for (let r = 0; r < ROUNDS; r++) plain.push(await runCampaign(aud.id, {}));
  // Every `step`-th audience member is suppressed (half on the global list, half on the topic's), the rest of
  // the list is users outside the audience.
  const inAudience = Math.min(N, Math.round(S * OVERLAP));
  const step = inAudience === 0 ? 0 : N / inAudience;
  const sup: string[] = [];
  for (let k = 0; k < inAudience; k++)
    sup.push(JSON.stringify({ user_id: `u${Math.floor(k * step) + 1}`, ...(k % 2 === 0 ? {} : { topic: TOPIC }) }));
  for (let k = inAudience; k < S; k++) sup.push(JSON.stringify({ user_id: `x${k}`, ...(k % 2 === 0 ? {} : { topic: TOPIC }) }));
  const t0 = performance.now();
  const put = await api('PUT', '/v1/suppressions', sup.join('\n'), 'application/x-ndjson');
  const answeredMs = Math.round(performance.now() - t0);
  // answered 202 while the batch applies: the consent rounds start once it is applied
  let batch = put;
  while (batch.status === 'applying') {
    await new Promise((r) => setTimeout(r, 100));
    batch = await api('GET', `/v1/suppressions/batches/${put.id}`);
  }
  if (batch.status !== 'completed') throw new Error(`suppression batch ${put.id} ended ${batch.status}: ${batch.error}`);
  report.put = { lines: S, accepted: put.accepted, answeredMs, batchAtAnswer: put.status, ms: Math.round(performance.now() - t0) };
  await api('PUT', `/v1/topics/${TOPIC}`, { cap: CAP === 'none' ? null : { max: CAP_MAX, window_s: CAP_WINDOW_S } });
  const warm = await api('POST', '/v1/audiences', { name: 'consent bench warm-up' });
  await api('POST', `/v1/audiences/${warm.id}/recipients`, '{"user_id":"warm"}', 'application/x-ndjson');
  const w0 = performance.now();
  const wc = await api('POST', '/v1/campaigns', {
    name: 'warm',
    audience_id: warm.id,
    channel: { type: 'null' },
    content: { title: 't', body: 'b' },
    topic: TOPIC,
  });
  await api('POST', `/v1/campaigns/${wc.id}/start`);
  while ((await api('GET', `/v1/campaigns/${wc.id}`)).status !== 'completed') await new Promise((r) => setTimeout(r, 20));
  report.warmMs = Math.round(performance.now() - w0);
  const consent: Round[] = [];
  for (let r = 0; r < ROUNDS; r++) consent.push(await runCampaign(aud.id, { topic: TOPIC }));
  const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
  const ratio = median(consent.map((c) => c.rate)) / median(plain.map((c) => c.rate));
  report.plain = plain;
  report.consent = consent;
  report.ratio = Math.round(ratio * 1000) / 1000;
  console.log(
    `plain ${plain.map((c) => c.rate).join(', ')}/s; consent ${consent.map((c) => c.rate).join(', ')}/s; ratio of medians ${ratio.toFixed(3)}`,
  );
  report.peakRssMb = peakRssMb(child.pid!);
  console.log(JSON.stringify(report, null, 2));
  mkdirSync('bench/results', { recursive: true });
  writeFileSync(`bench/results/consent${N === 1_000_000 ? '' : `-${N}`}.json`, JSON.stringify(report, null, 2));
} finally {
  await stopServe(child);
  redis.disconnect();
  await dropNamespace(base, ns);
}

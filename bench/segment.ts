/**
 * Segment benchmark (issue 16): a campaign sent to a segment of a large audience against a campaign sent
 * to a whole audience of the segment's size, on the null channel, as a user runs them.
 *   unit: recipients sent per second (wall clock, start → completed); the segment's recipients only.
 *   method: `bin/herald serve` with its defaults (HERALD_WORKERS from --workers), a namespace of its own
 *   (dropped at the end). Two audiences imported over HTTP: `--recipients` lines (default 10,000,000) whose
 *   `country` is one of 10 values, spread evenly and interleaved by id, and a whole audience of
 *   `--recipients × --segment` lines (default 0.3: 3,000,000). The segment is `country in […]` over
 *   `--segment × 10` of the values. Rounds (`--rounds`) alternate the whole campaign and the segment one;
 *   the ratio is the median of the rounds' ratios. Also reported: each import's rows/s (the GIN index on
 *   attrs built in it), the segment's first (counted) and second (kept) `GET …/count`, the time until the
 *   segment's attribute index is ready (the rounds wait for it), and planning time.
 *   target: segment recipients/s ≥ 0.8 × whole-audience recipients/s.
 *   npm run bench:segment -- [--recipients 10000000] [--segment 0.3] [--workers 2] [--rounds 3] [--keep]
 *     [--populated [--database herald_bench_populated] [--populated-recipients N] [--populated-events N]]
 *   --populated: Herald runs in the used database of populated.ts (filled first where short; both audiences
 *   are kept there as earlier ones), into results/segment-<N>-populated.json.
 */
import type { ChildProcess } from 'node:child_process';
import { createWriteStream, mkdirSync, writeFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { cpus, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { loadConfig } from '../src/config.js';
import { migrate } from '../src/main.js';
import { createDb } from '../src/store/db.js';
import { median } from './peers/naive.js';
import { childHeraldEnv, namespaced, spawnServe, stopServe, uploadNdjson } from './namespace.js';
import { dropRun, inPopulated, populate, populatedOptions, type PopulatedDb } from './populated.js';
import { peakRssMb } from './proc.js';

function arg(name: string, dflt: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i === -1 ? dflt : (process.argv[i + 1] ?? dflt);
}

const N = Number(arg('recipients', '10000000'));
const FRACTION = Number(arg('segment', '0.3'));
const WORKERS = Number(arg('workers', '2'));
const ROUNDS = Number(arg('rounds', '3'));
const COUNTRIES = ['DE', 'AT', 'FR', 'US', 'BR', 'IN', 'PL', 'ES', 'IT', 'NL'];
const IN = Math.round(FRACTION * COUNTRIES.length);
if (!(IN >= 1 && IN <= COUNTRIES.length && Math.abs(IN / COUNTRIES.length - FRACTION) < 1e-9))
  throw new Error('--segment must be a multiple of 0.1 from 0.1 to 1');
const WHOLE = Math.round(N * FRACTION);
const KEY = 'bench-key-0123456789';
const PORT = 18_500;
const run = Date.now().toString(36);
const ns = `herald_bench_seg_${run}`;
const base = loadConfig();
const POPULATED = populatedOptions();
const own = namespaced(base, ns, { port: PORT });
// --populated: PostgreSQL and ClickHouse are the used database's (populated.ts); Redis stays the run's own
const cfg = POPULATED === null ? own : inPopulated(own, POPULATED);
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function call(method: string, path: string, body?: unknown): Promise<any> {
  const r = await fetch(`http://127.0.0.1:${PORT}${path}`, {
    method,
    headers: { authorization: `Bearer ${KEY}`, 'content-type': 'application/json' },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  const json = await r.json();
  if (!r.ok) throw new Error(`${method} ${path}: ${r.status} ${JSON.stringify(json)}`);
  return json;
}

/** `n` NDJSON lines; line i's country is COUNTRIES[(i × 7) mod 10], so every value recurs every 10 ids. */
async function writeFile(n: number, prefix: string, path: string): Promise<void> {
  const out = createWriteStream(path);
  for (let start = 1; start <= n; start += 20_000) {
    let s = '';
    for (let i = start; i <= Math.min(n, start + 19_999); i++) {
      const plan = i % 3 === 0 ? 'pro' : 'free';
      s += `{"user_id":"${prefix}${i}","attrs":{"country":"${COUNTRIES[(i * 7) % 10]}","plan":"${plan}","n":${i % 1000}}}\n`;
    }
    if (!out.write(s)) await new Promise<void>((r) => out.once('drain', () => r()));
  }
  await new Promise<void>((r) => out.end(() => r()));
}

/** Uploads `path` into a new audience, follows the job to `completed`; rows/s from first byte to completed. */
async function importFile(path: string, name: string, lines: number): Promise<{ audienceId: number; rowsPerSec: number }> {
  const audience = await call('POST', '/v1/audiences', { name });
  const t0 = performance.now();
  let job = (await uploadNdjson(`http://127.0.0.1:${PORT}`, KEY, audience.id, path)).body as {
    status: string;
    import_id: number;
    imported: number;
  };
  // the first answer names the job `import_id`; GET /v1/imports/:id calls it `id`
  const importId = job.import_id;
  while (job.status !== 'completed' && job.status !== 'failed') {
    await sleep(100);
    job = (await call('GET', `/v1/imports/${importId}`)) as typeof job;
  }
  if (job.imported !== lines) throw new Error(`import of ${name}: ${job.status}, ${job.imported} of ${lines}`);
  return { audienceId: audience.id, rowsPerSec: lines / ((performance.now() - t0) / 1000) };
}

interface Run {
  kind: 'whole' | 'segment';
  round: number;
  recipients: number;
  seconds: number;
  recipientsPerSec: number;
  planMs: number;
}

async function send(kind: Run['kind'], round: number, body: Record<string, unknown>, expect: number): Promise<Run> {
  const c = await call('POST', '/v1/campaigns', {
    name: `bench ${kind} ${round}`,
    channel: { type: 'null' },
    content: { title: 'B', body: 'B' },
    ...body,
  });
  const t0 = performance.now();
  await call('POST', `/v1/campaigns/${c.id}/start`);
  let planMs = NaN;
  for (;;) {
    const r = (await db.query('SELECT status, planning_done FROM campaigns WHERE id = $1', [c.id])).rows[0];
    if (Number.isNaN(planMs) && r.planning_done) planMs = performance.now() - t0;
    if (r.status === 'completed') break;
    if (r.status !== 'sending') throw new Error(`campaign ${c.id} ended ${r.status}`);
    await sleep(10);
  }
  const seconds = (performance.now() - t0) / 1000;
  const got = await call('GET', `/v1/campaigns/${c.id}`);
  if (got.delivered !== expect || got.total !== expect)
    throw new Error(`${kind}: ${got.delivered} delivered, total ${got.total}, of ${expect}`);
  const r: Run = { kind, round, recipients: expect, seconds, recipientsPerSec: Math.round(expect / seconds), planMs: Math.round(planMs) };
  console.log(
    `round ${round} ${kind}: ${expect.toLocaleString()} recipients in ${seconds.toFixed(2)} s = ${r.recipientsPerSec.toLocaleString()} recipients/s; plan ${r.planMs} ms`,
  );
  return r;
}

await migrate(cfg);
const db = createDb(cfg.databaseUrl, 2);
let herald: ChildProcess | null = null;
let used: PopulatedDb | null = null;
try {
  herald = await spawnServe(
    childHeraldEnv(cfg, KEY, { HERALD_PORT: String(PORT), HERALD_HOST: '127.0.0.1', HERALD_WORKERS: String(WORKERS) }),
    PORT,
  );
  used = POPULATED === null ? null : await populate(cfg, POPULATED, `http://127.0.0.1:${PORT}`, KEY);
  const big = join(tmpdir(), `${ns}-big.ndjson`);
  const whole = join(tmpdir(), `${ns}-whole.ndjson`);
  await writeFile(N, 's', big);
  await writeFile(WHOLE, 'w', whole);
  const a = await importFile(big, `segment source ${run}`, N);
  const b = await importFile(whole, `whole ${run}`, WHOLE);
  await rm(big, { force: true });
  await rm(whole, { force: true });
  console.log(
    `imports (GIN on attrs included): ${N.toLocaleString()} lines at ${Math.round(a.rowsPerSec).toLocaleString()} rows/s; ${WHOLE.toLocaleString()} at ${Math.round(b.rowsPerSec).toLocaleString()} rows/s`,
  );

  const filter = { attr: 'country', in: COUNTRIES.slice(0, IN) };
  const created = performance.now();
  const seg = await call('POST', '/v1/segments', { name: `${FRACTION} of ${N}`, audience_id: a.audienceId, filter });
  // The creation starts a count in the background; wait for it, then time a count of a second segment
  // counted on demand, and a kept one.
  const seg2 = await call('POST', '/v1/segments', { name: 'twin', audience_id: a.audienceId, filter: { and: [filter] } });
  let t = performance.now();
  const counted = await call('GET', `/v1/segments/${seg2.id}/count`);
  const firstCountMs = performance.now() - t;
  t = performance.now();
  const kept = await call('GET', `/v1/segments/${seg2.id}/count`);
  const keptCountMs = performance.now() - t;
  let expect = 0;
  for (let i = 1; i <= N; i++) if ((i * 7) % 10 < IN) expect++;
  if (counted.count !== expect || kept.count !== expect) throw new Error(`count ${counted.count} / ${kept.count}, expected ${expect}`);
  console.log(
    `count of the segment (${expect.toLocaleString()} of ${N.toLocaleString()}): ${firstCountMs.toFixed(0)} ms counted, ${keptCountMs.toFixed(1)} ms kept (cached: ${kept.cached})`,
  );

  // The segment's attribute index (store/attr-index.ts) is built in the background once its first count
  // is done; a campaign started before it is valid plans by the scan. Its time is paid once per audience
  // and attribute, so the rounds start once it is ready.
  let index: { attr: string; state: string } | null = null;
  for (const deadline = Date.now() + 300_000; Date.now() < deadline; await sleep(100)) {
    index = (await call('GET', `/v1/segments/${seg.id}`)).index;
    // (null: no lead; undefined: a Herald without attribute indexes, when run against an older commit)
    if (index == null || index.state === 'ready') break;
  }
  const indexReadyMs = performance.now() - created;
  console.log(
    `attribute index on ${index?.attr}: ${index?.state} ${(indexReadyMs / 1000).toFixed(1)} s after the segment was created (its count included)`,
  );
  // A segment made once the attribute is indexed: counted from the attribute's counted values.
  const seg3 = await call('POST', '/v1/segments', { name: 'after the index', audience_id: a.audienceId, filter });
  t = performance.now();
  const indexedCount = await call('GET', `/v1/segments/${seg3.id}/count`);
  const indexedCountMs = performance.now() - t;
  if (indexedCount.count !== expect) throw new Error(`count ${indexedCount.count}, expected ${expect}`);
  console.log(`count of a new segment on the indexed attribute: ${indexedCountMs.toFixed(1)} ms`);

  const runs: Run[] = [];
  for (let round = 1; round <= ROUNDS; round++) {
    runs.push(await send('whole', round, { audience_id: b.audienceId }, WHOLE));
    runs.push(await send('segment', round, { audience_id: a.audienceId, segment_id: seg.id }, expect));
  }
  const ratios = Array.from({ length: ROUNDS }, (_, i) => runs[2 * i + 1]!.recipientsPerSec / runs[2 * i]!.recipientsPerSec);
  const ratio = median(ratios);
  const rss = peakRssMb(herald.pid!);
  console.log(
    `segment ${FRACTION} of ${N.toLocaleString()} vs whole ${WHOLE.toLocaleString()}: ratio ${ratio.toFixed(2)} (rounds ${ratios.map((r) => r.toFixed(2)).join(', ')}); ` +
      `target ≥ 0.80: ${ratio >= 0.8 ? 'met' : 'NOT met'}; Herald peak RSS ${Math.round(rss)} MB`,
  );
  const machine = { cpus: cpus().length, cpu: cpus()[0]?.model ?? '', memGiB: Math.round(totalmem() / 2 ** 30), node: process.version };
  mkdirSync('bench/results', { recursive: true });
  writeFileSync(
    `bench/results/segment-${N}${POPULATED === null ? '' : '-populated'}.json`,
    `${JSON.stringify({ unit: 'recipients/s', machine, populated: used, recipients: N, fraction: FRACTION, workers: WORKERS, importRowsPerSec: { source: Math.round(a.rowsPerSec), whole: Math.round(b.rowsPerSec) }, countMs: { counted: Math.round(firstCountMs), kept: Math.round(keptCountMs * 10) / 10, indexed: Math.round(indexedCountMs * 10) / 10 }, indexReadyMs: Math.round(indexReadyMs), runs, ratio, peakRssMb: Math.round(rss) }, null, 2)}\n`,
  );
} finally {
  if (herald !== null) await stopServe(herald);
  await db.end();
  if (!process.argv.includes('--keep')) await dropRun(base, ns, POPULATED);
}

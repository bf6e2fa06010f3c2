/**
 * Import benchmark: a large NDJSON file with attributes into a database that already holds other
 * audiences, as a user runs it: `bin/herald serve` with its defaults, the file uploaded over HTTP (as
 * `curl -T` would: written before the clock starts), the job followed until `completed`.
 *   unit: rows per second from the first byte sent to `completed` (and to the HTTP answer); peak RSS
 *   of the Herald process (VmHWM); CPU seconds per service.
 *   method: one Herald child per run. The populated database (`--database`, kept between bench runs)
 *   is filled first, if it holds fewer than `--populated` recipients, through the same HTTP import in
 *   audiences of 1,000,000 lines. In the same run, for the ratio: PostgreSQL's own `COPY` of the same
 *   rows (COPY text, made from the same file) into an unindexed table shaped like `recipients`, and of
 *   the NDJSON file itself into a one-column jsonb table (the ceiling is measured before and after
 *   Herald's import, and their mean is used); and the same import into an empty database. The bench's
 *   own audience is dropped again, so the populated database keeps its size from run to run.
 *   npm run bench:import -- [--lines 10000000] [--populated 20000000] [--database herald_bench_populated] [--no-fresh]
 */
import type { ChildProcess } from 'node:child_process';
import { createReadStream, createWriteStream, mkdirSync, statSync, writeFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { cpus, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { from as copyFrom } from 'pg-copy-streams';
import { loadConfig, type Config } from '../src/config.js';
import { migrate } from '../src/main.js';
import { createDb } from '../src/store/db.js';
import { childHeraldEnv, dropNamespace, namespaced, spawnServe, stopServe, uploadNdjson } from './namespace.js';
import { cpuByService, cpuSince, peakRssMb } from './proc.js';

function arg(name: string, dflt: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i === -1 ? dflt : (process.argv[i + 1] ?? dflt);
}

const LINES = Number(arg('lines', '10000000'));
const POPULATED = Number(arg('populated', '20000000'));
const POPULATED_DB = arg('database', 'herald_bench_populated');
const FRESH = !process.argv.includes('--no-fresh');
const KEY = 'bench-key-0123456789';
const PORT = 18_490;
const run = Date.now().toString(36);
const base = loadConfig();
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

const COUNTRIES = ['DE', 'FR', 'BR', 'US', 'IN', 'JP', 'NG', 'MX'];
const PLANS = ['free', 'pro', 'team'];
function attrs(i: number): string {
  return `{"country":"${COUNTRIES[i % 8]}","plan":"${PLANS[i % 3]}","signup_at":"2026-${String(1 + (i % 12)).padStart(2, '0')}-${String(1 + (i % 28)).padStart(2, '0')}"}`;
}

/** The NDJSON file of `n` lines with 3 attrs each, and (if `copyPath`) the same rows as COPY text. */
async function writeFiles(n: number, prefix: string, path: string, copyPath?: string): Promise<void> {
  const nd = createWriteStream(path);
  const cp = copyPath === undefined ? null : createWriteStream(copyPath);
  const write = (w: NodeJS.WritableStream, s: string): Promise<void> | null =>
    w.write(s) ? null : new Promise((r) => w.once('drain', () => r()));
  for (let start = 1; start <= n; start += 20_000) {
    let a = '';
    let b = '';
    for (let i = start; i <= Math.min(n, start + 19_999); i++) {
      const u = `${prefix}${(i * 7919) % 1_000_000_007}`;
      a += `{"user_id":"${u}","address":"${u}@example.test","attrs":${attrs(i)}}\n`;
      if (cp !== null) b += `${i}\t${u}\t${u}@example.test\t${attrs(i)}\n`;
    }
    await write(nd, a);
    if (cp !== null) await write(cp, b);
  }
  await new Promise((r) => nd.end(r));
  if (cp !== null) await new Promise((r) => cp.end(r));
}

function startHerald(cfg: Readonly<Config>): Promise<ChildProcess> {
  return spawnServe(childHeraldEnv(cfg, KEY, { HERALD_PORT: String(PORT), HERALD_HOST: '127.0.0.1' }), PORT);
}

const stopHerald = stopServe;

async function call(method: string, path: string, body?: unknown): Promise<any> {
  const r = await fetch(`http://127.0.0.1:${PORT}${path}`, {
    method,
    headers: { authorization: `Bearer ${KEY}`, 'content-type': 'application/json' },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  return r.json();
}

interface Timed {
  answerS: number;
  completedS: number;
  status: number;
  /** the job's status in the answer */
  answered: string;
  /** the audience it created (a quick import's 200 answer does not name it) */
  audienceId: number;
  job: any;
  /** how long other requests took while the body was uploading: GET /v1/audiences/:id every 100 ms */
  probe: { requests: number; p50Ms: number; p99Ms: number; maxMs: number };
}

function quantile(sorted: readonly number[], q: number): number {
  return sorted.length === 0 ? NaN : sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;
}

/** Uploads `path` into a new audience and follows the job to its end. */
async function timedImport(path: string, name: string): Promise<Timed> {
  const audience = await call('POST', '/v1/audiences', { name });
  const t0 = performance.now();
  // Another client's requests while the body uploads: what an import costs everyone else on the process.
  let uploading = true;
  const took: number[] = [];
  const probing = (async () => {
    while (uploading) {
      const q = performance.now();
      await call('GET', `/v1/audiences/${audience.id}`);
      took.push(performance.now() - q);
      await sleep(100);
    }
  })();
  const res = await uploadNdjson(`http://127.0.0.1:${PORT}`, KEY, audience.id, path).finally(() => (uploading = false));
  await probing;
  took.sort((a, b) => a - b);
  const probe = { requests: took.length, p50Ms: quantile(took, 0.5), p99Ms: quantile(took, 0.99), maxMs: took[took.length - 1] ?? NaN };
  const answer = res.body as { import_id: number; status: string };
  const answerS = (performance.now() - t0) / 1000;
  const answered = answer.status;
  let job: any = answer;
  while (job.status !== 'completed' && job.status !== 'failed') {
    await sleep(100);
    job = await call('GET', `/v1/imports/${answer.import_id}`);
  }
  return { answerS, completedS: (performance.now() - t0) / 1000, status: res.status, answered, audienceId: audience.id, job, probe };
}

const dir = join(tmpdir(), `herald-bench-import-${run}`);
mkdirSync(dir, { recursive: true });
const ndPath = join(dir, 'audience.ndjson');
const copyPath = join(dir, 'audience.copy');
const results: Record<string, unknown> = {};
try {
  // 1. The populated database, filled through Herald's own import if it is short.
  const pop = namespaced(base, POPULATED_DB);
  await migrate(pop);
  const popDb = createDb(pop.databaseUrl, 2);
  const have = Number((await popDb.query<{ n: number }>('SELECT count(*)::bigint AS n FROM recipients')).rows[0]!.n);
  if (have < POPULATED) {
    const herald = await startHerald(pop);
    const fill = join(dir, 'fill.ndjson');
    for (let k = 0; k < Math.ceil((POPULATED - have) / 1_000_000); k++) {
      await writeFiles(1_000_000, `p${run}${k}-`, fill);
      const r = await timedImport(fill, `earlier audience ${k}`);
      console.log(`populating: audience ${k + 1} of 1,000,000 lines in ${r.completedS.toFixed(1)} s (${r.job.status})`);
    }
    await stopHerald(herald);
  }
  const held = Number((await popDb.query<{ n: number }>('SELECT count(*)::bigint AS n FROM recipients')).rows[0]!.n);
  const audiences = Number((await popDb.query<{ n: number }>('SELECT count(*)::bigint AS n FROM audiences')).rows[0]!.n);
  console.log(`populated database ${POPULATED_DB}: ${held.toLocaleString()} recipients in ${audiences} audiences`);

  // 2. The file, written before any clock starts.
  await writeFiles(LINES, `c${run}-`, ndPath, copyPath);
  const bytes = statSync(ndPath).size;

  // 3. PostgreSQL's own COPY of the same rows, into unindexed tables of the populated database.
  const copyInto = async (table: string, columns: string, file: string): Promise<number> => {
    const client = await popDb.connect();
    try {
      const t0 = performance.now();
      await pipeline(createReadStream(file, { highWaterMark: 1 << 20 }), client.query(copyFrom(`COPY ${table} ${columns} FROM STDIN`)));
      return (performance.now() - t0) / 1000;
    } finally {
      client.release();
    }
  };
  await popDb.query(
    'CREATE TABLE bench_copy_ceiling (audience_id bigint, id bigint, user_id text COLLATE "C", address text, attrs jsonb); CREATE TABLE bench_copy_ndjson (doc jsonb)',
  );
  // Measured before and after Herald's import (the machine's speed moves): the mean is the ceiling.
  const ceiling = async (): Promise<number> => {
    const secs = await copyInto('bench_copy_ceiling', '(id, user_id, address, attrs)', copyPath);
    await popDb.query('TRUNCATE bench_copy_ceiling');
    return secs;
  };
  const ceilingBeforeS = await ceiling();
  const ndjsonCopyS = await copyInto('bench_copy_ndjson', '(doc)', ndPath);
  await popDb.query('DROP TABLE bench_copy_ndjson');

  // 4. Herald, defaults, into the populated database.
  const herald = await startHerald(pop);
  const cpu0 = cpuByService(herald.pid!);
  // (the ceiling's second measurement follows the import)
  const populated = await timedImport(ndPath, `bench import ${run}`);
  const cpu = cpuSince(cpu0, herald.pid!);
  const rss = peakRssMb(herald.pid!);
  await stopHerald(herald);
  const ceilingAfterS = await ceiling();
  await popDb.query('DROP TABLE bench_copy_ceiling');
  await rm(copyPath, { force: true });
  const ceilingS = (ceilingBeforeS + ceilingAfterS) / 2;
  console.log(
    `PostgreSQL COPY of the same ${LINES.toLocaleString()} rows into an unindexed table: ${ceilingBeforeS.toFixed(2)} s before, ${ceilingAfterS.toFixed(2)} s after ` +
      `(${Math.round(LINES / ceilingS).toLocaleString()} rows/s); of the NDJSON file into one jsonb column: ${ndjsonCopyS.toFixed(2)} s`,
  );
  // The bench's audience goes again, so the populated database does not grow with every run.
  await popDb.query(`ALTER TABLE recipients DETACH PARTITION recipients_a${populated.audienceId}`);
  await popDb.query(`DROP TABLE recipients_a${populated.audienceId}`);
  const rate = LINES / populated.completedS;
  console.log(
    `Herald import into the populated database: answer (HTTP ${populated.status}, ${populated.answered}) after ${populated.answerS.toFixed(2)} s, ` +
      `completed after ${populated.completedS.toFixed(2)} s = ${Math.round(rate).toLocaleString()} rows/s, ` +
      `${Math.round((100 * ceilingS) / populated.completedS)} % of PostgreSQL's COPY; peak RSS ${rss.toFixed(0)} MB; CPU s ${JSON.stringify(cpu)}`,
  );
  const pr = populated.probe;
  console.log(
    `  a GET during the upload (${pr.requests} of them, every 100 ms): p50 ${pr.p50Ms.toFixed(1)} ms, p99 ${pr.p99Ms.toFixed(1)} ms, max ${pr.maxMs.toFixed(1)} ms`,
  );
  if (populated.job.imported !== LINES) throw new Error(`imported ${populated.job.imported} of ${LINES}: ${JSON.stringify(populated.job)}`);
  results.populated = {
    ceilingSeconds: ceilingS,
    databaseRecipients: held,
    databaseAudiences: audiences,
    answerSeconds: populated.answerS,
    completedSeconds: populated.completedS,
    rowsPerSec: Math.round(rate),
    percentOfCopy: Math.round((100 * ceilingS) / populated.completedS),
    peakRssMb: Math.round(rss),
    getDuringUpload: populated.probe,
    cpuSeconds: cpu,
    job: populated.job,
  };

  // 5. The same import into an empty database, for the cost of what is already there.
  if (FRESH) {
    const ns = `herald_bench_import_${run}`;
    const fresh = namespaced(base, ns);
    await migrate(fresh);
    const h = await startHerald(fresh);
    const r = await timedImport(ndPath, 'fresh');
    await stopHerald(h);
    await dropNamespace(base, ns);
    console.log(
      `the same import into an empty database: completed after ${r.completedS.toFixed(2)} s (populated / empty time: ${(populated.completedS / r.completedS).toFixed(2)})`,
    );
    results.fresh = { completedSeconds: r.completedS, rowsPerSec: Math.round(LINES / r.completedS) };
  }
  await popDb.end();
  const out = {
    machine: { cpus: cpus().length, model: cpus()[0]?.model, memGb: Math.round(totalmem() / 2 ** 30), node: process.version },
    lines: LINES,
    bytes,
    copyCeiling: {
      seconds: ceilingS,
      beforeSeconds: ceilingBeforeS,
      afterSeconds: ceilingAfterS,
      rowsPerSec: Math.round(LINES / ceilingS),
      ndjsonJsonbSeconds: ndjsonCopyS,
    },
    ...results,
    at: new Date().toISOString(),
  };
  mkdirSync('bench/results', { recursive: true });
  writeFileSync('bench/results/import.json', `${JSON.stringify(out, null, 2)}\n`);
} finally {
  await rm(dir, { recursive: true, force: true });
}

/**
 * A used database for the benches (`--populated`), as every deployment's is: PostgreSQL and ClickHouse
 * databases named `--database` (default herald_bench_populated, kept between runs and shared by
 * bench:e2e, bench:webhook, bench:pause and bench:pixel), filled first, where short, to
 * `--populated-recipients` earlier recipients (Herald's own HTTP import, 1M-line audiences) and
 * `--populated-events` earlier events of other campaigns (Native blocks, as Herald writes them), which
 * ClickHouse merges in the background while the bench runs. A bench in it keeps a Redis prefix of its own.
 */
import { createWriteStream } from 'node:fs';
import { rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { ClickHouse } from '../src/clickhouse/client.js';
import type { Config } from '../src/config.js';
import { packStrings } from '../src/domain/packed-ids.js';
import { EventBlockWriter } from '../src/sink/native-block.js';
import { createDb } from '../src/store/db.js';
import { apiCaller, dropNamespace, dropRedisNamespace, importNdjson, ndjsonLines } from './namespace.js';

export interface PopulatedOptions {
  database: string;
  recipients: number;
  events: number;
}

export interface PopulatedDb {
  database: string;
  recipients: number;
  audiences: number;
  events: number;
}

/** `--populated [--database D] [--populated-recipients N] [--populated-events N]`, or null without `--populated`. */
export function populatedOptions(argv: readonly string[] = process.argv): PopulatedOptions | null {
  if (!argv.includes('--populated')) return null;
  const arg = (name: string, dflt: string): string => {
    const i = argv.indexOf(`--${name}`);
    return i === -1 ? dflt : (argv[i + 1] ?? dflt);
  };
  const options = {
    database: arg('database', 'herald_bench_populated'),
    recipients: Number(arg('populated-recipients', '20000000')),
    events: Number(arg('populated-events', '50000000')),
  };
  if (!/^[a-z_][a-z0-9_]*$/.test(options.database)) throw new Error(`--database: ${options.database} is not a plain lowercase name`);
  for (const k of ['recipients', 'events'] as const)
    if (!Number.isSafeInteger(options[k]) || options[k] < 0) throw new Error(`--populated-${k}: a whole number >= 0`);
  return options;
}

/** `cfg` pointed at the used database (PostgreSQL and ClickHouse), its Redis prefix left as it was. */
export function inPopulated(cfg: Readonly<Config>, p: PopulatedOptions): Readonly<Config> {
  const url = new URL(cfg.databaseUrl);
  url.pathname = `/${p.database}`;
  return Object.freeze({ ...cfg, databaseUrl: url.toString(), clickhouseDb: p.database });
}

/**
 * Fills the used database to its earlier recipients and events where it is short, through the Herald
 * answering at `api` (already on that database, `cfg`), and says what it holds.
 */
export async function populate(cfg: Readonly<Config>, p: PopulatedOptions, api: string, key: string): Promise<PopulatedDb> {
  const db = createDb(cfg.databaseUrl, 1);
  const ch = new ClickHouse({ url: cfg.clickhouseUrl, database: cfg.clickhouseDb });
  const call = apiCaller(api, key);
  const run = Date.now().toString(36);
  try {
    const count = async (sql: string): Promise<number> => Number((await db.query<{ n: string }>(sql)).rows[0]!.n);
    const have = await count('SELECT count(*)::bigint AS n FROM recipients');
    const fill = join(tmpdir(), `herald-bench-fill-${run}.ndjson`);
    for (let k = 0; k < Math.ceil((p.recipients - have) / 1_000_000); k++) {
      await pipeline(Readable.from(ndjsonLines(1_000_000, `p${run}${k}-`)), createWriteStream(fill));
      const a = await call('POST', '/v1/audiences', { name: `earlier audience ${run}-${k}` });
      const t0 = performance.now();
      const job = await importNdjson(api, key, a.id, fill);
      if (job.status !== 'completed') throw new Error(`populating: an earlier audience's import ended ${JSON.stringify(job)}`);
      console.log(`populating: earlier audience ${k + 1}, 1,000,000 lines in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
    }
    await rm(fill, { force: true });
    const events = Number((await ch.rows<{ n: string }>('SELECT count() AS n FROM message_events'))[0]!.n);
    const ids = packStrings(Array.from({ length: 100_000 }, (_, i) => `p${i}`));
    for (let b = 0; b < Math.ceil((p.events - events) / 100_000); b++) {
      const w = new EventBlockWriter(100_000);
      // earlier campaigns of 1M events each, a day ago
      w.addOutcomes(800_000 + Math.floor((events / 100_000 + b) / 10), ids, 100_000, new Map(), Math.floor(Date.now() / 1000) - 86_400);
      await ch.insertRaw('message_events', 'Native', w.finish());
      if (b % 50 === 49) console.log(`populating: ${((b + 1) * 100_000).toLocaleString()} earlier events written`);
    }
    const held = {
      database: p.database,
      recipients: await count('SELECT count(*)::bigint AS n FROM recipients'),
      audiences: await count('SELECT count(*)::bigint AS n FROM audiences'),
      events: Number((await ch.rows<{ n: string }>('SELECT count() AS n FROM message_events'))[0]!.n),
    };
    console.log(
      `populated database ${p.database}: ${held.recipients.toLocaleString()} recipients in ${held.audiences} audiences, ${held.events.toLocaleString()} events`,
    );
    return held;
  } finally {
    await db.end();
    await ch.close();
  }
}

/** The end of a bench's run: its own namespace dropped, or in the used database only its Redis keys. */
export async function dropRun(base: Readonly<Config>, ns: string, p: PopulatedOptions | null): Promise<void> {
  if (p === null) await dropNamespace(base, ns);
  else await dropRedisNamespace(base, ns);
}

/**
 * Herald's ClickHouse statements on a modern ClickHouse, not only on 18.16 (issue 18; users run 23–25).
 * No server of 23+ can be installed here (Debian has 18.16, and there is no Docker engine), but chDB, an
 * in-process ClickHouse of 26.x from the npm registry, plugs into @clickhouse/client as its connection.
 * Every migration runs on it, then the same events are written through the real sink to it and to the
 * project-local 18.16 server, and every reader Herald has (progress, failures, stats, a recipient's
 * history, inbox states and deliveries, the planner's outcome filter, the cap history, the landed check
 * and its recount, the completion's repair) and the analyst queries must give the same answers on both.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { readdir, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ClickHouse, type ClickHouseOptions } from '../../src/clickhouse/client.js';
import { migrateClickHouse, SCHEMAS_DIR, splitStatements } from '../../src/migrate/migrate.js';
import { clickhouseInserter } from '../../src/sink/clickhouse-inserter.js';
import { CountRepair } from '../../src/sink/count-repair.js';
import { EventSink } from '../../src/sink/event-sink.js';
import { EVENT_COLUMNS, EventBlockWriter } from '../../src/sink/native-block.js';
import type { Withheld } from '../../src/domain/withheld.js';
import { ProgressReader } from '../../src/progress/progress-reader.js';
import { StatsReader } from '../../src/progress/stats-reader.js';
import { RecipientHistory } from '../../src/progress/recipient-history.js';
import { InboxReader } from '../../src/progress/inbox-reader.js';
import { OutcomeFilter } from '../../src/progress/outcome-filter.js';
import { CapHistory } from '../../src/progress/cap-history.js';
import { packedOffsets, packStrings } from '../../src/domain/packed-ids.js';
import { subBatchId } from '../../src/domain/sub-batch.js';
import { createNamespace, type Namespace } from '../helpers/herald.js';

type Connect = () => NonNullable<ClickHouseOptions['connection']>;

type Conn = NonNullable<ClickHouseOptions['connection']>;

/**
 * chDB's connection for @clickhouse/client, or why it is not there (another platform than its packages).
 * Its `exec` sends a body as text appended to the query, which mangles a binary one: a Native insert (the
 * sink's blocks) is written to a file instead and read by `file(…, 'Native')`, so the blocks Herald
 * encodes are still what the modern server parses.
 */
async function chdb(dir: string): Promise<Connect | string> {
  try {
    const { createChdbConnection } = await import('chdb/connection');
    let blocks = 0;
    return () => {
      const conn = createChdbConnection({ path: dir }) as unknown as Conn;
      const exec: Conn['exec'] = async (params) => {
        const m = /^INSERT INTO (\w+) FORMAT Native$/.exec(params.query.trim());
        if (m === null || params.values === undefined) return conn.exec(params);
        const parts: Buffer[] = [];
        for await (const part of params.values as AsyncIterable<Buffer>) parts.push(part);
        const file = path.join(dir, `block-${blocks++}.native`);
        writeFileSync(file, Buffer.concat(parts));
        const cols = EVENT_COLUMNS.map(([c]) => c).join(', ');
        return conn.exec({
          ...params,
          query: `INSERT INTO ${m[1]!} (${cols}) SELECT ${cols} FROM file('${file}', 'Native')`,
          values: undefined,
        });
      };
      return new Proxy(conn, {
        get: (target, prop) => {
          if (prop === 'exec') return exec;
          const v: unknown = Reflect.get(target, prop, target);
          return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
        },
      });
    };
  } catch (err) {
    return (err as Error).message;
  }
}

const C = 7;
const T0 = 1_790_000_000;
const users = (from: number, n: number): string[] => Array.from({ length: n }, (_, i) => `u${from + i}`);

/** The same events into either server, through the real sink: sub-batches, withholdings, a duplicate, reads. */
async function write(ch: ClickHouse): Promise<void> {
  const sink = new EventSink(clickhouseInserter(ch), { flushRows: 100_000, flushMs: 20, maxBufferedRows: 1_000_000 });
  const tickets: Array<Promise<void>> = [];
  const countries = ['FR', 'DE', 'NO', null];
  let duplicate: Parameters<EventSink['appendOutcomes']>[0] | undefined;
  for (let b = 0; b < 6; b++) {
    const ids = users(b * 100, 100);
    const failed = new Map<number, string>(b % 2 === 0 ? [[3, `HTTP 500: try ${b}`]] : []);
    const withheld = new Map<number, Withheld>(b === 1 ? [[5, { kind: 'suppressed', reason: 'on the global suppression list' }]] : []);
    if (b === 2) withheld.set(7, { kind: 'capped', reason: 'cap of topic t: 2 per 86400 s' });
    if (b === 3) withheld.set(9, { kind: 'skipped', reason: 'no attrs.first_name' });
    const o = {
      campaignId: C,
      users: packStrings(ids),
      count: ids.length,
      failed,
      withheld,
      atSec: T0 + b * 70,
      batchId: subBatchId(1, b + 1, 0),
      segments: ids.map((_, i) => countries[i % 4]!),
      owner: null,
    };
    tickets.push((await sink.appendOutcomes(o)).stored);
    if (b === 4) duplicate = o;
  }
  await sink.flush();
  await Promise.all(tickets);
  // sub-batch 4 stored again by another insert (a frozen process's late duplicate): counted once
  tickets.push((await sink.appendOutcomes(duplicate!)).stored);
  await sink.flush();
  await Promise.all(tickets);
  // aborted rows of a cancel, then reads (some twice) with their delivery time and segment
  tickets.push(
    (
      await sink.appendOutcomes({
        campaignId: C,
        users: packStrings(users(600, 20)),
        count: 20,
        failed: new Map(),
        atSec: T0 + 500,
        batchId: subBatchId(1, 7, 0),
        kind: 'aborted',
        owner: null,
      })
    ).stored,
  );
  const reads = users(0, 120).filter((_, i) => i % 3 === 0);
  const group = [...reads, ...reads.slice(0, 10)].map((u, i) => ({
    campaignId: C,
    userId: u,
    kind: 'read' as const,
    atSec: T0 + 1_000 + i * 37,
    error: '',
    deliveredAtSec: T0,
    segment: countries[Number(u.slice(1)) % 4] ?? '',
  }));
  tickets.push((await sink.appendGroup(99n, group)).stored);
  await sink.flush();
  await Promise.all(tickets);
  await sink.close();
}

/** Every answer Herald's readers and the analyst queries give for campaign C. */
async function answers(ch: ClickHouse): Promise<Record<string, unknown>> {
  const progress = new ProgressReader(ch);
  const stats = new StatsReader(ch);
  const page = (() => {
    const ids = users(0, 700);
    const packed = packStrings(ids);
    return {
      ids: Float64Array.from(ids, (_, i) => i),
      users: packed,
      userEnds: packedOffsets(packed, ids.length).subarray(1),
      addresses: null,
      segments: null,
    };
  })();
  const kept = await new OutcomeFilter(ch).withoutOutcomes(C, page);
  const capSent: unknown[] = [];
  for await (const batch of new CapHistory(ch).sent([C], 10 * 365 * 86_400, 1000)) capSent.push(...batch);
  const analyst: Record<string, unknown[]> = {};
  const dir = `${SCHEMAS_DIR}clickhouse/queries/`;
  for (const f of (await readdir(dir)).filter((n) => n.endsWith('.sql')).sort()) {
    const sql = (await readFile(dir + f, 'utf8')).replace(/campaign_id = 1\b/g, `campaign_id = ${C}`);
    analyst[f] = [];
    for (const stmt of splitStatements(sql)) analyst[f].push(await ch.rows(stmt));
  }
  const history = await new RecipientHistory(ch).events(C, 'u0');
  return {
    counts: Object.fromEntries(await progress.counts([C, C + 1])),
    failures: await progress.failures(C, '', 100),
    failuresAfter: await progress.failures(C, 'u200', 2),
    statsMinute: await stats.read(C, 'minute'),
    statsHour: await stats.read(C, 'hour'),
    history: history.map((e) => ({ ...e })),
    inbox: Object.fromEntries(await new InboxReader(ch).states('u3', [C, C + 1])),
    deliveries: Object.fromEntries(await new InboxReader(ch).deliveries(C, ['u0', 'u1', 'u999'])),
    keptAfterOutcomes: kept.ids.length,
    capSent: capSent.length,
    analyst,
  };
}

/**
 * The answers with 64-bit integers as numbers (a server quotes them in JSON by default, chDB does not;
 * Herald's readers convert them either way) and the t-digest quantiles taken out (see `quantiles`).
 */
function normal(v: unknown): Record<string, unknown> {
  const walk = (x: unknown, key: string): unknown => {
    if (key === 'time_to_read' || key === 'seconds_p50_p90_p99') return 'approximate';
    if (typeof x === 'string' && /^-?\d+$/.test(x)) return Number(x);
    if (Array.isArray(x)) return x.map((e) => walk(e, ''));
    if (x instanceof Map) return walk(Object.fromEntries(x), key);
    if (x !== null && typeof x === 'object') return Object.fromEntries(Object.entries(x).map(([k, e]) => [k, walk(e, k)]));
    return x;
  };
  return { ...(walk(v, '') as Record<string, unknown>), quantiles: JSON.stringify(quantileValues(v)) };
}

function quantileValues(v: unknown): number[] {
  const out: number[] = [];
  const walk = (x: unknown, key: string): void => {
    if (key === 'time_to_read' && x !== null && typeof x === 'object') out.push(...Object.values(x as Record<string, number>));
    else if (key === 'seconds_p50_p90_p99' && Array.isArray(x)) out.push(...x.map(Number));
    else if (Array.isArray(x)) x.forEach((e) => walk(e, ''));
    else if (x !== null && typeof x === 'object') for (const [k, e] of Object.entries(x)) walk(e, k);
  };
  walk(v, '');
  return out;
}

function quantiles(n: Record<string, unknown>): number[] {
  const q = JSON.parse(n.quantiles as string) as number[];
  delete n.quantiles;
  return q;
}

describe('Herald on a modern ClickHouse (chDB 26.x) as on 18.16', () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'herald-chdb-'));
  let connect: Connect | string;
  let modern: ClickHouse;
  let old: ClickHouse;
  let ns: Namespace;

  beforeAll(async () => {
    connect = await chdb(dir);
    ns = await createNamespace();
    old = new ClickHouse({ url: ns.config.clickhouseUrl, database: ns.config.clickhouseDb });
    if (typeof connect === 'string') return;
    // chDB ignores the request's database: it works in `default`, of its own directory
    await migrateClickHouse('http://chdb.invalid:8123', 'default', '', connect);
    modern = new ClickHouse({ url: 'http://chdb.invalid:8123', database: 'default', connection: connect() });
  }, 60_000);

  afterAll(async () => {
    await modern?.close();
    await old?.close();
    await ns?.drop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('loads chDB on this platform', () => {
    expect(connect, typeof connect === 'string' ? connect : '').toBeTypeOf('function');
  });

  it('runs every migration, and knows it ran them', async () => {
    const version = (await modern.rows<{ v: string }>('SELECT version() AS v'))[0]!.v;
    expect(Number(version.split('.')[0])).toBeGreaterThanOrEqual(23);
    expect(await migrateClickHouse('http://chdb.invalid:8123', 'default', '', connect as Connect)).toEqual([]);
    const tables = (t: ClickHouse, db: string): Promise<Array<{ name: string }>> =>
      t.rows(`SELECT name FROM system.tables WHERE database = '${db}' AND name NOT LIKE '.inner%' ORDER BY name`);
    expect(await tables(modern, 'default')).toEqual(await tables(old, ns.config.clickhouseDb));
  });

  it('gives every reader and analyst query the same answers as 18.16 for the same events', async () => {
    await write(old);
    await write(modern);
    const [a, b] = [normal(await answers(old)), normal(await answers(modern))];
    // t-digest quantiles are approximations, computed a little differently by each version
    const [ta, tb] = [quantiles(a), quantiles(b)];
    expect(tb.length).toBe(ta.length);
    for (let i = 0; i < ta.length; i++) expect(Math.abs(tb[i]! - ta[i]!)).toBeLessThanOrEqual(Math.max(5, ta[i]! * 0.03));
    expect(b).toEqual(a);
    // and the answers are the events written, not two empty results alike
    expect(a.counts).toMatchObject({
      [C]: { delivered: 594, failed: 3, suppressed: 1, capped: 1, skipped: 1, read: 50, uniqueReaders: 40 },
    });
    // of 700 users, 600 have a dispatch outcome and 20 more an aborted one (the closer's walk counts it)
    expect(a.keptAfterOutcomes).toBe(80);
    expect((a.statsMinute as { by_segment: unknown[] }).by_segment).toHaveLength(4);
  }, 60_000);

  it('counts a sub-batch stored but not counted again, and repairs the summing views, alike', async () => {
    const results = [];
    for (const [ch, db] of [
      [old, ns.config.clickhouseDb],
      [modern, 'default'],
    ] as const) {
      const views = ['campaign_batch_counts_mv', 'campaign_counts_mv', 'campaign_minutes_mv', 'campaign_segments_mv'];
      for (const v of views) await ch.command(`DETACH TABLE ${db}.${v}`);
      try {
        const w = new EventBlockWriter(C + 1, 5n);
        const m0 = w.mark();
        w.addOutcomes(
          C + 1,
          packStrings(users(0, 30)),
          30,
          new Map([[2, 'HTTP 502']]),
          T0,
          'delivered',
          users(0, 30).map(() => 'FR'),
        );
        await ch.insertRaw('message_events', 'Native', w.finish([{ start: m0, end: w.mark() }]));
      } finally {
        for (const v of views) await ch.command(`ATTACH TABLE ${db}.${v}`);
      }
      const sink = new EventSink(clickhouseInserter(ch), { flushRows: 1000, flushMs: 20, maxBufferedRows: 10_000 });
      const landed = await sink.landed(C + 1, [5n, 6n]);
      await sink.close();
      const repaired = await new CountRepair(ch, { settleMs: 100 }).afterCompletion(C + 1);
      const again = await new CountRepair(ch, { settleMs: 100 }).afterCompletion(C + 1);
      const counts = (await new ProgressReader(ch).counts([C + 1])).get(C + 1);
      const stats = await new StatsReader(ch).read(C + 1, 'minute');
      results.push({ landed: [...landed], repaired, again, counts, stats });
    }
    expect(results[1]).toEqual(results[0]);
    expect(results[0]).toMatchObject({
      landed: [5n],
      repaired: { counts: 30, minutes: 29, segments: 29 },
      again: { counts: 0, minutes: 0, segments: 0 },
      counts: { delivered: 29, failed: 1 },
    });
  }, 60_000);
});

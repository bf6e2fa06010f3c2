import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ClickHouse } from '../../src/clickhouse/client.js';
import { EventBlockWriter } from '../../src/sink/native-block.js';
import { clickhouseInserter } from '../../src/sink/clickhouse-inserter.js';
import { EventSink } from '../../src/sink/event-sink.js';
import { ProgressReader } from '../../src/progress/progress-reader.js';
import { CountRepair } from '../../src/sink/count-repair.js';
import { packStrings } from '../../src/domain/packed-ids.js';
import { createNamespace, type Namespace } from '../helpers/herald.js';

// A ClickHouse server that stops between an insert's message_events part and its views' parts leaves
// the sub-batch stored but not counted. Detaching the view for one insert leaves exactly that state.
describe('a sub-batch stored but not counted (ClickHouse stopped mid-insert)', () => {
  let ns: Namespace;
  let ch: ClickHouse;
  beforeAll(async () => {
    ns = await createNamespace();
    ch = new ClickHouse({ url: ns.config.clickhouseUrl, database: ns.config.clickhouseDb });
  });
  afterAll(async () => {
    await ch?.close();
    await ns?.drop();
  });

  const insert = async (
    campaignId: number,
    batch: bigint,
    users: string[],
    failed: Map<number, string>,
    at = 1_700_000_000,
    segments?: Array<string | null>,
  ): Promise<void> => {
    const w = new EventBlockWriter(campaignId, batch);
    const m0 = w.mark();
    w.addOutcomes(campaignId, packStrings(users), users.length, failed, at, 'delivered', segments);
    await ch.insertRaw('message_events', 'Native', w.finish([{ start: m0, end: w.mark() }]));
  };

  it('is counted again by the landed check, once however often it is checked', async () => {
    const db = ns.config.clickhouseDb;
    await insert(41, 1n, ['a', 'b', 'c'], new Map());
    for (const v of ['campaign_batch_counts_mv', 'campaign_readers_mv', 'campaign_segment_readers_mv'])
      await ch.command(`DETACH TABLE ${db}.${v}`);
    try {
      await insert(41, 2n, ['d', 'e', 'f', 'g'], new Map([[1, 'HTTP 500']]));
      await insert(42, 2n, ['h'], new Map());
      const w = new EventBlockWriter(41, 3n);
      const m0 = w.mark();
      w.add(41, 'a', 'read', 1_700_000_200, '', 1_700_000_000, 'FR');
      w.add(41, 'e', 'read', 1_700_000_201, '', 1_700_000_000, 'FR');
      await ch.insertRaw('message_events', 'Native', w.finish([{ start: m0, end: w.mark() }]));
    } finally {
      for (const v of ['campaign_batch_counts_mv', 'campaign_readers_mv', 'campaign_segment_readers_mv'])
        await ch.command(`ATTACH TABLE ${db}.${v}`);
    }
    const progress = new ProgressReader(ch);
    const before = (await progress.counts([41, 42])).get(41)!;
    expect({ delivered: before.delivered, failed: before.failed, uniqueReaders: before.uniqueReaders }).toEqual({
      delivered: 3,
      failed: 0,
      uniqueReaders: 0,
    });

    const recounted: Array<[number, number]> = [];
    const sink = new EventSink(clickhouseInserter(ch, { onRecounted: (c, n) => recounted.push([c, n]) }), {
      flushRows: 1000,
      flushMs: 10,
      maxBufferedRows: 10_000,
    });
    try {
      for (let round = 0; round < 3; round++) {
        expect(await sink.landed(41, [1n, 2n, 3n, 4n])).toEqual(new Set([1n, 2n, 3n]));
        const c = await progress.counts([41, 42]);
        const { delivered, failed, read, uniqueReaders } = c.get(41)!;
        expect({ delivered, failed, read, uniqueReaders }).toEqual({ delivered: 6, failed: 1, read: 2, uniqueReaders: 2 });
        const bySegment = await ch.rows(
          `SELECT segment, uniqExactMerge(readers) AS n FROM campaign_segment_readers WHERE campaign_id = 41 GROUP BY segment`,
        );
        expect(bySegment).toEqual([{ segment: 'FR', n: '2' }]);
        // a campaign not asked about is left alone
        expect(c.get(42)!.delivered).toBe(0);
      }
      expect(recounted).toEqual([[41, 2]]);
      expect(await sink.landed(42, [2n])).toEqual(new Set([2n]));
      expect((await progress.counts([42])).get(42)!.delivered).toBe(1);
    } finally {
      await sink.close();
    }
  });

  it('has its summing views made whole after completion, once, and its reads left alone', async () => {
    const db = ns.config.clickhouseDb;
    const views = ['campaign_counts_mv', 'campaign_minutes_mv', 'campaign_segments_mv'];
    const c = 51;
    await insert(c, 1n, ['a', 'b', 'c'], new Map(), 1_700_000_000, ['FR', 'FR', "x'y"]);
    for (const v of views) await ch.command(`DETACH TABLE ${db}.${v}`);
    try {
      await insert(c, 2n, ['d', 'e', 'f', 'g'], new Map([[0, 'HTTP 500']]), 1_700_000_130, ['FR', 'DE', null, "x'y"]);
      const w = new EventBlockWriter(c, 3n);
      const m0 = w.mark();
      w.add(c, 'a', 'read', 1_700_000_200, '', 1_700_000_000, 'FR');
      await ch.insertRaw('message_events', 'Native', w.finish([{ start: m0, end: w.mark() }]));
    } finally {
      for (const v of views) await ch.command(`ATTACH TABLE ${db}.${v}`);
    }
    const look = async (): Promise<unknown> => ({
      counts: await ch.rows(
        `SELECT toString(kind) AS kind, countMerge(events) AS n FROM campaign_counts WHERE campaign_id = ${c} GROUP BY kind ORDER BY kind`,
      ),
      minutes: await ch.rows(
        `SELECT toString(minute) AS m, toString(kind) AS kind, sum(events) AS n FROM campaign_minutes WHERE campaign_id = ${c} GROUP BY m, kind ORDER BY m, kind`,
      ),
      segments: await ch.rows(
        `SELECT segment, toString(kind) AS kind, sum(events) AS n FROM campaign_segments WHERE campaign_id = ${c} GROUP BY segment, kind ORDER BY segment, kind`,
      ),
    });
    const repair = new CountRepair(ch, { settleMs: 100 });
    expect(await repair.afterCompletion(c)).toEqual({ counts: 4, minutes: 3, segments: 3 });
    const whole = {
      counts: [
        { kind: 'delivered', n: '6' },
        { kind: 'failed', n: '1' },
      ],
      minutes: [
        { m: '2023-11-14 22:13:00', kind: 'delivered', n: '3' },
        { m: '2023-11-14 22:15:00', kind: 'delivered', n: '3' },
      ],
      segments: [
        { segment: '', kind: 'delivered', n: '1' },
        { segment: 'DE', kind: 'delivered', n: '1' },
        { segment: 'FR', kind: 'delivered', n: '2' },
        { segment: "x'y", kind: 'delivered', n: '2' },
      ],
    };
    expect(await look()).toEqual(whole);
    expect(await repair.afterCompletion(c)).toEqual({ counts: 0, minutes: 0, segments: 0 });
    expect(await look()).toEqual(whole);
  });
});

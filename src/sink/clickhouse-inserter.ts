/**
 * The event sink's ClickHouse side: Native blocks into `message_events`, and which sub-batches landed.
 *
 * Why the landed check also repairs: ClickHouse writes an insert's `message_events` part and then each
 * materialized view's part, and none of it atomically. A server that dies (kill -9, a shard's host lost)
 * between the two leaves a sub-batch stored but not counted; the retry then finds it landed and skips
 * it, and `campaign_batch_counts` (the API's counts and the live frames) stays short by that sub-batch for
 * good. So a landed sub-batch missing there is counted again from its stored rows: max(rows) per
 * (campaign, kind, batch) makes that idempotent, whether the view's part was missing or only late. Its
 * readers are added again to the readers views (sets). The summing views cannot take a sub-batch twice;
 * they are made whole once the campaign completes (count-repair.ts).
 */
import type { ClickHouse } from '../clickhouse/client.js';
import { strList, uint64List, uintList } from '../clickhouse/sql.js';
import { landedKey, type EventInserter } from './event-sink.js';
import { DISPATCH_KINDS } from '../domain/message-event.js';

const DISPATCH_KIND_LIST = strList(DISPATCH_KINDS);

interface BatchRow {
  campaign_id: string | number;
  batch: string | number;
}

export interface InserterOptions {
  /** sub-batches found stored in `message_events` but not counted in `campaign_batch_counts`, now counted */
  onRecounted?: (campaignId: number, batches: number) => void;
}

export function clickhouseInserter(ch: ClickHouse, opts: InserterOptions = {}): EventInserter {
  const pairsIn = (table: string, campaignIds: number[], batchIds: bigint[]): Promise<BatchRow[]> =>
    ch.rows<BatchRow>(
      `SELECT campaign_id, batch FROM ${table} WHERE campaign_id IN ${uintList(campaignIds)} AND batch IN ${uint64List(batchIds)} GROUP BY campaign_id, batch`,
    );
  const key = (r: BatchRow): string => landedKey(Number(r.campaign_id), BigInt(r.batch));
  return {
    insert: (block) => ch.insertRaw('message_events', 'Native', block),
    landed: async (pairs) => {
      const campaignIds = [...new Set(pairs.map((p) => p.campaignId))];
      const batchIds = [...new Set(pairs.map((p) => p.batchId))];
      const stored = await pairsIn('message_events', campaignIds, batchIds);
      if (stored.length === 0) return new Set();
      const counted = new Set((await pairsIn('campaign_batch_counts', campaignIds, batchIds)).map(key));
      const uncounted = stored.filter((r) => !counted.has(key(r)));
      for (const [campaignId, rows] of byCampaign(uncounted)) {
        const these = `campaign_id = ${campaignId} AND batch IN ${uint64List(rows.map((r) => BigInt(r.batch)))}`;
        // Readers first, campaign_batch_counts last: it is what says "counted", so a recount cut short is
        // found again by the next check. Readers are sets (uniqExact states): adding them again is idempotent.
        await ch.command(
          `INSERT INTO campaign_readers SELECT campaign_id, uniqExactState(user_id) AS readers FROM message_events
           WHERE ${these} AND kind = 'read' GROUP BY campaign_id`,
        );
        await ch.command(
          `INSERT INTO campaign_segment_readers SELECT campaign_id, segment, uniqExactState(user_id) AS readers FROM message_events
           WHERE ${these} AND kind = 'read' GROUP BY campaign_id, segment`,
        );
        // A sub-batch of outcomes names each recipient once, so distinct recipients are its rows even when
        // two copies of it are stored (a frozen process's late insert); reads and callbacks may repeat a user.
        await ch.command(
          `INSERT INTO campaign_batch_counts SELECT campaign_id, kind, batch,
             if(kind IN ${DISPATCH_KIND_LIST}, uniqExact(user_id), count()) AS rows
           FROM message_events WHERE ${these} GROUP BY campaign_id, kind, batch`,
        );
        opts.onRecounted?.(campaignId, rows.length);
      }
      return new Set(stored.map(key));
    },
  };
}

function byCampaign(rows: BatchRow[]): Map<number, BatchRow[]> {
  const m = new Map<number, BatchRow[]>();
  for (const r of rows) {
    const id = Number(r.campaign_id);
    const list = m.get(id);
    if (list === undefined) m.set(id, [r]);
    else list.push(r);
  }
  return m;
}

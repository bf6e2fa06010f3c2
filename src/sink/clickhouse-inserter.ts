/** The event sink's ClickHouse side: Native blocks into `message_events`, and which sub-batches landed. */
import type { ClickHouse } from '../clickhouse/client.js';
import { uint64List, uintList } from '../clickhouse/sql.js';
import { landedKey, type EventInserter } from './event-sink.js';

export function clickhouseInserter(ch: ClickHouse): EventInserter {
  return {
    insert: (block) => ch.insertRaw('message_events', 'Native', block),
    landed: async (pairs) => {
      const campaignIds = [...new Set(pairs.map((p) => p.campaignId))];
      const batchIds = [...new Set(pairs.map((p) => p.batchId))];
      const r = await ch.rows<{ campaign_id: string | number; batch: string | number }>(
        `SELECT campaign_id, batch FROM message_events WHERE campaign_id IN ${uintList(campaignIds)} AND batch IN ${uint64List(batchIds)} GROUP BY campaign_id, batch`,
      );
      return new Set(r.map((row) => landedKey(Number(row.campaign_id), BigInt(row.batch))));
    },
  };
}

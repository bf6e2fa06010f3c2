/**
 * What a topic's campaigns sent within a cap window, from ClickHouse's outcome events: the record a cap
 * state lost with Redis is rebuilt from (consent/cap-keeper.ts). One row per (user, campaign), its latest
 * outcome's time; the primary key (campaign_id, kind, user_id) keeps the read to those campaigns. The
 * rows stream in batches, so a rebuild holds one batch at a time however many messages the topic sent.
 */
import type { ClickHouse } from '../clickhouse/client.js';
import { uint, uintList } from '../clickhouse/sql.js';

export class CapHistory {
  constructor(private readonly ch: ClickHouse) {}

  /** The rows `batchRows` at a time, as ClickHouse streams them: a busy topic's day never sits in memory whole. */
  async *sent(
    campaignIds: readonly number[],
    windowS: number,
    batchRows: number,
  ): AsyncGenerator<Array<{ userId: string; campaignId: number; atMs: number }>> {
    if (campaignIds.length === 0) return;
    const batches = this.ch.rowBatches<{ user_id: string; campaign_id: string | number; sent_at: string | number }>(
      `SELECT user_id, campaign_id, toUInt32(max(at)) AS sent_at FROM message_events
       WHERE campaign_id IN ${uintList(campaignIds)} AND kind IN ('delivered', 'failed') AND at > now() - ${uint(windowS)}
       GROUP BY user_id, campaign_id`,
      batchRows,
      300,
    );
    for await (const rows of batches) {
      yield rows.map((r) => ({ userId: r.user_id, campaignId: Number(r.campaign_id), atMs: Number(r.sent_at) * 1000 }));
    }
  }
}

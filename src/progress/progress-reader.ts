/**
 * Per-campaign counts from the ClickHouse views: a few aggregate rows per campaign, so the answer
 * takes milliseconds whatever the audience size. Unique readers come from their own view.
 */
import type { ClickHouse } from '../clickhouse/client.js';
import { str, uint, uintList } from '../clickhouse/sql.js';

export interface CampaignCounts {
  sent: number;
  delivered: number;
  failed: number;
  read: number;
  uniqueReaders: number;
}

export const ZERO_COUNTS: Readonly<CampaignCounts> = Object.freeze({ sent: 0, delivered: 0, failed: 0, read: 0, uniqueReaders: 0 });

export class ProgressReader {
  constructor(private readonly ch: ClickHouse) {}

  async counts(campaignIds: readonly number[]): Promise<Map<number, CampaignCounts>> {
    const out = new Map<number, CampaignCounts>();
    if (campaignIds.length === 0) return out;
    for (const id of campaignIds) out.set(id, { ...ZERO_COUNTS });
    const ids = uintList(campaignIds);
    const [kinds, readers] = await Promise.all([
      this.ch.rows<{ campaign_id: string | number; kind: string; n: string | number }>(
        `SELECT campaign_id, toString(kind) AS kind, countMerge(events) AS n FROM campaign_counts
         WHERE campaign_id IN ${ids} GROUP BY campaign_id, kind`,
      ),
      this.ch.rows<{ campaign_id: string | number; n: string | number }>(
        `SELECT campaign_id, uniqExactMerge(readers) AS n FROM campaign_readers WHERE campaign_id IN ${ids} GROUP BY campaign_id`,
      ),
    ]);
    for (const r of kinds) {
      const c = out.get(Number(r.campaign_id));
      if (c === undefined) continue;
      const n = Number(r.n);
      if (r.kind === 'sent') c.sent += n;
      else if (r.kind === 'delivered') c.delivered = n;
      else if (r.kind === 'failed') c.failed = n;
      else if (r.kind === 'read') c.read = n;
    }
    for (const c of out.values()) c.sent += c.delivered + c.failed;
    for (const r of readers) {
      const c = out.get(Number(r.campaign_id));
      if (c !== undefined) c.uniqueReaders = Number(r.n);
    }
    return out;
  }

  /**
   * Failed recipients of a campaign in user_id order, after `after` (a keyset cursor): the latest error
   * and how many failed outcomes each has. Reads a range of the table's primary key, so pages stay cheap.
   */
  async failures(campaignId: number, after: string, limit: number): Promise<FailedRecipient[]> {
    const rows = await this.ch.rows<{ user_id: string; error: string; attempts: string | number }>(
      `SELECT user_id, argMax(error, at) AS error, count() AS attempts FROM message_events
       WHERE campaign_id = ${uint(campaignId)} AND kind = 'failed' AND user_id > ${str(after)}
       GROUP BY user_id ORDER BY user_id LIMIT ${uint(limit)}`,
    );
    return rows.map((r) => ({ userId: r.user_id, error: r.error, attempts: Number(r.attempts) }));
  }
}

export interface FailedRecipient {
  userId: string;
  error: string;
  attempts: number;
}

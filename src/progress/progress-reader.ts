/**
 * Per-campaign counts from the ClickHouse views: one row per sub-batch and kind (campaign_batch_counts,
 * where a sub-batch stored twice still counts once), so the answer takes milliseconds at millions of
 * recipients. Unique readers come from their own view.
 */
import type { ClickHouse } from '../clickhouse/client.js';
import { outcomeSinceGeneration, str, uint, uintList } from '../clickhouse/sql.js';

export interface CampaignCounts {
  sent: number;
  delivered: number;
  failed: number;
  /** withheld outcomes (domain/withheld.ts) */
  skipped: number;
  suppressed: number;
  capped: number;
  read: number;
  uniqueReaders: number;
  /** a provider's own delivered / failed callbacks (POST /v1/events) */
  confirmed: number;
  bounced: number;
}

export const ZERO_COUNTS: Readonly<CampaignCounts> = Object.freeze({
  sent: 0,
  delivered: 0,
  failed: 0,
  skipped: 0,
  suppressed: 0,
  capped: 0,
  read: 0,
  uniqueReaders: 0,
  confirmed: 0,
  bounced: 0,
});

export class ProgressReader {
  constructor(private readonly ch: ClickHouse) {}

  async counts(campaignIds: readonly number[]): Promise<Map<number, CampaignCounts>> {
    const out = new Map<number, CampaignCounts>();
    if (campaignIds.length === 0) return out;
    for (const id of campaignIds) out.set(id, { ...ZERO_COUNTS });
    const ids = uintList(campaignIds);
    const [kinds, readers] = await Promise.all([
      this.ch.rows<{ campaign_id: string | number; kind: string; n: string | number }>(
        // A sub-batch counts once however many times its rows were stored (0005_batch_counts.sql).
        `SELECT campaign_id, kind, sum(r) AS n FROM (
           SELECT campaign_id, toString(kind) AS kind, batch, max(rows) AS r FROM campaign_batch_counts
           WHERE campaign_id IN ${ids} GROUP BY campaign_id, kind, batch
         ) GROUP BY campaign_id, kind`,
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
      else if (r.kind === 'skipped') c.skipped = n;
      else if (r.kind === 'suppressed') c.suppressed = n;
      else if (r.kind === 'capped') c.capped = n;
      else if (r.kind === 'read') c.read = n;
      else if (r.kind === 'confirmed') c.confirmed = n;
      else if (r.kind === 'bounced') c.bounced = n;
    }
    for (const c of out.values()) c.sent += c.delivered + c.failed;
    for (const r of readers) {
      const c = out.get(Number(r.campaign_id));
      if (c !== undefined) c.uniqueReaders = Number(r.n);
    }
    return out;
  }

  /**
   * Recipients of a campaign whose latest outcome is a failure, in user_id order, after `after` (a keyset
   * cursor): the latest error (by sub-batch id, whose generation grows with each round: seconds can tie)
   * and how many failed outcomes each has (one per round it failed in). Reads
   * a range of the table's primary key, so pages stay cheap. `firstRetryGeneration`: once a campaign had
   * retry rounds, a recipient delivered in one of them has failed no more.
   */
  async failures(campaignId: number, after: string, limit: number, firstRetryGeneration: number | null = null): Promise<FailedRecipient[]> {
    const id = uint(campaignId);
    const recovered =
      firstRetryGeneration === null
        ? ''
        : `AND user_id NOT IN (SELECT user_id FROM message_events WHERE campaign_id = ${id} AND kind = 'delivered'
             AND user_id > ${str(after)} AND ${outcomeSinceGeneration(firstRetryGeneration)})`;
    const rows = await this.ch.rows<{ user_id: string; error: string; attempts: string | number }>(
      `SELECT user_id, argMax(error, batch) AS error, count() AS attempts FROM message_events
       WHERE campaign_id = ${id} AND kind = 'failed' AND user_id > ${str(after)} ${recovered}
       GROUP BY user_id ORDER BY user_id LIMIT ${uint(limit)}`,
    );
    return rows.map((r) => ({ userId: r.user_id, error: r.error, attempts: Number(r.attempts) }));
  }

  /** Every currently failed user id of a campaign, a page at a time (for a retry round). */
  async *failedUserIds(campaignId: number, firstRetryGeneration: number | null, pageSize = 50_000): AsyncIterable<string[]> {
    for (let after = ''; ;) {
      const page = await this.failures(campaignId, after, pageSize, firstRetryGeneration);
      if (page.length > 0) yield page.map((f) => f.userId);
      if (page.length < pageSize) return;
      after = page[page.length - 1]!.userId;
    }
  }
}

export interface FailedRecipient {
  userId: string;
  error: string;
  attempts: number;
}

/**
 * For a re-plan after the stream was lost: which recipients of a page already have an outcome
 * (delivered, failed, withheld) in ClickHouse, so they are not sent again. `aborted` counts too: only the
 * closer of a cancelled campaign writes it, and its own walk after a lost stream (campaign-closer.ts) must
 * not abort anyone twice when it is run again. One query per page; the ids go in
 * an IN list, with max_query_size raised for it (a setting 18.16 knows).
 */
import type { ClickHouse } from '../clickhouse/client.js';
import { outcomeSinceGeneration, str, uint } from '../clickhouse/sql.js';
import type { RecipientPage } from '../domain/chunk.js';
import { packedOffsets, packStrings, unpackStrings } from '../domain/packed-ids.js';

export class OutcomeFilter {
  constructor(private readonly ch: ClickHouse) {}

  /** `sinceGeneration`: only outcomes of the current round count (a retry round re-sends earlier failures). */
  async withoutOutcomes(campaignId: number, page: RecipientPage, sinceGeneration = 0): Promise<RecipientPage> {
    const n = page.ids.length;
    if (n === 0) return page;
    const userIds = unpackStrings(page.users, n);
    const rows = await this.ch.rows<{ user_id: string }>(
      `SELECT DISTINCT user_id FROM message_events
       WHERE campaign_id = ${uint(campaignId)} AND kind IN ('delivered', 'failed', 'skipped', 'suppressed', 'capped', 'aborted') AND user_id IN (${userIds.map(str).join(',')})
       ${sinceGeneration > 0 ? `AND ${outcomeSinceGeneration(sinceGeneration)}` : ''}`,
      60,
      { max_query_size: 256 * 1024 * 1024 },
    );
    if (rows.length === 0) return page;
    const done = new Set(rows.map((r) => r.user_id));
    const keep: number[] = [];
    for (let i = 0; i < n; i++) if (!done.has(userIds[i]!)) keep.push(i);
    const kept = keep.map((i) => userIds[i]!);
    const users = packStrings(kept);
    const userEnds = packedOffsets(users, kept.length).subarray(1);
    return {
      ids: Float64Array.from(keep, (i) => page.ids[i]!),
      users,
      userEnds,
      addresses: page.addresses === null ? null : keep.map((i) => page.addresses![i] ?? null),
      segments: page.segments === null ? null : keep.map((i) => page.segments![i] ?? null),
    };
  }
}

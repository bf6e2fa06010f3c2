/**
 * A user's inbox, derived: the candidate campaigns (inbox campaigns whose audience holds the user, from
 * PostgreSQL) filtered to those actually delivered to the user, with the read state, from the user's
 * `delivered` and `read` events in ClickHouse. One query per call, on the primary key (campaign_id,
 * kind, user_id), so no per-recipient row exists anywhere but the event log.
 */
import type { ClickHouse } from '../clickhouse/client.js';
import { str, uint, uintList } from '../clickhouse/sql.js';

/** One inbox test send delivered to a user (POST /v1/campaigns/:id/test, kept in `message_tests`). */
export interface UserTestSend {
  campaignId: number;
  testId: string;
  deliveredAtSec: number;
}

export interface UserCampaignState {
  deliveredAtSec: number;
  /** first read, or null */
  readAtSec: number | null;
}

/** user ids per delivery lookup query (the lookups of a slice run side by side) */
const LOOKUP_SLICE = 20_000;

/**
 * The ids as the right side of IN. One string literal split on the server: ClickHouse parses a list of
 * literals node by node (about twice as slow at 8,000 ids, measured here, and refused past 50,000 AST
 * nodes). NUL separates them; an id that contains NUL itself (allowed, if unlikely) makes the list.
 */
function idSet(ids: readonly string[]): string {
  if (ids.some((id) => id.includes('\0'))) return `(${ids.map(str).join(',')})`;
  return `(SELECT arrayJoin(splitByChar('\\0', ${str(ids.join('\0'))})))`;
}

export class InboxReader {
  constructor(private readonly ch: ClickHouse) {}

  /** For each of `campaignIds` delivered to `userId`: when, and when first read. Others are absent. */
  async states(userId: string, campaignIds: readonly number[]): Promise<Map<number, UserCampaignState>> {
    const out = new Map<number, UserCampaignState>();
    if (campaignIds.length === 0) return out;
    const rows = await this.ch.rows<{ campaign_id: string | number; kind: string; at: string | number }>(
      `SELECT campaign_id, toString(kind) AS kind, toUInt32(min(at)) AS at FROM message_events
       WHERE campaign_id IN ${uintList(campaignIds)} AND kind IN ('delivered', 'read') AND user_id = ${str(userId)}
       GROUP BY campaign_id, kind`,
    );
    const reads = new Map<number, number>();
    for (const r of rows) {
      if (r.kind === 'delivered') out.set(Number(r.campaign_id), { deliveredAtSec: Number(r.at), readAtSec: null });
      else reads.set(Number(r.campaign_id), Number(r.at));
    }
    for (const [id, at] of reads) {
      const s = out.get(id);
      if (s !== undefined) s.readAtSec = at;
    }
    return out;
  }

  /**
   * The user's delivered test sends since `sinceSec`, newest first, at most `limit`: every channel's (the
   * caller keeps the inbox campaigns'). `message_tests` is ordered by campaign, so this reads the partitions
   * of the window whole; it holds a few rows per test (at most a hundred recipients each), not per campaign
   * recipient. The alias is not `at`: ClickHouse would put the aggregate into the WHERE.
   */
  async tests(userId: string, opts: { sinceSec: number; limit: number }): Promise<UserTestSend[]> {
    const rows = await this.ch.rows<{ campaign_id: string | number; test_id: string; at_sec: string | number }>(
      `SELECT campaign_id, test_id, toUInt32(min(at)) AS at_sec FROM message_tests
       WHERE user_id = ${str(userId)} AND kind = 'delivered' AND at >= toDateTime(${uint(opts.sinceSec)})
       GROUP BY campaign_id, test_id ORDER BY at_sec DESC, test_id DESC LIMIT ${uint(opts.limit)}`,
    );
    return rows.map((r) => ({ campaignId: Number(r.campaign_id), testId: r.test_id, deliveredAtSec: Number(r.at_sec) }));
  }

  /** When each of `userIds` was delivered campaign `campaignId`, and with which segment (for reads). */
  async deliveries(campaignId: number, userIds: readonly string[]): Promise<Map<string, { deliveredAtSec: number; segment: string }>> {
    const out = new Map<string, { deliveredAtSec: number; segment: string }>();
    const slices: Array<readonly string[]> = [];
    for (let i = 0; i < userIds.length; i += LOOKUP_SLICE) slices.push(userIds.slice(i, i + LOOKUP_SLICE));
    const answers = await Promise.all(
      slices.map((ids) =>
        this.ch.rows<{ user_id: string; at: string | number; segment: string }>(
          `SELECT user_id, toUInt32(min(at)) AS at, any(segment) AS segment FROM message_events
           WHERE campaign_id = ${uint(campaignId)} AND kind = 'delivered' AND user_id IN ${idSet(ids)}
           GROUP BY user_id`,
          60,
          { max_query_size: 256 * 1024 * 1024 },
        ),
      ),
    );
    for (const rows of answers) for (const r of rows) out.set(r.user_id, { deliveredAtSec: Number(r.at), segment: r.segment });
    return out;
  }
}

/**
 * The PostgreSQL half of a user's inbox: which inbox campaigns a user is a recipient of. Nothing is
 * written per recipient: membership is the audience's own row, probed through its (audience_id,
 * user_id) unique index once per inbox campaign, newest campaign first.
 */
import type { CampaignContent } from '../domain/campaign-input.js';
import type { MissingPolicy } from '../domain/template.js';
import { wrapPgError, type Db } from './db.js';

export interface InboxCandidate {
  campaignId: number;
  name: string;
  content: CampaignContent;
  variables: Record<string, unknown> | null;
  missing: MissingPolicy;
  /** the user's own row in the campaign's audience: what its templates read when the inbox is read */
  address: string | null;
  /** JSON text, null values left out */
  attrs: string | null;
}

export class InboxRepo {
  constructor(private readonly db: Db) {}

  /**
   * Started inbox campaigns whose plan includes `userId`, with ids below `before`, newest first, each with
   * the user's address and attributes from the same index probe that finds the membership.
   */
  async candidates(userId: string, before: number | null, limit: number): Promise<InboxCandidate[]> {
    try {
      const r = await this.db.query<InboxCandidate>(
        `SELECT c.id AS "campaignId", c.name, c.content, c.variables, c.missing, r.address, r.attrs FROM campaigns c
         CROSS JOIN LATERAL (SELECT r.address, jsonb_strip_nulls(r.attrs)::text AS attrs FROM recipients r
           WHERE r.audience_id = c.audience_id AND r.user_id = $1 AND r.id <= c.plan_max_id LIMIT 1) r
         WHERE c.channel->>'type' = 'inbox' AND c.plan_max_id IS NOT NULL AND ($2::bigint IS NULL OR c.id < $2)
         ORDER BY c.id DESC LIMIT $3`,
        [userId, before, limit],
      );
      return r.rows;
    } catch (err) {
      throw wrapPgError(err, 'inbox campaigns');
    }
  }

  /** Whether `userId` is a recipient of inbox campaign `campaignId` (it has started, and its plan holds the user). */
  async isRecipient(campaignId: number, userId: string): Promise<boolean> {
    try {
      const r = await this.db.query(
        `SELECT 1 FROM campaigns c JOIN recipients r ON r.audience_id = c.audience_id AND r.user_id = $2
         WHERE c.id = $1 AND c.channel->>'type' = 'inbox' AND r.id <= c.plan_max_id`,
        [campaignId, userId],
      );
      return r.rowCount === 1;
    } catch (err) {
      throw wrapPgError(err, 'inbox membership');
    }
  }

  /** Of these campaign ids, the ones that exist. */
  async existing(campaignIds: readonly number[]): Promise<Set<number>> {
    if (campaignIds.length === 0) return new Set();
    try {
      const r = await this.db.query<{ id: number }>('SELECT id FROM campaigns WHERE id = ANY($1::bigint[])', [campaignIds]);
      return new Set(r.rows.map((row) => row.id));
    } catch (err) {
      throw wrapPgError(err, 'find campaigns');
    }
  }
}

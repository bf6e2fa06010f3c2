/**
 * The PostgreSQL half of a user's inbox: which inbox campaigns a user is a recipient of. Nothing is
 * written per recipient: membership is the audience's own row, probed through its (audience_id,
 * user_id) unique index once per inbox campaign, newest campaign first. A campaign with a filter
 * (a segment) holds the user only if its filter selects the user's row.
 */
import type { CampaignContent } from '../domain/campaign-input.js';
import type { MissingPolicy } from '../domain/template.js';
import { storedFilter } from '../domain/segment-filter.js';
import { compileFilter } from '../domain/segment-sql.js';
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
   * Started inbox campaigns whose audience holds `userId`, with ids below `before`, newest first, each with
   * the user's address and attributes from the same index probe that finds the membership. A campaign with
   * a filter may not have selected the user: the inbox shows only campaigns delivered to the user
   * (ClickHouse), which it never was.
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

  /**
   * Of these campaigns, the inbox ones (in any status: a test send may be a draft's), each with `userId`'s
   * row of its audience, which its test send was rendered from. The plan is not consulted: a test goes to
   * any recipient of the audience, chosen by id. A campaign whose audience no longer holds the user is absent.
   */
  async testCandidates(userId: string, campaignIds: readonly number[]): Promise<Map<number, InboxCandidate>> {
    if (campaignIds.length === 0) return new Map();
    try {
      const r = await this.db.query<InboxCandidate>(
        `SELECT c.id AS "campaignId", c.name, c.content, c.variables, c.missing, r.address,
           jsonb_strip_nulls(r.attrs)::text AS attrs FROM campaigns c
         JOIN recipients r ON r.audience_id = c.audience_id AND r.user_id = $1
         WHERE c.id = ANY($2::bigint[]) AND c.channel->>'type' = 'inbox'`,
        [userId, campaignIds],
      );
      return new Map(r.rows.map((row) => [row.campaignId, row]));
    } catch (err) {
      throw wrapPgError(err, 'inbox test campaigns');
    }
  }

  /** Whether `userId` is a recipient of inbox campaign `campaignId` (it has started, and its plan holds the user). */
  async isRecipient(campaignId: number, userId: string): Promise<boolean> {
    let filter: unknown;
    try {
      const r = await this.db.query<{ filter: unknown }>(
        `SELECT c.filter FROM campaigns c JOIN recipients r ON r.audience_id = c.audience_id AND r.user_id = $2
         WHERE c.id = $1 AND c.channel->>'type' = 'inbox' AND r.id <= c.plan_max_id`,
        [campaignId, userId],
      );
      if (r.rows.length !== 1) return false;
      filter = r.rows[0]!.filter;
    } catch (err) {
      throw wrapPgError(err, 'inbox membership');
    }
    return filter === null || (await this.selectedBy(userId, [{ id: campaignId, filter }])).has(campaignId);
  }

  /** Of these campaigns, those whose filter selects `userId`'s recipient row (campaigns without a filter are left out). */
  private async selectedBy(userId: string, campaigns: ReadonlyArray<{ id: number; filter: unknown }>): Promise<Set<number>> {
    const filtered = campaigns.filter((c) => c.filter !== null);
    if (filtered.length === 0) return new Set();
    // One query for them all: each campaign's filter, on the user's row of its audience.
    const params: unknown[] = [userId, filtered.map((c) => c.id)];
    const cases = filtered.map((c) => {
      const f = compileFilter(storedFilter(c.filter, `campaign ${c.id}`), {
        values: 'bind',
        column: 'r.attrs',
        firstParam: params.length + 1,
      });
      params.push(...f.params);
      return `WHEN ${Math.trunc(c.id)} THEN ${f.sql}`;
    });
    try {
      const r = await this.db.query<{ id: number }>(
        `SELECT c.id FROM campaigns c JOIN recipients r ON r.audience_id = c.audience_id AND r.user_id = $1 AND r.id <= c.plan_max_id
         WHERE c.id = ANY($2::bigint[]) AND CASE c.id ${cases.join(' ')} END`,
        params,
      );
      return new Set(r.rows.map((row) => row.id));
    } catch (err) {
      throw wrapPgError(err, 'inbox segments');
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

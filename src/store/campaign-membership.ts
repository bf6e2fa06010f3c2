/**
 * Whether a campaign's plan holds a user, for one recipient's story (domain/recipient-outcome.ts): the
 * user is in the campaign's audience, within the plan's extent (recipients imported after the plan was
 * fixed are not sent to) and selected by its filter; and whether the current retry round sends to them
 * again. Each step is an index probe: (audience_id, user_id), then the recipient's own row.
 */
import { storedFilter } from '../domain/segment-filter.js';
import { compileFilter } from '../domain/segment-sql.js';
import type { Membership } from '../domain/recipient-outcome.js';
import { wrapPgError, type Db } from './db.js';

interface CampaignRow {
  status: string;
  audience_id: string;
  plan_max_id: string | null;
  filter: unknown;
  segment_id: string | null;
  plan_audience_id: string | null;
  round_generation: number;
  recipient_id: string | null;
}

export class CampaignMembership {
  constructor(private readonly db: Db) {}

  /** null: no such campaign */
  async of(campaignId: number, userId: string): Promise<Membership | null> {
    try {
      const r = await this.db.query<CampaignRow>(
        `SELECT c.status, c.audience_id, c.plan_max_id, c.filter, c.segment_id, c.plan_audience_id, c.round_generation,
                r.id AS recipient_id
         FROM campaigns c LEFT JOIN recipients r ON r.audience_id = c.audience_id AND r.user_id = $2
         WHERE c.id = $1`,
        [campaignId, userId],
      );
      const c = r.rows[0];
      if (c === undefined) return null;
      if (c.recipient_id === null) return { inPlan: false, reason: `not in audience ${c.audience_id}` };
      if (c.plan_max_id !== null && BigInt(c.recipient_id) > BigInt(c.plan_max_id))
        return { inPlan: false, reason: `added to audience ${c.audience_id} after the campaign was planned` };
      if (c.filter !== null) {
        const f = compileFilter(storedFilter(c.filter, `campaign ${campaignId}`), { values: 'bind', firstParam: 3, use: 'scan' });
        const m = await this.db.query(`SELECT 1 FROM recipients WHERE audience_id = $1 AND id = $2 AND ${f.sql}`, [
          c.audience_id,
          c.recipient_id,
          ...f.params,
        ]);
        if (m.rowCount === 0)
          return {
            inPlan: false,
            reason: c.segment_id === null ? "not selected by the campaign's filter" : `not selected by segment ${c.segment_id}`,
          };
      }
      let inRetryRound = false;
      if (c.plan_audience_id !== null) {
        const m = await this.db.query('SELECT 1 FROM recipients WHERE audience_id = $1 AND user_id = $2', [c.plan_audience_id, userId]);
        inRetryRound = (m.rowCount ?? 0) > 0;
      }
      return { inPlan: true, status: c.status, inRetryRound, roundGeneration: c.round_generation };
    } catch (err) {
      throw wrapPgError(err, 'look up campaign membership');
    }
  }
}

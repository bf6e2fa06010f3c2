/**
 * One recipient of one campaign: what happened to them (outcome, attempts, error, reads). The rows come
 * from ClickHouse, whether the plan holds the user from PostgreSQL; domain/recipient-outcome.ts decides.
 */
import { HeraldError } from '../errors.js';
import { parseId } from '../domain/campaign-input.js';
import { parseUserId } from '../domain/event-input.js';
import { recipientStory, type Membership, type RecipientEventRow } from '../domain/recipient-outcome.js';
import type { Route } from './route.js';
import { ID_PARAM, USER_PARAM } from './schemas.js';

export interface RecipientApiDeps {
  /** null: no such campaign (store/campaign-membership.ts) */
  membership: { of(campaignId: number, userId: string): Promise<Membership | null> };
  /** progress/recipient-history.ts */
  recipientEvents: { events(campaignId: number, userId: string): Promise<RecipientEventRow[]> };
}

export function recipientRoutes(deps: RecipientApiDeps): Route[] {
  return [
    {
      name: 'getCampaignRecipient',
      method: 'get',
      path: '/v1/campaigns/:id/recipients/:user_id',
      auth: 'read',
      summary: 'What happened to one recipient of a campaign: outcome, attempts, error, reads',
      params: [{ ...ID_PARAM, description: 'the campaign' }, USER_PARAM],
      responses: {
        200: '{campaign_id, user_id, outcome: "delivered" | "failed" | "skipped" | "suppressed" | "capped" | "aborted" | "pending" | "not_in_campaign", error, reason, attempts: [{at, kind, error}], reads: [{at}]}',
        400: 'a malformed id or user_id',
        404: 'no such campaign',
      },
      handler: async (req) => {
        const campaignId = parseId(req.params[0], 'id');
        const userId = parseUserId(req.params[1]);
        const [membership, rows] = await Promise.all([
          deps.membership.of(campaignId, userId),
          deps.recipientEvents.events(campaignId, userId),
        ]);
        if (membership === null) throw new HeraldError('NOT_FOUND', `campaign ${campaignId} not found`);
        const s = recipientStory(rows, membership);
        return {
          status: 200,
          body: {
            campaign_id: campaignId,
            user_id: userId,
            outcome: s.outcome,
            error: s.error,
            reason: s.reason,
            attempts: s.attempts,
            reads: s.reads,
          },
        };
      },
    },
  ];
}

/**
 * Previews and test sends of a campaign's templates, for real recipients of its audience:
 *   POST /v1/campaigns/:id/preview {user_ids?, sample?}  renders, sends nothing, stores nothing
 *   POST /v1/campaigns/:id/test {user_ids}                sends to those only, stored as test events
 * Neither touches the campaign's plan, stream, status or counts.
 */
import { HeraldError } from '../errors.js';
import { parseId } from '../domain/campaign-input.js';
import { validatePreview, validateTestSend, type RecipientChoice } from '../domain/test-send-input.js';
import { parseAttrs, renderRecipients, TemplateCache, type RenderedContent } from '../domain/template.js';
import type { Campaign, CampaignRepo } from '../store/campaign-repo.js';
import type { RecipientLookup, RecipientRow } from '../store/recipient-lookup.js';
import type { TestSender } from '../actor/test-sender.js';
import type { AuditRecord } from '../domain/audit.js';
import type { JsonSchema, Route } from './route.js';
import { ID_PARAM, jsonBody } from './schemas.js';

export interface TemplateApiDeps {
  campaigns: CampaignRepo;
  recipients: RecipientLookup;
  testSends: Pick<TestSender, 'send'>;
  audit: { record(r: AuditRecord): Promise<void> };
  /** compiled templates per campaign, shared with the inbox routes; default: one of these routes' own */
  templates?: TemplateCache;
}

const USER_IDS: JsonSchema = { type: 'array', minItems: 1, maxItems: 100, items: { type: 'string', minLength: 1, maxLength: 256 } };
export const PREVIEW: JsonSchema = {
  type: 'object',
  properties: {
    user_ids: USER_IDS,
    sample: { type: 'integer', minimum: 1, maximum: 100, default: 10, description: "the audience's first N recipients" },
  },
};
export const TEST_SEND: JsonSchema = { type: 'object', required: ['user_ids'], properties: { user_ids: USER_IDS } };

function contentView(c: RenderedContent): Record<string, unknown> {
  return c.data === null ? { title: c.title, body: c.body } : { title: c.title, body: c.body, data: c.data };
}

export function templateRoutes(deps: TemplateApiDeps): Route[] {
  const templates = deps.templates ?? new TemplateCache();
  const campaignOf = async (raw: string | undefined): Promise<Campaign> => {
    const id = parseId(raw, 'id');
    const c = await deps.campaigns.get(id);
    if (c === null) throw new HeraldError('NOT_FOUND', `campaign ${id} not found`);
    return c;
  };
  /** The chosen recipients of the campaign's audience; ids not in it are a 400 naming them. */
  const recipientsOf = async (c: Campaign, choice: RecipientChoice): Promise<RecipientRow[]> => {
    if (choice.kind === 'sample') return deps.recipients.first(c.audienceId, choice.n);
    const rows = await deps.recipients.byUserIds(c.audienceId, choice.userIds);
    if (rows.length < choice.userIds.length) {
      const found = new Set(rows.map((r) => r.userId));
      const unknown = choice.userIds.filter((id) => !found.has(id));
      throw HeraldError.invalid([{ field: 'user_ids', error: `not in the campaign's audience: ${unknown.slice(0, 20).join(', ')}` }]);
    }
    return rows;
  };

  return [
    {
      name: 'previewCampaign',
      method: 'post',
      path: '/v1/campaigns/:id/preview',
      auth: 'send',
      summary: "Render the campaign's templates for real recipients of its audience; nothing is sent",
      params: [ID_PARAM],
      body: jsonBody(PREVIEW, 'whom to render for: user_ids, or the first `sample` recipients'),
      responses: {
        200: '{previews: [{user_id, title, body, data?} | {user_id, skipped} | {user_id, error}]}',
        400: 'a bad body, or user ids not in the audience',
        404: 'no such campaign',
      },
      handler: async (req) => {
        const choice = validatePreview(await req.json());
        const c = await campaignOf(req.params[0]);
        const rows = await recipientsOf(c, choice);
        const t = templates.get(c);
        const r = renderRecipients(t, {
          n: rows.length,
          render: true,
          recipient: (i) => ({ userId: rows[i]!.userId, address: rows[i]!.address, attrs: parseAttrs(rows[i]!.attrs) }),
        });
        const previews = rows.map((row, i) => {
          const skipped = r.skipped.get(i);
          if (skipped !== undefined) return { user_id: row.userId, skipped };
          const error = r.failed.get(i);
          if (error !== undefined) return { user_id: row.userId, error };
          return { user_id: row.userId, ...contentView(r.contents![i]!) };
        });
        return { status: 200, body: { previews } };
      },
    },
    {
      name: 'testCampaign',
      method: 'post',
      path: '/v1/campaigns/:id/test',
      auth: 'send',
      summary: 'Send the campaign to these recipients only, as test events no campaign count includes',
      params: [ID_PARAM],
      body: jsonBody(TEST_SEND, 'the recipients (user ids of the audience)'),
      responses: {
        200: '{test_id, results: [{user_id, outcome: "delivered" | "failed" | "skipped", error, title?, body?, data?}]}',
        400: 'a bad body, or user ids not in the audience',
        404: 'no such campaign',
      },
      handler: async (req) => {
        const userIds = validateTestSend(await req.json());
        const c = await campaignOf(req.params[0]);
        const rows = await recipientsOf(c, { kind: 'users', userIds });
        const { testId, results } = await deps.testSends.send(c, rows);
        // the send is no PostgreSQL transaction: recorded once it is done (its events are in ClickHouse)
        await deps.audit.record({
          actor: req.actor,
          action: 'campaign.test',
          campaignId: c.id,
          statusBefore: c.status,
          statusAfter: c.status,
          detail: { test_id: testId, user_ids: userIds.slice(0, 100) },
        });
        return {
          status: 200,
          body: {
            test_id: testId,
            results: results.map((r) => ({
              user_id: r.userId,
              outcome: r.outcome,
              error: r.error,
              ...(r.content === null ? {} : contentView(r.content)),
            })),
          },
        };
      },
    },
  ];
}

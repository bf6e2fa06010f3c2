/**
 * Previews and test sends of a campaign's templates, for real recipients of its audience:
 *   POST /v1/campaigns/:id/preview {user_ids?, sample?}  renders, sends nothing, stores nothing
 *   POST /v1/previews {…a campaign's fields, user_ids?, sample?}  the same for a campaign not saved (a form
 *                                                         previewing as it is typed)
 *   POST /v1/campaigns/:id/test {user_ids}                sends to those only, stored as test events
 * None touches a campaign's plan, stream, status or counts. A sample is the first recipients the campaign
 * would reach: its segment's, when it has one.
 */
import { HeraldError } from '../errors.js';
import { parseId } from '../domain/campaign-input.js';
import { validateDraftPreview, validatePreview, validateTestSend, type RecipientChoice } from '../domain/test-send-input.js';
import { CampaignTemplates, parseAttrs, renderRecipients, TemplateCache, type RenderedContent } from '../domain/template.js';
import { storedFilter, type FilterNode } from '../domain/segment-filter.js';
import type { SegmentRepo } from '../store/segment-repo.js';
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
  segments: SegmentRepo;
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
export const DRAFT_PREVIEW: JsonSchema = {
  type: 'object',
  required: ['audience_id', 'content'],
  description: 'the fields of POST /v1/campaigns (name and channel may be left out), and whom to render for',
  properties: {
    ...(PREVIEW.properties as Record<string, unknown>),
    audience_id: { type: 'integer', minimum: 1 },
    content: { type: 'object' },
  },
};
export const TEST_SEND: JsonSchema = { type: 'object', required: ['user_ids'], properties: { user_ids: USER_IDS } };

function contentView(c: RenderedContent): Record<string, unknown> {
  return c.data === null ? { title: c.title, body: c.body } : { title: c.title, body: c.body, data: c.data };
}

/** Each recipient's rendering, skip or failure, in the order given. */
function previewsOf(t: CampaignTemplates, rows: readonly RecipientRow[]): Array<Record<string, unknown>> {
  const r = renderRecipients(t, {
    n: rows.length,
    render: true,
    recipient: (i) => ({ userId: rows[i]!.userId, address: rows[i]!.address, attrs: parseAttrs(rows[i]!.attrs) }),
  });
  return rows.map((row, i) => {
    const skipped = r.skipped.get(i);
    if (skipped !== undefined) return { user_id: row.userId, skipped };
    const error = r.failed.get(i);
    if (error !== undefined) return { user_id: row.userId, error };
    return { user_id: row.userId, ...contentView(r.contents![i]!) };
  });
}

export function templateRoutes(deps: TemplateApiDeps): Route[] {
  const templates = deps.templates ?? new TemplateCache();
  const campaignOf = async (raw: string | undefined): Promise<Campaign> => {
    const id = parseId(raw, 'id');
    const c = await deps.campaigns.get(id);
    if (c === null) throw new HeraldError('NOT_FOUND', `campaign ${id} not found`);
    return c;
  };
  /**
   * The chosen recipients of the audience; ids not in it are a 400 naming them. A sample is the first the
   * campaign's filter selects (anyone named by id is rendered for, as a test send may go to anyone).
   */
  const recipientsOf = async (c: { audienceId: number; filter: FilterNode | null }, choice: RecipientChoice): Promise<RecipientRow[]> => {
    if (choice.kind === 'sample') return deps.recipients.first(c.audienceId, choice.n, c.filter);
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
        const filter = c.filter === null ? null : storedFilter(c.filter, `campaign ${c.id}`);
        const rows = await recipientsOf({ audienceId: c.audienceId, filter }, choice);
        return { status: 200, body: { previews: previewsOf(templates.get(c), rows) } };
      },
    },
    {
      name: 'previewDraft',
      method: 'post',
      path: '/v1/previews',
      auth: 'send',
      summary: 'Render templates of a campaign not saved (as a form is typed) for real recipients; nothing is stored',
      body: jsonBody(DRAFT_PREVIEW, "the campaign's fields and whom to render for"),
      responses: {
        200: '{previews: [{user_id, title, body, data?} | {user_id, skipped} | {user_id, error}]}',
        400: 'a bad field (templates named with their position, as at creation), or user ids not in the audience',
      },
      handler: async (req) => {
        const { campaign, choice } = validateDraftPreview(await req.json());
        let filter = campaign.filter;
        if (campaign.segmentId !== null) {
          const seg = await deps.segments.get(campaign.segmentId);
          if (seg === null) throw HeraldError.invalid([{ field: 'segment_id', error: 'no such segment' }]);
          if (seg.audienceId !== campaign.audienceId)
            throw HeraldError.invalid([
              { field: 'segment_id', error: `is a segment of audience ${seg.audienceId}, not of audience_id ${campaign.audienceId}` },
            ]);
          filter = seg.filter;
        }
        const rows = await recipientsOf({ audienceId: campaign.audienceId, filter }, choice);
        // Compiled for this request only: a draft has no id to cache it under, and it changes as it is typed.
        const t = CampaignTemplates.compile(campaign.content, campaign.missing, {
          id: 0,
          name: campaign.name,
          variables: campaign.variables,
        });
        return { status: 200, body: { previews: previewsOf(t, rows) } };
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
        const rows = await recipientsOf({ audienceId: c.audienceId, filter: null }, { kind: 'users', userIds });
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

/**
 * Audiences and campaigns under /v1: create, list, read, change, the lifecycle commands, failures, the
 * retry round and read-rate stats. Each route validates, calls a repository or publisher, and answers JSON.
 */
import type { Logger } from 'pino';
import { HeraldError } from '../errors.js';
import type { CampaignStatus } from '../domain/campaign-status.js';
import {
  validatePage,
  parseId,
  validateCreateAudience,
  validateCreateCampaign,
  validateFailuresQuery,
  validateListCampaigns,
  validateUpdateCampaign,
} from '../domain/campaign-input.js';
import type { AudienceRepo } from '../store/audience-repo.js';
import type { Campaign, CampaignRepo } from '../store/campaign-repo.js';
import type { RetryRepo } from '../store/retry-repo.js';
import type { ProgressReader } from '../progress/progress-reader.js';
import type { StatsReader } from '../progress/stats-reader.js';
import { storedFilter } from '../domain/segment-filter.js';
import type { AttrIndexes } from '../store/attr-index.js';
import type { ApiRequest, Reply, Route } from './route.js';
import { beforeParam, CREATE_AUDIENCE, CREATE_CAMPAIGN, ID_PARAM, jsonBody, limitParam, UPDATE_CAMPAIGN } from './schemas.js';
import { indexForFilter } from './segment-routes.js';
import { campaignView } from './views.js';

export interface CampaignApiDeps {
  defaultChunkSize: number;
  audiences: AudienceRepo;
  campaigns: CampaignRepo;
  retries: RetryRepo;
  progress: ProgressReader;
  stats: StatsReader;
  /** `version`: the campaign's status_version after the change (stream/control.ts) */
  publishStatus(campaignId: number, status: CampaignStatus, version: number): Promise<void>;
  /** messages sent after a pause or cancel was announced, per campaign */
  overshoot(campaignIds: readonly number[]): Promise<Map<number, number>>;
  /** tells dispatchers to reload a campaign's settings (rate limit) */
  publishChanged(campaignId: number): Promise<void>;
  attrIndexes: AttrIndexes;
  log: Logger;
}

const COMMANDS: ReadonlyArray<[command: 'start' | 'pause' | 'resume' | 'cancel', summary: string]> = [
  ['start', 'Start a draft or scheduled campaign'],
  ['pause', 'Pause a sending campaign at its chunks’ next sub-batch'],
  ['resume', 'Resume a paused campaign'],
  ['cancel', 'Cancel a campaign; what was not sent is counted as aborted'],
];

type CampaignRoute = Omit<Route, 'path' | 'params' | 'handler'> & {
  /** after `/v1/campaigns/:id` */
  subpath: string;
  handle(id: number, req: ApiRequest): Promise<Reply>;
};

/** A route on one campaign, `/v1/campaigns/:id…`: the id parsed before anything else. */
function onCampaign({ subpath, handle, ...route }: CampaignRoute): Route {
  return {
    ...route,
    path: `/v1/campaigns/:id${subpath}`,
    params: [ID_PARAM],
    handler: (req) => handle(parseId(req.params[0], 'id'), req),
  };
}

export function campaignRoutes(deps: CampaignApiDeps): Route[] {
  const requireCampaign = async (id: number): Promise<Campaign> => {
    const c = await deps.campaigns.get(id);
    if (c === null) throw new HeraldError('NOT_FOUND', `campaign ${id} not found`);
    return c;
  };
  const publishFailed = (campaignId: number) => (err: unknown) => deps.log.warn({ err, campaignId }, 'status publish failed');

  const routes: Route[] = [
    {
      name: 'createAudience',
      method: 'post',
      path: '/v1/audiences',
      auth: 'audience',
      summary: 'Create an audience',
      body: jsonBody(CREATE_AUDIENCE, 'the audience'),
      responses: { 201: '{id, name, created_at}' },
      handler: async (req) => {
        const input = validateCreateAudience(await req.json());
        const a = await deps.audiences.create(input.name);
        return { status: 201, body: { id: a.id, name: a.name, created_at: a.createdAt.toISOString() } };
      },
    },
    {
      name: 'listAudiences',
      method: 'get',
      path: '/v1/audiences',
      auth: 'read',
      summary: 'Audiences, newest first, with what their completed imports brought',
      query: [limitParam(50, 500), beforeParam('audience')],
      responses: {
        200: '{audiences: [{id, name, created_at, imports, imported, last_import_at}], next_before}',
        400: 'a bad query parameter',
      },
      handler: async (req) => {
        const page = await deps.audiences.list(validatePage(req.query, 50, 500));
        return {
          status: 200,
          body: {
            audiences: page.items.map((a) => ({
              id: a.id,
              name: a.name,
              created_at: a.createdAt.toISOString(),
              imports: a.imports,
              imported: a.imported,
              last_import_at: a.lastImportAt === null ? null : a.lastImportAt.toISOString(),
            })),
            next_before: page.nextBefore,
          },
        };
      },
    },
    {
      name: 'getAudience',
      method: 'get',
      path: '/v1/audiences/:id',
      auth: 'read',
      params: [ID_PARAM],
      summary: 'An audience and its exact number of recipients',
      responses: { 200: '{id, name, created_at, recipients}', 404: 'no such audience' },
      handler: async (req) => {
        const id = parseId(req.params[0], 'id');
        const a = await deps.audiences.get(id);
        if (a === null) throw new HeraldError('NOT_FOUND', `audience ${id} not found`);
        return { status: 200, body: { id: a.id, name: a.name, created_at: a.createdAt.toISOString(), recipients: a.recipients } };
      },
    },
    {
      name: 'createCampaign',
      method: 'post',
      path: '/v1/campaigns',
      auth: 'send',
      summary: 'Create a campaign (draft, or scheduled with schedule_at)',
      body: jsonBody(CREATE_CAMPAIGN, 'the campaign'),
      responses: { 201: '{id, status}' },
      handler: async (req) => {
        const input = validateCreateCampaign(await req.json());
        const c = await deps.campaigns.create(input, deps.defaultChunkSize, { actor: req.actor, action: 'campaign.create' });
        // Its filter's attribute index (a segment's was asked for when the segment was made; asked again,
        // it costs one query, and covers a segment older than its audience's partition).
        try {
          indexForFilter(deps, c.audienceId, c.filter === null ? null : storedFilter(c.filter, `campaign ${c.id}`));
        } catch (err) {
          // The campaign is made: its answer does not hang on an index, which only speeds its plan.
          deps.log.warn({ err, campaignId: c.id }, 'attribute index not asked for');
        }
        return { status: 201, body: { id: c.id, status: c.status } };
      },
    },
    {
      name: 'listCampaigns',
      method: 'get',
      path: '/v1/campaigns',
      auth: 'read',
      summary: 'List campaigns, newest first',
      query: [
        { name: 'status', description: 'only campaigns in this status', schema: { type: 'string' } },
        limitParam(50, 500),
        beforeParam('campaign'),
      ],
      responses: { 200: '{campaigns: [campaign], next_before}', 400: 'a bad query parameter' },
      handler: async (req) => {
        const q = validateListCampaigns(req.query);
        const list = await deps.campaigns.list(q);
        const ids = list.map((c) => c.id);
        const [counts, overshoot] = await Promise.all([deps.progress.counts(ids), deps.overshoot(ids)]);
        const items = list.map((c) => campaignView(c, counts.get(c.id), overshoot.get(c.id)));
        const last = list[list.length - 1];
        return { status: 200, body: { campaigns: items, next_before: list.length === q.limit && last ? last.id : null } };
      },
    },
    onCampaign({
      name: 'getCampaign',
      method: 'get',
      auth: 'read',
      subpath: '',
      summary: 'A campaign and its counts (delivered + failed + aborted + pending = total)',
      responses: { 200: 'the campaign', 400: 'a malformed id', 404: 'no such campaign' },
      handle: async (id) => {
        const c = await requireCampaign(id);
        const [counts, overshoot] = await Promise.all([deps.progress.counts([id]), deps.overshoot([id])]);
        return { status: 200, body: campaignView(c, counts.get(id), overshoot.get(id)) };
      },
    }),
    onCampaign({
      name: 'updateCampaign',
      method: 'patch',
      auth: 'send',
      subpath: '',
      summary: 'Change the rate limit (also while sending) or the start time (before the start)',
      body: jsonBody(UPDATE_CAMPAIGN, 'the fields to change'),
      responses: { 200: 'the campaign', 404: 'no such campaign', 409: '{error, status}: not changeable in this status' },
      handle: async (id, req) => {
        const input = validateUpdateCampaign(await req.json());
        const c = await deps.campaigns.update(id, input, { actor: req.actor, action: 'campaign.update' });
        await deps.publishChanged(id).catch((err: unknown) => deps.log.warn({ err, campaignId: id }, 'change publish failed'));
        const counts = await deps.progress.counts([id]);
        return { status: 200, body: campaignView(c, counts.get(id)) };
      },
    }),
    onCampaign({
      name: 'listCampaignFailures',
      method: 'get',
      auth: 'read',
      subpath: '/failures',
      summary: 'Recipients whose latest outcome is a failure, in user_id order',
      query: [
        limitParam(100, 1000),
        { name: 'after', description: 'the page after this user_id', schema: { type: 'string', maxLength: 256 } },
      ],
      responses: { 200: '{failures: [{user_id, error, attempts}], next_after}', 400: 'a bad parameter', 404: 'no such campaign' },
      handle: async (id, req) => {
        const q = validateFailuresQuery(req.query);
        const c = await requireCampaign(id);
        const failures = await deps.progress.failures(id, q.after, q.limit, c.firstRetryGeneration);
        const last = failures[failures.length - 1];
        return {
          status: 200,
          body: {
            failures: failures.map((f) => ({ user_id: f.userId, error: f.error, attempts: f.attempts })),
            next_after: failures.length === q.limit && last ? last.userId : null,
          },
        };
      },
    }),
  ];

  for (const [command, summary] of COMMANDS) {
    routes.push(
      onCampaign({
        name: `${command}Campaign`,
        method: 'post',
        auth: 'send',
        subpath: `/${command}`,
        summary,
        responses: { 200: '{id, status}', 404: 'no such campaign', 409: '{error, status}: the move is illegal from the current status' },
        handle: async (id, req) => {
          const c = await deps.campaigns.command(id, command, { actor: req.actor, action: `campaign.${command}` });
          // The poll loop picks the change up within HERALD_POLL_MS; PostgreSQL already has it.
          await deps.publishStatus(id, c.status, c.statusVersion).catch(publishFailed(id));
          return { status: 200, body: { id: c.id, status: c.status } };
        },
      }),
    );
  }

  routes.push(
    onCampaign({
      // Sends again to exactly the recipients whose latest outcome is a failure, as a new round of the
      // campaign (store/retry-repo.ts); 409 unless the campaign is completed.
      name: 'retryCampaignFailures',
      method: 'post',
      auth: 'send',
      subpath: '/retry-failed',
      summary: 'Send again to the recipients listed by /failures, as a new round',
      responses: { 200: '{id, status, retrying}', 404: 'no such campaign', 409: '{error, status}: the campaign is not completed' },
      handle: async (id, req) => {
        const c = await requireCampaign(id);
        const r = await deps.retries.startRound(id, () => deps.progress.failedUserIds(id, c.firstRetryGeneration), {
          actor: req.actor,
          action: 'campaign.retry_failed',
        });
        if (r.retrying > 0) await deps.publishStatus(id, 'sending', r.statusVersion).catch(publishFailed(id));
        return { status: 200, body: { id, status: r.status, retrying: r.retrying } };
      },
    }),
    onCampaign({
      // Read-rate analytics, from the ClickHouse views only (progress/stats-reader.ts).
      name: 'getCampaignStats',
      method: 'get',
      auth: 'read',
      subpath: '/stats',
      summary: 'Read-rate analytics: totals, read_rate, series, time_to_read, by_segment',
      query: [{ name: 'bucket', description: 'series bucket', schema: { enum: ['minute', 'hour'], default: 'minute' } }],
      responses: { 200: '{id, totals, read_rate, series, time_to_read, by_segment}', 400: 'a bad bucket', 404: 'no such campaign' },
      handle: async (id, req) => {
        const bucket = req.query.get('bucket') ?? 'minute';
        if (bucket !== 'minute' && bucket !== 'hour') throw HeraldError.invalid([{ field: 'bucket', error: 'must be "minute" or "hour"' }]);
        const c = await requireCampaign(id);
        const [counts, stats] = await Promise.all([deps.progress.counts([id]), deps.stats.read(id, bucket)]);
        const n = counts.get(id);
        const { total, delivered, failed, skipped, suppressed, capped, aborted, pending, read, unique_readers } = campaignView(c, n);
        const totals = {
          total,
          delivered,
          failed,
          skipped,
          suppressed,
          capped,
          aborted,
          pending,
          read,
          unique_readers,
          confirmed: n?.confirmed ?? 0,
          bounced: n?.bounced ?? 0,
        };
        const readRate = Number(delivered) === 0 ? 0 : Number(unique_readers) / Number(delivered);
        return { status: 200, body: { id, totals, read_rate: readRate, ...stats } };
      },
    }),
  );
  return routes;
}

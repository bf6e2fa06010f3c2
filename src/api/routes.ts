/**
 * The HTTP API under /v1: each route copies what it needs from the request, checks the bearer key,
 * validates, calls a repository or publisher, and answers JSON. No SQL or Redis command lives here.
 */
import type { HttpRequest, HttpResponse, TemplatedApp } from 'uWebSockets.js';
import type { Logger } from 'pino';
import { HeraldError } from '../errors.js';
import type { CampaignCommand, CampaignStatus } from '../domain/campaign-status.js';
import {
  parseId,
  validateCreateAudience,
  validateCreateCampaign,
  validateFailuresQuery,
  validateListCampaigns,
  validateUpdateCampaign,
} from '../domain/campaign-input.js';
import type { AudienceRepo } from '../store/audience-repo.js';
import type { CampaignRepo } from '../store/campaign-repo.js';
import type { RetryRepo } from '../store/retry-repo.js';
import type { ProgressReader } from '../progress/progress-reader.js';
import type { StatsReader } from '../progress/stats-reader.js';
import { registerUserRoutes, type UserApiDeps } from './user-routes.js';
import { registerDashboard } from './dashboard-routes.js';
import { checkBearer, copyRequest, errorReply, readJson, ResponseState, type Reply, type RequestInfo } from './http.js';
import { registerImportRoutes, type ImportApiDeps } from './import-routes.js';
import { campaignView } from './views.js';
import type { WsStats } from '../ws/ws-server.js';

export interface ApiDeps extends UserApiDeps, ImportApiDeps {
  stats: StatsReader;
  apiKeys: readonly string[];
  maxBodyBytes: number;
  defaultChunkSize: number;
  audiences: AudienceRepo;
  campaigns: CampaignRepo;
  retries: RetryRepo;
  progress: ProgressReader;
  /** `version`: the campaign's status_version after the change (stream/control.ts) */
  publishStatus(campaignId: number, status: CampaignStatus, version: number): Promise<void>;
  /** messages sent after a pause or cancel was announced, per campaign */
  overshoot(campaignIds: readonly number[]): Promise<Map<number, number>>;
  /** tells dispatchers to reload a campaign's settings (rate limit) */
  publishChanged(campaignId: number): Promise<void>;
  health(): Promise<Record<string, string>>;
  log: Logger;
}

export type Handler = (info: RequestInfo, res: HttpResponse, state: ResponseState) => Promise<Reply>;
/** Registers a handler; `auth` false: the handler authorizes (or the route is public). */
export type Route = (method: 'get' | 'post' | 'patch', pattern: string, handler: Handler, auth?: boolean) => void;

export function registerRoutes(app: TemplatedApp, deps: ApiDeps, wsStats: () => WsStats | null = () => null): void {
  const route: Route = (method, pattern, handler, auth = true) => {
    const paramCount = (pattern.match(/:/g) ?? []).length;
    app[method](pattern, (res: HttpResponse, req: HttpRequest) => {
      const state = new ResponseState(res);
      const info = copyRequest(req, paramCount);
      const run = async (): Promise<Reply> => {
        if (auth && !checkBearer(info.headers.authorization, deps.apiKeys)) {
          throw new HeraldError('UNAUTHORIZED', 'missing or invalid bearer key', { field: 'authorization' });
        }
        return handler(info, res, state);
      };
      run().then(
        (reply) => state.send(reply),
        (err: unknown) => {
          const reply = errorReply(err);
          if (reply.status >= 500) deps.log.error({ err, url: info.url }, 'request failed');
          // A 413 can come while the client is still sending: close after answering.
          if (reply.status === 413) reply.headers = { connection: 'close' };
          state.send(reply);
        },
      );
    });
  };

  route('post', '/v1/audiences', async (info, res, state) => {
    const input = validateCreateAudience(await readJson(res, state, info, deps.maxBodyBytes));
    const a = await deps.audiences.create(input.name);
    return { status: 201, body: { id: a.id, name: a.name, created_at: a.createdAt.toISOString() } };
  });

  registerImportRoutes(route, deps);

  route('post', '/v1/campaigns', async (info, res, state) => {
    const input = validateCreateCampaign(await readJson(res, state, info, deps.maxBodyBytes));
    const c = await deps.campaigns.create(input, deps.defaultChunkSize);
    return { status: 201, body: { id: c.id, status: c.status } };
  });

  route('get', '/v1/campaigns', async (info) => {
    const q = validateListCampaigns(info.query);
    const list = await deps.campaigns.list(q);
    const ids = list.map((c) => c.id);
    const [counts, overshoot] = await Promise.all([deps.progress.counts(ids), deps.overshoot(ids)]);
    const items = list.map((c) => campaignView(c, counts.get(c.id), overshoot.get(c.id)));
    const last = list[list.length - 1];
    return { status: 200, body: { campaigns: items, next_before: list.length === q.limit && last ? last.id : null } };
  });

  route('get', '/v1/campaigns/:id', async (info) => {
    const id = parseId(info.params[0], 'id');
    const c = await deps.campaigns.get(id);
    if (c === null) throw new HeraldError('NOT_FOUND', `campaign ${id} not found`);
    const [counts, overshoot] = await Promise.all([deps.progress.counts([id]), deps.overshoot([id])]);
    return { status: 200, body: campaignView(c, counts.get(id), overshoot.get(id)) };
  });

  route('patch', '/v1/campaigns/:id', async (info, res, state) => {
    const id = parseId(info.params[0], 'id');
    const input = validateUpdateCampaign(await readJson(res, state, info, deps.maxBodyBytes));
    const c = await deps.campaigns.update(id, input);
    await deps.publishChanged(id).catch((err: unknown) => deps.log.warn({ err, campaignId: id }, 'change publish failed'));
    const counts = await deps.progress.counts([id]);
    return { status: 200, body: campaignView(c, counts.get(id)) };
  });

  route('get', '/v1/campaigns/:id/failures', async (info) => {
    const id = parseId(info.params[0], 'id');
    const q = validateFailuresQuery(info.query);
    const c = await deps.campaigns.get(id);
    if (c === null) throw new HeraldError('NOT_FOUND', `campaign ${id} not found`);
    const failures = await deps.progress.failures(id, q.after, q.limit, c.firstRetryGeneration);
    const last = failures[failures.length - 1];
    return {
      status: 200,
      body: {
        failures: failures.map((f) => ({ user_id: f.userId, error: f.error, attempts: f.attempts })),
        next_after: failures.length === q.limit && last ? last.userId : null,
      },
    };
  });

  const commands: CampaignCommand[] = ['start', 'pause', 'resume', 'cancel'];
  for (const command of commands) {
    route('post', `/v1/campaigns/:id/${command}`, async (info) => {
      const id = parseId(info.params[0], 'id');
      const c = await deps.campaigns.transition(id, command);
      await deps.publishStatus(id, c.status, c.statusVersion).catch((err: unknown) => {
        // The poll loop picks the change up within HERALD_POLL_MS; PostgreSQL already has it.
        deps.log.warn({ err, campaignId: id }, 'status publish failed');
      });
      return { status: 200, body: { id: c.id, status: c.status } };
    });
  }

  // Sends again to exactly the recipients whose latest outcome is a failure, as a new round of the
  // campaign (store/retry-repo.ts); 409 unless the campaign is completed.
  route('post', '/v1/campaigns/:id/retry-failed', async (info) => {
    const id = parseId(info.params[0], 'id');
    const c = await deps.campaigns.get(id);
    if (c === null) throw new HeraldError('NOT_FOUND', `campaign ${id} not found`);
    const r = await deps.retries.startRound(id, () => deps.progress.failedUserIds(id, c.firstRetryGeneration));
    if (r.retrying > 0) {
      await deps
        .publishStatus(id, 'sending', r.statusVersion)
        .catch((err: unknown) => deps.log.warn({ err, campaignId: id }, 'status publish failed'));
    }
    return { status: 200, body: { id, status: r.status, retrying: r.retrying } };
  });

  // Read-rate analytics, from the ClickHouse views only (progress/stats-reader.ts).
  route('get', '/v1/campaigns/:id/stats', async (info) => {
    const id = parseId(info.params[0], 'id');
    const bucket = info.query.get('bucket') ?? 'minute';
    if (bucket !== 'minute' && bucket !== 'hour') throw HeraldError.invalid([{ field: 'bucket', error: 'must be "minute" or "hour"' }]);
    const c = await deps.campaigns.get(id);
    if (c === null) throw new HeraldError('NOT_FOUND', `campaign ${id} not found`);
    const [counts, stats] = await Promise.all([deps.progress.counts([id]), deps.stats.read(id, bucket)]);
    const view = campaignView(c, counts.get(id));
    const n = counts.get(id);
    const totals = {
      total: view.total,
      delivered: view.delivered,
      failed: view.failed,
      aborted: view.aborted,
      pending: view.pending,
      read: view.read,
      unique_readers: view.unique_readers,
      confirmed: n?.confirmed ?? 0,
      bounced: n?.bounced ?? 0,
    };
    const delivered = Number(view.delivered);
    return {
      status: 200,
      body: { id, totals, read_rate: delivered === 0 ? 0 : Number(view.unique_readers) / delivered, ...stats },
    };
  });

  // WebSocket clients now, and how many were closed for being too slow: for operators watching dashboards' load.
  route('get', '/v1/ws/clients', async () => {
    const stats = wsStats();
    if (stats === null) throw new HeraldError('NOT_FOUND', 'the WebSocket API is off in this process');
    return { status: 200, body: stats };
  });

  registerUserRoutes(route, deps);
  registerDashboard(route);

  route(
    'get',
    '/healthz',
    async () => {
      const checks = await deps.health();
      const failing = Object.entries(checks)
        .filter(([, v]) => v !== 'ok')
        .map(([k]) => k);
      return { status: failing.length === 0 ? 200 : 503, body: { status: failing.length === 0 ? 'ok' : 'unavailable', failing, checks } };
    },
    false,
  );

  app.any('/*', (res) => {
    const state = new ResponseState(res);
    state.send({ status: 404, body: { error: 'no such route', code: 'NOT_FOUND' } });
  });
}

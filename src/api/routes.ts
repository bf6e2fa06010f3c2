/**
 * The HTTP API as one route table: every route of api/*-routes.ts, the operator's routes and the OpenAPI
 * document of them all, registered with uWS by api/http.ts. No SQL or Redis command lives here.
 */
import type { TemplatedApp } from 'uWebSockets.js';
import type { Logger } from 'pino';
import { HeraldError } from '../errors.js';
import type { Credential } from '../domain/api-keys.js';
import type { AuditRepo } from '../store/audit-repo.js';
import type { WsStats } from '../ws/ws-server.js';
import { authorizer } from './auth.js';
import { campaignRoutes, type CampaignApiDeps } from './campaign-routes.js';
import { consentRoutes, type ConsentApiDeps } from './consent-routes.js';
import { dashboardRoutes } from './dashboard-routes.js';
import { mountRoutes } from './http.js';
import { importRoutes, type ImportApiDeps } from './import-routes.js';
import { keyRoutes, type KeyApiDeps } from './key-routes.js';
import { openApiRoute } from './openapi.js';
import { recipientRoutes, type RecipientApiDeps } from './recipient-routes.js';
import { opsRoutes, type OpsApiDeps } from './ops-routes.js';
import { segmentRoutes, type SegmentApiDeps } from './segment-routes.js';
import type { Route } from './route.js';
import { templateRoutes, type TemplateApiDeps } from './template-routes.js';
import { userRoutes, type UserApiDeps } from './user-routes.js';

export interface ApiDeps
  extends
    CampaignApiDeps,
    SegmentApiDeps,
    UserApiDeps,
    ImportApiDeps,
    TemplateApiDeps,
    ConsentApiDeps,
    KeyApiDeps,
    RecipientApiDeps,
    OpsApiDeps {
  /** an Authorization header's credential: api/key-verifier.ts */
  authenticate(authorization: string): Promise<Credential>;
  audit: Pick<AuditRepo, 'record' | 'list'>;
  maxBodyBytes: number;
  log: Logger;
}

const OPENAPI_INFO = {
  title: 'Herald',
  version: 'v1',
  description: 'Mass-message dispatcher. The WebSocket API (GET /v1/ws) is described in the README.',
};

/** Only captures `deps`: building the table calls nothing, so tests may build it to compare with the document. */
export function apiRoutes(deps: ApiDeps, wsStats: () => WsStats | null = () => null): Route[] {
  const routes: Route[] = [
    ...campaignRoutes(deps),
    ...recipientRoutes(deps),
    ...templateRoutes(deps),
    ...segmentRoutes(deps),
    ...importRoutes(deps),
    ...keyRoutes(deps),
    {
      // WebSocket clients now, and how many were closed for being too slow: for operators watching dashboards' load.
      name: 'getWsClients',
      method: 'get',
      path: '/v1/ws/clients',
      auth: 'read',
      summary: 'WebSocket clients now, slow ones now, and those closed for slowness',
      responses: { 200: '{clients, slow, closed_slow}', 404: 'the WebSocket API is off in this process' },
      handler: async () => {
        const stats = wsStats();
        if (stats === null) throw new HeraldError('NOT_FOUND', 'the WebSocket API is off in this process');
        return { status: 200, body: stats };
      },
    },
    ...userRoutes(deps),
    ...consentRoutes(deps),
    ...dashboardRoutes(),
    ...opsRoutes(deps),
  ];
  routes.push(openApiRoute(routes, OPENAPI_INFO));
  return routes;
}

export function registerRoutes(app: TemplatedApp, deps: ApiDeps, wsStats: () => WsStats | null = () => null): void {
  mountRoutes(app, apiRoutes(deps, wsStats), { authorize: authorizer(deps), maxBodyBytes: deps.maxBodyBytes, log: deps.log });
}

/**
 * The operator's routes, served by every process (`herald serve` and `herald worker`): `GET /healthz`
 * and `GET /metrics` (Prometheus text format, from the process's own registry, src/metrics/).
 */
import { HeraldError } from '../errors.js';
import { bearerOf, bootstrapKeyIndex } from '../domain/api-keys.js';
import type { Route } from './route.js';

/** The registry as the route uses it (src/metrics/herald-metrics.ts). */
export interface MetricsExposition {
  /** the exposition text, series read at scrape time included */
  text(): Promise<string>;
  contentType: string;
}

export interface OpsApiDeps {
  health(): Promise<Record<string, string>>;
  metrics: MetricsExposition;
  /** HERALD_METRICS_KEY: '' leaves `/metrics` public */
  metricsKey: string;
}

/** Only captures `deps` (api/routes.ts builds the table without calling any). */
export function opsRoutes(deps: OpsApiDeps): Route[] {
  return [
    {
      name: 'getHealth',
      method: 'get',
      path: '/healthz',
      auth: 'public',
      summary: 'Whether PostgreSQL, Redis and ClickHouse all answer',
      responses: { 200: '{status: "ok", failing: [], checks}', 503: '{status: "unavailable", failing, checks}' },
      ownErrorBodies: [503],
      handler: async () => {
        const checks = await deps.health();
        const failing = Object.entries(checks)
          .filter(([, v]) => v !== 'ok')
          .map(([k]) => k);
        return {
          status: failing.length === 0 ? 200 : 503,
          body: { status: failing.length === 0 ? 'ok' : 'unavailable', failing, checks },
        };
      },
    },
    {
      name: 'getMetrics',
      method: 'get',
      path: '/metrics',
      // Public unless HERALD_METRICS_KEY is set: the key is checked here, since it is not an API key.
      auth: 'public',
      summary: "This process's Prometheus series (text format 0.0.4); a bearer key when HERALD_METRICS_KEY is set",
      responses: { 200: 'Prometheus text exposition', 401: 'HERALD_METRICS_KEY is set and the bearer key is not it' },
      produces: 'text/plain',
      handler: async (req) => {
        if (deps.metricsKey !== '' && bootstrapKeyIndex(bearerOf(req.headers.authorization) ?? '', [deps.metricsKey]) !== 0) {
          throw new HeraldError('UNAUTHORIZED', 'missing or invalid metrics key (HERALD_METRICS_KEY)', { field: 'authorization' });
        }
        const text = await deps.metrics.text();
        return { status: 200, body: text, headers: { 'content-type': deps.metrics.contentType } };
      },
    },
  ];
}

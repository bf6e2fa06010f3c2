/**
 * The OpenAPI 3.1 document of the route table (route.ts), built once from the same data the routes are
 * registered from. Pure: routes in, a JSON-ready object out.
 */
import { ERROR_CODES } from '../errors.js';
import { SCOPE_SUMMARY, SCOPES } from '../domain/api-keys.js';
import type { Auth, Param, Route } from './route.js';
import { SCHEMA_COMPONENTS } from './schemas.js';

/** A route's security requirement: the scope its key needs (OpenAPI 3.1 lets a bearer scheme list roles). */
function security(auth: Auth): ReadonlyArray<Record<string, string[]>> {
  if (auth === 'public') return [];
  if (auth === 'user') return [{ apiKey: ['read'] }, { userToken: [] }];
  return [{ apiKey: [auth] }];
}

const ERROR_CONTENT = { 'application/json': { schema: { $ref: '#/components/schemas/Error' } } };

/** `/v1/campaigns/:id` → `/v1/campaigns/{id}` */
export function openApiPath(path: string): string {
  return path.replace(/:([A-Za-z0-9_]+)/g, '{$1}');
}

function pathParams(route: Route): Param[] {
  return [...route.path.matchAll(/:([A-Za-z0-9_]+)/g)].map(
    ([, name]) => route.params?.find((p) => p.name === name) ?? { name: name!, description: name!, schema: { type: 'string' } },
  );
}

function responses(route: Route): Record<string, unknown> {
  const all: Record<number, string> = { ...route.responses };
  if (route.body !== undefined) {
    all[400] ??= 'a malformed body or invalid fields: {error, code, field, fields?}';
    all[413] ??= 'the body is past the limit';
  }
  if (route.auth !== 'public') all[401] ??= 'a missing, unknown or revoked key';
  if (route.auth === 'user') all[403] ??= "a key without the read scope, or a user token for another user's inbox";
  else if (route.auth !== 'public') all[403] ??= `a key without the ${route.auth} scope: {error, code: FORBIDDEN, field, scope}`;
  const out: Record<string, unknown> = {};
  for (const [status, description] of Object.entries(all)) {
    const code = Number(status);
    if (code >= 400 && !route.ownErrorBodies?.includes(code)) out[status] = { description, content: ERROR_CONTENT };
    else if (code === 204) out[status] = { description };
    else out[status] = { description, content: { [route.produces ?? 'application/json']: {} } };
  }
  return out;
}

function operation(route: Route): Record<string, unknown> {
  const parameters = [
    ...pathParams(route).map((p) => ({ in: 'path', required: true, ...p })),
    ...(route.query ?? []).map((p) => ({ in: 'query', required: false, ...p })),
  ];
  const op: Record<string, unknown> = {
    operationId: route.name,
    summary: route.summary,
    security: security(route.auth),
    // the scope as a plain field too, for readers and generators that skip security requirements
    'x-scope': route.auth,
  };
  if (parameters.length > 0) op.parameters = parameters;
  if (route.body !== undefined) {
    const { schema, contentTypes, description } = route.body;
    op.requestBody = { required: true, description, content: Object.fromEntries(contentTypes.map((t) => [t, { schema }])) };
  }
  op.responses = responses(route);
  return op;
}

export interface OpenApiOptions {
  title: string;
  /** the document's version: the API's, the `v1` of its paths */
  version: string;
  description: string;
}

export function openApiDocument(routes: readonly Route[], opts: OpenApiOptions): Record<string, unknown> {
  const paths: Record<string, Record<string, unknown>> = {};
  for (const route of routes) (paths[openApiPath(route.path)] ??= {})[route.method] = operation(route);
  return {
    openapi: '3.1.0',
    info: { title: opts.title, version: opts.version, description: opts.description },
    security: security('admin'),
    paths,
    components: {
      securitySchemes: {
        apiKey: {
          type: 'http',
          scheme: 'bearer',
          description:
            'an API key from POST /v1/keys (hk_<id>_<secret>) or one of HERALD_API_KEYS (admin); a route lists the scope it needs: ' +
            SCOPES.map((s) => `${s}: ${SCOPE_SUMMARY[s]}`).join('; '),
        },
        userToken: {
          type: 'http',
          scheme: 'bearer',
          description: "a user token from POST /v1/users/{user_id}/token, for that user's inbox",
        },
      },
      schemas: {
        ...SCHEMA_COMPONENTS,
        Error: {
          type: 'object',
          required: ['error', 'code'],
          properties: {
            error: { type: 'string' },
            code: { enum: Object.keys(ERROR_CODES) },
            field: { type: 'string', description: 'the first offending field' },
            fields: {
              type: 'array',
              description: 'every offending field, when there are several',
              items: { type: 'object', properties: { field: { type: 'string' }, error: { type: 'string' } } },
            },
            status: { type: 'string', description: "on a 409, the campaign's current status" },
            scope: { enum: [...SCOPES], description: 'on a 403, the scope the key lacks' },
          },
        },
      },
    },
  };
}

/** GET /v1/openapi.json, describing `routes` and itself; the document is serialized once. */
export function openApiRoute(routes: readonly Route[], opts: OpenApiOptions): Route {
  const route: Route = {
    name: 'getOpenApi',
    method: 'get',
    path: '/v1/openapi.json',
    // The same document for every caller, naming only what the README already says: public, so client
    // generators and API browsers fetch it without holding a key.
    auth: 'public',
    summary: 'This document',
    responses: { 200: 'the OpenAPI 3.1 document of every HTTP route' },
    handler: async () => reply,
  };
  const reply = { status: 200, body: JSON.stringify(openApiDocument([...routes, route], opts)) };
  return route;
}

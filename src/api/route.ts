/**
 * A route is data: its name (the OpenAPI operationId), method, path, who may call it, what it takes and
 * answers, and its handler. api/http.ts registers a table of them with uWS; api/openapi.ts describes the
 * same table, so the document and the routes served cannot drift apart.
 */
import type { Readable } from 'node:stream';
import type { Access } from '../domain/api-keys.js';
import type { Actor } from '../domain/audit.js';

export type Method = 'get' | 'post' | 'patch' | 'put' | 'delete';

/**
 * Who may call a route: a key with that scope (`read`, `send`, `audience`, `admin`; domain/api-keys.ts);
 * `user`, a `read` key or a user token minted for the path's `:user_id` (domain/tokens.ts); `public`,
 * anyone (the pixel, the dashboard, health).
 */
export type Auth = Access;

/** A JSON Schema (2020-12, as OpenAPI 3.1 uses it). */
export type JsonSchema = Readonly<Record<string, unknown>>;

/** What a handler may use from the request: a plain copy, valid after any await. */
export interface RequestInfo {
  method: string;
  url: string;
  query: URLSearchParams;
  /** path parameters, in the order of the path's `:name`s */
  params: string[];
  headers: { authorization: string; contentType: string; contentEncoding: string; contentLength: number | null };
  /** the client's sane `x-request-id`, else a new one; every answer carries it back */
  requestId: string;
}

/** A request as handlers see it: the copy, and its body read through api/http.ts (limits, 413, aborts). */
export interface ApiRequest extends RequestInfo {
  /** who called (set once the route's auth passed) and the request id: what the audit records */
  readonly actor: Actor;
  /** the JSON body, parsed; `{}` when empty; 413 past HERALD_MAX_BODY_BYTES, 400 naming `body` if malformed */
  json(): Promise<unknown>;
  /** the raw body as a stream with backpressure; 413 past `maxBytes` (at once when content-length says so) */
  stream(maxBytes: number): Readable;
}

export interface Reply {
  status: number;
  body?: unknown;
  headers?: Record<string, string>;
}

export interface Param {
  name: string;
  description: string;
  schema: JsonSchema;
}

export interface RouteBody {
  /** the media types accepted; the first is the usual one */
  contentTypes: readonly string[];
  schema: JsonSchema;
  description: string;
}

export interface Route {
  /** unique; the OpenAPI operationId */
  name: string;
  method: Method;
  /** a uWS pattern: `/v1/campaigns/:id` */
  path: string;
  auth: Auth;
  summary: string;
  /** the path's `:name`s described (any left out are documented as plain strings) */
  params?: readonly Param[];
  query?: readonly Param[];
  body?: RouteBody;
  /** status → what the answer holds; 401 / 403 / 400 / 413 that follow from `auth` and `body` are added */
  responses: Readonly<Record<number, string>>;
  /** statuses of 400 and up whose body is the route's own, not the error object */
  ownErrorBodies?: readonly number[];
  /** the success answer's media type, when it is not JSON */
  produces?: string;
  handler(req: ApiRequest): Promise<Reply>;
}

/**
 * uWebSockets.js plumbing kept in one file: the route table registered in one loop, everything copied
 * out of `req` before the first await, `onAborted` registered before any async work, writes after an
 * await wrapped in `cork`, bodies read with a byte limit (413), and every error answered through the
 * error registry. Handlers (api/*-routes.ts) see only an ApiRequest and return a Reply.
 */
import type { Readable } from 'node:stream';
import type { Logger } from 'pino';
import type { HttpRequest, HttpResponse, TemplatedApp } from 'uWebSockets.js';
import { HeraldError, isHeraldError } from '../errors.js';
import { PUBLIC_CALLER, requestIdFrom, type Actor } from '../domain/audit.js';
import type { Caller } from '../domain/api-keys.js';
import { BodyTap, bodyReadable, type BodySource } from './body-stream.js';
import type { ApiRequest, Auth, Reply, RequestInfo, Route } from './route.js';

const STATUS_TEXT: Record<number, string> = {
  200: '200 OK',
  201: '201 Created',
  204: '204 No Content',
  400: '400 Bad Request',
  401: '401 Unauthorized',
  403: '403 Forbidden',
  404: '404 Not Found',
  405: '405 Method Not Allowed',
  409: '409 Conflict',
  413: '413 Payload Too Large',
  415: '415 Unsupported Media Type',
  500: '500 Internal Server Error',
  502: '502 Bad Gateway',
  503: '503 Service Unavailable',
};

export class ResponseState {
  aborted = false;
  ended = false;
  /** sent back as `x-request-id` with the answer */
  requestId = '';
  /** the body's first chunks, held while the request is authorized */
  tap: BodyTap | null = null;
  // uWS takes one onAborted handler per response: this one, which tells every listener (few requests
  // have one, so the list is made on the first).
  private abortListeners: Array<() => void> | null = null;
  constructor(readonly res: HttpResponse) {
    res.onAborted(() => {
      this.aborted = true;
      for (const listener of this.abortListeners ?? []) listener();
    });
  }

  /** `listener` runs when the client goes away before the answer (at once if it already has). */
  onAbort(listener: () => void): void {
    if (this.aborted) listener();
    else (this.abortListeners ??= []).push(listener);
  }

  send(reply: Reply): void {
    // an answer without reading the body (a 401, 403, 400 …): what it sends is dropped, the socket read on
    this.tap?.release(this.aborted);
    if (this.aborted || this.ended) return;
    this.ended = true;
    const body =
      reply.body === undefined
        ? ''
        : typeof reply.body === 'string' || Buffer.isBuffer(reply.body)
          ? reply.body
          : JSON.stringify(reply.body);
    this.res.cork(() => {
      this.res.writeStatus(STATUS_TEXT[reply.status] ?? String(reply.status));
      if (reply.body !== undefined && !reply.headers?.['content-type']) this.res.writeHeader('content-type', 'application/json');
      const headers = reply.headers;
      if (headers !== undefined) for (const k in headers) this.res.writeHeader(k, headers[k]!);
      if (this.requestId !== '') this.res.writeHeader('x-request-id', this.requestId);
      this.res.end(body as string | Buffer);
    });
  }
}

// Shared by every request without a query string (most of them: the pixel, the inbox); handlers only read it.
const NO_QUERY = new URLSearchParams();

/** The request copied out of uWS at once (`req` is valid only until the first await), with its body readers. */
class CopiedRequest implements ApiRequest {
  readonly method: string;
  readonly url: string;
  readonly query: URLSearchParams;
  readonly params: string[] = [];
  readonly headers: RequestInfo['headers'];
  readonly requestId: string;
  actor: Actor;

  constructor(
    req: HttpRequest,
    paramCount: number,
    private readonly res: BodySource,
    private readonly state: ResponseState,
    private readonly maxBodyBytes: number,
  ) {
    const query = req.getQuery() ?? '';
    for (let i = 0; i < paramCount; i++) this.params.push(req.getParameter(i) ?? '');
    const len = req.getHeader('content-length');
    this.method = req.getCaseSensitiveMethod();
    this.url = req.getUrl();
    this.query = query === '' ? NO_QUERY : new URLSearchParams(query);
    this.headers = {
      authorization: req.getHeader('authorization'),
      contentType: req.getHeader('content-type').toLowerCase(),
      contentEncoding: req.getHeader('content-encoding'),
      contentLength: len === '' ? null : Number(len),
    };
    this.requestId = requestIdFrom(req.getHeader('x-request-id'));
    state.requestId = this.requestId;
    this.actor = { ...PUBLIC_CALLER, requestId: this.requestId };
  }

  /** The caller the route's auth found. */
  calledBy(caller: Caller): void {
    this.actor = { keyId: caller.keyId, keyName: caller.keyName, requestId: this.requestId };
  }

  json(): Promise<unknown> {
    return readJson(this.res, this.state, this, this.maxBodyBytes);
  }

  stream(maxBytes: number): Readable {
    refuseDeclaredLength(this, maxBytes);
    return bodyReadable(this.res, this.state, maxBytes);
  }
}

export function errorReply(err: unknown): Reply {
  if (isHeraldError(err)) {
    const body: Record<string, unknown> = { error: err.message, code: err.code, ...err.details };
    return { status: err.status, body };
  }
  return { status: 500, body: { error: 'internal error', code: 'INTERNAL' } };
}

const tooLarge = (maxBytes: number): HeraldError =>
  new HeraldError('PAYLOAD_TOO_LARGE', `body exceeds ${maxBytes} bytes`, { field: 'body', limit: maxBytes });

/** 413 before a byte is read when the client says its body is past the limit. */
function refuseDeclaredLength(info: RequestInfo, maxBytes: number): void {
  if (info.headers.contentLength !== null && info.headers.contentLength > maxBytes) throw tooLarge(maxBytes);
}

/** Buffers a JSON body up to `maxBytes` and parses it; 413 past the limit, 400 naming `body` if malformed. */
function readJson(res: BodySource, state: ResponseState, info: RequestInfo, maxBytes: number): Promise<unknown> {
  return new Promise((resolve, reject) => {
    refuseDeclaredLength(info, maxBytes);
    const parts: Buffer[] = [];
    let size = 0;
    let failed = false;
    res.onData((ab, isLast) => {
      if (failed || state.aborted) return;
      size += ab.byteLength;
      if (size > maxBytes) {
        failed = true;
        reject(tooLarge(maxBytes));
        return;
      }
      // uWS reuses the ArrayBuffer after this callback: copy it.
      parts.push(Buffer.from(new Uint8Array(ab)));
      if (!isLast) return;
      const text = Buffer.concat(parts).toString('utf8');
      if (text.trim() === '') {
        resolve({});
        return;
      }
      try {
        resolve(JSON.parse(text));
      } catch {
        reject(new HeraldError('BAD_REQUEST', 'body: malformed JSON', { field: 'body' }));
      }
    });
  });
}

/** The answer for a path and method no route serves (test/integration/openapi.test.ts tells it from a route's own 404). */
export const NO_ROUTE: Readonly<Reply> = Object.freeze({ status: 404, body: Object.freeze({ error: 'no such route', code: 'NOT_FOUND' }) });

export interface MountOptions {
  /** the caller, or throws (401, 403, or 400 for a malformed path user) unless it may call a route of this kind */
  authorize(auth: Auth, info: RequestInfo): Promise<Caller>;
  /** the limit of `json()` bodies (HERALD_MAX_BODY_BYTES) */
  maxBodyBytes: number;
  log: Logger;
}

/** Registers every route of the table, and a JSON 404 for any other path or method. */
export function mountRoutes(app: TemplatedApp, routes: readonly Route[], opts: MountOptions): void {
  for (const route of routes) {
    const paramCount = (route.path.match(/:/g) ?? []).length;
    const { auth, handler } = route;
    const holdsBody = auth !== 'public' && route.method !== 'get';
    // uWS names DELETE's method `del`
    app[route.method === 'delete' ? 'del' : route.method](route.path, (res: HttpResponse, req: HttpRequest) => {
      const state = new ResponseState(res);
      // The handler of a route that takes a credential reads the body after an await: held until then.
      if (holdsBody) state.tap = new BodyTap(res);
      const request = new CopiedRequest(req, paramCount, state.tap ?? res, state, opts.maxBodyBytes);
      const run = async (): Promise<Reply> => {
        // public routes (the pixel: the hottest) take no credential and wait for nothing
        if (auth !== 'public') request.calledBy(await opts.authorize(auth, request));
        return handler(request);
      };
      run().then(
        (reply) => state.send(reply),
        (err: unknown) => {
          const reply = errorReply(err);
          if (reply.status >= 500) opts.log.error({ err, url: request.url }, 'request failed');
          // A 413 can come while the client is still sending: close after answering.
          if (reply.status === 413) reply.headers = { connection: 'close' };
          state.send(reply);
        },
      );
    });
  }

  app.any('/*', (res, req) => {
    const state = new ResponseState(res);
    state.requestId = requestIdFrom(req.getHeader('x-request-id'));
    state.send(NO_ROUTE);
  });
}

/**
 * uWebSockets.js plumbing kept in one file: everything copied out of `req` before the first await,
 * `onAborted` registered before any async work, writes after an await wrapped in `cork`, JSON bodies
 * read with a byte limit, and every error answered through the error registry.
 */
import { timingSafeEqual } from 'node:crypto';
import type { HttpRequest, HttpResponse } from 'uWebSockets.js';
import { HeraldError, isHeraldError } from '../errors.js';

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

/** What a handler may use from the request: a plain copy, valid after any await. */
export interface RequestInfo {
  method: string;
  url: string;
  query: URLSearchParams;
  params: string[];
  headers: { authorization: string; contentType: string; contentEncoding: string; contentLength: number | null };
}

export interface Reply {
  status: number;
  body?: unknown;
  headers?: Record<string, string>;
}

export class ResponseState {
  aborted = false;
  ended = false;
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
      this.res.end(body as string | Buffer);
    });
  }
}

// Shared by every request without a query string (most of them: the pixel, the inbox); handlers only read it.
const NO_QUERY = new URLSearchParams();

export function copyRequest(req: HttpRequest, paramCount: number): RequestInfo {
  const query = req.getQuery() ?? '';
  const params: string[] = [];
  for (let i = 0; i < paramCount; i++) params.push(req.getParameter(i) ?? '');
  const len = req.getHeader('content-length');
  return {
    method: req.getCaseSensitiveMethod(),
    url: req.getUrl(),
    query: query === '' ? NO_QUERY : new URLSearchParams(query),
    params,
    headers: {
      authorization: req.getHeader('authorization'),
      contentType: req.getHeader('content-type').toLowerCase(),
      contentEncoding: req.getHeader('content-encoding'),
      contentLength: len === '' ? null : Number(len),
    },
  };
}

export function errorReply(err: unknown): Reply {
  if (isHeraldError(err)) {
    const body: Record<string, unknown> = { error: err.message, code: err.code, ...err.details };
    return { status: err.status, body };
  }
  return { status: 500, body: { error: 'internal error', code: 'INTERNAL' } };
}

/** Buffers a JSON body up to `maxBytes` and parses it; 413 past the limit, 400 naming `body` if malformed. */
export function readJson(res: HttpResponse, state: ResponseState, info: RequestInfo, maxBytes: number): Promise<unknown> {
  return new Promise((resolve, reject) => {
    if (info.headers.contentLength !== null && info.headers.contentLength > maxBytes) {
      reject(new HeraldError('PAYLOAD_TOO_LARGE', `body exceeds ${maxBytes} bytes`, { field: 'body', limit: maxBytes }));
      return;
    }
    const parts: Buffer[] = [];
    let size = 0;
    let failed = false;
    res.onData((ab, isLast) => {
      if (failed || state.aborted) return;
      size += ab.byteLength;
      if (size > maxBytes) {
        failed = true;
        reject(new HeraldError('PAYLOAD_TOO_LARGE', `body exceeds ${maxBytes} bytes`, { field: 'body', limit: maxBytes }));
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

export function checkBearer(authorization: string, keys: readonly string[]): boolean {
  const m = /^Bearer\s+(.+)$/i.exec(authorization);
  if (m === null) return false;
  const given = Buffer.from(m[1]!.trim());
  let ok = false;
  for (const k of keys) {
    const key = Buffer.from(k);
    // compare every key, in constant time per key, so timing does not reveal which prefix matched
    if (key.length === given.length && timingSafeEqual(key, given)) ok = true;
  }
  return ok;
}

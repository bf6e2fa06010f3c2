/**
 * The command line's client of a running Herald: JSON calls, a streamed upload and the WebSocket API, over
 * undici. Every failure becomes a CliError with a message a user can act on: the server unreachable,
 * or the API's own error body (`{error, code, field, fields}`) with its status.
 */
import type { Readable } from 'node:stream';
import type * as Undici from 'undici';
import type { WebSocket } from 'undici';

/** undici is loaded on the first call: `--help`, bad flags and the server commands never need it (~0.2 s). */
let undici: Promise<typeof Undici> | null = null;
const loadUndici = (): Promise<typeof Undici> => (undici ??= import('undici'));

/** A failure the command line reports in one message and ends on with `exitCode`. */
export class CliError extends Error {
  constructor(
    message: string,
    readonly exitCode = 1,
    /** what --json prints on stderr */
    readonly body: unknown = null,
  ) {
    super(message);
  }
}

export interface ClientOptions {
  /** the server's base URL, e.g. `http://127.0.0.1:8080` */
  url: string;
  /** one of the server's HERALD_API_KEYS */
  key: string;
}

interface ApiErrorBody {
  error?: unknown;
  code?: unknown;
  field?: unknown;
  fields?: Array<{ field?: unknown; error?: unknown }>;
  status?: unknown;
}

/** `401 UNAUTHORIZED: missing or invalid bearer key (authorization)`, each bad field on its own line. */
export function apiErrorMessage(method: string, path: string, status: number, body: unknown): string {
  const b = (typeof body === 'object' && body !== null ? body : {}) as ApiErrorBody;
  const head = `${method} ${path}: ${status}${typeof b.code === 'string' ? ` ${b.code}` : ''}`;
  if (typeof b.error !== 'string') return `${head}${typeof body === 'string' && body !== '' ? `: ${body.slice(0, 300)}` : ''}`;
  let msg = `${head}: ${b.error}`;
  if (Array.isArray(b.fields) && b.fields.length > 1) msg += b.fields.map((f) => `\n  ${String(f.field)}: ${String(f.error)}`).join('');
  else if (typeof b.field === 'string' && !b.error.includes(b.field)) msg += ` (${b.field})`;
  if (typeof b.status === 'string') msg += ` [campaign is ${b.status}]`;
  return msg;
}

function unreachable(url: string, err: unknown): CliError {
  const e = err as { code?: string; cause?: { code?: string; message?: string }; message?: string };
  const code = e.code ?? e.cause?.code;
  const why = code === 'ECONNREFUSED' ? 'connection refused' : (e.cause?.message ?? e.message ?? String(err));
  return new CliError(`cannot reach Herald at ${url}: ${why} (is \`herald serve\` running? --url or HERALD_URL names the server)`);
}

export class HeraldClient {
  private readonly base: string;

  constructor(readonly opts: ClientOptions) {
    let u: URL;
    try {
      u = new URL(opts.url);
    } catch {
      throw new CliError(`--url: not a URL: ${JSON.stringify(opts.url)}`, 2);
    }
    if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new CliError(`--url: must be http:// or https://, not ${u.protocol}`, 2);
    this.base = u.toString().replace(/\/+$/, '');
  }

  private headers(extra: Record<string, string> = {}): Record<string, string> {
    return { authorization: `Bearer ${this.opts.key}`, ...extra };
  }

  /** A JSON call; the parsed answer of a 2xx, else a CliError with the API's error. */
  async call<T = Record<string, unknown>>(method: string, path: string, body?: unknown): Promise<T> {
    return (await this.send(method, path, body === undefined ? undefined : JSON.stringify(body), { 'content-type': 'application/json' }))
      .body as T;
  }

  /** Streams `body` as the request body (an import); answers the status (200 or 202) and the parsed body. */
  upload(path: string, body: Readable, headers: Record<string, string>): Promise<{ status: number; body: Record<string, unknown> }> {
    return this.send('POST', path, body, headers) as Promise<{ status: number; body: Record<string, unknown> }>;
  }

  private async send(
    method: string,
    path: string,
    body: string | Readable | undefined,
    headers: Record<string, string>,
  ): Promise<{ status: number; body: unknown }> {
    const { request } = await loadUndici();
    let res: Awaited<ReturnType<typeof request>>;
    try {
      res = await request(`${this.base}${path}`, {
        method: method as 'GET',
        headers: this.headers(body === undefined ? {} : headers),
        body,
        // An import's answer comes once its body is staged, within seconds of the last byte.
        headersTimeout: 600_000,
        bodyTimeout: 600_000,
      });
    } catch (err) {
      throw unreachable(this.base, err);
    }
    const text = await res.body.text();
    let parsed: unknown = text;
    try {
      parsed = text === '' ? null : JSON.parse(text);
    } catch {
      // not JSON: kept as text for the message
    }
    if (res.statusCode >= 400) throw new CliError(apiErrorMessage(method, path, res.statusCode, parsed), 1, parsed);
    return { status: res.statusCode, body: parsed };
  }

  /** Opens `GET /v1/ws?format=msgpack` with the key as a bearer header; resolves once it is open. */
  async openWs(): Promise<WebSocket> {
    const { WebSocket } = await loadUndici();
    const url = `${this.base.replace(/^http/, 'ws')}/v1/ws?format=msgpack`;
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(url, { headers: this.headers() });
      ws.binaryType = 'arraybuffer';
      const onError = (): void => reject(new CliError(`cannot open the WebSocket at ${url} (refused, or the key is not accepted)`));
      ws.addEventListener('error', onError, { once: true });
      ws.addEventListener(
        'open',
        () => {
          ws.removeEventListener('error', onError);
          resolve(ws);
        },
        { once: true },
      );
    });
  }
}

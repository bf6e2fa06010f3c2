/**
 * GET /v1/ws: the WebSocket API. Upgrades need a key with the `read` scope (bearer header) or a connect
 * token in the query string (`?token=`, from POST /v1/ws/token); others get 401 (403 naming `read` for a
 * key without it) and no socket. Clients send
 * `{"subscribe": "<id>" | "*"}` / `{"unsubscribe": …}`; a bad message gets an error frame and the
 * connection stays. `?format=msgpack` makes every frame a binary msgpack one.
 * Slow clients: uWS skips a socket whose send buffer is past HERALD_WS_MAX_BACKPRESSURE, so frames meant
 * for it are dropped, not queued; when it drains it gets the latest frame of each campaign it watches;
 * one that stays past the limit for HERALD_WS_SLOW_CLOSE_MS is closed with a reason (4008), and dropped if
 * it has not taken the close frame after as long again. GET /v1/ws/clients counts them (wsStats()).
 */
import uWS, { type TemplatedApp, type WebSocket } from 'uWebSockets.js';
import type { Logger } from 'pino';
import { verifyWsToken } from '../domain/tokens.js';
import { hasScope, type Credential } from '../domain/api-keys.js';
import { requestIdFrom } from '../domain/audit.js';
import type { WsMetrics } from '../domain/metrics.js';
import { encodeFrame, parseClientMessage, type FrameFormat } from './frame.js';
import { campaignTopic, type ProgressHub } from './progress-hub.js';
import { importTopic, type ImportHub } from './import-hub.js';

export interface WsOptions {
  /** an Authorization header's credential (the HTTP API's key verifier, handed over by main.ts) */
  authenticate(authorization: string): Promise<Credential>;
  tokenSecret: string;
  maxBackpressure: number;
  slowCloseMs: number;
  log: Logger;
  /** counts clients gone, and why; default: none */
  metrics?: WsMetrics;
}

interface Client {
  format: FrameFormat;
  subs: Set<number | '*'>;
  /** import jobs it watches */
  imports: Set<number>;
  closed: boolean;
  /** since when its buffer has been past the limit (0: it is not) */
  slowSince: number;
  /** frames may have been skipped since it last caught up: it gets the latest ones when it drains */
  missed: boolean;
  /** since when it is being closed for being slow (0: it is not) */
  endingSince: number;
  /** the 4008 close frame is queued (it waits until the buffer is back under the limit) */
  closeSent: boolean;
}

export interface WsStats {
  clients: number;
  /** clients past the backpressure limit now: their frames are being skipped */
  slow: number;
  /** clients closed for staying slow, since the start */
  closed_slow: number;
}

export interface WsEndpoint {
  close(): void;
  stats(): WsStats;
}

export interface Hubs {
  progress: ProgressHub;
  /** null: import progress is not served here */
  imports: ImportHub | null;
}

/** What an upgrade request gets: a socket in `format`, or an HTTP answer and no socket. */
export type UpgradeVerdict = { ok: true; format: FrameFormat } | { ok: false; status: string; body: Record<string, string> };

/** A `read` key (bearer header) or a live connect token, and a known format; pure, for the upgrade handler. */
export function upgradeVerdict(credential: Credential, query: string, tokenSecret: string, nowSec: number): UpgradeVerdict {
  const q = new URLSearchParams(query);
  const token = q.get('token');
  const byToken = token !== null && verifyWsToken(tokenSecret, token, nowSec);
  if (!byToken && credential.kind !== 'key') {
    return {
      ok: false,
      status: '401 Unauthorized',
      body: { error: 'missing, unknown or revoked API key, or no valid connect token', code: 'UNAUTHORIZED', field: 'authorization' },
    };
  }
  if (!byToken && credential.kind === 'key' && !hasScope(credential.scopes, 'read')) {
    return {
      ok: false,
      status: '403 Forbidden',
      body: { error: 'this key lacks the "read" scope this route needs', code: 'FORBIDDEN', field: 'authorization', scope: 'read' },
    };
  }
  const format = q.get('format') ?? 'json';
  if (format !== 'json' && format !== 'msgpack') {
    return {
      ok: false,
      status: '400 Bad Request',
      body: { error: 'format must be json or msgpack', code: 'BAD_REQUEST', field: 'format' },
    };
  }
  return { ok: true, format };
}

/** How often slow clients are looked for. */
const SLOW_SWEEP_MS = 250;

/** The connected clients and what they watch; each uWS callback is one method. */
class WsClients {
  readonly sockets = new Set<WebSocket<Client>>();
  closedSlow = 0;
  private readonly hub: ProgressHub;
  private readonly importHub: ImportHub | null;
  private readonly reason: string;

  constructor(
    hubs: Hubs,
    private readonly opts: WsOptions,
  ) {
    this.hub = hubs.progress;
    this.importHub = hubs.imports;
    this.reason = `too slow: over ${opts.maxBackpressure} bytes unsent for ${opts.slowCloseMs} ms`;
  }

  send(ws: WebSocket<Client>, frame: object): void {
    const c = ws.getUserData();
    if (c.closed || c.endingSince !== 0) return;
    // 2: dropped, past the backpressure limit
    if (ws.send(encodeFrame(frame as Record<string, unknown>, c.format), c.format === 'msgpack') === 2) {
      c.missed = true;
      if (c.slowSince === 0) c.slowSince = Date.now();
    }
  }

  message(ws: WebSocket<Client>, message: ArrayBuffer): void {
    const msg = parseClientMessage(message);
    if (msg instanceof Error) {
      this.send(ws, { error: msg.message });
      return;
    }
    const on = 'subscribe' in msg;
    const target = on ? msg.subscribe : msg.unsubscribe;
    if (typeof target !== 'object') this.watchCampaign(ws, target, on);
    else if (this.importHub === null) this.send(ws, { error: 'import progress is not served here', import_id: target.importId });
    else this.watchImport(ws, this.importHub, target.importId, on);
  }

  private watchCampaign(ws: WebSocket<Client>, id: number | '*', on: boolean): void {
    const c = ws.getUserData();
    if (!on) {
      if (!c.subs.delete(id)) return;
      this.hub.unsubscribe(id);
      ws.unsubscribe(campaignTopic(id, c.format));
      return;
    }
    if (c.subs.has(id)) return;
    c.subs.add(id);
    this.hub.subscribe(id);
    ws.subscribe(campaignTopic(id, c.format));
    if (id === '*') return;
    this.hub.current(id).then(
      (frame) => this.send(ws, frame ?? { error: `campaign ${id} not found`, campaign_id: id }),
      (err: unknown) => this.send(ws, { error: `progress unavailable: ${(err as Error).message}`, campaign_id: id }),
    );
  }

  private watchImport(ws: WebSocket<Client>, imports: ImportHub, id: number, on: boolean): void {
    const c = ws.getUserData();
    if (!on) {
      if (c.imports.delete(id)) {
        imports.unsubscribe(id);
        ws.unsubscribe(importTopic(id, c.format));
      }
      return;
    }
    if (c.imports.has(id)) return;
    c.imports.add(id);
    imports.subscribe(id);
    ws.subscribe(importTopic(id, c.format));
    imports.current(id).then(
      (frame) => this.send(ws, frame ?? { error: `import ${id} not found`, import_id: id }),
      (err: unknown) => this.send(ws, { error: `import progress unavailable: ${(err as Error).message}`, import_id: id }),
    );
  }

  drain(ws: WebSocket<Client>): void {
    const c = ws.getUserData();
    if (c.endingSince !== 0) {
      this.closeWhenRoom(ws);
      return;
    }
    // Topic frames are skipped by uWS without telling: a buffer seen this full may have lost some.
    if (ws.getBufferedAmount() > this.opts.maxBackpressure / 2) {
      c.missed = true;
      return;
    }
    c.slowSince = 0;
    // The latest frame of each campaign it watches replaces the ones it missed.
    if (c.missed) {
      c.missed = false;
      for (const frame of this.hub.latestOf(c.subs)) this.send(ws, frame);
      for (const frame of this.importHub?.latestOf(c.imports) ?? []) this.send(ws, frame);
    }
  }

  close(ws: WebSocket<Client>): void {
    const c = ws.getUserData();
    c.closed = true;
    this.opts.metrics?.wsClosed(c.endingSince !== 0 ? 'slow' : 'other');
    this.sockets.delete(ws);
    for (const id of c.subs) this.hub.unsubscribe(id);
    c.subs.clear();
    for (const id of c.imports) this.importHub?.unsubscribe(id);
    c.imports.clear();
  }

  // uWS drops any frame, the close frame too, sent while the buffer is past the limit: the close frame
  // waits until the client has read enough for it to fit.
  private closeWhenRoom(ws: WebSocket<Client>): void {
    const c = ws.getUserData();
    if (c.closeSent || ws.getBufferedAmount() > this.opts.maxBackpressure) return;
    c.closeSent = true;
    ws.end(4008, this.reason);
  }

  private beginClose(ws: WebSocket<Client>, now: number): void {
    const c = ws.getUserData();
    this.opts.log.warn({ buffered: ws.getBufferedAmount() }, 'closing a WebSocket client that stays too slow');
    c.endingSince = now;
    this.closedSlow++;
    // Nothing more for it but the close frame.
    for (const id of c.subs) ws.unsubscribe(campaignTopic(id, c.format));
    for (const id of c.imports) ws.unsubscribe(importTopic(id, c.format));
    this.closeWhenRoom(ws);
  }

  /** Slow clients: noted when past the limit, closed when they stay there. */
  sweepSlow(now: number): void {
    for (const ws of this.sockets) {
      const c = ws.getUserData();
      if (c.endingSince !== 0) {
        // One that does not even read its close frame within as long again is dropped.
        if (now - c.endingSince > this.opts.slowCloseMs) ws.close();
        else this.closeWhenRoom(ws);
        continue;
      }
      // uWS drops what would pass the limit, so a slow client's buffer sits just under it: half is slow.
      if (ws.getBufferedAmount() < this.opts.maxBackpressure / 2) {
        c.slowSince = 0;
        continue;
      }
      c.missed = true;
      if (c.slowSince === 0) c.slowSince = now;
      else if (now - c.slowSince > this.opts.slowCloseMs) this.beginClose(ws, now);
    }
  }

  stats(): WsStats {
    let slow = 0;
    for (const ws of this.sockets) if (ws.getUserData().slowSince !== 0) slow++;
    return { clients: this.sockets.size, slow, closed_slow: this.closedSlow };
  }
}

export function registerWebSocket(app: TemplatedApp, hubs: Hubs, opts: WsOptions): WsEndpoint {
  const clients = new WsClients(hubs, opts);
  app.ws<Client>('/v1/ws', {
    compression: uWS.DISABLED,
    maxPayloadLength: 16 * 1024,
    idleTimeout: 120,
    sendPingsAutomatically: true,
    maxBackpressure: opts.maxBackpressure,
    closeOnBackpressureLimit: false,
    upgrade: (res, req, context) => {
      // req is valid only until the first await or return: everything is read from it here
      const key = req.getHeader('sec-websocket-key');
      const protocol = req.getHeader('sec-websocket-protocol');
      const extensions = req.getHeader('sec-websocket-extensions');
      const authorization = req.getHeader('authorization');
      const query = req.getQuery() ?? '';
      const requestId = requestIdFrom(req.getHeader('x-request-id'));
      let aborted = false;
      res.onAborted(() => (aborted = true));
      const answer = (status: string, body: Record<string, string>): void => {
        res.cork(() => {
          res.writeStatus(status).writeHeader('content-type', 'application/json').writeHeader('x-request-id', requestId);
          res.end(JSON.stringify(body));
        });
      };
      // A key looked up in PostgreSQL (a cache miss) answers after an await: uWS then wants onAborted and
      // cork. No header (a browser with a connect token) is known at once.
      opts.authenticate(authorization).then(
        (credential) => {
          if (aborted) return;
          const verdict = upgradeVerdict(credential, query, opts.tokenSecret, Math.floor(Date.now() / 1000));
          if (!verdict.ok) {
            answer(verdict.status, verdict.body);
            return;
          }
          const client: Client = {
            format: verdict.format,
            subs: new Set(),
            imports: new Set(),
            closed: false,
            slowSince: 0,
            missed: false,
            endingSince: 0,
            closeSent: false,
          };
          res.cork(() => res.upgrade<Client>(client, key, protocol, extensions, context));
        },
        (err: unknown) => {
          if (aborted) return;
          opts.log.error({ err }, 'WebSocket upgrade: key check failed');
          answer('503 Service Unavailable', { error: 'the key could not be checked', code: 'DEPENDENCY_UNAVAILABLE' });
        },
      );
    },
    open: (ws) => {
      clients.sockets.add(ws);
    },
    message: (ws, message) => clients.message(ws, message),
    drain: (ws) => clients.drain(ws),
    close: (ws) => clients.close(ws),
  });
  const timer = setInterval(() => clients.sweepSlow(Date.now()), SLOW_SWEEP_MS);
  return {
    close: () => {
      clearInterval(timer);
      for (const ws of [...clients.sockets]) ws.end(1001, 'server shutting down');
    },
    stats: () => clients.stats(),
  };
}

/**
 * GET /v1/ws: the WebSocket API. Upgrades need the admin key (bearer header) or a connect token in the
 * query string (`?token=`, from POST /v1/ws/token); others get 401 and no socket. Clients send
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
import { checkBearer } from '../domain/bearer.js';
import { encodeFrame, parseClientMessage, type FrameFormat } from './frame.js';
import { campaignTopic, type ProgressHub } from './progress-hub.js';
import { importTopic, type ImportHub } from './import-hub.js';

export interface WsOptions {
  apiKeys: readonly string[];
  tokenSecret: string;
  maxBackpressure: number;
  slowCloseMs: number;
  log: Logger;
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

export function registerWebSocket(app: TemplatedApp, hubs: Hubs, opts: WsOptions): WsEndpoint {
  const hub = hubs.progress;
  const importHub = hubs.imports;
  const sockets = new Set<WebSocket<Client>>();
  let closedSlow = 0;
  const send = (ws: WebSocket<Client>, frame: object): void => {
    const c = ws.getUserData();
    if (c.closed || c.endingSince !== 0) return;
    // 2: dropped, past the backpressure limit
    if (ws.send(encodeFrame(frame as Record<string, unknown>, c.format), c.format === 'msgpack') === 2) {
      c.missed = true;
      if (c.slowSince === 0) c.slowSince = Date.now();
    }
  };

  app.ws<Client>('/v1/ws', {
    compression: uWS.DISABLED,
    maxPayloadLength: 16 * 1024,
    idleTimeout: 120,
    sendPingsAutomatically: true,
    maxBackpressure: opts.maxBackpressure,
    closeOnBackpressureLimit: false,
    upgrade: (res, req, context) => {
      const key = req.getHeader('sec-websocket-key');
      const protocol = req.getHeader('sec-websocket-protocol');
      const extensions = req.getHeader('sec-websocket-extensions');
      const query = new URLSearchParams(req.getQuery() ?? '');
      const token = query.get('token');
      const authorized =
        checkBearer(req.getHeader('authorization'), opts.apiKeys) ||
        (token !== null && verifyWsToken(opts.tokenSecret, token, Math.floor(Date.now() / 1000)));
      const format = query.get('format') ?? 'json';
      if (!authorized || (format !== 'json' && format !== 'msgpack')) {
        const [status, body] = authorized
          ? ['400 Bad Request', { error: 'format must be json or msgpack', code: 'BAD_REQUEST', field: 'format' }]
          : ['401 Unauthorized', { error: 'missing or invalid admin key or connect token', code: 'UNAUTHORIZED', field: 'authorization' }];
        res.cork(() => res.writeStatus(status).writeHeader('content-type', 'application/json').end(JSON.stringify(body)));
        return;
      }
      res.upgrade<Client>(
        { format, subs: new Set(), imports: new Set(), closed: false, slowSince: 0, missed: false, endingSince: 0, closeSent: false },
        key,
        protocol,
        extensions,
        context,
      );
    },
    open: (ws) => {
      sockets.add(ws);
    },
    message: (ws, message) => {
      const c = ws.getUserData();
      const msg = parseClientMessage(message);
      if (msg instanceof Error) {
        send(ws, { error: msg.message });
        return;
      }
      const target = 'subscribe' in msg ? msg.subscribe : msg.unsubscribe;
      if (typeof target === 'object') {
        if (importHub === null) send(ws, { error: 'import progress is not served here', import_id: target.importId });
        else watchImport(ws, importHub, target.importId, 'subscribe' in msg);
        return;
      }
      if ('subscribe' in msg) {
        const id = target;
        if (c.subs.has(id)) return;
        c.subs.add(id);
        hub.subscribe(id);
        ws.subscribe(campaignTopic(id, c.format));
        if (id !== '*') {
          hub.current(id).then(
            (frame) => send(ws, frame ?? { error: `campaign ${id} not found`, campaign_id: id }),
            (err: unknown) => send(ws, { error: `progress unavailable: ${(err as Error).message}`, campaign_id: id }),
          );
        }
      } else {
        const id = target;
        if (!c.subs.delete(id)) return;
        hub.unsubscribe(id);
        ws.unsubscribe(campaignTopic(id, c.format));
      }
    },
    drain: (ws) => {
      const c = ws.getUserData();
      if (c.endingSince !== 0) {
        closeWhenRoom(ws);
        return;
      }
      // Topic frames are skipped by uWS without telling: a buffer seen this full may have lost some.
      if (ws.getBufferedAmount() > opts.maxBackpressure / 2) {
        c.missed = true;
        return;
      }
      c.slowSince = 0;
      // The latest frame of each campaign it watches replaces the ones it missed.
      if (c.missed) {
        c.missed = false;
        for (const frame of hub.latestOf(c.subs)) send(ws, frame);
        for (const frame of importHub?.latestOf(c.imports) ?? []) send(ws, frame);
      }
    },
    close: (ws) => {
      const c = ws.getUserData();
      c.closed = true;
      sockets.delete(ws);
      for (const id of c.subs) hub.unsubscribe(id);
      c.subs.clear();
      for (const id of c.imports) importHub?.unsubscribe(id);
      c.imports.clear();
    },
  });

  const watchImport = (ws: WebSocket<Client>, imports: ImportHub, id: number, on: boolean): void => {
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
      (frame) => send(ws, frame ?? { error: `import ${id} not found`, import_id: id }),
      (err: unknown) => send(ws, { error: `import progress unavailable: ${(err as Error).message}`, import_id: id }),
    );
  };

  const reason = `too slow: over ${opts.maxBackpressure} bytes unsent for ${opts.slowCloseMs} ms`;
  // uWS drops any frame, the close frame too, sent while the buffer is past the limit: the close frame
  // waits until the client has read enough for it to fit.
  const closeWhenRoom = (ws: WebSocket<Client>): void => {
    const c = ws.getUserData();
    if (c.closeSent || ws.getBufferedAmount() > opts.maxBackpressure) return;
    c.closeSent = true;
    ws.end(4008, reason);
  };
  const beginClose = (ws: WebSocket<Client>, now: number): void => {
    const c = ws.getUserData();
    opts.log.warn({ buffered: ws.getBufferedAmount() }, 'closing a WebSocket client that stays too slow');
    c.endingSince = now;
    closedSlow++;
    // Nothing more for it but the close frame.
    for (const id of c.subs) ws.unsubscribe(campaignTopic(id, c.format));
    for (const id of c.imports) ws.unsubscribe(importTopic(id, c.format));
    closeWhenRoom(ws);
  };

  // Slow clients: noted when past the limit, closed when they stay there.
  const timer = setInterval(() => {
    const now = Date.now();
    for (const ws of sockets) {
      const c = ws.getUserData();
      if (c.endingSince !== 0) {
        // One that does not even read its close frame within as long again is dropped.
        if (now - c.endingSince > opts.slowCloseMs) ws.close();
        else closeWhenRoom(ws);
        continue;
      }
      // uWS drops what would pass the limit, so a slow client's buffer sits just under it: half is slow.
      if (ws.getBufferedAmount() < opts.maxBackpressure / 2) {
        c.slowSince = 0;
        continue;
      }
      c.missed = true;
      if (c.slowSince === 0) c.slowSince = now;
      else if (now - c.slowSince > opts.slowCloseMs) beginClose(ws, now);
    }
  }, 250);

  return {
    close: () => {
      clearInterval(timer);
      for (const ws of [...sockets]) ws.end(1001, 'server shutting down');
    },
    stats: () => {
      let slow = 0;
      for (const ws of sockets) if (ws.getUserData().slowSince !== 0) slow++;
      return { clients: sockets.size, slow, closed_slow: closedSlow };
    },
  };
}

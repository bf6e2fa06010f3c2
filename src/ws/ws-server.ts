/**
 * GET /v1/ws: the WebSocket API. Upgrades need the admin key (bearer header) or a connect token in the
 * query string (`?token=`, from POST /v1/ws/token); others get 401 and no socket. Clients send
 * `{"subscribe": "<id>" | "*"}` / `{"unsubscribe": …}`; a bad message gets an error frame and the
 * connection stays. `?format=msgpack` makes every frame a binary msgpack one.
 * Slow clients: uWS skips a socket whose send buffer is past HERALD_WS_MAX_BACKPRESSURE, so frames meant
 * for it are dropped, not queued; when it drains it gets the latest frame of each campaign it watches;
 * one that stays past the limit for HERALD_WS_SLOW_CLOSE_MS is closed with a reason (4008), and dropped a
 * second later if it does not even take the close frame.
 */
import uWS, { type TemplatedApp, type WebSocket } from 'uWebSockets.js';
import type { Logger } from 'pino';
import { verifyWsToken } from '../domain/tokens.js';
import { checkBearer } from '../api/http.js';
import { encodeFrame, parseClientMessage, type FrameFormat } from './frame.js';
import { campaignTopic, type ProgressHub } from './progress-hub.js';

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
  closed: boolean;
  /** since when its buffer has been past the limit (0: it is not) */
  slowSince: number;
  /** since when it has been asked to close for being slow (0: it has not) */
  endingSince: number;
}

export function registerWebSocket(app: TemplatedApp, hub: ProgressHub, opts: WsOptions): { close(): void; clients(): number } {
  const sockets = new Set<WebSocket<Client>>();
  const send = (ws: WebSocket<Client>, frame: object): void => {
    const c = ws.getUserData();
    if (c.closed) return;
    // 2: dropped, past the backpressure limit
    if (ws.send(encodeFrame(frame as Record<string, unknown>, c.format), c.format === 'msgpack') === 2 && c.slowSince === 0)
      c.slowSince = Date.now();
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
      res.upgrade<Client>({ format, subs: new Set(), closed: false, slowSince: 0, endingSince: 0 }, key, protocol, extensions, context);
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
      if ('subscribe' in msg) {
        const id = msg.subscribe;
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
        const id = msg.unsubscribe;
        if (!c.subs.delete(id)) return;
        hub.unsubscribe(id);
        ws.unsubscribe(campaignTopic(id, c.format));
      }
    },
    drain: (ws) => {
      const c = ws.getUserData();
      if (ws.getBufferedAmount() > opts.maxBackpressure / 2) return;
      // Frames were skipped while it was slow: the latest of each campaign it watches replaces them.
      if (c.slowSince !== 0) {
        c.slowSince = 0;
        for (const frame of hub.latestOf([...c.subs].filter((s): s is number => s !== '*'))) send(ws, frame);
      }
    },
    close: (ws) => {
      const c = ws.getUserData();
      c.closed = true;
      sockets.delete(ws);
      for (const id of c.subs) hub.unsubscribe(id);
      c.subs.clear();
    },
  });

  // Slow clients: noted when past the limit, closed when they stay there.
  const timer = setInterval(() => {
    const now = Date.now();
    for (const ws of sockets) {
      const c = ws.getUserData();
      // uWS drops what would pass the limit, so a slow client's buffer sits just under it: half is slow.
      if (ws.getBufferedAmount() < opts.maxBackpressure / 2) {
        if (c.endingSince === 0) c.slowSince = 0;
        continue;
      }
      if (c.slowSince === 0) c.slowSince = now;
      else if (c.endingSince !== 0 && now - c.endingSince > 1_000) {
        // It did not even take the close frame: drop the connection.
        ws.close();
      } else if (c.endingSince === 0 && now - c.slowSince > opts.slowCloseMs) {
        opts.log.warn({ buffered: ws.getBufferedAmount() }, 'closing a WebSocket client that stays too slow');
        c.endingSince = now;
        ws.end(4008, `too slow: over ${opts.maxBackpressure} bytes unsent for ${opts.slowCloseMs} ms`);
      }
    }
  }, 250);

  return {
    close: () => {
      clearInterval(timer);
      for (const ws of [...sockets]) ws.end(1001, 'server shutting down');
    },
    clients: () => sockets.size,
  };
}

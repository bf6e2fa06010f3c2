/** Starts and stops the uWebSockets.js app: the HTTP route table, and the WebSocket API when it is on. */
import uWS, { type TemplatedApp } from 'uWebSockets.js';
import type { Logger } from 'pino';
import { authorizer } from './auth.js';
import { mountRoutes } from './http.js';
import { healthRoute, registerRoutes, type ApiDeps } from './routes.js';
import type { ProgressHub } from '../ws/progress-hub.js';
import type { WsStats } from '../ws/ws-server.js';

export interface ApiServer {
  port: number;
  /** live progress (null when the WebSocket API is off) */
  hub: ProgressHub | null;
  /** null when the WebSocket API is off */
  wsStats(): WsStats | null;
  close(): Promise<void>;
}

/** The WebSocket API as mounted on the app (ws/ws-api.ts). */
export interface MountedWs {
  hub: ProgressHub;
  stats(): WsStats;
  /** ends every socket and stops the hubs */
  close(): Promise<void>;
}

export interface ApiOptions {
  host: string;
  /** 0: any free port */
  port: number;
  deps: ApiDeps;
  /** mounts the WebSocket API on the same app before the routes; absent: it is off */
  mountWs?: (app: TemplatedApp) => Promise<MountedWs>;
}

export async function startApi(opts: ApiOptions): Promise<ApiServer> {
  const app = uWS.App();
  const ws = opts.mountWs === undefined ? null : await opts.mountWs(app);
  const wsStats = (): WsStats | null => ws?.stats() ?? null;
  registerRoutes(app, opts.deps, wsStats);
  return listen(app, opts.host, opts.port, ws);
}

export interface HealthApiOptions {
  host: string;
  /** 0: any free port */
  port: number;
  health(): Promise<Record<string, string>>;
  log: Logger;
}

/** The dispatcher-only process's server (`herald worker`): `/healthz` and nothing of the API. */
export async function startHealthApi(opts: HealthApiOptions): Promise<ApiServer> {
  const app = uWS.App();
  mountRoutes(app, [healthRoute(opts.health)], {
    authorize: authorizer({ authenticate: () => Promise.reject(new Error('a worker serves no keyed route')), tokenSecret: '' }),
    maxBodyBytes: 0,
    log: opts.log,
  });
  return listen(app, opts.host, opts.port, null);
}

function listen(app: TemplatedApp, host: string, port: number, ws: MountedWs | null): Promise<ApiServer> {
  return new Promise((resolve, reject) => {
    app.listen(host, port, (socket) => {
      if (!socket) {
        reject(new Error(`cannot listen on ${host}:${port}`));
        return;
      }
      resolve({
        port: uWS.us_socket_local_port(socket),
        hub: ws?.hub ?? null,
        wsStats: () => ws?.stats() ?? null,
        close: async () => {
          uWS.us_listen_socket_close(socket);
          await ws?.close();
          app.close();
        },
      });
    });
  });
}

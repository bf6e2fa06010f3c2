/**
 * Starts and stops the uWebSockets.js app: the HTTP route table, and the WebSocket API when it is on; or,
 * for a worker process, only the operator's routes (`/healthz`, `/metrics`).
 */
import uWS, { type TemplatedApp } from 'uWebSockets.js';
import type { Logger } from 'pino';
import { registerRoutes, type ApiDeps } from './routes.js';
import { authorizer } from './auth.js';
import { mountRoutes } from './http.js';
import { opsRoutes, type OpsApiDeps } from './ops-routes.js';
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
  const { host, port } = opts;
  const app = uWS.App();
  const ws = opts.mountWs === undefined ? null : await opts.mountWs(app);
  const wsStats = (): WsStats | null => ws?.stats() ?? null;
  registerRoutes(app, opts.deps, wsStats);
  const { port: listening, close } = await listen(app, host, port);
  return {
    port: listening,
    hub: ws?.hub ?? null,
    wsStats,
    close: async () => {
      close();
      await ws?.close();
      app.close();
    },
  };
}

export interface OpsApiOptions {
  host: string;
  /** 0: any free port */
  port: number;
  deps: OpsApiDeps & { log: Logger };
}

/** A worker's HTTP listener: `/healthz` and `/metrics`, every other path the JSON 404. */
export async function startOpsApi(opts: OpsApiOptions): Promise<ApiServer> {
  const app = uWS.App();
  // Both routes are public (the metrics key is the route's own): no API key is asked for.
  mountRoutes(app, opsRoutes(opts.deps), {
    authorize: authorizer({ authenticate: () => Promise.reject(new Error('the ops server serves no keyed route')), tokenSecret: '' }),
    maxBodyBytes: 1024,
    log: opts.deps.log,
  });
  const { port, close } = await listen(app, opts.host, opts.port);
  return {
    port,
    hub: null,
    wsStats: () => null,
    close: async () => {
      close();
      app.close();
    },
  };
}

function listen(app: TemplatedApp, host: string, port: number): Promise<{ port: number; close(): void }> {
  return new Promise((resolve, reject) => {
    app.listen(host, port, (socket) => {
      if (!socket) {
        reject(new Error(`cannot listen on ${host}:${port}`));
        return;
      }
      resolve({ port: uWS.us_socket_local_port(socket), close: () => uWS.us_listen_socket_close(socket) });
    });
  });
}

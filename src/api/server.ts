/** Starts and stops the uWebSockets.js app. */
import uWS from 'uWebSockets.js';
import { registerRoutes, type ApiDeps } from './routes.js';
import { ProgressHub, type HubDeps } from '../ws/progress-hub.js';
import { registerWebSocket, type WsEndpoint, type WsOptions, type WsStats } from '../ws/ws-server.js';
import { ImportHub, type ImportHubDeps } from '../ws/import-hub.js';
import type { ImportJob } from '../domain/import-job.js';

export interface ApiServer {
  port: number;
  /** live progress (null when the WebSocket API is off) */
  hub: ProgressHub | null;
  /** null when the WebSocket API is off */
  wsStats(): WsStats | null;
  close(): Promise<void>;
}

export interface WsSetup {
  hub: Omit<HubDeps, 'publish'>;
  /** import job progress; `watch` hears of jobs this process changes */
  imports: Omit<ImportHubDeps, 'publish'> & { watch(fn: (job: ImportJob) => void): void };
  options: WsOptions;
}

export async function startApi(host: string, port: number, deps: ApiDeps, ws: WsSetup | null = null): Promise<ApiServer> {
  const app = uWS.App();
  let hub: ProgressHub | null = null;
  let importHub: ImportHub | null = null;
  let sockets: WsEndpoint | null = null;
  if (ws !== null) {
    const publish = (topic: string, message: string | Buffer, binary: boolean): void => void app.publish(topic, message, binary);
    hub = new ProgressHub({ ...ws.hub, publish });
    importHub = new ImportHub({ ...ws.imports, publish });
    const imports = importHub;
    ws.imports.watch((job) => imports.changed(job));
    sockets = registerWebSocket(app, { progress: hub, imports: importHub }, ws.options);
    await hub.start();
    importHub.start();
  }
  registerRoutes(app, deps, () => sockets?.stats() ?? null);
  return new Promise((resolve, reject) => {
    app.listen(host, port, (socket) => {
      if (!socket) {
        reject(new Error(`cannot listen on ${host}:${port}`));
        return;
      }
      resolve({
        port: uWS.us_socket_local_port(socket),
        hub,
        wsStats: () => sockets?.stats() ?? null,
        close: async () => {
          uWS.us_listen_socket_close(socket);
          sockets?.close();
          await hub?.stop();
          await importHub?.stop();
          app.close();
        },
      });
    });
  });
}

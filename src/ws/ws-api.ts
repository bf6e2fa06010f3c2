/**
 * The WebSocket API mounted on the app the HTTP routes share: the progress and import hubs, publishing
 * to the app's topics, and GET /v1/ws (ws-server.ts). The composition root hands this to api/server.ts,
 * so neither stage imports the other.
 */
import type { TemplatedApp } from 'uWebSockets.js';
import type { ImportJob } from '../domain/import-job.js';
import { ImportHub, type ImportHubDeps } from './import-hub.js';
import { ProgressHub, type HubDeps } from './progress-hub.js';
import { registerWebSocket, type WsOptions, type WsStats } from './ws-server.js';

export interface WsSetup {
  hub: Omit<HubDeps, 'publish'>;
  /** import job progress; `watch` hears of jobs this process changes */
  imports: Omit<ImportHubDeps, 'publish'> & { watch(fn: (job: ImportJob) => void): void };
  options: WsOptions;
}

export interface WsApi {
  hub: ProgressHub;
  stats(): WsStats;
  close(): Promise<void>;
}

export async function mountWebSocketApi(app: TemplatedApp, ws: WsSetup): Promise<WsApi> {
  const publish = (topic: string, message: string | Buffer, binary: boolean): void => void app.publish(topic, message, binary);
  const hub = new ProgressHub({ ...ws.hub, publish });
  const importHub = new ImportHub({ ...ws.imports, publish });
  ws.imports.watch((job) => importHub.changed(job));
  const sockets = registerWebSocket(app, { progress: hub, imports: importHub }, ws.options);
  await hub.start();
  importHub.start();
  return {
    hub,
    stats: () => sockets.stats(),
    close: async () => {
      sockets.close();
      await hub.stop();
      await importHub.stop();
    },
  };
}

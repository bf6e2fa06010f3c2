/** Starts and stops the uWebSockets.js app. */
import uWS from 'uWebSockets.js';
import { registerRoutes, type ApiDeps } from './routes.js';

export interface ApiServer {
  port: number;
  close(): void;
}

export function startApi(host: string, port: number, deps: ApiDeps): Promise<ApiServer> {
  const app = uWS.App();
  registerRoutes(app, deps);
  return new Promise((resolve, reject) => {
    app.listen(host, port, (socket) => {
      if (!socket) {
        reject(new Error(`cannot listen on ${host}:${port}`));
        return;
      }
      resolve({
        port: uWS.us_socket_local_port(socket),
        close: () => {
          uWS.us_listen_socket_close(socket);
          app.close();
        },
      });
    });
  });
}

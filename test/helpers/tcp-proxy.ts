/**
 * A loopback TCP proxy for outage tests: Herald connects through it to a real service, and the test
 * cuts the link (every open connection reset, new ones refused at once) and restores it.
 */
import net from 'node:net';

export interface TcpProxy {
  port: number;
  url(base: string): string;
  cut(): void;
  restore(): void;
  close(): Promise<void>;
}

export async function startProxy(targetHost: string, targetPort: number): Promise<TcpProxy> {
  let down = false;
  const sockets = new Set<net.Socket>();
  const server = net.createServer((client) => {
    if (down) {
      client.resetAndDestroy();
      return;
    }
    const upstream = net.connect(targetPort, targetHost);
    sockets.add(client);
    sockets.add(upstream);
    const drop = (): void => {
      sockets.delete(client);
      sockets.delete(upstream);
      client.destroy();
      upstream.destroy();
    };
    client.on('error', drop).on('close', drop);
    upstream.on('error', drop).on('close', drop);
    client.pipe(upstream);
    upstream.pipe(client);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as net.AddressInfo).port;
  return {
    port,
    url(base: string): string {
      const u = new URL(base);
      u.hostname = '127.0.0.1';
      u.port = String(port);
      return u.toString();
    },
    cut(): void {
      down = true;
      for (const s of sockets) s.resetAndDestroy();
      sockets.clear();
    },
    restore(): void {
      down = false;
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

/**
 * Starts a proxy in front of the real service a config URL names, and returns that URL rewritten to go
 * through it (the database path and credentials kept).
 */
export async function proxyFor(serviceUrl: string, defaultPort: number): Promise<{ proxy: TcpProxy; url: string }> {
  const u = new URL(serviceUrl);
  const proxy = await startProxy(u.hostname, Number(u.port || defaultPort));
  return { proxy, url: proxy.url(serviceUrl) };
}

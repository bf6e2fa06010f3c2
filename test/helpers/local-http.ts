import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

/** Starts `server` on a free loopback port; returns its URL with `path` (the webhook receivers' address). */
export async function listenLocal(server: Server, path = '/hook'): Promise<string> {
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}${path}`;
}

/**
 * A webhook receiver that answers 200 (after `latencyMs`) and rejects some messages by idempotency key (the
 * per-message `failed` list): `rejects(userId, attempt)` returns the error for that message's attempt (1 for
 * its first post), or null to accept it. `posted` counts the posts of each idempotency key.
 */
export function rejectingReceiver(opts: {
  rejects: (userId: string, attempt: number) => string | null;
  posted: Map<string, number>;
  latencyMs?: number;
}): Server {
  const { rejects, posted, latencyMs = 0 } = opts;
  return createServer((req, res) => {
    let data = '';
    req.on('data', (d: Buffer) => (data += d.toString()));
    req.on('end', () => {
      const body = JSON.parse(data) as { messages: Array<{ user_id: string; idempotency_key: string }> };
      const failed: Array<{ idempotency_key: string; error: string }> = [];
      for (const m of body.messages) {
        const attempt = (posted.get(m.idempotency_key) ?? 0) + 1;
        posted.set(m.idempotency_key, attempt);
        const error = rejects(m.user_id, attempt);
        if (error !== null) failed.push({ idempotency_key: m.idempotency_key, error });
      }
      const answer = (): void => void res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ failed }));
      if (latencyMs > 0) setTimeout(answer, latencyMs);
      else answer();
    });
  });
}

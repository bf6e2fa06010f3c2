import { createServer, type Server } from 'node:http';
import { listenLocal } from './local-http.js';

/** A webhook receiver that answers after `delayMs` and remembers when each idempotency key arrived. */
export class SlowSink {
  server!: Server;
  url!: string;
  readonly seen = new Map<string, number[]>();
  constructor(readonly delayMs: number) {}
  async start(): Promise<void> {
    this.server = createServer((req, res) => {
      let data = '';
      req.on('data', (d: Buffer) => (data += d.toString()));
      req.on('end', () => {
        // When the request arrived (its body complete), not when the answer goes: what was sent after a
        // pause is judged by arrival, and a busy test process must not shift it past the pause.
        const now = Date.now();
        setTimeout(() => {
          for (const m of (JSON.parse(data) as { messages: Array<{ idempotency_key: string }> }).messages) {
            const times = this.seen.get(m.idempotency_key) ?? [];
            times.push(now);
            this.seen.set(m.idempotency_key, times);
          }
          res.writeHead(200).end();
        }, this.delayMs);
      });
    });
    this.url = await listenLocal(this.server);
  }
  receivedAfter(t: number): number {
    let n = 0;
    for (const times of this.seen.values()) n += times.filter((x) => x > t).length;
    return n;
  }
}

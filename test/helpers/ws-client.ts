/** A WebSocket client for tests that keeps every frame it gets (JSON or msgpack), with when it got it. */
import { WebSocket } from 'undici';
import { unpack } from 'msgpackr';

export interface Frame {
  campaign_id?: number;
  status?: string;
  sent?: number;
  delivered?: number;
  error?: string;
  [k: string]: unknown;
}

/** A WebSocket client that keeps every frame it gets, with when it got it. */
export class WsClient {
  readonly frames: Array<{ at: number; frame: Frame }> = [];
  closed: { code: number; reason: string } | null = null;
  private constructor(readonly ws: WebSocket) {
    ws.binaryType = 'arraybuffer';
    ws.addEventListener('message', (ev) => {
      const data = ev.data as string | ArrayBuffer;
      const frame = (typeof data === 'string' ? JSON.parse(data) : unpack(Buffer.from(data))) as Frame;
      this.frames.push({ at: Date.now(), frame });
    });
    ws.addEventListener('close', (ev) => (this.closed = { code: ev.code, reason: ev.reason }));
  }

  static open(url: string, headers: Record<string, string> = {}): Promise<WsClient> {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(url, { headers } as never);
      const c = new WsClient(ws);
      ws.addEventListener('open', () => resolve(c));
      ws.addEventListener('error', () => reject(new Error('websocket refused')));
    });
  }

  send(v: unknown): void {
    this.ws.send(typeof v === 'string' ? v : JSON.stringify(v));
  }

  async waitFor(pred: (f: Frame) => boolean, ms = 10_000): Promise<{ at: number; frame: Frame }> {
    const t0 = Date.now();
    for (;;) {
      const hit = this.frames.find((x) => pred(x.frame));
      if (hit) return hit;
      if (Date.now() - t0 > ms) throw new Error(`no such frame in ${ms} ms; last: ${JSON.stringify(this.frames.at(-1)?.frame)}`);
      await new Promise((r) => setTimeout(r, 20));
    }
  }
}

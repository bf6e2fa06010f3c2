/**
 * A WebSocket client on a bare TCP socket, for tests that need what browsers and undici hide: it can stop
 * reading (so the server's send buffer fills, as with a stalled dashboard on a bad network) and shows the
 * close frame exactly as sent. Frames to the server are masked text; frames from it are parsed by hand.
 */
import net from 'node:net';
import crypto from 'node:crypto';

export interface RawFrame {
  opcode: number;
  payload: Buffer;
}

export class RawWsClient {
  readonly frames: RawFrame[] = [];
  /** the close frame the server sent, if any */
  closeFrame: { code: number; reason: string } | null = null;
  ended = false;
  private pending: Buffer = Buffer.alloc(0);

  private constructor(private readonly sock: net.Socket) {
    sock.on('data', (d: Buffer) => this.take(d));
    sock.on('close', () => (this.ended = true));
    sock.on('error', () => (this.ended = true));
  }

  static async open(port: number, path: string, headers: Record<string, string>): Promise<RawWsClient> {
    const sock = net.connect(port, '127.0.0.1');
    await new Promise<void>((resolve, reject) => sock.once('connect', resolve).once('error', reject));
    const extra = Object.entries(headers)
      .map(([k, v]) => `${k}: ${v}\r\n`)
      .join('');
    sock.write(
      `GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
        `Sec-WebSocket-Key: ${crypto.randomBytes(16).toString('base64')}\r\nSec-WebSocket-Version: 13\r\n${extra}\r\n`,
    );
    let head = Buffer.alloc(0);
    for (;;) {
      head = Buffer.concat([head, await new Promise<Buffer>((r) => sock.once('data', r))]);
      const end = head.indexOf('\r\n\r\n');
      if (end < 0) continue;
      const status = head.subarray(0, head.indexOf('\r\n')).toString();
      if (!status.includes(' 101 ')) throw new Error(`upgrade refused: ${status}`);
      const c = new RawWsClient(sock);
      c.take(head.subarray(end + 4));
      return c;
    }
  }

  /** One masked text frame, as a client must send it. */
  static textFrame(text: string): Buffer {
    const p = Buffer.from(text);
    if (p.length > 125) throw new Error('textFrame: keep test messages under 126 bytes');
    const mask = crypto.randomBytes(4);
    const out = Buffer.concat([Buffer.from([0x81, 0x80 | p.length]), mask, p]);
    for (let i = 0; i < p.length; i++) out[6 + i]! ^= mask[i & 3]!;
    return out;
  }

  /** Writes and resolves once the kernel took it all (the server may not have read it yet). */
  write(data: Buffer): Promise<void> {
    return new Promise((resolve, reject) => this.sock.write(data, (err) => (err ? reject(err) : resolve())));
  }

  send(v: unknown): Promise<void> {
    return this.write(RawWsClient.textFrame(JSON.stringify(v)));
  }

  /** Stops reading from the socket: what the server sends piles up in the kernel, then in the server. */
  pause(): void {
    this.sock.pause();
  }

  resume(): void {
    this.sock.resume();
  }

  /** Text frames parsed as JSON. */
  json(): Array<Record<string, unknown>> {
    return this.frames.filter((f) => f.opcode === 1).map((f) => JSON.parse(f.payload.toString()) as Record<string, unknown>);
  }

  async until(pred: () => boolean, ms: number, what: string): Promise<void> {
    const t0 = Date.now();
    while (!pred()) {
      if (Date.now() - t0 > ms) throw new Error(`${what}: not within ${ms} ms`);
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  destroy(): void {
    this.sock.destroy();
  }

  private take(d: Buffer): void {
    this.pending = this.pending.length === 0 ? d : Buffer.concat([this.pending, d]);
    for (;;) {
      const b = this.pending;
      if (b.length < 2) return;
      let len = b[1]! & 0x7f;
      let at = 2;
      if (len === 126) {
        if (b.length < 4) return;
        len = b.readUInt16BE(2);
        at = 4;
      } else if (len === 127) {
        if (b.length < 10) return;
        len = Number(b.readBigUInt64BE(2));
        at = 10;
      }
      if (b.length < at + len) return;
      const frame = { opcode: b[0]! & 0x0f, payload: Buffer.from(b.subarray(at, at + len)) };
      this.pending = b.subarray(at + len);
      if (frame.opcode === 8) {
        this.closeFrame = {
          code: frame.payload.length >= 2 ? frame.payload.readUInt16BE(0) : 1005,
          reason: frame.payload.subarray(2).toString(),
        };
      }
      this.frames.push(frame);
    }
  }
}

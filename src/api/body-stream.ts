/**
 * A uWS request body as a Node Readable with real backpressure: when the consumer falls behind,
 * `res.pause()` stops reading from the socket, and `res.resume()` starts it again. Bodies past
 * `maxBytes` fail the stream with 413, so a huge upload costs bounded memory either way.
 */
import { Readable } from 'node:stream';
import type { HttpResponse } from 'uWebSockets.js';
import { HeraldError } from '../errors.js';

/** What the stream needs of the response's state (api/http.ts ResponseState). */
export interface AbortState {
  readonly aborted: boolean;
  /** `listener` runs when the client goes away before the answer (at once if it already has) */
  onAbort(listener: () => void): void;
}

/** A body's chunks as uWS delivers them: a copy must be taken before the callback returns. */
export type DataHandler = (chunk: ArrayBuffer | Uint8Array, isLast: boolean) => void;

/** Where a body is read from: the response itself, or a BodyTap in front of it. */
export type BodySource = Pick<HttpResponse, 'pause' | 'resume'> & { onData(handler: DataHandler): unknown };

/**
 * Holds a body's first chunks while the request waits for something before its handler reads the body
 * (a key looked up in PostgreSQL): uWS delivers data only to a handler attached in the request's own
 * callback, so one is attached there. It pauses the socket at the first chunk it holds, so a client
 * waiting to be authorized can send little; the reader gets the held chunks first. `release` (the answer
 * is sent, the body unread) drops the rest and resumes, so the connection stays usable.
 */
export class BodyTap implements BodySource {
  private held: Array<{ chunk: Buffer; isLast: boolean }> = [];
  private handler: DataHandler | null = null;
  private holding = false;

  constructor(private readonly res: HttpResponse) {
    res.onData((ab, isLast) => {
      if (this.handler !== null) {
        this.handler(ab, isLast);
        return;
      }
      this.held.push({ chunk: Buffer.from(new Uint8Array(ab)), isLast });
      if (!isLast && !this.holding) {
        this.holding = true;
        res.pause();
      }
    });
  }

  onData(handler: DataHandler): void {
    this.handler = handler;
    const held = this.held;
    this.held = [];
    // resumed first: nothing arrives before this returns, and a reader that pauses on the held chunks keeps it paused
    this.stopHolding();
    for (const h of held) handler(h.chunk, h.isLast);
  }

  pause(): void {
    this.res.pause();
  }

  resume(): void {
    this.res.resume();
  }

  /** No reader is coming: what is held and what follows is dropped. */
  release(aborted: boolean): void {
    if (this.handler !== null) return;
    this.handler = () => undefined;
    this.held = [];
    if (!aborted) this.stopHolding();
  }

  private stopHolding(): void {
    if (this.holding) {
      this.holding = false;
      this.res.resume();
    }
  }
}

export function bodyReadable(res: BodySource, state: AbortState, maxBytes: number): Readable {
  let paused = false;
  let total = 0;
  // A paused socket is not read at all, not even the next request on the same keep-alive connection:
  // every path that stops consuming (end, error, early answer) must leave it resumed.
  const resume = (): void => {
    if (paused && !state.aborted) {
      paused = false;
      res.resume();
    }
  };
  const readable = new Readable({
    highWaterMark: 1 << 20,
    read: resume,
    destroy(err, cb) {
      // Whatever is still coming is read and dropped below, so the connection stays usable.
      resume();
      cb(err);
    },
  });
  // A client that goes away mid-body fails the stream, so whatever consumes it stops (and rolls back).
  // One that goes away after its last byte does not: the body is whole.
  let complete = false;
  state.onAbort(() => {
    if (!complete && !readable.destroyed)
      readable.destroy(new HeraldError('BAD_REQUEST', 'body: the request was aborted before its end', { field: 'body' }));
  });
  res.onData((ab, isLast) => {
    if (readable.destroyed) return;
    total += ab.byteLength;
    if (total > maxBytes) {
      readable.destroy(new HeraldError('PAYLOAD_TOO_LARGE', `body exceeds ${maxBytes} bytes`, { field: 'body', limit: maxBytes }));
      return;
    }
    const more = readable.push(Buffer.from(new Uint8Array(ab)));
    if (isLast) {
      complete = true;
      // uWS may deliver the rest of its read buffer after pause(): the last chunk can arrive paused.
      readable.push(null);
      resume();
    } else if (!more && !paused) {
      paused = true;
      res.pause();
    }
  });
  return readable;
}

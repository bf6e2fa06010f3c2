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

export function bodyReadable(res: HttpResponse, state: AbortState, maxBytes: number): Readable {
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

/** Accepts everything and does nothing: the benchmark channel, and the ceiling of the dispatch path. */
import type { Channel, OutboundBatch, SendResult } from './channel.js';

const NONE: SendResult = Object.freeze({ failed: new Map<number, string>(), retries: 0 }) as SendResult;

export class NullChannel implements Channel {
  readonly instant = true;
  readonly needsRecipients = false;
  readonly type = 'null';

  send(_batch: OutboundBatch): Promise<SendResult> {
    return Promise.resolve(NONE);
  }

  close(): Promise<void> {
    return Promise.resolve();
  }
}

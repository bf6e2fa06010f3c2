/**
 * The in-app inbox. Delivering writes nothing per recipient anywhere but the event log: a user's inbox is
 * derived from the campaigns whose audience holds the user and the `delivered` events the dispatch path
 * records in ClickHouse (progress/inbox-reader.ts). So a send has no effect outside Herald, and a chunk
 * goes as one sub-batch, like the null channel.
 */
import type { Channel, OutboundBatch, SendResult } from './channel.js';

const NONE: SendResult = Object.freeze({ failed: new Map<number, string>(), retries: 0 }) as SendResult;

export class InboxChannel implements Channel {
  readonly instant = true;
  readonly needsRecipients = false;
  readonly type = 'inbox';

  send(_batch: OutboundBatch): Promise<SendResult> {
    return Promise.resolve(NONE);
  }

  close(): Promise<void> {
    return Promise.resolve();
  }
}

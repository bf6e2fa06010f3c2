/**
 * Channels whose send has no effect outside Herald, so a chunk goes as one sub-batch:
 * - `null` accepts everything and does nothing: the benchmark channel, the ceiling of the dispatch path;
 * - `inbox`, the in-app inbox: delivering writes nothing per recipient but the event log, and a user's
 *   inbox is derived from the campaigns whose audience holds the user plus the `delivered` events the
 *   dispatch path records in ClickHouse (progress/inbox-reader.ts).
 */
import type { Channel, OutboundBatch, SendResult } from './channel.js';

const NONE: SendResult = Object.freeze({ failed: new Map<number, string>(), retries: 0 }) as SendResult;

export class InstantChannel implements Channel {
  readonly instant = true;
  readonly needsRecipients = false;

  constructor(readonly type: 'null' | 'inbox') {}

  send(_batch: OutboundBatch): Promise<SendResult> {
    return Promise.resolve(NONE);
  }

  close(): Promise<void> {
    return Promise.resolve();
  }
}

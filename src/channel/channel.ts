/**
 * The channel port: hand a batch of recipients to a transport and report, per recipient, what happened.
 * Results are sparse (only failures are listed) so the common all-delivered case allocates nothing.
 */
import type { Withheld } from '../domain/withheld.js';
import type { RenderedContent } from '../domain/template.js';

export interface OutboundBatch {
  campaignId: number;
  title: string;
  body: string;
  /** the campaign's `content.data`, when it has one and renders nothing per recipient */
  data?: Readonly<Record<string, unknown>> | null;
  /**
   * each message's rendered content, aligned with `userIds`, when the campaign's templates are personal
   * and the channel renders at send time (domain/template.ts); otherwise every message is title/body/data
   */
  contents?: ReadonlyArray<RenderedContent> | null;
  /**
   * a test send (POST /v1/campaigns/:id/test): its messages carry `test: true` and idempotency keys of their
   * own (`<campaign_id>:<user_id>:<test>`), so a receiver never drops the real message as a repeat
   */
  test?: string;
  /** recipients in the batch */
  count: number;
  /** decoded only for channels that need them (`needsRecipients`); empty otherwise */
  userIds: readonly string[];
  addresses: ReadonlyArray<string | null>;
  /** add each message's read-receipt URL (webhook; `channel.tracking`) */
  tracking: boolean;
  /** gzip the request body (webhook; `channel.compress`) */
  compress: boolean;
  /** the campaign's topic, whose list each message's unsubscribe URL leads to; null or absent: the global list */
  topic?: string | null;
  /**
   * asked right before each request a channel that retries posts (webhook), the first included: whether the
   * sender still holds the chunk the batch belongs to (or its plan was lost, which nobody else sends).
   * Cheap while its last confirmation is recent; otherwise it checks in Redis. Told no, the channel posts nothing more and reports what it did not post as `unsent`,
   * so a process fenced out while a request waited for its retry does not resend what a new holder may have
   * sent already. Absent: always (a test send holds no chunk).
   */
  mayPost?: (() => Promise<boolean>) | null;
}

export interface SendResult {
  /** index into the batch → error text; every other recipient was delivered, unless withheld */
  failed: Map<number, string>;
  /**
   * index into the batch → why it was not sent (a channel that renders per message skips a recipient
   * whose template lacks a variable, under `missing: "skip"`); never also in `failed`
   */
  withheld?: Map<number, Withheld>;
  /**
   * indexes into the batch not posted (or posted, then not re-posted after a retryable answer) because
   * `mayPost` said no: neither delivered nor failed, since the chunk's new holder sends them; never also in
   * `failed`. Absent: none
   */
  unsent?: Set<number>;
  /** retried requests, for metrics and tests */
  retries: number;
  /** of those, the ones retried after a 429 (the receiver asked to slow down); absent: none */
  throttled?: number;
}

export interface Channel {
  readonly type: string;
  /** whether the transport reads user ids and addresses; when not, they are never decoded to strings */
  readonly needsRecipients: boolean;
  /** true when a send has no effect outside Herald (null): a chunk then goes in one sub-batch */
  readonly instant: boolean;
  send(batch: OutboundBatch, signal?: AbortSignal): Promise<SendResult>;
  close(): Promise<void>;
}

/** Stable across retries and reclaims, so a receiver can drop repeats. */
export function idempotencyKey(campaignId: number, userId: string): string {
  return `${campaignId}:${userId}`;
}

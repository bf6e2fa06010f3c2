/** Facts recorded in ClickHouse `message_events`, one row per recipient outcome or read. */

export const EVENT_KINDS = [
  'sent',
  'delivered',
  'failed',
  'read',
  'aborted',
  'confirmed',
  'bounced',
  'skipped',
  'suppressed',
  'capped',
] as const;
export type EventKind = (typeof EVENT_KINDS)[number];

/**
 * The outcomes a sub-batch records, one row per recipient (the dispatcher's, and a cancel's closer's
 * `aborted`); every other kind (reads, providers' callbacks) can name a user more than once and keeps
 * arriving after a campaign ends.
 */
export const DISPATCH_KINDS = [
  'sent',
  'delivered',
  'failed',
  'aborted',
  'skipped',
  'suppressed',
  'capped',
] as const satisfies readonly EventKind[];

/** Enum8 values in ClickHouse: keep in step with schemas/clickhouse/0001, 0003, 0004 and 0006. */
export const EVENT_KIND_CODE: Record<EventKind, number> = {
  sent: 1,
  delivered: 2,
  failed: 3,
  read: 4,
  aborted: 5,
  confirmed: 6,
  bounced: 7,
  skipped: 8,
  suppressed: 9,
  capped: 10,
};

export interface MessageEvent {
  campaignId: number;
  userId: string;
  kind: EventKind;
  /** unix seconds */
  at: number;
  error: string;
}

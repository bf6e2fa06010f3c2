/** Facts recorded in ClickHouse `message_events`, one row per recipient outcome or read. */

export const EVENT_KINDS = ['sent', 'delivered', 'failed', 'read', 'aborted'] as const;
export type EventKind = (typeof EVENT_KINDS)[number];

/** Enum8 values in ClickHouse: keep in step with schemas/clickhouse/0001_message_events.sql and 0003_aborted_kind.sql. */
export const EVENT_KIND_CODE: Record<EventKind, number> = { sent: 1, delivered: 2, failed: 3, read: 4, aborted: 5 };

export interface MessageEvent {
  campaignId: number;
  userId: string;
  kind: EventKind;
  /** unix seconds */
  at: number;
  error: string;
}

/**
 * What happened to one recipient of one campaign, from its rows in ClickHouse `message_events` and from
 * PostgreSQL's word on whether the campaign's plan holds it. Pure: rows and membership in, the answer of
 * `GET /v1/campaigns/:id/recipients/:user_id` out.
 */
import type { EventKind } from './message-event.js';
import { parseSubBatchId } from './sub-batch.js';

export const RECIPIENT_OUTCOMES = [
  'delivered',
  'failed',
  'skipped',
  'suppressed',
  'capped',
  'aborted',
  'pending',
  'not_in_campaign',
] as const;
export type RecipientOutcome = (typeof RECIPIENT_OUTCOMES)[number];

/** Kinds that are a recipient's final outcome of a round (one row each per round). */
const OUTCOME_KINDS: ReadonlySet<EventKind> = new Set(['delivered', 'failed', 'skipped', 'suppressed', 'capped', 'aborted']);
/** Kinds that say why a recipient was not sent to: their `error` is the reason. */
const WITHHELD_KINDS: ReadonlySet<EventKind> = new Set(['skipped', 'suppressed', 'capped', 'aborted']);

export interface RecipientEventRow {
  kind: EventKind;
  /** unix seconds */
  at: number;
  error: string;
  /** the sub-batch id the row was written under (domain/sub-batch.ts); random for reads */
  batch: bigint;
}

/** Whether the campaign's plan holds the user, as PostgreSQL says. */
export type Membership =
  | {
      inPlan: true;
      status: string;
      /** the user is in the current retry round's recipients, which began with plan generation `roundGeneration` */
      inRetryRound: boolean;
      roundGeneration: number;
    }
  | { inPlan: false; reason: string };

export interface RecipientStory {
  outcome: RecipientOutcome;
  /** the latest failure's error, when the outcome is `failed` */
  error: string | null;
  /** why the recipient was not sent to, or not yet */
  reason: string | null;
  /** every outcome row (one per round) and provider callback (`confirmed` / `bounced`), oldest first */
  attempts: Array<{ at: string; kind: EventKind; error: string | null }>;
  reads: Array<{ at: string }>;
}

const iso = (unixS: number): string => new Date(unixS * 1000).toISOString();

/** Later rounds have higher sub-batch ids (the generation sits above seq and from); seconds can tie. */
function byBatchThenTime(a: RecipientEventRow, b: RecipientEventRow): number {
  return a.batch === b.batch ? a.at - b.at : a.batch < b.batch ? -1 : 1;
}

export function recipientStory(rows: readonly RecipientEventRow[], membership: Membership): RecipientStory {
  const outcomes = rows.filter((r) => OUTCOME_KINDS.has(r.kind)).sort(byBatchThenTime);
  const attempts = rows
    .filter((r) => r.kind !== 'read')
    .sort((a, b) => a.at - b.at || byBatchThenTime(a, b))
    .map((r) => ({ at: iso(r.at), kind: r.kind, error: r.error === '' ? null : r.error }));
  const reads = rows
    .filter((r) => r.kind === 'read')
    .sort((a, b) => a.at - b.at)
    .map((r) => ({ at: iso(r.at) }));
  const story = (outcome: RecipientOutcome, error: string | null, reason: string | null): RecipientStory => ({
    outcome,
    error,
    reason,
    attempts,
    reads,
  });

  const latest = outcomes[outcomes.length - 1];
  if (latest !== undefined) {
    const kind = latest.kind as RecipientOutcome;
    if (kind === 'failed' && membership.inPlan && membership.inRetryRound) {
      // A failure from before the current retry round, which sends to this user again.
      const { kind: batchKind, generation } = parseSubBatchId(latest.batch);
      if (batchKind === 'outcome' && generation < membership.roundGeneration)
        return story('pending', latest.error === '' ? null : latest.error, 'being retried: its earlier attempt failed');
    }
    if (kind === 'failed') return story('failed', latest.error === '' ? null : latest.error, null);
    if (kind === 'aborted')
      return story(kind, null, latest.error === '' ? 'the campaign ended (cancelled or failed) before sending to it' : latest.error);
    if (WITHHELD_KINDS.has(latest.kind)) return story(kind, null, latest.error === '' ? null : latest.error);
    return story(kind, null, null);
  }
  if (!membership.inPlan) return story('not_in_campaign', null, membership.reason);
  return story('pending', null, pendingReason(membership.status));
}

function pendingReason(status: string): string {
  switch (status) {
    case 'draft':
      return 'the campaign has not started';
    case 'scheduled':
      return 'the campaign is scheduled and has not started';
    case 'paused':
      return 'the campaign is paused';
    case 'sending':
      return 'not sent yet';
    default:
      // completed, cancelled or failed with no outcome row yet: the sink or the closer has not written it
      return `the campaign is ${status}; its outcome is not recorded yet`;
  }
}

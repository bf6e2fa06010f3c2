/**
 * A bulk suppression change (PUT / DELETE /v1/suppressions) as a batch: its lifecycle as data, and the API's
 * view of it. Pure.
 *   applying → completed
 *       ↓
 *     failed
 * A batch exists once its body is staged, all of it (schemas/postgres/0016_suppression_batches.sql); it is
 * `applying` until the one transaction that changes the lists commits (`completed`) or fails for good. A
 * completed put is in effect once its change mark is raised, right after (every sender reloads then).
 */
import type { AuditRecord } from './audit.js';
import type { RejectedLine } from './import-job.js';

export type SuppressionOp = 'put' | 'delete';
export type SuppressionBatchStatus = 'applying' | 'completed' | 'failed';

/** What staging a bulk change takes: its body as COPY text, and what the body held once it has ended. */
export interface StageRequest {
  op: SuppressionOp;
  copyText: AsyncIterable<string | Buffer>;
  /** read once the body has ended */
  counts(): { total: number; accepted: number; rejectedCount: number; rejected: RejectedLine[] };
  /** the audit row of the change, given the batch's id */
  audit(id: number): AuditRecord;
  startedAt: Date;
}

export interface SuppressionBatch {
  id: number;
  op: SuppressionOp;
  status: SuppressionBatchStatus;
  /** non-empty lines of the body */
  total: number;
  accepted: number;
  rejectedCount: number;
  /** the first MAX_REJECTED_SHOWN, in line order */
  rejected: RejectedLine[];
  /** rows the apply added or changed (put), or removed (delete); null until applied */
  changed: number | null;
  /** applied, and every sender told (a put's change mark raised): what the lists say is sent by from now on */
  inEffect: boolean;
  error: string | null;
  startedAt: Date;
  receivedAt: Date;
  finishedAt: Date | null;
}

/** The batch as the bulk requests and `GET /v1/suppressions/batches/:id` show it. */
export function suppressionBatchView(b: SuppressionBatch): Record<string, unknown> {
  return {
    id: b.id,
    op: b.op,
    status: b.status,
    total: b.total,
    accepted: b.accepted,
    rejected: b.rejected,
    rejected_count: b.rejectedCount,
    changed: b.changed,
    in_effect: b.inEffect,
    error: b.error,
    started_at: b.startedAt.toISOString(),
    received_at: b.receivedAt.toISOString(),
    finished_at: b.finishedAt?.toISOString() ?? null,
  };
}

/**
 * A recipient import as a job: its lifecycle as data, and the API's view of it. Pure.
 *   receiving → merging → completed
 *       ↓          ↓
 *     failed     failed
 * `receiving`: the body is being streamed into the job's staging table. `merging`: the body is staged
 * (all of it, in one transaction) and is being moved into the audience. A job never goes back.
 */

export const IMPORT_STATUSES = ['receiving', 'merging', 'completed', 'failed'] as const;
export type ImportStatus = (typeof IMPORT_STATUSES)[number];

export type ImportFormat = 'ndjson' | 'csv';

/** How many rejected lines a job keeps (the count covers them all). */
export const MAX_KEPT_REJECTED = 100;

export interface RejectedLine {
  line: number;
  error: string;
}

export interface ImportJob {
  id: number;
  audienceId: number;
  status: ImportStatus;
  format: ImportFormat;
  receivedBytes: number;
  total: number;
  staged: number;
  imported: number | null;
  duplicates: number | null;
  rejected: RejectedLine[];
  rejectedCount: number;
  /** a completed import of the same content into the same audience: this one added nothing */
  sameAs: number | null;
  error: string | null;
  startedAt: Date;
  receivedAt: Date | null;
  finishedAt: Date | null;
}

export function isFinished(status: ImportStatus): boolean {
  return status === 'completed' || status === 'failed';
}

/** The job as `GET /v1/imports/:id` shows it. */
export function importView(job: ImportJob): Record<string, unknown> {
  return {
    id: job.id,
    audience_id: job.audienceId,
    status: job.status,
    format: job.format,
    received_bytes: job.receivedBytes,
    total: job.total,
    staged: job.staged,
    imported: job.imported,
    duplicates: job.duplicates,
    rejected: job.rejected,
    rejected_count: job.rejectedCount,
    same_as: job.sameAs,
    error: job.error,
    started_at: job.startedAt.toISOString(),
    received_at: job.receivedAt?.toISOString() ?? null,
    finished_at: job.finishedAt?.toISOString() ?? null,
  };
}

/**
 * The answer to the import request itself. A completed job answers as imports always did (200 with
 * imported, duplicates, rejected, rejected_count, total) plus the job's id; any other job answers 202
 * with where it stands, to be followed at `GET /v1/imports/:id`. `rejected` is every rejected line the
 * request saw up to `maxRejected`, which may be more than the job keeps.
 */
export function importAnswer(job: ImportJob, rejected: RejectedLine[]): { status: 200 | 202; body: Record<string, unknown> } {
  if (job.status === 'completed') {
    return {
      status: 200,
      body: {
        import_id: job.id,
        status: job.status,
        imported: job.imported,
        duplicates: job.duplicates,
        rejected,
        rejected_count: job.rejectedCount,
        total: job.total,
        same_as: job.sameAs,
      },
    };
  }
  return {
    status: 202,
    body: {
      import_id: job.id,
      status: job.status,
      staged: job.staged,
      rejected,
      rejected_count: job.rejectedCount,
      total: job.total,
      error: job.error,
    },
  };
}

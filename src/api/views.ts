/** API views: snake_case JSON built from repository objects and ClickHouse counts. */
import type { Campaign } from '../store/campaign-repo.js';
import { ZERO_COUNTS, type CampaignCounts } from '../progress/progress-reader.js';

/**
 * Failures still standing: each recipient sent again in a retry round had one failure, which its new
 * outcome replaces (schemas/postgres/0005_retry_rounds.sql).
 */
export function currentFailed(c: Campaign, counts: CampaignCounts): number {
  return Math.max(0, counts.failed - c.retried);
}

/**
 * `delivered + failed + aborted + pending = total` at every moment: what has no outcome yet is pending,
 * or aborted once the campaign was cancelled (or failed) and will never send it.
 */
export function remaining(c: Campaign, counts: CampaignCounts): { aborted: number; pending: number } {
  const open = Math.max(0, (c.total ?? 0) - counts.delivered - currentFailed(c, counts));
  return c.status === 'cancelled' || c.status === 'failed' ? { aborted: open, pending: 0 } : { aborted: 0, pending: open };
}

export function campaignView(c: Campaign, counts: CampaignCounts = ZERO_COUNTS, overshoot = 0): Record<string, unknown> {
  const { aborted, pending } = remaining(c, counts);
  return {
    id: c.id,
    name: c.name,
    status: c.status,
    audience_id: c.audienceId,
    channel: c.channel,
    chunk_size: c.chunkSize,
    schedule_at: c.scheduleAt?.toISOString() ?? null,
    rate_limit: c.rateLimit,
    total: c.total,
    sent: counts.delivered + currentFailed(c, counts),
    delivered: counts.delivered,
    failed: currentFailed(c, counts),
    retried: c.retried,
    aborted,
    pending,
    read: counts.read,
    unique_readers: counts.uniqueReaders,
    overshoot,
    planned_chunks: c.plannedChunks,
    created_at: c.createdAt.toISOString(),
    started_at: c.startedAt?.toISOString() ?? null,
    finished_at: c.finishedAt?.toISOString() ?? null,
    aborts_recorded_at: c.abortsRecordedAt?.toISOString() ?? null,
    error: c.error,
  };
}

/** API views: snake_case JSON built from repository objects and ClickHouse counts. */
import type { Campaign } from '../store/campaign-repo.js';
import { ZERO_COUNTS, type CampaignCounts } from '../progress/progress-reader.js';
import { account } from '../domain/accounting.js';

export function campaignView(c: Campaign, counts: CampaignCounts = ZERO_COUNTS, overshoot = 0): Record<string, unknown> {
  const a = account(c, counts);
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
    sent: a.sent,
    delivered: a.delivered,
    failed: a.failed,
    retried: c.retried,
    aborted: a.aborted,
    pending: a.pending,
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

/** API views: snake_case JSON built from repository objects and ClickHouse counts. */
import type { Campaign } from '../store/campaign-repo.js';
import type { CampaignCounts } from '../progress/progress-reader.js';
import { account, NO_OUTCOMES } from '../domain/accounting.js';
import type { Segment, SegmentCount } from '../store/segment-repo.js';
import { filterJson } from '../domain/segment-filter.js';

/** `counts` undefined: ClickHouse has no events of the campaign yet. */
export function campaignView(c: Campaign, counts?: CampaignCounts, overshoot = 0): Record<string, unknown> {
  const a = account(c, counts ?? NO_OUTCOMES);
  return {
    id: c.id,
    name: c.name,
    status: c.status,
    audience_id: c.audienceId,
    segment_id: c.segmentId,
    filter: c.filter,
    channel: c.channel,
    chunk_size: c.chunkSize,
    schedule_at: c.scheduleAt?.toISOString() ?? null,
    rate_limit: c.rateLimit,
    missing: c.missing,
    variables: c.variables,
    topic: c.topic,
    priority: c.priority,
    total: c.total,
    sent: a.sent,
    delivered: a.delivered,
    failed: a.failed,
    skipped: a.skipped,
    suppressed: a.suppressed,
    capped: a.capped,
    retried: c.retried,
    aborted: a.aborted,
    pending: a.pending,
    read: counts?.read ?? 0,
    unique_readers: counts?.uniqueReaders ?? 0,
    overshoot,
    planned_chunks: c.plannedChunks,
    created_at: c.createdAt.toISOString(),
    started_at: c.startedAt?.toISOString() ?? null,
    finished_at: c.finishedAt?.toISOString() ?? null,
    aborts_recorded_at: c.abortsRecordedAt?.toISOString() ?? null,
    error: c.error,
  };
}

export function segmentView(s: Segment): Record<string, unknown> {
  return {
    id: s.id,
    name: s.name,
    audience_id: s.audienceId,
    filter: filterJson(s.filter),
    created_at: s.createdAt.toISOString(),
    updated_at: s.updatedAt === null ? null : s.updatedAt.toISOString(),
  };
}

export function segmentCountView(s: Segment, n: SegmentCount): Record<string, unknown> {
  return { segment_id: s.id, audience_id: s.audienceId, count: n.count, max_id: n.maxId, cached: n.cached };
}

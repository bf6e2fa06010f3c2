/**
 * Read-rate analytics for GET /v1/campaigns/:id/stats, from the views of schemas/clickhouse/0004 only:
 * a few aggregate rows per campaign (minutes, segments, one t-digest), never the raw events.
 */
import type { ClickHouse } from '../clickhouse/client.js';
import { uint } from '../clickhouse/sql.js';

export type Bucket = 'minute' | 'hour';

export interface SeriesPoint {
  t: string;
  delivered: number;
  read: number;
}

export interface SegmentStats {
  segment: string;
  delivered: number;
  reads: number;
  unique_readers: number;
  read_rate: number;
}

export interface ReadStats {
  series: SeriesPoint[];
  time_to_read: { p50: number | null; p90: number | null; p99: number | null };
  by_segment: SegmentStats[];
}

export class StatsReader {
  constructor(private readonly ch: ClickHouse) {}

  async read(campaignId: number, bucket: Bucket): Promise<ReadStats> {
    const id = uint(campaignId);
    const t = bucket === 'hour' ? 'toStartOfHour(minute)' : 'minute';
    const [series, ttr, segments, readers] = await Promise.all([
      this.ch.rows<{ t: string; kind: string; n: string | number }>(
        `SELECT toString(${t}) AS t, toString(kind) AS kind, sum(events) AS n FROM campaign_minutes
         WHERE campaign_id = ${id} GROUP BY t, kind ORDER BY t`,
      ),
      this.ch.rows<{ q: Array<number | string> }>(
        `SELECT quantilesTDigestMerge(0.5, 0.9, 0.99)(seconds) AS q FROM campaign_time_to_read WHERE campaign_id = ${id}`,
      ),
      this.ch.rows<{ segment: string; kind: string; n: string | number }>(
        `SELECT segment, toString(kind) AS kind, sum(events) AS n FROM campaign_segments WHERE campaign_id = ${id} GROUP BY segment, kind`,
      ),
      this.ch.rows<{ segment: string; n: string | number }>(
        `SELECT segment, uniqExactMerge(readers) AS n FROM campaign_segment_readers WHERE campaign_id = ${id} GROUP BY segment`,
      ),
    ]);
    const points = new Map<string, SeriesPoint>();
    for (const r of series) {
      // ClickHouse prints 'YYYY-MM-DD hh:mm:ss' in the column's zone (UTC): made ISO here
      const iso = `${r.t.replace(' ', 'T')}Z`;
      let p = points.get(iso);
      if (p === undefined) points.set(iso, (p = { t: iso, delivered: 0, read: 0 }));
      if (r.kind === 'delivered') p.delivered = Number(r.n);
      else if (r.kind === 'read') p.read = Number(r.n);
    }
    const q = ttr[0]?.q ?? [];
    // No reads: the merged t-digest of nothing is nan (18.16) or 0 (newer); null is the honest answer.
    const hasReads = series.some((r) => r.kind === 'read');
    const quantile = (i: number): number | null =>
      hasReads && q[i] !== undefined && Number.isFinite(Number(q[i])) ? Math.round(Number(q[i])) : null;
    const bySegment = new Map<string, SegmentStats>();
    const seg = (name: string): SegmentStats => {
      let s = bySegment.get(name);
      if (s === undefined) bySegment.set(name, (s = { segment: name, delivered: 0, reads: 0, unique_readers: 0, read_rate: 0 }));
      return s;
    };
    for (const r of segments) {
      if (r.kind === 'delivered') seg(r.segment).delivered = Number(r.n);
      else if (r.kind === 'read') seg(r.segment).reads = Number(r.n);
    }
    for (const r of readers) seg(r.segment).unique_readers = Number(r.n);
    for (const s of bySegment.values()) s.read_rate = s.delivered === 0 ? 0 : s.unique_readers / s.delivered;
    return {
      series: [...points.values()],
      time_to_read: { p50: quantile(0), p90: quantile(1), p99: quantile(2) },
      by_segment: [...bySegment.values()].sort((a, b) => b.delivered - a.delivered || a.segment.localeCompare(b.segment)),
    };
  }
}

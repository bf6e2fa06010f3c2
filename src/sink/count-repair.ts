/**
 * After a campaign completes: the summing views of its dispatch outcomes made whole again.
 *
 * Why: ClickHouse writes an insert's `message_events` part before its views' parts, and not atomically.
 * A server that dies between them leaves a sub-batch stored but missing from some views. The landed
 * check (clickhouse-inserter.ts) counts such a sub-batch again into `campaign_batch_counts`, where
 * max(rows) makes that idempotent; `campaign_counts`, `campaign_minutes` and `campaign_segments` sum,
 * so a sub-batch added twice would count twice. Once a campaign completes nothing writes its dispatch
 * outcomes any more, so what each of those views lacks is the stored rows minus the view's sum, and that
 * difference is added. It runs once per completion, under a claim in PostgreSQL (actor/count-check.ts).
 * A view's part is written after its source's, so a shortfall can also be an insert still writing its views (an attempt the client gave up on that the server finishes, a replica catching up):
 * the shortfall is read twice, `settleMs` apart, and only what both readings lack is added. What is left:
 * a view part later than that, which the repair then adds once too often. A repair that fails (or whose
 * process dies first) is run again by the dispatchers' sweep (actor/count-check.ts). Reads and providers'
 * callbacks go on arriving after completion and are left out.
 */
import type { ClickHouse } from '../clickhouse/client.js';
import { str, strList, uint } from '../clickhouse/sql.js';
import { DISPATCH_KINDS } from '../domain/message-event.js';

/** Rows added to each view (0 everywhere: nothing was missing). */
export interface CountRepairResult {
  counts: number;
  minutes: number;
  segments: number;
}

interface KeyCount {
  k: string;
  n: string | number;
}

/** Rows a view lacks under one key (a kind, a minute, a segment). */
export interface Shortfall {
  key: string;
  missing: number;
}

/** What `view` lacks of `stored`, key by key; a view ahead of the stored rows is left as it is. */
export function shortfall(stored: readonly KeyCount[], view: readonly KeyCount[]): Shortfall[] {
  const have = new Map(view.map((r) => [r.k, Number(r.n)]));
  const out: Shortfall[] = [];
  for (const r of stored) {
    const missing = Number(r.n) - (have.get(r.k) ?? 0);
    if (missing > 0) out.push({ key: r.k, missing });
  }
  return out;
}

const KINDS = strList(DISPATCH_KINDS);

export interface CountRepairOptions {
  /** between the two readings of the shortfall (see above) */
  settleMs: number;
}

/** of campaign_counts, campaign_minutes and campaign_segments */
type Shortfalls = [Shortfall[], Shortfall[], Shortfall[]];

/** What both readings lack, key by key: the smaller of the two. */
export function lackedByBoth(a: readonly Shortfall[], b: readonly Shortfall[]): Shortfall[] {
  const later = new Map(b.map((x) => [x.key, x.missing]));
  const out: Shortfall[] = [];
  for (const x of a) {
    const m = Math.min(x.missing, later.get(x.key) ?? 0);
    if (m > 0) out.push({ key: x.key, missing: m });
  }
  return out;
}

export class CountRepair {
  constructor(
    private readonly ch: ClickHouse,
    private readonly opts: CountRepairOptions = { settleMs: 2_000 },
  ) {}

  async afterCompletion(campaignId: number): Promise<CountRepairResult> {
    const first = await this.shortfalls(campaignId);
    if (first.every((l) => l.length === 0)) return { counts: 0, minutes: 0, segments: 0 };
    await new Promise((r) => setTimeout(r, this.opts.settleMs));
    const second = await this.shortfalls(campaignId);
    return this.add(campaignId, first.map((l, i) => lackedByBoth(l, second[i]!)) as Shortfalls);
  }

  private async shortfalls(campaignId: number): Promise<Shortfalls> {
    const id = uint(campaignId);
    const where = `campaign_id = ${id} AND kind IN ${KINDS}`;
    const delivered = `campaign_id = ${id} AND kind = 'delivered'`;
    const q = (sql: string): Promise<KeyCount[]> => this.ch.rows<KeyCount>(sql);
    // the stored rows first: an insert landing between the two reads shows in both
    const stored = await Promise.all([
      q(`SELECT toString(kind) AS k, count() AS n FROM message_events WHERE ${where} GROUP BY kind`),
      q(`SELECT toString(toStartOfMinute(at)) AS k, count() AS n FROM message_events WHERE ${delivered} GROUP BY k`),
      q(`SELECT segment AS k, count() AS n FROM message_events WHERE ${delivered} GROUP BY segment`),
    ]);
    const views = await Promise.all([
      q(`SELECT toString(kind) AS k, countMerge(events) AS n FROM campaign_counts WHERE ${where} GROUP BY kind`),
      q(`SELECT toString(minute) AS k, sum(events) AS n FROM campaign_minutes WHERE ${delivered} GROUP BY minute`),
      q(`SELECT segment AS k, sum(events) AS n FROM campaign_segments WHERE ${delivered} GROUP BY segment`),
    ]);
    return stored.map((s, i) => shortfall(s, views[i]!)) as Shortfalls;
  }

  private async add(campaignId: number, [counts, minutes, segments]: Shortfalls): Promise<CountRepairResult> {
    const id = uint(campaignId);
    for (const { key, missing } of counts) {
      // count and first/last times as states, built from that many of the kind's own stored rows
      await this.ch.command(
        `INSERT INTO campaign_counts SELECT campaign_id, kind, countState() AS events, minState(at) AS first_at, maxState(at) AS last_at
         FROM (SELECT campaign_id, kind, at FROM message_events WHERE campaign_id = ${id} AND kind = ${str(key)} LIMIT ${uint(missing)})
         GROUP BY campaign_id, kind`,
      );
    }
    if (minutes.length > 0) {
      const rows = minutes.map((m) => `(${id}, ${str(m.key)}, 'delivered', ${uint(m.missing)})`);
      await this.ch.command(`INSERT INTO campaign_minutes (campaign_id, minute, kind, events) VALUES ${rows.join(', ')}`);
    }
    if (segments.length > 0) {
      const rows = segments.map((s) => `(${id}, ${str(s.key)}, 'delivered', ${uint(s.missing)})`);
      await this.ch.command(`INSERT INTO campaign_segments (campaign_id, segment, kind, events) VALUES ${rows.join(', ')}`);
    }
    const sum = (l: readonly Shortfall[]): number => l.reduce((a, x) => a + x.missing, 0);
    return { counts: sum(counts), minutes: sum(minutes), segments: sum(segments) };
  }
}

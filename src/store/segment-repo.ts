/**
 * Segments (schemas/postgres/0010_segments.sql): a named filter over one audience, and its exact count.
 * The count is kept with the audience's highest id when it was counted: recipients are never updated
 * or removed, and an import adds only ids above the audience's highest, so the count of the recipients
 * up to that id never changes, and a later count adds only those above it.
 */
import { HeraldError } from '../errors.js';
import type { CreateSegmentInput, ListSegmentsQuery, UpdateSegmentInput } from '../domain/campaign-input.js';
import { filterJson, storedFilter, type FilterNode } from '../domain/segment-filter.js';
import { compileFilter, indexedLeads } from '../domain/segment-sql.js';
import { countedValues } from './attr-index.js';
import { wrapPgError, type Db } from './db.js';
import { ReadReplica } from './read-replica.js';

export interface Segment {
  id: number;
  name: string;
  audienceId: number;
  filter: FilterNode;
  createdAt: Date;
  /** when its name or filter last changed; null if never */
  updatedAt: Date | null;
}

export interface SegmentCount {
  count: number;
  /** the audience's highest recipient id the count covers */
  maxId: number;
  /** whether the stored count answered, without counting any recipient */
  cached: boolean;
}

interface SegmentRow {
  id: number;
  name: string;
  audience_id: number;
  filter: unknown;
  created_at: Date;
  updated_at: Date | null;
  counted_max_id: number | null;
  counted: number | null;
  version: number;
}

const COLUMNS = 'id, name, audience_id, filter, created_at, updated_at, counted_max_id, counted, version';

const toSegment = (r: SegmentRow): Segment => ({
  id: r.id,
  name: r.name,
  audienceId: r.audience_id,
  filter: storedFilter(r.filter, `segment ${r.id}`),
  createdAt: r.created_at,
  updatedAt: r.updated_at,
});

export class SegmentRepo {
  private readonly reads: ReadReplica;
  /** counts running in this process, by segment id and filter version */
  private readonly counting = new Map<string, Promise<SegmentCount>>();

  /** `reads`: where counts run (a replica's, or the primary `db` when not given) */
  constructor(
    private readonly db: Db,
    reads?: ReadReplica,
  ) {
    this.reads = reads ?? new ReadReplica(db);
  }

  async create(input: CreateSegmentInput): Promise<Segment> {
    let row: SegmentRow | undefined;
    try {
      const r = await this.db.query<SegmentRow>(
        `INSERT INTO segments (name, audience_id, filter) SELECT $1, a.id, $3 FROM audiences a WHERE a.id = $2
         RETURNING ${COLUMNS}`,
        [input.name, input.audienceId, JSON.stringify(filterJson(input.filter))],
      );
      row = r.rows[0];
    } catch (err) {
      throw wrapPgError(err, 'create segment');
    }
    if (row === undefined) throw HeraldError.invalid([{ field: 'audience_id', error: 'no such audience' }]);
    return toSegment(row);
  }

  async get(id: number): Promise<Segment | null> {
    const row = await this.row(id);
    return row === null ? null : toSegment(row);
  }

  /**
   * A new name and/or filter. A new filter clears the kept count (the next count starts from nothing) and
   * raises the version, so a count still running on the old filter stores nothing. Null: no such segment.
   */
  async update(id: number, input: UpdateSegmentInput): Promise<Segment | null> {
    const filter = input.filter === undefined ? null : JSON.stringify(filterJson(input.filter));
    try {
      const r = await this.db.query<SegmentRow>(
        `UPDATE segments SET name = coalesce($2, name), updated_at = now(),
           filter = coalesce($3::jsonb, filter),
           counted = CASE WHEN $3::jsonb IS NULL OR $3::jsonb = filter THEN counted END,
           counted_max_id = CASE WHEN $3::jsonb IS NULL OR $3::jsonb = filter THEN counted_max_id END,
           version = version + CASE WHEN $3::jsonb IS NULL OR $3::jsonb = filter THEN 0 ELSE 1 END
         WHERE id = $1 AND deleted_at IS NULL
         RETURNING ${COLUMNS}`,
        [id, input.name ?? null, filter],
      );
      const row = r.rows[0];
      return row === undefined ? null : toSegment(row);
    } catch (err) {
      throw wrapPgError(err, 'update segment');
    }
  }

  /** Deletes a segment for the API (campaigns made from it keep their filter); false: no such segment. */
  async delete(id: number): Promise<boolean> {
    try {
      const r = await this.db.query('UPDATE segments SET deleted_at = now() WHERE id = $1 AND deleted_at IS NULL', [id]);
      return (r.rowCount ?? 0) > 0;
    } catch (err) {
      throw wrapPgError(err, 'delete segment');
    }
  }

  /** Live segments, newest first (of one audience when asked), a keyset page by id. */
  async list(
    q: ListSegmentsQuery,
  ): Promise<{ items: Array<Segment & { counted: number | null; countedMaxId: number | null }>; nextBefore: number | null }> {
    try {
      const r = await this.db.query<SegmentRow>(
        `SELECT ${COLUMNS} FROM segments
         WHERE deleted_at IS NULL AND ($1::bigint IS NULL OR audience_id = $1) AND ($2::bigint IS NULL OR id < $2)
         ORDER BY id DESC LIMIT $3`,
        [q.audienceId, q.before, q.limit + 1],
      );
      const rows = r.rows.slice(0, q.limit);
      return {
        items: rows.map((row) => ({ ...toSegment(row), counted: row.counted, countedMaxId: row.counted_max_id })),
        nextBefore: r.rows.length > q.limit ? rows[rows.length - 1]!.id : null,
      };
    } catch (err) {
      throw wrapPgError(err, 'list segments');
    }
  }

  /**
   * The exact number of the audience's recipients the segment's filter selects now; 404 for an unknown id.
   * A count asked for while one of the same segment (same filter version) runs here waits for that one
   * instead of scanning beside it: a new segment is counted in the background at once, and the first
   * GET …/count usually comes while it runs.
   */
  async count(id: number): Promise<SegmentCount> {
    const row = await this.row(id);
    if (row === null) throw new HeraldError('NOT_FOUND', `segment ${id} not found`);
    const key = `${id}:${row.version}`;
    const running = this.counting.get(key);
    if (running !== undefined) return running;
    const p = this.countRow(id, row).finally(() => this.counting.delete(key));
    this.counting.set(key, p);
    return p;
  }

  private async countRow(id: number, row: SegmentRow): Promise<SegmentCount> {
    const filter = storedFilter(row.filter, `segment ${id}`);
    const top = await this.maxId(row.audience_id);
    if (row.counted_max_id !== null && top <= row.counted_max_id)
      return { count: row.counted ?? 0, maxId: row.counted_max_id, cached: true };
    let base = row.counted ?? 0;
    let from = row.counted_max_id ?? 0;
    // A string eq / in alone: its attribute's counted values (attr-index.ts) stand for every recipient up
    // to their id, when that is further than the segment's own kept count.
    const lead = indexedLeads(filter)[0];
    if (lead !== undefined && lead.rest === null) {
      const counted = await this.countedValues(row.audience_id, lead.attr, lead.values);
      if (counted !== null && counted.upToId > from && counted.upToId <= top) {
        base = counted.count;
        from = counted.upToId;
      }
    }
    const f = compileFilter(filter, { values: 'bind', firstParam: 4 });
    // Bounded by the highest id read before, on the primary: every recipient up to it is committed (an
    // import in progress adds only ids above it, and imports into one audience take turns), so this is
    // exact, on a replica too once it holds that id (read-replica.ts).
    const added =
      from >= top
        ? 0
        : await this.reads.rows(row.audience_id, top, 'count segment', async (client) => {
            const r = await client.query<{ n: number }>(
              `SELECT count(*) AS n FROM recipients WHERE audience_id = $1 AND id > $2 AND id <= $3 AND ${f.sql}`,
              [row.audience_id, from, top, ...f.params],
            );
            return Number(r.rows[0]?.n ?? 0);
          });
    const count = base + added;
    try {
      await this.db.query(
        `UPDATE segments SET counted = $2, counted_max_id = $3
         WHERE id = $1 AND version = $4 AND (counted_max_id IS NULL OR counted_max_id < $3)`,
        [id, count, top, row.version],
      );
    } catch (err) {
      throw wrapPgError(err, 'store segment count');
    }
    return { count, maxId: top, cached: false };
  }

  /** Only a shortcut: when it cannot be read, the count scans. */
  private countedValues(audienceId: number, attr: string, values: readonly string[]): Promise<{ upToId: number; count: number } | null> {
    return countedValues(this.db, audienceId, attr, values).catch(() => null);
  }

  private async maxId(audienceId: number): Promise<number> {
    try {
      const r = await this.db.query<{ top: number | null }>('SELECT max(id) AS top FROM recipients WHERE audience_id = $1', [audienceId]);
      return r.rows[0]?.top ?? 0;
    } catch (err) {
      throw wrapPgError(err, 'audience extent');
    }
  }

  private async row(id: number): Promise<SegmentRow | null> {
    try {
      const r = await this.db.query<SegmentRow>(`SELECT ${COLUMNS} FROM segments WHERE id = $1 AND deleted_at IS NULL`, [id]);
      return r.rows[0] ?? null;
    } catch (err) {
      throw wrapPgError(err, 'get segment');
    }
  }
}

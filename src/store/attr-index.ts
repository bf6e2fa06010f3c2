/**
 * Expression indexes on one attribute of one audience's partition, `(attrKeySql(attr), id)`, for the
 * segments that select by a string `eq` / `in` (domain/segment-sql.ts: indexedLeads). With one, the
 * planner reads a segment's pages value by value, each in id order from the index, merged by id
 * (recipient-reader.ts), instead of testing the filter on every recipient of the audience.
 *
 * An index is built when a segment (or a campaign's own filter) first needs it, in the background, with
 * CREATE INDEX CONCURRENTLY: imports and campaigns of the audience go on meanwhile, and pages are read by
 * the scan until the index is valid. A build cut short (a crash, a restart) leaves an invalid index; the
 * next `ensure` drops it and builds again (also one a `statement_timeout` cancelled: the build runs under
 * the role's settings). Each index makes the audience's later imports a little slower, so only the
 * attributes segments select by get one, at most MAX_ATTR_INDEXES per audience (checked by each process's
 * one build at a time: processes building side by side may pass it by one each).
 *
 * `reconcile` keeps an audience's indexes to what selects by them: after an import it builds those its
 * segments want and lack (a segment made while its audience was empty has no partition to index until
 * then), and after a segment changes or goes it drops those nothing selects by any more, so imports stop
 * paying for them and they stop counting against the limit.
 */
import { createHash } from 'node:crypto';
import type pg from 'pg';
import type { Logger } from 'pino';
import { attrKeySql, indexedLeads, type IndexedLead } from '../domain/segment-sql.js';
import { storedFilter } from '../domain/segment-filter.js';
import { wrapPgError, type Db } from './db.js';
import { partitionName } from './recipient-partitions.js';

export const MAX_ATTR_INDEXES = 8;
/** Distinct string values above which an attribute's values are not counted (an email, an id). */
export const MAX_COUNTED_VALUES = 10_000;

export type AttrIndexState =
  /** valid: pages may read from it */
  | 'ready'
  /** being built, here or by another process */
  | 'building'
  /** the audience has no partition of its own yet (no recipients, or one older than partitioning) */
  | 'no-partition'
  /** the audience already has MAX_ATTR_INDEXES attribute indexes */
  | 'limit';

const NAME_PREFIX = (audienceId: number): string => `${partitionName(audienceId)}_k_`;

/** `recipients_a<id>_k_<16 hex of the attribute's SHA-256>`: within PostgreSQL's 63 bytes for any name. */
export function attrIndexName(audienceId: number, attr: string): string {
  return `${NAME_PREFIX(audienceId)}${createHash('sha256').update(attr).digest('hex').slice(0, 16)}`;
}

/** Whether the attribute's index exists and is valid (on the connection a page is read on). */
export async function attrIndexValid(client: pg.ClientBase, audienceId: number, attr: string): Promise<boolean> {
  const r = await client.query<{ valid: boolean }>('SELECT indisvalid AS valid FROM pg_index WHERE indexrelid = to_regclass($1)', [
    attrIndexName(audienceId, attr),
  ]);
  return r.rows[0]?.valid === true;
}

interface Look {
  partition: string | null;
  valid: boolean | null;
  building: boolean;
  /** the audience's other attribute indexes */
  others: number;
}

export class AttrIndexes {
  /** builds asked for in this process and not ended, by index name */
  private readonly running = new Map<string, Promise<AttrIndexState>>();
  /**
   * The end of the last build asked for here: builds run one at a time per process, each on one pooled
   * connection for its whole length (tens of seconds at 10M), so segments made together never take the
   * pool from the API and the dispatcher, and the limit below is checked by one build at a time.
   */
  private queue: Promise<unknown> = Promise.resolve();

  /** `maxCountedValues`: distinct values above which the attribute's values are not counted */
  constructor(
    private readonly db: Db,
    private readonly maxCountedValues = MAX_COUNTED_VALUES,
    private readonly log: Pick<Logger, 'warn'> | null = null,
  ) {}

  private async look(audienceId: number, name: string): Promise<Look> {
    const r = await this.db.query<Look>(
      `SELECT to_regclass($1) AS partition, i.indisvalid AS valid,
              EXISTS (SELECT 1 FROM pg_stat_progress_create_index p
                       WHERE p.datname = current_database() AND p.index_relid = to_regclass($2)) AS building,
              (SELECT count(*)::int FROM pg_class c WHERE c.relkind = 'i' AND c.relname LIKE $3 AND c.relname <> $2) AS others
         FROM (SELECT 1) one LEFT JOIN pg_index i ON i.indexrelid = to_regclass($2)`,
      [partitionName(audienceId), name, `${NAME_PREFIX(audienceId).replace(/_/g, '\\_')}%`],
    );
    return r.rows[0]!;
  }

  /**
   * Brings the audience's attribute indexes in line with what selects by them: the leads of each live
   * segment's filter and of each unfinished campaign's own (a campaign keeps its filter when its segment
   * changes or goes). Indexes of no lead are dropped, unless being built; the first lead of each filter
   * (the one a segment asks for) is built where missing, as `ensure` does, whatever became of the drops.
   * The drops run in the builds' queue, after the wanted set is read, so this process never drops what it
   * is building; another process's segment made in between can lose its new index, and planning reads
   * by the scan until the next reconcile builds it again (slower, never wrong: a page checks the index
   * on its own connection).
   */
  reconcile(audienceId: number): Promise<{ dropped: string[]; indexes: Array<{ attr: string; state: AttrIndexState }> }> {
    const dropping = this.queue.then(() => this.dropUnwanted(audienceId));
    this.queue = dropping.catch(() => undefined);
    return dropping.then(async ({ build, dropped }) => ({
      dropped,
      indexes: await Promise.all(build.map(async (attr) => ({ attr, state: await this.ensure(audienceId, attr) }))),
    }));
  }

  /**
   * What the audience's live segments and unfinished campaigns select by: every indexable lead (a page
   * reads from whichever is valid), the first of each filter to build. `complete` is false when a stored
   * filter did not parse: what it selects by is unknown, so nothing may be dropped.
   */
  private async wantedAttrs(audienceId: number): Promise<{ keep: Set<string>; build: string[]; complete: boolean }> {
    let rows: Array<{ what: string; filter: unknown }>;
    try {
      rows = (
        await this.db.query<{ what: string; filter: unknown }>(
          `SELECT 'segment ' || id AS what, filter FROM segments WHERE audience_id = $1 AND deleted_at IS NULL
           UNION ALL
           SELECT 'campaign ' || id, filter FROM campaigns
            WHERE status = ANY ('{draft,scheduled,sending,paused}') AND filter IS NOT NULL
              AND (audience_id = $1 OR plan_audience_id = $1)`,
          [audienceId],
        )
      ).rows;
    } catch (err) {
      throw wrapPgError(err, `attributes audience ${audienceId} selects by`);
    }
    const keep = new Set<string>();
    const build = new Set<string>();
    let complete = true;
    for (const row of rows) {
      let leads: IndexedLead[];
      try {
        leads = indexedLeads(storedFilter(row.filter, row.what));
      } catch (err) {
        complete = false;
        this.log?.warn({ err, audienceId, of: row.what }, 'stored filter does not parse: no attribute index dropped');
        continue;
      }
      for (const lead of leads) keep.add(lead.attr);
      if (leads[0] !== undefined) build.add(leads[0].attr);
    }
    return { keep, build: [...build].sort(), complete };
  }

  private async dropUnwanted(audienceId: number): Promise<{ build: string[]; dropped: string[] }> {
    const { keep, build, complete } = await this.wantedAttrs(audienceId);
    const dropped: string[] = [];
    if (!complete) return { build, dropped };
    const kept = new Set([...keep].map((a) => attrIndexName(audienceId, a)));
    let found: Array<{ name: string; building: boolean }>;
    try {
      found = (
        await this.db.query<{ name: string; building: boolean }>(
          `SELECT c.relname AS name,
                  EXISTS (SELECT 1 FROM pg_stat_progress_create_index p
                           WHERE p.datname = current_database() AND p.index_relid = c.oid) AS building
             FROM pg_class c
            WHERE c.relkind = 'i' AND c.relnamespace = current_schema()::regnamespace AND c.relname LIKE $1`,
          [`${NAME_PREFIX(audienceId).replace(/_/g, '\\_')}%`],
        )
      ).rows;
    } catch (err) {
      this.log?.warn({ err: wrapPgError(err, 'list attribute indexes'), audienceId }, 'attribute indexes not listed: none dropped');
      return { build, dropped };
    }
    for (const { name, building } of found) {
      if (kept.has(name) || building || this.running.has(name)) continue;
      try {
        // CONCURRENTLY: the audience's reads and imports go on; it waits for those using the index.
        await this.db.query(`DROP INDEX CONCURRENTLY IF EXISTS ${name}`);
        dropped.push(name);
      } catch (err) {
        // (a statement_timeout behind a long import, say): the next reconcile tries again
        this.log?.warn({ err: wrapPgError(err, `drop ${name}`), audienceId }, 'unused attribute index not dropped');
      }
    }
    return { build, dropped };
  }

  /** Resolves once every build and reconcile asked for here so far (and what they queue) has ended. */
  async idle(): Promise<void> {
    for (let q = this.queue; ; q = this.queue) {
      await q;
      await Promise.allSettled([...this.running.values()]);
      if (q === this.queue && this.running.size === 0) return;
    }
  }

  /** The index's state now, without building it ('none': not there, or an invalid one left by a build cut short). */
  async state(audienceId: number, attr: string): Promise<AttrIndexState | 'none'> {
    const name = attrIndexName(audienceId, attr);
    if (this.running.has(name)) return 'building';
    try {
      const l = await this.look(audienceId, name);
      if (l.partition === null) return 'no-partition';
      if (l.valid === true) return 'ready';
      if (l.building) return 'building';
      return l.valid === null && l.others >= MAX_ATTR_INDEXES ? 'limit' : 'none';
    } catch (err) {
      throw wrapPgError(err, 'attribute index state');
    }
  }

  /**
   * Builds the index unless it is valid already or being built; resolves once it is valid (or why it is
   * not). Asked again while it is queued or building here, it shares that build.
   */
  ensure(audienceId: number, attr: string): Promise<AttrIndexState> {
    const name = attrIndexName(audienceId, attr);
    let p = this.running.get(name);
    if (p === undefined) {
      p = this.queue.then(() => this.build(audienceId, attr, name)).finally(() => this.running.delete(name));
      this.running.set(name, p);
      this.queue = p.catch(() => undefined);
    }
    return p;
  }

  private async build(audienceId: number, attr: string, name: string): Promise<AttrIndexState> {
    const partition = partitionName(audienceId);
    try {
      const l = await this.look(audienceId, name);
      if (l.partition === null) return 'no-partition';
      if (l.valid === true) {
        await this.countValuesOrWarn(audienceId, attr);
        return 'ready';
      }
      // Another process's build (the progress view shows builds of the same role; Herald uses one).
      if (l.building) return 'building';
      if (l.valid === null && l.others >= MAX_ATTR_INDEXES) return 'limit';
      // Invalid and nobody building it: what a build cut short leaves. CONCURRENTLY cannot replace it.
      if (l.valid === false) await this.db.query(`DROP INDEX CONCURRENTLY IF EXISTS ${name}`);
      await this.db.query(`CREATE INDEX CONCURRENTLY IF NOT EXISTS ${name} ON ${partition} (${attrKeySql(attr)}, id)`);
      // The expression's own statistics: without them PostgreSQL guesses how many rows a value has.
      await this.db.query(`ANALYZE ${partition}`);
      // IF NOT EXISTS also passes over a build another process began since the look above.
      const done = await this.look(audienceId, name);
      if (done.valid !== true) return 'building';
      await this.countValuesOrWarn(audienceId, attr);
      return 'ready';
    } catch (err) {
      throw wrapPgError(err, `build the index on attribute ${attr} of audience ${audienceId}`);
    }
  }

  /** The index is ready whatever befalls its counted values, which only make some counts faster. */
  private async countValuesOrWarn(audienceId: number, attr: string): Promise<void> {
    try {
      await this.countValues(audienceId, attr);
    } catch (err) {
      this.log?.warn({ err, audienceId, attr }, 'attribute values not counted');
    }
  }

  /**
   * The recipients of each value of the attribute up to the audience's highest id now
   * (schemas/postgres/0018_attr_value_counts.sql), unless counted already or of too many values. One
   * transaction, so a count finds all of an attribute's values or none.
   */
  private async countValues(audienceId: number, attr: string): Promise<void> {
    const partition = partitionName(audienceId);
    const had = await this.db.query('SELECT 1 FROM attr_counted WHERE audience_id = $1 AND attr = $2', [audienceId, attr]);
    if (had.rows.length > 0) return;
    const top = await this.db.query<{ top: number | null }>(`SELECT max(id) AS top FROM ${partition}`);
    const upTo = top.rows[0]?.top ?? 0;
    const key = attrKeySql(attr);
    const r = await this.db.query<{ value: string; n: string }>(
      `SELECT ${key} AS value, count(*) AS n FROM ${partition} WHERE id <= $1 AND ${key} IS NOT NULL GROUP BY 1 LIMIT $2`,
      [upTo, this.maxCountedValues + 1],
    );
    const tooMany = r.rows.length > this.maxCountedValues;
    const client = await this.db.connect();
    try {
      await client.query('BEGIN');
      const made = await client.query(
        'INSERT INTO attr_counted (audience_id, attr, up_to_id, too_many) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING',
        [audienceId, attr, upTo, tooMany],
      );
      if ((made.rowCount ?? 0) > 0 && !tooMany)
        await client.query(
          `INSERT INTO attr_value_counts (audience_id, attr, value, n) SELECT $1, $2, v, n FROM unnest($3::text[], $4::bigint[]) AS t (v, n)`,
          [audienceId, attr, r.rows.map((x) => x.value), r.rows.map((x) => x.n)],
        );
      await client.query('COMMIT');
    } catch (err) {
      await client.query('ROLLBACK').catch(() => undefined);
      throw err;
    } finally {
      client.release();
    }
  }
}

/**
 * The recipients up to `upToId` whose `attr` is one of `values` (distinct), from the counted values; null
 * when the attribute's values are not counted.
 */
export async function countedValues(
  db: Db,
  audienceId: number,
  attr: string,
  values: readonly string[],
): Promise<{ upToId: number; count: number } | null> {
  const r = await db.query<{ up_to_id: number; n: string }>(
    `SELECT c.up_to_id, coalesce(sum(v.n), 0) AS n FROM attr_counted c
       LEFT JOIN attr_value_counts v ON v.audience_id = c.audience_id AND v.attr = c.attr AND v.value = ANY ($3::text[])
      WHERE c.audience_id = $1 AND c.attr = $2 AND NOT c.too_many GROUP BY c.up_to_id`,
    [audienceId, attr, values],
  );
  const row = r.rows[0];
  return row === undefined ? null : { upToId: Number(row.up_to_id), count: Number(row.n) };
}

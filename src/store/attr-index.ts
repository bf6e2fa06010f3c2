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
 * one build at a time: processes building side by side may pass it by one each). Indexes stay until
 * their audience goes.
 */
import { createHash } from 'node:crypto';
import type pg from 'pg';
import { attrKeySql } from '../domain/segment-sql.js';
import { wrapPgError, type Db } from './db.js';
import { partitionName } from './recipient-partitions.js';

export const MAX_ATTR_INDEXES = 8;

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

  constructor(private readonly db: Db) {}

  private async look(audienceId: number, name: string): Promise<Look> {
    const r = await this.db.query<Look>(
      `SELECT to_regclass($1) AS partition, i.indisvalid AS valid,
              EXISTS (SELECT 1 FROM pg_stat_progress_create_index p WHERE p.index_relid = to_regclass($2)) AS building,
              (SELECT count(*)::int FROM pg_class c WHERE c.relkind = 'i' AND c.relname LIKE $3 AND c.relname <> $2) AS others
         FROM (SELECT 1) one LEFT JOIN pg_index i ON i.indexrelid = to_regclass($2)`,
      [partitionName(audienceId), name, `${NAME_PREFIX(audienceId).replace(/_/g, '\\_')}%`],
    );
    return r.rows[0]!;
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
      if (l.valid === true) return 'ready';
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
      return done.valid === true ? 'ready' : 'building';
    } catch (err) {
      throw wrapPgError(err, `build the index on attribute ${attr} of audience ${audienceId}`);
    }
  }
}

/**
 * Reads an audience in id order, a page at a time, for the planner. A page is one short COPY query
 * (keyset: `id > afterId`, LIMIT), so no query stays open while a campaign is paused, and rows arrive
 * as binary COPY data (copy-out.ts, copy-binary.ts), which costs a fraction of the extended protocol's
 * per-row messages to parse, and of COPY text's too (no delimiters or escapes to scan for).
 */
import type pg from 'pg';
import { CopyOut } from './copy-out.js';
import type { ChunkBound, RecipientPage } from '../domain/chunk.js';
import { CopyFormatError, RecipientRowDecoder } from './copy-binary.js';
import { nextRowBytes } from '../domain/buffers.js';
import { HeraldError } from '../errors.js';
import { wrapPgError, type Db } from './db.js';
import { ReadReplica } from './read-replica.js';
import { ATTR_NAME, type FilterNode } from '../domain/segment-filter.js';
import { attrKeySql, compileFilter, indexedLeads, sqlLiteral, type IndexedLead } from '../domain/segment-sql.js';
import { attrIndexValid } from './attr-index.js';
import { partitionName } from './recipient-partitions.js';

function int(n: number, what: string): string {
  // COPY takes no bind parameters, so the integers are inlined: refuse anything else.
  if (!Number.isSafeInteger(n) || n < 0) throw new RangeError(`${what} must be a non-negative integer`);
  return String(n);
}

export interface PageQuery {
  audienceId: number;
  /** keyset: ids after this one */
  afterId: number;
  /** the audience's extent when planning began: recipients imported since are not in this plan */
  maxId: number;
  limit: number;
  /** whether each row carries its address (channels that need recipients) */
  withAddress: boolean;
  /**
   * a key of attrs whose value each row carries (validated at campaign creation)
   * @default null
   */
  segmentBy?: string | null;
  /**
   * the attributes each row carries as JSON text (null values left out): these keys (validated names,
   * domain/template.ts), 'all' of them, or none
   * @default null
   */
  attrs?: readonly string[] | 'all' | null;
  /**
   * only the recipients this filter selects (a campaign's segment); the page is still `limit` of them
   * @default null
   */
  filter?: FilterNode | null;
}

/**
 * The page's rows: the keyset range in id order, then the filter. With a filter, the range is read in an
 * `OFFSET 0` subquery, which PostgreSQL plans on its own, so the range keeps the primary key's order and
 * the filter applies to its rows as they come: given the filter's conditions directly, PostgreSQL takes
 * the attrs index for a selective one (a bitmap of the whole audience's matches, then a sort, for every
 * page: a plan quadratic in the segment's size). Reading in key order makes planning one pass over the
 * audience, whatever the filter.
 */
export function pageSql(q: PageQuery, lead: IndexedLead | null = null): string {
  const segmentBy = q.segmentBy ?? null;
  // COPY takes no parameters: the key is a validated name (campaign-input.ts), quoted as a literal here,
  // and the filter is compiled with its values as quoted literals.
  const segment = segmentBy === null ? '' : `, attrs->>${literal(segmentBy)}`;
  const attrs = attrsColumn(q.attrs ?? null);
  const columns = `id, user_id${q.withAddress ? ', address' : ''}${segment}${attrs}`;
  return `COPY (${rowsSql(q, lead, columns)}) TO STDOUT (FORMAT binary)`;
}

/**
 * The bounds of the chunks of `chunkSize` in a page: the id of every `chunkSize`-th row, found in PostgreSQL
 * by stepping through the page's ids `chunkSize` at a time (each step an index walk from the bound before,
 * `OFFSET chunkSize - 1 LIMIT 1`), so the planner reads a few hundred ids where the page holds a hundred
 * thousand rows. This costs PostgreSQL less than numbering the page's rows (a window function costs more
 * per row than the walk). A page shorter than its limit ends with a part of a chunk: `tailSql` finds it.
 */
export function boundsSql(q: PageQuery, chunkSize: number, lead: IndexedLead | null = null): string {
  const size = Number(int(chunkSize, 'chunkSize'));
  if (size < 1) throw new RangeError('chunkSize must be >= 1');
  const steps = Math.floor(q.limit / size);
  const chunk = { ...q, limit: size };
  const step = (after: string): string => `(${rowsSql(chunk, lead, 'id', { after, offset: size - 1 })})`;
  return (
    `WITH RECURSIVE b(id, n) AS (SELECT ${step(int(q.afterId, 'afterId'))}, 1 ` +
    `UNION ALL SELECT ${step('b.id')}, n + 1 FROM b WHERE b.id IS NOT NULL AND n < ${steps}) ` +
    `SELECT id FROM b WHERE id IS NOT NULL ORDER BY id`
  );
}

/** The recipients after the last whole chunk of a page (fewer than `chunkSize`): how many, and the last id. */
export function tailSql(q: PageQuery, chunkSize: number, lead: IndexedLead | null = null): string {
  return `SELECT count(*)::int AS n, max(id) AS last FROM (${rowsSql({ ...q, limit: chunkSize }, lead, 'id')}) t`;
}

/**
 * The page's rows of `columns`, in id order, `limit` of them; or, as a bounds step, the one id `offset`
 * rows after `after` (an SQL expression: the bound before).
 */
function rowsSql(q: PageQuery, lead: IndexedLead | null, columns: string, step: { after: string; offset: number } | null = null): string {
  const { audienceId, maxId, limit } = q;
  const filter = q.filter ?? null;
  const ids = `id > ${step?.after ?? int(q.afterId, 'afterId')} AND id <= ${int(maxId, 'maxId')}`;
  const range = `audience_id = ${int(audienceId, 'audienceId')} AND ${ids}`;
  const n = int(limit, 'limit');
  const cut = step === null ? `LIMIT ${n}` : `OFFSET ${step.offset} LIMIT 1`;
  if (filter !== null && lead !== null) {
    // One index scan per value, each in id order and cut at the page's size, merged by id (PostgreSQL's
    // Merge Append pulls from each only as far as the merge goes). Given `IN (…)` instead, it reads every
    // match of every value and sorts them, for every page.
    // Each reads the audience's own partition (where its index is), with no audience_id condition: given
    // one, the primary key (audience_id, id) also yields id order, and PostgreSQL, which cannot know that
    // one value's matches lie in id order on the heap too, costs the key's scan of every row lower on
    // some pages.
    const rest = lead.rest === null ? '' : ` AND ${compileFilter(lead.rest, { values: 'inline', use: 'scan' }).sql}`;
    const key = attrKeySql(lead.attr);
    const branches = lead.values.map(
      (v) =>
        `(SELECT ${columns} FROM ${partitionName(audienceId)} WHERE ${ids} AND ${key} = ${sqlLiteral(v)}${rest} ORDER BY id LIMIT ${n})`,
    );
    return `SELECT * FROM (${branches.join(' UNION ALL ')}) u ORDER BY id ${cut}`;
  }
  const rows =
    filter === null
      ? `SELECT ${columns} FROM recipients WHERE ${range}`
      : `SELECT ${columns} FROM (SELECT id, user_id, address, attrs FROM recipients WHERE ${range} ORDER BY id OFFSET 0) r ` +
        `WHERE ${compileFilter(filter, { values: 'inline', use: 'scan' }).sql}`;
  return `${rows} ORDER BY id ${cut}`;
}

export class RecipientReader {
  private readonly reads: ReadReplica;
  /** bytes a packed user id is given in a new page's buffer (the last page's, domain/buffers.ts) */
  private userBytes = 24;

  /** `reads`: where pages are read (a replica's, or the primary `db` when not given) */
  constructor(
    private readonly db: Db,
    reads?: ReadReplica,
  ) {
    this.reads = reads ?? new ReadReplica(db);
  }

  /** Up to `limit` recipients with `afterId < id <= maxId`, in id order. */
  page(q: PageQuery): Promise<RecipientPage> {
    return this.planned(
      q,
      'read audience page',
      async (client, lead) => {
        const copy = new CopyOut(
          pageSql(q, lead),
          new RecipientRowDecoder({
            address: q.withAddress,
            segment: (q.segmentBy ?? null) !== null,
            attrs: (q.attrs ?? null) !== null,
            expectedRows: q.limit,
            userBytes: this.userBytes,
          }),
        );
        void client.query(copy as never);
        try {
          const page = await copy.done;
          this.userBytes = nextRowBytes(page.users.length, page.ids.length, this.userBytes);
          return page;
        } catch (err) {
          // rows PostgreSQL sent but the decoder refused: not a connection problem
          if (err instanceof CopyFormatError) throw new HeraldError('INTERNAL', `audience page: ${err.message}`, {}, err);
          throw err;
        }
      },
      true,
    );
  }

  /** The bounds of the page's chunks of `chunkSize` (boundsSql): what the planner appends, without the rows. */
  bounds(q: PageQuery, chunkSize: number): Promise<ChunkBound[]> {
    if (q.limit % chunkSize !== 0) throw new RangeError('a page of bounds is whole chunks');
    return this.planned(q, 'read audience bounds', async (client, lead) => {
      // Where the page starts inside a run of ids with no gap (0019_recipient_runs.sql), and the plan
      // takes every recipient, its chunks are `chunkSize` ids each as far as the run goes: no walk.
      const bounds: ChunkBound[] = [];
      const steps = q.limit / chunkSize;
      if ((q.filter ?? null) === null) {
        const run = await client.query<{ last: number }>(
          'SELECT last_id AS last FROM recipient_runs WHERE audience_id = $1 AND first_id <= $2 AND last_id >= $2',
          [q.audienceId, q.afterId + 1],
        );
        const end = Math.min(run.rows[0]?.last ?? q.afterId, q.maxId);
        const whole = Math.min(steps, Math.floor((end - q.afterId) / chunkSize));
        for (let i = 1; i <= whole; i++) bounds.push({ lastId: q.afterId + i * chunkSize, row: i * chunkSize });
        if (whole === steps) return bounds;
      }
      const from = bounds[bounds.length - 1] ?? { lastId: q.afterId, row: 0 };
      const rest = { ...q, afterId: from.lastId, limit: (steps - bounds.length) * chunkSize };
      const walked = await client.query<{ id: number }>(boundsSql(rest, chunkSize, lead));
      walked.rows.forEach((b, i) => bounds.push({ lastId: Number(b.id), row: from.row + (i + 1) * chunkSize }));
      if (bounds.length < steps) {
        const after = bounds[bounds.length - 1]?.lastId ?? q.afterId;
        const t = await client.query<{ n: number; last: number | null }>(tailSql({ ...q, afterId: after }, chunkSize, lead));
        const tail = t.rows[0];
        if (tail !== undefined && tail.n > 0 && tail.last !== null)
          bounds.push({ lastId: Number(tail.last), row: bounds.length * chunkSize + tail.n });
      }
      return bounds;
    });
  }

  /**
   * Runs a read of the page's range in one transaction, planned as the page's filter asks. `single`: `read`
   * runs one statement, and an unfiltered one then needs no transaction block (read-replica.ts).
   */
  private planned<T>(
    q: PageQuery,
    what: string,
    read: (client: pg.PoolClient, lead: IndexedLead | null) => Promise<T>,
    single = false,
  ): Promise<T> {
    const leads = q.filter === undefined || q.filter === null ? [] : indexedLeads(q.filter);
    // A filtered page tests the filter on every row of its range, and its cost estimate (the whole range)
    // passes jit_above_cost, but the JIT-compiled page runs slower (bench/README.md, Segments). So it runs
    // with JIT off for its transaction alone (SET LOCAL: the connection, pooled here or by pgbouncer in
    // transaction mode, keeps its settings for the next one).
    const filtered = q.filter !== undefined && q.filter !== null;
    return this.reads.rows(
      q.audienceId,
      q.maxId,
      what,
      async (client) => {
        if (filtered) await client.query('SET LOCAL jit = off');
        // Asked on the page's own connection, every page: an index that becomes valid mid-plan serves the
        // rest of the plan, and both ways read the same recipients in the same order.
        let lead: IndexedLead | null = null;
        for (const l of leads)
          if (await attrIndexValid(client, q.audienceId, l.attr)) {
            lead = l;
            break;
          }
        // The index scans in id order are the plan; PostgreSQL's estimate of the rest of the filter (a
        // guess for most expressions on attrs) can make a bitmap of every remaining match and a sort look
        // cheaper, which costs each page all of the value's remaining matches. Off for this page alone.
        if (lead !== null) await client.query('SET LOCAL enable_bitmapscan = off; SET LOCAL enable_sort = off');
        return read(client, lead);
      },
      { statement: !filtered && single },
    );
  }

  /** How many recipients, and the highest id, the audience has now. */
  async extent(audienceId: number): Promise<{ count: number; maxId: number }> {
    try {
      const r = await this.db.query<{ n: number; max: number | null }>(
        'SELECT count(*)::bigint AS n, max(id) AS max FROM recipients WHERE audience_id = $1',
        [audienceId],
      );
      return { count: r.rows[0]?.n ?? 0, maxId: r.rows[0]?.max ?? 0 };
    } catch (err) {
      throw wrapPgError(err, 'audience extent');
    }
  }
}

/** Only the keys a campaign's templates read go into the chunk; a null value is the same as no key. */
function attrsColumn(attrs: readonly string[] | 'all' | null): string {
  if (attrs === null) return '';
  if (attrs === 'all') return ', jsonb_strip_nulls(attrs)::text';
  if (attrs.length === 0) return ", '{}'";
  return `, jsonb_strip_nulls(jsonb_build_object(${attrs.map((k) => `${literal(k)}, attrs->${literal(k)}`).join(', ')}))::text`;
}

function literal(s: string): string {
  if (!ATTR_NAME.test(s)) throw new RangeError(`not an attribute name: ${s}`);
  return sqlLiteral(s);
}

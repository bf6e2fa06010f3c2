/**
 * Reads an audience in id order, a page at a time, for the planner. A page is one short COPY query
 * (keyset: `id > afterId`, LIMIT), so no query stays open while a campaign is paused, and rows arrive
 * as binary COPY data (copy-out.ts, copy-binary.ts), which costs a fraction of the extended protocol's
 * per-row messages to parse, and of COPY text's too (no delimiters or escapes to scan for).
 */
import { CopyOut } from './copy-out.js';
import type { RecipientPage } from '../domain/chunk.js';
import { CopyFormatError, RecipientRowDecoder } from './copy-binary.js';
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
  const { audienceId, afterId, maxId, limit, withAddress } = q;
  const segmentBy = q.segmentBy ?? null;
  const filter = q.filter ?? null;
  // COPY takes no parameters: the key is a validated name (campaign-input.ts), quoted as a literal here,
  // and the filter is compiled with its values as quoted literals.
  const segment = segmentBy === null ? '' : `, attrs->>${literal(segmentBy)}`;
  const attrs = attrsColumn(q.attrs ?? null);
  const columns = `id, user_id${withAddress ? ', address' : ''}${segment}${attrs}`;
  const ids = `id > ${int(afterId, 'afterId')} AND id <= ${int(maxId, 'maxId')}`;
  const range = `audience_id = ${int(audienceId, 'audienceId')} AND ${ids}`;
  const n = int(limit, 'limit');
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
    return `COPY (SELECT * FROM (${branches.join(' UNION ALL ')}) u ORDER BY id LIMIT ${n}) TO STDOUT (FORMAT binary)`;
  }
  const rows =
    filter === null
      ? `SELECT ${columns} FROM recipients WHERE ${range}`
      : `SELECT ${columns} FROM (SELECT id, user_id, address, attrs FROM recipients WHERE ${range} ORDER BY id OFFSET 0) r ` +
        `WHERE ${compileFilter(filter, { values: 'inline', use: 'scan' }).sql}`;
  return `COPY (${rows} ORDER BY id LIMIT ${n}) TO STDOUT (FORMAT binary)`;
}

export class RecipientReader {
  private readonly reads: ReadReplica;

  /** `reads`: where pages are read (a replica's, or the primary `db` when not given) */
  constructor(
    private readonly db: Db,
    reads?: ReadReplica,
  ) {
    this.reads = reads ?? new ReadReplica(db);
  }

  /** Up to `limit` recipients with `afterId < id <= maxId`, in id order. */
  async page(q: PageQuery): Promise<RecipientPage> {
    const { limit, withAddress } = q;
    const leads = q.filter === undefined || q.filter === null ? [] : indexedLeads(q.filter);
    const segmentBy = q.segmentBy ?? null;
    // A filtered page tests the filter on every row of its range, and its cost estimate (the whole range)
    // passes jit_above_cost, but the JIT-compiled page runs slower (bench/README.md, Segments). So it runs
    // with JIT off for its transaction alone (SET LOCAL: the connection, pooled here or by pgbouncer in
    // transaction mode, keeps its settings for the next one).
    const filtered = q.filter !== undefined && q.filter !== null;
    return this.reads.rows(q.audienceId, q.maxId, 'read audience page', async (client) => {
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
      const sql = pageSql(q, lead);
      const copy = new CopyOut(
        sql,
        new RecipientRowDecoder({
          address: withAddress,
          segment: segmentBy !== null,
          attrs: (q.attrs ?? null) !== null,
          expectedRows: limit,
        }),
      );
      void client.query(copy as never);
      try {
        return await copy.done;
      } catch (err) {
        // rows PostgreSQL sent but the decoder refused: not a connection problem
        if (err instanceof CopyFormatError) throw new HeraldError('INTERNAL', `audience page: ${err.message}`, {}, err);
        throw err;
      }
    });
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

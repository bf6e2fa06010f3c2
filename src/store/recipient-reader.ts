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
}

export class RecipientReader {
  constructor(private readonly db: Db) {}

  /** Up to `limit` recipients with `afterId < id <= maxId`, in id order. */
  async page(q: PageQuery): Promise<RecipientPage> {
    const { audienceId, afterId, maxId, limit, withAddress } = q;
    const segmentBy = q.segmentBy ?? null;
    // COPY takes no parameters: the key is a validated name (campaign-input.ts), quoted as a literal here.
    const segment = segmentBy === null ? '' : `, attrs->>${literal(segmentBy)}`;
    const attrs = attrsColumn(q.attrs ?? null);
    const sql =
      `COPY (SELECT id, user_id${withAddress ? ', address' : ''}${segment}${attrs} FROM recipients ` +
      `WHERE audience_id = ${int(audienceId, 'audienceId')} AND id > ${int(afterId, 'afterId')} AND id <= ${int(maxId, 'maxId')} ` +
      `ORDER BY id LIMIT ${int(limit, 'limit')}) TO STDOUT (FORMAT binary)`;
    let client;
    try {
      client = await this.db.connect();
    } catch (err) {
      throw wrapPgError(err, 'connect for page');
    }
    try {
      const copy = new CopyOut(sql, new RecipientRowDecoder(withAddress, segmentBy !== null, limit, attrs !== ''));
      void client.query(copy as never);
      return await copy.done;
    } catch (err) {
      // rows PostgreSQL sent but the decoder refused: not a connection problem
      if (err instanceof CopyFormatError) throw new HeraldError('INTERNAL', `audience page: ${err.message}`, {}, err);
      throw wrapPgError(err, 'read audience page');
    } finally {
      client.release();
    }
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
  if (!/^[A-Za-z0-9_.-]{1,64}$/.test(s)) throw new RangeError(`not an attribute name: ${s}`);
  return `'${s}'`;
}

/**
 * A few recipients of an audience with what templates read (address, attributes), for previews and test
 * sends: by user id through the (audience_id, user_id) index, or the first ones in id order.
 */
import type { FilterNode } from '../domain/segment-filter.js';
import { compileFilter } from '../domain/segment-sql.js';
import { wrapPgError, type Db } from './db.js';

export interface RecipientRow {
  userId: string;
  address: string | null;
  /** JSON text, null values left out */
  attrs: string | null;
}

const COLUMNS = 'user_id AS "userId", address, jsonb_strip_nulls(attrs)::text AS attrs';

export class RecipientLookup {
  constructor(private readonly db: Db) {}

  /** The audience's recipients among `userIds`, in the order asked; ids not in the audience are absent. */
  async byUserIds(audienceId: number, userIds: readonly string[]): Promise<RecipientRow[]> {
    try {
      const r = await this.db.query<RecipientRow>(
        `SELECT ${COLUMNS} FROM recipients WHERE audience_id = $1 AND user_id = ANY($2::text[])`,
        [audienceId, userIds],
      );
      const found = new Map(r.rows.map((row) => [row.userId, row]));
      return userIds.flatMap((id) => found.get(id) ?? []);
    } catch (err) {
      throw wrapPgError(err, 'look up recipients');
    }
  }

  /**
   * The audience's first `n` recipients in id order (the order a campaign sends in); with a filter (the
   * campaign's segment), the first `n` it selects, so a preview shows whom the campaign would reach.
   */
  async first(audienceId: number, n: number, filter: FilterNode | null = null): Promise<RecipientRow[]> {
    const f = filter === null ? null : compileFilter(filter, { values: 'bind', firstParam: 3 });
    try {
      const r = await this.db.query<RecipientRow>(
        `SELECT ${COLUMNS} FROM recipients WHERE audience_id = $1${f === null ? '' : ` AND ${f.sql}`} ORDER BY id LIMIT $2`,
        [audienceId, n, ...(f?.params ?? [])],
      );
      return r.rows;
    } catch (err) {
      throw wrapPgError(err, 'sample recipients');
    }
  }
}

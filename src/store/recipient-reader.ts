/**
 * Loads one chunk's recipients by keyset range. One round trip per chunk, rows as arrays (no per-row
 * object), through a named prepared statement so PostgreSQL plans it once per connection.
 */
import type { ChunkDescriptor } from '../domain/chunk.js';
import { wrapPgError, type Db } from './db.js';

export interface ChunkRecipients {
  userIds: string[];
  addresses: Array<string | null>;
}

export class RecipientReader {
  constructor(private readonly db: Db) {}

  async load(chunk: ChunkDescriptor): Promise<ChunkRecipients> {
    try {
      const r = await this.db.query<[string, string | null]>({
        name: 'herald_chunk_recipients',
        text: 'SELECT user_id, address FROM recipients WHERE audience_id = $1 AND id > $2 AND id <= $3 ORDER BY id',
        values: [chunk.audienceId, chunk.afterId, chunk.lastId],
        rowMode: 'array',
      });
      const n = r.rows.length;
      const userIds = new Array<string>(n);
      const addresses = new Array<string | null>(n);
      for (let i = 0; i < n; i++) {
        const row = r.rows[i]!;
        userIds[i] = row[0];
        addresses[i] = row[1];
      }
      return { userIds, addresses };
    } catch (err) {
      throw wrapPgError(err, 'load chunk');
    }
  }

  /** Chunk boundaries: the last id of every `chunkSize`-th recipient after `afterId`, at most `limit` of them. */
  async boundaries(
    audienceId: number,
    afterId: number,
    maxId: number,
    chunkSize: number,
    limit: number,
  ): Promise<{ boundaries: Array<{ lastId: number; offset: number }>; scanned: number; scannedLastId: number }> {
    try {
      const r = await this.db.query<{ id: number; rn: number; n: number }>(
        `SELECT id, rn, n FROM (
           SELECT id, row_number() OVER (ORDER BY id) AS rn, count(*) OVER () AS n FROM (
             SELECT id FROM recipients WHERE audience_id = $1 AND id > $2 AND id <= $3 ORDER BY id LIMIT $5
           ) page
         ) numbered
         WHERE rn % $4 = 0 OR rn = n`,
        [audienceId, afterId, maxId, chunkSize, chunkSize * limit],
      );
      const rows = r.rows;
      const last = rows[rows.length - 1];
      return {
        boundaries: rows.filter((row) => row.rn % chunkSize === 0).map((row) => ({ lastId: row.id, offset: row.rn })),
        scanned: last?.n ?? 0,
        scannedLastId: last?.id ?? afterId,
      };
    } catch (err) {
      throw wrapPgError(err, 'plan boundaries');
    }
  }
}

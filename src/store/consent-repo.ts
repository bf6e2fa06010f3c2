/**
 * Suppressions and topics in PostgreSQL (schemas/postgres/0012_consent.sql), the record of who must not be
 * sent to and of each topic's cap. Bulk changes COPY into a staging table and apply in one statement, in
 * one transaction: a request's accepted lines apply whole or not at all, with the audit row of the change.
 */
import type pg from 'pg';
import { to as copyTo } from 'pg-copy-streams';
import type { SuppressionLine, TopicCap } from '../domain/consent-input.js';
import type { AuditRecord } from '../domain/audit.js';
import { recordAudit } from './audit-repo.js';
import { copyIn, inTransaction, wrapPgError, type Db } from './db.js';

export interface SuppressionRow {
  topic: string;
  reason: string | null;
  createdAt: Date;
}

/** Fingerprints loaded from the table, as halves, and the snapshot they were read in. */
export interface FingerprintLoad {
  hi: Uint32Array;
  lo: Uint32Array;
  count: number;
  /** every transaction below this xid was complete when the rows were read: the next load starts here */
  xmin: string;
}

const STAGE = `CREATE TEMP TABLE suppression_stage (line integer, topic text, user_id text, reason text, fp bigint) ON COMMIT DROP`;

/** rows a bulk PUT adds past which the table's statistics are refreshed before the answer */
const ANALYZE_AFTER_ROWS = 10_000;
// PGCOPY signature, flags and header extension length
const COPY_HEADER_BYTES = 19;
// a row of one bigint: field count (2), length (4), value (8)
const COPY_ROW_BYTES = 14;

export class ConsentRepo {
  constructor(private readonly db: Db) {}

  /** A mark from the change sequence, taken after a change committed (0012_consent.sql). */
  async changeMark(client?: pg.PoolClient): Promise<number> {
    try {
      const r = await (client ?? this.db).query<{ v: number }>(`SELECT nextval('suppression_changes') AS v`);
      return r.rows[0]!.v;
    } catch (err) {
      throw wrapPgError(err, 'take a suppression change mark');
    }
  }

  /**
   * PUT: every staged line becomes a suppression (a repeated line counts once, its last reason kept);
   * those already there keep their row (and their time), with the reason updated. The change mark after.
   */
  async bulkPut(copyText: AsyncIterable<string | Buffer>, audit: () => AuditRecord): Promise<number> {
    const inserted = await inTransaction(this.db, 'put suppressions', async (client) => {
      await client.query(STAGE);
      await copyIn(client, 'COPY suppression_stage (line, topic, user_id, reason, fp) FROM STDIN', copyText);
      const r = await client.query(
        `INSERT INTO suppressions (topic, user_id, reason, fp)
         SELECT DISTINCT ON (topic, user_id) topic, user_id, reason, fp FROM suppression_stage ORDER BY topic, user_id, line DESC
         ON CONFLICT (topic, user_id) DO UPDATE SET reason = EXCLUDED.reason
           WHERE suppressions.reason IS DISTINCT FROM EXCLUDED.reason`,
      );
      await recordAudit(client, audit());
      return r.rowCount ?? 0;
    });
    // Statistics at once after a big change: the senders' confirm query must take the primary key from
    // the next sub-batch on, not wait for autovacuum (without them it scanned the table per sub-batch).
    if (inserted >= ANALYZE_AFTER_ROWS)
      await this.db.query('ANALYZE suppressions').catch((err: unknown) => {
        throw wrapPgError(err, 'analyze suppressions');
      });
    return this.changeMark();
  }

  /** DELETE: the staged (topic, user) pairs stop being suppressed. */
  async bulkDelete(copyText: AsyncIterable<string | Buffer>, audit: () => AuditRecord): Promise<void> {
    await inTransaction(this.db, 'delete suppressions', async (client) => {
      await client.query(STAGE);
      await copyIn(client, 'COPY suppression_stage (line, topic, user_id, reason, fp) FROM STDIN', copyText);
      await client.query(`DELETE FROM suppressions s USING suppression_stage t WHERE s.topic = t.topic AND s.user_id = t.user_id`);
      await recordAudit(client, audit());
    });
  }

  /**
   * One suppression (an unsubscribe), audited when it is new; a second one of the same pair changes (and
   * records) nothing. The change mark after.
   */
  async put(s: SuppressionLine, fp: string, audit: AuditRecord): Promise<number> {
    await inTransaction(this.db, 'put suppression', async (client) => {
      const r = await client.query(
        `INSERT INTO suppressions (topic, user_id, reason, fp) VALUES ($1, $2, $3, $4) ON CONFLICT (topic, user_id) DO NOTHING`,
        [s.topic, s.userId, s.reason, fp],
      );
      if (r.rowCount === 1) await recordAudit(client, audit);
    });
    return this.changeMark();
  }

  async forUser(userId: string): Promise<SuppressionRow[]> {
    try {
      const r = await this.db.query<SuppressionRow>(
        `SELECT topic, reason, created_at AS "createdAt" FROM suppressions WHERE user_id = $1 ORDER BY topic`,
        [userId],
      );
      return r.rows;
    } catch (err) {
      throw wrapPgError(err, 'list suppressions');
    }
  }

  /** Of these (topic, user) pairs, the ones suppressed now: the exact answer behind an index hit. */
  async confirm(topics: readonly string[], userIds: readonly string[]): Promise<Array<{ topic: string; userId: string }>> {
    try {
      const r = await this.db.query<{ topic: string; user_id: string }>(
        `SELECT s.topic, s.user_id FROM unnest($1::text[], $2::text[]) AS q(topic, user_id)
         JOIN suppressions s ON s.topic = q.topic AND s.user_id = q.user_id`,
        [topics, userIds],
      );
      return r.rows.map((row) => ({ topic: row.topic, userId: row.user_id }));
    } catch (err) {
      throw wrapPgError(err, 'confirm suppressions');
    }
  }

  /**
   * Fingerprints of the rows written by transactions from `sinceXmin` on (null: all rows), read as binary
   * COPY in one REPEATABLE READ snapshot with that snapshot's xmin.
   */
  async loadFingerprints(sinceXmin: string | null): Promise<FingerprintLoad> {
    return inTransaction(this.db, 'load suppression fingerprints', async (client) => {
      await client.query('SET TRANSACTION ISOLATION LEVEL REPEATABLE READ');
      const x = await client.query<{ xmin: string }>('SELECT pg_snapshot_xmin(pg_current_snapshot())::text AS xmin');
      const where = sinceXmin === null ? '' : `WHERE xid >= '${BigInt(sinceXmin).toString()}'::xid8`;
      const stream = client.query(copyTo(`COPY (SELECT fp FROM suppressions ${where}) TO STDOUT (FORMAT binary)`));
      const parts: Buffer[] = [];
      for await (const b of stream as AsyncIterable<Buffer>) parts.push(b);
      const all = Buffer.concat(parts);
      const count = Math.max(0, Math.floor((all.length - COPY_HEADER_BYTES - 2) / COPY_ROW_BYTES));
      const hi = new Uint32Array(count);
      const lo = new Uint32Array(count);
      for (let i = 0, off = COPY_HEADER_BYTES + 6; i < count; i++, off += COPY_ROW_BYTES) {
        hi[i] = all.readUInt32BE(off);
        lo[i] = all.readUInt32BE(off + 4);
      }
      return { hi, lo, count, xmin: x.rows[0]!.xmin };
    });
  }

  async getTopic(topic: string): Promise<{ topic: string; cap: TopicCap | null; updatedAt: Date } | null> {
    try {
      const r = await this.db.query<{ topic: string; cap_max: number | null; cap_window_s: number | null; updated_at: Date }>(
        'SELECT topic, cap_max, cap_window_s, updated_at FROM topics WHERE topic = $1',
        [topic],
      );
      const row = r.rows[0];
      if (row === undefined) return null;
      const cap = row.cap_max === null || row.cap_window_s === null ? null : { max: row.cap_max, windowS: row.cap_window_s };
      return { topic: row.topic, cap, updatedAt: row.updated_at };
    } catch (err) {
      throw wrapPgError(err, 'get topic');
    }
  }

  async putTopic(
    topic: string,
    cap: TopicCap | null,
    audit: AuditRecord,
  ): Promise<{ topic: string; cap: TopicCap | null; updatedAt: Date }> {
    return inTransaction(this.db, 'put topic', async (client) => {
      const r = await client.query<{ updated_at: Date }>(
        `INSERT INTO topics (topic, cap_max, cap_window_s) VALUES ($1, $2, $3)
         ON CONFLICT (topic) DO UPDATE SET cap_max = EXCLUDED.cap_max, cap_window_s = EXCLUDED.cap_window_s, updated_at = now()
         RETURNING updated_at`,
        [topic, cap?.max ?? null, cap?.windowS ?? null],
      );
      await recordAudit(client, audit);
      return { topic, cap, updatedAt: r.rows[0]!.updated_at };
    });
  }

  /** Normal-priority campaigns of the topic that may have sent within the last `windowS` (the cap rebuild). */
  async topicCampaigns(topic: string, windowS: number): Promise<number[]> {
    try {
      const r = await this.db.query<{ id: number }>(
        `SELECT id FROM campaigns WHERE topic = $1 AND priority = 'normal' AND started_at IS NOT NULL
           AND (finished_at IS NULL OR finished_at > now() - make_interval(secs => $2))`,
        [topic, windowS],
      );
      return r.rows.map((row) => row.id);
    } catch (err) {
      throw wrapPgError(err, 'list topic campaigns');
    }
  }
}

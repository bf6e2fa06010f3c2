/**
 * Suppressions and topics in PostgreSQL (schemas/postgres/0012_consent.sql), the record of who must not be
 * sent to and of each topic's cap. Bulk changes are batches (0016_suppression_batches.sql): staged whole by
 * one transaction, applied in one statement by another, so a request's accepted lines apply whole or not
 * at all, and none of it waits on the request's connection.
 */
import type pg from 'pg';
import { to as copyTo } from 'pg-copy-streams';
import type { SuppressionLine, TopicCap } from '../domain/consent-input.js';
import type { AuditRecord } from '../domain/audit.js';
import { MAX_KEPT_REJECTED, type RejectedLine } from '../domain/import-job.js';
import type { StageRequest, SuppressionBatch, SuppressionBatchStatus, SuppressionOp } from '../domain/suppression-batch.js';
import { recordAudit } from './audit-repo.js';
import { CHECK_CLIENT, retryableSqlState, copyIn, inTransaction, triedAgainLater, wrapPgError, type Db } from './db.js';

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

// The advisory lock of suppression batches' applies, (SUPPRESSION_LOCK_CLASS, 0): one apply at a time.
const SUPPRESSION_LOCK_CLASS = 80_072;

/** Applies of one batch ending on a deadlock, a lock timeout or a cancel, after which it is failed. */
export const SUPPRESSION_APPLY_ATTEMPTS = 10;

const stageTable = (id: number): string => `suppression_stage_${Math.trunc(id)}`;

/** rows a put changes past which the table's statistics are refreshed in its transaction */
const ANALYZE_AFTER_ROWS = 10_000;

const BATCH_COLUMNS = `id::int AS id, op, status, total::int AS total, accepted::int AS accepted, rejected_count::int AS rejected_count,
  rejected, changed::int AS changed, mark_raised, error, started_at, received_at, finished_at`;

interface BatchRow {
  id: number;
  op: SuppressionOp;
  status: SuppressionBatchStatus;
  total: number;
  accepted: number;
  rejected_count: number;
  rejected: RejectedLine[];
  changed: number | null;
  mark_raised: boolean;
  error: string | null;
  started_at: Date;
  received_at: Date;
  finished_at: Date | null;
}

function toBatch(r: BatchRow): SuppressionBatch {
  return {
    id: r.id,
    op: r.op,
    status: r.status,
    total: r.total,
    accepted: r.accepted,
    rejectedCount: r.rejected_count,
    rejected: r.rejected,
    changed: r.changed,
    inEffect: r.status === 'completed' && (r.op === 'delete' || r.mark_raised),
    error: r.error,
    startedAt: r.started_at,
    receivedAt: r.received_at,
    finishedAt: r.finished_at,
  };
}
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
   * Stages a bulk change's body as a new batch (0016_suppression_batches.sql): the COPY text into a staging
   * table of its own, then the batch row `applying` with the audit row its apply writes, in one
   * transaction, so a batch is staged whole or not at all. Returns its id; `applyBatch` changes the lists.
   */
  async stageBatch(p: StageRequest): Promise<number> {
    return inTransaction(this.db, 'stage suppressions', async (client) => {
      const seq = await client.query<{ id: number }>(`SELECT nextval('suppression_batches_id_seq')::int AS id`);
      const id = seq.rows[0]!.id;
      await client.query(
        `CREATE TABLE ${stageTable(id)} (line integer, topic text, user_id text, reason text, fp bigint) WITH (autovacuum_enabled = false)`,
      );
      await copyIn(client, `COPY ${stageTable(id)} (line, topic, user_id, reason, fp) FROM STDIN WITH (FREEZE)`, p.copyText);
      const c = p.counts();
      // The audit row is written by the apply, with the change (0017_suppression_batch_audit.sql).
      await client.query(
        `INSERT INTO suppression_batches (id, op, total, accepted, rejected_count, rejected, started_at, audit)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
        [
          id,
          p.op,
          c.total,
          c.accepted,
          c.rejectedCount,
          JSON.stringify(c.rejected.slice(0, MAX_KEPT_REJECTED)),
          p.startedAt,
          JSON.stringify(p.audit(id)),
        ],
      );
      return id;
    });
  }

  /**
   * Applies the batches `applying` up to `id`, oldest first, and returns batch `id` as it ends (null: no
   * such batch, or `wait` is false and another process is applying). Batches apply one at a time across
   * processes (one advisory lock for all of them) and in the order they were received, so a request's
   * change never lands before an older one's. Each batch applies in one transaction with its move to
   * `completed` and its staging table's drop:
   * - PUT makes every staged line a suppression (a repeated line counts once, its last reason kept); a pair
   *   already there keeps its row and time, with the reason updated. Each row's `written_at` becomes the
   *   batch's receipt, if later.
   * - DELETE lifts the staged pairs written before the batch was received: an unsubscribe that came after
   *   the request stays, however late the apply runs.
   * The apply writes the request's audit row, with what it changed. A connection failure, a deadlock or a
   * lock timeout leaves a batch `applying` for a later try (the SUPPRESSION_APPLY_ATTEMPTS-th deadlock or
   * lock timeout fails it); any other failure ends it `failed`.
   */
  async applyBatch(id: number, opts: { wait: boolean }): Promise<SuppressionBatch | null> {
    for (;;) {
      const next = await this.applyOldest(id, opts.wait);
      if (next === 'busy') return null;
      if (next === 'none') return this.getBatch(id);
      if (next.id === id) return next;
    }
  }

  /** One transaction: the oldest batch `applying` with an id up to `upTo`, applied. */
  private async applyOldest(upTo: number, wait: boolean): Promise<SuppressionBatch | 'none' | 'busy'> {
    let client: pg.PoolClient;
    try {
      client = await this.db.connect();
    } catch (err) {
      throw wrapPgError(err, 'connect to apply suppressions');
    }
    let applying: number | null = null;
    try {
      await client.query(`BEGIN; ${CHECK_CLIENT}`);
      if (wait) await client.query('SELECT pg_advisory_xact_lock($1, 0)', [SUPPRESSION_LOCK_CLASS]);
      else {
        const l = await client.query<{ ok: boolean }>('SELECT pg_try_advisory_xact_lock($1, 0) AS ok', [SUPPRESSION_LOCK_CLASS]);
        if (l.rows[0]?.ok !== true) {
          await client.query('ROLLBACK');
          client.release();
          return 'busy';
        }
      }
      const r = await client.query<BatchRow & { audit: AuditRecord | null }>(
        `SELECT ${BATCH_COLUMNS}, audit FROM suppression_batches WHERE status = 'applying' AND id <= $1 ORDER BY id LIMIT 1 FOR UPDATE`,
        [upTo],
      );
      const row = r.rows[0];
      if (row === undefined) {
        await client.query('ROLLBACK');
        client.release();
        return 'none';
      }
      applying = row.id;
      const stage = stageTable(row.id);
      const changed =
        row.op === 'put'
          ? await client.query(
              `INSERT INTO suppressions (topic, user_id, reason, fp, written_at)
               SELECT DISTINCT ON (topic, user_id) topic, user_id, reason, fp, $1::timestamptz FROM ${stage} ORDER BY topic, user_id, line DESC
               ON CONFLICT (topic, user_id) DO UPDATE SET reason = EXCLUDED.reason,
                 written_at = GREATEST(suppressions.written_at, EXCLUDED.written_at)
                 WHERE suppressions.reason IS DISTINCT FROM EXCLUDED.reason OR suppressions.written_at < EXCLUDED.written_at`,
              [row.received_at],
            )
          : await client.query(
              `DELETE FROM suppressions s USING ${stage} t WHERE s.topic = t.topic AND s.user_id = t.user_id AND s.written_at < $1`,
              [row.received_at],
            );
      // Statistics at once after a big change, inside the change (ANALYZE counts its own rows): the
      // senders' confirm query takes the primary key from the first sub-batch after the mark on.
      if (row.op === 'put' && (changed.rowCount ?? 0) >= ANALYZE_AFTER_ROWS) await client.query('ANALYZE suppressions');
      const done = await client.query<BatchRow>(
        `UPDATE suppression_batches SET status = 'completed', changed = $2, error = NULL, finished_at = clock_timestamp() WHERE id = $1
         RETURNING ${BATCH_COLUMNS}`,
        [row.id, changed.rowCount ?? 0],
      );
      if (row.audit !== null) await recordAudit(client, { ...row.audit, detail: { ...row.audit.detail, changed: changed.rowCount ?? 0 } });
      await client.query(`DROP TABLE ${stage}`);
      await client.query('COMMIT');
      client.release();
      return toBatch(done.rows[0]!);
    } catch (err) {
      await client.query('ROLLBACK').catch(() => undefined);
      // released before the batch is failed: that takes a connection of its own
      client.release();
      const e = wrapPgError(err, 'apply suppressions');
      // One tried again later stays `applying` for the sweep, up to SUPPRESSION_APPLY_ATTEMPTS deadlocks or
      // lock timeouts; a lost connection is no attempt (the batch was not at fault).
      if (applying !== null && !triedAgainLater(err, e)) await this.failBatch(applying, e.message);
      else if (applying !== null && retryableSqlState(err)) await this.countAttempt(applying, e.message);
      throw e;
    }
  }

  /** Records a retryable failure of batch `id`'s apply; the last allowed one fails it. */
  private async countAttempt(id: number, reason: string): Promise<void> {
    try {
      const r = await this.db.query<{ attempts: number }>(
        `UPDATE suppression_batches SET attempts = attempts + 1, error = $2 WHERE id = $1 AND status = 'applying' RETURNING attempts`,
        [id, reason],
      );
      const attempts = r.rows[0]?.attempts ?? 0;
      if (attempts >= SUPPRESSION_APPLY_ATTEMPTS) await this.failBatch(id, `${reason} (${attempts} attempts)`);
    } catch {
      // PostgreSQL is away: the attempt goes uncounted, and the sweep tries the batch again
    }
  }

  private async failBatch(id: number, reason: string): Promise<void> {
    await inTransaction(this.db, 'fail suppressions', async (client) => {
      const r = await client.query(
        `UPDATE suppression_batches SET status = 'failed', error = $2, finished_at = clock_timestamp() WHERE id = $1 AND status = 'applying'`,
        [id, reason],
      );
      if (r.rowCount === 1) await client.query(`DROP TABLE IF EXISTS ${stageTable(id)}`);
    }).catch(() => undefined);
  }

  /** The change mark of an applied put is in Redis: the sweep need not raise it. */
  async markRaised(id: number): Promise<void> {
    try {
      await this.db.query('UPDATE suppression_batches SET mark_raised = true WHERE id = $1', [id]);
    } catch (err) {
      throw wrapPgError(err, 'record a suppression mark');
    }
  }

  async getBatch(id: number): Promise<SuppressionBatch | null> {
    try {
      const r = await this.db.query<BatchRow>(`SELECT ${BATCH_COLUMNS} FROM suppression_batches WHERE id = $1`, [id]);
      return r.rows[0] === undefined ? null : toBatch(r.rows[0]);
    } catch (err) {
      throw wrapPgError(err, 'read a suppression batch');
    }
  }

  /**
   * Batches the sweep looks at, oldest first: left `applying`, or applied puts whose mark is not raised,
   * for at least `olderThanMs` (a batch just staged is its own process's to apply).
   */
  async openBatches(limit: number, olderThanMs: number): Promise<Array<{ id: number; status: SuppressionBatchStatus }>> {
    try {
      const r = await this.db.query<{ id: number; status: SuppressionBatchStatus }>(
        `SELECT id::int AS id, status FROM suppression_batches
         WHERE (status = 'applying' AND received_at < clock_timestamp() - $2 * interval '1 millisecond')
            OR (status = 'completed' AND op = 'put' AND NOT mark_raised AND finished_at < clock_timestamp() - $2 * interval '1 millisecond')
         ORDER BY id LIMIT $1`,
        [limit, olderThanMs],
      );
      return r.rows;
    } catch (err) {
      throw wrapPgError(err, 'list open suppression batches');
    }
  }

  /**
   * One suppression (an unsubscribe), audited when it is new; a second one of the same pair changes (and
   * records) nothing. The change mark after.
   */
  async put(s: SuppressionLine, fp: string, audit: AuditRecord): Promise<number> {
    await inTransaction(this.db, 'put suppression', async (client) => {
      const r = await client.query<{ inserted: boolean }>(
        // A pair already there is written again (`written_at`), so a bulk DELETE received before this
        // unsubscribe and applied after it leaves it; only a new pair is audited (xmax 0: inserted).
        `INSERT INTO suppressions (topic, user_id, reason, fp) VALUES ($1, $2, $3, $4)
         ON CONFLICT (topic, user_id) DO UPDATE SET written_at = now() RETURNING xmax = 0 AS inserted`,
        [s.topic, s.userId, s.reason, fp],
      );
      if (r.rows[0]?.inserted === true) await recordAudit(client, audit);
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

/**
 * Import jobs in PostgreSQL (schemas/postgres/0008_imports.sql). A job's body is staged by `receive`
 * into a staging table of its own (the layout of a partition of `recipients`), in one transaction that ends with the job in `merging`; `merge`
 * moves the staged rows into the audience, in one transaction that ends with the job `completed` and
 * the staging table dropped. Whoever works on a job holds its advisory lock for the length of that
 * transaction, so a job whose lock is free while it is `receiving` or `merging` was left behind by a
 * process that stopped, and `resumeLeftBehind` finishes it.
 */
import type pg from 'pg';
import { HeraldError } from '../errors.js';
import type { ImportFormat, ImportJob, ImportStatus, RejectedLine } from '../domain/import-job.js';
import type { AuditRecord } from '../domain/audit.js';
import { AUDIT_COLUMNS, auditParams } from './audit-repo.js';
import { CHECK_CLIENT, copyIn, triedAgainLater, wrapPgError, type Db } from './db.js';
import { audienceHome, partitionName, type AudienceHome } from './recipient-partitions.js';

// The advisory lock class of import jobs (the key is (IMPORT_LOCK_CLASS, job id)); an arbitrary constant.
const IMPORT_LOCK_CLASS = 80_071;

/** What the request saw of its body, once the body has ended. */
export interface ReceivedCounts {
  receivedBytes: number;
  total: number;
  staged: number;
  rejectedCount: number;
  /** the first ones (the job keeps MAX_KEPT_REJECTED) */
  rejected: RejectedLine[];
  contentSha256: string | null;
}

export interface ReceiveOptions {
  audienceId: number;
  format: ImportFormat;
  /** COPY text (line_no, user_id, address, attrs per line); a source that throws fails the job */
  batches: AsyncIterable<string | Buffer>;
  /** read once `batches` has ended */
  counts(): ReceivedCounts;
  /** the job exists (visible to GET) and its body is about to be read */
  onCreated?(id: number): void;
  /** the import's start, recorded with the job's row (its id and audience are added) */
  audit: AuditRecord;
}

interface MergeResult {
  imported: number;
  home: AudienceHome;
}

// A backend whose Herald process died notices it within a second even in the middle of a long
// statement (an index build), and rolls back (CHECK_CLIENT): the job's lock is free for another process
// that soon.

// Past this many new rows, a merge refreshes its partition's statistics and visibility map.
const REFRESH_AFTER_ROWS = 10_000;

interface ImportRow {
  id: number;
  audience_id: number;
  status: ImportStatus;
  format: ImportFormat;
  received_bytes: number;
  total: number;
  staged: number;
  imported: number | null;
  duplicates: number | null;
  rejected: RejectedLine[];
  rejected_count: number;
  same_as: number | null;
  error: string | null;
  started_at: Date;
  received_at: Date | null;
  finished_at: Date | null;
}

const COLUMNS =
  'id, audience_id, status, format, received_bytes, total, staged, imported, duplicates, rejected, rejected_count, same_as, error, started_at, received_at, finished_at';

function toJob(r: ImportRow): ImportJob {
  return {
    id: r.id,
    audienceId: r.audience_id,
    status: r.status,
    format: r.format,
    receivedBytes: r.received_bytes,
    total: r.total,
    staged: r.staged,
    imported: r.imported,
    duplicates: r.duplicates,
    rejected: r.rejected,
    rejectedCount: r.rejected_count,
    sameAs: r.same_as,
    error: r.error,
    startedAt: r.started_at,
    receivedAt: r.received_at,
    finishedAt: r.finished_at,
  };
}

/** The staging table of job `id` (ids come from the sequence, so the name needs no quoting). */
/** The audience's highest id, 0 when it has none (one probe of the primary key). */
async function audienceTop(client: pg.PoolClient, audienceId: number): Promise<number> {
  const top = await client.query<{ max: number | null }>('SELECT max(id) AS max FROM recipients WHERE audience_id = $1', [audienceId]);
  return top.rows[0]?.max ?? 0;
}

/**
 * Records the ids a merge added above `above` as a run when they have no gap (0019_recipient_runs.sql):
 * `imported` unique ids between the lowest and the highest, found by two probes of the primary key, fill
 * it exactly when they are as many as its width. A run right after the audience's last one extends it.
 */
async function recordRun(client: pg.PoolClient, audienceId: number, above: number, imported: number): Promise<void> {
  const r = await client.query<{ lo: number | null; hi: number | null }>(
    'SELECT min(id) AS lo, max(id) AS hi FROM recipients WHERE audience_id = $1 AND id > $2',
    [audienceId, above],
  );
  const { lo, hi } = r.rows[0] ?? { lo: null, hi: null };
  if (lo === null || hi === null || hi - lo + 1 !== imported) return;
  const extended = await client.query('UPDATE recipient_runs SET last_id = $3 WHERE audience_id = $1 AND last_id = $2::bigint - 1', [
    audienceId,
    lo,
    hi,
  ]);
  if (extended.rowCount === 0)
    await client.query('INSERT INTO recipient_runs (audience_id, first_id, last_id) VALUES ($1, $2, $3)', [audienceId, lo, hi]);
}

function stageTable(id: number): string {
  return `import_stage_${Math.trunc(id)}`;
}

export class ImportRepo {
  constructor(
    private readonly db: Db,
    private readonly keptRejected: number,
  ) {}

  async get(id: number): Promise<ImportJob | null> {
    try {
      const r = await this.db.query<ImportRow>(`SELECT ${COLUMNS} FROM imports WHERE id = $1`, [id]);
      return r.rows[0] === undefined ? null : toJob(r.rows[0]);
    } catch (err) {
      throw wrapPgError(err, 'read import');
    }
  }

  async getMany(ids: readonly number[]): Promise<ImportJob[]> {
    if (ids.length === 0) return [];
    try {
      const r = await this.db.query<ImportRow>(`SELECT ${COLUMNS} FROM imports WHERE id = ANY($1::bigint[])`, [ids]);
      return r.rows.map(toJob);
    } catch (err) {
      throw wrapPgError(err, 'read imports');
    }
  }

  /** Newest first; `before`: an id, for the next page. */
  async listByAudience(audienceId: number, opts: { limit: number; before: number | null }): Promise<ImportJob[]> {
    try {
      const r = await this.db.query<ImportRow>(
        `SELECT ${COLUMNS} FROM imports WHERE audience_id = $1 AND ($2::bigint IS NULL OR id < $2) ORDER BY id DESC LIMIT $3`,
        [audienceId, opts.before, opts.limit],
      );
      return r.rows.map(toJob);
    } catch (err) {
      throw wrapPgError(err, 'list imports');
    }
  }

  /** Progress while receiving; best effort (the final counts are written when staging commits). */
  async progress(id: number, receivedBytes: number, staged: number, total: number): Promise<void> {
    await this.db
      .query(`UPDATE imports SET received_bytes = $2, staged = $3, total = $4 WHERE id = $1 AND status = 'receiving'`, [
        id,
        receivedBytes,
        staged,
        total,
      ])
      .catch(() => undefined);
  }

  /**
   * Creates the job and stages its body: COPY FREEZE into a table created in the same transaction
   * (no index, rows frozen and pages all-visible as written), which commits together with the move to
   * `merging`. Throws (the job ending `failed`, nothing staged) if the body or PostgreSQL fails.
   */
  async receive(opts: ReceiveOptions): Promise<number> {
    const client = await this.begin('stage import');
    let id: number | null = null;
    try {
      const seq = await client.query<{ id: number }>(`SELECT nextval('imports_id_seq') AS id`);
      id = seq.rows[0]!.id;
      // The lock comes before the row exists, so no process ever sees the job `receiving` and unlocked.
      await client.query('SELECT pg_advisory_xact_lock($1, $2::int)', [IMPORT_LOCK_CLASS, id]);
      // The row is written outside this transaction so GET shows the job while its body streams in; the
      // audit row of the start is written by the same statement.
      const audit = auditParams({ ...opts.audit, detail: { import_id: id, audience_id: opts.audienceId, format: opts.format } });
      const created = await this.db.query(
        `WITH job AS (INSERT INTO imports (id, audience_id, format) SELECT $1, $2, $3 WHERE EXISTS (SELECT 1 FROM audiences WHERE id = $2) RETURNING id)
         INSERT INTO audit_log (${AUDIT_COLUMNS}) SELECT $4, $5, $6, $7, $8, $9, $10, $11 FROM job`,
        [id, opts.audienceId, opts.format, ...audit],
      );
      if (created.rowCount === 0) {
        id = null;
        throw new HeraldError('NOT_FOUND', `audience ${opts.audienceId} not found`);
      }
      opts.onCreated?.(id);
      // The staging table has the layout of a partition of `recipients`, so the first import into an
      // audience can attach it as the audience's partition (attachStage); `id` holds the line number.
      const audience = Math.trunc(opts.audienceId);
      await client.query(
        `CREATE TABLE ${stageTable(id)} (audience_id bigint NOT NULL DEFAULT ${audience}
           CONSTRAINT ${stageTable(id)}_audience_check CHECK (audience_id = ${audience}),
           id bigint NOT NULL, user_id text COLLATE "C" NOT NULL, address text, attrs jsonb) WITH (autovacuum_enabled = false)`,
      );
      await copyIn(client, `COPY ${stageTable(id)} (id, user_id, address, attrs) FROM STDIN WITH (FREEZE)`, opts.batches);
      const c = opts.counts();
      await client.query(
        `UPDATE imports SET status = 'merging', received_bytes = $2, total = $3, staged = $4, rejected_count = $5,
           rejected = $6, content_sha256 = $7, received_at = clock_timestamp() WHERE id = $1`,
        [id, c.receivedBytes, c.total, c.staged, c.rejectedCount, JSON.stringify(c.rejected.slice(0, this.keptRejected)), c.contentSha256],
      );
      await client.query('COMMIT');
      client.release();
      return id;
    } catch (err) {
      await client.query('ROLLBACK').catch(() => undefined);
      // released before the job is failed: that takes a connection of its own
      client.release();
      const e = wrapPgError(err, 'stage import');
      if (id !== null) await this.fail(id, 'receiving', e.message);
      throw e;
    }
  }

  /**
   * Merges job `id` if it is `merging`: waits for whoever holds it (its receiver committing, or
   * another process merging it), then merges it here unless that one finished it. Returns the job as
   * it ends. A connection failure leaves the job `merging` (the transaction rolls back) for a later
   * try; any other failure ends it `failed` with the reason.
   */
  async merge(id: number, opts: { wait: boolean } = { wait: true }): Promise<ImportJob | null> {
    const client = await this.begin('merge import');
    let status: ImportStatus | null = null;
    let outcome: 'none' | 'finished' | 'merged' = 'none';
    let merged: MergeResult | null = null;
    let audienceId = 0;
    try {
      if (opts.wait) await client.query('SELECT pg_advisory_xact_lock($1, $2::int)', [IMPORT_LOCK_CLASS, id]);
      else {
        const l = await client.query<{ ok: boolean }>('SELECT pg_try_advisory_xact_lock($1, $2::int) AS ok', [IMPORT_LOCK_CLASS, id]);
        if (l.rows[0]?.ok !== true) {
          await client.query('ROLLBACK');
          client.release();
          return null;
        }
      }
      const r = await client.query<ImportRow & { content_sha256: string | null }>(
        `SELECT ${COLUMNS}, content_sha256 FROM imports WHERE id = $1 FOR UPDATE`,
        [id],
      );
      const row = r.rows[0];
      if (row === undefined) {
        await client.query('ROLLBACK');
        client.release();
        return null;
      }
      status = row.status;
      audienceId = row.audience_id;
      if (row.status === 'receiving') {
        // Its lock was free: the process receiving the body stopped before the body was staged.
        await client.query(`UPDATE imports SET status = 'failed', error = $2, finished_at = now() WHERE id = $1`, [
          id,
          'the process receiving the body stopped before all of it was staged; nothing was imported (send the file again)',
        ]);
        await client.query('COMMIT');
        outcome = 'finished';
      } else if (row.status !== 'merging') {
        await client.query('ROLLBACK');
        client.release();
        return toJob(row);
      } else {
        merged = await this.mergeLocked(client, row);
        await client.query('COMMIT');
        outcome = 'merged';
      }
    } catch (err) {
      await client.query('ROLLBACK').catch(() => undefined);
      // released before the job is failed: that takes a connection of its own
      client.release();
      const e = wrapPgError(err, 'merge import');
      // one tried again later stays `merging` for the sweep
      if (status === 'merging' && !triedAgainLater(err, e)) await this.fail(id, 'merging', e.message);
      throw e;
    }
    client.release();
    if (outcome === 'merged' && merged !== null && merged.imported > REFRESH_AFTER_ROWS && merged.home !== 'shared')
      this.refresh(audienceId);
    return this.get(id);
  }

  /** A pooled connection in a transaction that gives up on its statement if Herald's end of it goes. */
  private async begin(what: string): Promise<pg.PoolClient> {
    let client: pg.PoolClient;
    try {
      client = await this.db.connect();
    } catch (err) {
      throw wrapPgError(err, `connect for ${what}`);
    }
    try {
      await client.query('BEGIN');
      await client.query(CHECK_CLIENT);
      return client;
    } catch (err) {
      client.release(true);
      throw wrapPgError(err, what);
    }
  }

  /** Jobs `receiving` or `merging` that nobody holds: each is merged (or failed) here. */
  async resumeLeftBehind(onResumed: (job: ImportJob) => void): Promise<void> {
    let open: Array<{ id: number }>;
    try {
      open = (await this.db.query<{ id: number }>(`SELECT id FROM imports WHERE status IN ('receiving', 'merging') ORDER BY id LIMIT 1000`))
        .rows;
    } catch {
      return;
    }
    for (const { id } of open) {
      const job = await this.merge(id, { wait: false }).catch(() => null);
      if (job !== null) onResumed(job);
    }
  }

  private async mergeLocked(client: pg.PoolClient, row: ImportRow & { content_sha256: string | null }): Promise<MergeResult> {
    const stage = stageTable(row.id);
    // One merge per audience at a time, and the audience's highest id stays put while this one runs.
    // NO KEY UPDATE: a campaign created on the audience meanwhile (its foreign key's KEY SHARE) is not held up.
    const a = await client.query('SELECT id FROM audiences WHERE id = $1 FOR NO KEY UPDATE', [row.audience_id]);
    if (a.rowCount === 0) throw new HeraldError('NOT_FOUND', `audience ${row.audience_id} no longer exists`);
    const exists = await client.query<{ t: string | null }>('SELECT to_regclass($1) AS t', [stage]);
    if (exists.rows[0]?.t === null)
      throw new HeraldError('INTERNAL', 'the staged rows are gone; nothing was imported (send the file again)');
    let sameAs: number | null = null;
    if (row.content_sha256 !== null) {
      // The same content, imported completely into this audience before: every user id it holds is
      // in the audience already (recipients are never removed), so this one adds nothing.
      const same = await client.query<{ id: number }>(
        `SELECT id FROM imports WHERE audience_id = $1 AND content_sha256 = $2 AND format = $4 AND status = 'completed' AND id <> $3
         ORDER BY id DESC LIMIT 1`,
        [row.audience_id, row.content_sha256, row.id, row.format],
      );
      sameAs = same.rows[0]?.id ?? null;
    }
    let imported = 0;
    let home: AudienceHome = 'none';
    if (sameAs === null && row.staged > 0) {
      home = await audienceHome(client, row.audience_id);
      const above = home === 'none' ? 0 : await audienceTop(client, row.audience_id);
      imported = home === 'none' ? await this.attachStage(client, row) : await this.insertStage(client, row, home);
      if (imported > 0) await recordRun(client, row.audience_id, above, imported);
    }
    if (home !== 'none' || sameAs !== null || row.staged === 0) await client.query(`DROP TABLE ${stage}`);
    await client.query(
      `UPDATE imports SET status = 'completed', imported = $2, duplicates = staged - $2, same_as = $3, finished_at = clock_timestamp() WHERE id = $1`,
      [row.id, imported, sameAs],
    );
    return { imported, home };
  }

  /**
   * The audience has no partition: the staging table becomes it. Its two btree indexes are built in one
   * sort each (a user_id repeated in the file fails the unique one; then every line but the first of each
   * user id is deleted and it is built again), its GIN index on attrs too, and the table is attached; its
   * CHECK (audience_id = id) lets PostgreSQL attach it without a scan. Returns the recipients it holds.
   */
  private async attachStage(client: pg.PoolClient, row: ImportRow): Promise<number> {
    const stage = stageTable(row.id);
    // The indexes are built side by side, the primary key's and then the attrs' GIN (segment filters,
    // 0010_segments.sql) on a connection of their own: each build runs on one core and nothing else runs
    // during a merge, so the GIN build overlaps the unique one (and its duplicates' retry) instead of
    // following it. The btree ones are plain unique indexes first (builds on one table do not block each other)
    // and become constraints after; ATTACH takes the GIN one as the partition's part of the parent's.
    // A build left over from a merge that died is kept (IF NOT EXISTS).
    const primary = this.buildIndexes([
      `CREATE UNIQUE INDEX IF NOT EXISTS ${stage}_pkey ON ${stage} (audience_id, id) INCLUDE (user_id)`,
      `CREATE INDEX IF NOT EXISTS ${stage}_attrs_idx ON ${stage} USING gin (attrs jsonb_path_ops)`,
    ]);
    const addUnique = `CREATE UNIQUE INDEX IF NOT EXISTS ${stage}_user_key ON ${stage} (audience_id, user_id)`;
    let duplicates = 0;
    try {
      await client.query('SAVEPOINT unique_users');
      try {
        await client.query(addUnique);
      } catch (err) {
        if ((err as { code?: string }).code !== '23505') throw err;
        await client.query('ROLLBACK TO SAVEPOINT unique_users');
        // The delete's row lock conflicts with the other builds' share lock: waiting for them while
        // holding it would be a deadlock PostgreSQL cannot see (one side waits in Herald). So first those
        // builds end, then the delete (the finished indexes are kept up to date by it).
        await primary.catch(() => undefined);
        const d = await client.query(
          `DELETE FROM ${stage} s USING (SELECT user_id, min(id) AS first FROM ${stage} GROUP BY user_id HAVING count(*) > 1) k
           WHERE s.user_id = k.user_id AND s.id > k.first`,
        );
        duplicates = d.rowCount ?? 0;
        await client.query(addUnique);
      }
    } finally {
      await primary.catch(() => undefined);
    }
    await primary;
    const partition = partitionName(row.audience_id);
    await client.query(`ALTER TABLE ${stage} ADD CONSTRAINT ${partition}_pkey PRIMARY KEY USING INDEX ${stage}_pkey`);
    await client.query(`ALTER TABLE ${stage} ADD CONSTRAINT ${partition}_user_key UNIQUE USING INDEX ${stage}_user_key`);
    await client.query(`ALTER TABLE ${stage} RESET (autovacuum_enabled)`);
    await client.query(`ALTER TABLE ${stage} RENAME TO ${partition}`);
    await client.query(`ALTER TABLE ${partition} RENAME CONSTRAINT ${stage}_audience_check TO ${partition}_audience_check`);
    await client.query(`ALTER TABLE recipients ATTACH PARTITION ${partition} FOR VALUES IN (${Math.trunc(row.audience_id)})`);
    return row.staged - duplicates;
  }

  /** Index builds, one after the other, on a pooled connection of their own (a transaction each). */
  private async buildIndexes(sqls: readonly string[]): Promise<void> {
    let client: pg.PoolClient;
    try {
      client = await this.db.connect();
    } catch (err) {
      throw wrapPgError(err, 'connect for an index build');
    }
    try {
      for (const sql of sqls) {
        // Settings of the transaction alone (SET LOCAL): through pgbouncer in transaction mode the
        // connection's next transaction may run on another server connection, and a session setting
        // would stay behind on this one for whichever client gets it next.
        // Only the merge's own transaction ever holds the staging table: a wait this long is a bug, which
        // then fails the merge (the job is resumed) instead of hanging it.
        try {
          await client.query(`BEGIN; ${CHECK_CLIENT}; SET LOCAL lock_timeout = '60s'`);
          await client.query(sql);
          await client.query('COMMIT');
        } catch (err) {
          await client.query('ROLLBACK').catch(() => undefined);
          throw err;
        }
      }
    } catch (err) {
      throw wrapPgError(err, 'build an index');
    } finally {
      client.release();
    }
  }

  /**
   * The audience has recipients (or a partition): the staged rows are inserted. First line wins for a
   * repeated user_id; users already in the audience are skipped (no anti-join when it is empty). Ids
   * are the audience's highest id plus the line number, so they follow the file's order (the order a
   * campaign sends in); rows go in in user_id order, the order the de-duplicating sort leaves them in,
   * so the (audience_id, user_id) index grows at its right edge.
   */
  private async insertStage(client: pg.PoolClient, row: ImportRow, home: 'own' | 'shared'): Promise<number> {
    const top = await audienceTop(client, row.audience_id);
    const base = top === 0 ? null : top;
    const target = home === 'own' ? partitionName(row.audience_id) : 'recipients';
    const r = await client.query(
      `INSERT INTO ${target} (audience_id, id, user_id, address, attrs)
       SELECT $1, $2::bigint + d.id, d.user_id, d.address, d.attrs
       FROM (SELECT DISTINCT ON (user_id) id, user_id, address, attrs FROM ${stageTable(row.id)} ORDER BY user_id, id) d
       ${base === null ? '' : 'WHERE NOT EXISTS (SELECT 1 FROM recipients r WHERE r.audience_id = $1 AND r.user_id = d.user_id)'}`,
      [row.audience_id, base ?? 0],
    );
    return r.rowCount ?? 0;
  }

  /**
   * In the background, on the audience's partition alone: fresh statistics, and the visibility map
   * set on pages the merge wrote (the planner's keyset read is then index-only at once, rather than
   * when autovacuum gets there). Not awaited: the planner's read takes its index either way.
   */
  private refresh(audienceId: number): void {
    const partition = partitionName(audienceId);
    void this.db
      .query(`ANALYZE ${partition}`)
      .then(() => this.db.query(`VACUUM ${partition}`))
      .catch(() => undefined);
  }

  /** Ends a job `failed` (if it is still `from`), dropping whatever it staged. Best effort. */
  private async fail(id: number, from: ImportStatus, reason: string): Promise<void> {
    await this.db
      .query(`UPDATE imports SET status = 'failed', error = $3, finished_at = now() WHERE id = $1 AND status = $2`, [id, from, reason])
      .then(() => this.db.query(`DROP TABLE IF EXISTS ${stageTable(id)}`))
      .catch(() => undefined);
  }
}

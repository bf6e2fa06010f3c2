/**
 * Campaign rows. Status changes are single conditional UPDATEs whose allowed (from → to) pairs come from
 * the pure transition table, so two racing commands cannot both win and no read-then-write gap exists.
 * A caller's command (create, PATCH, start, pause, …) runs in a transaction that holds the row and records
 * the audit row with the status before and after, so no change commits unrecorded.
 */
import type pg from 'pg';
import { HeraldError } from '../errors.js';
import { allowedFrom, isTerminal, transition as move, type CampaignCommand, type CampaignStatus } from '../domain/campaign-status.js';
import type {
  CampaignContent,
  ChannelSpec,
  CreateCampaignInput,
  ListCampaignsQuery,
  UpdateCampaignInput,
} from '../domain/campaign-input.js';
import type { MissingPolicy } from '../domain/template.js';
import type { Priority } from '../domain/consent-input.js';
import { filterJson, storedFilter } from '../domain/segment-filter.js';
import { compileFilter } from '../domain/segment-sql.js';
import type { AuditRecord } from '../domain/audit.js';
import { recordAudit } from './audit-repo.js';
import { inTransaction, wrapPgError, type Db } from './db.js';
import { ReadReplica } from './read-replica.js';
import { countRange } from './recipient-runs.js';

export interface Campaign {
  id: number;
  name: string;
  audienceId: number;
  channel: ChannelSpec;
  content: CampaignContent;
  chunkSize: number;
  scheduleAt: Date | null;
  rateLimit: number | null;
  status: CampaignStatus;
  total: number | null;
  planMaxId: number | null;
  planGeneration: number;
  plannedChunks: number;
  plannedLastId: number;
  plannedCount: number;
  planningDone: boolean;
  error: string | null;
  createdAt: Date;
  startedAt: Date | null;
  /** when every unsent recipient of a cancelled (or failed) campaign was recorded as aborted */
  abortsRecordedAt: Date | null;
  finishedAt: Date | null;
  /** the audience the current round plans from: the campaign's own, or a retry round's (0005_retry_rounds.sql) */
  planAudienceId: number;
  roundGeneration: number;
  firstRetryGeneration: number | null;
  retried: number;
  /** bumped by every status change (0006_status_version.sql): announcements carry it */
  statusVersion: number;
  /** the recipients' attribute every event carries as its segment (0007_segment_by.sql), or null */
  segmentBy: string | null;
  /** what templates read as `variables.*` (0011_templates.sql), or null */
  variables: Record<string, unknown> | null;
  /** what a template's missing value does: render nothing, or skip the recipient */
  missing: MissingPolicy;
  /** the suppression list and cap the campaign's sends are screened by, besides the global list (0012_consent.sql) */
  topic: string | null;
  /** `critical` bypasses the topic's list and cap, never the global list */
  priority: Priority;
  /** the segment the campaign was created for (0010_segments.sql), or null */
  segmentId: number | null;
  /**
   * the filter the campaign plans with, as JSON (domain/segment-filter.ts), copied at creation from its
   * segment or given inline; null: the whole audience
   */
  filter: unknown;
}

/**
 * Each field's column: the compiler holds this map to the interface (a field without a column, or a column
 * for no field, does not build), and every query returns `RETURNING_CAMPAIGN`, so rows arrive camelCase.
 * bigint columns come back as numbers (store/db.ts sets pg's int8 parser).
 */
const COLUMNS = {
  id: 'id',
  name: 'name',
  audienceId: 'audience_id',
  channel: 'channel',
  content: 'content',
  chunkSize: 'chunk_size',
  scheduleAt: 'schedule_at',
  rateLimit: 'rate_limit',
  status: 'status',
  total: 'total',
  planMaxId: 'plan_max_id',
  planGeneration: 'plan_generation',
  plannedChunks: 'planned_chunks',
  plannedLastId: 'planned_last_id',
  plannedCount: 'planned_count',
  planningDone: 'planning_done',
  error: 'error',
  createdAt: 'created_at',
  startedAt: 'started_at',
  abortsRecordedAt: 'aborts_recorded_at',
  finishedAt: 'finished_at',
  // before any retry round, the campaign's own audience
  planAudienceId: 'COALESCE(plan_audience_id, audience_id)',
  roundGeneration: 'round_generation',
  firstRetryGeneration: 'first_retry_generation',
  retried: 'retried',
  statusVersion: 'status_version',
  segmentBy: 'segment_by',
  variables: 'variables',
  missing: 'missing',
  topic: 'topic',
  priority: 'priority',
  segmentId: 'segment_id',
  filter: 'filter',
} as const satisfies Record<keyof Campaign, string>;

const RETURNING_CAMPAIGN = Object.entries(COLUMNS)
  .map(([field, column]) => `${column} AS "${field}"`)
  .join(', ');

export class CampaignRepo {
  private readonly reads: ReadReplica;

  /** `reads`: where plan counts run (a replica's, or the primary `db` when not given) */
  constructor(
    private readonly db: Db,
    reads?: ReadReplica,
  ) {
    this.reads = reads ?? new ReadReplica(db);
  }

  async create(input: CreateCampaignInput, defaultChunkSize: number, audit: AuditRecord): Promise<Campaign> {
    return inTransaction(this.db, 'create campaign', async (client) => {
      let filter = input.filter === null ? null : JSON.stringify(filterJson(input.filter));
      if (input.segmentId !== null) {
        // The campaign keeps its own copy of the segment's filter: what it plans never changes after.
        const s = await client.query<{ audience_id: number; filter: unknown }>(
          'SELECT audience_id, filter FROM segments WHERE id = $1 AND deleted_at IS NULL',
          [input.segmentId],
        );
        const seg = s.rows[0];
        if (seg === undefined) throw HeraldError.invalid([{ field: 'segment_id', error: 'no such segment' }]);
        if (seg.audience_id !== input.audienceId)
          throw HeraldError.invalid([
            { field: 'segment_id', error: `is a segment of audience ${seg.audience_id}, not of audience_id ${input.audienceId}` },
          ]);
        filter = JSON.stringify(seg.filter);
      }
      const r = await client.query<Campaign>(
        `INSERT INTO campaigns (name, audience_id, channel, content, chunk_size, schedule_at, status, rate_limit, segment_by, variables, missing, topic, priority, segment_id, filter)
         SELECT $1, a.id, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15 FROM audiences a WHERE a.id = $2
         RETURNING ${RETURNING_CAMPAIGN}`,
        [
          input.name,
          input.audienceId,
          JSON.stringify(input.channel),
          JSON.stringify(input.content),
          input.chunkSize ?? defaultChunkSize,
          input.scheduleAt,
          input.scheduleAt === null ? 'draft' : 'scheduled',
          input.rateLimit,
          input.segmentBy,
          input.variables === null ? null : JSON.stringify(input.variables),
          input.missing,
          input.topic,
          input.priority,
          input.segmentId,
          filter,
        ],
      );
      const row = r.rows[0];
      if (row === undefined) throw HeraldError.invalid([{ field: 'audience_id', error: 'no such audience' }]);
      await recordAudit(client, { ...audit, campaignId: row.id, statusBefore: null, statusAfter: row.status });
      return row;
    });
  }

  async get(id: number): Promise<Campaign | null> {
    try {
      const r = await this.db.query<Campaign>(`SELECT ${RETURNING_CAMPAIGN} FROM campaigns WHERE id = $1`, [id]);
      return r.rows[0] ?? null;
    } catch (err) {
      throw wrapPgError(err, 'get campaign');
    }
  }

  /** The campaign's current plan generation (null: no such campaign). */
  async planGeneration(id: number): Promise<number | null> {
    try {
      const r = await this.db.query<{ g: number }>('SELECT plan_generation AS g FROM campaigns WHERE id = $1', [id]);
      return r.rows[0]?.g ?? null;
    } catch (err) {
      throw wrapPgError(err, 'read plan generation');
    }
  }

  async status(id: number): Promise<CampaignStatus | null> {
    try {
      const r = await this.db.query<{ status: CampaignStatus }>('SELECT status FROM campaigns WHERE id = $1', [id]);
      return r.rows[0]?.status ?? null;
    } catch (err) {
      throw wrapPgError(err, 'read campaign status');
    }
  }

  async list(q: ListCampaignsQuery): Promise<Campaign[]> {
    try {
      const r = await this.db.query<Campaign>(
        `SELECT ${RETURNING_CAMPAIGN} FROM campaigns
         WHERE ($1::text IS NULL OR status = $1) AND ($2::bigint IS NULL OR id < $2)
         ORDER BY id DESC LIMIT $3`,
        [q.status, q.before, q.limit],
      );
      return r.rows;
    } catch (err) {
      throw wrapPgError(err, 'list campaigns');
    }
  }

  /** Campaigns in `status`, with the version of that status (announcements carry it). */
  async withStatus(status: CampaignStatus): Promise<Array<{ id: number; statusVersion: number }>> {
    try {
      const r = await this.db.query<{ id: number; status_version: number }>(
        'SELECT id, status_version FROM campaigns WHERE status = $1 ORDER BY id',
        [status],
      );
      return r.rows.map((row) => ({ id: row.id, statusVersion: Number(row.status_version) }));
    } catch (err) {
      throw wrapPgError(err, 'list campaigns by status');
    }
  }

  /**
   * PATCH: the rate limit changes until the campaign finishes; the schedule only before it starts. The row
   * is held (FOR UPDATE) for the change, so it cannot race the scheduler's start: one of them wins, the
   * other sees the status it left (409 here).
   */
  async update(id: number, input: UpdateCampaignInput, audit: AuditRecord): Promise<Campaign> {
    const reschedule = input.scheduleAt !== undefined;
    const changeable: readonly CampaignStatus[] = reschedule ? ['draft', 'scheduled'] : ['draft', 'scheduled', 'sending', 'paused'];
    return inTransaction(this.db, 'update campaign', async (client) => {
      const before = await lockStatus(client, id);
      if (!changeable.includes(before)) {
        const what = reschedule ? 'reschedule' : 'change';
        throw new HeraldError('CONFLICT', `cannot ${what} a campaign that is ${before}`, { status: before, id });
      }
      const r = await client.query<Campaign>(
        `UPDATE campaigns SET
           rate_limit = CASE WHEN $2 THEN $3::integer ELSE rate_limit END,
           schedule_at = CASE WHEN $4 THEN $5::timestamptz ELSE schedule_at END,
           status = CASE WHEN $4 THEN (CASE WHEN $5::timestamptz IS NULL THEN 'draft' ELSE 'scheduled' END) ELSE status END,
           status_version = status_version + CASE WHEN $4 THEN 1 ELSE 0 END,
           updated_at = now()
         WHERE id = $1 RETURNING ${RETURNING_CAMPAIGN}`,
        [id, input.rateLimit !== undefined, input.rateLimit ?? null, reschedule, input.scheduleAt ?? null],
      );
      const row = r.rows[0]!;
      const detail: Record<string, unknown> = {};
      if (input.rateLimit !== undefined) detail.rate_limit = input.rateLimit;
      if (reschedule) detail.schedule_at = input.scheduleAt?.toISOString() ?? null;
      await recordAudit(client, { ...audit, campaignId: id, statusBefore: before, statusAfter: row.status, detail });
      return row;
    });
  }

  /**
   * Starts every scheduled campaign whose time has come, in one statement: SKIP LOCKED lets several
   * dispatcher processes run this at once, and the status condition makes a start happen exactly once.
   */
  async startDue(limit = 100): Promise<Array<{ id: number; statusVersion: number }>> {
    try {
      const r = await this.db.query<{ id: number; status_version: number }>(
        `UPDATE campaigns SET status = 'sending', started_at = COALESCE(started_at, now()), status_version = status_version + 1,
           updated_at = now()
         WHERE id IN (SELECT id FROM campaigns WHERE status = 'scheduled' AND schedule_at <= now()
                      ORDER BY schedule_at LIMIT $1 FOR UPDATE SKIP LOCKED)
           AND status = 'scheduled'
         RETURNING id, status_version`,
        [limit],
      );
      return r.rows.map((row) => ({ id: row.id, statusVersion: Number(row.status_version) }));
    } catch (err) {
      throw wrapPgError(err, 'start scheduled campaigns');
    }
  }

  /**
   * Applies `command` atomically: 404 for an unknown id, 409 with the current status when the
   * transition is illegal from it (including when another request changed it first).
   */
  async transition(id: number, command: CampaignCommand, error: string | null = null, attempt = 1): Promise<Campaign> {
    const pairs = allowedFrom(command);
    const cases = pairs.map((p) => `WHEN '${p.from}' THEN '${p.to}'`).join(' ');
    const to = new Set(pairs.map((p) => p.to));
    const terminal = [...to].some((s) => isTerminal(s));
    const starts = to.has('sending');
    let row: Campaign | undefined;
    try {
      const r = await this.db.query<Campaign>(
        `UPDATE campaigns SET
           status = CASE status ${cases} END,
           status_version = status_version + 1,
           updated_at = now()
           ${starts ? ', started_at = COALESCE(started_at, now())' : ''}
           ${terminal ? ', finished_at = now()' : ''}
           ${to.has('completed') ? ', counts_checked_at = NULL, counts_claimed_at = NULL' : ''}
           ${error !== null ? ', error = $3' : ''}
         WHERE id = $1 AND status = ANY($2::text[])
         RETURNING ${RETURNING_CAMPAIGN}`,
        error !== null ? [id, pairs.map((p) => p.from), error] : [id, pairs.map((p) => p.from)],
      );
      row = r.rows[0];
    } catch (err) {
      throw wrapPgError(err, `${command} campaign`);
    }
    if (row !== undefined) return row;
    const current = await this.status(id);
    if (current === null) throw new HeraldError('NOT_FOUND', `campaign ${id} not found`);
    // The status that refused the move may have changed again since (racing calls): if the move is legal
    // now, it is tried again, so a 409 always names a status the move is illegal from.
    if (pairs.some((p) => p.from === current) && attempt < 5) return this.transition(id, command, error, attempt + 1);
    throw new HeraldError('CONFLICT', `cannot ${command} a campaign that is ${current}`, { status: current, id });
  }

  /**
   * A caller's `command` (start, pause, resume, cancel), recorded in the audit with the status before and
   * after: the row is held while the move is checked and made, so the 409 names the status that refused it.
   */
  async command(id: number, command: CampaignCommand, audit: AuditRecord): Promise<Campaign> {
    return inTransaction(this.db, `${command} campaign`, async (client) => {
      const before = await lockStatus(client, id);
      const t = move(before, command);
      if (!t.ok) throw new HeraldError('CONFLICT', `cannot ${command} a campaign that is ${before}`, { status: before, id });
      const after = t.to;
      const r = await client.query<Campaign>(
        `UPDATE campaigns SET status = $2, status_version = status_version + 1, updated_at = now()
           ${after === 'sending' ? ', started_at = COALESCE(started_at, now())' : ''}
           ${isTerminal(after) ? ', finished_at = now()' : ''}
         WHERE id = $1 RETURNING ${RETURNING_CAMPAIGN}`,
        [id, after],
      );
      await recordAudit(client, { ...audit, campaignId: id, statusBefore: before, statusAfter: after });
      return r.rows[0]!;
    });
  }

  /**
   * Fixes the plan's extent once: recipients with id <= plan_max_id are in it (a resumed planner keeps
   * the first snapshot; later imports are not). max(id) is an index lookup, so planning starts at once.
   */
  async beginPlan(id: number): Promise<Campaign> {
    try {
      await this.db.query(
        `UPDATE campaigns c SET plan_max_id = COALESCE((SELECT max(r.id) FROM recipients r
             WHERE r.audience_id = COALESCE(c.plan_audience_id, c.audience_id)), 0),
           updated_at = now()
         WHERE c.id = $1 AND c.plan_max_id IS NULL`,
        [id],
      );
    } catch (err) {
      throw wrapPgError(err, 'begin plan');
    }
    const c = await this.get(id);
    if (c === null) throw new HeraldError('NOT_FOUND', `campaign ${id} not found`);
    return c;
  }

  /**
   * Counts the plan's recipients: the audience's up to plan_max_id that the campaign's filter selects (a
   * scan, or the attrs index's matches, so the planner runs it beside its first pages). A campaign made
   * from a segment starts from the segment's kept count when that one covers no more than the plan
   * (segment-repo.ts: a kept count stays exact), and counts only the recipients above it.
   */
  async countPlanTotal(id: number): Promise<number> {
    try {
      const c = await this.db.query<{
        audience_id: number;
        plan_max_id: number | null;
        filter: unknown;
        counted: number | null;
        counted_max_id: number | null;
      }>(
        `SELECT COALESCE(c.plan_audience_id, c.audience_id) AS audience_id, c.plan_max_id, c.filter, s.counted, s.counted_max_id FROM campaigns c
         LEFT JOIN segments s ON s.id = c.segment_id AND s.filter = c.filter AND s.counted_max_id <= c.plan_max_id
           AND COALESCE(c.plan_audience_id, c.audience_id) = c.audience_id
         WHERE c.id = $1`,
        [id],
      );
      const row = c.rows[0];
      if (row === undefined) throw new HeraldError('NOT_FOUND', `campaign ${id} not found`);
      const f = row.filter === null ? null : compileFilter(storedFilter(row.filter, `campaign ${id}`), { values: 'bind', firstParam: 4 });
      const from = row.counted_max_id ?? 0;
      // Bounded by plan_max_id, so a replica that holds it answers exactly (read-replica.ts).
      const n = await this.reads.rows(row.audience_id, row.plan_max_id ?? 0, 'count plan', async (client) => {
        if (f === null) return countRange(client, row.audience_id, from, row.plan_max_id ?? 0);
        const r = await client.query<{ n: number }>(
          `SELECT count(*) AS n FROM recipients WHERE audience_id = $1 AND id > $2 AND id <= $3 AND ${f.sql}`,
          [row.audience_id, from, row.plan_max_id ?? 0, ...f.params],
        );
        return Number(r.rows[0]?.n ?? 0);
      });
      const total = Number(row.counted ?? 0) + n;
      await this.db.query('UPDATE campaigns SET total = $2 WHERE id = $1', [id, total]);
      return total;
    } catch (err) {
      throw wrapPgError(err, 'count plan');
    }
  }

  /**
   * Starts a new plan generation after the stream was lost: planning starts over (the planner leaves out
   * recipients that already have an outcome). Conditional on the generation seen, so when several owners
   * notice the loss, one restarts the plan.
   */
  async restartPlan(id: number, seenGeneration: number, opts: { closing?: boolean } = {}): Promise<boolean> {
    // closing: the closer of a cancelled (or failed) campaign walks the audience again under the next
    // generation, to record as aborted whoever has no outcome (campaign-closer.ts, after a lost stream)
    const status = opts.closing === true ? `status IN ('cancelled', 'failed') AND aborts_recorded_at IS NULL` : `status = 'sending'`;
    try {
      const r = await this.db.query(
        `UPDATE campaigns SET plan_generation = plan_generation + 1, planned_chunks = 0, planned_last_id = 0,
           planned_count = 0, planning_done = false, updated_at = now()
         WHERE id = $1 AND plan_generation = $2 AND ${status}`,
        [id, seenGeneration],
      );
      return r.rowCount === 1;
    } catch (err) {
      throw wrapPgError(err, 'restart plan');
    }
  }

  /** Cancelled (or failed) campaigns that had started and whose aborted recipients are not all recorded yet. */
  async idsToClose(): Promise<number[]> {
    try {
      const r = await this.db.query<{ id: string }>(
        `SELECT id FROM campaigns WHERE status IN ('cancelled', 'failed') AND started_at IS NOT NULL AND aborts_recorded_at IS NULL ORDER BY id`,
      );
      return r.rows.map((row) => Number(row.id));
    } catch (err) {
      throw wrapPgError(err, 'list campaigns to close');
    }
  }

  async markAbortsRecorded(id: number): Promise<void> {
    try {
      await this.db.query(
        `UPDATE campaigns SET aborts_recorded_at = now(), updated_at = now() WHERE id = $1 AND aborts_recorded_at IS NULL`,
        [id],
      );
    } catch (err) {
      throw wrapPgError(err, 'record aborts');
    }
  }

  /**
   * Takes on a completed campaign's count check (sink/count-repair.ts), unless it is done or another process
   * took it on less than `claimMs` ago; whether this process has it now.
   */
  async claimCountCheck(id: number, claimMs: number): Promise<boolean> {
    try {
      const r = await this.db.query(
        `UPDATE campaigns SET counts_claimed_at = now()
         WHERE id = $1 AND status = 'completed' AND counts_checked_at IS NULL
           AND (counts_claimed_at IS NULL OR counts_claimed_at < now() - $2 * interval '1 millisecond')`,
        [id, claimMs],
      );
      return r.rowCount === 1;
    } catch (err) {
      throw wrapPgError(err, 'claim count check');
    }
  }

  /** The count check of a completed campaign is done. */
  async markCountsChecked(id: number): Promise<void> {
    try {
      await this.db.query(`UPDATE campaigns SET counts_checked_at = now() WHERE id = $1 AND status = 'completed'`, [id]);
    } catch (err) {
      throw wrapPgError(err, 'mark counts checked');
    }
  }

  /** Completed campaigns whose count check is due and not claimed within `claimMs` (at most `limit`). */
  async idsToCheckCounts(claimMs: number, limit: number): Promise<number[]> {
    try {
      const r = await this.db.query<{ id: string }>(
        `SELECT id FROM campaigns
         WHERE status = 'completed' AND counts_checked_at IS NULL
           AND (counts_claimed_at IS NULL OR counts_claimed_at < now() - $1 * interval '1 millisecond')
         ORDER BY id LIMIT $2`,
        [claimMs, limit],
      );
      return r.rows.map((row) => Number(row.id));
    } catch (err) {
      throw wrapPgError(err, 'list campaigns whose counts are due a check');
    }
  }

  /** Records a plan's progress, unless the campaign has been re-planned under a later generation since. */
  async recordPlanned(p: { id: number; generation: number; chunks: number; lastId: number; count: number; done: boolean }): Promise<void> {
    try {
      await this.db.query(
        `UPDATE campaigns SET planned_chunks = $2, planned_last_id = $3, planned_count = $4, planning_done = $5, updated_at = now()
         WHERE id = $1 AND planned_chunks <= $2 AND plan_generation = $6`,
        [p.id, p.chunks, p.lastId, p.count, p.done, p.generation],
      );
    } catch (err) {
      throw wrapPgError(err, 'record plan');
    }
  }
}

/** The campaign's status, its row locked until the transaction ends; 404 when there is none. */
async function lockStatus(client: pg.PoolClient, id: number): Promise<CampaignStatus> {
  const r = await client.query<{ status: CampaignStatus }>('SELECT status FROM campaigns WHERE id = $1 FOR UPDATE', [id]);
  const status = r.rows[0]?.status;
  if (status === undefined) throw new HeraldError('NOT_FOUND', `campaign ${id} not found`);
  return status;
}

/**
 * Retry rounds (schemas/postgres/0005_retry_rounds.sql): a completed campaign's failed recipients become
 * an audience of their own, planned as the campaign's next round under the next plan generation. All of
 * it happens in one transaction holding the campaign's row: two racing retry calls cannot both start a
 * round, and a failure leaves the campaign exactly as it was. The audit row is written in it too.
 */
import type { CampaignStatus } from '../domain/campaign-status.js';
import { HeraldError } from '../errors.js';
import { copyField } from '../domain/recipient-line.js';
import type { AuditRecord } from '../domain/audit.js';
import { recordAudit } from './audit-repo.js';
import { copyIn, inTransaction, type Db } from './db.js';
import { createPartition } from './recipient-partitions.js';

export interface RetryStart {
  /** recipients in the new round (0: nothing had failed, and the campaign stays completed) */
  retrying: number;
  status: CampaignStatus;
  /** the campaign's status_version after the round started */
  statusVersion: number;
}

export class RetryRepo {
  constructor(private readonly db: Db) {}

  /**
   * `failed` yields the user ids whose latest outcome is `failed`, in pages; it is read while the
   * campaign's row is locked and the campaign is `completed` (so every outcome is stored).
   */
  async startRound(campaignId: number, failed: () => AsyncIterable<string[]>, audit: AuditRecord): Promise<RetryStart> {
    return inTransaction(this.db, 'start retry round', async (client) => {
      const c = await client.query<{ status: CampaignStatus; audience_id: number; name: string; status_version: number }>(
        'SELECT status, audience_id, name, status_version FROM campaigns WHERE id = $1 FOR UPDATE',
        [campaignId],
      );
      const row = c.rows[0];
      if (row === undefined) throw new HeraldError('NOT_FOUND', `campaign ${campaignId} not found`);
      if (row.status !== 'completed') {
        throw new HeraldError('CONFLICT', `cannot retry-failed a campaign that is ${row.status}`, { status: row.status, id: campaignId });
      }
      await client.query('CREATE TEMP TABLE retry_stage (user_id text COLLATE "C") ON COMMIT DROP');
      await copyIn(client, 'COPY retry_stage (user_id) FROM STDIN', copyText(failed()));
      const n = await client.query<{ n: number }>(
        'SELECT count(*)::bigint AS n FROM recipients WHERE audience_id = $1 AND user_id IN (SELECT user_id FROM retry_stage)',
        [row.audience_id],
      );
      const record = (retrying: number, after: CampaignStatus): Promise<void> =>
        recordAudit(client, { ...audit, campaignId, statusBefore: row.status, statusAfter: after, detail: { retrying } });
      if ((n.rows[0]?.n ?? 0) === 0) {
        await record(0, row.status);
        return { retrying: 0, status: row.status, statusVersion: Number(row.status_version) };
      }
      const a = await client.query<{ id: number }>('INSERT INTO audiences (name) VALUES ($1) RETURNING id', [
        `retry of campaign ${campaignId} (${row.name})`,
      ]);
      const audienceId = a.rows[0]!.id;
      await createPartition(client, audienceId);
      // In the campaign audience's order, with the addresses and attributes it has now.
      const r = await client.query(
        `INSERT INTO recipients (audience_id, id, user_id, address, attrs)
         SELECT $1, row_number() OVER (ORDER BY r.id), r.user_id, r.address, r.attrs FROM recipients r
         WHERE r.audience_id = $2 AND r.user_id IN (SELECT user_id FROM retry_stage)`,
        [audienceId, row.audience_id],
      );
      const retrying = r.rowCount ?? 0;
      await client.query(
        `UPDATE campaigns SET status = 'sending', plan_generation = plan_generation + 1, round_generation = plan_generation + 1,
           first_retry_generation = COALESCE(first_retry_generation, plan_generation + 1), plan_audience_id = $2,
           plan_max_id = NULL, planned_chunks = 0, planned_last_id = 0, planned_count = 0, planning_done = false,
           retried = retried + $3, status_version = status_version + 1, finished_at = NULL, updated_at = now()
         WHERE id = $1`,
        [campaignId, audienceId, retrying],
      );
      await record(retrying, 'sending');
      return { retrying, status: 'sending', statusVersion: Number(row.status_version) + 1 };
    });
  }
}

async function* copyText(pages: AsyncIterable<string[]>): AsyncIterable<string> {
  for await (const page of pages) if (page.length > 0) yield page.map((u) => `${copyField(u)}\n`).join('');
}

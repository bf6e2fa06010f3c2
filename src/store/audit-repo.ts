/**
 * The audit trail (schemas/postgres/0013_keys_audit.sql). `recordAudit` writes one row on the connection
 * it is given, so a repository records a change inside the change's own transaction; `list` pages the
 * trail newest first by id.
 */
import type pg from 'pg';
import type { AuditQuery, AuditRecord } from '../domain/audit.js';
import { wrapPgError, type Db } from './db.js';

export interface AuditRow {
  id: number;
  at: Date;
  keyId: string;
  keyName: string | null;
  requestId: string;
  action: string;
  campaignId: number | null;
  statusBefore: string | null;
  statusAfter: string | null;
  detail: Record<string, unknown> | null;
}

type Queryable = Pick<pg.PoolClient, 'query'>;

export const AUDIT_COLUMNS = 'key_id, key_name, request_id, action, campaign_id, status_before, status_after, detail';

/** The parameters of one row, in AUDIT_COLUMNS' order. */
export function auditParams(r: AuditRecord): unknown[] {
  return [
    r.actor.keyId,
    r.actor.keyName,
    r.actor.requestId,
    r.action,
    r.campaignId ?? null,
    r.statusBefore ?? null,
    r.statusAfter ?? null,
    r.detail === undefined || r.detail === null ? null : JSON.stringify(r.detail),
  ];
}

/** Writes `r` on `q`: a transaction's client, so the row commits or rolls back with the change. */
export async function recordAudit(q: Queryable, r: AuditRecord): Promise<void> {
  await q.query(`INSERT INTO audit_log (${AUDIT_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`, auditParams(r));
}

export class AuditRepo {
  constructor(private readonly db: Db) {}

  /** For a change that is no PostgreSQL transaction (a test send): recorded once it is done. */
  async record(r: AuditRecord): Promise<void> {
    try {
      await recordAudit(this.db, r);
    } catch (err) {
      throw wrapPgError(err, 'record audit');
    }
  }

  async list(q: AuditQuery): Promise<AuditRow[]> {
    try {
      // One plain condition per filter given, so each query uses its index (by campaign, or the key).
      const where: string[] = [];
      const params: unknown[] = [];
      if (q.campaignId !== null) where.push(`campaign_id = $${params.push(q.campaignId)}`);
      if (q.before !== null) where.push(`id < $${params.push(q.before)}`);
      const r = await this.db.query<AuditRow>(
        `SELECT id, at, key_id AS "keyId", key_name AS "keyName", request_id AS "requestId", action, campaign_id AS "campaignId",
           status_before AS "statusBefore", status_after AS "statusAfter", detail
         FROM audit_log ${where.length === 0 ? '' : `WHERE ${where.join(' AND ')}`}
         ORDER BY id DESC LIMIT $${params.push(q.limit)}`,
        params,
      );
      return r.rows;
    } catch (err) {
      throw wrapPgError(err, 'list audit');
    }
  }
}

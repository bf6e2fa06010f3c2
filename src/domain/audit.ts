/**
 * The audit trail's record of a control action: who (the key), when, which request, what, on which
 * campaign, and the campaign's status before and after. Repositories write it in the transaction of the
 * change it records (store/audit-repo.ts), so no change goes unrecorded.
 */
import { randomUUID } from 'node:crypto';
import { HeraldError, type FieldError } from '../errors.js';
import type { Caller } from './api-keys.js';
import type { CampaignCommand } from './campaign-status.js';

/** A command, imperative, as the audit names it. */
export type AuditAction =
  | 'campaign.create'
  | `campaign.${Extract<CampaignCommand, 'start' | 'pause' | 'resume' | 'cancel'>}`
  | 'campaign.retry_failed'
  | 'campaign.update'
  | 'campaign.test'
  | 'import.start'
  | 'suppressions.put'
  | 'suppressions.delete'
  | 'suppression.unsubscribe'
  | 'topic.put'
  | 'key.create'
  | 'key.revoke';

/** Who asked, and the request's id. */
export interface Actor extends Caller {
  requestId: string;
}

export interface AuditRecord {
  actor: Actor;
  action: AuditAction;
  campaignId?: number | null;
  statusBefore?: string | null;
  statusAfter?: string | null;
  detail?: Record<string, unknown> | null;
}

/** The unsubscribe link's own caller: nobody logs in to unsubscribe. */
export const TOKEN_CALLER: Caller = Object.freeze({ keyId: 'token', keyName: 'unsubscribe link' });
export const PUBLIC_CALLER: Caller = Object.freeze({ keyId: 'public', keyName: null });

const SANE_REQUEST_ID = /^[A-Za-z0-9._:/+=@-]{1,128}$/;

/** The client's `x-request-id` when it is a sane one (printable, no spaces, at most 128), else a new UUID. */
export function requestIdFrom(header: string): string {
  return SANE_REQUEST_ID.test(header) ? header : randomUUID();
}

export interface AuditQuery {
  campaignId: number | null;
  limit: number;
  before: number | null;
}

export const AUDIT_DEFAULT_LIMIT = 50;
export const AUDIT_MAX_LIMIT = 500;

const positiveInt = (raw: string | null, field: string, max: number, errors: FieldError[]): number | null => {
  if (raw === null || raw === '') return null;
  const n = /^[0-9]{1,16}$/.test(raw) ? Number(raw) : NaN;
  if (!Number.isSafeInteger(n) || n < 1 || n > max) {
    errors.push({
      field,
      error: max === Number.MAX_SAFE_INTEGER ? 'must be a positive integer id' : `must be an integer from 1 to ${max}`,
    });
    return null;
  }
  return n;
};

export function validateAuditQuery(query: URLSearchParams): AuditQuery {
  const errors: FieldError[] = [];
  const campaignId = positiveInt(query.get('campaign_id'), 'campaign_id', Number.MAX_SAFE_INTEGER, errors);
  const limit = positiveInt(query.get('limit'), 'limit', AUDIT_MAX_LIMIT, errors) ?? AUDIT_DEFAULT_LIMIT;
  const before = positiveInt(query.get('before'), 'before', Number.MAX_SAFE_INTEGER, errors);
  if (errors.length > 0) throw HeraldError.invalid(errors);
  return { campaignId, limit, before };
}

/**
 * Validation of provider callbacks (POST /v1/events) and of user ids in paths. Pure. A batch is checked
 * item by item: good items are accepted, each bad one is reported with its index and field, so one bad
 * callback never costs the others.
 */
import { HeraldError, type FieldError } from '../errors.js';

export type CallbackKind = 'delivered' | 'failed' | 'read';

export interface CallbackEvent {
  /** position in the request's list, for error reports */
  index: number;
  campaignId: number;
  userId: string;
  kind: CallbackKind;
  atSec: number;
  error: string;
}

export interface ItemError extends FieldError {
  index: number;
}

export const MAX_USER_ID = 256;
const MAX_ERROR = 1000;
export const MAX_EVENTS = 10_000;

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

export function validateEventBatch(body: unknown, nowSec: number): { events: CallbackEvent[]; rejected: ItemError[] } {
  const list = Array.isArray(body) ? body : isObject(body) && Array.isArray(body.events) ? body.events : null;
  if (list === null) throw HeraldError.invalid([{ field: 'body', error: 'must be a JSON array of events (or {events: [...]})' }]);
  if (list.length > MAX_EVENTS) throw HeraldError.invalid([{ field: 'body', error: `at most ${MAX_EVENTS} events per call` }]);
  const events: CallbackEvent[] = [];
  const rejected: ItemError[] = [];
  list.forEach((item: unknown, index) => {
    const errs: FieldError[] = [];
    if (!isObject(item)) {
      rejected.push({ index, field: 'event', error: 'must be an object' });
      return;
    }
    const campaignId = item.campaign_id;
    if (!Number.isSafeInteger(campaignId) || (campaignId as number) < 1)
      errs.push({ field: 'campaign_id', error: 'must be a positive integer' });
    const userId = item.user_id;
    if (typeof userId !== 'string' || userId.length === 0 || userId.length > MAX_USER_ID) {
      errs.push({ field: 'user_id', error: `must be a string of 1-${MAX_USER_ID} characters` });
    }
    const kind = item.kind;
    if (kind !== 'delivered' && kind !== 'failed' && kind !== 'read')
      errs.push({ field: 'kind', error: 'must be "delivered", "failed" or "read"' });
    let atSec = nowSec;
    if (item.at !== undefined && item.at !== null) {
      const t = typeof item.at === 'number' ? item.at * 1000 : typeof item.at === 'string' ? Date.parse(item.at) : NaN;
      if (!Number.isFinite(t) || t < 0 || t > (nowSec + 86_400) * 1000)
        errs.push({ field: 'at', error: 'must be an ISO-8601 date-time or unix seconds, not in the future' });
      else atSec = Math.floor(t / 1000);
    }
    let error = '';
    if (item.error !== undefined && item.error !== null) {
      if (typeof item.error !== 'string' || item.error.length > MAX_ERROR)
        errs.push({ field: 'error', error: `must be a string of at most ${MAX_ERROR} characters` });
      else error = item.error;
    }
    if (errs.length > 0) {
      for (const e of errs) rejected.push({ index, ...e });
      return;
    }
    events.push({ index, campaignId: campaignId as number, userId: userId as string, kind: kind as CallbackKind, atSec, error });
  });
  return { events, rejected };
}

/** A user id from a URL path segment (percent-decoded). */
export function parseUserId(raw: string | undefined): string {
  let id: string;
  try {
    id = decodeURIComponent(raw ?? '');
  } catch {
    throw HeraldError.invalid([{ field: 'user_id', error: 'is not valid percent-encoding' }]);
  }
  if (id.length === 0 || id.length > MAX_USER_ID)
    throw HeraldError.invalid([{ field: 'user_id', error: `must be 1-${MAX_USER_ID} characters` }]);
  return id;
}

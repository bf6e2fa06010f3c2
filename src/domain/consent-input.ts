/**
 * Validation of consent input: topic names, a campaign's priority, suppression lines (bulk NDJSON) and a
 * topic's cap. Pure, so the rules and their messages are unit-tested without a database.
 */
import { HeraldError, type FieldError } from '../errors.js';
import { copyField } from './recipient-line.js';
import { MAX_USER_ID } from './event-input.js';

/** A topic: 1–64 letters, digits, `_ . : -`. The global list is the empty topic ''. */
const TOPIC = /^[A-Za-z0-9_.:-]{1,64}$/;
export const GLOBAL_TOPIC = '';
export const MAX_REASON = 200;
/** the longest cap window: a year */
export const MAX_CAP_WINDOW_S = 366 * 86_400;
export const MAX_CAP = 1_000_000;

export type Priority = 'normal' | 'critical';

export function isTopic(v: unknown): v is string {
  return typeof v === 'string' && TOPIC.test(v);
}

export const TOPIC_RULE = 'must be 1-64 letters, digits, "_", ".", ":" or "-"';

/** A topic from a URL path segment. */
export function parseTopic(raw: string | undefined, field = 'topic'): string {
  if (!isTopic(raw)) throw HeraldError.invalid([{ field, error: TOPIC_RULE }]);
  return raw;
}

/** A campaign's `topic` (absent or null: none) and `priority` (default normal), checked at creation. */
export function validateConsentFields(body: Record<string, unknown>, errors: FieldError[]): { topic: string | null; priority: Priority } {
  let topic: string | null = null;
  if (body.topic !== undefined && body.topic !== null) {
    if (!isTopic(body.topic)) errors.push({ field: 'topic', error: TOPIC_RULE });
    else topic = body.topic;
  }
  let priority: Priority = 'normal';
  if (body.priority !== undefined && body.priority !== null) {
    if (body.priority !== 'normal' && body.priority !== 'critical')
      errors.push({ field: 'priority', error: 'must be "normal" or "critical"' });
    else priority = body.priority;
  }
  return { topic, priority };
}

export interface SuppressionLine {
  userId: string;
  /** '' for the global list */
  topic: string;
  reason: string | null;
}

export type SuppressionLineResult = { ok: true; value: SuppressionLine } | { ok: false; error: string };

/** One NDJSON line of PUT / DELETE /v1/suppressions: `{"user_id", "topic"?, "reason"?}`. */
export function parseSuppressionLine(line: string): SuppressionLineResult {
  let v: unknown;
  try {
    v = JSON.parse(line);
  } catch {
    return { ok: false, error: 'line: is not valid JSON' };
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return { ok: false, error: 'line: must be a JSON object' };
  const o = v as Record<string, unknown>;
  const uid = typeof o.user_id === 'number' && Number.isSafeInteger(o.user_id) ? String(o.user_id) : o.user_id;
  if (typeof uid !== 'string' || uid.length === 0 || uid.length > MAX_USER_ID)
    return { ok: false, error: `user_id: is required and must be a string of 1-${MAX_USER_ID} characters` };
  if (uid.includes('\0')) return { ok: false, error: 'user_id: must not contain NUL' };
  let topic = GLOBAL_TOPIC;
  if (o.topic !== undefined && o.topic !== null && o.topic !== '') {
    if (!isTopic(o.topic)) return { ok: false, error: `topic: ${TOPIC_RULE}` };
    topic = o.topic;
  }
  let reason: string | null = null;
  if (o.reason !== undefined && o.reason !== null) {
    if (typeof o.reason !== 'string' || o.reason.length > MAX_REASON || o.reason.includes('\0'))
      return { ok: false, error: `reason: must be a string of at most ${MAX_REASON} characters` };
    reason = o.reason;
  }
  return { ok: true, value: { userId: uid, topic, reason } };
}

/** One COPY text line of the staging table: line, topic, user_id, reason, fp. */
export function suppressionCopyLine(lineNo: number, s: SuppressionLine, fp: string): string {
  return `${lineNo}\t${copyField(s.topic)}\t${copyField(s.userId)}\t${copyField(s.reason)}\t${fp}\n`;
}

export interface TopicCap {
  max: number;
  windowS: number;
}

/** PUT /v1/topics/:topic `{cap: {max, window_s} | null}`. */
export function validateTopicInput(body: unknown): { cap: TopicCap | null } {
  if (typeof body !== 'object' || body === null || Array.isArray(body))
    throw HeraldError.invalid([{ field: 'body', error: 'must be a JSON object' }]);
  const o = body as Record<string, unknown>;
  const errors: FieldError[] = [];
  for (const k of Object.keys(o)) if (k !== 'cap') errors.push({ field: k, error: 'is not a topic setting (settings: cap)' });
  if (!('cap' in o)) errors.push({ field: 'cap', error: 'is required: {max, window_s} or null' });
  let cap: TopicCap | null = null;
  if (o.cap !== undefined && o.cap !== null) {
    if (typeof o.cap !== 'object' || Array.isArray(o.cap)) errors.push({ field: 'cap', error: 'must be {max, window_s} or null' });
    else {
      const c = o.cap as Record<string, unknown>;
      if (!Number.isSafeInteger(c.max) || (c.max as number) < 1 || (c.max as number) > MAX_CAP)
        errors.push({ field: 'cap.max', error: `must be an integer from 1 to ${MAX_CAP} (messages per user per window)` });
      if (!Number.isSafeInteger(c.window_s) || (c.window_s as number) < 1 || (c.window_s as number) > MAX_CAP_WINDOW_S)
        errors.push({ field: 'cap.window_s', error: `must be an integer from 1 to ${MAX_CAP_WINDOW_S} (seconds)` });
      for (const k of Object.keys(c))
        if (k !== 'max' && k !== 'window_s') errors.push({ field: `cap.${k}`, error: 'is not a cap setting' });
      if (errors.length === 0) cap = { max: c.max as number, windowS: c.window_s as number };
    }
  }
  if (errors.length > 0) throw HeraldError.invalid(errors);
  return { cap };
}

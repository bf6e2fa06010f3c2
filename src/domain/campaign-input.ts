/**
 * Validation of API commands. Pure: takes parsed JSON, returns a typed command or every field error.
 */
import { HeraldError, type FieldError } from '../errors.js';
import { isCampaignStatus, type CampaignStatus } from './campaign-status.js';
import { MISSING_POLICIES, templateErrors, type MissingPolicy } from './template.js';
import { validateConsentFields, type Priority } from './consent-input.js';
import { ATTR_NAME, parseFilter, type FilterNode } from './segment-filter.js';

/**
 * Webhook options, each stored only when the campaign gives it:
 * `tracking` (default true): put a signed read-receipt pixel URL in each message (an HMAC each);
 * `concurrency` (default HERALD_WEBHOOK_CONCURRENCY): requests in flight for the campaign in each process;
 * `compress` (default false): gzip request bodies (`content-encoding: gzip`).
 */
export type WebhookSpec = { type: 'webhook'; url: string; tracking?: boolean; concurrency?: number; compress?: boolean };
export type ChannelSpec = { type: 'null' } | { type: 'inbox' } | WebhookSpec;

/** The most requests in flight a campaign may ask for per process (each holds a socket and a chunk). */
export const MAX_WEBHOOK_CONCURRENCY = 1024;

/** Whether messages of this channel carry a tracking URL (campaigns stored before the option: yes). */
export function channelTracks(spec: ChannelSpec): boolean {
  return spec.type === 'webhook' && spec.tracking !== false;
}

/** Whether a channel uses recipients' addresses (the planner then carries them in each chunk). */
/** Requests in flight per process for a campaign on this channel: its own setting, else the process's default. */
export function channelConcurrency(spec: ChannelSpec, dflt: number): number {
  return spec.type === 'webhook' && spec.concurrency !== undefined ? spec.concurrency : dflt;
}

/** Whether request bodies are gzipped (webhook, `channel.compress`). */
export function channelCompresses(spec: ChannelSpec): boolean {
  return spec.type === 'webhook' && spec.compress === true;
}

export function channelNeedsAddress(spec: ChannelSpec): boolean {
  return spec.type === 'webhook';
}

/**
 * Whether a channel renders templates when it sends (webhook: every message carries its rendered content);
 * the inbox renders when the inbox is read, the null channel never.
 */
export function channelRendersAtSend(spec: ChannelSpec): boolean {
  return spec.type === 'webhook';
}

/** A key of recipients.attrs: letters, digits, `_`, `-`, `.`; it goes into SQL only as a quoted literal. */
const SEGMENT_KEY = ATTR_NAME;

/** Liquid templates (domain/template.ts); `data`: a JSON object whose strings are templates (webhook, inbox). */
export interface CampaignContent {
  title: string;
  body: string;
  data?: Record<string, unknown>;
}

export interface CreateCampaignInput {
  name: string;
  audienceId: number;
  channel: ChannelSpec;
  content: CampaignContent;
  /** campaign-level values templates read as `variables.*`, or null */
  variables: Record<string, unknown> | null;
  /** what a template's missing value does (domain/template.ts) */
  missing: MissingPolicy;
  chunkSize: number | null;
  scheduleAt: Date | null;
  rateLimit: number | null;
  /** the audience attribute events carry for segment analytics (e.g. `country`), or null */
  segmentBy: string | null;
  /** the topic's suppression list and cap screen its sends (consent-input.ts), or null */
  topic: string | null;
  priority: Priority;
  /** the segment whose filter the campaign takes (a copy, made at creation), or null */
  segmentId: number | null;
  /** an inline filter over the audience's attributes (domain/segment-filter.ts), or null */
  filter: FilterNode | null;
}

export interface CreateSegmentInput {
  name: string;
  audienceId: number;
  filter: FilterNode;
}

/** PATCH /v1/segments/:id: a new name, a new filter, or both (the audience stays). */
export interface UpdateSegmentInput {
  name?: string;
  filter?: FilterNode;
}

export interface ListSegmentsQuery {
  audienceId: number | null;
  limit: number;
  before: number | null;
}

export interface UpdateCampaignInput {
  rateLimit?: number | null;
  /** a new start time (the campaign becomes `scheduled`), or null (back to `draft`); before it starts only */
  scheduleAt?: Date | null;
}

const MAX_RATE = 10_000_000;

function validateRate(raw: unknown, errors: FieldError[]): number | null {
  if (raw === undefined || raw === null) return null;
  if (!Number.isSafeInteger(raw) || (raw as number) < 1 || (raw as number) > MAX_RATE) {
    errors.push({ field: 'rate_limit', error: `must be null or an integer from 1 to ${MAX_RATE} (messages per second)` });
    return null;
  }
  return raw as number;
}

/** PATCH /v1/campaigns/:id — only fields that may change while a campaign runs. */
export function validateUpdateCampaign(body: unknown): UpdateCampaignInput {
  if (!isObject(body)) throw HeraldError.invalid([{ field: 'body', error: 'must be a JSON object' }]);
  const errors: FieldError[] = [];
  const out: UpdateCampaignInput = {};
  for (const key of Object.keys(body)) {
    if (key !== 'rate_limit' && key !== 'schedule_at')
      errors.push({ field: key, error: 'cannot be changed (changeable: rate_limit, schedule_at)' });
  }
  if ('rate_limit' in body) out.rateLimit = validateRate(body.rate_limit, errors);
  if ('schedule_at' in body) {
    if (body.schedule_at === null) out.scheduleAt = null;
    else {
      const d = typeof body.schedule_at === 'string' ? new Date(body.schedule_at) : new Date(NaN);
      if (Number.isNaN(d.getTime())) errors.push({ field: 'schedule_at', error: 'must be an ISO-8601 date-time string or null' });
      else out.scheduleAt = d;
    }
  }
  if (errors.length === 0 && Object.keys(out).length === 0) errors.push({ field: 'body', error: 'names nothing to change' });
  if (errors.length > 0) throw HeraldError.invalid(errors);
  return out;
}

export interface CreateAudienceInput {
  name: string;
}

export interface ListCampaignsQuery {
  status: CampaignStatus | null;
  limit: number;
  before: number | null;
}

const MAX_NAME = 200;
const MAX_TITLE = 1000;
const MAX_BODY = 100_000;
/** characters of `content.data` and of `variables`, as JSON */
export const MAX_DATA_CHARS = 32_768;
export const MAX_VARIABLES_CHARS = 16_384;

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function requireString(obj: Record<string, unknown>, key: string, field: string, max: number, errors: FieldError[]): string {
  const v = obj[key];
  if (typeof v !== 'string' || v.trim().length === 0) errors.push({ field, error: 'is required and must be a non-empty string' });
  else if (v.length > max) errors.push({ field, error: `must be at most ${max} characters` });
  else return v;
  return '';
}

/** A required positive integer id in a JSON body (0 after recording the field's error). */
function requireId(obj: Record<string, unknown>, key: string, errors: FieldError[]): number {
  const v = obj[key];
  if (Number.isSafeInteger(v) && (v as number) >= 1) return v as number;
  errors.push({ field: key, error: 'is required and must be a positive integer' });
  return 0;
}

export function parseId(raw: unknown, field: string): number {
  const n = typeof raw === 'string' && /^[0-9]{1,15}$/.test(raw) ? Number(raw) : typeof raw === 'number' ? raw : NaN;
  if (!Number.isSafeInteger(n) || n < 1) throw HeraldError.invalid([{ field, error: 'must be a positive integer id' }]);
  return n;
}

export function validateCreateAudience(body: unknown): CreateAudienceInput {
  if (!isObject(body)) throw HeraldError.invalid([{ field: 'body', error: 'must be a JSON object' }]);
  const errors: FieldError[] = [];
  const name = requireString(body, 'name', 'name', MAX_NAME, errors);
  if (errors.length > 0) throw HeraldError.invalid(errors);
  return { name };
}

function validateChannel(raw: unknown, errors: FieldError[]): ChannelSpec {
  if (!isObject(raw)) {
    errors.push({ field: 'channel', error: 'is required and must be an object {type, url?}' });
    return { type: 'null' };
  }
  if (raw.type === 'null') return { type: 'null' };
  if (raw.type === 'inbox') return { type: 'inbox' };
  if (raw.type === 'webhook') {
    const url = raw.url;
    if (typeof url !== 'string') {
      errors.push({ field: 'channel.url', error: 'is required for a webhook channel' });
      return { type: 'null' };
    }
    try {
      const u = new URL(url);
      if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new Error('protocol');
    } catch {
      errors.push({ field: 'channel.url', error: 'must be an http:// or https:// URL' });
    }
    const spec: WebhookSpec = { type: 'webhook', url };
    if (raw.tracking !== undefined) {
      if (typeof raw.tracking !== 'boolean') errors.push({ field: 'channel.tracking', error: 'must be true or false' });
      spec.tracking = raw.tracking === true;
    }
    if (raw.concurrency !== undefined) {
      const c = raw.concurrency;
      if (!Number.isSafeInteger(c) || (c as number) < 1 || (c as number) > MAX_WEBHOOK_CONCURRENCY)
        errors.push({
          field: 'channel.concurrency',
          error: `must be an integer from 1 to ${MAX_WEBHOOK_CONCURRENCY} (requests in flight)`,
        });
      else spec.concurrency = c as number;
    }
    if (raw.compress !== undefined) {
      if (typeof raw.compress !== 'boolean') errors.push({ field: 'channel.compress', error: 'must be true or false' });
      else spec.compress = raw.compress;
    }
    return spec;
  }
  errors.push({ field: 'channel.type', error: 'must be "null", "inbox" or "webhook"' });
  return { type: 'null' };
}

export function validateCreateCampaign(body: unknown): CreateCampaignInput {
  if (!isObject(body)) throw HeraldError.invalid([{ field: 'body', error: 'must be a JSON object' }]);
  const errors: FieldError[] = [];
  const name = requireString(body, 'name', 'name', MAX_NAME, errors);
  const audienceId = requireId(body, 'audience_id', errors);
  const channel = validateChannel(body.channel, errors);
  let content: CampaignContent = { title: '', body: '' };
  if (!isObject(body.content)) errors.push({ field: 'content', error: 'is required and must be an object {title, body, data?}' });
  else {
    content = {
      title: requireString(body.content, 'title', 'content.title', MAX_TITLE, errors),
      body: requireString(body.content, 'body', 'content.body', MAX_BODY, errors),
    };
    const data = jsonObject(body.content.data, 'content.data', MAX_DATA_CHARS, errors);
    if (data !== null) content.data = data;
  }
  const variables = jsonObject(body.variables, 'variables', MAX_VARIABLES_CHARS, errors);
  for (const [k, v] of Object.entries(variables ?? {})) {
    if (typeof v !== 'string' && typeof v !== 'number' && typeof v !== 'boolean')
      errors.push({ field: `variables.${k}`, error: 'must be a string, number or boolean' });
  }
  let missing: MissingPolicy = 'empty';
  if (body.missing !== undefined && body.missing !== null) {
    if (!(MISSING_POLICIES as readonly unknown[]).includes(body.missing))
      errors.push({ field: 'missing', error: 'must be "empty" or "skip"' });
    else missing = body.missing as MissingPolicy;
  }
  // Templates are checked once their fields are well-formed: each error names its field and position.
  if (!errors.some((e) => e.field.startsWith('content'))) errors.push(...templateErrors(content));
  let chunkSize: number | null = null;
  if (body.chunk_size !== undefined && body.chunk_size !== null) {
    const c = body.chunk_size;
    if (!Number.isSafeInteger(c) || (c as number) < 1 || (c as number) > 100_000) {
      errors.push({ field: 'chunk_size', error: 'must be an integer from 1 to 100000' });
    } else chunkSize = c as number;
  }
  let scheduleAt: Date | null = null;
  if (body.schedule_at !== undefined && body.schedule_at !== null) {
    const d = typeof body.schedule_at === 'string' ? new Date(body.schedule_at) : new Date(NaN);
    if (Number.isNaN(d.getTime())) errors.push({ field: 'schedule_at', error: 'must be an ISO-8601 date-time string' });
    else scheduleAt = d;
  }
  const rateLimit = validateRate(body.rate_limit, errors);
  let segmentBy: string | null = null;
  if (body.segment_by !== undefined && body.segment_by !== null) {
    if (typeof body.segment_by !== 'string' || !SEGMENT_KEY.test(body.segment_by)) {
      errors.push({ field: 'segment_by', error: 'must be an attribute name of 1-64 letters, digits, "_", "-" or "."' });
    } else segmentBy = body.segment_by;
  }
  let segmentId: number | null = null;
  if (body.segment_id !== undefined && body.segment_id !== null) {
    if (!Number.isSafeInteger(body.segment_id) || (body.segment_id as number) < 1)
      errors.push({ field: 'segment_id', error: 'must be a positive integer' });
    else segmentId = body.segment_id as number;
  }
  let filter: FilterNode | null = null;
  if (body.filter !== undefined && body.filter !== null) {
    if (segmentId !== null) errors.push({ field: 'filter', error: 'give segment_id or filter, not both' });
    else filter = parseFilter(body.filter, 'filter', errors);
  }
  const { topic, priority } = validateConsentFields(body, errors);
  if (errors.length > 0) throw HeraldError.invalid(errors);
  return {
    name,
    audienceId,
    channel,
    content,
    variables,
    missing,
    chunkSize,
    scheduleAt,
    rateLimit,
    segmentBy,
    topic,
    priority,
    segmentId,
    filter,
  };
}

/** An optional JSON object of at most `maxChars` as JSON; null when absent. */
function jsonObject(raw: unknown, field: string, maxChars: number, errors: FieldError[]): Record<string, unknown> | null {
  if (raw === undefined || raw === null) return null;
  if (!isObject(raw)) {
    errors.push({ field, error: 'must be a JSON object' });
    return null;
  }
  if (JSON.stringify(raw).length > maxChars) {
    errors.push({ field, error: `must be at most ${maxChars} characters as JSON` });
    return null;
  }
  return raw;
}

/** POST /v1/segments: a named filter over one audience. */
export function validateCreateSegment(body: unknown): CreateSegmentInput {
  if (!isObject(body)) throw HeraldError.invalid([{ field: 'body', error: 'must be a JSON object' }]);
  const errors: FieldError[] = [];
  const name = requireString(body, 'name', 'name', MAX_NAME, errors);
  const audienceId = requireId(body, 'audience_id', errors);
  let filter: FilterNode | null = null;
  if (body.filter === undefined || body.filter === null) errors.push({ field: 'filter', error: 'is required' });
  else filter = parseFilter(body.filter, 'filter', errors);
  if (errors.length > 0 || filter === null) throw HeraldError.invalid(errors);
  return { name, audienceId, filter };
}

export function validateUpdateSegment(body: unknown): UpdateSegmentInput {
  if (!isObject(body)) throw HeraldError.invalid([{ field: 'body', error: 'must be a JSON object' }]);
  const errors: FieldError[] = [];
  const out: UpdateSegmentInput = {};
  for (const key of Object.keys(body)) {
    if (key !== 'name' && key !== 'filter') errors.push({ field: key, error: 'cannot be changed (changeable: name, filter)' });
  }
  if ('name' in body) out.name = requireString(body, 'name', 'name', MAX_NAME, errors);
  if ('filter' in body) {
    if (body.filter === null) errors.push({ field: 'filter', error: 'must be a filter (a segment always has one)' });
    else {
      const f = parseFilter(body.filter, 'filter', errors);
      if (f !== null) out.filter = f;
    }
  }
  if (errors.length === 0 && Object.keys(out).length === 0) errors.push({ field: 'body', error: 'names nothing to change' });
  if (errors.length > 0) throw HeraldError.invalid(errors);
  return out;
}

/** A query parameter that is a positive id, or null when absent; a bad one is an error naming it. */
function optionalIdParam(query: URLSearchParams, key: string, errors: FieldError[]): number | null {
  const raw = query.get(key);
  if (raw === null || raw === '') return null;
  const n = Number(raw);
  if (!Number.isSafeInteger(n) || n < 1) {
    errors.push({ field: key, error: 'must be a positive integer' });
    return null;
  }
  return n;
}

function limitParam(query: URLSearchParams, dflt: number, max: number, errors: FieldError[]): number {
  const raw = query.get('limit');
  if (raw === null || raw === '') return dflt;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 1 || n > max) {
    errors.push({ field: 'limit', error: `must be an integer from 1 to ${max}` });
    return dflt;
  }
  return n;
}

/** `?limit=&before=` of a keyset-paged list (newest first, `before` an id). */
export function validatePage(query: URLSearchParams, dflt: number, max: number): { limit: number; before: number | null } {
  const errors: FieldError[] = [];
  const limit = limitParam(query, dflt, max, errors);
  const before = optionalIdParam(query, 'before', errors);
  if (errors.length > 0) throw HeraldError.invalid(errors);
  return { limit, before };
}

export function validateListSegments(query: URLSearchParams): ListSegmentsQuery {
  const errors: FieldError[] = [];
  const audienceId = optionalIdParam(query, 'audience_id', errors);
  const before = optionalIdParam(query, 'before', errors);
  const limit = limitParam(query, 50, 500, errors);
  if (errors.length > 0) throw HeraldError.invalid(errors);
  return { audienceId, limit, before };
}

export function validateListCampaigns(query: URLSearchParams): ListCampaignsQuery {
  const errors: FieldError[] = [];
  const statusRaw = query.get('status');
  let status: CampaignStatus | null = null;
  if (statusRaw !== null && statusRaw !== '') {
    if (isCampaignStatus(statusRaw)) status = statusRaw;
    else errors.push({ field: 'status', error: 'is not a campaign status' });
  }
  let limit = 50;
  const limitRaw = query.get('limit');
  if (limitRaw !== null && limitRaw !== '') {
    const n = Number(limitRaw);
    if (!Number.isInteger(n) || n < 1 || n > 500) errors.push({ field: 'limit', error: 'must be an integer from 1 to 500' });
    else limit = n;
  }
  let before: number | null = null;
  const beforeRaw = query.get('before');
  if (beforeRaw !== null && beforeRaw !== '') {
    const n = Number(beforeRaw);
    if (!Number.isSafeInteger(n) || n < 1) errors.push({ field: 'before', error: 'must be a campaign id' });
    else before = n;
  }
  if (errors.length > 0) throw HeraldError.invalid(errors);
  return { status, limit, before };
}

export interface FailuresQuery {
  limit: number;
  after: string;
}

export function validateFailuresQuery(query: URLSearchParams): FailuresQuery {
  const errors: FieldError[] = [];
  let limit = 100;
  const limitRaw = query.get('limit');
  if (limitRaw !== null && limitRaw !== '') {
    const n = Number(limitRaw);
    if (!Number.isInteger(n) || n < 1 || n > 1000) errors.push({ field: 'limit', error: 'must be an integer from 1 to 1000' });
    else limit = n;
  }
  const after = query.get('after') ?? '';
  if (after.length > 256) errors.push({ field: 'after', error: 'must be at most 256 characters' });
  if (errors.length > 0) throw HeraldError.invalid(errors);
  return { limit, after };
}

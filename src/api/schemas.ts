/**
 * JSON Schemas of the API's bodies and parameters, for the OpenAPI document. They describe the fields the
 * validators in domain/campaign-input.ts and domain/event-input.ts check, with the same limits; the
 * validators stay the authority (test/unit/api-schemas.test.ts checks the two name the same fields).
 */
import { MAX_DATA_CHARS, MAX_VARIABLES_CHARS, MAX_WEBHOOK_CONCURRENCY } from '../domain/campaign-input.js';
import { MISSING_POLICIES } from '../domain/template.js';
import { MAX_EVENTS, MAX_USER_ID } from '../domain/event-input.js';
import { MAX_FILTER_DEPTH, MAX_FILTER_NODES, MAX_IN_VALUES, MAX_VALUE_LENGTH } from '../domain/segment-filter.js';
import type { JsonSchema, Param, RouteBody } from './route.js';

const nonEmpty = (maxLength: number): JsonSchema => ({ type: 'string', minLength: 1, maxLength });
const positiveId: JsonSchema = { type: 'integer', minimum: 1 };
const nullable = (schema: JsonSchema): JsonSchema => ({ oneOf: [schema, { type: 'null' }] });
export const TOPIC_NAME: JsonSchema = { type: 'string', pattern: '^[A-Za-z0-9_.:-]{1,64}$' };
const rateLimit: JsonSchema = { type: 'integer', minimum: 1, maximum: 10_000_000, description: 'messages per second' };

export const CREATE_AUDIENCE: JsonSchema = {
  type: 'object',
  required: ['name'],
  properties: { name: nonEmpty(200) },
};

const CHANNEL: JsonSchema = {
  oneOf: [
    { type: 'object', required: ['type'], properties: { type: { const: 'null' } } },
    { type: 'object', required: ['type'], properties: { type: { const: 'inbox' } } },
    {
      type: 'object',
      required: ['type', 'url'],
      properties: {
        type: { const: 'webhook' },
        url: { type: 'string', format: 'uri', description: 'http:// or https://' },
        tracking: { type: 'boolean', default: true, description: 'put a signed read-receipt URL in each message' },
        concurrency: {
          type: 'integer',
          minimum: 1,
          maximum: MAX_WEBHOOK_CONCURRENCY,
          description: 'requests in flight per process (default HERALD_WEBHOOK_CONCURRENCY)',
        },
        compress: { type: 'boolean', default: false, description: 'gzip request bodies' },
      },
    },
  ],
};

const ATTR: JsonSchema = { type: 'string', pattern: '^[A-Za-z0-9_.-]{1,64}$', description: "a key of the recipients' attrs" };
const FILTER_VALUE: JsonSchema = { oneOf: [{ type: 'string', maxLength: MAX_VALUE_LENGTH }, { type: 'number' }, { type: 'boolean' }] };
const BOUND: JsonSchema = { oneOf: [{ type: 'number' }, { type: 'string', description: 'ISO-8601 date or date-time' }] };
const condition = (op: string, schema: JsonSchema): JsonSchema => ({
  type: 'object',
  required: ['attr', op],
  additionalProperties: false,
  properties: { attr: ATTR, [op]: schema },
});

/** The filter language (README, Segments); the validator in domain/segment-filter.ts is the authority. */
export const FILTER: JsonSchema = {
  description:
    `a filter over the recipients' attrs: {and: [f…]}, {or: [f…]}, {not: f} or {attr, <op>: value}; ` +
    `at most ${MAX_FILTER_DEPTH} levels, ${MAX_FILTER_NODES} nodes, ${MAX_IN_VALUES} in-values`,
  $ref: '#/components/schemas/Filter',
};

/** Components the document defines once (the filter is recursive). */
export const SCHEMA_COMPONENTS: Readonly<Record<string, JsonSchema>> = {
  Filter: {
    oneOf: [
      {
        type: 'object',
        required: ['and'],
        additionalProperties: false,
        properties: { and: { type: 'array', minItems: 1, items: { $ref: '#/components/schemas/Filter' } } },
      },
      {
        type: 'object',
        required: ['or'],
        additionalProperties: false,
        properties: { or: { type: 'array', minItems: 1, items: { $ref: '#/components/schemas/Filter' } } },
      },
      { type: 'object', required: ['not'], additionalProperties: false, properties: { not: { $ref: '#/components/schemas/Filter' } } },
      condition('exists', { type: 'boolean' }),
      condition('eq', FILTER_VALUE),
      condition('ne', FILTER_VALUE),
      condition('in', { type: 'array', minItems: 1, maxItems: MAX_IN_VALUES, items: FILTER_VALUE }),
      ...['lt', 'lte', 'gt', 'gte'].map((op) => condition(op, BOUND)),
    ],
  },
};

export const CREATE_SEGMENT: JsonSchema = {
  type: 'object',
  required: ['name', 'audience_id', 'filter'],
  properties: { name: nonEmpty(200), audience_id: positiveId, filter: FILTER },
};

export const UPDATE_SEGMENT: JsonSchema = {
  type: 'object',
  minProperties: 1,
  additionalProperties: false,
  properties: { name: nonEmpty(200), filter: FILTER },
};

export const CREATE_CAMPAIGN: JsonSchema = {
  type: 'object',
  required: ['name', 'audience_id', 'channel', 'content'],
  properties: {
    name: nonEmpty(200),
    audience_id: positiveId,
    channel: CHANNEL,
    content: {
      type: 'object',
      required: ['title', 'body'],
      description:
        'Liquid templates rendered per recipient (recipient.user_id, recipient.address, recipient.attrs.*, campaign.id, campaign.name, variables.*)',
      properties: {
        title: nonEmpty(1000),
        body: nonEmpty(100_000),
        data: {
          type: 'object',
          description: `a JSON object whose strings are templates (webhook payloads, inbox items); at most ${MAX_DATA_CHARS} characters`,
        },
      },
    },
    variables: nullable({
      type: 'object',
      additionalProperties: { type: ['string', 'number', 'boolean'] },
      description: `values templates read as variables.*; at most ${MAX_VARIABLES_CHARS} characters`,
    }),
    missing: {
      enum: [...MISSING_POLICIES],
      default: 'empty',
      description: 'a missing template value renders as nothing, or skips the recipient',
    },
    chunk_size: nullable({ type: 'integer', minimum: 1, maximum: 100_000 }),
    schedule_at: nullable({ type: 'string', format: 'date-time' }),
    rate_limit: nullable(rateLimit),
    segment_by: nullable({
      type: 'string',
      pattern: '^[A-Za-z0-9_.-]{1,64}$',
      description: "a key of the recipients' attrs, carried on every event for segment analytics",
    }),
    topic: nullable({ ...TOPIC_NAME, description: "the topic's suppression list and frequency cap apply besides the global list" }),
    priority: {
      enum: ['normal', 'critical'],
      default: 'normal',
      description: "critical: bypasses the topic's list and cap, never the global list",
    },
    segment_id: nullable({ ...positiveId, description: 'send to this segment of audience_id (the campaign keeps a copy of its filter)' }),
    filter: nullable({ ...FILTER, description: 'send to the recipients of audience_id this filter selects (instead of segment_id)' }),
  },
};

export const UPDATE_CAMPAIGN: JsonSchema = {
  type: 'object',
  minProperties: 1,
  additionalProperties: false,
  properties: {
    rate_limit: nullable(rateLimit),
    schedule_at: { ...nullable({ type: 'string', format: 'date-time' }), description: 'before the start only; null: back to draft' },
  },
};

const CALLBACK_EVENT: JsonSchema = {
  type: 'object',
  required: ['campaign_id', 'user_id', 'kind'],
  properties: {
    campaign_id: positiveId,
    user_id: nonEmpty(MAX_USER_ID),
    kind: { enum: ['delivered', 'failed', 'read'] },
    at: nullable({
      oneOf: [
        { type: 'string', format: 'date-time' },
        { type: 'number', minimum: 0, description: 'unix seconds' },
      ],
    }),
    error: nullable({ type: 'string', maxLength: 1000 }),
  },
};

const EVENT_LIST: JsonSchema = { type: 'array', maxItems: MAX_EVENTS, items: CALLBACK_EVENT };

export const EVENT_BATCH: JsonSchema = {
  oneOf: [EVENT_LIST, { type: 'object', required: ['events'], properties: { events: EVENT_LIST } }],
};

export const RECIPIENT_LINES: JsonSchema = {
  type: 'string',
  description: 'NDJSON {"user_id", "address"?, "attrs"?} per line, or CSV with a header user_id,address[,more…]; gzip allowed',
};

export const ID_PARAM: Param = { name: 'id', description: 'the id', schema: positiveId };
export const USER_PARAM: Param = { name: 'user_id', description: "the application's user id", schema: nonEmpty(MAX_USER_ID) };

export const limitParam = (dflt: number, max: number): Param => ({
  name: 'limit',
  description: 'page size',
  schema: { type: 'integer', minimum: 1, maximum: max, default: dflt },
});
export const beforeParam = (of: string): Param => ({ name: 'before', description: `the page after this ${of} id`, schema: positiveId });

/** A JSON request body. */
export const jsonBody = (schema: JsonSchema, description: string): RouteBody => ({
  contentTypes: ['application/json'],
  schema,
  description,
});

/**
 * Consent over HTTP: suppression lists in bulk (NDJSON, streamed), a user's suppressions, topics and their
 * caps, and the one-click unsubscribe of a webhook message's `unsubscribe_url` (RFC 8058): `POST /u/:token`
 * unsubscribes with no login, with an empty body or `List-Unsubscribe=One-Click`; `GET /u/:token` only
 * shows a page whose button POSTs, because mail scanners fetch links in messages and must not unsubscribe.
 */
import type { Readable } from 'node:stream';
import { HeraldError } from '../errors.js';
import { parseUserId } from '../domain/event-input.js';
import { parseTopic, validateTopicInput, type TopicCap } from '../domain/consent-input.js';
import { verifyUnsubscribeToken } from '../domain/tokens.js';
import { TOKEN_CALLER, type AuditRecord } from '../domain/audit.js';
import type { BulkReport, SuppressionWriter } from '../import/suppression-writer.js';
import { parseId } from '../domain/campaign-input.js';
import { suppressionBatchView, type SuppressionBatch } from '../domain/suppression-batch.js';
import type { SuppressionRow } from '../store/consent-repo.js';
import { importFormat } from './import-routes.js';
import type { Reply, Route } from './route.js';
import { ID_PARAM, jsonBody, TOPIC_NAME, USER_PARAM } from './schemas.js';

export interface ConsentApiDeps {
  tokenSecret: string;
  maxImportBytes: number;
  suppressions: Pick<SuppressionWriter, 'bulk' | 'one' | 'get'>;
  consent: {
    forUser(userId: string): Promise<SuppressionRow[]>;
    getTopic(topic: string): Promise<{ topic: string; cap: TopicCap | null; updatedAt: Date } | null>;
    putTopic(topic: string, cap: TopicCap | null, audit: AuditRecord): Promise<{ topic: string; cap: TopicCap | null; updatedAt: Date }>;
  };
}

const SUPPRESSION_LINES = {
  type: 'string',
  description: 'NDJSON {"user_id", "topic"?, "reason"?} per line; no topic (or "") is the global list',
};
const TOPIC_PARAM = { name: 'topic', description: 'the topic', schema: TOPIC_NAME };
const TOKEN_PARAM = {
  name: 'token',
  description: "an unsubscribe token (a webhook message's unsubscribe_url)",
  schema: { type: 'string' },
};
const TOPIC_BODY = {
  type: 'object',
  required: ['cap'],
  additionalProperties: false,
  properties: {
    cap: {
      oneOf: [
        {
          type: 'object',
          required: ['max', 'window_s'],
          additionalProperties: false,
          properties: { max: { type: 'integer', minimum: 1 }, window_s: { type: 'integer', minimum: 1 } },
        },
        { type: 'null' },
      ],
    },
  },
};

/**
 * 200 once in effect, 202 before; 500 when the apply failed (nothing of the batch was applied: a client
 * that reads only the status must not take it for done). The request's own rejected lines each time.
 */
function bulkAnswer(batch: SuppressionBatch, r: BulkReport): Reply {
  const body = {
    ...suppressionBatchView(batch),
    rejected: r.rejected,
    rejected_count: r.rejectedCount,
    total: r.total,
    accepted: r.accepted,
  };
  if (batch.status === 'failed') {
    return {
      status: 500,
      body: {
        ...body,
        code: 'INTERNAL',
        error: `suppression batch ${batch.id} failed, nothing of it applied: ${batch.error ?? 'unknown'}`,
      },
    };
  }
  return { status: batch.inEffect ? 200 : 202, body };
}

function topicView(t: { topic: string; cap: TopicCap | null; updatedAt: Date }): Record<string, unknown> {
  return {
    topic: t.topic,
    cap: t.cap === null ? null : { max: t.cap.max, window_s: t.cap.windowS },
    updated_at: t.updatedAt.toISOString(),
  };
}

const HTML = { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store', 'referrer-policy': 'no-referrer' };
const page = (status: number, title: string, inner: string): Reply => ({
  status,
  headers: HTML,
  body: `<!doctype html><html><head><meta charset="utf-8"><meta name="viewport" content="width=device-width"><title>${title}</title></head><body><h1>${title}</h1>${inner}</body></html>`,
});
const INVALID_LINK = (): Reply => page(400, 'This link is not valid', '<p>Nothing was changed.</p>');
const escapeHtml = (s: string): string =>
  s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);

/** Reads and drops a small body (the one-click form field), so the connection stays usable. */
async function drain(body: Readable): Promise<void> {
  for await (const chunk of body) void chunk;
}

export function consentRoutes(deps: ConsentApiDeps): Route[] {
  // PUT and DELETE are one route each over the same streamed NDJSON body, differing only in what they do.
  const bulk = (op: 'put' | 'delete', name: string, summary: string, description: string): Route => ({
    name,
    method: op,
    path: '/v1/suppressions',
    auth: 'audience',
    summary,
    body: { contentTypes: ['application/x-ndjson'], schema: SUPPRESSION_LINES, description },
    responses: {
      200: '{id, op, status: "completed", in_effect: true, accepted, rejected: [first 100 {line, error}], rejected_count, total, changed}: in effect',
      202: '{id, op, status: "applying" | "completed", in_effect: false, accepted, rejected, rejected_count, total}: staged; follow it at GET /v1/suppressions/batches/:id',
      415: 'not NDJSON',
      500: '{code: "INTERNAL", error, id, op, status: "failed", …}: the apply failed within the wait and nothing of the batch was applied',
    },
    handler: async (req) => {
      if (importFormat(req.headers.contentType) !== 'ndjson')
        throw new HeraldError('UNSUPPORTED_MEDIA_TYPE', 'content-type must be application/x-ndjson', { field: 'content-type' });
      const { batch, report } = await deps.suppressions.bulk(op, req.stream(deps.maxImportBytes), req.actor);
      return bulkAnswer(batch, report);
    },
  });
  return [
    bulk(
      'put',
      'putSuppressions',
      'Suppress users, globally or for a topic (NDJSON, streamed; accepted lines are kept)',
      'one suppression a line',
    ),
    bulk(
      'delete',
      'deleteSuppressions',
      'Lift suppressions (NDJSON, streamed; accepted lines are kept)',
      'one suppression a line (reason ignored)',
    ),
    {
      name: 'getSuppressionBatch',
      method: 'get',
      path: '/v1/suppressions/batches/:id',
      auth: 'read',
      summary: 'A bulk suppression change: applying, completed or failed',
      params: [{ ...ID_PARAM, description: 'the batch (the id a bulk PUT or DELETE answered with)' }],
      responses: {
        200: '{id, op, status, in_effect, accepted, rejected, rejected_count, total, changed, error, started_at, received_at, finished_at}',
        404: 'no such batch',
      },
      handler: async (req) => {
        const id = parseId(req.params[0], 'id');
        const batch = await deps.suppressions.get(id);
        if (batch === null) throw new HeraldError('NOT_FOUND', `suppression batch ${id} not found`);
        return { status: 200, body: suppressionBatchView(batch) };
      },
    },
    {
      name: 'listUserSuppressions',
      method: 'get',
      path: '/v1/users/:user_id/suppressions',
      auth: 'read',
      summary: "A user's suppressions: the global list (topic null) and topics",
      params: [USER_PARAM],
      responses: { 200: '{user_id, suppressions: [{topic, reason, created_at}]}', 400: 'a malformed user id' },
      handler: async (req) => {
        const userId = parseUserId(req.params[0]);
        const rows = await deps.consent.forUser(userId);
        return {
          status: 200,
          body: {
            user_id: userId,
            suppressions: rows.map((r) => ({
              topic: r.topic === '' ? null : r.topic,
              reason: r.reason,
              created_at: r.createdAt.toISOString(),
            })),
          },
        };
      },
    },
    {
      name: 'putTopic',
      method: 'put',
      path: '/v1/topics/:topic',
      auth: 'audience',
      summary: "Set a topic's frequency cap: at most max messages per user in any window_s seconds (null: none)",
      params: [TOPIC_PARAM],
      body: jsonBody(TOPIC_BODY, 'the topic'),
      responses: { 200: '{topic, cap: {max, window_s} | null, updated_at}' },
      handler: async (req) => {
        const topic = parseTopic(req.params[0]);
        const { cap } = validateTopicInput(await req.json());
        const audit: AuditRecord = {
          actor: req.actor,
          action: 'topic.put',
          detail: { topic, cap: cap === null ? null : { max: cap.max, window_s: cap.windowS } },
        };
        return { status: 200, body: topicView(await deps.consent.putTopic(topic, cap, audit)) };
      },
    },
    {
      name: 'getTopic',
      method: 'get',
      path: '/v1/topics/:topic',
      auth: 'read',
      summary: 'A topic and its cap',
      params: [TOPIC_PARAM],
      responses: { 200: '{topic, cap: {max, window_s} | null, updated_at}', 400: 'a malformed topic', 404: 'no such topic' },
      handler: async (req) => {
        const topic = parseTopic(req.params[0]);
        const t = await deps.consent.getTopic(topic);
        if (t === null) throw new HeraldError('NOT_FOUND', `topic ${topic} not found`, { field: 'topic' });
        return { status: 200, body: topicView(t) };
      },
    },
    {
      name: 'unsubscribePage',
      method: 'get',
      path: '/u/:token',
      auth: 'public',
      summary: 'The unsubscribe page of an unsubscribe_url: a button that POSTs; it changes nothing by itself',
      params: [TOKEN_PARAM],
      responses: { 200: 'an HTML page with the form', 400: 'an HTML page: the link is not valid' },
      ownErrorBodies: [400],
      produces: 'text/html',
      handler: async (req) => {
        const token = req.params[0] ?? '';
        const t = verifyUnsubscribeToken(deps.tokenSecret, token);
        if (t === null) return INVALID_LINK();
        const what = t.topic === '' ? 'all messages' : `messages about ${escapeHtml(t.topic)}`;
        return page(
          200,
          'Unsubscribe',
          `<p>Stop receiving ${what}?</p><form method="post" action="/u/${escapeHtml(token)}"><input type="hidden" name="List-Unsubscribe" value="One-Click"><button type="submit">Unsubscribe</button></form>`,
        );
      },
    },
    {
      name: 'unsubscribe',
      method: 'post',
      path: '/u/:token',
      auth: 'public',
      summary: 'One-click unsubscribe (RFC 8058): empty body or List-Unsubscribe=One-Click; idempotent',
      params: [TOKEN_PARAM],
      responses: { 200: 'an HTML page: unsubscribed (again: the same)', 400: 'an HTML page: the link is not valid, nothing recorded' },
      ownErrorBodies: [400],
      produces: 'text/html',
      handler: async (req) => {
        await drain(req.stream(4096));
        const t = verifyUnsubscribeToken(deps.tokenSecret, req.params[0] ?? '');
        if (t === null) return INVALID_LINK();
        // nobody logs in to unsubscribe: the audit names the link (key id `token`)
        const actor = { ...TOKEN_CALLER, requestId: req.requestId };
        await deps.suppressions.one(
          { userId: t.userId, topic: t.topic, reason: `unsubscribed from campaign ${t.campaignId}` },
          actor,
          t.campaignId,
        );
        const what = t.topic === '' ? 'any more messages' : `messages about ${escapeHtml(t.topic)} any more`;
        return page(200, 'You are unsubscribed', `<p>You will not receive ${what}.</p>`);
      },
    },
  ];
}

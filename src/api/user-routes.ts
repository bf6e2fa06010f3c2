/**
 * The user-facing half of the API: user tokens, the in-app inbox, read receipts (the pixel) and provider
 * callbacks. Inbox endpoints take either a `read` key or a user token (domain/tokens.ts) minted for that
 * very user (route auth `user`, checked in api/auth.ts); a user token gives no more than a `read` key, so
 * minting one needs `read`.
 */
import { HeraldError } from '../errors.js';
import { parseId } from '../domain/campaign-input.js';
import { parseUserId, validateEventBatch, type CallbackEvent } from '../domain/event-input.js';
import { userToken, verifyTrackingToken, wsToken } from '../domain/tokens.js';
import { parseAttrs, TemplateCache } from '../domain/template.js';
import type { InboxCandidate, InboxRepo } from '../store/inbox-repo.js';
import type { InboxReader } from '../progress/inbox-reader.js';
import type { ReadRecorder } from '../sink/read-recorder.js';
import type { SpooledEvent } from '../domain/spool-frame.js';
import type { Reply, RequestInfo, Route } from './route.js';
import { beforeParam, EVENT_BATCH, ID_PARAM, jsonBody, limitParam, USER_PARAM } from './schemas.js';

export interface UserApiDeps {
  tokenSecret: string;
  userTokenTtlS: number;
  inbox: InboxRepo;
  inboxReader: InboxReader;
  /** inbox reads: stored before the answer, so the next inbox query sees them */
  reads: ReadRecorder;
  /** pixel reads and provider callbacks: durable on local disk before the answer (sink/read-spool.ts) */
  spool: { append(events: readonly SpooledEvent[]): Promise<void> };
  /** compiled templates per campaign, shared with the other routes that render; default: one of these routes' own */
  templates?: TemplateCache;
}

/** A provider's own delivered / failed are kept beside Herald's outcome (confirmed / bounced), never doubling it. */
function spooled(e: CallbackEvent): SpooledEvent {
  const kind = e.kind === 'read' ? 'read' : e.kind === 'delivered' ? 'confirmed' : 'bounced';
  return { campaignId: e.campaignId, userId: e.userId, kind, atSec: e.atSec, error: e.error };
}

/** 1×1 transparent GIF */
const PIXEL = Buffer.from('R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7', 'base64');
// One reply object for every pixel: the hottest route allocates no answer of its own.
const PIXEL_REPLY: Reply = Object.freeze({
  status: 200,
  body: PIXEL,
  headers: Object.freeze({ 'content-type': 'image/gif', 'cache-control': 'no-store, max-age=0' }),
});
const nowSec = (): number => Math.floor(Date.now() / 1000);

function tokenReply(token: string, expiresAtSec: number): Reply {
  return { status: 200, body: { token, expires_at: new Date(expiresAtSec * 1000).toISOString() } };
}

function intParam(info: RequestInfo, name: string, min: number, max: number, dflt: number | null): number | null {
  const raw = info.query.get(name);
  if (raw === null || raw === '') return dflt;
  const n = Number(raw);
  if (!Number.isSafeInteger(n) || n < min || n > max)
    throw HeraldError.invalid([{ field: name, error: `must be an integer from ${min} to ${max}` }]);
  return n;
}

const TOKEN_ANSWER = '{token, expires_at}';
const CAMPAIGN_PARAM = { ...ID_PARAM, name: 'campaign_id', description: 'the inbox campaign' };

/**
 * An inbox item's content, rendered now from the user's own attributes (the send only decided who is
 * skipped, so a personalised inbox campaign costs nothing more at send time). A render that fails shows
 * the item with empty content and the reason, rather than hiding a delivered message.
 */
function inboxContent(templates: TemplateCache, c: InboxCandidate, userId: string): Record<string, unknown> {
  const t = templates.get({ id: c.campaignId, name: c.name, content: c.content, variables: c.variables, missing: c.missing });
  const r = t.renderLenient({ userId, address: c.address, attrs: t.personal ? parseAttrs(c.attrs) : {} });
  if (r.kind !== 'rendered') return { title: '', body: '', render_error: r.kind === 'failed' ? r.error : r.reason };
  return r.content.data === null ? { title: r.content.title, body: r.content.body } : { ...r.content };
}

/** test sends shown per inbox, newest first */
const INBOX_TESTS_MAX = 20;
/** how far back an inbox shows test sends */
const INBOX_TESTS_DAYS = 30;

export function userRoutes(deps: UserApiDeps): Route[] {
  const templates = deps.templates ?? new TemplateCache();

  /** A page of the user's real items: candidates are campaigns whose audience holds the user; only those delivered to the user are shown. */
  const realItems = async (
    userId: string,
    from: number | null,
    limit: number,
  ): Promise<{ messages: Array<Record<string, unknown>>; next_before: unknown }> => {
    const items: Array<Record<string, unknown>> = [];
    let before = from;
    for (let exhausted = false; items.length < limit && !exhausted;) {
      const page = await deps.inbox.candidates(userId, before, Math.max(limit * 2, 50));
      exhausted = page.length < Math.max(limit * 2, 50);
      if (page.length === 0) break;
      const states = await deps.inboxReader.states(
        userId,
        page.map((c) => c.campaignId),
      );
      for (const c of page) {
        before = c.campaignId;
        const s = states.get(c.campaignId);
        if (s === undefined) continue;
        items.push({
          campaign_id: c.campaignId,
          ...inboxContent(templates, c, userId),
          delivered_at: new Date(s.deliveredAtSec * 1000).toISOString(),
          read: s.readAtSec !== null,
          read_at: s.readAtSec === null ? null : new Date(s.readAtSec * 1000).toISOString(),
        });
        if (items.length === limit) break;
      }
    }
    const last = items[items.length - 1];
    return { messages: items, next_before: items.length === limit && last ? last.campaign_id : null };
  };

  /**
   * The user's recent inbox test sends, newest first, rendered as the real item is (the same templates and
   * the user's row of the audience), in any campaign status. They have no read state: reads are
   * `message_events`, which every campaign count is made from.
   */
  const testItems = async (userId: string): Promise<Array<Record<string, unknown>>> => {
    // ClickHouse does not know a test's channel: five times the cap leaves room for webhook campaigns' tests.
    const sends = await deps.inboxReader.tests(userId, { sinceSec: nowSec() - INBOX_TESTS_DAYS * 86_400, limit: INBOX_TESTS_MAX * 5 });
    const campaigns = await deps.inbox.testCandidates(userId, [...new Set(sends.map((t) => t.campaignId))]);
    const items = sends.flatMap((t) => {
      const c = campaigns.get(t.campaignId);
      if (c === undefined) return []; // not an inbox campaign (a webhook's test), or the user left its audience
      return [
        {
          campaign_id: t.campaignId,
          test: true,
          test_id: t.testId,
          ...inboxContent(templates, c, userId),
          delivered_at: new Date(t.deliveredAtSec * 1000).toISOString(),
        },
      ];
    });
    return items.slice(0, INBOX_TESTS_MAX);
  };

  return [
    {
      // A connect token for the WebSocket API, for browsers (which cannot send a header on a WebSocket).
      name: 'createWsToken',
      method: 'post',
      path: '/v1/ws/token',
      auth: 'read',
      summary: 'A connect token for GET /v1/ws?token=, good for a minute',
      responses: { 200: TOKEN_ANSWER },
      handler: async () => {
        const expires = nowSec() + 60;
        return tokenReply(wsToken(deps.tokenSecret, expires), expires);
      },
    },
    {
      name: 'createUserToken',
      method: 'post',
      path: '/v1/users/:user_id/token',
      auth: 'read',
      summary: "The bearer for that user's inbox endpoints",
      params: [USER_PARAM],
      responses: { 200: TOKEN_ANSWER, 400: 'a malformed user id' },
      handler: async (req) => {
        const userId = parseUserId(req.params[0]);
        const expires = nowSec() + deps.userTokenTtlS;
        return tokenReply(userToken(deps.tokenSecret, userId, expires), expires);
      },
    },
    {
      name: 'listInbox',
      method: 'get',
      path: '/v1/users/:user_id/inbox',
      auth: 'user',
      summary: "The inbox campaigns delivered to the user, newest first, and the first page's recent test sends",
      params: [USER_PARAM],
      query: [limitParam(20, 100), beforeParam('campaign')],
      responses: {
        200:
          '{messages: [{campaign_id, title, body, data?, delivered_at, read, read_at}], next_before, ' +
          'tests: [{campaign_id, test: true, test_id, title, body, data?, delivered_at}]}',
      },
      handler: async (req) => {
        const userId = parseUserId(req.params[0]);
        const limit = intParam(req, 'limit', 1, 100, 20)!;
        const before = intParam(req, 'before', 1, Number.MAX_SAFE_INTEGER, null);
        // Test sends are a list of their own, not items of `messages`: `before` is a campaign id, and a
        // campaign may have a real item and test items for the same user, so mixing them would need a
        // compound cursor. The list is small and bounded (INBOX_TESTS_MAX, INBOX_TESTS_DAYS), so it comes
        // whole with the first page (no `before`) and empty with every later one.
        const [page, tests] = await Promise.all([realItems(userId, before, limit), before === null ? testItems(userId) : []]);
        return { status: 200, body: { ...page, tests } };
      },
    },
    {
      name: 'countUnread',
      method: 'get',
      path: '/v1/users/:user_id/inbox/unread_count',
      auth: 'user',
      summary: "How many of the user's inbox messages are unread",
      params: [USER_PARAM],
      responses: { 200: '{unread}' },
      handler: async (req) => {
        const userId = parseUserId(req.params[0]);
        let unread = 0;
        for (let before: number | null = null; ;) {
          const page = await deps.inbox.candidates(userId, before, 1000);
          const states = await deps.inboxReader.states(
            userId,
            page.map((c) => c.campaignId),
          );
          for (const s of states.values()) if (s.readAtSec === null) unread++;
          if (page.length < 1000) break;
          before = page[page.length - 1]!.campaignId;
        }
        return { status: 200, body: { unread } };
      },
    },
    {
      name: 'markRead',
      method: 'post',
      path: '/v1/users/:user_id/inbox/:campaign_id/read',
      auth: 'user',
      summary: 'Record a read of an inbox message, once stored',
      params: [USER_PARAM, CAMPAIGN_PARAM],
      responses: { 204: 'the read is stored', 404: 'the user is not a recipient of that inbox campaign' },
      handler: async (req) => {
        const userId = parseUserId(req.params[0]);
        const campaignId = parseId(req.params[1], 'campaign_id');
        if (!(await deps.inbox.isRecipient(campaignId, userId))) {
          throw new HeraldError('NOT_FOUND', `user is not a recipient of inbox campaign ${campaignId}`, { field: 'campaign_id' });
        }
        await deps.reads.record([{ campaignId, userId, atSec: nowSec() }]);
        return { status: 204 };
      },
    },
    {
      // The pixel: always the image (a mail client shows nothing either way); a read only for a genuine token.
      name: 'trackingPixel',
      method: 'get',
      path: '/t/:token',
      auth: 'public',
      summary: 'The read-receipt pixel of a message’s tracking_url',
      params: [{ name: 'token', description: 'a tracking token', schema: { type: 'string' } }],
      responses: { 200: 'a 1×1 GIF, always; a read is recorded, on local disk, only for a genuine token' },
      produces: 'image/gif',
      handler: async (req) => {
        const t = verifyTrackingToken(deps.tokenSecret, req.params[0] ?? '');
        // A read that cannot be spooled (the disk failed) is lost; the image is sent all the same.
        if (t !== null)
          await deps.spool
            .append([{ campaignId: t.campaignId, userId: t.userId, kind: 'read', atSec: nowSec(), error: '' }])
            .catch(() => undefined);
        return PIXEL_REPLY;
      },
    },
    {
      name: 'postEvents',
      method: 'post',
      path: '/v1/events',
      auth: 'send',
      summary: "A provider's delivered / failed / read callbacks (at most 10,000)",
      body: jsonBody(EVENT_BATCH, 'the events'),
      responses: { 200: '{accepted, rejected: [{index, field, error}]}, once on local disk', 503: 'the events could not be spooled' },
      handler: async (req) => {
        const { events, rejected } = validateEventBatch(await req.json(), nowSec());
        const known = await deps.inbox.existing([...new Set(events.map((e) => e.campaignId))]);
        const accepted: CallbackEvent[] = [];
        for (const e of events) {
          if (known.has(e.campaignId)) accepted.push(e);
          else rejected.push({ index: e.index, field: 'campaign_id', error: 'no such campaign' });
        }
        try {
          await deps.spool.append(accepted.map(spooled));
        } catch (err) {
          throw new HeraldError('DEPENDENCY_UNAVAILABLE', `events could not be spooled: ${(err as Error).message}`, {}, err);
        }
        rejected.sort((a, b) => a.index - b.index);
        return { status: 200, body: { accepted: accepted.length, rejected } };
      },
    },
  ];
}

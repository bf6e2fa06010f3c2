/**
 * The user-facing half of the API: user tokens, the in-app inbox, read receipts (the pixel) and provider
 * callbacks. Inbox endpoints take either the admin key or a user token
 * (domain/tokens.ts) minted for that very user.
 */
import { HeraldError } from '../errors.js';
import { parseId } from '../domain/campaign-input.js';
import { parseUserId, validateEventBatch, type CallbackEvent } from '../domain/event-input.js';
import { userToken, verifyTrackingToken, verifyUserToken, wsToken } from '../domain/tokens.js';
import type { InboxRepo } from '../store/inbox-repo.js';
import type { InboxReader } from '../progress/inbox-reader.js';
import type { ReadRecorder } from '../sink/read-recorder.js';
import type { SpooledEvent } from '../domain/spool-frame.js';
import { checkBearer, readJson, type Reply, type RequestInfo } from './http.js';
import type { Route } from './routes.js';

export interface UserApiDeps {
  apiKeys: readonly string[];
  maxBodyBytes: number;
  tokenSecret: string;
  userTokenTtlS: number;
  inbox: InboxRepo;
  inboxReader: InboxReader;
  /** inbox reads: stored before the answer, so the next inbox query sees them */
  reads: ReadRecorder;
  /** pixel reads and provider callbacks: durable on local disk before the answer (sink/read-spool.ts) */
  spool: { append(events: readonly SpooledEvent[]): Promise<void> };
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

/** The path's user, once the caller is shown to be allowed: the admin key, or that user's own token. */
function authorizedUser(info: RequestInfo, deps: UserApiDeps): string {
  const userId = parseUserId(info.params[0]);
  if (checkBearer(info.headers.authorization, deps.apiKeys)) return userId;
  const m = /^Bearer\s+(\S+)$/i.exec(info.headers.authorization);
  const tokenUser = m === null ? null : verifyUserToken(deps.tokenSecret, m[1]!, nowSec());
  if (tokenUser === null) {
    throw new HeraldError('UNAUTHORIZED', 'missing, invalid or expired user token', { field: 'authorization' });
  }
  if (tokenUser !== userId) throw new HeraldError('FORBIDDEN', "this token is not for this user's inbox", { field: 'authorization' });
  return userId;
}

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

export function registerUserRoutes(route: Route, deps: UserApiDeps): void {
  // A connect token for the WebSocket API, for browsers (which cannot send a header on a WebSocket).
  route('post', '/v1/ws/token', async () => {
    const expires = nowSec() + 60;
    return tokenReply(wsToken(deps.tokenSecret, expires), expires);
  });

  route('post', '/v1/users/:user_id/token', async (info) => {
    const userId = parseUserId(info.params[0]);
    const expires = nowSec() + deps.userTokenTtlS;
    return tokenReply(userToken(deps.tokenSecret, userId, expires), expires);
  });

  route(
    'get',
    '/v1/users/:user_id/inbox',
    async (info) => {
      const userId = authorizedUser(info, deps);
      const limit = intParam(info, 'limit', 1, 100, 20)!;
      let before = intParam(info, 'before', 1, Number.MAX_SAFE_INTEGER, null);
      const items: Array<Record<string, unknown>> = [];
      // Candidates are campaigns whose audience holds the user; only those delivered to the user are shown.
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
            title: c.title,
            body: c.body,
            delivered_at: new Date(s.deliveredAtSec * 1000).toISOString(),
            read: s.readAtSec !== null,
            read_at: s.readAtSec === null ? null : new Date(s.readAtSec * 1000).toISOString(),
          });
          if (items.length === limit) break;
        }
      }
      const last = items[items.length - 1];
      return { status: 200, body: { messages: items, next_before: items.length === limit && last ? last.campaign_id : null } };
    },
    false,
  );

  route(
    'get',
    '/v1/users/:user_id/inbox/unread_count',
    async (info) => {
      const userId = authorizedUser(info, deps);
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
    false,
  );

  route(
    'post',
    '/v1/users/:user_id/inbox/:campaign_id/read',
    async (info) => {
      const userId = authorizedUser(info, deps);
      const campaignId = parseId(info.params[1], 'campaign_id');
      if (!(await deps.inbox.isRecipient(campaignId, userId))) {
        throw new HeraldError('NOT_FOUND', `user is not a recipient of inbox campaign ${campaignId}`, { field: 'campaign_id' });
      }
      await deps.reads.record([{ campaignId, userId, atSec: nowSec() }]);
      return { status: 204 };
    },
    false,
  );

  // The pixel: always the image (a mail client shows nothing either way); a read only for a genuine token.
  route(
    'get',
    '/t/:token',
    async (info) => {
      const t = verifyTrackingToken(deps.tokenSecret, info.params[0] ?? '');
      // A read that cannot be spooled (the disk failed) is lost; the image is sent all the same.
      if (t !== null)
        await deps.spool
          .append([{ campaignId: t.campaignId, userId: t.userId, kind: 'read', atSec: nowSec(), error: '' }])
          .catch(() => undefined);
      return PIXEL_REPLY;
    },
    false,
  );

  route('post', '/v1/events', async (info, res, state) => {
    const { events, rejected } = validateEventBatch(await readJson(res, state, info, deps.maxBodyBytes), nowSec());
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
  });
}

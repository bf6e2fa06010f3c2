/**
 * Signed tokens, HMAC-SHA256 with Herald's secret, so no token needs a table:
 *   user token      `u1.<user_id b64url>.<expires unix s>.<sig>`: the bearer of a user's inbox endpoints,
 *                   minted by the application's backend (POST /v1/users/:user_id/token, admin key);
 *   tracking token  `t1.<campaign_id>.<user_id b64url>.<sig>`: in a webhook message's tracking_url; the
 *                   pixel GET /t/:token records a read for exactly that (campaign, user);
 *   unsubscribe     `s1.<campaign_id>.<user_id b64url>.<topic b64url>.<sig>`: in a webhook message's
 *                   unsubscribe_url; POST /u/:token suppresses exactly that user for that topic ('' is
 *                   the global list). No expiry: an unsubscribe link must keep working.
 *   message tokens  `t2.…` / `s2.<campaign_id>.<user_id b64url>.<topic b64url>.<sig>`: a webhook message's
 *                   tracking and unsubscribe tokens, both from one HMAC over (campaign, user, topic): the
 *                   tracking token carries its first 16 bytes, the unsubscribe token its last 16. Halves of
 *                   an HMAC are independent, so holding one (an image proxy fetching the pixel) gives no
 *                   way to the other, and a message costs one HMAC instead of two. `t1` and `s1` tokens
 *                   (one HMAC each) stay valid.
 * The signature covers the kind, so one kind of token never passes as the other. Verification compares in
 * constant time and says nothing about why a token failed.
 */
import { timingSafeEqual } from 'node:crypto';
import { HmacSha256 } from './hmac.js';

/** one keyed HMAC per secret: a process has one secret (two while a secret is rotated in a test) */
const macs = new Map<string, HmacSha256>();
function mac(secret: string, payload: string): Buffer {
  let m = macs.get(secret);
  if (m === undefined) {
    if (macs.size >= 8) macs.clear();
    m = new HmacSha256(secret);
    macs.set(secret, m);
  }
  return m.digest(payload);
}

function sign(secret: string, payload: string): string {
  return mac(secret, payload).toString('base64url');
}

function same(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

/** encoded through one reused buffer: a webhook campaign encodes a user id per message */
let scratch = Buffer.allocUnsafe(1024);
const b64 = (s: string): string => {
  if (scratch.length < s.length * 3) scratch = Buffer.allocUnsafe(s.length * 3);
  return scratch.toString('base64url', 0, scratch.write(s, 0, 'utf8'));
};
const unb64 = (s: string): string | null => {
  if (!/^[A-Za-z0-9_-]*$/.test(s)) return null;
  return Buffer.from(s, 'base64url').toString('utf8');
};

export function userToken(secret: string, userId: string, expiresAtSec: number): string {
  const body = `u1.${b64(userId)}.${expiresAtSec}`;
  return `${body}.${sign(secret, body)}`;
}

/** The user id the token was minted for, or null (forged, altered, expired, or not a user token). */
export function verifyUserToken(secret: string, token: string, nowSec: number): string | null {
  const parts = token.split('.');
  if (parts.length !== 4 || parts[0] !== 'u1') return null;
  const [, user, exp, sig] = parts as [string, string, string, string];
  if (!same(sig, sign(secret, `u1.${user}.${exp}`))) return null;
  if (!/^\d{1,12}$/.test(exp) || Number(exp) <= nowSec) return null;
  return unb64(user);
}

export function trackingToken(secret: string, campaignId: number, userId: string): string {
  const body = `t1.${campaignId}.${b64(userId)}`;
  return `${body}.${sign(secret, body)}`;
}

/** A webhook message's tracking and unsubscribe tokens, from one HMAC (t2 / s2, above). */
export function messageTokens(
  secret: string,
  campaignId: number,
  userId: string,
  topic: string,
): { tracking: string; unsubscribe: string } {
  const body = `${campaignId}.${b64(userId)}.${b64(topic)}`;
  const m = mac(secret, `m2.${body}`);
  return {
    tracking: `t2.${body}.${m.toString('base64url', 0, 16)}`,
    unsubscribe: `s2.${body}.${m.toString('base64url', 16, 32)}`,
  };
}

/** The half of the message HMAC a `t2` (0) or `s2` (1) token carries. */
function messageHalf(secret: string, campaign: string, user: string, topic: string, half: 0 | 1): string {
  return mac(secret, `m2.${campaign}.${user}.${topic}`).toString('base64url', half * 16, half * 16 + 16);
}

export function verifyTrackingToken(secret: string, token: string): { campaignId: number; userId: string } | null {
  const parts = token.split('.');
  if (parts.length === 5 && parts[0] === 't2') {
    const [, campaign, user, topic, sig] = parts as [string, string, string, string, string];
    if (!same(sig, messageHalf(secret, campaign, user, topic, 0))) return null;
    const campaignId = Number(campaign);
    const userId = unb64(user);
    if (!/^\d{1,15}$/.test(campaign) || !Number.isSafeInteger(campaignId) || userId === null) return null;
    return { campaignId, userId };
  }
  if (parts.length !== 4 || parts[0] !== 't1') return null;
  const [, campaign, user, sig] = parts as [string, string, string, string];
  if (!same(sig, sign(secret, `t1.${campaign}.${user}`))) return null;
  const campaignId = Number(campaign);
  const userId = unb64(user);
  if (!/^\d{1,15}$/.test(campaign) || !Number.isSafeInteger(campaignId) || userId === null) return null;
  return { campaignId, userId };
}

export function unsubscribeToken(secret: string, campaignId: number, userId: string, topic: string): string {
  const body = `s1.${campaignId}.${b64(userId)}.${b64(topic)}`;
  return `${body}.${sign(secret, body)}`;
}

export function verifyUnsubscribeToken(secret: string, token: string): { campaignId: number; userId: string; topic: string } | null {
  const parts = token.split('.');
  if (parts.length !== 5 || (parts[0] !== 's1' && parts[0] !== 's2')) return null;
  const [kind, campaign, user, topic, sig] = parts as [string, string, string, string, string];
  const expected = kind === 's2' ? messageHalf(secret, campaign, user, topic, 1) : sign(secret, `s1.${campaign}.${user}.${topic}`);
  if (!same(sig, expected)) return null;
  const campaignId = Number(campaign);
  const userId = unb64(user);
  const topicName = unb64(topic);
  if (!/^\d{1,15}$/.test(campaign) || !Number.isSafeInteger(campaignId) || userId === null || userId === '' || topicName === null)
    return null;
  return { campaignId, userId, topic: topicName };
}

/**
 * A WebSocket connect token `w1.<expires unix s>.<sig>`: browsers cannot set headers on a WebSocket, so
 * the dashboard trades its admin key for one of these (POST /v1/ws/token) and puts it in the URL, where
 * it is good for a minute.
 */
export function wsToken(secret: string, expiresAtSec: number): string {
  const body = `w1.${expiresAtSec}`;
  return `${body}.${sign(secret, body)}`;
}

export function verifyWsToken(secret: string, token: string, nowSec: number): boolean {
  const parts = token.split('.');
  if (parts.length !== 3 || parts[0] !== 'w1') return false;
  const [, exp, sig] = parts as [string, string, string];
  return same(sig, sign(secret, `w1.${exp}`)) && /^\d{1,12}$/.test(exp) && Number(exp) > nowSec;
}

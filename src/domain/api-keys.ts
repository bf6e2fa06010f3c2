/**
 * API keys and their scopes. A key is `hk_<id>_<secret>`: the id (16 hex digits) finds its row, and only
 * the SHA-256 of the secret (256 random bits, so no slow KDF is needed: there is nothing to guess) is
 * stored and compared, in constant time. HERALD_API_KEYS are the bootstrap keys: admin, named `env:<n>`.
 * Pure apart from the random bytes of a new key.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { HeraldError, type FieldError } from '../errors.js';

/**
 * What a key may do: `read` every GET and the WebSocket; `send` create and drive campaigns (and previews,
 * test sends, provider callbacks); `audience` imports, audiences, segments, suppressions and topics;
 * `admin` keys, and every other scope with them.
 */
export const SCOPES = ['read', 'send', 'audience', 'admin'] as const;
export type Scope = (typeof SCOPES)[number];

/** Who may call a route: a key with that scope; `user`, the path user's token or a `read` key; `public`, anyone. */
export type Access = Scope | 'user' | 'public';

export const SCOPE_SUMMARY: Readonly<Record<Scope, string>> = {
  read: 'every GET, the WebSocket API and its connect token, user tokens',
  send: 'create, start, pause, resume, cancel, retry-failed and PATCH campaigns; preview and test sends; provider callbacks',
  audience: 'audiences, imports, segments, suppressions, topics',
  admin: 'keys; implies every other scope',
};

export function isScope(v: unknown): v is Scope {
  return typeof v === 'string' && (SCOPES as readonly string[]).includes(v);
}

/** `admin` implies every scope. */
export function hasScope(scopes: readonly Scope[], needed: Scope): boolean {
  return scopes.includes(needed) || scopes.includes('admin');
}

/** Who made a request, as the audit records it. */
export interface Caller {
  /** a stored key's id, `env:<n>` for the n-th of HERALD_API_KEYS, `user:<id>` for a user token, `public` */
  keyId: string;
  keyName: string | null;
}

/** What an Authorization header proved. */
export type Credential =
  | { kind: 'none' }
  /** a bearer that is no key: unknown, revoked, wrong secret, or another kind of token */
  | { kind: 'invalid'; bearer: string }
  | { kind: 'key'; caller: Caller; scopes: readonly Scope[] };

export const KEY_ID_PATTERN = /^[0-9a-f]{16}$/;
const KEY_PATTERN = /^hk_([0-9a-f]{16})_([A-Za-z0-9_-]{43})$/;

/** The bearer of an `Authorization: Bearer …` header, or null. */
export function bearerOf(authorization: string): string | null {
  const m = /^Bearer\s+(\S+)\s*$/i.exec(authorization);
  return m === null ? null : m[1]!;
}

export function secretSha256(secret: string): Buffer {
  return createHash('sha256').update(secret, 'utf8').digest();
}

/** A stored key's id and secret from its bearer form, or null when it is not one. */
export function parseApiKey(bearer: string): { id: string; secret: string } | null {
  const m = KEY_PATTERN.exec(bearer);
  return m === null ? null : { id: m[1]!, secret: m[2]! };
}

/** Whether `secret` hashes to `sha256`, in constant time. */
export function secretMatches(secret: string, sha256: Buffer): boolean {
  const h = secretSha256(secret);
  return h.length === sha256.length && timingSafeEqual(h, sha256);
}

/** A new key: its id, the bearer shown once, and the hash that is stored. */
export function mintApiKey(): { id: string; key: string; sha256: Buffer } {
  const id = randomBytes(8).toString('hex');
  const secret = randomBytes(32).toString('base64url');
  return { id, key: `hk_${id}_${secret}`, sha256: secretSha256(secret) };
}

/** The bootstrap key a bearer is, compared with every one in constant time; its index (0-based) or -1. */
export function bootstrapKeyIndex(bearer: string, keys: readonly string[]): number {
  const given = Buffer.from(bearer);
  let found = -1;
  keys.forEach((k, i) => {
    const key = Buffer.from(k);
    // every key compared, each in constant time, so timing does not tell which matched
    if (key.length === given.length && timingSafeEqual(key, given) && found === -1) found = i;
  });
  return found;
}

export const bootstrapKeyId = (index: number): string => `env:${index + 1}`;

export interface CreateKeyInput {
  name: string;
  scopes: Scope[];
}

export const MAX_KEY_NAME = 200;

export function validateCreateKey(body: unknown): CreateKeyInput {
  if (typeof body !== 'object' || body === null || Array.isArray(body))
    throw HeraldError.invalid([{ field: 'body', error: 'must be a JSON object' }]);
  const b = body as Record<string, unknown>;
  const errors: FieldError[] = [];
  const name = b.name;
  if (typeof name !== 'string' || name.trim() === '') errors.push({ field: 'name', error: 'is required and must be a non-empty string' });
  else if (name.length > MAX_KEY_NAME) errors.push({ field: 'name', error: `must be at most ${MAX_KEY_NAME} characters` });
  const scopes: Scope[] = [];
  if (!Array.isArray(b.scopes) || b.scopes.length === 0) {
    errors.push({ field: 'scopes', error: `is required: a non-empty array of ${SCOPES.join(', ')}` });
  } else {
    b.scopes.forEach((s: unknown, i) => {
      if (!isScope(s)) errors.push({ field: `scopes[${i}]`, error: `unknown scope ${JSON.stringify(s)}: one of ${SCOPES.join(', ')}` });
      else if (!scopes.includes(s)) scopes.push(s);
    });
  }
  for (const k of Object.keys(b)) if (k !== 'name' && k !== 'scopes') errors.push({ field: k, error: 'is not a field of a key' });
  if (errors.length > 0) throw HeraldError.invalid(errors);
  return { name: name as string, scopes: SCOPES.filter((s) => scopes.includes(s)) };
}

/**
 * Who may call a route (route.ts `auth`), checked by api/http.ts before the handler runs: a key holding
 * the route's scope (`admin` holds every scope); for `user`, a `read` key or the path user's own token
 * (its `:user_id` is the first path parameter); nothing for `public`. 401 for a missing, unknown or
 * revoked key; 403 naming the scope a valid key lacks.
 */
import { HeraldError } from '../errors.js';
import { hasScope, type Access, type Caller, type Credential, type Scope } from '../domain/api-keys.js';
import { PUBLIC_CALLER } from '../domain/audit.js';
import { parseUserId } from '../domain/event-input.js';
import { verifyUserToken } from '../domain/tokens.js';
import type { RequestInfo } from './route.js';

export interface AuthOptions {
  /** an Authorization header's credential (api/key-verifier.ts) */
  authenticate(authorization: string): Promise<Credential>;
  /** signs user tokens (config.ts tokenSecret) */
  tokenSecret: string;
  nowSec?: () => number;
}

export type Authorize = (auth: Access, info: RequestInfo) => Promise<Caller>;

export function missingScope(scope: Scope): HeraldError {
  return new HeraldError('FORBIDDEN', `this key lacks the "${scope}" scope this route needs`, { field: 'authorization', scope });
}

const unauthorized = (what: string): HeraldError => new HeraldError('UNAUTHORIZED', what, { field: 'authorization' });

export function authorizer(opts: AuthOptions): Authorize {
  const nowSec = opts.nowSec ?? ((): number => Math.floor(Date.now() / 1000));
  return async (auth, info) => {
    if (auth === 'public') return PUBLIC_CALLER;
    if (auth !== 'user') {
      const cred = await opts.authenticate(info.headers.authorization);
      if (cred.kind !== 'key') throw unauthorized('missing, unknown or revoked API key');
      if (!hasScope(cred.scopes, auth)) throw missingScope(auth);
      return cred.caller;
    }
    // A malformed path user is a 400 before any key is looked at, as the handler would answer it.
    const userId = parseUserId(info.params[0]);
    const cred = await opts.authenticate(info.headers.authorization);
    if (cred.kind === 'key') {
      if (!hasScope(cred.scopes, 'read')) throw missingScope('read');
      return cred.caller;
    }
    const tokenUser = cred.kind === 'invalid' ? verifyUserToken(opts.tokenSecret, cred.bearer, nowSec()) : null;
    if (tokenUser === null) throw unauthorized('missing, invalid or expired user token or API key');
    if (tokenUser !== userId) throw new HeraldError('FORBIDDEN', "this token is not for this user's inbox", { field: 'authorization' });
    return { keyId: `user:${userId}`, keyName: null };
  };
}

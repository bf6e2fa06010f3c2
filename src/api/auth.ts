/**
 * Who may call a route (route.ts `Auth`), checked by api/http.ts before the handler runs: the admin key
 * for `admin`; the admin key or the path user's own token for `user` (its `:user_id` is the first path
 * parameter); nothing for `public`.
 */
import { HeraldError } from '../errors.js';
import { checkBearer } from '../domain/bearer.js';
import { parseUserId } from '../domain/event-input.js';
import { verifyUserToken } from '../domain/tokens.js';
import type { Auth, RequestInfo } from './route.js';

export interface AuthOptions {
  /** HERALD_API_KEYS */
  apiKeys: readonly string[];
  /** signs user tokens (config.ts tokenSecret) */
  tokenSecret: string;
}

export function authorizer(opts: AuthOptions): (auth: Auth, info: RequestInfo) => void {
  return (auth, info) => {
    if (auth === 'public') return;
    if (auth === 'admin') {
      if (!checkBearer(info.headers.authorization, opts.apiKeys))
        throw new HeraldError('UNAUTHORIZED', 'missing or invalid bearer key', { field: 'authorization' });
      return;
    }
    // A malformed path user is a 400 before any key is looked at, as the handler would answer it.
    const userId = parseUserId(info.params[0]);
    if (checkBearer(info.headers.authorization, opts.apiKeys)) return;
    const m = /^Bearer\s+(\S+)$/i.exec(info.headers.authorization);
    const tokenUser = m === null ? null : verifyUserToken(opts.tokenSecret, m[1]!, Math.floor(Date.now() / 1000));
    if (tokenUser === null) {
      throw new HeraldError('UNAUTHORIZED', 'missing, invalid or expired user token', { field: 'authorization' });
    }
    if (tokenUser !== userId) throw new HeraldError('FORBIDDEN', "this token is not for this user's inbox", { field: 'authorization' });
  };
}

/**
 * Turns an Authorization header into a Credential on every request without a PostgreSQL round trip each
 * time: a stored key's row (or its absence) is kept in memory for `cacheMs`, so a key revoked by another
 * process stops working within that bound (this process forgets it at once). The secret is checked on
 * every request against the cached hash, in constant time; bootstrap keys (HERALD_API_KEYS) need no row.
 * Concurrent requests with one key id share one lookup.
 */
import {
  bearerOf,
  bootstrapKeyId,
  bootstrapKeyIndex,
  parseApiKey,
  secretMatches,
  type Credential,
  type Scope,
} from '../domain/api-keys.js';
import type { KeyCheckRow } from '../store/key-repo.js';

export interface KeySource {
  forCheck(id: string): Promise<KeyCheckRow | null>;
  /** records that the key was used (best effort) */
  touch(id: string): Promise<void>;
}

export interface KeyVerifierOptions {
  /** HERALD_API_KEYS: admin keys named `env:<n>` */
  bootstrapKeys: readonly string[];
  source: KeySource;
  /** how long a looked-up key (or its absence) is trusted: the bound on a revoke elsewhere taking effect */
  cacheMs: number;
  /** the least time between two writes of a key's last_used_at from this process */
  touchEveryMs: number;
  /** cached key ids past which the expired ones are dropped (and all, if none has expired) */
  maxCached: number;
  now?: () => number;
  onTouchFailed?: (err: unknown) => void;
}

const ADMIN: readonly Scope[] = Object.freeze(['admin'] as Scope[]);
const NONE: Credential = Object.freeze({ kind: 'none' });

export class KeyVerifier {
  private readonly cache = new Map<string, { row: KeyCheckRow | null; until: number }>();
  private readonly lookups = new Map<string, Promise<KeyCheckRow | null>>();
  private readonly touched = new Map<string, number>();
  private readonly bootstrap: Credential[];
  private readonly now: () => number;

  constructor(private readonly opts: KeyVerifierOptions) {
    this.now = opts.now ?? Date.now;
    this.bootstrap = opts.bootstrapKeys.map((_, i) => ({
      kind: 'key',
      caller: { keyId: bootstrapKeyId(i), keyName: `HERALD_API_KEYS #${i + 1}` },
      scopes: ADMIN,
    }));
  }

  async authenticate(authorization: string): Promise<Credential> {
    const bearer = bearerOf(authorization);
    if (bearer === null) return NONE;
    const b = bootstrapKeyIndex(bearer, this.opts.bootstrapKeys);
    if (b !== -1) return this.bootstrap[b]!;
    const parsed = parseApiKey(bearer);
    if (parsed === null) return { kind: 'invalid', bearer };
    const row = await this.row(parsed.id);
    if (row === null || row.revoked || !secretMatches(parsed.secret, row.secretSha256)) return { kind: 'invalid', bearer };
    this.touch(row.id);
    return { kind: 'key', caller: { keyId: row.id, keyName: row.name }, scopes: row.scopes };
  }

  /** Drops what is known of key `id` (revoked here): its next use looks it up again. */
  forget(id: string): void {
    this.cache.delete(id);
    this.lookups.delete(id);
  }

  private row(id: string): Promise<KeyCheckRow | null> | KeyCheckRow | null {
    const now = this.now();
    const hit = this.cache.get(id);
    if (hit !== undefined && hit.until > now) return hit.row;
    const pending = this.lookups.get(id);
    if (pending !== undefined) return pending;
    const lookup = this.opts.source.forCheck(id).then(
      (row) => {
        // a forget() meanwhile (a revoke here) discards what this lookup read before it
        if (this.lookups.get(id) === lookup) {
          this.lookups.delete(id);
          this.remember(id, row, now);
        }
        return row;
      },
      (err: unknown) => {
        if (this.lookups.get(id) === lookup) this.lookups.delete(id);
        throw err;
      },
    );
    this.lookups.set(id, lookup);
    return lookup;
  }

  private remember(id: string, row: KeyCheckRow | null, readAt: number): void {
    if (this.cache.size >= this.opts.maxCached) {
      const now = this.now();
      for (const [k, v] of this.cache) if (v.until <= now) this.cache.delete(k);
      if (this.cache.size >= this.opts.maxCached) this.cache.clear();
    }
    // trusted from when the lookup began, so the bound holds however long the lookup took
    this.cache.set(id, { row, until: readAt + this.opts.cacheMs });
  }

  private touch(id: string): void {
    const now = this.now();
    if (now - (this.touched.get(id) ?? -Infinity) < this.opts.touchEveryMs) return;
    this.touched.set(id, now);
    this.opts.source.touch(id).catch((err: unknown) => this.opts.onTouchFailed?.(err));
  }
}

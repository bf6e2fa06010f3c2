import { describe, expect, it } from 'vitest';
import { HeraldError } from '../../src/errors.js';
import {
  bootstrapKeyIndex,
  hasScope,
  mintApiKey,
  parseApiKey,
  SCOPES,
  secretMatches,
  secretSha256,
  validateCreateKey,
  type Access,
  type Credential,
  type Scope,
} from '../../src/domain/api-keys.js';
import { requestIdFrom, validateAuditQuery } from '../../src/domain/audit.js';
import { authorizer } from '../../src/api/auth.js';
import { KeyVerifier, type KeySource } from '../../src/api/key-verifier.js';
import { userToken } from '../../src/domain/tokens.js';
import type { RequestInfo } from '../../src/api/route.js';
import type { KeyCheckRow } from '../../src/store/key-repo.js';

function errorOf(fn: () => unknown): HeraldError {
  try {
    fn();
  } catch (err) {
    if (err instanceof HeraldError) return err;
    throw err;
  }
  throw new Error('no error thrown');
}

async function rejection(p: Promise<unknown>): Promise<HeraldError | null> {
  try {
    await p;
    return null;
  } catch (err) {
    if (err instanceof HeraldError) return err;
    throw err;
  }
}

describe('scopes', () => {
  it('a key holds its own scopes, and admin holds every scope', () => {
    for (const needed of SCOPES) {
      for (const held of SCOPES) expect(hasScope([held], needed), `${held} for ${needed}`).toBe(held === needed || held === 'admin');
      expect(hasScope([], needed)).toBe(false);
    }
    expect(hasScope(['read', 'send'], 'send')).toBe(true);
    expect(hasScope(['read', 'send'], 'audience')).toBe(false);
  });
});

describe('key format and hashing', () => {
  it('mints hk_<id>_<secret> keys that parse back, whose secret matches only its own hash', () => {
    const a = mintApiKey();
    const b = mintApiKey();
    expect(a.key).toMatch(/^hk_[0-9a-f]{16}_[A-Za-z0-9_-]{43}$/);
    expect(a.id).not.toBe(b.id);
    const pa = parseApiKey(a.key)!;
    expect(pa.id).toBe(a.id);
    expect(a.key).not.toContain(a.sha256.toString('hex'));
    expect(secretSha256(pa.secret).equals(a.sha256)).toBe(true);
    expect(secretMatches(pa.secret, a.sha256)).toBe(true);
    expect(secretMatches(pa.secret, b.sha256)).toBe(false);
    expect(secretMatches(pa.secret, Buffer.alloc(3))).toBe(false);
    for (const bad of ['', 'hk_', `hk_${a.id}_short`, `hk_${a.id.toUpperCase()}_${pa.secret}`, `xx_${a.id}_${pa.secret}`]) {
      expect(parseApiKey(bad), bad).toBeNull();
    }
  });

  it('finds which bootstrap key a bearer is', () => {
    const keys = ['first-key-0123', 'second-key-0123', 'x'];
    expect(bootstrapKeyIndex('second-key-0123', keys)).toBe(1);
    expect(bootstrapKeyIndex('first-key-0123', keys)).toBe(0);
    expect(bootstrapKeyIndex('first-key-012', keys)).toBe(-1);
    expect(bootstrapKeyIndex('', keys)).toBe(-1);
  });
});

describe('POST /v1/keys body', () => {
  it('takes a name and known scopes, in a fixed order, each once', () => {
    expect(validateCreateKey({ name: 'ci', scopes: ['send', 'read', 'send'] })).toEqual({ name: 'ci', scopes: ['read', 'send'] });
  });

  it('names the field of each error: an unknown scope by its index', () => {
    const e = errorOf(() => validateCreateKey({ name: 'ci', scopes: ['write'] }));
    expect([e.status, e.details.field]).toEqual([400, 'scopes[0]']);
    expect(e.message).toContain('write');
    expect(errorOf(() => validateCreateKey({ name: 'ci', scopes: ['read', 'nope'] })).details.field).toBe('scopes[1]');
    expect(errorOf(() => validateCreateKey({ name: 'ci', scopes: [] })).details.field).toBe('scopes');
    expect(errorOf(() => validateCreateKey({ name: 'ci', scopes: 'read' })).details.field).toBe('scopes');
    expect(errorOf(() => validateCreateKey({ name: ' ', scopes: ['read'] })).details.field).toBe('name');
    expect(errorOf(() => validateCreateKey({ name: 'x'.repeat(201), scopes: ['read'] })).details.field).toBe('name');
    expect(errorOf(() => validateCreateKey([])).details.field).toBe('body');
  });
});

const info = (authorization: string, params: string[] = []): RequestInfo => ({
  method: 'GET',
  url: '/x',
  query: new URLSearchParams(),
  params,
  headers: { authorization, contentType: '', contentEncoding: '', contentLength: null },
  requestId: 'r1',
});

describe('authorizer: every access against every key', () => {
  const secret = 'token-secret-0123456789';
  // A fake credential per bearer: `scopes:<a,b>` is a key with those scopes.
  const authenticate = async (authorization: string): Promise<Credential> => {
    const m = /^Bearer (\S+)$/.exec(authorization);
    if (m === null) return { kind: 'none' };
    if (m[1]!.startsWith('scopes:'))
      return { kind: 'key', caller: { keyId: m[1]!, keyName: 'k' }, scopes: m[1]!.slice(7).split(',').filter(Boolean) as Scope[] };
    return { kind: 'invalid', bearer: m[1]! };
  };
  const authorize = authorizer({ authenticate, tokenSecret: secret, nowSec: () => 1000 });

  it('lets a key with the scope in and answers 403 naming the scope to one without it', async () => {
    for (const needed of SCOPES) {
      for (const held of [...SCOPES, 'read,send', 'audience,read']) {
        const e = await rejection(authorize(needed, info(`Bearer scopes:${held}`)));
        const allowed = held.split(',').includes(needed) || held === 'admin';
        if (allowed) expect(e, `${held} → ${needed}`).toBeNull();
        else {
          expect([e?.status, e?.details.field, e?.details.scope], `${held} → ${needed}`).toEqual([403, 'authorization', needed]);
          expect(e!.message).toContain(needed);
        }
      }
    }
  });

  it('answers 401 without a key or with one that is not (unknown, revoked), whatever the scope', async () => {
    for (const needed of [...SCOPES, 'user'] as Access[]) {
      for (const authorization of ['', 'Bearer nope', 'Basic abc']) {
        const e = await rejection(authorize(needed, info(authorization, ['u1'])));
        expect([e?.status, e?.details.field], `${needed} ${authorization}`).toEqual([401, 'authorization']);
      }
    }
  });

  it('names the caller: the key, or the user of a user token', async () => {
    expect(await authorize('send', info('Bearer scopes:send'))).toEqual({ keyId: 'scopes:send', keyName: 'k' });
    expect(await authorize('user', info(`Bearer ${userToken(secret, 'u1', 2000)}`, ['u1']))).toEqual({ keyId: 'user:u1', keyName: null });
    expect(await authorize('public', info(''))).toMatchObject({ keyId: 'public' });
  });

  it('user routes: a read key or the path user own token; another user, or a key without read, is 403', async () => {
    expect(await rejection(authorize('user', info('Bearer scopes:read', ['u1'])))).toBeNull();
    expect(await rejection(authorize('user', info('Bearer scopes:admin', ['u1'])))).toBeNull();
    expect((await rejection(authorize('user', info('Bearer scopes:send', ['u1']))))?.details).toMatchObject({ scope: 'read' });
    expect((await rejection(authorize('user', info(`Bearer ${userToken(secret, 'u2', 2000)}`, ['u1']))))?.status).toBe(403);
    expect((await rejection(authorize('user', info(`Bearer ${userToken(secret, 'u1', 999)}`, ['u1']))))?.status).toBe(401);
    expect((await rejection(authorize('user', info('Bearer scopes:read', ['']))))?.status).toBe(400);
  });
});

/** An in-memory key table counting its lookups. */
class FakeKeys implements KeySource {
  rows = new Map<string, KeyCheckRow>();
  lookups = 0;
  touches: string[] = [];
  fail = false;
  async forCheck(id: string): Promise<KeyCheckRow | null> {
    this.lookups++;
    await new Promise((r) => setTimeout(r, 1));
    if (this.fail) throw new HeraldError('DEPENDENCY_UNAVAILABLE', 'down');
    const row = this.rows.get(id);
    return row === undefined ? null : { ...row };
  }
  async touch(id: string): Promise<void> {
    this.touches.push(id);
  }
}

describe('KeyVerifier', () => {
  const setup = () => {
    const source = new FakeKeys();
    const clock = { t: 1_000_000 };
    const v = new KeyVerifier({
      bootstrapKeys: ['boot-key-0123456789', 'boot-key-two-456789'],
      source,
      cacheMs: 5000,
      touchEveryMs: 60_000,
      maxCached: 100,
      now: () => clock.t,
    });
    const k = mintApiKey();
    source.rows.set(k.id, { id: k.id, name: 'ci', scopes: ['send'], secretSha256: k.sha256, revoked: false });
    return { source, clock, v, k, bearer: `Bearer ${k.key}` };
  };

  it('bootstrap keys are admin keys named env:<n>, with no lookup', async () => {
    const { v, source } = setup();
    expect(await v.authenticate('Bearer boot-key-two-456789')).toMatchObject({
      kind: 'key',
      caller: { keyId: 'env:2' },
      scopes: ['admin'],
    });
    expect(await v.authenticate('')).toEqual({ kind: 'none' });
    expect(source.lookups).toBe(0);
  });

  it('looks a key up once per cache period, checking the secret on every request', async () => {
    const { v, source, clock, k, bearer } = setup();
    const all = await Promise.all([v.authenticate(bearer), v.authenticate(bearer), v.authenticate(bearer)]);
    for (const c of all) expect(c).toMatchObject({ kind: 'key', caller: { keyId: k.id, keyName: 'ci' }, scopes: ['send'] });
    expect(source.lookups).toBe(1);
    // the right id with another secret
    const wrong = `Bearer hk_${k.id}_${'A'.repeat(43)}`;
    expect((await v.authenticate(wrong)).kind).toBe('invalid');
    expect(source.lookups).toBe(1);
    clock.t += 4999;
    await v.authenticate(bearer);
    expect(source.lookups).toBe(1);
    clock.t += 1;
    await v.authenticate(bearer);
    expect(source.lookups).toBe(2);
    expect(source.touches).toEqual([k.id]);
  });

  it('a revoke elsewhere takes effect within the cache period; forget() makes it immediate', async () => {
    const { v, source, clock, k, bearer } = setup();
    expect((await v.authenticate(bearer)).kind).toBe('key');
    source.rows.get(k.id)!.revoked = true;
    clock.t += 2000;
    expect((await v.authenticate(bearer)).kind).toBe('key');
    clock.t += 3000;
    expect((await v.authenticate(bearer)).kind).toBe('invalid');

    const other = mintApiKey();
    source.rows.set(other.id, { id: other.id, name: 'x', scopes: ['read'], secretSha256: other.sha256, revoked: false });
    expect((await v.authenticate(`Bearer ${other.key}`)).kind).toBe('key');
    source.rows.get(other.id)!.revoked = true;
    v.forget(other.id);
    expect((await v.authenticate(`Bearer ${other.key}`)).kind).toBe('invalid');
  });

  it('a lookup that began before forget() does not put the old row back', async () => {
    const { v, source, k, bearer } = setup();
    const pending = v.authenticate(bearer);
    source.rows.get(k.id)!.revoked = true;
    v.forget(k.id);
    await pending;
    expect((await v.authenticate(bearer)).kind).toBe('invalid');
  });

  it('caches unknown ids too, and does not cache a failed lookup', async () => {
    const { v, source } = setup();
    const unknown = `Bearer ${mintApiKey().key}`;
    expect((await v.authenticate(unknown)).kind).toBe('invalid');
    expect((await v.authenticate(unknown)).kind).toBe('invalid');
    expect(source.lookups).toBe(1);
    source.fail = true;
    const fresh = `Bearer ${mintApiKey().key}`;
    expect((await rejection(v.authenticate(fresh)))?.code).toBe('DEPENDENCY_UNAVAILABLE');
    source.fail = false;
    expect((await v.authenticate(fresh)).kind).toBe('invalid');
    expect(source.lookups).toBe(3);
  });

  it('stays bounded: past maxCached ids, the cache starts over', async () => {
    const { v, source } = setup();
    for (let i = 0; i < 150; i++) await v.authenticate(`Bearer ${mintApiKey().key}`);
    expect(source.lookups).toBe(150);
    expect((v as unknown as { cache: Map<string, unknown> }).cache.size).toBeLessThanOrEqual(100);
  });
});

describe('request ids and the audit query', () => {
  it('keeps a sane x-request-id and makes one up otherwise', () => {
    expect(requestIdFrom('req-123_abc.def:9')).toBe('req-123_abc.def:9');
    for (const bad of ['', 'has space', 'x'.repeat(129), 'semi;colon', 'é']) {
      const id = requestIdFrom(bad);
      expect(id).not.toBe(bad);
      expect(id).toMatch(/^[0-9a-f-]{36}$/);
    }
  });

  it('reads campaign_id, limit and before, naming every bad one', () => {
    expect(validateAuditQuery(new URLSearchParams(''))).toEqual({ campaignId: null, limit: 50, before: null });
    expect(validateAuditQuery(new URLSearchParams('campaign_id=7&limit=500&before=99'))).toEqual({ campaignId: 7, limit: 500, before: 99 });
    const e = errorOf(() => validateAuditQuery(new URLSearchParams('campaign_id=x&limit=501&before=0')));
    expect((e.details.fields as Array<{ field: string }>).map((f) => f.field)).toEqual(['campaign_id', 'limit', 'before']);
  });
});

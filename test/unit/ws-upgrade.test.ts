import { describe, expect, it } from 'vitest';
import { upgradeVerdict } from '../../src/ws/ws-server.js';
import { wsToken } from '../../src/domain/tokens.js';
import type { Credential, Scope } from '../../src/domain/api-keys.js';

const secret = 'secret-0123456789abcdef';
const now = 1_800_000_000;
const key = (...scopes: Scope[]): Credential => ({ kind: 'key', caller: { keyId: '0123456789abcdef', keyName: 'k' }, scopes });
const NONE: Credential = { kind: 'none' };

describe('WebSocket upgrade verdict (pure)', () => {
  it('lets a read key (admin implies it) or a live connect token in, as json unless msgpack is asked for', () => {
    expect(upgradeVerdict(key('read'), '', secret, now)).toEqual({ ok: true, format: 'json' });
    expect(upgradeVerdict(key('admin'), '', secret, now)).toEqual({ ok: true, format: 'json' });
    const token = wsToken(secret, now + 60);
    expect(upgradeVerdict(NONE, `token=${encodeURIComponent(token)}&format=msgpack`, secret, now)).toEqual({ ok: true, format: 'msgpack' });
  });

  it('refuses a missing, wrong or expired credential with 401 before looking at the format', () => {
    for (const [credential, query] of [
      [NONE, ''],
      [{ kind: 'invalid', bearer: 'nope' }, 'format=xml'],
      [NONE, `token=${encodeURIComponent(wsToken(secret, now - 1))}`],
      [NONE, `token=${encodeURIComponent(wsToken('another-secret-0123456789', now + 60))}`],
    ] as const) {
      const v = upgradeVerdict(credential, query, secret, now);
      expect(v.ok).toBe(false);
      if (!v.ok) expect([v.status, v.body.field]).toEqual(['401 Unauthorized', 'authorization']);
    }
  });

  it('refuses a key without the read scope with 403 naming it', () => {
    for (const scopes of [['send'], ['audience'], ['send', 'audience']] as Scope[][]) {
      const v = upgradeVerdict(key(...scopes), '', secret, now);
      expect(v).toMatchObject({ ok: false, status: '403 Forbidden', body: { code: 'FORBIDDEN', field: 'authorization', scope: 'read' } });
    }
  });

  it('refuses an unknown format with 400 naming the field', () => {
    const v = upgradeVerdict(key('read'), 'format=xml', secret, now);
    expect(v).toMatchObject({ ok: false, status: '400 Bad Request', body: { field: 'format' } });
  });
});

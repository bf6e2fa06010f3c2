import { describe, expect, it } from 'vitest';
import { upgradeVerdict } from '../../src/ws/ws-server.js';
import { wsToken } from '../../src/domain/tokens.js';

const opts = { apiKeys: ['admin-key-0123456789'], tokenSecret: 'secret-0123456789abcdef' };
const now = 1_800_000_000;

describe('WebSocket upgrade verdict (pure)', () => {
  it('lets the admin key or a live connect token in, as json unless msgpack is asked for', () => {
    expect(upgradeVerdict('Bearer admin-key-0123456789', '', opts, now)).toEqual({ ok: true, format: 'json' });
    const token = wsToken(opts.tokenSecret, now + 60);
    expect(upgradeVerdict('', `token=${encodeURIComponent(token)}&format=msgpack`, opts, now)).toEqual({ ok: true, format: 'msgpack' });
  });

  it('refuses a missing, wrong or expired credential with 401 before looking at the format', () => {
    for (const [authorization, query] of [
      ['', ''],
      ['Bearer nope', 'format=xml'],
      ['', `token=${encodeURIComponent(wsToken(opts.tokenSecret, now - 1))}`],
      ['', `token=${encodeURIComponent(wsToken('another-secret-0123456789', now + 60))}`],
    ] as const) {
      const v = upgradeVerdict(authorization, query, opts, now);
      expect(v.ok).toBe(false);
      if (!v.ok) expect([v.status, v.body.field]).toEqual(['401 Unauthorized', 'authorization']);
    }
  });

  it('refuses an unknown format with 400 naming the field', () => {
    const v = upgradeVerdict('Bearer admin-key-0123456789', 'format=xml', opts, now);
    expect(v).toMatchObject({ ok: false, status: '400 Bad Request', body: { field: 'format' } });
  });
});

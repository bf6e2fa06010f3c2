import fc from 'fast-check';
import { describe, expect, it, vi } from 'vitest';
import { SuppressionIndex } from '../../src/consent/suppression-index.js';
import {
  fingerprint,
  fingerprintBytes,
  fingerprintBytesTwice,
  fingerprintSql,
  FingerprintSet,
  topicSeed,
} from '../../src/domain/fingerprint.js';
import { parseSuppressionLine, validateTopicInput } from '../../src/domain/consent-input.js';
import { messageTokens, trackingToken, unsubscribeToken, verifyTrackingToken, verifyUnsubscribeToken } from '../../src/domain/tokens.js';
import type { HeraldError } from '../../src/errors.js';

describe('suppression fingerprints', () => {
  it('never misses a member (no false negatives), through growth, for any ids', () => {
    fc.assert(
      fc.property(
        fc.uniqueArray(fc.tuple(fc.constantFrom('', 'news', 'promo'), fc.string({ minLength: 1, maxLength: 40 })), { maxLength: 3000 }),
        (pairs) => {
          const set = new FingerprintSet(4);
          for (const [t, u] of pairs) {
            const f = fingerprint(t, u);
            set.add(f.hi, f.lo);
          }
          for (const [t, u] of pairs) {
            const f = fingerprint(t, u);
            expect(set.has(f.hi, f.lo)).toBe(true);
          }
        },
      ),
      { numRuns: 30 },
    );
  });

  it('takes both fingerprints in one pass exactly as one at a time', () => {
    fc.assert(
      fc.property(
        fc.string({ maxLength: 12 }),
        fc.string({ maxLength: 12 }),
        fc.uint8Array({ maxLength: 80 }),
        fc.nat(),
        (t1, t2, bytes, cut) => {
          const start = bytes.length === 0 ? 0 : cut % bytes.length;
          const [s1, s2] = [topicSeed(t1), topicSeed(t2)];
          const a = { hi: 0, lo: 0 };
          const b = { hi: 0, lo: 0 };
          fingerprintBytesTwice(s1, s2, bytes, start, bytes.length, a, b);
          expect(a).toEqual(fingerprintBytes(s1, bytes, start, bytes.length, { hi: 0, lo: 0 }));
          expect(b).toEqual(fingerprintBytes(s2, bytes, start, bytes.length, { hi: 0, lo: 0 }));
        },
      ),
    );
  });

  it('tells topics apart, and rarely hits a non-member', () => {
    const set = new FingerprintSet();
    for (let i = 0; i < 100_000; i++) {
      const f = fingerprint('', `u${i}`);
      set.add(f.hi, f.lo);
    }
    expect(set.size).toBe(100_000);
    expect(set.bytes).toBeLessThanOrEqual(100_000 * 32);
    let hits = 0;
    for (let i = 0; i < 100_000; i++) {
      const f = fingerprint('news', `u${i}`);
      const g = fingerprint('', `x${i}`);
      if (set.has(f.hi, f.lo) || set.has(g.hi, g.lo)) hits++;
    }
    expect(hits).toBe(0);
  });

  it('writes PostgreSQL bigints that read back as the same halves', () => {
    for (const [t, u] of [
      ['', 'a'],
      ['news', 'ü∂'],
      ['x', '0'],
    ] as const) {
      const f = fingerprint(t, u);
      const v = BigInt.asUintN(64, BigInt(fingerprintSql(f)));
      expect([Number(v >> 32n), Number(v & 0xffffffffn)]).toEqual([f.hi, f.lo]);
    }
  });
});

describe('consent input', () => {
  it('parses suppression lines and names the bad field', () => {
    expect(parseSuppressionLine('{"user_id":"a"}')).toEqual({ ok: true, value: { userId: 'a', topic: '', reason: null } });
    expect(parseSuppressionLine('{"user_id":7,"topic":"news","reason":"r"}')).toEqual({
      ok: true,
      value: { userId: '7', topic: 'news', reason: 'r' },
    });
    expect(parseSuppressionLine('{')).toMatchObject({ ok: false, error: expect.stringMatching(/^line/) });
    expect(parseSuppressionLine('{"user_id":"a","topic":"a b"}')).toMatchObject({ ok: false, error: expect.stringMatching(/^topic/) });
    expect(parseSuppressionLine('{"user_id":"a","reason":"' + 'x'.repeat(201) + '"}')).toMatchObject({
      ok: false,
      error: expect.stringMatching(/^reason/),
    });
    expect(parseSuppressionLine('{"topic":"news"}')).toMatchObject({ ok: false, error: expect.stringMatching(/^user_id/) });
  });

  it('validates a topic cap, every bad field at once', () => {
    expect(validateTopicInput({ cap: { max: 2, window_s: 86400 } })).toEqual({ cap: { max: 2, windowS: 86400 } });
    expect(validateTopicInput({ cap: null })).toEqual({ cap: null });
    try {
      validateTopicInput({ cap: { max: 0, window_s: 0, extra: 1 }, other: true });
      expect.unreachable();
    } catch (err) {
      expect((err as HeraldError).details.fields).toEqual([
        { field: 'other', error: expect.any(String) },
        { field: 'cap.max', error: expect.any(String) },
        { field: 'cap.window_s', error: expect.any(String) },
        { field: 'cap.extra', error: expect.any(String) },
      ]);
    }
  });
});

describe('unsubscribe tokens', () => {
  const secret = 'a-secret-of-sixteen';
  it('round-trips campaign, user and topic; refuses forged, altered and other kinds', () => {
    const t = unsubscribeToken(secret, 42, 'ü.ser', 'news');
    expect(verifyUnsubscribeToken(secret, t)).toEqual({ campaignId: 42, userId: 'ü.ser', topic: 'news' });
    expect(verifyUnsubscribeToken(secret, unsubscribeToken(secret, 1, 'u', ''))).toEqual({ campaignId: 1, userId: 'u', topic: '' });
    expect(verifyUnsubscribeToken('another-secret-xx', t)).toBeNull();
    const parts = t.split('.');
    expect(verifyUnsubscribeToken(secret, [parts[0], '43', ...parts.slice(2)].join('.'))).toBeNull();
    expect(
      verifyUnsubscribeToken(secret, [...parts.slice(0, 3), Buffer.from('promo').toString('base64url'), parts[4]].join('.')),
    ).toBeNull();
    // a tracking token is not an unsubscribe token, nor the reverse
    expect(verifyUnsubscribeToken(secret, trackingToken(secret, 42, 'u'))).toBeNull();
    expect(verifyTrackingToken(secret, t)).toBeNull();
  });

  it('gives a message both tokens from one HMAC, and neither half passes for the other or for another message', () => {
    const m = messageTokens(secret, 42, 'ü.ser', 'news');
    expect(verifyTrackingToken(secret, m.tracking)).toEqual({ campaignId: 42, userId: 'ü.ser' });
    expect(verifyUnsubscribeToken(secret, m.unsubscribe)).toEqual({ campaignId: 42, userId: 'ü.ser', topic: 'news' });
    expect(verifyUnsubscribeToken(secret, messageTokens(secret, 1, 'u', '').unsubscribe)).toEqual({
      campaignId: 1,
      userId: 'u',
      topic: '',
    });
    const [, ...tBody] = m.tracking.split('.');
    const [, ...sBody] = m.unsubscribe.split('.');
    // The same body, the other half: a pixel URL's token does not unsubscribe, nor the reverse.
    expect(verifyUnsubscribeToken(secret, ['s2', ...tBody].join('.'))).toBeNull();
    expect(verifyTrackingToken(secret, ['t2', ...sBody].join('.'))).toBeNull();
    // Altered campaign, user or topic, another secret: refused.
    expect(verifyTrackingToken(secret, ['t2', '43', ...tBody.slice(1)].join('.'))).toBeNull();
    expect(
      verifyUnsubscribeToken(secret, ['s2', sBody[0], Buffer.from('v').toString('base64url'), ...sBody.slice(2)].join('.')),
    ).toBeNull();
    expect(
      verifyUnsubscribeToken(secret, ['s2', sBody[0], sBody[1], Buffer.from('promo').toString('base64url'), sBody[3]].join('.')),
    ).toBeNull();
    expect(verifyTrackingToken('another-secret-xx', m.tracking)).toBeNull();
    // The first-generation tokens stay valid.
    expect(verifyTrackingToken(secret, trackingToken(secret, 42, 'u'))).toEqual({ campaignId: 42, userId: 'u' });
  });
});

describe('suppression index freshness', () => {
  it('answers each call from a mark read that started after it, sharing one read between calls that wait together', async () => {
    const reads: Array<(mark: number) => void> = [];
    const loads: number[] = [];
    const index = new SuppressionIndex({
      source: {
        loadFingerprints: () => {
          loads.push(reads.length);
          return Promise.resolve({ hi: new Uint32Array(0), lo: new Uint32Array(0), count: 0, xmin: '1' });
        },
        changeMark: () => Promise.resolve(1),
      },
      marks: {
        suppressionMark: () => new Promise<number>((resolve) => reads.push(resolve)),
        raiseSuppressionMark: (m) => Promise.resolve(m),
      },
      rebuildAfterMisses: 10,
    });
    const first = index.ensureFresh();
    expect(reads).toHaveLength(1);
    // Two more calls while the first read is out: they must not take its answer, and share the next read.
    const second = index.ensureFresh();
    const third = index.ensureFresh();
    expect(reads).toHaveLength(1);
    reads[0]!(5);
    await first;
    await vi.waitFor(() => expect(reads).toHaveLength(2));
    reads[1]!(6);
    await Promise.all([second, third]);
    expect(reads).toHaveLength(2);
    // mark 5 loaded the index whole; mark 6 (a newer change) loaded it again
    expect(loads).toEqual([1, 2]);
  });
});

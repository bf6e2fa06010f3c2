import { createHmac } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { HmacSha256 } from '../../src/domain/hmac.js';

const reference = (key: string | Buffer, message: string): string => createHmac('sha256', key).update(message, 'utf8').digest('hex');

describe('HmacSha256', () => {
  it('matches RFC 4231 test case 2', () => {
    expect(new HmacSha256('Jefe').digest('what do ya want for nothing?').toString('hex')).toBe(
      '5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843',
    );
  });

  it('matches RFC 4231 test case 6 (a key longer than the block is hashed first)', () => {
    const key = Buffer.alloc(131, 0xaa);
    expect(new HmacSha256(key).digest('Test Using Larger Than Block-Size Key - Hash Key First').toString('hex')).toBe(
      '60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54',
    );
  });

  it('is the same as createHmac at every length around the block boundaries', () => {
    const mac = new HmacSha256('herald-secret');
    for (let n = 0; n <= 200; n++) {
      const m = 'm2.'.padEnd(n, 'x').slice(0, n);
      expect(mac.digest(m).toString('hex'), `length ${n}`).toBe(reference('herald-secret', m));
    }
  });

  it('is the same as createHmac for random keys and messages, non-ASCII and lone surrogates included', () => {
    fc.assert(
      fc.property(
        fc.oneof(fc.string(), fc.uint8Array({ maxLength: 200 })),
        fc.array(fc.string({ unit: 'binary', maxLength: 300 }), { maxLength: 5 }),
        (k, messages) => {
          const key = typeof k === 'string' ? k : Buffer.from(k);
          const mac = new HmacSha256(key);
          // several digests from one instance: its reused state must not leak from one message to the next
          for (const m of messages) expect(mac.digest(m).toString('hex')).toBe(reference(key, m));
        },
      ),
      { numRuns: 500 },
    );
  });

  it('returns a buffer of its own per digest', () => {
    const mac = new HmacSha256('k');
    const a = mac.digest('a');
    const copy = Buffer.from(a);
    mac.digest('b');
    expect(a.equals(copy)).toBe(true);
  });
});

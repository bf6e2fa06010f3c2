import { describe, expect, it } from 'vitest';
import { fastCopyLine, parseNdjsonLine, validateRecipient } from '../../src/domain/recipient-line.js';

/** The fields of one COPY text line, unescaped. */
function copyFields(line: string): Array<string | null> {
  return line
    .replace(/\n$/, '')
    .split('\t')
    .map((f) => (f === '\\N' ? null : f.replace(/\\(.)/g, (_, c: string) => ({ t: '\t', n: '\n', r: '\r' })[c] ?? c)));
}

function fast(line: string): Array<string | null> | null {
  const src = Buffer.from(line);
  const out = Buffer.alloc(2 * src.length + 24);
  const end = fastCopyLine(src, 0, src.length, 7, out, 0);
  return end < 0 ? null : copyFields(out.toString('utf8', 0, end));
}

/** What the general path stores for the line (attrs as JSON text). */
function general(line: string): Array<string | null> {
  const r = parseNdjsonLine(line);
  if (!r.ok) throw new Error(r.error);
  return ['7', r.row.userId, r.row.address, r.row.attrs];
}

describe('the import fast path with attrs', () => {
  it('stores what the general path stores, as jsonb reads it', () => {
    const lines = [
      '{"user_id":"u1","address":"a@x.test","attrs":{"country":"DE","plan":"pro","age":33}}',
      '{"user_id":"u2","attrs":{"country":"FR"}}',
      '{"user_id":"u3","attrs":{ "a" : [ 1 , 2 ] , "b":{"c":{}} }}',
      '{"user_id":"u4","attrs":{"n":-0.5e-3,"big":12345678901234567,"t":true,"f":false,"z":null}}',
      '{"user_id":"u5","attrs":{"s":"q\\"b\\\\s\\/\\b\\f\\n\\r\\t\\u00e9\\u20AC"}}',
      '{"user_id":"u6","attrs":{}}',
    ];
    for (const line of lines) {
      const f = fast(line);
      expect(f, line).not.toBeNull();
      const g = general(line);
      expect(f!.slice(0, 3)).toEqual(g.slice(0, 3));
      // as values: the fast path keeps the text as written (spaces, escapes, number spelling), and
      // jsonb normalises both the same way
      expect(JSON.parse(f![3]!), line).toEqual(JSON.parse(g[3]!));
    }
  });

  it('steps aside for every attrs object it does not vouch for', () => {
    const aside = [
      '{"user_id":"u","attrs":{"a":"\t"}}', // a raw tab (invalid JSON too)
      '{"user_id":"u","attrs":{"a":1,\t"b":2}}', // tab as whitespace: would need COPY escaping
      '{"user_id":"u","attrs":{"a":"é"}}', // non-ASCII
      '{"user_id":"u","attrs":{"a":"\\u0000"}}', // jsonb refuses NUL
      '{"user_id":"u","attrs":{"a":"\\ud800"}}', // a lone surrogate
      '{"user_id":"u","attrs":{"a":}}',
      '{"user_id":"u","attrs":{"a":1,}}',
      '{"user_id":"u","attrs":{"a" 1}}',
      '{"user_id":"u","attrs":{a:1}}',
      '{"user_id":"u","attrs":{"a":01}}',
      '{"user_id":"u","attrs":{"a":1.}}',
      '{"user_id":"u","attrs":{"a":-}}',
      '{"user_id":"u","attrs":{"a":tru}}',
      '{"user_id":"u","attrs":{"a":"\\x"}}',
      '{"user_id":"u","attrs":{"a":"\\u12G4"}}',
      '{"user_id":"u","attrs":[1]}',
      '{"user_id":"u","attrs":null}',
      '{"user_id":"u","attrs":{"a":1}} ',
      '{"user_id":"u","attrs":{"a":1}',
      '{"user_id":"u","attrs":{"a":1},"x":2}',
      `{"user_id":"u","attrs":${'{"a":'.repeat(40)}1${'}'.repeat(40)}}`,
      `{"user_id":"u","attrs":{"a":"${'x'.repeat(16_400)}"}}`,
    ];
    for (const line of aside) expect(fast(line), line).toBeNull();
  });

  it('agrees with the general path on random attrs', () => {
    let seed = 42;
    const rnd = (n: number): number => {
      seed = (seed * 1_103_515_245 + 12_345) % 2 ** 31;
      return seed % n;
    };
    const chars = 'ab"\\/\n\t\u00e9 {}[],:0';
    const value = (depth: number): unknown => {
      switch (rnd(depth > 3 ? 4 : 6)) {
        case 0:
          return rnd(1000) - 500;
        case 1:
          return Array.from({ length: rnd(6) }, () => chars[rnd(chars.length)]).join('');
        case 2:
          return rnd(2) === 0;
        case 3:
          return null;
        case 4:
          return Array.from({ length: rnd(4) }, () => value(depth + 1));
        default:
          return Object.fromEntries(Array.from({ length: rnd(4) }, (_, i) => [`k${i}`, value(depth + 1)]));
      }
    };
    let fastOnes = 0;
    for (let i = 0; i < 2000; i++) {
      const attrs = Object.fromEntries(Array.from({ length: 1 + rnd(4) }, (_, k) => [`a${k}`, value(0)]));
      const line = JSON.stringify({ user_id: `u${i}`, attrs });
      const f = fast(line);
      if (f === null) continue;
      fastOnes++;
      expect(JSON.parse(f[3]!)).toEqual(JSON.parse(general(line)[3]!));
    }
    expect(fastOnes).toBeGreaterThan(200);
  });

  it('refuses attrs the general path would let abort the COPY', () => {
    expect(validateRecipient('u', null, { s: 'a\ud800b' })).toEqual({ ok: false, error: 'attrs: must not contain unpaired surrogates' });
    expect(validateRecipient('u', null, { s: '\\ud800' })).toMatchObject({ ok: true });
    expect(validateRecipient('u', null, { s: '\ud83d\ude00' })).toMatchObject({ ok: true });
  });
});

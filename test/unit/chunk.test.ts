import { describe, expect, it } from 'vitest';
import { Packr } from 'msgpackr';
import {
  chunkCount,
  chunksOfRanges,
  chunkStreamId,
  packChunks,
  rangesFromBounds,
  seqFromStreamId,
  type RecipientPage,
} from '../../src/domain/chunk.js';
import { decodeChunk, decodeEntry, encodeChunk } from '../../src/stream/chunk-codec.js';
import type { HeraldError } from '../../src/errors.js';
import { CopyFormatError, RecipientRowDecoder } from '../../src/store/copy-binary.js';
import { copyBinary } from '../helpers/copy-binary.js';
import fc from 'fast-check';
import { checkPacked, joinedWithout, lengthAt, packStrings, unpackStrings, varintBytes, writeVarint } from '../../src/domain/packed-ids.js';

/** Decodes binary COPY data fed in pieces of `step` bytes (as a socket may cut it). */
function decode(data: Buffer, withAddress: boolean, withSegment = false, step = data.length): RecipientPage {
  const d = new RecipientRowDecoder({ address: withAddress, segment: withSegment });
  for (let i = 0; i < data.length; i += step) d.feed(data, i, Math.min(data.length, i + step));
  return d.finish();
}

function page(ids: number[], withAddress = false): RecipientPage {
  const p = decode(copyBinary(ids.map((i) => [i, `u${i}`])), false);
  return { ...p, addresses: withAddress ? ids.map((i) => (i % 2 ? `a${i}` : null)) : null };
}

const base = { campaignId: 7, audienceId: 3, generation: 0 };

describe('packed lengths', () => {
  it('reads back what writeVarint wrote, and knows its size, for any length', () => {
    fc.assert(
      fc.property(fc.nat({ max: 0xffffffff }), (n) => {
        const buf = Buffer.alloc(8);
        const end = writeVarint(buf, 1, n);
        expect(end - 1).toBe(varintBytes(n));
        expect(lengthAt(buf, 1)).toBe(n);
      }),
    );
  });
});

describe('packed ids without some positions, joined by NUL', () => {
  it('keeps exactly the other ids, in order, for any ids and positions', () => {
    fc.assert(
      fc.property(
        fc.array(
          fc.string({ minLength: 1, maxLength: 200, unit: 'grapheme' }).filter((u) => !u.includes('\0')),
          { maxLength: 60 },
        ),
        fc.array(fc.nat()),
        (ids, picks) => {
          const skip = new Set(picks.map((p) => p % Math.max(1, ids.length)));
          const kept = ids.filter((_, i) => !skip.has(i));
          const out = joinedWithout(packStrings(ids), ids.length, skip);
          expect(out.length === 0 ? [] : out.toString('utf8').split('\0')).toEqual(kept);
        },
      ),
    );
  });
});

describe('chunk packing', () => {
  it('cuts a page into contiguous keyset ranges carrying their recipients', () => {
    const ids = [2, 3, 5, 8, 13, 21, 34];
    const chunks = packChunks(base, { seq: 0, afterId: 0 }, page(ids, true), 3, true);
    expect(chunks.map((c) => [c.seq, c.afterId, c.lastId, c.count])).toEqual([
      [1, 0, 5, 3],
      [2, 5, 21, 3],
      [3, 21, 34, 1],
    ]);
    expect(unpackStrings(chunks[1]!.users, 3)).toEqual(['u8', 'u13', 'u21']);
    expect(unpackStrings(chunks[2]!.users, 1)).toEqual(['u34']);
    expect(chunks[1]!.addresses).toEqual([null, 'a13', 'a21']);
    expect(chunks.reduce((n, c) => n + c.count, 0)).toBe(ids.length);
  });

  it('leaves a partial chunk for the next page unless the audience ends here', () => {
    const chunks = packChunks(base, { seq: 4, afterId: 100 }, page([101, 102, 103, 104, 105]), 2, false);
    expect(chunks.map((c) => [c.seq, c.afterId, c.lastId])).toEqual([
      [5, 100, 102],
      [6, 102, 104],
    ]);
    expect(packChunks(base, { seq: 0, afterId: 0 }, page([]), 2, true)).toEqual([]);
  });

  it('rejects ids that do not increase', () => {
    expect(() => packChunks(base, { seq: 0, afterId: 10 }, page([9, 11]), 1, true)).toThrow(RangeError);
  });

  it('counts chunks and maps stream ids', () => {
    expect(chunkCount(1_000_000, 500)).toBe(2000);
    expect(chunkCount(1001, 500)).toBe(3);
    expect(chunkStreamId(0, 17)).toBe('0-17');
    expect(chunkStreamId(2, 17)).toBe('2-17');
    expect(seqFromStreamId('2-17')).toEqual({ generation: 2, seq: 17 });
    expect(seqFromStreamId('1700000000000-0')).toBeNull();
  });
});

describe('chunk ranges', () => {
  it('are cut from bounds as packChunks cuts the rows, and read back into the same chunks, for any ids and sizes', () => {
    fc.assert(
      fc.property(
        fc.uniqueArray(fc.integer({ min: 1, max: 100_000 }), { maxLength: 300 }),
        fc.integer({ min: 1, max: 40 }),
        fc.nat({ max: 50 }),
        (raw, size, seq) => {
          const ids = [...raw].sort((a, b) => a - b);
          const rows = page(ids, true);
          const packed = packChunks(base, { seq, afterId: 0 }, rows, size, true);
          // the bounds as PostgreSQL gives them: every size-th row and the last one
          const bounds = ids.flatMap((id, i) => ((i + 1) % size === 0 || i === ids.length - 1 ? [{ lastId: id, row: i + 1 }] : []));
          const ranges = rangesFromBounds(base, { seq, afterId: 0 }, bounds);
          expect(ranges).toEqual(packed.map(({ users: _u, addresses: _a, segments: _s, ...r }) => r));
          expect(ranges.every((r) => r.count === size || r === ranges[ranges.length - 1])).toBe(true);
          if (ranges.length > 0) expect(chunksOfRanges(ranges, rows)).toEqual(packed);
          // and any adjacent run of them from a read of that run alone
          if (ranges.length > 2) {
            const run = ranges.slice(1, 3);
            const from = ids.indexOf(run[0]!.afterId) + 1;
            const sub = page(ids.slice(from, from + run[0]!.count + run[1]!.count), true);
            expect(chunksOfRanges(run, sub).map((c) => unpackStrings(c.users, c.count))).toEqual(
              packed.slice(1, 3).map((c) => unpackStrings(c.users, c.count)),
            );
          }
        },
      ),
    );
  });

  it('refuse a read that is not what was planned: a recipient more or less, a range ending elsewhere, a gap between ranges', () => {
    const ids = [2, 3, 5, 8, 13, 21];
    const ranges = rangesFromBounds(base, { seq: 0, afterId: 0 }, [
      { lastId: 5, row: 3 },
      { lastId: 21, row: 6 },
    ]);
    expect(chunksOfRanges(ranges, page(ids)).map((c) => c.count)).toEqual([3, 3]);
    expect(() => chunksOfRanges(ranges, page([...ids, 34]))).toThrow(/7 recipients read for 6 planned/);
    expect(() => chunksOfRanges(ranges, page([2, 3, 5, 8, 13]))).toThrow(/3 recipients planned, 2 read/);
    expect(() => chunksOfRanges(ranges, page([2, 3, 4, 8, 13, 21]))).toThrow(/end at id 4, not 5/);
    expect(() => chunksOfRanges([ranges[0]!, { ...ranges[1]!, afterId: 6 }], page(ids))).toThrow(/does not follow/);
    expect(() => rangesFromBounds(base, { seq: 0, afterId: 5 }, [{ lastId: 5, row: 1 }])).toThrow(/ids must increase/);
    expect(() =>
      rangesFromBounds(base, { seq: 0, afterId: 0 }, [
        { lastId: 5, row: 2 },
        { lastId: 8, row: 2 },
      ]),
    ).toThrow(/rows must increase/);
  });

  it('are stream entries of their own (version 6): the range alone, validated as any entry', () => {
    const [r] = rangesFromBounds(base, { seq: 41, afterId: 1_000 }, [{ lastId: 1_600, row: 500 }]);
    const buf = encodeChunk(r!);
    expect(buf.length).toBeLessThan(24);
    expect(buf[1]).toBe(6);
    expect(decodeEntry(buf)).toEqual(r);
    expect(() => decodeChunk(buf)).toThrow(/a range, not a chunk with recipients/);
    const packr = new Packr({ useRecords: false });
    const field = (v: unknown): string | undefined => {
      try {
        decodeEntry(packr.pack(v));
      } catch (err) {
        return (err as HeraldError).details.field as string;
      }
      return undefined;
    };
    expect(field([6, 7, 3, 0, 42, 1_000, 1_600, 500])).toBeUndefined();
    expect(field([6, 7, 3, 0, 42, 1_000, 1_600, 601])).toBe('count');
    expect(field([6, 7, 3, 0, 42, 1_000, 1_000, 1])).toBe('lastId');
    expect(field([6, 7, 3, 0, 0, 1_000, 1_600, 500])).toBe('seq');
    expect(field([6, 7, 3, 0, 42, 1_000, 1_600, 500, packStrings(['a'])])).toBe('d');
  });
});

describe('chunk codec', () => {
  const [c] = packChunks(base, { seq: 1999, afterId: 999_500 }, page(Array.from({ length: 500 }, (_, i) => 999_501 + i)), 500, true);

  it('round-trips and costs the id bytes plus one per recipient', () => {
    const buf = encodeChunk(c!);
    expect(buf.length).toBeLessThan(c!.users.length + 40);
    expect(decodeChunk(buf)).toEqual(c);
  });

  it("carries templates' attributes (version 5) only for campaigns that read them at send time", () => {
    const rows = [
      [1, 'a', null, '{"first_name":"Ann"}'],
      [2, 'b', null, null],
    ] as const;
    const d = new RecipientRowDecoder({ address: true, attrs: true });
    const data = copyBinary(rows);
    for (let i = 0; i < data.length; i += 3) d.feed(data, i, Math.min(data.length, i + 3));
    const p = d.finish();
    expect(p.attrs).toEqual(['{"first_name":"Ann"}', null]);
    const [withAttrs] = packChunks(base, { seq: 0, afterId: 0 }, p, 2, true);
    expect(withAttrs!.attrs).toEqual(p.attrs);
    const buf = encodeChunk(withAttrs!);
    expect(buf[1]).toBe(5);
    expect(decodeChunk(buf)).toEqual(withAttrs);
    expect(encodeChunk(c!)[1]).toBe(4);
    expect(c!.attrs).toBeUndefined();
  });

  it('names the bad field of a corrupt entry', () => {
    const packr = new Packr({ useRecords: false });
    const bad = (v: unknown): HeraldError => {
      try {
        decodeChunk(packr.pack(v));
      } catch (err) {
        return err as HeraldError;
      }
      throw new Error('decoded');
    };
    const a = packStrings(['a']);
    expect(bad([3, 42, 9, 0, 1, 0, 10, 'x', a, null]).details.field).toBe('count');
    expect(bad([3, -1, 9, 0, 1, 0, 10, 1, a, null]).details.field).toBe('campaignId');
    expect(bad([3, 42, 9, -1, 1, 0, 10, 1, a, null]).details.field).toBe('generation');
    expect(bad([2, 42, 9, 0, 1, 0, 10, 1, a, null]).details.field).toBe('version');
    expect(bad([3, 42, 9, 0, 1, 10, 10, 1, a, null]).details.field).toBe('lastId');
    expect(bad([3, 42, 9, 0, 1, 0, 10, 2, a, null]).details.field).toBe('users');
    expect(bad([3, 42, 9, 0, 1, 0, 10, 1, ['a'], null]).details.field).toBe('users');
    expect(bad([3, 42, 9, 0, 1, 0, 10, 1, Buffer.from([5, 97]), null]).message).toMatch(/runs past the end/);
    expect(bad([3, 42, 9, 0, 1, 0, 10, 1, a, [1]]).details.field).toBe('addresses');
    expect(bad({ a: 1 }).code).toBe('STREAM_ENTRY_INVALID');
    expect(() => decodeChunk(Buffer.from([0x9a, 0x03]))).toThrow(/not msgpack/);
  });
});

describe('binary COPY and packed ids', () => {
  const users = ['u1', 't\tab', 'back\\slash', 'ünï', 'new\nline', 'x'.repeat(300)];
  const rows = users.map((u, i) => [i * 10 + 1, u, i % 2 ? null : `a${i}@x`, i === 2 ? null : `seg${i}`] as const);

  it('reads ids, packed user ids, addresses and segments, however the bytes are cut', () => {
    const data = copyBinary(rows);
    for (const step of [data.length, 1, 2, 3, 7, 16, 33]) {
      const p = decode(data, true, true, step);
      expect(Array.from(p.ids)).toEqual(users.map((_, i) => i * 10 + 1));
      expect(unpackStrings(p.users, users.length)).toEqual(users);
      expect(p.addresses).toEqual(rows.map((r) => r[2]));
      expect(p.segments).toEqual(rows.map((r) => r[3]));
      expect(p.userEnds[p.userEnds.length - 1]).toBe(p.users.length);
      expect(checkPacked(p.users, users.length)).toBeNull();
    }
    // without the optional fields: the same packed ids
    const bare = decode(copyBinary(rows.map((r) => [r[0], r[1]])), false, false, 5);
    expect(bare.addresses).toBeNull();
    expect(bare.users.equals(decode(data, true, true).users)).toBe(true);
    expect(decode(copyBinary([]), false)).toMatchObject({
      ids: new Float64Array(0),
      userEnds: new Uint32Array(0),
      addresses: null,
      segments: null,
    });
    // ids past 2^32 survive
    expect(Array.from(decode(copyBinary([[2 ** 40 + 3, 'big']]), false).ids)).toEqual([2 ** 40 + 3]);
    // more rows than it was sized for
    const many = decode(copyBinary(Array.from({ length: 1000 }, (_, i) => [i + 1, `m${i}`] as const)), false);
    expect(Array.from(many.ids)).toEqual(Array.from({ length: 1000 }, (_, i) => i + 1));
    expect(unpackStrings(many.users, 1000)[999]).toBe('m999');
    expect(many.userEnds[999]).toBe(many.users.length);
  });

  it('refuses malformed data with the byte where it went wrong', () => {
    const good = copyBinary([[1, 'a']]);
    expect(() => decode(Buffer.from('1\ta\n'.repeat(10)), false)).toThrow(/byte 0: not binary COPY data/);
    // a row of the wrong shape (an address where none is expected)
    expect(() => decode(copyBinary([[1, 'a', 'x']]), false)).toThrow(/byte 19: a row of 3 fields, expected 2/);
    expect(() => decode(copyBinary([[1, 'a']]), true)).toThrow(CopyFormatError);
    // a NULL or empty user id
    expect(() => decode(copyBinary([[5, '']]), false)).toThrow(/recipient 5: empty or null user_id/);
    // cut short: no end marker, or half a row
    expect(() => decode(good.subarray(0, good.length - 2), false)).toThrow(/without its end marker/);
    expect(() => decode(good.subarray(0, good.length - 4), false)).toThrow(/cut short/);
    expect(() => decode(Buffer.concat([good, Buffer.from([0, 2])]), false)).toThrow(/data after the end/);
  });

  it('packs long ids with multi-byte lengths', () => {
    const long = 'x'.repeat(300);
    const packed = packStrings([long, 'y']);
    expect(packed[0]).toBe(0xac);
    expect(unpackStrings(packed, 2)).toEqual([long, 'y']);
  });
});

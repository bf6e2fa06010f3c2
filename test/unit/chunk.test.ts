import { describe, expect, it } from 'vitest';
import { Packr } from 'msgpackr';
import { chunkCount, chunkStreamId, packChunks, seqFromStreamId, type RecipientPage } from '../../src/domain/chunk.js';
import { decodeChunk, encodeChunk } from '../../src/stream/chunk-codec.js';
import type { HeraldError } from '../../src/errors.js';
import { parseRecipientRows, unescapeCopy } from '../../src/store/copy-text.js';
import { checkPacked, packStrings, unpackStrings } from '../../src/domain/packed-ids.js';

function page(ids: number[], withAddress = false): RecipientPage {
  const text = Buffer.from(ids.map((i) => `${i}\tu${i}\n`).join(''));
  const p = parseRecipientRows(text, false);
  return { ...p, addresses: withAddress ? ids.map((i) => (i % 2 ? `a${i}` : null)) : null };
}

const base = { campaignId: 7, audienceId: 3, generation: 0 };

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

describe('chunk codec', () => {
  const [c] = packChunks(base, { seq: 1999, afterId: 999_500 }, page(Array.from({ length: 500 }, (_, i) => 999_501 + i)), 500, true);

  it('round-trips and costs the id bytes plus one per recipient', () => {
    const buf = encodeChunk(c!);
    expect(buf.length).toBeLessThan(c!.users.length + 40);
    expect(decodeChunk(buf)).toEqual(c);
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

describe('COPY text and packed ids', () => {
  it('parses rows, NULLs and escapes into packed ids', () => {
    const text = Buffer.from('1\tu1\ta@x\n2\tt\\tab\t\\N\n3\tback\\\\slash\tnew\\nline\n40\tünï\t\\N\n');
    const p = parseRecipientRows(text, true);
    expect(p.ids).toEqual([1, 2, 3, 40]);
    expect(unpackStrings(p.users, 4)).toEqual(['u1', 't\tab', 'back\\slash', 'ünï']);
    expect(p.addresses).toEqual(['a@x', null, 'new\nline', null]);
    expect(p.userEnds[p.userEnds.length - 1]).toBe(p.users.length);
    expect(checkPacked(p.users, 4)).toBeNull();
    expect(checkPacked(p.users, 3)).toMatch(/bytes after 3 entries/);
    expect(parseRecipientRows(Buffer.from(''), false)).toMatchObject({ ids: [], userEnds: [], addresses: null });
    expect(unescapeCopy('a\\001b\\x41')).toBe('a\u0001bA');
    expect(() => parseRecipientRows(Buffer.from('12\n'), false)).toThrow(/without user_id/);
  });

  it('packs long ids with multi-byte lengths', () => {
    const long = 'x'.repeat(300);
    const packed = packStrings([long, 'y']);
    expect(packed[0]).toBe(0xac);
    expect(unpackStrings(packed, 2)).toEqual([long, 'y']);
  });
});

describe('COPY text of (id, user_id) rows', () => {
  it('reads ids and packed user ids, escaped ones too, with or without a final newline', () => {
    const users = ['plain', 'tab\there', 'back\\slash', 'ünïcödé', 'x'.repeat(200)];
    const escape = (u: string): string => u.replace(/\\/g, '\\\\').replace(/\t/g, '\\t');
    const text = users.map((u, i) => `${i + 10}\t${escape(u)}`).join('\n');
    for (const t of [text, `${text}\n`]) {
      const p = parseRecipientRows(Buffer.from(t), false);
      expect(p.ids).toEqual(users.map((_, i) => i + 10));
      expect(unpackStrings(p.users, users.length)).toEqual(users);
      expect(checkPacked(p.users, users.length)).toBeNull();
      // the same as the general parser's, which also reads addresses
      const withAddress = parseRecipientRows(Buffer.from(users.map((u, i) => `${i + 10}\t${escape(u)}\t\\N`).join('\n')), true);
      expect(withAddress.users.equals(p.users)).toBe(true);
      expect(withAddress.userEnds).toEqual(p.userEnds);
    }
  });

  it('refuses a row without a user id, or with a non-numeric id', () => {
    expect(() => parseRecipientRows(Buffer.from('1\ta\n2\n'), false)).toThrow(/without user_id at byte 4/);
    expect(() => parseRecipientRows(Buffer.from('1x\ta\n'), false)).toThrow(/without user_id at byte 0/);
    expect(() => parseRecipientRows(Buffer.from('1\ta\tb\n'), false)).toThrow(/unexpected field at byte 0/);
  });
});

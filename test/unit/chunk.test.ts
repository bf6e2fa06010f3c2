import { describe, expect, it } from 'vitest';
import { chunkCount, chunksFromBoundaries, chunkStreamId, seqFromStreamId } from '../../src/domain/chunk.js';
import { decodeChunk, encodeChunk } from '../../src/stream/chunk-codec.js';
import type { HeraldError } from '../../src/errors.js';
import { Packr } from 'msgpackr';

describe('chunk arithmetic', () => {
  it('turns boundaries into contiguous keyset ranges with counts', () => {
    const chunks = chunksFromBoundaries({ campaignId: 7, audienceId: 3 }, { seq: 0, afterId: 0, position: 0 }, [
      { lastId: 510, position: 500 },
      { lastId: 1020, position: 1000 },
      { lastId: 1100, position: 1042 },
    ]);
    expect(chunks).toEqual([
      { campaignId: 7, audienceId: 3, seq: 1, afterId: 0, lastId: 510, count: 500 },
      { campaignId: 7, audienceId: 3, seq: 2, afterId: 510, lastId: 1020, count: 500 },
      { campaignId: 7, audienceId: 3, seq: 3, afterId: 1020, lastId: 1100, count: 42 },
    ]);
    expect(chunks.reduce((n, c) => n + c.count, 0)).toBe(1042);
  });

  it('resumes from a recorded position', () => {
    const [c] = chunksFromBoundaries({ campaignId: 1, audienceId: 1 }, { seq: 4, afterId: 2000, position: 2000 }, [
      { lastId: 2500, position: 2500 },
    ]);
    expect(c).toMatchObject({ seq: 5, afterId: 2000, lastId: 2500, count: 500 });
  });

  it('rejects boundaries that do not increase', () => {
    expect(() =>
      chunksFromBoundaries({ campaignId: 1, audienceId: 1 }, { seq: 0, afterId: 10, position: 5 }, [{ lastId: 10, position: 6 }]),
    ).toThrow(RangeError);
  });

  it('counts chunks and maps stream ids', () => {
    expect(chunkCount(1_000_000, 500)).toBe(2000);
    expect(chunkCount(1001, 500)).toBe(3);
    expect(chunkCount(0, 500)).toBe(0);
    expect(chunkStreamId(17)).toBe('0-17');
    expect(seqFromStreamId('0-17')).toBe(17);
    expect(seqFromStreamId('1700000000000-0')).toBe(-1);
  });
});

describe('chunk codec', () => {
  const c = { campaignId: 42, audienceId: 9, seq: 2000, afterId: 999_500, lastId: 1_000_000, count: 500 };

  it('round-trips and stays small', () => {
    const buf = encodeChunk(c);
    expect(buf.length).toBeLessThan(30);
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
    expect(bad([1, 42, 9, 1, 0, 10, 'x']).details.field).toBe('count');
    expect(bad([1, -1, 9, 1, 0, 10, 5]).details.field).toBe('campaignId');
    expect(bad([2, 42, 9, 1, 0, 10, 5]).details.field).toBe('version');
    expect(bad([1, 42, 9, 1, 10, 10, 5]).details.field).toBe('lastId');
    expect(bad({ a: 1 }).code).toBe('STREAM_ENTRY_INVALID');
    expect(() => decodeChunk(Buffer.from([0x97, 0x01]))).toThrow(/not msgpack/);
  });
});

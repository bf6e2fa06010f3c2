import { describe, expect, it } from 'vitest';
import { decodeFrames, encodeFrame, FRAME_HEADER_BYTES, spoolFrameId, type SpooledEvent } from '../../src/domain/spool-frame.js';
import { parseSubBatchId } from '../../src/domain/sub-batch.js';

const events = (n: number, from = 0): SpooledEvent[] =>
  Array.from({ length: n }, (_, i) => ({
    campaignId: 7 + (i % 2),
    userId: `u${from + i}`,
    kind: (['read', 'confirmed', 'bounced'] as const)[i % 3]!,
    atSec: 1_800_000_000 + i,
    error: i % 3 === 2 ? 'mailbox full' : '',
  }));

describe('read spool frames', () => {
  it('round-trips frames back to back, with where each ends', () => {
    const a = encodeFrame(0, events(3));
    const b = encodeFrame(1, events(1000, 3));
    const { frames, end, torn } = decodeFrames(Buffer.concat([a, b]), 100);
    expect(torn).toBe(false);
    expect(frames.map((f) => [f.frame, f.events.length, f.end])).toEqual([
      [0, 3, 100 + a.length],
      [1, 1000, 100 + a.length + b.length],
    ]);
    expect(end).toBe(100 + a.length + b.length);
    expect(frames[0]!.events).toEqual(events(3));
    expect(frames[1]!.events).toEqual(events(1000, 3));
  });

  it('keeps non-ASCII ids and errors, empty ones, and campaign ids past 2^32', () => {
    const odd: SpooledEvent[] = [
      { campaignId: 2 ** 40 + 3, userId: 'üser-ñ-日本', kind: 'bounced', atSec: 4_000_000_000, error: 'boîte pleine ✉' },
      { campaignId: 1, userId: 'x'.repeat(256), kind: 'read', atSec: 0, error: '' },
      { campaignId: 9, userId: '😀', kind: 'confirmed', atSec: 1, error: 'e'.repeat(1000) },
    ];
    expect(decodeFrames(encodeFrame(3, odd), 0).frames[0]!.events).toEqual(odd);
    expect(decodeFrames(encodeFrame(4, []), 0).frames[0]!.events).toEqual([]);
  });

  it('stops at a frame cut short, at every byte, and keeps the frames before it', () => {
    const a = encodeFrame(4, events(5));
    const b = encodeFrame(5, events(5, 5));
    const all = Buffer.concat([a, b]);
    for (let cut = 0; cut < all.length; cut++) {
      const r = decodeFrames(all.subarray(0, cut), 0);
      expect(r.frames.length).toBe(cut >= a.length ? 1 : 0);
      expect(r.end).toBe(cut >= a.length ? a.length : 0);
      expect(r.torn).toBe(false);
    }
  });

  it('refuses a frame whose bytes changed, and what is not a frame', () => {
    const a = encodeFrame(0, events(5));
    const b = encodeFrame(1, events(5));
    b[FRAME_HEADER_BYTES + 3] = b[FRAME_HEADER_BYTES + 3]! ^ 0xff;
    const r = decodeFrames(Buffer.concat([a, b, encodeFrame(2, events(1))]), 0);
    expect(r).toMatchObject({ end: a.length, torn: true });
    expect(r.frames).toHaveLength(1);
    expect(decodeFrames(Buffer.alloc(64, 7), 0)).toMatchObject({ frames: [], end: 0, torn: true });
  });

  it('gives frame ids of their own kind, apart from sub-batch ids', () => {
    const id = spoolFrameId(2 ** 40 - 1, 2 ** 22 - 1);
    expect(id >> 62n).toBe(3n);
    expect(parseSubBatchId(id).kind).toBeNull();
    expect(spoolFrameId(5, 1)).not.toBe(spoolFrameId(5, 2));
    expect(spoolFrameId(5, 1)).not.toBe(spoolFrameId(6, 1));
    expect(() => spoolFrameId(2 ** 40, 0)).toThrow(RangeError);
    expect(() => spoolFrameId(1, 2 ** 22)).toThrow(RangeError);
  });
});

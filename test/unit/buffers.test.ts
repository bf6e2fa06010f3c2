/** The growable buffers' helpers: room kept or made (the bytes used carried over), and the next size. */
import { describe, expect, it } from 'vitest';
import { nextRowBytes, withRoom } from '../../src/domain/buffers.js';

describe('buffers', () => {
  it('withRoom keeps a buffer that has the room, else copies what is used into one at least twice as big', () => {
    const b = Buffer.from('abcdefgh');
    expect(withRoom(b, 4, 4)).toBe(b);
    const bigger = withRoom(b, 6, 20);
    expect(bigger).not.toBe(b);
    expect(bigger.length).toBeGreaterThanOrEqual(26);
    expect(bigger.length).toBeGreaterThanOrEqual(16);
    expect(bigger.subarray(0, 6).toString()).toBe('abcdef');
  });

  it("nextRowBytes sizes the next column at the last one's mean plus an eighth, and keeps the estimate on too few rows", () => {
    expect(nextRowBytes(17_000, 1000, 24)).toBe(20);
    expect(nextRowBytes(37_000, 1000, 24)).toBe(42);
    expect(nextRowBytes(1000, 10, 24)).toBe(24);
    // within 8-64 bytes: one campaign's long ids do not make every later buffer that big
    expect(nextRowBytes(800_000, 1000, 24)).toBe(64);
    expect(nextRowBytes(2000, 1000, 24)).toBe(8);
    // every row of the same length fits, with no growth
    const rows = 5000;
    const len = 1 + 14;
    expect(nextRowBytes(rows * len, rows, 16) * rows).toBeGreaterThanOrEqual(rows * len);
  });
});

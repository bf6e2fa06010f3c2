import { describe, expect, it } from 'vitest';
import { pack } from 'msgpackr';
import type { Withheld } from '../../src/domain/withheld.js';
import { decodeRecords, encodeRecord, MAX_FROM, MAX_GENERATION, MAX_SEQ, parseSubBatchId, subBatchId } from '../../src/domain/sub-batch.js';

describe('sub-batch ids', () => {
  it('round-trip and differ by every part', () => {
    const ids = new Set<bigint>();
    for (const kind of ['outcome', 'aborted'] as const)
      for (const generation of [0, 1, MAX_GENERATION])
        for (const seq of [1, 2, MAX_SEQ])
          for (const from of [0, 50, MAX_FROM]) {
            const id = subBatchId(generation, seq, from, kind);
            expect(id < 1n << 64n).toBe(true);
            expect(parseSubBatchId(id)).toEqual({ kind, generation, seq, from });
            ids.add(id);
          }
    expect(ids.size).toBe(2 * 3 * 3 * 3);
  });

  it('refuses parts that do not fit', () => {
    expect(() => subBatchId(MAX_GENERATION + 1, 1, 0)).toThrow(/generation/);
    expect(() => subBatchId(0, MAX_SEQ + 1, 0)).toThrow(/seq/);
    expect(() => subBatchId(0, 1, MAX_FROM + 1)).toThrow(/from/);
  });
});

describe('sub-batch records', () => {
  it('concatenate and decode in order, failures included', () => {
    const a = { from: 0, n: 50, atSec: 1_700_000_000, failed: new Map<number, string>(), withheld: new Map<number, Withheld>() };
    const b = {
      from: 50,
      n: 20,
      atSec: 1_700_000_001,
      failed: new Map([
        [3, 'HTTP 422: bad address'],
        [19, 'é'.repeat(300)],
      ]),
      withheld: new Map<number, Withheld>(),
    };
    const c = {
      from: 70,
      n: 10,
      atSec: 1_700_000_002,
      failed: new Map([[1, 'HTTP 500']]),
      withheld: new Map<number, Withheld>([
        [0, { kind: 'suppressed', reason: 'unsubscribed (topic news)' }],
        [4, { kind: 'capped', reason: 'news: 2 per 86400 s' }],
        [9, { kind: 'skipped', reason: 'missing recipient.attrs.first_name' }],
      ]),
    };
    expect(decodeRecords(Buffer.concat([encodeRecord(a), encodeRecord(b), encodeRecord(c)]))).toEqual([a, b, c]);
    expect(decodeRecords(null)).toEqual([]);
  });

  it('decode records written before withheld outcomes existed (five fields)', () => {
    expect(decodeRecords(pack([0, 5, 1, [2], ['x']]))).toEqual([
      { from: 0, n: 5, atSec: 1, failed: new Map([[2, 'x']]), withheld: new Map() },
    ]);
  });

  it('name the record in errors for bytes that are not one', () => {
    expect(() => decodeRecords(Buffer.from([0xc1]))).toThrow(/ledger record/);
    expect(() => decodeRecords(pack([1, 2, 3]))).toThrow(/expected \[from, n, at/);
    expect(() => decodeRecords(pack([0, 5, 1, [7], ['x']]))).toThrow(/failed index 7 outside/);
    expect(() => decodeRecords(pack([-1, 5, 1, [], []]))).toThrow(/non-negative/);
    expect(() => decodeRecords(pack([0, 5, 1, [], [], [5], ['capped'], ['x']]))).toThrow(/withheld index 5 outside/);
    expect(() => decodeRecords(pack([0, 5, 1, [1], ['e'], [1], ['capped'], ['x']]))).toThrow(/both failed and withheld/);
    expect(() => decodeRecords(pack([0, 5, 1, [], [], [1], ['lost'], ['x']]))).toThrow(/withheld kind lost/);
    expect(() => decodeRecords(pack([0, 5, 1, [], [], [1], [], ['x']]))).toThrow(/one length/);
  });
});

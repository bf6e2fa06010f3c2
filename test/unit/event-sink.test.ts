import { describe, expect, it } from 'vitest';
import { EventSink, type EventInserter } from '../../src/sink/event-sink.js';
import { EventRowWriter } from '../../src/sink/row-binary.js';
import { packStrings } from '../../src/domain/packed-ids.js';

/** Decodes message_events RowBinary (without the batch column), to check the encoder byte for byte. */
function decodeRows(buf: Buffer): Array<[number, string, number, number, string]> {
  return decodeWithBatch(buf).map(([id, user, kind, at, error]) => [id, user, kind, at, error]);
}

function decodeWithBatch(buf: Buffer): Array<[number, string, number, number, string, bigint]> {
  const out: Array<[number, string, number, number, string, bigint]> = [];
  let off = 0;
  const varint = (): number => {
    let n = 0;
    let shift = 0;
    for (;;) {
      const b = buf[off++]!;
      n |= (b & 0x7f) << shift;
      if (b < 0x80) return n;
      shift += 7;
    }
  };
  const str = (): string => {
    const len = varint();
    const s = buf.toString('utf8', off, off + len);
    off += len;
    return s;
  };
  while (off < buf.length) {
    const id = Number(buf.readBigUInt64LE(off));
    off += 8;
    const user = str();
    const kind = buf[off++]!;
    const at = buf.readUInt32LE(off);
    off += 4;
    const error = str();
    const batch = buf.readBigUInt64LE(off);
    off += 8;
    out.push([id, user, kind, at, error, batch]);
  }
  return out;
}

/** In-memory inserter: records batches, can be made to fail, to lose its answer, or to stall. */
class FakeInserter implements EventInserter {
  batches: Buffer[] = [];
  rows = 0;
  failNext = 0;
  /** store the next insert but throw as if the connection dropped before the answer */
  loseAnswerNext = 0;
  gate: Promise<void> | null = null;
  async insert(rows: Buffer, count: number): Promise<void> {
    if (this.gate) await this.gate;
    if (this.failNext > 0) {
      this.failNext--;
      throw new Error('Code: 241. DB::Exception: Memory limit');
    }
    this.batches.push(Buffer.from(rows));
    this.rows += count;
    if (this.loseAnswerNext > 0) {
      this.loseAnswerNext--;
      throw new Error('socket hang up');
    }
  }
  async landed(batch: bigint, campaignIds: readonly number[]): Promise<number> {
    let n = 0;
    for (const b of this.batches) for (const r of decodeWithBatch(b)) if (r[5] === batch && campaignIds.includes(r[0])) n++;
    return n;
  }
}

describe('RowBinary event rows', () => {
  it('encodes outcomes with failures, non-ASCII ids and long strings', () => {
    const w = new EventRowWriter(16);
    const long = 'é'.repeat(200);
    w.addOutcomes(7, packStrings(['u1', 'ü2', long]), 3, new Map([[1, 'HTTP 422: nope']]), 1_700_000_000);
    w.add(2 ** 40, 'r', 'read', 5, '');
    expect(decodeRows(w.finish())).toEqual([
      [7, 'u1', 2, 1_700_000_000, ''],
      [7, 'ü2', 3, 1_700_000_000, 'HTTP 422: nope'],
      [7, long, 2, 1_700_000_000, ''],
      [2 ** 40, 'r', 4, 5, ''],
    ]);
  });
});

describe('EventSink', () => {
  it('flushes at flushRows and resolves tickets only when stored', async () => {
    const ins = new FakeInserter();
    const sink = new EventSink(ins, { flushRows: 4, flushMs: 10_000, maxBufferedRows: 100 });
    const a = await sink.appendOutcomes(1, packStrings(['a', 'b']), 2, new Map(), 1);
    let stored = false;
    void a.stored.then(() => (stored = true));
    await new Promise((r) => setTimeout(r, 5));
    expect(stored).toBe(false);
    await sink.appendOutcomes(1, packStrings(['c', 'd']), 2, new Map(), 1);
    await a.stored;
    expect(ins.batches).toHaveLength(1);
    expect(ins.rows).toBe(4);
  });

  it('flushes a partial batch after flushMs', async () => {
    const ins = new FakeInserter();
    const sink = new EventSink(ins, { flushRows: 1000, flushMs: 20, maxBufferedRows: 10_000 });
    const t = await sink.append(1, 'x', 'read', 1);
    await t.stored;
    expect(ins.rows).toBe(1);
  });

  it('retries a failed insert with the same rows', async () => {
    const ins = new FakeInserter();
    ins.failNext = 2;
    const errors: number[] = [];
    const sink = new EventSink(ins, {
      flushRows: 2,
      flushMs: 10,
      maxBufferedRows: 100,
      retryBaseMs: 1,
      onError: (_e, n) => errors.push(n),
    });
    const t = await sink.appendOutcomes(3, packStrings(['a', 'b']), 2, new Map(), 9);
    await t.stored;
    expect(errors).toEqual([1, 2]);
    expect(ins.batches).toHaveLength(1);
    expect(decodeRows(ins.batches[0]!).map((r) => r[1])).toEqual(['a', 'b']);
  });

  it('does not insert a batch again when only its answer was lost', async () => {
    const ins = new FakeInserter();
    ins.loseAnswerNext = 1;
    const errors: number[] = [];
    const sink = new EventSink(ins, {
      flushRows: 3,
      flushMs: 10,
      maxBufferedRows: 100,
      retryBaseMs: 1,
      onError: (_e, n) => errors.push(n),
    });
    const t = await sink.appendOutcomes(5, packStrings(['a', 'b', 'c']), 3, new Map(), 9);
    await t.stored;
    expect(errors).toEqual([1]);
    expect(ins.rows).toBe(3);
    expect(ins.batches).toHaveLength(1);
    // every row of a batch carries the same batch id, and batches differ
    const rows = decodeWithBatch(ins.batches[0]!);
    expect(new Set(rows.map((r) => r[5])).size).toBe(1);
    const t2 = await sink.appendOutcomes(5, packStrings(['d', 'e', 'f']), 3, new Map(), 9);
    await t2.stored;
    expect(decodeWithBatch(ins.batches[1]!)[0]![5]).not.toBe(rows[0]![5]);
  });

  it('makes appenders wait while maxBufferedRows are unwritten', async () => {
    const ins = new FakeInserter();
    let open!: () => void;
    ins.gate = new Promise((r) => (open = r));
    const sink = new EventSink(ins, { flushRows: 2, flushMs: 5, maxBufferedRows: 4 });
    await sink.appendOutcomes(1, packStrings(['a', 'b']), 2, new Map(), 1); // in flight (stalled)
    await sink.appendOutcomes(1, packStrings(['c', 'd']), 2, new Map(), 1); // queued behind it
    let third = false;
    const p = sink.appendOutcomes(1, packStrings(['e']), 1, new Map(), 1).then(() => (third = true));
    await new Promise((r) => setTimeout(r, 30));
    expect(third).toBe(false);
    ins.gate = null;
    open();
    await p;
    await sink.close();
    expect(ins.rows).toBe(5);
    expect(ins.batches.map((b) => decodeRows(b).length)).toEqual([2, 2, 1]);
  });
});

import { describe, expect, it } from 'vitest';
import { EventSink, type EventInserter } from '../../src/sink/event-sink.js';
import { EventRowWriter } from '../../src/sink/row-binary.js';
import { packStrings } from '../../src/domain/packed-ids.js';

/** Decodes message_events RowBinary, to check the encoder byte for byte. */
function decodeRows(buf: Buffer): Array<[number, string, number, number, string]> {
  const out: Array<[number, string, number, number, string]> = [];
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
    out.push([id, user, kind, at, str()]);
  }
  return out;
}

/** In-memory inserter: records batches, can be made to fail or stall. */
class FakeInserter implements EventInserter {
  batches: Buffer[] = [];
  rows = 0;
  failNext = 0;
  gate: Promise<void> | null = null;
  async insert(rows: Buffer, count: number): Promise<void> {
    if (this.gate) await this.gate;
    if (this.failNext > 0) {
      this.failNext--;
      throw new Error('Code: 241. DB::Exception: Memory limit');
    }
    this.batches.push(Buffer.from(rows));
    this.rows += count;
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

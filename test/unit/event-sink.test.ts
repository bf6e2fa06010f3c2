import { describe, expect, it } from 'vitest';
import { EventSink, landedKey, type EventInserter, type Outcomes } from '../../src/sink/event-sink.js';
import { EventRowWriter } from '../../src/sink/row-binary.js';
import { packStrings } from '../../src/domain/packed-ids.js';

/** Decodes message_events RowBinary (without the batch column), to check the encoder byte for byte. */
function decodeRows(buf: Buffer): Array<[number, string, number, number, string]> {
  return decodeWithBatch(buf).map(([id, user, kind, at, error]) => [id, user, kind, at, error]);
}

type Row = [number, string, number, number, string, bigint, number, string];

function decodeWithBatch(buf: Buffer): Row[] {
  const out: Row[] = [];
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
    const deliveredAt = buf.readUInt32LE(off);
    off += 4;
    const segment = str();
    out.push([id, user, kind, at, error, batch, deliveredAt, segment]);
  }
  return out;
}

let nextBatch = 1n;
/** One sub-batch of outcomes, all delivered, under a fresh sub-batch id unless one is given. */
function outcomes(campaignId: number, users: string[], more: Partial<Outcomes> = {}): Outcomes {
  return {
    campaignId,
    users: packStrings(users),
    count: users.length,
    failed: new Map(),
    atSec: 1,
    batchId: nextBatch++,
    owner: null,
    ...more,
  };
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
  async landed(pairs: ReadonlyArray<{ campaignId: number; batchId: bigint }>): Promise<Set<string>> {
    const stored = new Set<string>();
    for (const b of this.batches) for (const r of decodeWithBatch(b)) stored.add(landedKey(r[0], r[5]));
    return new Set(pairs.map((p) => landedKey(p.campaignId, p.batchId)).filter((k) => stored.has(k)));
  }
}

describe('RowBinary event rows', () => {
  it('encodes outcomes with failures, non-ASCII ids and long strings', () => {
    const w = new EventRowWriter(16);
    const long = 'é'.repeat(200);
    w.addOutcomes(7, packStrings(['u1', 'ü2', long]), 3, new Map([[1, 'HTTP 422: nope']]), 1_700_000_000);
    w.add(2 ** 40, 'r', 'read', 5, '', 3, 'FR');
    w.addOutcomes(8, packStrings(['s1', 's2', 's3']), 3, new Map(), 9, 'aborted', ['DE', null, 'ü'.repeat(100)]);
    expect(
      decodeWithBatch(w.finish()).map(([id, user, kind, at, error, , deliveredAt, segment]) => [
        id,
        user,
        kind,
        at,
        error,
        deliveredAt,
        segment,
      ]),
    ).toEqual([
      [7, 'u1', 2, 1_700_000_000, '', 0, ''],
      [7, 'ü2', 3, 1_700_000_000, 'HTTP 422: nope', 0, ''],
      [7, long, 2, 1_700_000_000, '', 0, ''],
      [2 ** 40, 'r', 4, 5, '', 3, 'FR'],
      [8, 's1', 5, 9, '', 0, 'DE'],
      [8, 's2', 5, 9, '', 0, ''],
      [8, 's3', 5, 9, '', 0, 'ü'.repeat(100)],
    ]);
  });
});

describe('EventSink', () => {
  it('flushes at flushRows and resolves tickets only when stored', async () => {
    const ins = new FakeInserter();
    const sink = new EventSink(ins, { flushRows: 4, flushMs: 10_000, maxBufferedRows: 100 });
    const a = await sink.appendOutcomes(outcomes(1, ['a', 'b']));
    let stored = false;
    void a.stored.then(() => (stored = true));
    await new Promise((r) => setTimeout(r, 5));
    expect(stored).toBe(false);
    await sink.appendOutcomes(outcomes(1, ['c', 'd']));
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
    const t = await sink.appendOutcomes(outcomes(3, ['a', 'b']));
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
    const t = await sink.appendOutcomes(outcomes(5, ['a', 'b', 'c']));
    await t.stored;
    expect(errors).toEqual([1]);
    expect(ins.rows).toBe(3);
    expect(ins.batches).toHaveLength(1);
    // rows carry their sub-batch's id, which is what the retry looked up
    expect(new Set(decodeWithBatch(ins.batches[0]!).map((r) => r[5])).size).toBe(1);
  });

  it('on a retry, leaves out only the sub-batches already stored', async () => {
    const ins = new FakeInserter();
    const sink = new EventSink(ins, { flushRows: 4, flushMs: 10, maxBufferedRows: 100, retryBaseMs: 1 });
    // an earlier insert (another process, or a lost answer) stored sub-batch 900 of campaign 5, not 901
    const w = new EventRowWriter(64, 900n);
    w.addOutcomes(5, packStrings(['a', 'b']), 2, new Map(), 9);
    ins.batches = [Buffer.from(w.finish())];
    ins.failNext = 1;
    const t1 = await sink.appendOutcomes(outcomes(5, ['a', 'b'], { batchId: 900n }));
    const t2 = await sink.appendOutcomes(outcomes(5, ['c', 'd'], { batchId: 901n }));
    await Promise.all([t1.stored, t2.stored]);
    expect(ins.batches).toHaveLength(2);
    expect(decodeRows(ins.batches[1]!).map((r) => r[1])).toEqual(['c', 'd']);
    expect(sink.stats.landedRows).toBe(2);
  });

  it('leaves out the rows of chunks the fence says this holder lost, and keeps the rest', async () => {
    const ins = new FakeInserter();
    const asked: string[] = [];
    const sink = new EventSink(ins, {
      flushRows: 6,
      flushMs: 10,
      maxBufferedRows: 100,
      fence: async (campaignId, holder, ids) => {
        asked.push(`${campaignId}/${holder}:${[...ids].sort().join(',')}`);
        return holder === 'h1' ? ids.filter((id) => id === '0-2') : [];
      },
    });
    const a = await sink.appendOutcomes(outcomes(1, ['a', 'b'], { owner: { entryId: '0-1', holder: 'h1' } }));
    await sink.appendOutcomes(outcomes(1, ['c', 'd'], { owner: { entryId: '0-2', holder: 'h1' } }));
    await sink.appendOutcomes(outcomes(1, ['e'], { owner: { entryId: '0-2', holder: 'h2' } }));
    await sink.append(1, 'r', 'read', 1);
    await a.stored;
    expect(asked.sort()).toEqual(['1/h1:0-1,0-2', '1/h2:0-2']);
    expect(decodeRows(ins.batches[0]!).map((r) => r[1])).toEqual(['a', 'b', 'e', 'r']);
    expect(ins.rows).toBe(4);
    expect(sink.stats.fencedRows).toBe(2);
  });

  it("takes a holder's sub-batch once while it waits to be stored, and another holder's copy beside it", async () => {
    const ins = new FakeInserter();
    const sink = new EventSink(ins, { flushRows: 100, flushMs: 10, maxBufferedRows: 1000 });
    const owner = { entryId: '0-1', holder: 'h1' };
    const first = await sink.appendOutcomes(outcomes(1, ['a', 'b'], { batchId: 77n, owner }));
    // rebuilt by the same holder (a new actor of this process) before the first copy is stored
    const again = await sink.appendOutcomes(outcomes(1, ['a', 'b'], { batchId: 77n, owner }));
    // another holder's copy goes in too: the fence (none here) decides between holders
    const other = await sink.appendOutcomes(outcomes(1, ['a', 'b'], { batchId: 77n, owner: { entryId: '0-1', holder: 'h2' } }));
    await Promise.all([first.stored, again.stored, other.stored]);
    expect(ins.rows).toBe(4);
    // once stored, the key is free again: a later append is a new write (the caller checks landed first)
    const later = await sink.appendOutcomes(outcomes(1, ['a', 'b'], { batchId: 77n, owner }));
    await later.stored;
    expect(ins.rows).toBe(6);
  });

  it('asks the fence again when the insert starts long after its answer (a stall in between)', async () => {
    const ins = new FakeInserter();
    ins.failNext = 1;
    const landed = ins.landed.bind(ins);
    // the landed lookup before the retry takes longer than the fence answer stays valid
    ins.landed = async (pairs) => {
      await new Promise((r) => setTimeout(r, 30));
      return landed(pairs);
    };
    let asked = 0;
    const sink = new EventSink(ins, {
      flushRows: 2,
      flushMs: 5,
      maxBufferedRows: 100,
      retryBaseMs: 1,
      fenceValidMs: 10,
      // taken over while this process was "stalled" in the lookup: the second answer drops the chunk
      fence: async (_c, _h, ids) => (++asked >= 3 ? [...ids] : []),
    });
    const t = await sink.appendOutcomes(outcomes(1, ['a', 'b'], { owner: { entryId: '0-1', holder: 'h' } }));
    await t.stored;
    expect(asked).toBe(3);
    expect(ins.rows).toBe(0);
    expect(sink.stats.fencedRows).toBe(2);
  });

  it('makes appenders wait while maxBufferedRows are unwritten', async () => {
    const ins = new FakeInserter();
    let open!: () => void;
    ins.gate = new Promise((r) => (open = r));
    const sink = new EventSink(ins, { flushRows: 2, flushMs: 5, maxBufferedRows: 4 });
    await sink.appendOutcomes(outcomes(1, ['a', 'b'])); // in flight (stalled)
    await sink.appendOutcomes(outcomes(1, ['c', 'd'])); // queued behind it
    let third = false;
    const p = sink.appendOutcomes(outcomes(1, ['e'])).then(() => (third = true));
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

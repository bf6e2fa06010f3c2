import { describe, expect, it } from 'vitest';
import { EventSink, landedKey, type EventInserter, type Outcomes } from '../../src/sink/event-sink.js';
import { EventBlockWriter } from '../../src/sink/native-block.js';
import { packStrings } from '../../src/domain/packed-ids.js';

/** Decodes a message_events Native block into rows (without the batch column), to check the encoder byte for byte. */
function decodeRows(buf: Buffer): Array<[number, string, number, number, string]> {
  return decodeWithBatch(buf).map(([id, user, kind, at, error]) => [id, user, kind, at, error]);
}

type Row = [number, string, number, number, string, bigint, number, string];

function decodeWithBatch(buf: Buffer): Row[] {
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
  const columns = varint();
  const rows = varint();
  const values = new Map<string, unknown[]>();
  const types: string[] = [];
  for (let c = 0; c < columns; c++) {
    const name = str();
    const type = str();
    types.push(`${name} ${type}`);
    const col: unknown[] = [];
    for (let r = 0; r < rows; r++) {
      if (type === 'UInt64') {
        col.push(buf.readBigUInt64LE(off));
        off += 8;
      } else if (type === 'String') col.push(str());
      else if (type.startsWith('Enum8(')) col.push(buf[off++]);
      else if (type === "DateTime('UTC')") {
        col.push(buf.readUInt32LE(off));
        off += 4;
      } else throw new Error(`unexpected type ${type}`);
    }
    values.set(name, col);
  }
  expect(off).toBe(buf.length);
  expect(types.map((t) => t.split(' ')[0])).toEqual(['campaign_id', 'user_id', 'kind', 'at', 'error', 'batch', 'delivered_at', 'segment']);
  const v = (name: string, r: number): unknown => values.get(name)![r];
  return Array.from({ length: rows }, (_, r): Row => [
    Number(v('campaign_id', r)),
    v('user_id', r) as string,
    v('kind', r) as number,
    v('at', r) as number,
    v('error', r) as string,
    v('batch', r) as bigint,
    v('delivered_at', r) as number,
    v('segment', r) as string,
  ]);
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
  async insert(block: Buffer[], count: number): Promise<void> {
    if (this.gate) await this.gate;
    if (this.failNext > 0) {
      this.failNext--;
      throw new Error('Code: 241. DB::Exception: Memory limit');
    }
    this.batches.push(Buffer.concat(block));
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

describe('Native event blocks', () => {
  it('encodes outcomes with failures, non-ASCII ids and long strings', () => {
    const w = new EventBlockWriter(2);
    const long = 'é'.repeat(200);
    w.addOutcomes(7, packStrings(['u1', 'ü2', long]), 3, new Map([[1, 'HTTP 422: nope']]), 1_700_000_000);
    w.add(2 ** 40, 'r', 'read', 5, '', 3, 'FR');
    w.addOutcomes(8, packStrings(['s1', 's2', 's3']), 3, new Map(), 9, 'aborted', ['DE', null, 'ü'.repeat(100)]);
    expect(
      decodeWithBatch(Buffer.concat(w.finish())).map(([id, user, kind, at, error, , deliveredAt, segment]) => [
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

  it('builds a block of chosen row ranges, each row with its own sub-batch id', () => {
    const w = new EventBlockWriter(1, 10n);
    const m0 = w.mark();
    w.addOutcomes(1, packStrings(['a', 'b']), 2, new Map([[0, 'boom']]), 3);
    const m1 = w.mark();
    w.setBatch(11n);
    w.add(2, 'r', 'read', 4, '', 0, 'seg');
    const m2 = w.mark();
    w.setBatch(12n);
    w.addOutcomes(3, packStrings(['c', 'd', 'e']), 3, new Map(), 5, 'delivered', ['x', null, 'z']);
    const m3 = w.mark();
    const pick = (ranges: Array<[typeof m0, typeof m0]>): Row[] =>
      decodeWithBatch(Buffer.concat(w.finish(ranges.map(([start, end]) => ({ start, end })))));
    expect(
      pick([
        [m0, m1],
        [m2, m3],
      ]).map((r) => [r[1], r[2], r[4], r[5], r[7]]),
    ).toEqual([
      ['a', 3, 'boom', 10n, ''],
      ['b', 2, '', 10n, ''],
      ['c', 2, '', 12n, 'x'],
      ['d', 2, '', 12n, ''],
      ['e', 2, '', 12n, 'z'],
    ]);
    expect(pick([[m1, m2]])).toEqual([[2, 'r', 4, 4, '', 11n, 0, 'seg']]);
    expect(pick([])).toEqual([]);
    // the whole block, grown far past its first size
    expect(decodeWithBatch(Buffer.concat(w.finish())).length).toBe(6);
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
    const t = await sink.append({ campaignId: 1, userId: 'x', kind: 'read', atSec: 1 });
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
    const w = new EventBlockWriter(2, 900n);
    w.addOutcomes(5, packStrings(['a', 'b']), 2, new Map(), 9);
    ins.batches = [Buffer.concat(w.finish())];
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
    await sink.append({ campaignId: 1, userId: 'r', kind: 'read', atSec: 1 });
    await a.stored;
    expect(asked.sort()).toEqual(['1/h1:0-1,0-2', '1/h2:0-2']);
    expect(decodeRows(ins.batches[0]!).map((r) => r[1])).toEqual(['a', 'b', 'e', 'r']);
    expect(ins.rows).toBe(4);
    expect(sink.stats.fencedRows).toBe(2);
  });

  it('asks a failing fence (Redis away) again every retryBaseMs, where ClickHouse failures back off', async () => {
    const ins = new FakeInserter();
    ins.failNext = 3;
    const askedAt: number[] = [];
    const failures: string[] = [];
    const sink = new EventSink(ins, {
      flushRows: 2,
      flushMs: 10,
      maxBufferedRows: 100,
      retryBaseMs: 50,
      // Redis away for eight tries: backed off, the eighth would come 50 * 2^7 = 6.4 s after the seventh.
      fence: async () => {
        askedAt.push(Date.now());
        if (askedAt.length <= 8) throw new Error('CLUSTERDOWN');
        return [];
      },
      onError: (_e, n, at) => failures.push(`${n}:${at}`),
    });
    const t = await sink.appendOutcomes(outcomes(1, ['a', 'b'], { owner: { entryId: '0-1', holder: 'h1' } }));
    await t.stored;
    const gaps = askedAt.slice(1, 9).map((at, i) => at - askedAt[i]!);
    expect(Math.max(...gaps)).toBeLessThan(1_000);
    expect(failures).toEqual([...Array.from({ length: 8 }, (_, i) => `${i + 1}:fence`), '9:clickhouse', '10:clickhouse', '11:clickhouse']);
    expect(ins.rows).toBe(2);
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

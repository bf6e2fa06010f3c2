/**
 * A sub-batch is the unit the ledger records: `n` recipients of one chunk, from position `from`, handed to
 * the channel in one call. Its identity is deterministic — (plan generation, chunk seq, from, kind) —
 * so whoever writes its events to ClickHouse (the sender, or whoever took its chunk over after a crash)
 * writes them under the same `batch` id, and can ask first whether they are already there.
 *
 * Record bytes: what the ledger keeps per sub-batch so its events can be rebuilt from the chunk alone
 * (the recipients are in the chunk; only when, which failed and which were withheld is not): msgpack
 * `[from, n, atSec, failedIndexes[], errors[]]`, followed by `heldIndexes[], heldKinds[], reasons[]` when
 * any recipient was withheld (domain/withheld.ts), records of one chunk simply concatenated. Records
 * written before withheld outcomes existed (five fields) still decode.
 */
import { Packr, Unpackr } from 'msgpackr';
import { HeraldError } from '../errors.js';
import { isWithheldKind, NO_WITHHOLDINGS, type Withheld, type Withholdings } from './withheld.js';

/** what a batch id says about its rows */
export type SubBatchKind = 'outcome' | 'aborted';

const GEN_BITS = 14n;
const SEQ_BITS = 28n;
const FROM_BITS = 20n;
/** where the fields sit, for queries that select by them (clickhouse/sql.ts) */
export const SUB_BATCH_LAYOUT = { kindShift: 62, generationShift: 48, generationMask: 2 ** 14 - 1, outcomeKind: 1 } as const;
export const MAX_GENERATION = 2 ** Number(GEN_BITS) - 1;
export const MAX_SEQ = 2 ** Number(SEQ_BITS) - 1;
export const MAX_FROM = 2 ** Number(FROM_BITS) - 1;

/**
 * Layout (64 bits): kind (2) | generation (14) | seq (28) | from (20). Kind 0 is left for rows without a
 * sub-batch (reads, which carry a random insert id): such ids have a 0 top pair only by chance, and a
 * campaign's reads and outcomes never collide because reads are looked up by the id they were written with.
 */
export function subBatchId(generation: number, seq: number, from: number, kind: SubBatchKind = 'outcome'): bigint {
  if (generation < 0 || generation > MAX_GENERATION) throw new RangeError(`generation ${generation} out of range`);
  if (seq < 0 || seq > MAX_SEQ) throw new RangeError(`seq ${seq} out of range`);
  if (from < 0 || from > MAX_FROM) throw new RangeError(`from ${from} out of range`);
  const k = kind === 'outcome' ? 1n : 2n;
  return (
    (k << (GEN_BITS + SEQ_BITS + FROM_BITS)) | (BigInt(generation) << (SEQ_BITS + FROM_BITS)) | (BigInt(seq) << FROM_BITS) | BigInt(from)
  );
}

export function parseSubBatchId(id: bigint): { kind: SubBatchKind | null; generation: number; seq: number; from: number } {
  const k = Number(id >> (GEN_BITS + SEQ_BITS + FROM_BITS));
  return {
    kind: k === 1 ? 'outcome' : k === 2 ? 'aborted' : null,
    generation: Number((id >> (SEQ_BITS + FROM_BITS)) & ((1n << GEN_BITS) - 1n)),
    seq: Number((id >> FROM_BITS) & ((1n << SEQ_BITS) - 1n)),
    from: Number(id & ((1n << FROM_BITS) - 1n)),
  };
}

export interface SubBatchRecord {
  from: number;
  n: number;
  atSec: number;
  /** position within the sub-batch → error */
  failed: Map<number, string>;
  /** position within the sub-batch → why it was not sent (never also in `failed`) */
  withheld: Map<number, Withheld>;
}

const packr = new Packr({ useRecords: false });
const unpackr = new Unpackr({ useRecords: false });

export function encodeRecord(r: Omit<SubBatchRecord, 'withheld'> & { withheld?: Withholdings }): Buffer {
  const head = [r.from, r.n, r.atSec, [...r.failed.keys()], [...r.failed.values()]];
  const held = r.withheld ?? NO_WITHHOLDINGS;
  if (held.size === 0) return packr.pack(head);
  const kinds: string[] = [];
  const reasons: string[] = [];
  for (const w of held.values()) {
    kinds.push(w.kind);
    reasons.push(w.reason);
  }
  return packr.pack([...head, [...held.keys()], kinds, reasons]);
}

function invalid(detail: string): HeraldError {
  return new HeraldError('STREAM_ENTRY_INVALID', `ledger record: ${detail}`, { field: 'record' });
}

/** Decodes a chunk's concatenated records, in the order they were written. */
export function decodeRecords(bytes: Buffer | null): SubBatchRecord[] {
  if (bytes === null || bytes.length === 0) return [];
  let values: unknown[];
  try {
    values = unpackr.unpackMultiple(bytes) as unknown[];
  } catch (err) {
    throw invalid(`not msgpack (${(err as Error).message})`);
  }
  return values.map((v) => {
    if (!Array.isArray(v) || (v.length !== 5 && v.length !== 8))
      throw invalid('expected [from, n, at, failedIndexes, errors] and, if any were withheld, [heldIndexes, kinds, reasons]');
    const [from, n, atSec, idx, errs, heldIdx, heldKinds, reasons] = v as unknown[];
    if (!isCount(from) || !isCount(n) || !isCount(atSec)) throw invalid('from, n and at must be non-negative integers');
    if (!Array.isArray(idx) || !Array.isArray(errs) || idx.length !== errs.length)
      throw invalid('failures must be two lists of one length');
    const failed = new Map<number, string>();
    for (let i = 0; i < idx.length; i++) {
      const at = idx[i] as unknown;
      if (!isCount(at) || at >= n) throw invalid(`failed index ${String(at)} outside the sub-batch of ${n}`);
      failed.set(at, String(errs[i]));
    }
    const withheld = new Map<number, Withheld>();
    if (v.length === 8) {
      if (!Array.isArray(heldIdx) || !Array.isArray(heldKinds) || !Array.isArray(reasons))
        throw invalid('withheld recipients must be three lists');
      if (heldIdx.length !== heldKinds.length || heldIdx.length !== reasons.length)
        throw invalid('withheld recipients must be three lists of one length');
      for (let i = 0; i < heldIdx.length; i++) {
        const at = heldIdx[i] as unknown;
        const kind = heldKinds[i] as unknown;
        if (!isCount(at) || at >= n) throw invalid(`withheld index ${String(at)} outside the sub-batch of ${n}`);
        if (failed.has(at)) throw invalid(`recipient ${at} is both failed and withheld`);
        if (!isWithheldKind(kind)) throw invalid(`withheld kind ${String(kind)} is not one of skipped, suppressed, capped`);
        withheld.set(at, { kind, reason: String(reasons[i]) });
      }
    }
    return { from, n, atSec, failed, withheld };
  });
}

function isCount(v: unknown): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
}

/**
 * `message_events` rows as one ClickHouse Native block (formats/Native: a column count, a row count, then
 * per column its name, its type and its values one after another). Columnar because most of a row is
 * the same for a whole chunk: campaign, kind, time, sub-batch id and the empty error, delivered_at and
 * segment are each one `Buffer#fill` per chunk, and the chunk's user ids, already packed as Native
 * Strings (domain/packed-ids.ts), are one copy; a row format would write every field of every row one at
 * a time (what that costs is in bench/README.md).
 *
 * Columns (the table's, migrations 0001-0004): campaign_id UInt64, user_id String, kind Enum8, at
 * DateTime, error String, batch UInt64 (the row's sub-batch, domain/sub-batch.ts, or the insert's own id
 * for rows outside one: `setBatch`), delivered_at DateTime (reads: when the message was delivered; else
 * 0), segment String (the recipient's value of the campaign's segment attribute, or empty). The types are
 * declared exactly as the table has them, so no version needs to convert (a test compares them with
 * system.columns).
 */
import { NO_WITHHOLDINGS, type Withholdings } from '../domain/withheld.js';
import { EVENT_KIND_CODE, type EventKind } from '../domain/message-event.js';
import { writeVarint } from '../domain/packed-ids.js';
import { withRoom } from '../domain/buffers.js';

const KIND_TYPE = `Enum8(${Object.entries(EVENT_KIND_CODE)
  .map(([k, v]) => `'${k}' = ${v}`)
  .join(', ')})`;

/** name and type of each column, in block order */
export const EVENT_COLUMNS: ReadonlyArray<readonly [string, string]> = [
  ['campaign_id', 'UInt64'],
  ['user_id', 'String'],
  ['kind', KIND_TYPE],
  ['at', "DateTime('UTC')"],
  ['error', 'String'],
  ['batch', 'UInt64'],
  ['delivered_at', "DateTime('UTC')"],
  ['segment', 'String'],
];

/** A growable byte column. */
class Column {
  buf: Buffer;
  len = 0;

  constructor(bytes: number) {
    this.buf = Buffer.allocUnsafe(Math.max(64, bytes));
  }

  ensure(n: number): Buffer {
    return (this.buf = withRoom(this.buf, this.len, n));
  }

  /** `count` copies of `pattern` (one byte or a little-endian integer's bytes) */
  fill(pattern: Buffer | number, width: number, count: number): void {
    const n = width * count;
    this.ensure(n).fill(pattern, this.len, this.len + n);
    this.len += n;
  }

  bytes(from: Buffer, start = 0, end = from.length): void {
    this.len += from.copy(this.ensure(end - start), this.len, start, end);
  }

  string(s: string): void {
    const n = Buffer.byteLength(s, 'utf8');
    const buf = this.ensure(n + 5);
    this.len = writeVarint(buf, this.len, n);
    this.len += buf.write(s, this.len, n, 'utf8');
  }
}

/** A position in the block (rows so far, and where the variable-width columns are): bounds of a row range. */
export interface BlockMark {
  rows: number;
  user: number;
  error: number;
  segment: number;
}

/** each column's name and type, which precede its values in every block */
const COLUMN_HEADS: readonly Buffer[] = EVENT_COLUMNS.map(([name, type]) => {
  const head = new Column(name.length + type.length + 10);
  head.string(name);
  head.string(type);
  return head.buf.subarray(0, head.len);
});

function putBytes(col: Column, value: Buffer | number, width: number): void {
  const buf = col.ensure(width);
  if (typeof value === 'number') buf[col.len++] = value;
  else for (let i = 0; i < width; i++) buf[col.len++] = value[i]!;
}

const FIXED = { campaign: 8, kind: 1, at: 4, batch: 8, deliveredAt: 4 } as const;

export class EventBlockWriter {
  rows = 0;
  private readonly campaign: Column;
  private readonly user: Column;
  private readonly kind: Column;
  private readonly at: Column;
  private readonly error: Column;
  private readonly batch: Column;
  private readonly deliveredAt: Column;
  private readonly segment: Column;
  /** the columns in block order, each with its width in bytes or the mark that bounds its values */
  private readonly columns: ReadonlyArray<readonly [Column, number | 'user' | 'error' | 'segment']>;
  private readonly batchBytes = Buffer.allocUnsafe(8);
  private readonly u64 = Buffer.allocUnsafe(8);
  private readonly u32 = Buffer.allocUnsafe(4);

  /**
   * `expectedRows` sizes the columns up front (they grow past it), the user ids' at `userBytes` a row (a
   * packed id: its length's varint and its bytes); `batch` as in `setBatch`.
   */
  constructor(expectedRows = 1024, batch = 0n, userBytes = 16) {
    this.campaign = new Column(expectedRows * 8);
    this.user = new Column(expectedRows * userBytes);
    this.kind = new Column(expectedRows);
    this.at = new Column(expectedRows * 4);
    this.error = new Column(expectedRows);
    this.batch = new Column(expectedRows * 8);
    this.deliveredAt = new Column(expectedRows * 4);
    this.segment = new Column(expectedRows);
    this.columns = [
      [this.campaign, FIXED.campaign],
      [this.user, 'user'],
      [this.kind, FIXED.kind],
      [this.at, FIXED.at],
      [this.error, 'error'],
      [this.batch, FIXED.batch],
      [this.deliveredAt, FIXED.deliveredAt],
      [this.segment, 'segment'],
    ];
    this.batchBytes.writeBigUInt64LE(batch);
  }

  /** The id written into the `batch` column of the rows added from now on. */
  setBatch(batch: bigint): void {
    this.batchBytes.writeBigUInt64LE(batch);
  }

  mark(): BlockMark {
    return { rows: this.rows, user: this.user.len, error: this.error.len, segment: this.segment.len };
  }

  /** One row (reads, callbacks): written byte by byte, which beats a native fill for a single value. */
  add(campaignId: number, userId: string, kind: EventKind, atSec: number, error: string, deliveredAtSec = 0, segment = ''): void {
    putBytes(this.campaign, this.uint64(campaignId), 8);
    this.user.string(userId);
    putBytes(this.kind, EVENT_KIND_CODE[kind], 1);
    putBytes(this.at, this.uint32(atSec), 4);
    this.error.string(error);
    putBytes(this.batch, this.batchBytes, 8);
    putBytes(this.deliveredAt, this.uint32(deliveredAtSec), 4);
    this.segment.string(segment);
    this.rows++;
  }

  /**
   * The hot path: `count` recipients of one campaign at one time, each `kind` (delivered, or aborted)
   * unless listed in `failed` or `withheld` (skipped, suppressed, capped: domain/withheld.ts). `users`
   * holds the ids already as Native Strings (packed-ids.ts), checked to be exactly `count` of them when
   * the chunk was decoded.
   */
  addOutcomes(
    campaignId: number,
    users: Buffer,
    count: number,
    failed: ReadonlyMap<number, string>,
    atSec: number,
    kind: 'delivered' | 'aborted' = 'delivered',
    segments: ReadonlyArray<string | null> | null = null,
    withheld: Withholdings = NO_WITHHOLDINGS,
  ): void {
    const kindStart = this.kind.len;
    this.campaign.fill(this.uint64(campaignId), 8, count);
    this.user.bytes(users);
    this.kind.fill(EVENT_KIND_CODE[kind], 1, count);
    this.at.fill(this.uint32(atSec), 4, count);
    if (failed.size === 0 && withheld.size === 0) this.error.fill(0, 1, count);
    else {
      for (let i = 0; i < count; i++) {
        const err = failed.get(i);
        const held = err === undefined ? withheld.get(i) : undefined;
        if (err !== undefined) {
          this.error.string(err);
          this.kind.buf[kindStart + i] = EVENT_KIND_CODE.failed;
        } else if (held !== undefined) {
          this.error.string(held.reason);
          this.kind.buf[kindStart + i] = EVENT_KIND_CODE[held.kind];
        } else this.error.fill(0, 1, 1);
      }
    }
    this.batch.fill(this.batchBytes, 8, count);
    this.deliveredAt.fill(0, 4, count);
    if (segments === null) this.segment.fill(0, 1, count);
    else for (let i = 0; i < count; i++) this.segment.string(segments[i] ?? '');
    this.rows += count;
  }

  /**
   * The block: every row, or only the row ranges given (marks from `mark()`, in order). The parts are
   * views of the columns, so the writer must not be written to while they are in use.
   */
  finish(ranges?: ReadonlyArray<{ start: BlockMark; end: BlockMark }>): Buffer[] {
    const all = ranges === undefined;
    const rows = all ? this.rows : ranges.reduce((n, r) => n + r.end.rows - r.start.rows, 0);
    const head = Buffer.allocUnsafe(20);
    let off = writeVarint(head, 0, EVENT_COLUMNS.length);
    off = writeVarint(head, off, rows);
    const parts: Buffer[] = [head.subarray(0, off)];
    this.columns.forEach(([col, unit], i) => {
      parts.push(COLUMN_HEADS[i]!);
      if (all) parts.push(col.buf.subarray(0, col.len));
      else {
        const slices = ranges.map(({ start, end }) =>
          typeof unit === 'number' ? col.buf.subarray(start.rows * unit, end.rows * unit) : col.buf.subarray(start[unit], end[unit]),
        );
        parts.push(Buffer.concat(slices));
      }
    });
    return parts;
  }

  private uint64(n: number): Buffer {
    this.u64.writeBigUInt64LE(BigInt(n));
    return this.u64;
  }

  private uint32(n: number): Buffer {
    this.u32.writeUInt32LE(n >>> 0);
    return this.u32;
  }
}

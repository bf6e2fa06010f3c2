/**
 * RowBinary encoding of `message_events` rows straight into one growing Buffer: no per-row objects or
 * strings. Column order (the table's, migrations 0001-0004): campaign_id UInt64, user_id String, kind Enum8,
 * at DateTime, error String, batch UInt64 (the id of the sub-batch the row belongs to, domain/sub-batch.ts,
 * or of the insert for rows outside a sub-batch: set with `setBatch` before adding rows), delivered_at
 * DateTime (reads: when the message was delivered; else 0), segment String (the recipient's value of the
 * campaign's segment attribute, or empty).
 */
import { EVENT_KIND_CODE, type EventKind } from '../domain/message-event.js';
import { readVarint } from '../domain/packed-ids.js';

export class EventRowWriter {
  private buf: Buffer;
  private off = 0;
  rows = 0;
  private readonly batchBytes = Buffer.allocUnsafe(8);

  constructor(initialBytes = 1 << 20, batch = 0n) {
    this.buf = Buffer.allocUnsafe(initialBytes);
    this.batchBytes.writeBigUInt64LE(batch);
  }

  private batchColumn(): void {
    this.ensure(8);
    this.batchBytes.copy(this.buf, this.off);
    this.off += 8;
  }

  get bytes(): number {
    return this.off;
  }

  private ensure(n: number): void {
    if (this.off + n <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < this.off + n) size *= 2;
    const next = Buffer.allocUnsafe(size);
    this.buf.copy(next, 0, 0, this.off);
    this.buf = next;
  }

  private varint(n: number): void {
    while (n >= 0x80) {
      this.buf[this.off++] = (n & 0x7f) | 0x80;
      n >>>= 7;
    }
    this.buf[this.off++] = n;
  }

  private string(s: string): void {
    const len = Buffer.byteLength(s, 'utf8');
    this.ensure(len + 5);
    this.varint(len);
    this.off += this.buf.write(s, this.off, len, 'utf8');
  }

  add(campaignId: number, userId: string, kind: EventKind, atSec: number, error: string, deliveredAtSec = 0, segment = ''): void {
    this.ensure(8 + 1 + 4 + 2);
    this.buf.writeBigUInt64LE(BigInt(campaignId), this.off);
    this.off += 8;
    this.string(userId);
    this.ensure(1 + 4 + 5);
    this.buf[this.off++] = EVENT_KIND_CODE[kind];
    this.buf.writeUInt32LE(atSec >>> 0, this.off);
    this.off += 4;
    this.string(error);
    this.batchColumn();
    this.ensure(4);
    this.buf.writeUInt32LE(deliveredAtSec >>> 0, this.off);
    this.off += 4;
    this.string(segment);
    this.rows++;
  }

  /**
   * The hot path: `count` recipients of one campaign at one time, each `kind` (delivered, or aborted)
   * unless listed in `failed`. `users` holds the ids already in RowBinary String form (packed-ids.ts), so each row is
   * two copies and four bytes; the campaign id bytes are computed once.
   */
  addOutcomes(
    campaignId: number,
    users: Buffer,
    count: number,
    failed: ReadonlyMap<number, string>,
    atSec: number,
    kind: 'delivered' | 'aborted' = 'delivered',
    segments: ReadonlyArray<string | null> | null = null,
  ): void {
    const okCode = EVENT_KIND_CODE[kind];
    const idBytes = Buffer.allocUnsafe(8);
    idBytes.writeBigUInt64LE(BigInt(campaignId));
    const at = atSec >>> 0;
    // Worst case per row besides the id itself: 8 + 1 + 4 + 1 + 8 + 4 + 1 bytes; failures and segments grow it below.
    this.ensure(users.length + count * 27);
    let pos = 0;
    for (let i = 0; i < count; i++) {
      const [len, start] = readVarint(users, pos, users.length);
      const end = start + len;
      const buf = this.buf;
      let off = this.off;
      for (let b = 0; b < 8; b++) buf[off + b] = idBytes[b]!;
      off += 8;
      if (end - pos <= 24) for (let b = pos; b < end; b++) buf[off++] = users[b]!;
      else off += users.copy(buf, off, pos, end);
      pos = end;
      const err = failed.size === 0 ? undefined : failed.get(i);
      buf[off++] = err === undefined ? okCode : EVENT_KIND_CODE.failed;
      buf[off++] = at & 0xff;
      buf[off++] = (at >>> 8) & 0xff;
      buf[off++] = (at >>> 16) & 0xff;
      buf[off++] = at >>> 24;
      this.off = off;
      if (err === undefined) {
        this.buf[this.off++] = 0; // empty error string
      } else {
        this.string(err);
        this.ensure(users.length - pos + (count - i) * 27);
      }
      // a byte loop: for 8 bytes a native Buffer.copy per row costs more than the copying
      for (let b = 0; b < 8; b++) this.buf[this.off + b] = this.batchBytes[b]!;
      this.off += 8;
      // delivered_at: 0 on outcomes
      this.buf[this.off++] = 0;
      this.buf[this.off++] = 0;
      this.buf[this.off++] = 0;
      this.buf[this.off++] = 0;
      const segment = segments === null ? null : segments[i];
      if (segment === null || segment === undefined || segment === '') this.buf[this.off++] = 0;
      else {
        this.string(segment);
        this.ensure(users.length - pos + (count - i) * 27);
      }
    }
    this.rows += count;
  }

  /** The id written into the `batch` column of the rows added from now on. */
  setBatch(batch: bigint): void {
    this.batchBytes.writeBigUInt64LE(batch);
  }

  /** The encoded rows; the writer must not be used afterwards. */
  finish(): Buffer {
    return this.buf.subarray(0, this.off);
  }
}

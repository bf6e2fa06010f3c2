/**
 * Decoder for PostgreSQL's binary COPY format (protocol's `COPY … TO STDOUT (FORMAT binary)`) of the
 * planner's rows: `id bigint, user_id text [, address text] [, segment text] [, attrs text]`. Binary rather than text
 * because every field arrives with its length: nothing is scanned for tabs, newlines or backslash
 * escapes, and user ids are copied once, straight from the socket's chunks into the packed buffer
 * (domain/packed-ids.ts). Pure: fed byte ranges in order, so it is unit-tested without a server.
 *
 * Format (sql-copy.html, "Binary Format"): an 11-byte signature, int32 flags, int32 extension length
 * and that many bytes; then per tuple an int16 field count (-1 ends the data) and per field an int32
 * length (-1 for NULL) and the bytes; all integers big-endian.
 */
import type { RecipientPage } from '../domain/chunk.js';
import { writeVarint } from '../domain/packed-ids.js';
import { withRoom } from '../domain/buffers.js';
import type { CopySink } from './copy-out.js';

const SIGNATURE = Buffer.from('PGCOPY\n\xff\r\n\0', 'latin1');
const HEADER_FIXED = SIGNATURE.length + 8;

export class CopyFormatError extends Error {
  override readonly name = 'CopyFormatError';
}

/** Which columns a page's COPY carries after (id, user_id), in this order, and how many rows to size for. */
export interface RecipientColumns {
  address?: boolean;
  /** the campaign's `segment_by` attribute */
  segment?: boolean;
  /** the attributes its templates read, as JSON text */
  attrs?: boolean;
  /** rows the page is expected to hold (0: grow as they come) */
  expectedRows?: number;
  /**
   * bytes a row's packed user id is expected to take (its length's varint and its bytes)
   * @default 16
   */
  userBytes?: number;
}

export class RecipientRowDecoder implements CopySink<RecipientPage> {
  private readonly fields: number;
  private ids: Float64Array;
  private userEnds: Uint32Array;
  private rows = 0;
  private readonly addresses: Array<string | null> | null;
  private readonly segments: Array<string | null> | null;
  /** the attributes a campaign's templates read, as JSON text per row */
  private readonly attrs: Array<string | null> | null;
  private users: Buffer;
  private off = 0;
  /** bytes of a header or tuple cut by the end of a fed range, kept until the rest arrives */
  private carry: Buffer | null = null;
  private headerDone = false;
  private ended = false;
  /** bytes fed so far, and the stream offset of index 0 of the buffer being parsed: for error positions */
  private fed = 0;
  private base = 0;

  constructor(columns: RecipientColumns = {}) {
    const { address = false, segment = false, attrs = false, expectedRows = 0, userBytes = 16 } = columns;
    this.fields = 2 + (address ? 1 : 0) + (segment ? 1 : 0) + (attrs ? 1 : 0);
    this.addresses = address ? [] : null;
    this.segments = segment ? [] : null;
    this.attrs = attrs ? [] : null;
    this.users = Buffer.allocUnsafe(Math.max(4096, expectedRows * userBytes));
    this.ids = new Float64Array(Math.max(256, expectedRows));
    this.userEnds = new Uint32Array(this.ids.length);
  }

  feed(buf: Buffer, start: number, end: number): void {
    if (this.carry === null) this.parse(buf, start, end, this.fed - start);
    else {
      const carried = this.carry;
      this.carry = null;
      const joined = Buffer.concat([carried, buf.subarray(start, end)]);
      this.parse(joined, 0, joined.length, this.fed - carried.length);
    }
    this.fed += end - start;
  }

  /** Parses whole units from [start, end), keeping a cut one as carry; `base` + an index of `buf` = its stream offset. */
  private parse(buf: Buffer, start: number, end: number, base: number): void {
    this.base = base;
    let pos = start;
    if (!this.headerDone) {
      if (end - pos < HEADER_FIXED) return this.keep(buf, pos, end);
      if (!buf.subarray(pos, pos + SIGNATURE.length).equals(SIGNATURE)) throw this.error('not binary COPY data (bad signature)', pos);
      const ext = buf.readUInt32BE(pos + SIGNATURE.length + 4);
      if (end - pos < HEADER_FIXED + ext) return this.keep(buf, pos, end);
      pos += HEADER_FIXED + ext;
      this.headerDone = true;
    }
    while (pos < end) {
      if (this.ended) throw this.error('data after the end of the COPY', pos);
      if (end - pos < 2) return this.keep(buf, pos, end);
      const count = (buf[pos]! << 8) | buf[pos + 1]!;
      if (count === 0xffff) {
        this.ended = true;
        pos += 2;
        continue;
      }
      if (count !== this.fields) throw this.error(`a row of ${count} fields, expected ${this.fields}`, pos);
      const next = this.tuple(buf, pos + 2, end);
      if (next < 0) return this.keep(buf, pos, end);
      pos = next;
    }
  }

  /** One tuple's fields from `pos`; returns where it ends, or -1 if it runs past `end` (nothing recorded). */
  private tuple(buf: Buffer, pos: number, end: number): number {
    if (end - pos < 16) return -1;
    // byte arithmetic, not Buffer#readInt32BE: its argument checks were a fifth of the decoder's time
    if (int32(buf, pos) !== 8) throw this.error('id is not a bigint', pos);
    const id = (int32(buf, pos + 4) >>> 0) * 4294967296 + (int32(buf, pos + 8) >>> 0);
    const len = int32(buf, pos + 12);
    if (len < 1) throw this.error(`recipient ${id}: empty or null user_id`, pos);
    const from = pos + 16;
    const to = from + len;
    if (to > end) return -1;
    let after = to;
    // the optional text fields are located first, so a cut tuple records nothing
    let addrAt = -1;
    let segAt = -1;
    if (this.addresses !== null) {
      addrAt = after;
      after = this.skipField(buf, after, end);
      if (after < 0) return -1;
    }
    if (this.segments !== null) {
      segAt = after;
      after = this.skipField(buf, after, end);
      if (after < 0) return -1;
    }
    let attrsAt = -1;
    if (this.attrs !== null) {
      attrsAt = after;
      after = this.skipField(buf, after, end);
      if (after < 0) return -1;
    }
    if (this.rows === this.ids.length) this.growRows();
    this.ids[this.rows] = id;
    if (this.off + len + 5 > this.users.length) this.users = withRoom(this.users, this.off, len + 5);
    const users = this.users;
    let off = this.off;
    if (len < 0x80) users[off++] = len;
    else off = writeVarint(users, off, len);
    if (len <= 32) for (let i = from; i < to; i++) users[off++] = buf[i]!;
    else off += buf.copy(users, off, from, to);
    this.off = off;
    this.userEnds[this.rows++] = off;
    if (addrAt >= 0) this.addresses!.push(textField(buf, addrAt));
    if (segAt >= 0) this.segments!.push(textField(buf, segAt));
    if (attrsAt >= 0) this.attrs!.push(textField(buf, attrsAt));
    return after;
  }

  private skipField(buf: Buffer, pos: number, end: number): number {
    if (end - pos < 4) return -1;
    const len = int32(buf, pos);
    const after = pos + 4 + (len < 0 ? 0 : len);
    return after > end ? -1 : after;
  }

  private growRows(): void {
    const ids = new Float64Array(this.ids.length * 2);
    ids.set(this.ids);
    this.ids = ids;
    const ends = new Uint32Array(ids.length);
    ends.set(this.userEnds);
    this.userEnds = ends;
  }

  private keep(buf: Buffer, pos: number, end: number): void {
    this.carry = Buffer.from(buf.subarray(pos, end));
  }

  private error(what: string, at: number): CopyFormatError {
    return new CopyFormatError(`binary COPY at byte ${this.base + at}: ${what}`);
  }

  finish(): RecipientPage {
    if (this.carry !== null) throw new CopyFormatError(`binary COPY cut short: ${this.carry.length} bytes of an unfinished row`);
    if (this.headerDone && !this.ended) throw new CopyFormatError('binary COPY without its end marker');
    return {
      ids: this.ids.subarray(0, this.rows),
      users: this.users.subarray(0, this.off),
      userEnds: this.userEnds.subarray(0, this.rows),
      addresses: this.addresses,
      segments: this.segments,
      ...(this.attrs === null ? {} : { attrs: this.attrs }),
    };
  }
}

function int32(buf: Buffer, pos: number): number {
  return (buf[pos]! << 24) | (buf[pos + 1]! << 16) | (buf[pos + 2]! << 8) | buf[pos + 3]!;
}

function textField(buf: Buffer, pos: number): string | null {
  const len = int32(buf, pos);
  return len < 0 ? null : buf.toString('utf8', pos + 4, pos + 4 + len);
}

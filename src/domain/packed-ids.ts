/**
 * User ids packed the way ClickHouse writes a String (RowBinary, Native): a LEB128 length, then the UTF-8 bytes,
 * one after another. The planner builds them straight from PostgreSQL's COPY bytes and the event sink
 * copies them straight into insert batches, so on the hot path no user id ever becomes a JS string.
 */

export function writeVarint(buf: Buffer, off: number, n: number): number {
  while (n >= 0x80) {
    buf[off++] = (n & 0x7f) | 0x80;
    n >>>= 7;
  }
  buf[off++] = n;
  return off;
}

/** Reads a varint at `off`; returns [value, offset after it], or [-1, off] when it runs past `end`. */
export function readVarint(buf: Uint8Array, off: number, end: number): [number, number] {
  let n = 0;
  let shift = 0;
  while (off < end && shift <= 28) {
    const b = buf[off++]!;
    n |= (b & 0x7f) << shift;
    if (b < 0x80) return [n >>> 0, off];
    shift += 7;
  }
  return [-1, off];
}

/**
 * The length at `off` of ids known to be well packed (a chunk's, checked when it was decoded): no tuple per id
 * on the hot path; the id's bytes start at `off + varintBytes(length)`.
 */
export function lengthAt(buf: Uint8Array, off: number): number {
  let n = 0;
  let shift = 0;
  let b: number;
  do {
    b = buf[off++]!;
    n |= (b & 0x7f) << shift;
    shift += 7;
  } while (b >= 0x80);
  return n >>> 0;
}

/** how many bytes writeVarint takes for `n` */
export function varintBytes(n: number): number {
  return n < 0x80 ? 1 : n < 0x4000 ? 2 : n < 0x200000 ? 3 : n < 0x10000000 ? 4 : 5;
}

export function packStrings(values: readonly string[]): Buffer {
  let size = 0;
  for (const v of values) size += Buffer.byteLength(v, 'utf8') + 5;
  const buf = Buffer.allocUnsafe(size);
  let off = 0;
  for (const v of values) {
    const len = Buffer.byteLength(v, 'utf8');
    off = writeVarint(buf, off, len);
    off += buf.write(v, off, len, 'utf8');
  }
  return buf.subarray(0, off);
}

/** Byte offsets of each packed id: offsets[i] is where id i starts, offsets[count] the end. */
export function packedOffsets(packed: Uint8Array, count: number): Uint32Array {
  const out = new Uint32Array(count + 1);
  let off = 0;
  for (let i = 0; i < count; i++) {
    out[i] = off;
    const [len, start] = readVarint(packed, off, packed.length);
    off = start + len;
  }
  out[count] = off;
  return out;
}

/**
 * The ids of `packed` (`count` of them) whose positions `skip` does not hold, in order, joined by NUL (which
 * no user id holds: recipient-line.ts refuses it): the form a Lua script splits with one pattern match,
 * in C, where a LEB128 length would be read a byte at a time by the interpreter.
 */
export function joinedWithout(packed: Uint8Array, count: number, skip: { has(position: number): boolean }): Buffer {
  const out = Buffer.allocUnsafe(packed.length);
  let size = 0;
  let off = 0;
  for (let i = 0; i < count; i++) {
    const len = lengthAt(packed, off);
    off += varintBytes(len);
    if (!skip.has(i)) {
      if (size > 0) out[size++] = 0;
      out.set(packed.subarray(off, off + len), size);
      size += len;
    }
    off += len;
  }
  return out.subarray(0, size);
}

export function unpackStrings(packed: Uint8Array, count: number): string[] {
  const buf = Buffer.from(packed.buffer, packed.byteOffset, packed.byteLength);
  const out = new Array<string>(count);
  let off = 0;
  for (let i = 0; i < count; i++) {
    const [len, start] = readVarint(buf, off, buf.length);
    out[i] = buf.toString('utf8', start, start + len);
    off = start + len;
  }
  return out;
}

/**
 * Checks that `packed` holds exactly `count` non-empty strings and nothing else. Returns null when it
 * does, else what is wrong (a stream entry is input: it is checked before it is trusted).
 */
export function checkPacked(packed: Uint8Array, count: number): string | null {
  let off = 0;
  for (let i = 0; i < count; i++) {
    const [len, start] = readVarint(packed, off, packed.length);
    if (len < 1) return `entry ${i}: bad length`;
    // the hot path reads lengths assuming their shortest form (lengthAt, varintBytes)
    if (start - off !== varintBytes(len)) return `entry ${i}: length not in its shortest form`;
    off = start + len;
    if (off > packed.length) return `entry ${i}: runs past the end`;
  }
  return off === packed.length ? null : `${packed.length - off} bytes after ${count} entries`;
}

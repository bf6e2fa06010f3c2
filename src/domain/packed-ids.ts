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
    off = start + len;
    if (off > packed.length) return `entry ${i}: runs past the end`;
  }
  return off === packed.length ? null : `${packed.length - off} bytes after ${count} entries`;
}

/** `buf` if it has room for `need` more bytes after `used`, else a copy of its first `used` bytes in one at least twice as big. */
export function withRoom(buf: Buffer, used: number, need: number): Buffer {
  if (used + need <= buf.length) return buf;
  let size = Math.max(64, buf.length * 2);
  while (size < used + need) size *= 2;
  const bigger = Buffer.allocUnsafe(size);
  buf.copy(bigger, 0, 0, used);
  return bigger;
}

/**
 * The bytes a row of a variable-width column (packed user ids) is given up front next time, from the
 * last one filled: its mean plus an eighth, so the next is sized once and seldom grows (one audience's
 * ids are much alike); `fallback` (the estimate before) when the last held too few rows to tell. Kept
 * within 8-64 bytes: one campaign's long ids never make every later buffer, of any campaign, reserve
 * that much; longer ones grow the buffer as before.
 */
export function nextRowBytes(bytes: number, rows: number, fallback: number): number {
  return rows < 64 ? fallback : Math.min(64, Math.max(8, Math.ceil((bytes / rows) * 1.125)));
}

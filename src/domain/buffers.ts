/** `buf` if it has room for `need` more bytes after `used`, else a copy of its first `used` bytes in one at least twice as big. */
export function withRoom(buf: Buffer, used: number, need: number): Buffer {
  if (used + need <= buf.length) return buf;
  let size = Math.max(64, buf.length * 2);
  while (size < used + need) size *= 2;
  const bigger = Buffer.allocUnsafe(size);
  buf.copy(bigger, 0, 0, used);
  return bigger;
}

/** Binary COPY data (sql-copy.html, "Binary Format") of rows `(bigint, text…)`, as PostgreSQL sends it: for decoder tests and benches. */
export function copyBinary(rows: ReadonlyArray<readonly [number, ...Array<string | null>]>): Buffer {
  const parts: Buffer[] = [Buffer.from('PGCOPY\n\xff\r\n\0', 'latin1'), Buffer.alloc(8)];
  for (const [id, ...texts] of rows) {
    const head = Buffer.alloc(14);
    head.writeInt16BE(1 + texts.length, 0);
    head.writeInt32BE(8, 2);
    head.writeBigInt64BE(BigInt(id), 6);
    parts.push(head);
    for (const t of texts) {
      const len = Buffer.alloc(4);
      if (t === null) {
        len.writeInt32BE(-1);
        parts.push(len);
      } else {
        const bytes = Buffer.from(t, 'utf8');
        len.writeInt32BE(bytes.length);
        parts.push(len, bytes);
      }
    }
  }
  parts.push(Buffer.from([0xff, 0xff]));
  return Buffer.concat(parts);
}

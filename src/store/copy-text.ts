/**
 * Parser for PostgreSQL's COPY text format (tab-separated, `\N` for NULL, backslash escapes), used to
 * read recipients without the per-row cost of the extended query protocol. Pure, so it is unit-tested.
 */

const SIMPLE_ESCAPES: Record<string, string> = { b: '\b', f: '\f', n: '\n', r: '\r', t: '\t', v: '\v', '\\': '\\' };

export function unescapeCopy(field: string): string {
  if (!field.includes('\\')) return field;
  let out = '';
  for (let i = 0; i < field.length; i++) {
    const c = field[i]!;
    if (c !== '\\' || i + 1 >= field.length) {
      out += c;
      continue;
    }
    const n = field[++i]!;
    const simple = SIMPLE_ESCAPES[n];
    if (simple !== undefined) out += simple;
    else if (n >= '0' && n <= '7') {
      let oct = n;
      while (oct.length < 3 && i + 1 < field.length && field[i + 1]! >= '0' && field[i + 1]! <= '7') oct += field[++i];
      out += String.fromCharCode(parseInt(oct, 8));
    } else if (n === 'x' && /^[0-9a-fA-F]/.test(field[i + 1] ?? '')) {
      let hex = field[++i]!;
      if (/^[0-9a-fA-F]/.test(field[i + 1] ?? '')) hex += field[++i];
      out += String.fromCharCode(parseInt(hex, 16));
    } else out += n;
  }
  return out;
}

/**
 * Parses `id \t user_id [\t address]` rows. Octal/hex escapes yield bytes; PostgreSQL only emits them for
 * control characters, which are single bytes in UTF-8, so decoding the whole text first is safe.
 */
export function parseRecipientRows(
  text: string,
  withAddress: boolean,
): { ids: number[]; userIds: string[]; addresses: Array<string | null> | null } {
  const ids: number[] = [];
  const userIds: string[] = [];
  const addresses: Array<string | null> | null = withAddress ? [] : null;
  let pos = 0;
  while (pos < text.length) {
    let end = text.indexOf('\n', pos);
    if (end === -1) end = text.length;
    const tab1 = text.indexOf('\t', pos);
    if (tab1 === -1 || tab1 > end) throw new Error(`COPY row without user_id at offset ${pos}`);
    ids.push(Number(text.slice(pos, tab1)));
    if (addresses === null) userIds.push(unescapeCopy(text.slice(tab1 + 1, end)));
    else {
      const tab2 = text.indexOf('\t', tab1 + 1);
      if (tab2 === -1 || tab2 > end) throw new Error(`COPY row without address at offset ${pos}`);
      userIds.push(unescapeCopy(text.slice(tab1 + 1, tab2)));
      const a = text.slice(tab2 + 1, end);
      addresses.push(a === '\\N' ? null : unescapeCopy(a));
    }
    pos = end + 1;
  }
  return { ids, userIds, addresses };
}

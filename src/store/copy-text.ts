/**
 * Parser for PostgreSQL's COPY text format (tab-separated, `\N` for NULL, backslash escapes), reading
 * recipients as bytes: user ids go straight into a packed buffer (see domain/packed-ids.ts) without
 * becoming JS strings. Pure, so it is unit-tested.
 */
import type { RecipientPage } from '../domain/chunk.js';
import { writeVarint } from '../domain/packed-ids.js';

const SIMPLE_ESCAPES: Record<string, string> = { b: '\b', f: '\f', n: '\n', r: '\r', t: '\t', v: '\v', '\\': '\\' };
const TAB = 9;
const NL = 10;
const BACKSLASH = 92;

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

function indexOfByte(buf: Buffer, byte: number, from: number, end: number): number {
  const i = buf.indexOf(byte, from);
  return i === -1 || i > end ? -1 : i;
}

/**
 * Parses `id \t user_id [\t address] [\t segment]` rows. Escaped fields (rare: a backslash, tab or newline in an id)
 * take the slow path through a string; PostgreSQL emits octal/hex escapes only for control characters,
 * single bytes in UTF-8, so unescaping the decoded text is exact.
 */
export function parseRecipientRows(text: Buffer, withAddress: boolean, withSegment = false): RecipientPage {
  if (!withAddress && !withSegment) return parseIdRows(text);
  const ids: number[] = [];
  const userEnds: number[] = [];
  const addresses: Array<string | null> | null = withAddress ? [] : null;
  const segments: Array<string | null> | null = withSegment ? [] : null;
  // Packed ids are never longer than the text they come from (+ up to 4 extra varint bytes per row).
  let users = Buffer.allocUnsafe(text.length + 64);
  let off = 0;
  let pos = 0;
  while (pos < text.length) {
    let end = text.indexOf(NL, pos);
    if (end === -1) end = text.length;
    const tab1 = indexOfByte(text, TAB, pos, end);
    if (tab1 === -1) throw new Error(`COPY row without user_id at byte ${pos}`);
    let id = 0;
    for (let i = pos; i < tab1; i++) id = id * 10 + (text[i]! - 48);
    ids.push(id);
    let userEnd = end;
    if (addresses !== null || segments !== null) {
      const tab2 = indexOfByte(text, TAB, tab1 + 1, end);
      if (tab2 === -1) throw new Error(`COPY row without its ${addresses !== null ? 'address' : 'segment'} at byte ${pos}`);
      userEnd = tab2;
      let fieldEnd = end;
      if (addresses !== null && segments !== null) {
        fieldEnd = indexOfByte(text, TAB, tab2 + 1, end);
        if (fieldEnd === -1) throw new Error(`COPY row without its segment at byte ${pos}`);
      }
      const first = text.toString('utf8', tab2 + 1, fieldEnd);
      const value = first === '\\N' ? null : unescapeCopy(first);
      if (addresses !== null) addresses.push(value);
      else segments!.push(value);
      if (addresses !== null && segments !== null) {
        const seg = text.toString('utf8', fieldEnd + 1, end);
        segments.push(seg === '\\N' ? null : unescapeCopy(seg));
      }
    }
    const len = userEnd - tab1 - 1;
    if (off + len + 10 > users.length) {
      const bigger = Buffer.allocUnsafe(users.length * 2 + len + 10);
      users.copy(bigger, 0, 0, off);
      users = bigger;
    }
    let escaped = false;
    // A short scan of the field itself (Buffer.indexOf would search the rest of the page on every row).
    for (let i = tab1 + 1; i < userEnd; i++) if (text[i] === BACKSLASH) escaped = true;
    if (!escaped) {
      off = writeVarint(users, off, len);
      off += text.copy(users, off, tab1 + 1, userEnd);
    } else {
      const s = unescapeCopy(text.toString('utf8', tab1 + 1, userEnd));
      const n = Buffer.byteLength(s, 'utf8');
      off = writeVarint(users, off, n);
      off += users.write(s, off, n, 'utf8');
    }
    userEnds.push(off);
    pos = end + 1;
  }
  return { ids, users: users.subarray(0, off), userEnds, addresses, segments };
}

/**
 * The planner's usual page, `id \t user_id` rows, in one pass over the bytes: no Buffer.indexOf or
 * Buffer.copy per row (native calls that cost more than the few bytes they handle), no string unless
 * a field is escaped.
 */
function parseIdRows(text: Buffer): RecipientPage {
  const ids: number[] = [];
  const userEnds: number[] = [];
  const n = text.length;
  // Packed ids are never longer than the text they come from (the id digits and tab cover the varint).
  const users = Buffer.allocUnsafe(n + 64);
  let off = 0;
  let pos = 0;
  while (pos < n) {
    const rowStart = pos;
    let id = 0;
    let c = text[pos]!;
    while (c !== TAB) {
      if (c === NL || c < 48 || c > 57) throw new Error(`COPY row without user_id at byte ${rowStart}`);
      id = id * 10 + (c - 48);
      if (++pos >= n) throw new Error(`COPY row without user_id at byte ${rowStart}`);
      c = text[pos]!;
    }
    ids.push(id);
    const from = ++pos;
    let escaped = false;
    while (pos < n && (c = text[pos]!) !== NL) {
      if (c === BACKSLASH) escaped = true;
      else if (c === TAB) throw new Error(`COPY row with an unexpected field at byte ${rowStart}`);
      pos++;
    }
    if (!escaped) {
      const len = pos - from;
      off = writeVarint(users, off, len);
      for (let i = from; i < pos; i++) users[off++] = text[i]!;
    } else {
      const str = unescapeCopy(text.toString('utf8', from, pos));
      const len = Buffer.byteLength(str, 'utf8');
      off = writeVarint(users, off, len);
      off += users.write(str, off, len, 'utf8');
    }
    userEnds.push(off);
    pos++;
  }
  return { ids, users: users.subarray(0, off), userEnds, addresses: null, segments: null };
}

/**
 * One imported recipient, validated; and the PostgreSQL COPY text encoding of it. Pure, so the
 * importer's per-line rules (and their error messages) are unit-tested without a database.
 */

export interface RecipientRow {
  userId: string;
  address: string | null;
  /** JSON text of the attrs object, or null */
  attrs: string | null;
}

export type LineResult = { ok: true; row: RecipientRow } | { ok: false; error: string };

const MAX_USER_ID = 256;
const MAX_ADDRESS = 2048;
const MAX_ATTRS = 16_384;

export function validateRecipient(userId: unknown, address: unknown, attrs: unknown): LineResult {
  let uid: string;
  if (typeof userId === 'string') uid = userId;
  else if (typeof userId === 'number' && Number.isSafeInteger(userId)) uid = String(userId);
  else return { ok: false, error: 'user_id: is required and must be a string' };
  if (uid.length === 0 || uid.length > MAX_USER_ID) return { ok: false, error: `user_id: must be 1 to ${MAX_USER_ID} characters` };
  if (uid.includes('\0')) return { ok: false, error: 'user_id: must not contain NUL' };
  let addr: string | null = null;
  if (address !== undefined && address !== null && address !== '') {
    if (typeof address !== 'string') return { ok: false, error: 'address: must be a string' };
    if (address.length > MAX_ADDRESS) return { ok: false, error: `address: must be at most ${MAX_ADDRESS} characters` };
    if (address.includes('\0')) return { ok: false, error: 'address: must not contain NUL' };
    addr = address;
  }
  let attrsText: string | null = null;
  if (attrs !== undefined && attrs !== null) {
    if (typeof attrs !== 'object' || Array.isArray(attrs)) return { ok: false, error: 'attrs: must be an object' };
    attrsText = JSON.stringify(attrs);
    if (attrsText.length > MAX_ATTRS) return { ok: false, error: `attrs: must be at most ${MAX_ATTRS} bytes of JSON` };
    // PostgreSQL jsonb rejects \u0000; catch it here so one line cannot abort the whole COPY.
    if (attrsText.includes('\\u0000')) return { ok: false, error: 'attrs: must not contain NUL' };
  }
  return { ok: true, row: { userId: uid, address: addr, attrs: attrsText } };
}

export function parseNdjsonLine(line: string): LineResult {
  let value: unknown;
  try {
    value = JSON.parse(line);
  } catch {
    return { ok: false, error: 'line: is not valid JSON' };
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return { ok: false, error: 'line: must be a JSON object' };
  const v = value as Record<string, unknown>;
  return validateRecipient(v.user_id, v.address, v.attrs);
}

const COPY_ESCAPE = /[\\\t\n\r]/g;
const NEEDS_ESCAPE = /[\\\t\n\r]/;
const COPY_REPLACEMENTS: Record<string, string> = { '\\': '\\\\', '\t': '\\t', '\n': '\\n', '\r': '\\r' };

export function copyField(v: string | null): string {
  if (v === null) return '\\N';
  // test first: most fields need nothing, and a replace with a callback costs more than the test
  return NEEDS_ESCAPE.test(v) ? v.replace(COPY_ESCAPE, (c) => COPY_REPLACEMENTS[c] ?? c) : v;
}

/** One line of PostgreSQL COPY text format: line_no, user_id, address, attrs. */
export function copyLine(lineNo: number, row: RecipientRow): string {
  return `${lineNo}\t${copyField(row.userId)}\t${copyField(row.address)}\t${copyField(row.attrs)}\n`;
}

const USER_PREFIX = Buffer.from('{"user_id":"');
const ADDRESS_INFIX = Buffer.from('","address":"');
const QUOTE = 0x22;
const BRACE_CLOSE = 0x7d;
const TAB = 0x09;

/**
 * The import's fast path, on bytes: a line of exactly the shape `{"user_id":"U"}` or
 * `{"user_id":"U","address":"A"}` (what JSON.stringify of such an object gives), where U and A are
 * printable ASCII without quotes or backslashes (so nothing to unescape, and nothing to escape for COPY),
 * is written to `out` at `off` as its COPY line, with the same checks as `validateRecipient`. Returns the
 * offset after it, or -1 for any other line, which then takes the general path (JSON.parse) and gets its
 * error there. `out` must have room for the line's length + 24 bytes.
 */
export function fastCopyLine(src: Buffer, start: number, end: number, lineNo: number, out: Buffer, off: number): number {
  let p = start + USER_PREFIX.length;
  if (p > end) return -1;
  for (let i = 0; i < USER_PREFIX.length; i++) if (src[start + i] !== USER_PREFIX[i]) return -1;
  const userFrom = p;
  while (p < end && plain(src[p]!)) p++;
  const userTo = p;
  const userLen = userTo - userFrom;
  if (p >= end || src[p] !== QUOTE || userLen === 0 || userLen > MAX_USER_ID) return -1;
  p++;
  let addrFrom = -1;
  let addrTo = -1;
  if (p < end && src[p] !== BRACE_CLOSE) {
    // `"address":"` follows the user id's closing quote (already passed): match the rest of the infix
    for (let i = 1; i < ADDRESS_INFIX.length; i++, p++) if (p >= end || src[p] !== ADDRESS_INFIX[i]) return -1;
    addrFrom = p;
    while (p < end && plain(src[p]!)) p++;
    addrTo = p;
    if (p >= end || src[p] !== QUOTE || addrTo - addrFrom > MAX_ADDRESS) return -1;
    p++;
  }
  if (p !== end - 1 || src[p] !== BRACE_CLOSE) return -1;
  off = writeDigits(out, off, lineNo);
  out[off++] = TAB;
  for (let i = userFrom; i < userTo; i++) out[off++] = src[i]!;
  out[off++] = TAB;
  if (addrTo > addrFrom) for (let i = addrFrom; i < addrTo; i++) out[off++] = src[i]!;
  else off = nullField(out, off);
  out[off++] = TAB;
  off = nullField(out, off);
  out[off++] = 0x0a;
  return off;
}

/** printable ASCII other than `"` and `\` */
function plain(b: number): boolean {
  return b >= 0x20 && b < 0x7f && b !== QUOTE && b !== 0x5c;
}

function nullField(out: Buffer, off: number): number {
  out[off++] = 0x5c; // \N
  out[off++] = 0x4e;
  return off;
}

function writeDigits(out: Buffer, off: number, n: number): number {
  const from = off;
  do {
    out[off++] = 0x30 + (n % 10);
    n = Math.floor(n / 10);
  } while (n > 0);
  for (let i = from, j = off - 1; i < j; i++, j--) {
    const t = out[i]!;
    out[i] = out[j]!;
    out[j] = t;
  }
  return off;
}

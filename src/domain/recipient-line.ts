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
// a \uD800-\uDFFF escape not itself escaped (an even run of backslashes before it)
const LONE_SURROGATE = /(?<!\\)(?:\\\\)*\\ud[89a-f][0-9a-f]{2}/i;

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
    // JSON.stringify writes a lone surrogate as \udXXX, which jsonb refuses (and the COPY with it).
    if (LONE_SURROGATE.test(attrsText)) return { ok: false, error: 'attrs: must not contain unpaired surrogates' };
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
const ATTRS_INFIX = Buffer.from(',"attrs":');
const QUOTE = 0x22;
const BRACE_CLOSE = 0x7d;
const TAB = 0x09;

/**
 * The import's fast path, on bytes: a line of the shape `{"user_id":"U"}`, `{"user_id":"U","address":"A"}`,
 * either with `,"attrs":{…}` before its closing brace (what JSON.stringify of such an object gives),
 * where U and A are printable ASCII without quotes or backslashes (nothing to unescape, nothing to escape
 * for COPY) and the attrs object is printable ASCII JSON, is written to `out` at `off` as its COPY line,
 * with the same checks as `validateRecipient`. The attrs text goes to PostgreSQL as written (jsonb
 * parses it; only its backslashes are doubled for COPY), so it is validated here first: one malformed
 * object must not abort the COPY of the whole file. Returns the offset after the line, or -1 for any
 * other line, which then takes the general path (JSON.parse) and gets its error there. `out` must have
 * room for twice the line's length + 24 bytes.
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
  if (p < end && src[p] !== BRACE_CLOSE && src[p + 3] === 0x64 /* the d of "address" */) {
    // `"address":"` follows the user id's closing quote (already passed): match the rest of the infix
    for (let i = 1; i < ADDRESS_INFIX.length; i++, p++) if (p >= end || src[p] !== ADDRESS_INFIX[i]) return -1;
    addrFrom = p;
    while (p < end && plain(src[p]!)) p++;
    addrTo = p;
    if (p >= end || src[p] !== QUOTE || addrTo - addrFrom > MAX_ADDRESS) return -1;
    p++;
  }
  let attrsFrom = -1;
  let attrsTo = -1;
  if (p < end && src[p] === 0x2c) {
    for (let i = 0; i < ATTRS_INFIX.length; i++, p++) if (p >= end || src[p] !== ATTRS_INFIX[i]) return -1;
    if (src[p] !== 0x7b) return -1;
    attrsFrom = p;
    attrsTo = scanJson(src, p, end - 1, 0);
    if (attrsTo < 0 || attrsTo - attrsFrom > MAX_ATTRS) return -1;
    p = attrsTo;
  }
  if (p !== end - 1 || src[p] !== BRACE_CLOSE) return -1;
  off = writeDigits(out, off, lineNo);
  out[off++] = TAB;
  for (let i = userFrom; i < userTo; i++) out[off++] = src[i]!;
  out[off++] = TAB;
  if (addrTo > addrFrom) for (let i = addrFrom; i < addrTo; i++) out[off++] = src[i]!;
  else off = nullField(out, off);
  out[off++] = TAB;
  if (attrsFrom < 0) off = nullField(out, off);
  else
    for (let i = attrsFrom; i < attrsTo; i++) {
      const b = src[i]!;
      if (b === BACKSLASH) out[off++] = BACKSLASH;
      out[off++] = b;
    }
  out[off++] = 0x0a;
  return off;
}

const BACKSLASH = 0x5c;
const MAX_ATTRS_DEPTH = 32;

/**
 * Validates one JSON value at `p` (before `end`) on bytes and returns the offset after it, or -1 where
 * the fast path does not vouch for it: malformed JSON, any byte outside printable ASCII (a raw tab
 * would need COPY escaping, non-ASCII text a UTF-8 check), escapes jsonb refuses (\u0000, lone
 * surrogates; \uD800–\uDFFF are all sent to the general path), nesting past MAX_ATTRS_DEPTH.
 */
function scanJson(src: Buffer, p: number, end: number, depth: number): number {
  if (p >= end) return -1;
  const b = src[p]!;
  if (b === 0x7b || b === 0x5b) {
    if (depth >= MAX_ATTRS_DEPTH) return -1;
    const close = b === 0x7b ? 0x7d : 0x5d;
    p = skipSpace(src, p + 1, end);
    if (p < end && src[p] === close) return p + 1;
    for (;;) {
      if (b === 0x7b) {
        if (p >= end || src[p] !== QUOTE) return -1;
        p = scanString(src, p, end);
        if (p < 0) return -1;
        p = skipSpace(src, p, end);
        if (p >= end || src[p] !== 0x3a) return -1;
        p = skipSpace(src, p + 1, end);
      }
      p = scanJson(src, p, end, depth + 1);
      if (p < 0) return -1;
      p = skipSpace(src, p, end);
      if (p >= end) return -1;
      if (src[p] === close) return p + 1;
      if (src[p] !== 0x2c) return -1;
      p = skipSpace(src, p + 1, end);
    }
  }
  if (b === QUOTE) return scanString(src, p, end);
  if (b === 0x74) return literal(src, p, end, 'true');
  if (b === 0x66) return literal(src, p, end, 'false');
  if (b === 0x6e) return literal(src, p, end, 'null');
  return scanNumber(src, p, end);
}

function skipSpace(src: Buffer, p: number, end: number): number {
  while (p < end && src[p] === 0x20) p++;
  return p;
}

function literal(src: Buffer, p: number, end: number, word: string): number {
  if (p + word.length > end) return -1;
  for (let i = 0; i < word.length; i++) if (src[p + i] !== word.charCodeAt(i)) return -1;
  return p + word.length;
}

function isDigit(b: number | undefined): boolean {
  return b !== undefined && b >= 0x30 && b <= 0x39;
}

/** -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)? */
function scanNumber(src: Buffer, p: number, end: number): number {
  if (p < end && src[p] === 0x2d) p++;
  if (p >= end || !isDigit(src[p])) return -1;
  if (src[p] === 0x30) p++;
  else while (p < end && isDigit(src[p])) p++;
  if (p < end && src[p] === 0x2e) {
    p++;
    if (p >= end || !isDigit(src[p])) return -1;
    while (p < end && isDigit(src[p])) p++;
  }
  if (p < end && (src[p] === 0x65 || src[p] === 0x45)) {
    p++;
    if (p < end && (src[p] === 0x2b || src[p] === 0x2d)) p++;
    if (p >= end || !isDigit(src[p])) return -1;
    while (p < end && isDigit(src[p])) p++;
  }
  return p;
}

function isHex(b: number | undefined): boolean {
  return b !== undefined && ((b >= 0x30 && b <= 0x39) || (b >= 0x41 && b <= 0x46) || (b >= 0x61 && b <= 0x66));
}

/** A string at `p` (its opening quote): printable ASCII, valid escapes, none that jsonb refuses. */
function scanString(src: Buffer, p: number, end: number): number {
  p++;
  while (p < end) {
    const b = src[p]!;
    if (b === QUOTE) return p + 1;
    if (b < 0x20 || b >= 0x7f) return -1;
    if (b === BACKSLASH) {
      const e = src[p + 1];
      if (e === 0x75) {
        if (p + 6 > end) return -1;
        for (let i = 2; i < 6; i++) if (!isHex(src[p + i])) return -1;
        const code = parseInt(src.toString('latin1', p + 2, p + 6), 16);
        if (code === 0 || (code >= 0xd800 && code <= 0xdfff)) return -1;
        p += 6;
        continue;
      }
      if (e !== QUOTE && e !== BACKSLASH && e !== 0x2f && e !== 0x62 && e !== 0x66 && e !== 0x6e && e !== 0x72 && e !== 0x74) return -1;
      p += 2;
      continue;
    }
    p++;
  }
  return -1;
}

/** printable ASCII other than `"` and `\` */
function plain(b: number): boolean {
  return b >= 0x20 && b < 0x7f && b !== QUOTE && b !== BACKSLASH;
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

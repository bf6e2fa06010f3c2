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
const COPY_REPLACEMENTS: Record<string, string> = { '\\': '\\\\', '\t': '\\t', '\n': '\\n', '\r': '\\r' };

export function copyField(v: string | null): string {
  if (v === null) return '\\N';
  return v.replace(COPY_ESCAPE, (c) => COPY_REPLACEMENTS[c] ?? c);
}

/** One line of PostgreSQL COPY text format: line_no, user_id, address, attrs. */
export function copyLine(lineNo: number, row: RecipientRow): string {
  return `${lineNo}\t${copyField(row.userId)}\t${copyField(row.address)}\t${copyField(row.attrs)}\n`;
}

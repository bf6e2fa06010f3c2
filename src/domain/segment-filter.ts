/**
 * Segment filters: a small JSON expression language over recipients' attributes (recipients.attrs),
 * validated into a typed tree and compiled to a PostgreSQL boolean expression. Pure: no I/O.
 *
 * Semantics, for one recipient whose attrs object is A (a NULL or non-object attrs has no attributes):
 * - an attribute is *missing* when A has no such key or its value is JSON null;
 * - `{"attr": k, "exists": true}`: k is not missing (`false`: k is missing);
 * - `eq v` (v a string, number or boolean): A[k] is a scalar of v's JSON type equal to v (numbers by value,
 *   strings exactly); a string never equals a number, an array never equals its element;
 * - `ne v`: k is not missing and `eq v` does not hold (so a recipient without k matches neither `eq` nor `ne`;
 *   `{"not": {"attr": k, "eq": v}}` also matches recipients without k);
 * - `in [v…]`: `eq` holds for one of the values;
 * - `lt` / `lte` / `gt` / `gte` with a number: A[k] is a JSON number and compares so;
 *   with an ISO-8601 date or date-time string: A[k] is a string in that same form and, read as an instant
 *   (a date is its midnight; no offset means UTC; up to microseconds), compares so; any other value of k
 *   (missing, another type, another string) matches no comparison;
 * - `and` / `or` of a non-empty list; `not` of one filter, the exact complement (two-valued: every leaf is
 *   true or false, never unknown).
 */
import { HeraldError, type FieldError } from '../errors.js';

/** A key of recipients.attrs, as `segment_by` takes it: it goes into SQL only as a quoted literal. */
export const ATTR_NAME = /^[A-Za-z0-9_.-]{1,64}$/;
/** Nesting of and / or / not, the top level being 1. */
export const MAX_FILTER_DEPTH = 8;
/** Conditions and and / or / not nodes in one filter. */
export const MAX_FILTER_NODES = 200;
/** Values of one `in`, and of all of a filter's `in`s together. */
export const MAX_IN_VALUES = 1000;
/** Characters of one string value. */
export const MAX_VALUE_LENGTH = 1000;

export type Scalar = string | number | boolean;
export type CompareOp = 'lt' | 'lte' | 'gt' | 'gte';
/** A comparison's bound: a number, or an instant (microseconds since 1970-01-01T00:00Z). */
export type Bound =
  | { type: 'number'; value: number }
  /** `text`: the same instant as PostgreSQL reads it whatever the session's time zone; `source`: as given */
  | { type: 'instant'; micros: bigint; text: string; source: string };

export type FilterNode =
  | { kind: 'and' | 'or'; children: FilterNode[] }
  | { kind: 'not'; child: FilterNode }
  | { kind: 'exists'; attr: string; value: boolean }
  | { kind: 'eq' | 'ne'; attr: string; value: Scalar }
  | { kind: 'in'; attr: string; values: Scalar[] }
  | { kind: CompareOp; attr: string; bound: Bound };

const COMPARE_OPS: readonly CompareOp[] = ['lt', 'lte', 'gt', 'gte'];
const LEAF_OPS = ['exists', 'eq', 'ne', 'in', ...COMPARE_OPS] as const;
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

/**
 * ISO-8601 dates and date-times as both the validator and PostgreSQL's `herald_attr_instant`
 * (schemas/postgres/0010_segments.sql) read them, in syntax both regex engines take alike. Day-of-month
 * against month and leap year is checked after.
 */
export const ISO_INSTANT =
  /^(?!0000)(\d{4})-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])(?:[T ]([01]\d|2[0-3]):([0-5]\d)(?::([0-5]\d)(?:\.(\d{1,6}))?)?(Z|[+-](?:0\d|1[0-4]):[0-5]\d)?)?$/;

function daysIn(year: number, month: number): number {
  if (month === 2) return (year % 4 === 0 && year % 100 !== 0) || year % 400 === 0 ? 29 : 28;
  return [4, 6, 9, 11].includes(month) ? 30 : 31;
}

/**
 * The instant an ISO date or date-time string names, in microseconds since the epoch, or null when the
 * string is not one (the same strings PostgreSQL's `herald_attr_instant` reads, to the microsecond).
 */
export function parseIsoInstant(s: string): { micros: bigint; text: string } | null {
  const m = ISO_INSTANT.exec(s);
  if (m === null) return null;
  const [, y, mo, d, h = '00', mi = '00', sec = '00', frac = '', zone = 'Z'] = m;
  const year = Number(y);
  const month = Number(mo);
  const day = Number(d);
  if (day > daysIn(year, month)) return null;
  const date = new Date(0);
  // setUTCFullYear: Date.UTC would read years 0-99 as 1900-1999
  date.setUTCFullYear(year, month - 1, day);
  date.setUTCHours(Number(h), Number(mi), Number(sec), 0);
  let offsetMinutes = 0;
  if (zone !== 'Z') offsetMinutes = (zone.startsWith('-') ? -1 : 1) * (Number(zone.slice(1, 3)) * 60 + Number(zone.slice(4, 6)));
  const micros = BigInt(date.getTime() - offsetMinutes * 60_000) * 1000n + BigInt(frac.padEnd(6, '0'));
  // The same instant in a form PostgreSQL reads without the session's time zone: the offset written out.
  const text = `${y}-${mo}-${d}T${h}:${mi}:${sec}.${frac.padEnd(6, '0')}${zone === 'Z' ? '+00:00' : zone}`;
  return { micros, text };
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

interface Walk {
  errors: FieldError[];
  nodes: number;
  inValues: number;
}

function scalar(raw: unknown, path: string, w: Walk): Scalar | null {
  if (typeof raw === 'boolean') return raw;
  if (typeof raw === 'number') {
    if (Number.isFinite(raw)) return raw;
  } else if (typeof raw === 'string') {
    if (raw.length > MAX_VALUE_LENGTH) {
      w.errors.push({ field: path, error: `must be at most ${MAX_VALUE_LENGTH} characters` });
      return null;
    }
    if (raw.includes('\u0000') || LONE_SURROGATE.test(raw)) {
      w.errors.push({ field: path, error: 'must not contain NUL or unpaired surrogates' });
      return null;
    }
    return raw;
  }
  w.errors.push({ field: path, error: 'must be a string, a finite number or a boolean' });
  return null;
}

function node(raw: unknown, path: string, depth: number, w: Walk): FilterNode | null {
  if (++w.nodes > MAX_FILTER_NODES) {
    if (w.nodes === MAX_FILTER_NODES + 1)
      w.errors.push({ field: path, error: `a filter holds at most ${MAX_FILTER_NODES} conditions and operators` });
    return null;
  }
  if (!isObject(raw)) {
    w.errors.push({ field: path, error: 'must be an object: {and}, {or}, {not} or {attr, <op>}' });
    return null;
  }
  const keys = Object.keys(raw);
  if ('and' in raw || 'or' in raw || 'not' in raw) {
    if (keys.length !== 1) {
      w.errors.push({ field: path, error: 'an and / or / not object has exactly one key' });
      return null;
    }
    if (depth >= MAX_FILTER_DEPTH) {
      w.errors.push({ field: path, error: `filters nest at most ${MAX_FILTER_DEPTH} levels deep` });
      return null;
    }
    const key = keys[0] as 'and' | 'or' | 'not';
    if (key === 'not') {
      const child = node(raw.not, `${path}.not`, depth + 1, w);
      return child === null ? null : { kind: 'not', child };
    }
    const list = raw[key];
    if (!Array.isArray(list) || list.length === 0) {
      w.errors.push({ field: `${path}.${key}`, error: 'must be a non-empty array of filters' });
      return null;
    }
    const children = list.map((c, i) => node(c, `${path}.${key}[${i}]`, depth + 1, w));
    return children.every((c): c is FilterNode => c !== null) ? { kind: key, children } : null;
  }
  if (!('attr' in raw)) {
    w.errors.push({ field: path, error: 'must be an object: {and}, {or}, {not} or {attr, <op>}' });
    return null;
  }
  let ok = true;
  const attr = raw.attr;
  if (typeof attr !== 'string' || !ATTR_NAME.test(attr)) {
    w.errors.push({ field: `${path}.attr`, error: 'must be an attribute name of 1-64 letters, digits, "_", "-" or "."' });
    ok = false;
  }
  const ops = keys.filter((k) => k !== 'attr');
  const unknown = ops.filter((k) => !(LEAF_OPS as readonly string[]).includes(k));
  if (unknown.length > 0) {
    w.errors.push({ field: `${path}.${unknown[0]}`, error: `is not an operator (${LEAF_OPS.join(', ')})` });
    return null;
  }
  if (ops.length !== 1) {
    w.errors.push({ field: path, error: `names exactly one operator besides attr (${LEAF_OPS.join(', ')})` });
    return null;
  }
  const op = ops[0] as (typeof LEAF_OPS)[number];
  const at = `${path}.${op}`;
  const value = raw[op];
  const name = attr as string;
  switch (op) {
    case 'exists':
      if (typeof value !== 'boolean') {
        w.errors.push({ field: at, error: 'must be true or false' });
        return null;
      }
      return ok ? { kind: 'exists', attr: name, value } : null;
    case 'eq':
    case 'ne': {
      const v = scalar(value, at, w);
      return ok && v !== null ? { kind: op, attr: name, value: v } : null;
    }
    case 'in': {
      if (!Array.isArray(value) || value.length === 0 || value.length > MAX_IN_VALUES) {
        w.errors.push({ field: at, error: `must be an array of 1 to ${MAX_IN_VALUES} values` });
        return null;
      }
      w.inValues += value.length;
      if (w.inValues > MAX_IN_VALUES) {
        w.errors.push({ field: at, error: `a filter's in lists hold at most ${MAX_IN_VALUES} values together` });
        return null;
      }
      const values = value.map((v, i) => scalar(v, `${at}[${i}]`, w));
      return ok && values.every((v): v is Scalar => v !== null) ? { kind: 'in', attr: name, values } : null;
    }
    default: {
      let bound: Bound | null = null;
      if (typeof value === 'number' && Number.isFinite(value)) bound = { type: 'number', value };
      else if (typeof value === 'string') {
        const instant = parseIsoInstant(value);
        if (instant !== null) bound = { type: 'instant', ...instant, source: value };
      }
      if (bound === null) {
        w.errors.push({ field: at, error: 'must be a finite number or an ISO-8601 date or date-time string' });
        return null;
      }
      return ok ? { kind: op, attr: name, bound } : null;
    }
  }
}

/**
 * Validates a filter; every problem is pushed to `errors`, named by its path from `path`
 * (`filter.and[1].attr`). Null when there is any.
 */
export function parseFilter(raw: unknown, path: string, errors: FieldError[]): FilterNode | null {
  const w: Walk = { errors, nodes: 0, inValues: 0 };
  const before = errors.length;
  const out = node(raw, path, 1, w);
  return errors.length > before ? null : out;
}

/** A filter or 400 naming every bad path. */
export function validateFilter(raw: unknown, path = 'filter'): FilterNode {
  const errors: FieldError[] = [];
  const f = parseFilter(raw, path, errors);
  if (f === null) throw HeraldError.invalid(errors);
  return f;
}

/** A filter as Herald stored it (validated when it came in): one that fails now is a bug, not bad input. */
export function storedFilter(json: unknown, what: string): FilterNode {
  try {
    return validateFilter(json);
  } catch (err) {
    throw new HeraldError('INTERNAL', `${what}: the stored filter is not valid`, {}, err);
  }
}

/** The filter back as the JSON the API takes (the form campaigns and segments store). */
export function filterJson(f: FilterNode): unknown {
  switch (f.kind) {
    case 'and':
    case 'or':
      return { [f.kind]: f.children.map(filterJson) };
    case 'not':
      return { not: filterJson(f.child) };
    case 'exists':
      return { attr: f.attr, exists: f.value };
    case 'eq':
    case 'ne':
      return { attr: f.attr, [f.kind]: f.value };
    case 'in':
      return { attr: f.attr, in: f.values };
    default:
      return { attr: f.attr, [f.kind]: f.bound.type === 'number' ? f.bound.value : f.bound.source };
  }
}

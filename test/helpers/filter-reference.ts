/**
 * The segment filter's meaning, written plainly in JavaScript: what PostgreSQL must select for the SQL
 * that src/domain/segment-sql.ts compiles (test/integration/segment-filter.test.ts compares the two on
 * random rows). Test code only: Herald never evaluates a filter row by row.
 */
import { parseIsoInstant, type FilterNode, type Scalar } from '../../src/domain/segment-filter.js';

/** An attribute's value, or undefined when it is missing (no key, JSON null, or attrs not an object). */
function attribute(attrs: unknown, name: string): unknown {
  if (typeof attrs !== 'object' || attrs === null || Array.isArray(attrs)) return undefined;
  if (!Object.hasOwn(attrs, name)) return undefined;
  const v = (attrs as Record<string, unknown>)[name];
  return v === null ? undefined : v;
}

function equals(v: unknown, x: Scalar): boolean {
  return typeof v === typeof x && v === x;
}

function compare(a: number | bigint, b: number | bigint, op: 'lt' | 'lte' | 'gt' | 'gte'): boolean {
  switch (op) {
    case 'lt':
      return a < b;
    case 'lte':
      return a <= b;
    case 'gt':
      return a > b;
    case 'gte':
      return a >= b;
  }
}

export function matches(f: FilterNode, attrs: unknown): boolean {
  switch (f.kind) {
    case 'and':
      return f.children.every((c) => matches(c, attrs));
    case 'or':
      return f.children.some((c) => matches(c, attrs));
    case 'not':
      return !matches(f.child, attrs);
    default:
      break;
  }
  const v = attribute(attrs, f.attr);
  switch (f.kind) {
    case 'exists':
      return (v !== undefined) === f.value;
    case 'eq':
      return equals(v, f.value);
    case 'ne':
      return v !== undefined && !equals(v, f.value);
    case 'in':
      return f.values.some((x) => equals(v, x));
    default: {
      if (f.bound.type === 'number') return typeof v === 'number' && compare(v, f.bound.value, f.kind);
      const instant = typeof v === 'string' ? parseIsoInstant(v) : null;
      return instant !== null && compare(instant.micros, f.bound.micros, f.kind);
    }
  }
}

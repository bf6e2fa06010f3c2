/**
 * Compiles a validated segment filter (segment-filter.ts) to a PostgreSQL boolean expression over a jsonb
 * column. Pure text: values are either bound (`$n`, returned in `params`, for ordinary queries) or
 * written as quoted literals (for COPY, which takes no bind parameters); attribute names are validated
 * names (ATTR_NAME) and are always written as quoted literals.
 *
 * `not` is pushed down to the conditions first (De Morgan), and a negated condition is written as
 * `NOT COALESCE(c, false)`: a condition on a missing attribute (or a NULL attrs) is SQL NULL, which in a
 * tree of AND / OR alone selects exactly what false would, so only negations need the COALESCE, and the
 * positive conditions keep the forms PostgreSQL's indexes match: `attrs @> '{"k": v}'` for `eq` and
 * `attrs @> ANY (…)` for `in` use the GIN index on attrs (jsonb_path_ops). Where rows are only tested
 * (`use: 'scan'`), string values compare as text instead.
 */
import type { FilterNode, Scalar } from './segment-filter.js';

export interface CompileOptions {
  /** how values go into the SQL: `bind` as `$n` with `params`, `inline` as quoted literals */
  values: 'bind' | 'inline';
  /**
   * the jsonb column, e.g. `r.attrs`
   * @default 'attrs'
   */
  column?: string;
  /**
   * the number of the first `$n`
   * @default 1
   */
  firstParam?: number;
  /**
   * what the expression is for: `index`, finding the rows (`eq` / `in` as containment, which the GIN
   * index serves); `scan`, testing rows read in another order (the planner's pages), where string
   * `eq` / `in` compare the attribute's text, which costs a fraction of a containment test per row
   * @default 'index'
   */
  use?: 'index' | 'scan';
}

export interface CompiledFilter {
  /** a boolean SQL expression, parenthesised */
  sql: string;
  /** the values of `$firstParam…`, in order (empty for `inline`) */
  params: Array<string | string[]>;
}

/**
 * A PostgreSQL string literal for `s`, the way libpq's PQescapeLiteral (and pg's escapeLiteral) writes
 * one: quotes doubled, and when `s` holds a backslash, an E'' literal with backslashes doubled, so it
 * means the same whatever standard_conforming_strings says. NUL cannot be in a PostgreSQL string.
 */
export function sqlLiteral(s: string): string {
  if (s.includes('\u0000')) throw new RangeError('a SQL string literal cannot hold NUL');
  const quoted = s.replace(/'/g, "''");
  return s.includes('\\') ? ` E'${quoted.replace(/\\/g, '\\\\')}'` : `'${quoted}'`;
}

const OPERATORS = { lt: '<', lte: '<=', gt: '>', gte: '>=' } as const;

type Leaf = Exclude<FilterNode, { kind: 'and' | 'or' | 'not' }>;

class Writer {
  readonly params: Array<string | string[]> = [];
  constructor(
    private readonly opts: Required<CompileOptions>,
    private readonly column: string,
  ) {}

  value(v: string, type: 'jsonb' | 'numeric' | 'timestamptz' | 'text'): string {
    if (this.opts.values === 'inline') return `${sqlLiteral(v)}::${type}`;
    this.params.push(v);
    return `$${this.opts.firstParam + this.params.length - 1}::${type}`;
  }

  array(vs: string[]): string {
    if (this.opts.values === 'inline') return `ARRAY[${vs.map(sqlLiteral).join(', ')}]::jsonb[]`;
    this.params.push(vs);
    return `$${this.opts.firstParam + this.params.length - 1}::jsonb[]`;
  }

  attr(name: string): string {
    return `(${this.column} -> ${sqlLiteral(name)})`;
  }

  /** The attribute is a JSON string equal to one of `vs` (byte for byte, as JSON strings compare). */
  text(name: string, vs: string[]): string {
    const a = this.attr(name);
    const text = `(${this.column} ->> ${sqlLiteral(name)}) COLLATE "C"`;
    const test = vs.length === 1 ? `${text} = ${this.value(vs[0]!, 'text')}` : `${text} = ANY (${this.texts(vs)})`;
    return `(${test} AND jsonb_typeof(${a}) = 'string')`;
  }

  texts(vs: string[]): string {
    if (this.opts.values === 'inline') return `ARRAY[${vs.map(sqlLiteral).join(', ')}]::text[]`;
    this.params.push(vs);
    return `$${this.opts.firstParam + this.params.length - 1}::text[]`;
  }

  /** True, false or NULL; NULL only where false is meant (a missing attribute, a NULL attrs). */
  leaf(f: Leaf): string {
    const a = this.attr(f.attr);
    const present = `jsonb_typeof(${a}) <> 'null'`;
    switch (f.kind) {
      case 'exists':
        return f.value ? `(${present})` : `(NOT COALESCE(${present}, false))`;
      case 'eq':
        if (this.opts.use === 'scan' && typeof f.value === 'string') return this.text(f.attr, [f.value]);
        return `(${this.column} @> ${this.value(containment(f.attr, f.value), 'jsonb')})`;
      case 'ne':
        return `(${a} <> ${this.value(JSON.stringify(f.value), 'jsonb')} AND ${present})`;
      case 'in': {
        const strings = this.opts.use === 'scan' ? f.values.filter((v): v is string => typeof v === 'string') : [];
        const others = this.opts.use === 'scan' ? f.values.filter((v) => typeof v !== 'string') : f.values;
        const parts = strings.length > 0 ? [this.text(f.attr, strings)] : [];
        if (others.length > 0) parts.push(`(${this.column} @> ANY (${this.array(others.map((v) => containment(f.attr, v)))}))`);
        return parts.length === 1 ? parts[0]! : `(${parts.join(' OR ')})`;
      }
      default: {
        const op = OPERATORS[f.kind];
        if (f.bound.type === 'number')
          return `((CASE WHEN jsonb_typeof(${a}) = 'number' THEN ${a}::numeric END) ${op} ${this.value(String(f.bound.value), 'numeric')})`;
        return `(herald_attr_instant(${a}) ${op} ${this.value(f.bound.text, 'timestamptz')})`;
      }
    }
  }

  node(f: FilterNode, negated: boolean): string {
    switch (f.kind) {
      case 'not':
        return this.node(f.child, !negated);
      case 'and':
      case 'or': {
        const joint = (f.kind === 'and') !== negated ? ' AND ' : ' OR ';
        return `(${f.children.map((c) => this.node(c, negated)).join(joint)})`;
      }
      default: {
        const sql = this.leaf(f);
        return negated ? `(NOT COALESCE(${sql}, false))` : sql;
      }
    }
  }
}

/** `{"<attr>": v}`: what a recipient whose attr equals v contains. */
function containment(attr: string, v: Scalar): string {
  return JSON.stringify({ [attr]: v });
}

export function compileFilter(f: FilterNode, opts: CompileOptions): CompiledFilter {
  const resolved: Required<CompileOptions> = { column: 'attrs', firstParam: 1, use: 'index', ...opts };
  const w = new Writer(resolved, resolved.column);
  return { sql: w.node(f, false), params: w.params };
}

/**
 * The most values an indexed page reads side by side: one index scan per value, merged by id. A longer
 * `in` is read by the scan, as an `in` over most of an attribute's values selects most of the audience.
 */
export const MAX_INDEXED_VALUES = 32;

/**
 * A string `eq` / `in` that every recipient a filter selects must meet: the filter itself, or one child of
 * a top-level `and` (the others are `rest`). Its matches can be read from an expression index on the
 * attribute (`attrKeySql`) one value at a time, each in id order.
 */
export interface IndexedLead {
  attr: string;
  /** distinct, in the filter's order */
  values: string[];
  /** what else a recipient must meet; null when nothing */
  rest: FilterNode | null;
}

function stringValues(f: FilterNode): { attr: string; values: string[] } | null {
  let raw: Scalar[];
  if (f.kind === 'eq') raw = [f.value];
  else if (f.kind === 'in') raw = f.values;
  else return null;
  if (raw.length === 0 || !raw.every((v): v is string => typeof v === 'string')) return null;
  const values = [...new Set(raw)];
  return values.length > MAX_INDEXED_VALUES ? null : { attr: f.attr, values };
}

/** The filter's indexable leads, fewest values first (the likeliest to be selective); none for most filters. */
export function indexedLeads(f: FilterNode): IndexedLead[] {
  const own = stringValues(f);
  if (own !== null) return [{ ...own, rest: null }];
  if (f.kind !== 'and') return [];
  const leads: IndexedLead[] = [];
  f.children.forEach((child, i) => {
    const lead = stringValues(child);
    if (lead === null) return;
    const others = f.children.filter((_, j) => j !== i);
    leads.push({ ...lead, rest: others.length === 0 ? null : others.length === 1 ? others[0]! : { kind: 'and', children: others } });
  });
  return leads.sort((a, b) => a.values.length - b.values.length);
}

/**
 * The expression an attribute's index holds and an indexed page compares: the attribute's text when it is
 * a JSON string, else NULL, so `= 'v'` means exactly what a string `eq` means (a number 5 and a string "5"
 * have the same `->>` text). Byte order (COLLATE "C"), as the filter compares strings.
 */
export function attrKeySql(attr: string, column = 'attrs'): string {
  const k = sqlLiteral(attr);
  return `((CASE WHEN jsonb_typeof(${column} -> ${k}) = 'string' THEN ${column} ->> ${k} END) COLLATE "C")`;
}

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
 * `attrs @> ANY (…)` for `in` use the GIN index on attrs (jsonb_path_ops).
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

  value(v: string, type: 'jsonb' | 'numeric' | 'timestamptz'): string {
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

  /** True, false or NULL; NULL only where false is meant (a missing attribute, a NULL attrs). */
  leaf(f: Leaf): string {
    const a = this.attr(f.attr);
    const present = `jsonb_typeof(${a}) <> 'null'`;
    switch (f.kind) {
      case 'exists':
        return f.value ? `(${present})` : `(NOT COALESCE(${present}, false))`;
      case 'eq':
        return `(${this.column} @> ${this.value(containment(f.attr, f.value), 'jsonb')})`;
      case 'ne':
        return `(${a} <> ${this.value(JSON.stringify(f.value), 'jsonb')} AND ${present})`;
      case 'in':
        return `(${this.column} @> ANY (${this.array(f.values.map((v) => containment(f.attr, v)))}))`;
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
  const resolved: Required<CompileOptions> = { column: 'attrs', firstParam: 1, ...opts };
  const w = new Writer(resolved, resolved.column);
  return { sql: w.node(f, false), params: w.params };
}

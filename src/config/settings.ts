/**
 * The kinds of setting the schema (schema.ts) is written in. Each builder returns a `Setting<T>`: its
 * environment variable, default, allowed range in words, one line of documentation, and the parser
 * that turns the variable's text into a `T` or names the problem. The value type of every setting,
 * and so the `Config` type, is inferred from the builder used.
 */

export type SettingType = 'string' | 'int' | 'bool' | 'url' | 'list' | 'enum';

/** A parse result: the value, or the problem in words that follow the variable's name ("HERALD_PORT must be …"). */
export type Parsed<T> = { ok: true; value: T } | { ok: false; error: string };

export interface Setting<T> {
  readonly type: SettingType;
  readonly env: string;
  readonly default: T;
  /** the values allowed, in words (README's "allowed" column) */
  readonly range: string;
  /** one line: what it does, its unit, why its default */
  readonly doc: string;
  /** README's and `herald config`'s default when the value alone does not say it ("derived from HERALD_API_KEYS") */
  readonly defaultDoc?: string;
  /** `herald config` prints it redacted (URLs of every setting lose their password anyway) */
  readonly secret?: boolean;
  /** reads a non-empty variable; an empty or unset one leaves the default */
  parse(raw: string): Parsed<T>;
}

export type SettingValue<S> = S extends Setting<infer T> ? T : never;

interface Common {
  env: string;
  doc: string;
  defaultDoc?: string;
  secret?: boolean;
}

const ok = <T>(value: T): Parsed<T> => ({ ok: true, value });
const bad = (error: string): Parsed<never> => ({ ok: false, error });

/**
 * An integer from `min` to `max`. `zeroOff`: 0 is allowed too and turns the feature off, so `min` is the
 * least value that keeps it on.
 */
export function int(o: Common & { default: number; min: number; max: number; zeroOff?: boolean }): Setting<number> {
  const { min, max, zeroOff = false } = o;
  const range = `${min}–${max}`;
  return {
    ...o,
    type: 'int',
    range: zeroOff ? `0 (off) or ${range}` : range,
    parse(raw) {
      const n = Number(raw);
      if (Number.isInteger(n) && ((zeroOff && n === 0) || (n >= min && n <= max))) return ok(n);
      return bad(`must be ${zeroOff ? '0 (off) or ' : ''}an integer from ${min} to ${max}`);
    },
  };
}

/** Any text, or text matching `pattern` (`error` then says what is expected, `range` the same for the README). */
export function str(o: Common & { default: string; pattern?: RegExp; error?: string; range?: string }): Setting<string> {
  const { pattern, error = `must match ${String(pattern)}`, range = 'any text' } = o;
  return {
    ...o,
    type: 'string',
    range,
    parse: (raw) => (pattern === undefined || pattern.test(raw) ? ok(raw) : bad(error)),
  };
}

/** A URL with one of `protocols` (`'http:'`, …); `trimSlash` drops trailing slashes, for a base other paths are added to. */
export function url(o: Common & { default: string; protocols: readonly string[]; trimSlash?: boolean }): Setting<string> {
  const schemes = o.protocols.map((p) => `${p}//`).join(' or ');
  return {
    ...o,
    type: 'url',
    range: `${schemes} URL`,
    parse(raw) {
      let u: URL;
      try {
        u = new URL(raw);
      } catch {
        return bad('is not a URL');
      }
      if (!o.protocols.includes(u.protocol)) return bad(`must start with ${schemes}`);
      return ok(o.trimSlash === true ? raw.replace(/\/+$/, '') : raw);
    },
  };
}

const TRUE = new Set(['1', 'true', 'yes', 'on']);
const FALSE = new Set(['0', 'false', 'no', 'off']);

/** true / false (also 1 / 0, yes / no, on / off, in any case). */
export function bool(o: Common & { default: boolean }): Setting<boolean> {
  return {
    ...o,
    type: 'bool',
    range: 'true or false',
    parse(raw) {
      const v = raw.trim().toLowerCase();
      if (TRUE.has(v)) return ok(true);
      if (FALSE.has(v)) return ok(false);
      return bad('must be true or false (1 / 0, yes / no, on / off)');
    },
  };
}

/** Comma-separated items, blanks around them dropped, each at least `minLength` characters (`item` names them in errors). */
export function list(o: Common & { default: readonly string[]; item: string; minLength: number }): Setting<readonly string[]> {
  return {
    ...o,
    type: 'list',
    range: `comma-separated, ${o.minLength}+ characters each`,
    parse(raw) {
      const items = raw
        .split(',')
        .map((k) => k.trim())
        .filter((k) => k.length > 0);
      if (items.some((k) => k.length < o.minLength)) return bad(`every ${o.item} must be at least ${o.minLength} characters`);
      return ok(items);
    },
  };
}

/** Comma-separated `host:port` items (an IPv6 host in brackets), blanks around them dropped. */
export function hostPorts(o: Common & { default: readonly string[] }): Setting<readonly string[]> {
  return {
    ...o,
    type: 'list',
    range: 'comma-separated host:port',
    parse(raw) {
      const items = raw
        .split(',')
        .map((k) => k.trim())
        .filter((k) => k.length > 0);
      const wrong = items.find((k) => {
        const m = /^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.-]+):(\d{1,5})$/.exec(k);
        return m === null || Number(m[2]) < 1 || Number(m[2]) > 65535;
      });
      if (wrong !== undefined) return bad(`must be host:port items separated by commas ('${wrong}' is not)`);
      return ok(items);
    },
  };
}

/** One of `values`; the value's type is their union. */
export function oneOf<const V extends string>(o: Common & { values: readonly V[]; default: NoInfer<V> }): Setting<V> {
  const allowed: readonly string[] = o.values;
  const isValue = (raw: string): raw is V => allowed.includes(raw);
  return {
    ...o,
    type: 'enum',
    range: o.values.join(', '),
    parse: (raw) => (isValue(raw) ? ok(raw) : bad(`must be one of ${o.values.join(', ')}`)),
  };
}

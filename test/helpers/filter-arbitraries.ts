/**
 * fast-check generators of segment filters and recipient attributes that meet often: a few attribute
 * names, values drawn from small pools (so `eq` and `in` hit), numbers of every kind, ISO strings valid
 * and not (a 30th of February, offsets, fractions), JSON null, arrays and objects where scalars are
 * expected, and strings with quotes, backslashes and other characters SQL quoting must survive.
 */
import fc from 'fast-check';

export const ATTR_NAMES = ['country', 'plan', 'n', 'signup_at', 'a.b', "x'y"] as const;
const VALID_NAMES = ATTR_NAMES.filter((n) => /^[A-Za-z0-9_.-]+$/.test(n));

const pad = (n: number, w = 2): string => String(n).padStart(w, '0');

/** ISO-ish date strings: mostly valid, some not (day 29-31 of short months, month 13, bad offsets). */
export const isoString: fc.Arbitrary<string> = fc
  .record({
    year: fc.constantFrom(1, 999, 1900, 2000, 2024, 2025, 2026, 9999),
    month: fc.integer({ min: 1, max: 13 }),
    day: fc.integer({ min: 1, max: 31 }),
    time: fc.option(
      fc.record({
        sep: fc.constantFrom('T', ' '),
        h: fc.integer({ min: 0, max: 24 }),
        m: fc.integer({ min: 0, max: 59 }),
        s: fc.option(fc.integer({ min: 0, max: 59 })),
        frac: fc.option(fc.stringMatching(/^[0-9]{1,7}$/)),
        zone: fc.option(fc.constantFrom('Z', '+01:00', '-05:30', '+14:00', '-00:00', '+15:00', '+0100')),
      }),
    ),
  })
  .map(({ year, month, day, time }) => {
    let s = `${pad(year, 4)}-${pad(month)}-${pad(day)}`;
    if (time !== null) {
      s += `${time.sep}${pad(time.h)}:${pad(time.m)}`;
      if (time.s !== null) s += `:${pad(time.s)}${time.frac !== null ? `.${time.frac}` : ''}`;
      if (time.zone !== null) s += time.zone;
    }
    return s;
  });

const tricky = fc.constantFrom(
  '',
  'DE',
  'AT',
  'pro',
  '1',
  '0',
  '-1',
  '1.5',
  'true',
  'false',
  'null',
  '["DE"]',
  "o'k",
  "'; DROP TABLE t; --",
  'back\\slash',
  "\\'",
  '"q"',
  'ü',
  '日本',
  '😀',
  '$1',
);
const strings = fc.oneof(
  tricky,
  isoString,
  fc.string({ unit: 'binary', maxLength: 8 }).filter((s) => !s.includes('\u0000')),
);
const numbers = fc.oneof(
  fc.integer({ min: -3, max: 3 }),
  fc.constantFrom(0.1, 0.5, 1.5, -0, 1e21, -1e-7, 2 ** 53, Number.MAX_VALUE, Number.MIN_VALUE),
  fc.double({ noNaN: true, noDefaultInfinity: true }),
);
export const scalar: fc.Arbitrary<string | number | boolean> = fc.oneof(strings, numbers, fc.boolean());

/** An attribute's value as a recipient may have it. */
const attrValue = fc.oneof(
  { weight: 6, arbitrary: scalar },
  { weight: 1, arbitrary: fc.constant(null) },
  { weight: 1, arbitrary: fc.array(scalar, { maxLength: 2 }) },
  { weight: 1, arbitrary: fc.dictionary(fc.constantFrom(...VALID_NAMES), scalar, { maxKeys: 2 }) },
);

/** A recipient's attrs: an object over the few names, or NULL. */
export const attrs: fc.Arbitrary<Record<string, unknown> | null> = fc.option(
  fc.dictionary(fc.constantFrom(...VALID_NAMES), attrValue, { maxKeys: VALID_NAMES.length }),
  { freq: 8 },
);

const attr = fc.constantFrom(...VALID_NAMES);
const bound = fc.oneof(
  numbers,
  isoString.filter((s) => /^\d{4}-\d\d-\d\d/.test(s)),
);

/** A filter as the API takes it (JSON); some have bounds the validator refuses (fine for property tests that validate). */
export const filterJson: fc.Arbitrary<unknown> = fc.letrec<{ filter: unknown; leaf: unknown }>((tie) => ({
  leaf: fc.oneof(
    fc.record({ attr, exists: fc.boolean() }),
    fc.record({ attr, eq: scalar }),
    fc.record({ attr, ne: scalar }),
    fc.record({ attr, in: fc.array(scalar, { minLength: 1, maxLength: 4 }) }),
    fc.record({ attr, lt: bound }),
    fc.record({ attr, lte: bound }),
    fc.record({ attr, gt: bound }),
    fc.record({ attr, gte: bound }),
  ),
  filter: fc.oneof(
    { depthSize: 'small', maxDepth: 5, withCrossShrink: true },
    tie('leaf'),
    fc.record({ and: fc.array(tie('filter'), { minLength: 1, maxLength: 3 }) }),
    fc.record({ or: fc.array(tie('filter'), { minLength: 1, maxLength: 3 }) }),
    fc.record({ not: tie('filter') }),
  ),
})).filter;

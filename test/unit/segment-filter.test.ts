/**
 * The segment filter's validator and compiler, without services: the paths bad input is named by, the
 * limits, ISO instants to the microsecond, the SQL shapes the indexes need, and literal quoting (the
 * compiled SQL meets PostgreSQL in test/integration/segment-filter.test.ts).
 */
import fc from 'fast-check';
import pg from 'pg';
import { describe, expect, it } from 'vitest';
import { HeraldError } from '../../src/errors.js';
import {
  filterJson,
  MAX_FILTER_DEPTH,
  MAX_FILTER_NODES,
  MAX_IN_VALUES,
  parseIsoInstant,
  validateFilter,
  type FilterNode,
} from '../../src/domain/segment-filter.js';
import { attrKeySql, compileFilter, indexedLeads, MAX_INDEXED_VALUES, sqlLiteral } from '../../src/domain/segment-sql.js';
import { validateCreateCampaign, validateCreateSegment } from '../../src/domain/campaign-input.js';
import { matches } from '../helpers/filter-reference.js';
import { ATTR_NAMES, attrs as anyAttrs, filterJson as anyFilter, scalar } from '../helpers/filter-arbitraries.js';

function fields(raw: unknown): Array<{ field: string; error: string }> {
  try {
    validateFilter(raw);
    return [];
  } catch (err) {
    if (!(err instanceof HeraldError)) throw err;
    return (
      (err.details.fields as Array<{ field: string; error: string }> | undefined) ?? [
        { field: err.details.field as string, error: err.message },
      ]
    );
  }
}

const names = (raw: unknown): string[] => fields(raw).map((f) => f.field);

function nest(depth: number): unknown {
  let f: unknown = { attr: 'a', eq: 1 };
  for (let i = 1; i < depth; i++) f = { not: f };
  return f;
}

describe('validation names the path of every bad part', () => {
  it('the issue example is valid and comes back as given', () => {
    const raw = {
      and: [
        { attr: 'country', in: ['DE', 'AT'] },
        { attr: 'plan', eq: 'pro' },
        { attr: 'signup_at', gte: '2026-01-01' },
      ],
    };
    expect(filterJson(validateFilter(raw))).toEqual(raw);
  });

  it('paths into and / or / not, attr names, operators and values', () => {
    expect(
      names({
        and: [
          { attr: 'country', eq: 'DE' },
          { attr: "x'y", eq: 1 },
        ],
      }),
    ).toEqual(['filter.and[1].attr']);
    expect(names({ or: [{ not: { attr: 'a', in: [] } }] })).toEqual(['filter.or[0].not.in']);
    expect(names({ attr: 'a', in: ['x', { y: 1 }] })).toEqual(['filter.in[1]']);
    expect(names({ attr: 'a', gte: 'yesterday' })).toEqual(['filter.gte']);
    expect(names({ attr: 'a', lt: '2026-02-30' })).toEqual(['filter.lt']);
    expect(names({ attr: 'a', like: 'x%' })).toEqual(['filter.like']);
    expect(names({ attr: 'a', eq: 1, ne: 2 })).toEqual(['filter']);
    expect(names({ attr: 'a' })).toEqual(['filter']);
    expect(names({ attr: 'a', exists: 'yes' })).toEqual(['filter.exists']);
    expect(names({ attr: 'a', eq: null })).toEqual(['filter.eq']);
    expect(names({ attr: 'a', eq: 'nul\u0000' })).toEqual(['filter.eq']);
    expect(names({ and: [] })).toEqual(['filter.and']);
    expect(names({ and: [{ attr: 'a', eq: 1 }], or: [] })).toEqual(['filter']);
    expect(names([{ attr: 'a', eq: 1 }])).toEqual(['filter']);
    expect(names('country = DE')).toEqual(['filter']);
    // every error, not just the first
    expect(
      names({
        and: [
          { attr: '', eq: 1 },
          { attr: 'b', gt: true },
        ],
      }),
    ).toEqual(['filter.and[0].attr', 'filter.and[1].gt']);
  });

  it('limits depth, size and in-values', () => {
    expect(names(nest(MAX_FILTER_DEPTH))).toEqual([]);
    expect(names(nest(MAX_FILTER_DEPTH + 1))[0]).toMatch(/^filter(\.not)+$/);
    const wide = { or: Array.from({ length: MAX_FILTER_NODES }, () => ({ attr: 'a', eq: 1 })) };
    expect(names(wide)).toEqual([`filter.or[${MAX_FILTER_NODES - 1}]`]);
    expect(names({ attr: 'a', in: Array.from({ length: MAX_IN_VALUES }, (_, i) => i) })).toEqual([]);
    expect(names({ attr: 'a', in: Array.from({ length: MAX_IN_VALUES + 1 }, (_, i) => i) })).toEqual(['filter.in']);
    const split = { or: [0, 1].map(() => ({ attr: 'a', in: Array.from({ length: MAX_IN_VALUES / 2 + 1 }, (_, i) => i) })) };
    expect(names(split)).toEqual(['filter.or[1].in']);
    expect(names({ attr: 'a', eq: 'x'.repeat(1001) })).toEqual(['filter.eq']);
  });

  it('campaigns take segment_id or filter, not both; segments need a filter', () => {
    const campaign = { name: 'n', audience_id: 1, channel: { type: 'null' }, content: { title: 't', body: 'b' } };
    expect(validateCreateCampaign({ ...campaign, segment_id: 3 })).toMatchObject({ segmentId: 3, filter: null });
    expect(validateCreateCampaign({ ...campaign, filter: { attr: 'a', eq: 1 } }).filter).toEqual({ kind: 'eq', attr: 'a', value: 1 });
    expect(() => validateCreateCampaign({ ...campaign, segment_id: 3, filter: { attr: 'a', eq: 1 } })).toThrow(/^filter: /);
    expect(() =>
      validateCreateCampaign({
        ...campaign,
        filter: {
          and: [
            { attr: 'a', eq: 1 },
            { attr: '!', eq: 1 },
          ],
        },
      }),
    ).toThrow(/^filter\.and\[1\]\.attr: /);
    expect(() => validateCreateSegment({ name: 's', audience_id: 1 })).toThrow(/^filter: /);
    expect(validateCreateSegment({ name: 's', audience_id: 1, filter: { attr: 'a', exists: true } }).audienceId).toBe(1);
  });
});

describe('ISO instants', () => {
  it('reads dates and date-times to the microsecond; no offset is UTC', () => {
    const us = (s: string): bigint | undefined => parseIsoInstant(s)?.micros;
    const ms = (s: string): bigint => BigInt(Date.parse(s)) * 1000n;
    expect(us('2026-01-01')).toBe(ms('2026-01-01T00:00:00Z'));
    expect(us('2026-01-01T10:00')).toBe(ms('2026-01-01T10:00:00Z'));
    expect(us('2026-01-01 10:00:00+01:00')).toBe(ms('2026-01-01T09:00:00Z'));
    expect(us('2026-01-01T10:00:00.123456-05:30')).toBe(ms('2026-01-01T15:30:00Z') + 123456n);
    expect(us('0001-01-01')).toBe(ms('0001-01-01T00:00:00Z'));
    expect(us('2024-02-29')).toBeDefined();
    for (const bad of [
      '2025-02-29',
      '1900-02-29',
      '2026-04-31',
      '2026-13-01',
      '0000-01-01',
      '2026-1-1',
      '2026-01-01T24:00',
      '2026-01-01Z',
      '2026-01-01T10:00+15:00',
      '2026-01-01T10:00:00.1234567',
      ' 2026-01-01',
    ])
      expect(parseIsoInstant(bad), bad).toBeNull();
  });
});

describe('compiling', () => {
  const compile = (raw: unknown, values: 'bind' | 'inline' = 'bind') => compileFilter(validateFilter(raw), { values });

  it('eq and in are containment (the GIN index), with values bound', () => {
    expect(compile({ attr: 'country', eq: 'DE' })).toEqual({ sql: `(attrs @> $1::jsonb)`, params: ['{"country":"DE"}'] });
    expect(compile({ attr: 'country', in: ['DE', 'AT'] })).toEqual({
      sql: `(attrs @> ANY ($1::jsonb[]))`,
      params: [['{"country":"DE"}', '{"country":"AT"}']],
    });
  });

  it('scan: string eq / in compare the text, other values stay containment', () => {
    const c = compileFilter(validateFilter({ attr: 'country', in: ['DE', 1] }), { values: 'inline', use: 'scan' });
    const two = compileFilter(validateFilter({ attr: 'country', in: ['DE', 'AT'] }), { values: 'bind', use: 'scan' });
    expect(two).toEqual({
      sql: `((attrs ->> 'country') COLLATE "C" = ANY ($1::text[]) AND jsonb_typeof((attrs -> 'country')) = 'string')`,
      params: [['DE', 'AT']],
    });
    expect(c.sql).toBe(
      `(((attrs ->> 'country') COLLATE "C" = 'DE'::text AND jsonb_typeof((attrs -> 'country')) = 'string') OR (attrs @> ANY (ARRAY['{"country":1}']::jsonb[])))`,
    );
  });

  it('pushes not down to the conditions and makes each negated one two-valued', () => {
    const c = compile({ not: { and: [{ attr: 'a', eq: 1 }, { or: [{ attr: 'b', lt: 2 }, { not: { attr: 'c', exists: true } }] }] } });
    expect(c.sql).toBe(
      `((NOT COALESCE((attrs @> $1::jsonb), false)) OR ((NOT COALESCE(((CASE WHEN jsonb_typeof((attrs -> 'b')) = 'number' THEN (attrs -> 'b')::numeric END) < $2::numeric), false)) AND (jsonb_typeof((attrs -> 'c')) <> 'null')))`,
    );
    expect(c.params).toEqual(['{"a":1}', '2']);
  });

  it('inline: the same expression with every value a quoted literal, and no placeholder', () => {
    const raw = {
      and: [
        { attr: 'a', eq: "it's \\ x" },
        { attr: 'a', in: ["'", '\\'] },
        { attr: 'd', gte: '2026-01-01' },
      ],
    };
    const c = compile(raw, 'inline');
    expect(c.params).toEqual([]);
    expect(c.sql).not.toMatch(/\$\d/);
    expect(c.sql).toContain(String.raw`E'{"a":"it''s \\\\ x"}'::jsonb`);
    expect(c.sql).toContain(`'2026-01-01T00:00:00.000000+00:00'::timestamptz`);
  });

  it('quotes literals as pg (libpq) does, for any string without NUL', () => {
    fc.assert(
      fc.property(
        fc.string({ unit: 'binary' }).filter((s) => !s.includes('\u0000')),
        (s) => sqlLiteral(s) === pg.escapeLiteral(s),
      ),
    );
    expect(() => sqlLiteral('a\u0000')).toThrow(RangeError);
  });

  it('a filter, its JSON and its validation of that JSON are the same filter', () => {
    fc.assert(
      fc.property(anyFilter, (raw) => {
        let f: FilterNode;
        try {
          f = validateFilter(raw);
        } catch {
          return true;
        }
        expect(validateFilter(filterJson(f))).toEqual(f);
        return true;
      }),
    );
  });

  it('the reference: not is the complement, and ne is not-eq among recipients that have the attribute', () => {
    expect(matches(validateFilter({ attr: 'plan', ne: 'pro' }), {})).toBe(false);
    expect(matches(validateFilter({ not: { attr: 'plan', eq: 'pro' } }), {})).toBe(true);
    expect(matches(validateFilter({ attr: 'plan', ne: 'pro' }), { plan: null })).toBe(false);
    expect(matches(validateFilter({ attr: 'n', eq: 1 }), { n: '1' })).toBe(false);
    expect(matches(validateFilter({ attr: 'n', gt: 0 }), { n: '1' })).toBe(false);
    expect(matches(validateFilter({ attr: 'at', gt: '2026-01-01' }), { at: '2026-01-01T00:00:00.000001Z' })).toBe(true);
    expect(matches(validateFilter({ attr: 'at', gt: '2026-01-01' }), { at: 20260102 })).toBe(false);
    expect(matches(validateFilter({ attr: 'tag', eq: 'x' }), { tag: ['x'] })).toBe(false);
  });
});

/** Filters with a string `in` first (values drawn from the attrs' own), so most have a lead. */
const leadFirst = fc
  .tuple(fc.constantFrom(...ATTR_NAMES), fc.array(scalar, { minLength: 1, maxLength: 4 }), anyFilter, fc.boolean())
  .map(([attr, values, other, alone]) => (alone ? { attr, in: values } : { and: [{ attr, in: values }, other] }));

describe('indexed leads (the string eq / in an attribute index serves)', () => {
  it('finds the filter itself or the children of a top-level and, fewest values first, distinct values', () => {
    expect(indexedLeads(validateFilter({ attr: 'plan', eq: 'pro' }))).toEqual([{ attr: 'plan', values: ['pro'], rest: null }]);
    const f = validateFilter({
      and: [
        { attr: 'country', in: ['DE', 'AT', 'DE'] },
        { attr: 'plan', eq: 'pro' },
        { attr: 'n', gt: 3 },
      ],
    });
    const leads = indexedLeads(f);
    expect(leads.map((l) => [l.attr, l.values])).toEqual([
      ['plan', ['pro']],
      ['country', ['DE', 'AT']],
    ]);
    expect(filterJson(leads[0]!.rest!)).toEqual({
      and: [
        { attr: 'country', in: ['DE', 'AT', 'DE'] },
        { attr: 'n', gt: 3 },
      ],
    });
    expect(indexedLeads(validateFilter({ and: [{ attr: 'plan', eq: 'pro' }] }))[0]!.rest).toBeNull();
  });

  it('has none for or, not, numbers, booleans, mixed lists and long lists', () => {
    for (const raw of [
      { or: [{ attr: 'plan', eq: 'pro' }] },
      { not: { attr: 'plan', eq: 'pro' } },
      { attr: 'n', eq: 3 },
      { attr: 'b', eq: true },
      { attr: 'c', in: ['DE', 5] },
      { attr: 'c', in: Array.from({ length: MAX_INDEXED_VALUES + 1 }, (_, i) => `v${i}`) },
      {
        and: [
          { attr: 'n', lt: 3 },
          { attr: 'plan', ne: 'pro' },
        ],
      },
    ])
      expect(indexedLeads(validateFilter(raw))).toEqual([]);
    expect(indexedLeads(validateFilter({ attr: 'c', in: Array.from({ length: MAX_INDEXED_VALUES }, (_, i) => `v${i}`) }))).toHaveLength(1);
  });

  it('selects exactly what the filter does: the attribute a string among the values, and the rest (property)', () => {
    fc.assert(
      fc.property(leadFirst, fc.array(anyAttrs, { minLength: 1, maxLength: 20 }), (raw, rows) => {
        let f: FilterNode;
        try {
          f = validateFilter(raw);
        } catch {
          return;
        }
        for (const lead of indexedLeads(f))
          for (const a of rows) {
            const v = a === null || typeof a !== 'object' ? undefined : (a as Record<string, unknown>)[lead.attr];
            const viaLead = typeof v === 'string' && lead.values.includes(v) && (lead.rest === null || matches(lead.rest, a));
            expect(viaLead).toBe(matches(f, a));
          }
      }),
      { numRuns: 2000 },
    );
  });

  it('keys the index on the string text in byte order, NULL for any other type', () => {
    expect(attrKeySql("x'y")).toBe(`((CASE WHEN jsonb_typeof(attrs -> 'x''y') = 'string' THEN attrs ->> 'x''y' END) COLLATE "C")`);
  });
});

/**
 * The compiled filter against the JavaScript reference (test/helpers/filter-reference.ts), on the real
 * PostgreSQL: random filters over random recipients' attrs select exactly the rows the reference
 * selects, with values bound and with values inlined as literals (the form COPY takes), in the form that
 * finds rows through the GIN index and in the one that tests rows read in key order, and strings
 * built to break out of a literal stay values.
 */
import fc from 'fast-check';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { validateFilter, type FilterNode } from '../../src/domain/segment-filter.js';
import { compileFilter } from '../../src/domain/segment-sql.js';
import { createNamespace, type Namespace } from '../helpers/herald.js';
import { matches } from '../helpers/filter-reference.js';
import { attrs as anyAttrs, filterJson, isoString } from '../helpers/filter-arbitraries.js';

let ns: Namespace;
let client: pg.Client;
const ROWS = fc.sample(anyAttrs, { numRuns: 400, seed: 16 });

beforeAll(async () => {
  ns = await createNamespace();
  client = new pg.Client({ connectionString: ns.config.databaseUrl });
  await client.connect();
  // A time zone far from UTC: instants without an offset are UTC whatever the session says.
  await client.query(`SET TimeZone = 'Pacific/Kiritimati'`);
  await client.query('CREATE TABLE t (id int PRIMARY KEY, attrs jsonb)');
  await client.query('INSERT INTO t SELECT i, a FROM unnest($1::int[], $2::jsonb[]) AS u(i, a)', [
    ROWS.map((_, i) => i),
    ROWS.map((a) => (a === null ? null : JSON.stringify(a))),
  ]);
});

afterAll(async () => {
  await client?.end();
  await ns?.drop();
});

async function selected(f: FilterNode, values: 'bind' | 'inline', use: 'index' | 'scan' = 'index'): Promise<number[]> {
  const c = compileFilter(f, { values, use });
  const r = await client.query<{ id: number }>(`SELECT id FROM t WHERE ${c.sql} ORDER BY id`, c.params);
  return r.rows.map((row) => row.id);
}

const expected = (f: FilterNode): number[] => ROWS.flatMap((a, i) => (matches(f, a) ? [i] : []));

describe('compiled filters select what the reference selects', () => {
  it('random filters over random attrs, values bound and inlined, in the index and the scan forms', async () => {
    let nonTrivial = 0;
    await fc.assert(
      fc.asyncProperty(filterJson, async (raw) => {
        let f: FilterNode;
        try {
          f = validateFilter(raw);
        } catch {
          return;
        }
        const want = expected(f);
        if (want.length > 0 && want.length < ROWS.length) nonTrivial++;
        expect(await selected(f, 'bind')).toEqual(want);
        expect(await selected(f, 'inline')).toEqual(want);
        expect(await selected(f, 'inline', 'scan')).toEqual(want);
        expect(await selected(f, 'bind', 'scan')).toEqual(want);
      }),
      { numRuns: 600, seed: 16 },
    );
    // The generators meet often enough for the comparison to mean something.
    expect(nonTrivial).toBeGreaterThan(150);
  });

  it('herald_attr_instant reads exactly the strings the validator reads, to the microsecond', async () => {
    const strings = [...new Set(fc.sample(isoString, { numRuns: 2000, seed: 7 }))];
    const r = await client.query<{ s: string; us: string | null }>(
      `SELECT s, (extract(epoch FROM herald_attr_instant(to_jsonb(s))) * 1000000)::bigint::text AS us FROM unnest($1::text[]) s`,
      [strings],
    );
    const { parseIsoInstant } = await import('../../src/domain/segment-filter.js');
    let valid = 0;
    for (const row of r.rows) {
      const js = parseIsoInstant(row.s);
      if (js !== null) valid++;
      expect(row.us, row.s).toBe(js === null ? null : js.micros.toString());
    }
    expect(valid).toBeGreaterThan(strings.length / 4);
    expect(valid).toBeLessThan(strings.length);
  });

  it('a value built to break out of its literal stays a value', async () => {
    const attacks = [
      "'); DROP TABLE t; --",
      "\\'); DROP TABLE t; --",
      "'||(SELECT 1/0)||'",
      '$1',
      "E'\\\\'",
      '"}\'::jsonb OR true OR \'{"',
    ];
    await client.query('INSERT INTO t VALUES (100000, $1)', [JSON.stringify({ plan: attacks[0] })]);
    for (const a of attacks) {
      for (const raw of [
        { attr: 'plan', eq: a },
        { attr: 'plan', in: [a, 'x'] },
        { attr: 'plan', ne: a },
      ]) {
        const f = validateFilter(raw);
        const want = raw.eq === attacks[0] || (raw.in !== undefined && a === attacks[0]) ? [100000] : undefined;
        const got = await selected(f, 'inline');
        expect(got).toEqual(await selected(f, 'bind'));
        expect(await selected(f, 'inline', 'scan')).toEqual(got);
        if (want !== undefined) expect(got).toEqual(want);
      }
    }
    const n = await client.query('SELECT count(*)::int AS n FROM t');
    expect(n.rows[0].n).toBe(ROWS.length + 1);
  });
});

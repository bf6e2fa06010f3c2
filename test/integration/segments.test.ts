/**
 * Segments through the public API on the real services: a 100,000-recipient audience with attributes,
 * exact counts (kept, and extended after an import), campaigns sent to a segment and to an inline filter
 * with exactly the selected recipients in ClickHouse, bad filters named by path, a segment of another
 * audience refused, and the plans PostgreSQL picks: the attrs index for counts, the primary key's order
 * for the planner's pages.
 */
import { describe, expect, it } from 'vitest';
import { validateFilter, type FilterNode } from '../../src/domain/segment-filter.js';
import { compileFilter, indexedLeads } from '../../src/domain/segment-sql.js';
import { AttrIndexes, attrIndexName } from '../../src/store/attr-index.js';
import { createDb } from '../../src/store/db.js';
import { SegmentRepo } from '../../src/store/segment-repo.js';
import { boundsSql, pageSql, RecipientReader, tailSql } from '../../src/store/recipient-reader.js';
import type { ChunkBound } from '../../src/domain/chunk.js';
import { eventually, useHerald, type Api } from '../helpers/herald.js';
import { matches } from '../helpers/filter-reference.js';

const ctx = useHerald();
const NDJSON = { 'content-type': 'application/x-ndjson' };
const COUNTRIES = ['DE', 'AT', 'FR', 'US', 'BR', 'IN', 'PL', 'ES', 'IT', 'NL'];
const N = 100_000;

/** Recipient i's attrs (deterministic): most have all four, some none, some odd types. */
function attrsOf(i: number): Record<string, unknown> | undefined {
  if (i % 97 === 0) return undefined;
  const day = (i * 7919) % 700;
  const a: Record<string, unknown> = {
    country: COUNTRIES[(i * 31) % 10],
    plan: i % 3 === 0 ? 'pro' : 'free',
    age: (i * 13) % 90,
    signup_at: new Date(Date.UTC(2025, 0, 1) + day * 86_400_000).toISOString().slice(0, i % 2 === 0 ? 10 : 19),
  };
  if (i % 101 === 0) a.plan = null;
  if (i % 103 === 0) a.age = String(a.age);
  if (i % 107 === 0) a.signup_at = 'soon';
  return a;
}

function lines(from: number, to: number): string {
  const out: string[] = [];
  for (let i = from; i <= to; i++) {
    const a = attrsOf(i);
    out.push(JSON.stringify(a === undefined ? { user_id: `u${i}` } : { user_id: `u${i}`, attrs: a }));
  }
  return out.join('\n');
}

function expectedUsers(filter: unknown, to: number): string[] {
  const f = validateFilter(filter);
  const out: string[] = [];
  for (let i = 1; i <= to; i++) if (matches(f, attrsOf(i))) out.push(`u${i}`);
  return out;
}

async function importLines(api: Api, audienceId: number, from: number, to: number): Promise<void> {
  const r = await api.importRecipients(audienceId, lines(from, to), NDJSON);
  expect(r.status).toBe(200);
  expect(r.body.imported).toBe(to - from + 1);
}

const ISSUE_FILTER = {
  and: [
    { attr: 'country', in: ['DE', 'AT', 'FR'] },
    { attr: 'plan', eq: 'pro' },
    { attr: 'signup_at', gte: '2025-06-01' },
  ],
};

/**
 * A pool whose clients note every page COPY they send (to see which way the reader read) and the
 * parameters of every segment count that reads recipients.
 */
function pageSpy(): { db: ReturnType<typeof createDb>; pages: string[]; scans: unknown[][] } {
  const db = createDb(ctx.herald.config.databaseUrl, 4);
  const pages: string[] = [];
  const scans: unknown[][] = [];
  const spy = (client: { query: unknown }): void => {
    const query = (client.query as (...a: unknown[]) => unknown).bind(client);
    client.query = (...a: unknown[]) => {
      const text = typeof a[0] === 'string' ? a[0] : (a[0] as { text?: unknown } | null)?.text;
      if (typeof text === 'string' && text.startsWith('COPY (')) pages.push(text);
      if (typeof text === 'string' && text.startsWith('SELECT count(*) AS n FROM recipients')) scans.push(a[1] as unknown[]);
      return query(...a);
    };
  };
  db.on('connect', spy);
  return { db, pages, scans };
}

/** Every bound of a plan read a page of `q.limit` at a time, its rows numbered across the pages. */
async function planBounds<Q extends { afterId: number; limit: number }>(
  bounds: (q: Q) => Promise<ChunkBound[]>,
  q: Q,
): Promise<ChunkBound[]> {
  const out: ChunkBound[] = [];
  for (let after = q.afterId, rows = 0; ;) {
    const page = await bounds({ ...q, afterId: after });
    out.push(...page.map((b) => ({ lastId: b.lastId, row: rows + b.row })));
    const last = page.at(-1);
    if (last === undefined || last.row < q.limit) return out;
    after = last.lastId;
    rows += last.row;
  }
}

/** Every id a reader's pages give for `q`, in order. */
async function readerIds(reader: RecipientReader, q: Parameters<RecipientReader['page']>[0]): Promise<number[]> {
  const ids: number[] = [];
  for (let after = 0; ;) {
    const page = await reader.page({ ...q, afterId: after });
    ids.push(...page.ids);
    if (page.ids.length < q.limit) return ids;
    after = page.ids[page.ids.length - 1]!;
  }
}

async function sentUsers(campaignId: number): Promise<string[]> {
  const rows = await ctx.herald.ch.rows<{ user_id: string }>(
    `SELECT user_id FROM message_events WHERE campaign_id = ${campaignId} AND kind = 'delivered'`,
  );
  return rows.map((r) => r.user_id).sort();
}

describe('segments', () => {
  let audienceId = 0;

  it('creates a segment, reads it back and counts it exactly; the count is kept and extended after an import', async () => {
    const { api } = ctx;
    audienceId = (await api.call('POST', '/v1/audiences', { name: 'segments' })).body.id;
    await importLines(api, audienceId, 1, N);
    const created = await api.call('POST', '/v1/segments', { name: 'dach pro', audience_id: audienceId, filter: ISSUE_FILTER });
    expect(created.status).toBe(201);
    expect(created.body).toMatchObject({ name: 'dach pro', audience_id: audienceId, filter: ISSUE_FILTER });
    const id = created.body.id as number;
    const got = await api.call('GET', `/v1/segments/${id}`);
    expect(got.status).toBe(200);
    // With the attribute index its campaigns plan from (built in the background after the first count).
    expect(got.body).toEqual({ ...created.body, index: { attr: 'plan', state: expect.stringMatching(/^(none|building|ready)$/) } });

    const want = expectedUsers(ISSUE_FILTER, N).length;
    expect(want).toBeGreaterThan(5000);
    const count = await api.call('GET', `/v1/segments/${id}/count`);
    expect(count.status).toBe(200);
    expect(count.body).toMatchObject({ segment_id: id, audience_id: audienceId, count: want, max_id: N });
    const again = await api.call('GET', `/v1/segments/${id}/count`);
    expect(again.body).toEqual({ ...count.body, cached: true });

    await importLines(api, audienceId, N + 1, N + 1000);
    const grown = await api.call('GET', `/v1/segments/${id}/count`);
    expect(grown.body).toMatchObject({ count: expectedUsers(ISSUE_FILTER, N + 1000).length, max_id: N + 1000, cached: false });
    expect((await api.call('GET', '/v1/segments/999999/count')).status).toBe(404);
    expect((await api.call('GET', '/v1/segments/999999')).status).toBe(404);
  });

  it('answers 400 naming the path of a bad filter, and the audience of a segment', async () => {
    const { api } = ctx;
    const bad = await api.call('POST', '/v1/segments', {
      name: 'bad',
      audience_id: audienceId,
      filter: {
        and: [
          { attr: 'country', eq: 'DE' },
          { attr: 'pl an', eq: 'pro' },
        ],
      },
    });
    expect(bad.status).toBe(400);
    expect(bad.body.field).toBe('filter.and[1].attr');
    const deep = await api.call('POST', '/v1/segments', {
      name: 'deep',
      audience_id: audienceId,
      filter: JSON.parse(`${'{"not":'.repeat(20)}{"attr":"a","exists":true}${'}'.repeat(20)}`),
    });
    expect(deep.status).toBe(400);
    expect(deep.body.field).toMatch(/^filter(\.not)+$/);
    const noAudience = await api.call('POST', '/v1/segments', { name: 'x', audience_id: 999999, filter: { attr: 'a', exists: true } });
    expect(noAudience.status).toBe(400);
    expect(noAudience.body.field).toBe('audience_id');
  });

  it('lists, renames, refilters and deletes segments; a campaign made before keeps its filter', async () => {
    const { api } = ctx;
    const first = (await api.call('POST', '/v1/segments', { name: 'de', audience_id: audienceId, filter: { attr: 'country', eq: 'DE' } }))
      .body;
    const second = (await api.call('POST', '/v1/segments', { name: 'pro', audience_id: audienceId, filter: { attr: 'plan', eq: 'pro' } }))
      .body;
    const listed = await api.call('GET', `/v1/segments?audience_id=${audienceId}&limit=1`);
    expect(listed.status).toBe(200);
    expect(listed.body.items.map((s: any) => s.id)).toEqual([second.id]);
    const rest = await api.call('GET', `/v1/segments?audience_id=${audienceId}&limit=500&before=${listed.body.next_before}`);
    expect(rest.body.items.map((s: any) => s.id)).toContain(first.id);
    expect((await api.call('GET', '/v1/segments?limit=0')).body.field).toBe('limit');
    expect((await api.call('GET', '/v1/segments?audience_id=x')).body.field).toBe('audience_id');

    const de = (await api.call('GET', `/v1/segments/${first.id}/count`)).body.count;
    expect(de).toBe(expectedUsers({ attr: 'country', eq: 'DE' }, N + 1000).length);
    // A campaign made now keeps DE whatever the segment becomes.
    const campaignId = await api.nullCampaign(audienceId, { segment_id: first.id });

    const renamed = await api.call('PATCH', `/v1/segments/${first.id}`, { name: 'germany' });
    expect(renamed.status).toBe(200);
    expect(renamed.body).toMatchObject({ name: 'germany', filter: { attr: 'country', eq: 'DE' } });
    expect(renamed.body.updated_at).not.toBeNull();
    expect((await api.call('GET', `/v1/segments/${first.id}/count`)).body).toMatchObject({ count: de, cached: true });

    const at = { attr: 'country', eq: 'AT' };
    const refiltered = await api.call('PATCH', `/v1/segments/${first.id}`, { filter: at });
    expect(refiltered.body.filter).toEqual(at);
    // The kept count was the old filter's: the next count is the new filter's, exactly.
    const atCount = await api.call('GET', `/v1/segments/${first.id}/count`);
    expect(atCount.body.count).toBe(expectedUsers(at, N + 1000).length);

    const bad = await api.call('PATCH', `/v1/segments/${first.id}`, { filter: { attr: 'country', in: [] }, audience_id: 2 });
    expect(bad.status).toBe(400);
    expect(bad.body.field).toBe('audience_id');
    expect((await api.call('PATCH', `/v1/segments/${first.id}`, {})).body.field).toBe('body');
    expect((await api.call('PATCH', `/v1/segments/${first.id}`, { filter: null })).body.field).toBe('filter');

    expect((await api.call('DELETE', `/v1/segments/${first.id}`)).status).toBe(204);
    expect((await api.call('DELETE', `/v1/segments/${first.id}`)).status).toBe(404);
    expect((await api.call('GET', `/v1/segments/${first.id}`)).status).toBe(404);
    expect((await api.call('PATCH', `/v1/segments/${first.id}`, { name: 'x' })).status).toBe(404);
    const after = await api.call('GET', `/v1/segments?audience_id=${audienceId}&limit=500`);
    expect(after.body.items.map((s: any) => s.id)).not.toContain(first.id);
    const refused = await api.call('POST', '/v1/campaigns', {
      name: 'from a deleted segment',
      audience_id: audienceId,
      segment_id: first.id,
      channel: { type: 'null' },
      content: { title: 't', body: 'b' },
    });
    expect(refused.status).toBe(400);
    expect(refused.body.field).toBe('segment_id');

    // The campaign made from it still sends to DE.
    await api.call('POST', `/v1/campaigns/${campaignId}/start`);
    const done = await api.waitForStatus(campaignId, ['completed']);
    expect(done.total).toBe(de);
    expect(await sentUsers(campaignId)).toEqual(expectedUsers({ attr: 'country', eq: 'DE' }, N + 1000).sort());
  });

  it('sends a campaign to exactly its segment; total is the segment size', async () => {
    const { api } = ctx;
    const seg = await api.call('POST', '/v1/segments', { name: 'dach pro 2', audience_id: audienceId, filter: ISSUE_FILTER });
    const other = (await api.call('POST', '/v1/audiences', { name: 'other' })).body.id as number;
    const wrong = await api.call('POST', '/v1/campaigns', {
      name: 'wrong audience',
      audience_id: other,
      segment_id: seg.body.id,
      channel: { type: 'null' },
      content: { title: 't', body: 'b' },
    });
    expect(wrong.status).toBe(400);
    expect(wrong.body.field).toBe('segment_id');

    const id = await api.nullCampaign(audienceId, { segment_id: seg.body.id, chunk_size: 500 });
    const view = await api.call('GET', `/v1/campaigns/${id}`);
    expect(view.body).toMatchObject({ segment_id: seg.body.id, filter: ISSUE_FILTER });
    expect((await api.call('POST', `/v1/campaigns/${id}/start`)).status).toBe(200);
    const done = await api.waitForStatus(id, ['completed', 'failed']);
    const want = expectedUsers(ISSUE_FILTER, N + 1000);
    expect(done).toMatchObject({ status: 'completed', total: want.length, delivered: want.length, failed: 0 });
    expect(done.planned_chunks).toBe(Math.ceil(want.length / 500));
    expect(await sentUsers(id)).toEqual([...want].sort());
  });

  it('sends to an inline filter (or, not, ne, numbers), and to a filter nobody matches', async () => {
    const { api } = ctx;
    const filter = {
      or: [{ and: [{ attr: 'age', lt: 18 }, { not: { attr: 'country', in: ['US', 'BR'] } }] }, { attr: 'plan', ne: 'free' }],
    };
    const id = await api.nullCampaign(audienceId, { filter, chunk_size: 1000 });
    expect((await api.call('POST', `/v1/campaigns/${id}/start`)).status).toBe(200);
    const done = await api.waitForStatus(id, ['completed', 'failed']);
    const want = expectedUsers(filter, N + 1000);
    expect(done).toMatchObject({ status: 'completed', total: want.length, delivered: want.length, segment_id: null, filter });
    expect(await sentUsers(id)).toEqual([...want].sort());

    const none = await api.nullCampaign(audienceId, { filter: { attr: 'country', eq: 'XX' } });
    expect((await api.call('POST', `/v1/campaigns/${none}/start`)).status).toBe(200);
    expect(await api.waitForStatus(none, ['completed', 'failed'])).toMatchObject({ status: 'completed', total: 0, delivered: 0 });
  });

  it('an inbox campaign to a segment: only the selected users have it and may read it', async () => {
    const { api } = ctx;
    const id = await api.nullCampaign(audienceId, { channel: { type: 'inbox' }, filter: { attr: 'plan', eq: 'pro' } });
    expect((await api.call('POST', `/v1/campaigns/${id}/start`)).status).toBe(200);
    const done = await api.waitForStatus(id, ['completed', 'failed']);
    expect(done).toMatchObject({ status: 'completed', total: expectedUsers({ attr: 'plan', eq: 'pro' }, N + 1000).length });
    // u3: plan pro; u1: free
    const mine = await api.call('GET', '/v1/users/u3/inbox');
    expect(mine.body.messages.map((m: { campaign_id: number }) => m.campaign_id)).toContain(id);
    const theirs = await api.call('GET', '/v1/users/u1/inbox');
    expect(theirs.body.messages.map((m: { campaign_id: number }) => m.campaign_id)).not.toContain(id);
    expect((await api.call('POST', `/v1/users/u3/inbox/${id}/read`)).status).toBe(204);
    expect((await api.call('POST', `/v1/users/u1/inbox/${id}/read`)).status).toBe(404);
  });

  it("a campaign's total starts from its segment's kept count and adds the recipients imported since", async () => {
    const { api } = ctx;
    const a = (await api.call('POST', '/v1/audiences', { name: 'kept' })).body.id as number;
    await importLines(api, a, 1, 2000);
    const seg = (await api.call('POST', '/v1/segments', { name: 'kept', audience_id: a, filter: ISSUE_FILTER })).body.id as number;
    expect((await api.call('GET', `/v1/segments/${seg}/count`)).body).toMatchObject({
      count: expectedUsers(ISSUE_FILTER, 2000).length,
      max_id: 2000,
    });
    const r = await api.importRecipients(a, lines(2001, 2500), NDJSON);
    expect(r.body.imported).toBe(500);
    const id = await api.nullCampaign(a, { segment_id: seg });
    expect((await api.call('POST', `/v1/campaigns/${id}/start`)).status).toBe(200);
    const want = expectedUsers(ISSUE_FILTER, 2500);
    expect(await api.waitForStatus(id, ['completed', 'failed'])).toMatchObject({
      status: 'completed',
      total: want.length,
      delivered: want.length,
    });
  });

  it('counts use the attrs index; the planner pages read in primary-key order with no sort', async () => {
    const db = ctx.herald.db;
    const f = validateFilter({
      and: [
        { attr: 'country', in: ['DE', 'AT'] },
        { attr: 'plan', eq: 'pro' },
      ],
    });
    const c = compileFilter(f, { values: 'bind', firstParam: 2 });
    await db.query(`ANALYZE recipients_a${audienceId}`);
    const count = await db.query(`EXPLAIN SELECT count(*) FROM recipients WHERE audience_id = $1 AND ${c.sql}`, [audienceId, ...c.params]);
    const countPlan = count.rows.map((r) => r['QUERY PLAN'] as string).join('\n');
    expect(countPlan).toMatch(/Bitmap Index Scan on \S*attrs_idx/);
    const page = pageSql({
      audienceId,
      afterId: N / 2,
      maxId: N + 1000,
      limit: 32_000,
      withAddress: true,
      segmentBy: 'country',
      filter: f,
    });
    const select = page.replace(/^COPY \(/, '').replace(/\) TO STDOUT \(FORMAT binary\)$/, '');
    const pagePlan = (await db.query(`EXPLAIN ${select}`)).rows.map((r) => r['QUERY PLAN'] as string).join('\n');
    expect(pagePlan).toMatch(/Index Scan using \S*pkey/);
    expect(pagePlan).not.toMatch(/Sort|Bitmap/);
  });

  it('counts of one segment asked for at once share one scan', async () => {
    const db = createDb(ctx.herald.config.databaseUrl, 4);
    const scans: string[] = [];
    db.on('connect', (client) => {
      const query = client.query.bind(client) as (...a: unknown[]) => unknown;
      (client as unknown as { query: (...a: unknown[]) => unknown }).query = (...a: unknown[]) => {
        if (typeof a[0] === 'string' && a[0].startsWith('SELECT count(*) AS n FROM recipients')) scans.push(a[0]);
        return query(...a);
      };
    });
    try {
      const repo = new SegmentRepo(db);
      const filter = validateFilter({ attr: 'age', gte: 40 });
      const s = await repo.create({ name: 'at once', audienceId, filter });
      const counts = await Promise.all([repo.count(s.id), repo.count(s.id), repo.count(s.id)]);
      const want = expectedUsers({ attr: 'age', gte: 40 }, N + 1000).length;
      expect(counts.map((c) => c.count)).toEqual([want, want, want]);
      expect(scans).toHaveLength(1);
      expect(await repo.count(s.id)).toMatchObject({ count: want, cached: true });
      expect(scans).toHaveLength(1);
    } finally {
      await db.end();
    }
  });

  it('an attribute index: built once on demand (a cut-short build replaced); its page SQL means the scan pages, row for row, and the reader takes it', async () => {
    const db = ctx.herald.db;
    const { api } = ctx;
    const indexes = new AttrIndexes(db);
    // An attribute no segment here selects by, so that Herald's own builds (segments made above) stay
    // out of it. What a build cut short leaves: an invalid index of that name (a unique build that failed).
    const name = attrIndexName(audienceId, 'plan2');
    await expect(db.query(`CREATE UNIQUE INDEX CONCURRENTLY ${name} ON recipients_a${audienceId} ((attrs->>'plan'))`)).rejects.toThrow();
    // (the failed build's progress entry may outlive its error by a moment)
    expect(
      await eventually(
        () => indexes.state(audienceId, 'plan2'),
        (st) => st !== 'building',
        5_000,
      ),
    ).toBe('none');
    expect(await indexes.ensure(audienceId, 'plan2')).toBe('ready');
    const def = await db.query<{ def: string; valid: boolean }>(
      'SELECT pg_get_indexdef(indexrelid) AS def, indisvalid AS valid FROM pg_index WHERE indexrelid = to_regclass($1)',
      [name],
    );
    expect(def.rows[0]).toMatchObject({ valid: true });
    expect(def.rows[0]!.def).toMatch(/jsonb_typeof\(\(attrs -> 'plan2'::text\)\).*COLLATE "C", id\)$/s);
    expect(await indexes.ensure(audienceId, 'plan2')).toBe('ready');
    expect(await indexes.state(audienceId, 'plan2')).toBe('ready');
    // plan's, asked for by the first segment above: built by Herald, or here if not yet.
    expect(
      await eventually(
        () => indexes.ensure(audienceId, 'plan'),
        (st) => st === 'ready',
      ),
    ).toBe('ready');
    // A segment on country asks for its index; GET shows it once built.
    const seg = await api.call('POST', '/v1/segments', {
      name: 'by country',
      audience_id: audienceId,
      filter: { attr: 'country', in: ['DE', 'NL'] },
    });
    let shown: { attr: string; state: string } | null = null;
    for (let i = 0; i < 200 && shown?.state !== 'ready'; i++) {
      shown = (await api.call('GET', `/v1/segments/${seg.body.id}`)).body.index;
      await new Promise((r) => setTimeout(r, 50));
    }
    expect(shown).toEqual({ attr: 'country', state: 'ready' });
    expect(
      (
        await api.call(
          'GET',
          `/v1/segments/${(await api.call('POST', '/v1/segments', { name: 'or', audience_id: audienceId, filter: { or: [{ attr: 'plan', eq: 'pro' }] } })).body.id}`,
        )
      ).body.index,
    ).toBeNull();

    const { db: spied, pages } = pageSpy();
    const reader = new RecipientReader(spied);
    const filters = [
      { attr: 'plan', eq: 'pro' },
      { attr: 'country', in: ['DE', 'NL', 'DE', 'ZZ'] },
      ISSUE_FILTER,
      {
        and: [
          { attr: 'country', in: ['US'] },
          { not: { attr: 'age', lt: 30 } },
          {
            or: [
              { attr: 'plan', eq: 'free' },
              { attr: 'plan', exists: false },
            ],
          },
        ],
      },
      {
        and: [
          { attr: 'age', gte: 10 },
          { attr: 'plan', in: ['pro', 'free'] },
        ],
      },
      { attr: 'country', eq: 'nowhere' },
    ];
    for (const raw of filters) {
      const f = validateFilter(raw);
      const lead = indexedLeads(f)[0]!;
      expect(lead).toBeDefined();
      const q = {
        audienceId,
        afterId: 0,
        maxId: N + 1000,
        limit: 7_000,
        withAddress: true,
        segmentBy: 'country',
        attrs: ['plan'],
        filter: f,
      };
      const read = async (indexed: boolean): Promise<string[]> => {
        const out: string[] = [];
        for (let after = 0; ;) {
          const sql = pageSql({ ...q, afterId: after }, indexed ? lead : null);
          const r = await db.query(sql.replace(/^COPY \(/, '').replace(/\) TO STDOUT \(FORMAT binary\)$/, ''));
          for (const row of r.rows) out.push(JSON.stringify(row));
          if (r.rows.length < q.limit) return out;
          after = Number(r.rows[r.rows.length - 1].id);
        }
      };
      const [byIndex, byScan] = [await read(true), await read(false)];
      expect(byIndex).toEqual(byScan);
      expect(byIndex.map((r) => JSON.parse(r).user_id).sort()).toEqual(expectedUsers(raw, N + 1000).sort());
      // The reader takes the index path itself once the index is valid (its SQL says so), with the same ids.
      const before = pages.length;
      expect(await readerIds(reader, q)).toEqual(byScan.map((r) => Number(JSON.parse(r).id)));
      expect(pages.length).toBeGreaterThan(before);
      // (the index way reads the audience's partition by name; the scan reads `recipients`)
      expect(pages.slice(before).every((sql) => sql.includes(`FROM recipients_a${audienceId} WHERE`))).toBe(true);
      // A plan's bounds (the planner's ranges), both ways: every 250th of those ids, and the last one.
      const ids = byScan.map((r) => Number(JSON.parse(r).id));
      const want = ids.flatMap((id, i) => ((i + 1) % 250 === 0 || i === ids.length - 1 ? [{ lastId: id, row: i + 1 }] : []));
      const scanBounds = async (bq: typeof q, size: number): Promise<ChunkBound[]> => {
        const steps = (await db.query<{ id: string }>(boundsSql(bq, size))).rows.map((b, i) => ({
          lastId: Number(b.id),
          row: (i + 1) * size,
        }));
        if (steps.length === bq.limit / size) return steps;
        const t = (
          await db.query<{ n: number; last: string | null }>(tailSql({ ...bq, afterId: steps.at(-1)?.lastId ?? bq.afterId }, size))
        ).rows[0]!;
        return t.n === 0 ? steps : [...steps, { lastId: Number(t.last), row: steps.length * size + t.n }];
      };
      for (const bounds of [(bq: typeof q) => reader.bounds(bq, 250), (bq: typeof q) => scanBounds(bq, 250)])
        expect(await planBounds(bounds, { ...q, limit: 1_000 })).toEqual(want);
    }
    const f = validateFilter(ISSUE_FILTER);
    const lead = indexedLeads(f).find((l) => l.attr === 'country')!;
    const select = pageSql({ audienceId, afterId: N / 2, maxId: N + 1000, limit: 32_000, withAddress: false, filter: f }, lead)
      .replace(/^COPY \(/, '')
      .replace(/\) TO STDOUT \(FORMAT binary\)$/, '');
    const client = await db.connect();
    let plan: string;
    try {
      // As the reader runs a page from the index (recipient-reader.ts).
      await client.query('BEGIN');
      await client.query('SET LOCAL enable_bitmapscan = off; SET LOCAL enable_sort = off');
      plan = (await client.query(`EXPLAIN ${select}`)).rows.map((r) => r['QUERY PLAN'] as string).join('\n');
      await client.query('ROLLBACK');
    } finally {
      client.release();
    }
    expect(plan).toMatch(/Merge Append/);
    expect(plan.match(new RegExp(`Index Scan using ${attrIndexName(audienceId, 'country')}`, 'g'))).toHaveLength(3);
    expect(plan).not.toMatch(/(^|->\s+)Sort\s+\(|Seq Scan|Bitmap/m);
    await spied.end();
  });

  it('an attribute index keys only JSON strings: numbers, booleans, nulls, arrays and objects of the same text never match, through the reader either way', async () => {
    const { api } = ctx;
    const db = ctx.herald.db;
    const odd = (await api.call('POST', '/v1/audiences', { name: 'odd types' })).body.id as number;
    const kinds: unknown[] = [
      '5',
      5,
      5.0,
      '5.0',
      'true',
      true,
      'null',
      null,
      '[1]',
      [1],
      '{"a": 1}',
      { a: 1 },
      ['DE'],
      'DE',
      "a'b",
      'x\\y',
      '',
      'é',
      'E',
    ];
    const attrsAt = (i: number): Record<string, unknown> | undefined =>
      i % 23 === 0 ? undefined : i % 19 === 0 ? { other: 1 } : { k: kinds[i % kinds.length], n: i % 7 };
    const rows: string[] = [];
    for (let i = 1; i <= 3000; i++) {
      const a = attrsAt(i);
      rows.push(JSON.stringify(a === undefined ? { user_id: `o${i}` } : { user_id: `o${i}`, attrs: a }));
    }
    const more: string[] = rows.splice(3000 - 500);
    expect((await api.importRecipients(odd, rows.join('\n'), NDJSON)).status).toBe(200);
    const { db: spied, pages, scans } = pageSpy();
    const reader = new RecipientReader(spied);
    const repo = new SegmentRepo(spied);
    try {
      // A segment counted (and kept) by the scan, then recipients imported, then the attribute indexed
      // and counted: the recount starts from the counted values, which reach further than the kept count.
      const early = validateFilter({ attr: 'k', in: ['5', 'DE'] });
      const seg = await repo.create({ name: 'early', audienceId: odd, filter: early });
      const wantAt = (f: FilterNode, to: number): number =>
        Array.from({ length: to }, (_, i) => i + 1).filter((i) => matches(f, attrsAt(i))).length;
      expect((await repo.count(seg.id)).count).toBe(wantAt(early, 2500));
      expect(scans).toHaveLength(1);
      expect((await api.importRecipients(odd, more.join('\n'), NDJSON)).status).toBe(200);
      // The import has Herald build the index 'early' selects by (and count its values); those counts
      // go, so that the builds below count them again under their own limits.
      await ctx.herald.attrIndexes!.idle();
      expect(await new AttrIndexes(db).state(odd, 'k')).toBe('ready');
      await db.query('DELETE FROM attr_counted WHERE audience_id = $1', [odd]);
      // Eleven distinct strings ('5' never comes: i % 19 = 0 has no k): over a limit of 10, none counted
      // (and a row that says so, so it is not grouped again); at 11, all.
      expect(await new AttrIndexes(db, 10).ensure(odd, 'k')).toBe('ready');
      const counted = async (): Promise<unknown[]> =>
        (
          await db.query(
            'SELECT too_many, (SELECT count(*)::int FROM attr_value_counts v WHERE v.audience_id = c.audience_id AND v.attr = c.attr) AS n FROM attr_counted c WHERE audience_id = $1',
            [odd],
          )
        ).rows;
      expect(await counted()).toEqual([{ too_many: true, n: 0 }]);
      const other = await repo.create({ name: 'other', audienceId: odd, filter: early });
      expect((await repo.count(other.id)).count).toBe(wantAt(early, 3000));
      expect(scans).toHaveLength(2);
      await db.query('DELETE FROM attr_counted WHERE audience_id = $1', [odd]);
      expect(await new AttrIndexes(db, 11).ensure(odd, 'k')).toBe('ready');
      expect(await counted()).toEqual([{ too_many: false, n: 11 }]);
      // The kept count (up to 2,500) gives way to the counted values (up to 3,000): no scan.
      expect((await repo.count(seg.id)).count).toBe(wantAt(early, 3000));
      expect(scans).toHaveLength(2);

      for (const raw of [
        { attr: 'k', in: ['5', '5.0', 'true', 'null', '[1]', '{"a": 1}', '["DE"]'] },
        { attr: 'k', eq: 'DE' },
        { attr: 'k', in: ["a'b", 'x\\y', '', 'é', 'e'] },
        {
          and: [
            { attr: 'k', in: ['5', 'DE', ''] },
            { attr: 'n', lt: 3 },
          ],
        },
      ]) {
        const f = validateFilter(raw);
        const want: number[] = [];
        for (let i = 1; i <= 3000; i++) if (matches(f, attrsAt(i))) want.push(i);
        // Counted: from the counted values alone for a string eq / in, by a scan with a rest.
        const scansBefore = scans.length;
        expect((await repo.count((await repo.create({ name: 'odd', audienceId: odd, filter: f })).id)).count).toBe(want.length);
        expect(scans.length - scansBefore).toBe(indexedLeads(f)[0]!.rest === null ? 0 : 1);
        const q = { audienceId: odd, afterId: 0, maxId: 10_000, limit: 97, withAddress: false, filter: f };
        const before = pages.length;
        const viaIndex = await readerIds(reader, q);
        expect(pages.slice(before).every((sql) => sql.includes(`FROM recipients_a${odd} WHERE`))).toBe(true);
        // ids are the line numbers (the second import's lines go on from the first's)
        expect(viaIndex).toEqual(want);
        const scan = pageSql(q)
          .replace(/^COPY \(/, '')
          .replace(/\) TO STDOUT \(FORMAT binary\)$/, '');
        expect((await db.query(scan.replace(/LIMIT 97$/, 'LIMIT 100000'))).rows.map((r) => Number(r.id))).toEqual(want);
      }
    } finally {
      await spied.end();
    }
  });

  it("an audience's attribute indexes follow what selects by them: built with the first import of an empty audience, dropped once no segment or unfinished campaign wants them", async () => {
    const db = ctx.herald.db;
    const { api } = ctx;
    const empty = (await api.call('POST', '/v1/audiences', { name: 'empty at first' })).body.id as number;
    const indexOf = async (attr: string): Promise<string | null> =>
      (await db.query<{ name: string | null }>('SELECT to_regclass($1)::text AS name', [attrIndexName(empty, attr)])).rows[0]!.name;
    const stateOf = async (segmentId: number): Promise<string> => (await api.call('GET', `/v1/segments/${segmentId}`)).body.index.state;
    const dropped = (attr: string): Promise<string | null> =>
      eventually(
        () => indexOf(attr),
        (name) => name === null,
        20_000,
      );
    const readyState = (segmentId: number): Promise<string> =>
      eventually(
        () => stateOf(segmentId),
        (st) => st === 'ready',
        20_000,
      );
    const tier = (await api.call('POST', '/v1/segments', { name: 'gold', audience_id: empty, filter: { attr: 'tier', eq: 'gold' } })).body;
    expect(
      await eventually(
        () => stateOf(tier.id),
        (st) => st !== 'building',
      ),
    ).toBe('no-partition');
    const rows = Array.from({ length: 3000 }, (_, i) =>
      JSON.stringify({ user_id: `t${i}`, attrs: { tier: ['gold', 'silver', 'bronze'][i % 3], region: i % 2 === 0 ? 'north' : 'south' } }),
    );
    expect((await api.importRecipients(empty, rows.join('\n'), NDJSON)).status).toBe(200);
    // The import gave the audience its partition, and the segment its index.
    expect(await readyState(tier.id)).toBe('ready');
    const region = (
      await api.call('POST', '/v1/segments', { name: 'north', audience_id: empty, filter: { attr: 'region', in: ['north'] } })
    ).body;
    expect(await readyState(region.id)).toBe('ready');
    // A campaign keeps its own filter: tier stays wanted while it is unfinished.
    const campaignId = await api.nullCampaign(empty, { segment_id: tier.id });
    expect((await api.call('PATCH', `/v1/segments/${tier.id}`, { filter: { attr: 'region', eq: 'south' } })).status).toBe(200);
    // (its reconcile follows its new count)
    expect((await api.call('GET', `/v1/segments/${tier.id}/count`)).body.count).toBe(1500);
    expect((await api.call('DELETE', `/v1/segments/${region.id}`)).status).toBe(204);
    // region is still the refiltered segment's; nothing is dropped
    await ctx.herald.attrIndexes!.idle();
    expect(await indexOf('tier')).not.toBeNull();
    expect(await indexOf('region')).not.toBeNull();
    expect((await api.call('POST', `/v1/campaigns/${campaignId}/cancel`)).status).toBe(200);
    // The next import reconciles: the cancelled campaign's tier goes, the segment's region stays.
    expect((await api.importRecipients(empty, JSON.stringify({ user_id: 't-late', attrs: { tier: 'gold' } }), NDJSON)).status).toBe(200);
    expect(await dropped('tier')).toBeNull();
    expect(await indexOf('region')).not.toBeNull();
    // Deleting the last segment that selects by region drops its index; counts and plans go on by the scan.
    expect((await api.call('DELETE', `/v1/segments/${tier.id}`)).status).toBe(204);
    expect(await dropped('region')).toBeNull();
    const again = (await api.call('POST', '/v1/segments', { name: 'south', audience_id: empty, filter: { attr: 'region', eq: 'south' } }))
      .body;
    expect((await api.call('GET', `/v1/segments/${again.id}/count`)).body.count).toBe(1500);
    expect(await readyState(again.id)).toBe('ready');
  });

  it("a string eq / in alone is counted from its attribute's counted values, without reading the audience, and stays exact after an import", async () => {
    const { api } = ctx;
    const db = ctx.herald.db;
    expect(
      await eventually(
        () => new AttrIndexes(db).ensure(audienceId, 'country'),
        (st) => st === 'ready',
      ),
    ).toBe('ready');
    const top = Number((await db.query('SELECT max(id) AS top FROM recipients WHERE audience_id = $1', [audienceId])).rows[0].top);
    const counted = await db.query('SELECT up_to_id FROM attr_counted WHERE audience_id = $1 AND attr = $2', [audienceId, 'country']);
    expect(counted.rows.map((r) => Number(r.up_to_id))).toEqual([top]);
    const scans: unknown[][] = [];
    const spied = createDb(ctx.herald.config.databaseUrl, 4);
    spied.on('connect', (client) => {
      const query = client.query.bind(client) as (...a: unknown[]) => unknown;
      (client as unknown as { query: (...a: unknown[]) => unknown }).query = (...a: unknown[]) => {
        if (typeof a[0] === 'string' && a[0].startsWith('SELECT count(*) AS n FROM recipients')) scans.push(a[1] as unknown[]);
        return query(...a);
      };
    });
    try {
      const repo = new SegmentRepo(spied);
      const raw = { attr: 'country', in: ['DE', 'NL', 'DE', 'nowhere'] };
      const first = await repo.create({ name: 'counted', audienceId, filter: validateFilter(raw) });
      expect(await repo.count(first.id)).toEqual({ count: expectedUsers(raw, N + 1000).length, maxId: top, cached: false });
      expect(scans).toHaveLength(0);
      // Recipients imported since: the counted values up to their id, and one count of the ids above.
      await importLines(api, audienceId, N + 1001, N + 1500);
      // (the import's reconcile of the audience's indexes, done before the builds below)
      await ctx.herald.attrIndexes!.idle();
      const second = await repo.create({ name: 'counted after', audienceId, filter: validateFilter(raw) });
      expect((await repo.count(second.id)).count).toBe(expectedUsers(raw, N + 1500).length);
      expect(scans).toHaveLength(1);
      expect(scans[0]![1]).toBe(top);
      // With a rest, by the scan as before.
      const withRest = { and: [raw, { attr: 'plan', eq: 'pro' }] };
      const third = await repo.create({ name: 'with rest', audienceId, filter: validateFilter(withRest) });
      expect((await repo.count(third.id)).count).toBe(expectedUsers(withRest, N + 1500).length);
      expect(scans).toHaveLength(2);
      expect(scans[1]![1]).toBe(0);
      // An attribute of more distinct values than the process counts gets no counted values, and its counts scan.
      expect(await new AttrIndexes(db, 100).ensure(audienceId, 'signup_at')).toBe('ready');
      expect(
        (await db.query('SELECT too_many FROM attr_counted WHERE audience_id = $1 AND attr = $2', [audienceId, 'signup_at'])).rows,
      ).toEqual([{ too_many: true }]);
      const day = { attr: 'signup_at', eq: '2025-03-01' };
      const fourth = await repo.create({ name: 'one day', audienceId, filter: validateFilter(day) });
      expect((await repo.count(fourth.id)).count).toBe(expectedUsers(day, N + 1500).length);
      expect(scans).toHaveLength(3);
    } finally {
      await spied.end();
    }
  });
});

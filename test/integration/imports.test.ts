/**
 * Imports as jobs, through the public API on the real PostgreSQL: large bodies get their answer, a
 * process killed mid-merge leaves the audience whole and the job is resumed, gzip bodies, imports into
 * a database that already holds audiences, repeats, concurrency, aborted bodies, and the migration of
 * an unpartitioned `recipients` table.
 */
import { request } from 'node:http';
import { gzipSync } from 'node:zlib';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import pg from 'pg';
import { describe, expect, it } from 'vitest';
import { startTestHerald, useHerald, Api } from '../helpers/herald.js';
import { spawnHerald } from '../helpers/child-herald.js';
import { WsClient } from '../helpers/ws-client.js';
import { migratePostgres, SCHEMAS_DIR } from '../../src/migrate/migrate.js';
import { RecipientReader } from '../../src/store/recipient-reader.js';
import { countRange } from '../../src/store/recipient-runs.js';
import type { ChunkBound } from '../../src/domain/chunk.js';

const ctx = useHerald({ importSweepMs: 200 });
const NDJSON = { 'content-type': 'application/x-ndjson' };

async function newAudience(api: Api, name: string): Promise<number> {
  const a = await api.call('POST', '/v1/audiences', { name });
  expect(a.status).toBe(201);
  return a.body.id as number;
}

async function waitForImport(api: Api, id: number, timeoutMs = 120_000): Promise<any> {
  const t0 = Date.now();
  for (;;) {
    const r = await api.call('GET', `/v1/imports/${id}`);
    expect(r.status).toBe(200);
    if (r.body.status === 'completed' || r.body.status === 'failed') return r.body;
    if (Date.now() - t0 > timeoutMs) throw new Error(`import ${id} still ${r.body.status}`);
    await new Promise((res) => setTimeout(res, 100));
  }
}

async function audienceCount(id: number): Promise<number> {
  const r = await ctx.herald.db.query<{ n: number }>('SELECT count(*)::int AS n FROM recipients WHERE audience_id = $1', [id]);
  return r.rows[0]!.n;
}

function lines(n: number, prefix: string, from = 1): string {
  const out: string[] = [];
  for (let i = from; i < from + n; i++) out.push(`{"user_id":"${prefix}${i}","address":"${prefix}${i}@x.test"}`);
  return `${out.join('\n')}\n`;
}

describe('imports as jobs', () => {
  it('answers a 3,000,000-line import and counts it exactly', async () => {
    const { api } = ctx;
    const id = await newAudience(api, 'three million');
    const parts: string[] = [];
    const N = 3_000_000;
    for (let i = 1; i <= N; i++) {
      if (i % 500_000 === 0) parts.push('nonsense');
      else if (i > N - 1000)
        parts.push(`{"user_id":"u${i - (N - 1000)}"}`); // repeats u1..u1000
      else if (i % 10 === 0) parts.push(`{"user_id":"u${i}","address":"u${i}@x.test","attrs":{"country":"DE","n":${i}}}`);
      else parts.push(`{"user_id":"u${i}","address":"u${i}@x.test"}`);
    }
    const body = Buffer.from(parts.join('\n'));
    parts.length = 0;
    const r = await api.call('POST', `/v1/audiences/${id}/recipients`, body, NDJSON);
    expect([200, 202]).toContain(r.status);
    expect(r.body).toMatchObject({ total: N, rejected_count: 6 });
    expect(r.body.rejected).toEqual(
      [500_000, 1_000_000, 1_500_000, 2_000_000, 2_500_000, 3_000_000].map((line) => ({ line, error: 'line: is not valid JSON' })),
    );
    const job = await waitForImport(api, r.body.import_id);
    expect(job).toMatchObject({
      status: 'completed',
      audience_id: id,
      total: N,
      staged: N - 6,
      imported: N - 6 - 1000 + 1, // line 3,000,000 (u1000's repeat) is the nonsense one
      duplicates: 999,
      rejected_count: 6,
      received_bytes: body.length,
    });
    expect(await audienceCount(id)).toBe(N - 6 - 999);
    // first line wins, ids follow the file, attrs arrive as jsonb
    const first = await ctx.herald.db.query(
      'SELECT id, address, attrs FROM recipients WHERE audience_id = $1 AND user_id IN ($2, $3) ORDER BY id',
      [id, 'u1', 'u20'],
    );
    expect(first.rows).toEqual([
      { id: 1, address: 'u1@x.test', attrs: null },
      { id: 20, address: 'u20@x.test', attrs: { country: 'DE', n: 20 } },
    ]);
    const list = await api.call('GET', `/v1/audiences/${id}/imports`);
    expect(list.body.imports.map((j: { id: number }) => j.id)).toEqual([r.body.import_id]);
  });

  it('takes gzip bodies, NDJSON and CSV, and refuses a broken one', async () => {
    const { api } = ctx;
    const id = await newAudience(api, 'gzip');
    const nd = await api.importRecipients(id, gzipSync(lines(5000, 'g')), {
      ...NDJSON,
      'content-encoding': 'gzip',
    });
    expect(nd.status).toBe(200);
    expect(nd.body).toMatchObject({ imported: 5000, duplicates: 0, total: 5000 });
    const csv = `user_id,address,plan\n${Array.from({ length: 3000 }, (_, i) => `c${i},c${i}@x.test,pro`).join('\n')}\nc1,again,pro\n`;
    const c = await api.importRecipients(id, gzipSync(csv), {
      'content-type': 'text/csv',
      'content-encoding': 'gzip',
    });
    expect(c.body).toMatchObject({ imported: 3000, duplicates: 1, total: 3001 });
    const broken = await api.importRecipients(id, Buffer.from('not gzip at all'), {
      ...NDJSON,
      'content-encoding': 'gzip',
    });
    expect(broken.status).toBe(400);
    expect(broken.body.field).toBe('content-encoding');
    const unknown = await api.importRecipients(id, lines(1, 'x'), { ...NDJSON, 'content-encoding': 'br' });
    expect(unknown.status).toBe(415);
    expect(unknown.body.field).toBe('content-encoding');
    expect(await audienceCount(id)).toBe(8000);
    const jobs = (await api.call('GET', `/v1/audiences/${id}/imports`)).body.imports;
    expect(jobs.map((j: { status: string }) => j.status)).toEqual(['failed', 'completed', 'completed']);
    expect(jobs[0].error).toMatch(/gzip/);
  });

  it('imports into a database that holds other audiences, then into an audience that has recipients', async () => {
    const { api, herald } = ctx;
    const other = await api.audience(50_000, 'p');
    const id = await newAudience(api, 'populated');
    // the same user ids as the other audience: audiences never de-duplicate against each other
    const a = await api.importRecipients(id, lines(40_000, 'p'), NDJSON);
    expect(a.body).toMatchObject({ status: 'completed', imported: 40_000, duplicates: 0 });
    const own = await herald.db.query<{ t: string | null }>('SELECT to_regclass($1) AS t', [`recipients_a${id}`]);
    expect(own.rows[0]!.t).toBe(`recipients_a${id}`);
    // half new, half already there: the insert path, ids after the audience's highest
    const b = await api.importRecipients(id, lines(20_000, 'p', 30_001), NDJSON);
    expect(b.body).toMatchObject({ status: 'completed', imported: 10_000, duplicates: 10_000, total: 20_000 });
    expect(await audienceCount(id)).toBe(50_000);
    expect(await audienceCount(other)).toBe(50_000);
    const ids = await herald.db.query('SELECT id FROM recipients WHERE audience_id = $1 AND user_id IN ($2, $3) ORDER BY id', [
      id,
      'p40000',
      'p40001',
    ]);
    expect(ids.rows).toEqual([{ id: 40_000 }, { id: 40_000 + 10_001 }]);
    // and a campaign sends to all of them
    const c = await api.nullCampaign(id);
    await api.call('POST', `/v1/campaigns/${c}/start`);
    const done = await api.waitForStatus(c, ['completed']);
    expect(done).toMatchObject({ total: 50_000, delivered: 50_000 });
  });

  it('records the runs of ids an import adds with no gap, and a plan cuts them by arithmetic into the chunks a walk finds', async () => {
    const { api, herald } = ctx;
    const id = await newAudience(api, 'runs');
    const runs = async (): Promise<unknown[]> =>
      (await herald.db.query('SELECT first_id, last_id FROM recipient_runs WHERE audience_id = $1 ORDER BY first_id', [id])).rows;
    // The first import becomes the partition, a later one is inserted after it: one run, extended.
    expect((await api.importRecipients(id, lines(3_000, 'r'), NDJSON)).body).toMatchObject({ imported: 3_000 });
    expect(await runs()).toEqual([{ first_id: 1, last_id: 3_000 }]);
    expect((await api.importRecipients(id, lines(2_000, 'r', 3_001), NDJSON)).body).toMatchObject({ imported: 2_000 });
    expect(await runs()).toEqual([{ first_id: 1, last_id: 5_000 }]);
    // Users already there leave out their lines: the new ones (lines 1,001 to 2,000 after id 5,000) are a run
    // of their own; a bad line leaves a gap: no run. A clean import after them is a run again.
    expect((await api.importRecipients(id, lines(2_000, 'r', 4_001), NDJSON)).body).toMatchObject({ imported: 1_000 });
    expect(await runs()).toEqual([
      { first_id: 1, last_id: 5_000 },
      { first_id: 6_001, last_id: 7_000 },
    ]);
    expect((await api.importRecipients(id, `${lines(500, 's')}not json\n${lines(500, 's', 501)}`, NDJSON)).body).toMatchObject({
      imported: 1_000,
    });
    expect(await runs()).toHaveLength(2);
    const top = (await herald.db.query<{ max: number }>('SELECT max(id) AS max FROM recipients WHERE audience_id = $1', [id])).rows[0]!.max;
    expect((await api.importRecipients(id, lines(1_000, 't'), NDJSON)).body).toMatchObject({ imported: 1_000 });
    expect(await runs()).toEqual([
      { first_id: 1, last_id: 5_000 },
      { first_id: 6_001, last_id: 7_000 },
      { first_id: top + 1, last_id: top + 1_000 },
    ]);
    // The planner's bounds, page by page, against every size-th id of the audience and its last one.
    const all = (await herald.db.query<{ id: number }>('SELECT id FROM recipients WHERE audience_id = $1 ORDER BY id', [id])).rows.map(
      (r) => r.id,
    );
    // The audience's size, counted by its runs and the ids between them, is every recipient.
    expect((await api.call('GET', `/v1/audiences/${id}`)).body.recipients).toBe(all.length);
    expect(all.length).toBe(8_000);
    expect(await countRange(herald.db, id, 4_000, 6_500)).toBe(all.filter((i) => i > 4_000 && i <= 6_500).length);
    expect(await countRange(herald.db, id, 6_500, top + 10)).toBe(all.filter((i) => i > 6_500 && i <= top + 10).length);
    const reader = new RecipientReader(herald.db);
    for (const [size, maxId] of [
      [500, top + 1_000],
      [7, top + 1_000],
      [500, 4_321],
      [300, top + 400],
    ] as const) {
      const ids = all.filter((i) => i <= maxId);
      const want = ids.flatMap((i, k) => ((k + 1) % size === 0 || k === ids.length - 1 ? [{ lastId: i, row: k + 1 }] : []));
      const got: ChunkBound[] = [];
      for (let after = 0, rows = 0; ;) {
        const page = await reader.bounds({ audienceId: id, afterId: after, maxId, limit: size * 4, withAddress: false }, size);
        got.push(...page.map((b) => ({ lastId: b.lastId, row: rows + b.row })));
        const last = page.at(-1);
        if (last === undefined || last.row < size * 4) break;
        after = last.lastId;
        rows += last.row;
      }
      expect(got).toEqual(want);
    }
    // and a campaign sends to each of them once
    const c = await api.nullCampaign(id, { chunk_size: 300 });
    await api.call('POST', `/v1/campaigns/${c}/start`);
    expect(await api.waitForStatus(c, ['completed'])).toMatchObject({ total: all.length, delivered: all.length });
  });

  it('says so when the same file comes again, and keeps two imports into one audience apart', async () => {
    const { api } = ctx;
    const id = await newAudience(api, 'repeat');
    const file = lines(20_000, 'r');
    const first = await api.importRecipients(id, file, NDJSON);
    const again = await api.importRecipients(id, file, NDJSON);
    expect(again.body).toMatchObject({ status: 'completed', imported: 0, duplicates: 20_000, same_as: first.body.import_id });
    // overlapping files at once: both complete, one after the other, each user once
    const [x, y] = await Promise.all([
      api.importRecipients(id, lines(30_000, 'r', 10_001), NDJSON),
      api.importRecipients(id, lines(30_000, 'r', 25_001), NDJSON),
    ]);
    expect(x.body.status).toBe('completed');
    expect(y.body.status).toBe('completed');
    expect(x.body.imported + y.body.imported).toBe(55_000 - 20_000);
    expect(await audienceCount(id)).toBe(55_000);
  });

  it('shows the progress of an import on the WebSocket, from receiving to completed', async () => {
    const { api, herald } = ctx;
    const id = await newAudience(api, 'watched');
    const ws = await WsClient.open(`ws://127.0.0.1:${herald.port}/v1/ws`, { authorization: `Bearer ${api.key}` });
    try {
      const req = request({
        host: '127.0.0.1',
        port: herald.port,
        method: 'POST',
        path: `/v1/audiences/${id}/recipients`,
        headers: { authorization: `Bearer ${api.key}`, 'content-type': 'application/x-ndjson' },
      });
      const answer = new Promise<any>((resolve, reject) => {
        req.on('response', (res) => {
          let text = '';
          res.on('data', (d: Buffer) => (text += d.toString()));
          res.on('end', () => resolve(JSON.parse(text)));
        });
        req.on('error', reject);
      });
      // the body comes slowly, so the job is seen receiving
      for (let k = 0; k < 12; k++) {
        req.write(lines(5000, 'w', 1 + k * 5000));
        await new Promise((res) => setTimeout(res, 250));
        if (k === 1) {
          let jobs: any[] = [];
          while (jobs.length === 0) jobs = (await api.call('GET', `/v1/audiences/${id}/imports`)).body.imports;
          ws.send({ subscribe: `import:${jobs[0].id}` });
        }
      }
      req.end();
      const done = await answer;
      await ws.waitFor((f) => f.import_id === done.import_id && f.status === 'completed');
      const mine = ws.frames.map((f) => f.frame).filter((f) => f.import_id === done.import_id);
      const receiving = mine.filter((f) => f.status === 'receiving');
      expect(receiving.length).toBeGreaterThan(1);
      // bytes and lines only grow while the body comes in
      for (let i = 1; i < receiving.length; i++)
        expect(receiving[i]!.received_bytes as number).toBeGreaterThanOrEqual(receiving[i - 1]!.received_bytes as number);
      expect(receiving.at(-1)!.staged as number).toBeGreaterThan(0);
      expect(mine.at(-1)).toMatchObject({ status: 'completed', imported: 60_000, audience_id: id });
      ws.send({ subscribe: 'import:999999' });
      await ws.waitFor((f) => f.import_id === 999_999 && typeof f.error === 'string');
    } finally {
      ws.ws.close();
    }
  });

  it('fails a job whose body stops halfway and leaves the audience as it was', async () => {
    const { api, herald } = ctx;
    const id = await newAudience(api, 'aborted');
    await new Promise<void>((resolve) => {
      const req = request({
        host: '127.0.0.1',
        port: herald.port,
        method: 'POST',
        path: `/v1/audiences/${id}/recipients`,
        headers: { authorization: `Bearer ${api.key}`, 'content-type': 'application/x-ndjson', 'content-length': 10_000_000 },
      });
      req.on('error', () => resolve());
      req.write(lines(20_000, 'h'));
      setTimeout(() => req.destroy(), 300);
    });
    const t0 = Date.now();
    let jobs: any[] = [];
    while (Date.now() - t0 < 20_000) {
      jobs = (await api.call('GET', `/v1/audiences/${id}/imports`)).body.imports;
      if (jobs[0]?.status === 'failed') break;
      await new Promise((res) => setTimeout(res, 100));
    }
    expect(jobs).toHaveLength(1);
    expect(jobs[0]).toMatchObject({ status: 'failed', imported: null });
    expect(jobs[0].error).toMatch(/aborted/);
    expect(await audienceCount(id)).toBe(0);
    const left = await herald.db.query(`SELECT count(*)::int AS n FROM pg_class WHERE relname LIKE 'import_stage_%' AND relkind = 'r'`);
    expect(left.rows[0].n).toBe(0);
  });

  it('resumes a job whose process was killed mid-merge: the audience never holds half of it', async () => {
    const { api, ns } = ctx;
    const id = await newAudience(api, 'killed');
    const out: string[] = [];
    const child = await spawnHerald(ns, out, { HERALD_IMPORT_ANSWER_WAIT_MS: '0', HERALD_WORKERS: '0' });
    try {
      const port = JSON.parse(out.find((l) => l.includes('Herald API listening'))!).port as number;
      const N = 1_000_000;
      const r = await new Api(`http://127.0.0.1:${port}`).call('POST', `/v1/audiences/${id}/recipients`, lines(N, 'k'), NDJSON);
      expect(r.status).toBe(202);
      expect(r.body).toMatchObject({ status: 'merging', staged: N });
      child.kill('SIGKILL');
      // every look at the audience sees none of the file or all of it
      const seen = new Set<number>();
      const t0 = Date.now();
      let job: any;
      for (;;) {
        seen.add(await audienceCount(id));
        job = (await api.call('GET', `/v1/imports/${r.body.import_id}`)).body;
        if (job.status === 'completed' || job.status === 'failed' || Date.now() - t0 > 60_000) break;
        await new Promise((res) => setTimeout(res, 50));
      }
      expect(job).toMatchObject({ status: 'completed', imported: N, duplicates: 0 });
      seen.add(await audienceCount(id));
      expect([...seen].every((n) => n === 0 || n === N)).toBe(true);
      expect(await audienceCount(id)).toBe(N);
    } finally {
      child.kill('SIGKILL');
    }
  });
});

describe('the migration to a partition per audience', () => {
  it('keeps the recipients of an unpartitioned table and imports into old and new audiences', async () => {
    // a database as an earlier Herald left it: migrations up to 0007, recipients in one table
    const admin = new pg.Client({ connectionString: ctx.ns.config.databaseUrl });
    await admin.connect();
    const url = new URL(ctx.ns.config.databaseUrl);
    const name = `${url.pathname.slice(1)}_old`;
    await admin.query(`CREATE DATABASE "${name}"`);
    await admin.end();
    url.pathname = `/${name}`;
    const db = new pg.Client({ connectionString: url.toString() });
    await db.connect();
    try {
      await db.query('CREATE TABLE herald_migrations (name text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())');
      for (const file of [
        '0001_core',
        '0002_rate_limit',
        '0003_plan_generation',
        '0004_aborts_recorded',
        '0005_retry_rounds',
        '0006_status_version',
        '0007_segment_by',
      ]) {
        await db.query(await readFile(path.join(SCHEMAS_DIR, 'postgres', `${file}.sql`), 'utf8'));
        await db.query('INSERT INTO herald_migrations (name) VALUES ($1)', [`${file}.sql`]);
      }
      await db.query(`INSERT INTO audiences (name) VALUES ('old one'), ('old two')`);
      await db.query(`INSERT INTO recipients (audience_id, user_id) SELECT 1 + i % 2, 'o' || i FROM generate_series(1, 1000) i`);
      await db.end();
      expect(await migratePostgres(url.toString())).toEqual([
        'postgres/0008_imports.sql',
        'postgres/0009_recipients_by_audience.sql',
        'postgres/0010_segments.sql',
        'postgres/0011_templates.sql',
        'postgres/0012_consent.sql',
        'postgres/0013_keys_audit.sql',
        'postgres/0014_segment_changes.sql',
        'postgres/0015_count_checks.sql',
        'postgres/0016_suppression_batches.sql',
        'postgres/0017_suppression_batch_audit.sql',
        'postgres/0018_attr_value_counts.sql',
        'postgres/0019_recipient_runs.sql',
      ]);
      const h = await startTestHerald(ctx.ns, { databaseUrl: url.toString(), workers: 0 });
      try {
        const api = new Api(`http://127.0.0.1:${h.port}`);
        const old = await api.call('POST', '/v1/audiences/1/recipients', `{"user_id":"o2"}\n{"user_id":"o1"}\n{"user_id":"n1"}\n`, NDJSON);
        expect(old.body).toMatchObject({ status: 'completed', imported: 2, duplicates: 1 });
        const fresh = await newAudience(api, 'new one');
        const n = await api.importRecipients(fresh, lines(100, 'f'), NDJSON);
        expect(n.body).toMatchObject({ status: 'completed', imported: 100 });
        const counts = await h.db.query<{ audience_id: number; n: number; t: string }>(
          `SELECT audience_id, count(*)::int AS n, min(tableoid::regclass::text) AS t FROM recipients GROUP BY audience_id ORDER BY audience_id`,
        );
        expect(counts.rows).toEqual([
          { audience_id: 1, n: 502, t: 'recipients_shared' },
          { audience_id: 2, n: 500, t: 'recipients_shared' },
          { audience_id: fresh, n: 100, t: `recipients_a${fresh}` },
        ]);
        // Segments' GIN index on attrs: built on the old partition by the migration, on the new one by its import.
        const gin = await h.db.query<{ t: string }>(
          `SELECT indrelid::regclass::text AS t FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_am am ON am.oid = c.relam
           WHERE am.amname = 'gin' ORDER BY 1`,
        );
        expect(gin.rows.map((r) => r.t).sort()).toEqual(['recipients', `recipients_a${fresh}`, 'recipients_shared'].sort());
        const top = await h.db.query('SELECT max(id) AS m FROM recipients WHERE audience_id = 1');
        const n1 = await h.db.query(`SELECT id FROM recipients WHERE audience_id = 1 AND user_id = 'n1'`);
        expect(n1.rows[0].id).toBe(top.rows[0].m);
      } finally {
        await h.stop();
      }
    } finally {
      const drop = new pg.Client({ connectionString: ctx.ns.config.databaseUrl });
      await drop.connect();
      await drop.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`).catch(() => undefined);
      await drop.end();
    }
  });
});

/**
 * The suite's core through pgbouncer in transaction mode (test/helpers/pgbouncer.ts): two Herald processes
 * on one pgbouncer whose pool of 10 server connections they share, migrating, importing (a 300,000-line
 * NDJSON body as a background job: staging COPY, index builds and the merge; then a CSV), counting a
 * segment, sending a null campaign both host, pausing and resuming a webhook campaign, retrying its
 * failures and reading an inbox, all with exact counts. pgbouncer resets nothing between clients, so after
 * the run every server connection of the pool is looked at: no session setting, session advisory lock,
 * prepared statement, cursor, LISTEN or temp table left behind by Herald for the next client to inherit.
 */
import type { Server } from 'node:http';
import { existsSync } from 'node:fs';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Herald } from '../../src/main.js';
import { loadMigrations, migratePostgres } from '../../src/migrate/migrate.js';
import { Api, apiFor, createNamespace, eventCounts, startTestHerald, type Namespace } from '../helpers/herald.js';
import { listenLocal, rejectingReceiver } from '../helpers/local-http.js';
import { PGBOUNCER, sessionLeftovers, startPgBouncer, type PgBouncer } from '../helpers/pgbouncer.js';

const N = 300_000;
const CSV_NEW = 1_000;
/** NDJSON user p<i> is on the pro plan when i % 3 == 0; CSV user c<i> when i is even */
const PRO = Math.floor(N / 3) + CSV_NEW / 2;

/** webhook user w<i>: i % 7 == 0 fails its first delivery */
const failsFirst = (user: string): boolean => user.startsWith('w') && Number(user.slice(1)) % 7 === 0;

describe.skipIf(!existsSync(PGBOUNCER))('Herald through pgbouncer in transaction mode', () => {
  let bouncer: PgBouncer;
  let ns: Namespace;
  let database: string;
  let h1: Herald;
  let h2: Herald;
  let a1: Api;
  let a2: Api;
  let receiver: Server;
  let receiverUrl: string;
  /** the most clients and server connections pgbouncer had at once for the test's database */
  const peak = { clients: 0, servers: 0 };
  let sampler: NodeJS.Timeout | null = null;
  /** idempotency key → times posted */
  const posted = new Map<string, number>();

  beforeAll(async () => {
    bouncer = await startPgBouncer({ poolSize: 6 });
    receiver = rejectingReceiver({ posted, rejects: (user, attempt) => (attempt === 1 && failsFirst(user) ? 'busy' : null), latencyMs: 5 });
    receiverUrl = await listenLocal(receiver);
    // Created and migrated through pgbouncer (the database too: CREATE DATABASE through it).
    ns = await createNamespace({ importAnswerWaitMs: 0, webhookBatchSize: 50, subBatchSize: 50 }, bouncer.route);
    database = new URL(ns.config.databaseUrl).pathname.slice(1);
    expect(new URL(ns.config.databaseUrl).port).toBe(String(bouncer.port));
    [h1, h2] = await Promise.all([startTestHerald(ns), startTestHerald(ns)]);
    a1 = apiFor(h1);
    a2 = apiFor(h2);
    const sample = async (): Promise<void> => {
      const mine = (rows: Array<{ database: string }>): number => rows.filter((x) => x.database === database).length;
      peak.clients = Math.max(peak.clients, mine(await bouncer.admin('SHOW CLIENTS')));
      peak.servers = Math.max(peak.servers, mine(await bouncer.admin('SHOW SERVERS')));
    };
    sampler = setInterval(() => void sample().catch(() => undefined), 100);
  });

  afterAll(async () => {
    if (sampler !== null) clearInterval(sampler);
    await Promise.all([h1?.stop(), h2?.stop()]);
    await bouncer?.stop();
    await ns?.drop();
    receiver?.close();
  });

  async function followImport(api: Api, id: number): Promise<any> {
    for (const t0 = Date.now(); ;) {
      const job = (await api.call('GET', `/v1/imports/${id}`)).body;
      if (job.status === 'completed' || job.status === 'failed') return job;
      if (Date.now() - t0 > 150_000) throw new Error(`import ${id} still ${job.status}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  async function noLeftovers(): Promise<void> {
    const seen = await sessionLeftovers(bouncer, database);
    expect(seen).toHaveLength(bouncer.poolSize);
    for (const s of seen)
      expect(s, `server connection ${s.pid}`).toMatchObject({
        settings: [],
        advisoryLocks: 0,
        preparedStatements: [],
        cursors: [],
        listening: [],
        tempTables: [],
      });
  }

  let audienceId: number;
  let segmentId: number;

  it('imports 300,000 NDJSON lines as a background job and a CSV after it, exactly', async () => {
    audienceId = (await a1.call('POST', '/v1/audiences', { name: 'through pgbouncer' })).body.id as number;
    const lines: string[] = [];
    for (let i = 1; i <= N; i++)
      lines.push(`{"user_id":"p${i}","address":"p${i}@example.test","attrs":{"plan":"${i % 3 === 0 ? 'pro' : 'free'}","n":${i}}}`);
    const started = await a1.call('POST', `/v1/audiences/${audienceId}/recipients`, lines.join('\n'), {
      'content-type': 'application/x-ndjson',
    });
    expect(started.status).toBe(202);
    const job = await followImport(a2, started.body.import_id as number);
    expect(job).toMatchObject({ status: 'completed', imported: N, duplicates: 0, rejected_count: 0 });

    // 200 users already there, CSV_NEW new ones (one of them twice): the insert path of the merge.
    const csv = ['user_id,address,plan'];
    for (let i = 1; i <= 200; i++) csv.push(`p${i},p${i}@example.test,free`);
    for (let i = 1; i <= CSV_NEW; i++) csv.push(`c${i},c${i}@example.test,${i % 2 === 0 ? 'pro' : 'free'}`);
    csv.push('c1,again@example.test,pro');
    const r = await a2.importRecipients(audienceId, csv.join('\n'), { 'content-type': 'text/csv' });
    expect(r).toMatchObject({ status: 200, body: { status: 'completed', imported: CSV_NEW } });
    await noLeftovers();
  });

  it('counts a segment and sends a null campaign hosted by both processes to exactly its recipients', async () => {
    const seg = await a2.call('POST', '/v1/segments', { name: 'pro', audience_id: audienceId, filter: { attr: 'plan', eq: 'pro' } });
    expect(seg.status).toBe(201);
    segmentId = seg.body.id as number;
    expect((await a1.call('GET', `/v1/segments/${segmentId}/count`)).body).toMatchObject({ count: PRO, max_id: expect.any(Number) });
    const id = await a1.nullCampaign(audienceId, { segment_id: segmentId, chunk_size: 500 });
    expect((await a2.call('POST', `/v1/campaigns/${id}/start`)).status).toBe(200);
    await a2.waitForStatus(id, ['completed'], 120_000);
    const done = (await a1.call('GET', `/v1/campaigns/${id}`)).body;
    expect(done).toMatchObject({ status: 'completed', total: PRO, delivered: PRO, failed: 0, pending: 0 });
    expect(await eventCounts(h1, id)).toEqual({ n: PRO, u: PRO });
  });

  it('pauses and resumes a webhook campaign, retries its failures, and each recipient is posted once per attempt', async () => {
    const n = 6_000;
    const every7 = Math.floor(n / 7);
    const aud = await a2.audience(n, 'w');
    // Two requests in flight, so the pause comes mid-campaign: with the default 64, the campaign's 12
    // chunks all go at once against a 5 ms receiver and can finish before the first count is stored.
    const channel = { type: 'webhook', url: receiverUrl, concurrency: 2 };
    const id = await a1.webhookCampaign(aud, receiverUrl, { name: 'paused', channel });
    await a1.call('POST', `/v1/campaigns/${id}/start`);
    // paused once the receiver has seen the campaign's first request
    for (const t0 = Date.now(); ![...posted.keys()].some((k) => k.startsWith(`${id}:`));) {
      if (Date.now() - t0 > 30_000) throw new Error('nothing sent');
      await new Promise((r) => setTimeout(r, 5));
    }
    expect((await a2.call('POST', `/v1/campaigns/${id}/pause`)).body).toEqual({ id, status: 'paused' });
    await new Promise((r) => setTimeout(r, 1_000)); // sub-batches in flight at the pause end
    const atPause = [...posted.keys()].filter((k) => k.startsWith(`${id}:`)).length;
    await new Promise((r) => setTimeout(r, 1_500));
    expect([...posted.keys()].filter((k) => k.startsWith(`${id}:`)).length).toBe(atPause);
    expect(atPause).toBeLessThan(n);
    expect((await a1.call('POST', `/v1/campaigns/${id}/resume`)).body).toEqual({ id, status: 'sending' });
    const first = await a2.waitForStatus(id, ['completed'], 120_000);
    expect(first).toMatchObject({ total: n, delivered: n - every7, failed: every7, pending: 0 });

    expect((await a2.call('POST', `/v1/campaigns/${id}/retry-failed`)).body).toMatchObject({ id, status: 'sending', retrying: every7 });
    const second = await a1.waitForStatus(id, ['completed'], 120_000);
    expect(second).toMatchObject({ total: n, delivered: n, failed: 0, pending: 0, retried: every7 });
    for (let i = 1; i <= n; i++) expect(posted.get(`${id}:w${i}`) ?? 0, `w${i}`).toBe(i % 7 === 0 ? 2 : 1);
    expect(await eventCounts(h2, id)).toEqual({ n, u: n });
  });

  it("delivers to inboxes and reads a user's inbox", async () => {
    const aud = await a1.audience(500, 'ib');
    const id = await a2.nullCampaign(aud, { name: 'inbox', channel: { type: 'inbox' }, content: { title: 'Hello', body: 'News' } });
    await a1.call('POST', `/v1/campaigns/${id}/start`);
    expect(await a1.waitForStatus(id, ['completed'], 60_000)).toMatchObject({ delivered: 500 });
    const token = (await a2.call('POST', '/v1/users/ib7/token')).body.token as string;
    const user = new Api(a1.base, token);
    const inbox = await user.call('GET', '/v1/users/ib7/inbox');
    expect(inbox.status).toBe(200);
    expect(inbox.body.messages).toEqual([expect.objectContaining({ campaign_id: id, title: 'Hello', read: false })]);
    expect((await user.call('POST', `/v1/users/ib7/inbox/${id}/read`)).status).toBe(204);
    const after = await new Api(a2.base, token).call('GET', '/v1/users/ib7/inbox');
    expect(after.body.messages).toEqual([expect.objectContaining({ campaign_id: id, read: true })]);
  });

  it('migrates a fresh database from two processes at once through it, each migration once', async () => {
    const url = new URL(ns.config.databaseUrl);
    url.pathname = `/${database}_m`;
    try {
      const [x, y] = await Promise.all([migratePostgres(url.toString()), migratePostgres(url.toString())]);
      const files = (await loadMigrations('postgres')).map((m) => `postgres/${m.name}`);
      expect([...x, ...y].sort()).toEqual(files.sort());
      const c = new pg.Client({ connectionString: url.toString() });
      await c.connect();
      const n = (await c.query<{ n: number }>('SELECT count(*)::int AS n FROM herald_migrations')).rows[0]!.n;
      await c.end();
      expect(n).toBe(files.length);
    } finally {
      const admin = new pg.Client({ connectionString: ns.config.databaseUrl.replace(`:${bouncer.port}/`, ':5432/') });
      await admin.connect();
      await admin.query(`DROP DATABASE IF EXISTS "${database}_m" WITH (FORCE)`);
      await admin.end();
    }
  });

  it('leaves nothing on the shared server connections: no session state, locks, statements, cursors or temp tables', async () => {
    // The two processes' clients took turns on fewer server connections.
    expect(peak.servers).toBeLessThanOrEqual(bouncer.poolSize);
    expect(peak.clients).toBeGreaterThan(peak.servers);
    await noLeftovers();
    // And nothing idle in a transaction or holding an advisory lock on the server itself.
    const direct = new pg.Client({ connectionString: ns.config.databaseUrl.replace(`:${bouncer.port}/`, ':5432/') });
    await direct.connect();
    try {
      const locks = await direct.query<{ n: number }>(
        `SELECT count(*)::int AS n FROM pg_locks l JOIN pg_database d ON d.oid = l.database WHERE l.locktype = 'advisory' AND d.datname = $1`,
        [database],
      );
      expect(locks.rows[0]!.n).toBe(0);
      const stuck = await direct.query<{ n: number }>(
        `SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = $1 AND state LIKE 'idle in transaction%'`,
        [database],
      );
      expect(stuck.rows[0]!.n).toBe(0);
    } finally {
      await direct.end();
    }
  });
});

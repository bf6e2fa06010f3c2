import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Herald } from '../../src/main.js';
import { ConsentRepo, SUPPRESSION_APPLY_ATTEMPTS } from '../../src/store/consent-repo.js';
import { fingerprint, fingerprintSql } from '../../src/domain/fingerprint.js';
import { suppressionCopyLine } from '../../src/domain/consent-input.js';
import { TOKEN_CALLER } from '../../src/domain/audit.js';
import type { Api } from '../helpers/herald.js';
import { apiFor, createNamespace, startTestHerald, type Namespace } from '../helpers/herald.js';

const ndjson = { 'content-type': 'application/x-ndjson' };
const lines = (n: number, prefix: string, topic?: string): string =>
  Array.from({ length: n }, (_, i) => JSON.stringify({ user_id: `${prefix}${i}`, ...(topic === undefined ? {} : { topic }) })).join('\n');

async function until<T>(what: string, fn: () => Promise<T | null | undefined | false>, ms = 15_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v !== null && v !== undefined && v !== false) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

// Bulk suppression changes as batches (schemas/postgres/0016_suppression_batches.sql): staged whole while the
// body arrives, applied in the background, so a request is answered within seconds of its last byte
// whatever PostgreSQL is doing, and a batch a stopped process left behind is applied by another.
describe('suppression batches', () => {
  let ns: Namespace;
  let herald: Herald;
  let api: Api;
  let side: pg.Client;

  beforeAll(async () => {
    ns = await createNamespace();
    herald = await startTestHerald(ns, { importAnswerWaitMs: 2000, importSweepMs: 200, workers: 0 });
    api = apiFor(herald);
    side = new pg.Client({ connectionString: ns.config.databaseUrl });
    await side.connect();
  });

  afterAll(async () => {
    await side?.end();
    await herald?.stop();
    await ns?.drop();
  });

  const mark = async (): Promise<number> => (await herald.gateway.suppressionMark()) ?? 0;

  it('answers 202 once the body is staged while the apply waits on PostgreSQL, then applies it and raises the mark', async () => {
    const before = await mark();
    // Another session holds the table: the apply's INSERT waits for it, well past the request's wait.
    await side.query('BEGIN');
    await side.query('LOCK TABLE suppressions IN SHARE MODE');
    const t0 = Date.now();
    const r = await api.call('PUT', '/v1/suppressions', `${lines(2000, 'h')}\n{"topic":"news"}\n`, ndjson);
    expect(Date.now() - t0).toBeLessThan(5_000);
    expect(r.status).toBe(202);
    expect(r.body).toMatchObject({
      op: 'put',
      status: 'applying',
      in_effect: false,
      accepted: 2000,
      total: 2001,
      rejected_count: 1,
      changed: null,
    });
    expect(r.body.rejected).toEqual([{ line: 2001, error: expect.stringContaining('user_id') }]);
    const id = r.body.id as number;
    expect((await api.call('GET', `/v1/suppressions/batches/${id}`)).body).toMatchObject({ id, status: 'applying' });
    expect((await api.call('GET', '/v1/users/h7/suppressions')).body.suppressions).toEqual([]);
    await side.query('COMMIT');
    const done = await until('the batch applied', async () => {
      const g = await api.call('GET', `/v1/suppressions/batches/${id}`);
      return g.body.in_effect === true ? g.body : null;
    });
    expect(done).toMatchObject({ status: 'completed', accepted: 2000, changed: 2000, rejected_count: 1, error: null });
    expect((await api.call('GET', '/v1/users/h7/suppressions')).body.suppressions).toMatchObject([{ topic: null }]);
    await until('the change mark raised', async () => (await mark()) > before);
    const row = await herald.db.query('SELECT mark_raised FROM suppression_batches WHERE id = $1', [id]);
    expect(row.rows[0].mark_raised).toBe(true);
    // the staging table went with the apply
    expect((await herald.db.query(`SELECT to_regclass('suppression_stage_${id}') AS t`)).rows[0].t).toBeNull();
    // a quick one answers 200 with the final batch; DELETE the same way
    const again = await api.call('PUT', '/v1/suppressions', lines(10, 'h'), ndjson);
    // the pairs are there already: written again, as of this request (what a later DELETE is compared with)
    expect(again).toMatchObject({ status: 200, body: { status: 'completed', in_effect: true, accepted: 10, changed: 10 } });
    const del = await api.call('DELETE', '/v1/suppressions', lines(5, 'h'), ndjson);
    expect(del).toMatchObject({ status: 200, body: { op: 'delete', status: 'completed', changed: 5 } });
    expect((await api.call('GET', '/v1/users/h3/suppressions')).body.suppressions).toEqual([]);
    expect((await api.call('GET', '/v1/suppressions/batches/999999')).status).toBe(404);
    expect((await api.call('GET', '/v1/suppressions/batches/x')).status).toBe(400);
  });

  it('applies a batch whose apply lost its connection, and one a stopped process staged but never applied', async () => {
    // The apply's connection is cut while it waits on the table: it rolls back, the batch stays applying,
    // and the sweep applies it once the table is free.
    await side.query('BEGIN');
    await side.query('LOCK TABLE suppressions IN SHARE MODE');
    const r = await api.call('PUT', '/v1/suppressions', lines(500, 'k', 'promo'), ndjson);
    expect(r.status).toBe(202);
    const id = r.body.id as number;
    const killed = await until('the apply waiting on its lock', async () => {
      const k = await side.query(
        `SELECT pg_terminate_backend(pid) AS ok FROM pg_stat_activity
         WHERE datname = current_database() AND query LIKE 'INSERT INTO suppressions%' AND wait_event_type = 'Lock'`,
      );
      return k.rowCount === 1 ? k : null;
    });
    expect(killed.rows[0].ok).toBe(true);
    expect((await api.call('GET', `/v1/suppressions/batches/${id}`)).body.status).toBe('applying');
    await side.query('COMMIT');
    await until(
      'the batch applied by the sweep',
      async () => (await api.call('GET', `/v1/suppressions/batches/${id}`)).body.status === 'completed',
    );
    expect((await api.call('GET', '/v1/users/k42/suppressions')).body.suppressions).toMatchObject([{ topic: 'promo' }]);

    // Staged by a process that stopped before its apply (nothing of it applied yet): the sweep applies it
    // and raises its mark.
    const before = await mark();
    const repo = new ConsentRepo(herald.db);
    const staged = await repo.stageBatch({
      op: 'put',
      copyText: (async function* () {
        yield suppressionCopyLine(1, { userId: 'orphan', topic: '', reason: 'left behind' }, fingerprintSql(fingerprint('', 'orphan')));
      })(),
      counts: () => ({ total: 1, accepted: 1, rejectedCount: 0, rejected: [] }),
      audit: (batchId) => ({ actor: { ...TOKEN_CALLER, requestId: 'test' }, action: 'suppressions.put', detail: { batch_id: batchId } }),
      startedAt: new Date(),
    });
    await until(
      'the left-behind batch applied',
      async () => (await api.call('GET', `/v1/suppressions/batches/${staged}`)).body.status === 'completed',
    );
    expect((await api.call('GET', '/v1/users/orphan/suppressions')).body.suppressions).toMatchObject([
      { topic: null, reason: 'left behind' },
    ]);
    await until('its mark raised', async () => (await mark()) > before);
  });

  /** a batch staged as a stopped process would leave it: not applied */
  const stage = (op: 'put' | 'delete', users: string[], topic = ''): Promise<number> =>
    new ConsentRepo(herald.db).stageBatch({
      op,
      copyText: (async function* () {
        yield users
          .map((u, i) => suppressionCopyLine(i + 1, { userId: u, topic, reason: null }, fingerprintSql(fingerprint(topic, u))))
          .join('');
      })(),
      counts: () => ({ total: users.length, accepted: users.length, rejectedCount: 0, rejected: [] }),
      audit: (batchId) => ({ actor: { ...TOKEN_CALLER, requestId: 'test' }, action: `suppressions.${op}`, detail: { batch_id: batchId } }),
      startedAt: new Date(),
    });

  it('applies batches in the order they were received, and a DELETE never lifts an unsubscribe that came after it', async () => {
    const repo = new ConsentRepo(herald.db);
    // A PUT and then a DELETE of the same pair, both staged, neither applied: applying the DELETE applies the
    // PUT first, so the pair ends lifted, as the two requests say.
    const put = await stage('put', ['o1', 'o2']);
    const del = await stage('delete', ['o1']);
    const applied = await repo.applyBatch(del, { wait: true });
    expect(applied).toMatchObject({ id: del, status: 'completed', changed: 1 });
    expect((await repo.getBatch(put))?.status).toBe('completed');
    expect((await api.call('GET', '/v1/users/o1/suppressions')).body.suppressions).toEqual([]);
    expect((await api.call('GET', '/v1/users/o2/suppressions')).body.suppressions).toMatchObject([{ topic: null }]);

    // A DELETE received, then an unsubscribe of the same pair, then the DELETE applied (late, as after a cut
    // connection): the unsubscribe stays.
    expect((await api.call('PUT', '/v1/suppressions', '{"user_id":"o3"}', ndjson)).body.in_effect).toBe(true);
    const late = await stage('delete', ['o3', 'o2']);
    await new Promise((r) => setTimeout(r, 20));
    await repo.put({ userId: 'o3', topic: '', reason: 'unsubscribed' }, fingerprintSql(fingerprint('', 'o3')), {
      actor: { ...TOKEN_CALLER, requestId: 'test' },
      action: 'suppression.unsubscribe',
    });
    expect(await repo.applyBatch(late, { wait: true })).toMatchObject({ status: 'completed', changed: 1 });
    expect((await api.call('GET', '/v1/users/o3/suppressions')).body.suppressions).toMatchObject([{ topic: null }]);
    expect((await api.call('GET', '/v1/users/o2/suppressions')).body.suppressions).toEqual([]);
  });

  it('answers 500 with the reason when the apply fails, and applies nothing of the batch', async () => {
    // A real failure inside the apply's transaction: a trigger refusing one of the lines.
    await side.query(`CREATE FUNCTION refuse_boom() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN IF NEW.user_id = 'boom' THEN RAISE EXCEPTION 'boom is refused'; END IF; RETURN NEW; END $$`);
    await side.query('CREATE TRIGGER refuse_boom BEFORE INSERT ON suppressions FOR EACH ROW EXECUTE FUNCTION refuse_boom()');
    try {
      const r = await api.call('PUT', '/v1/suppressions', `${lines(50, 'f')}\n{"user_id":"boom"}\n`, ndjson);
      expect(r.status).toBe(500);
      expect(r.body).toMatchObject({ code: 'INTERNAL', op: 'put', status: 'failed', in_effect: false, accepted: 51, rejected_count: 0 });
      expect(r.body.error).toContain('boom is refused');
      const got = await api.call('GET', `/v1/suppressions/batches/${r.body.id}`);
      expect(got.body).toMatchObject({ status: 'failed', in_effect: false });
      expect(got.body.error).toContain('boom is refused');
      const kept = await side.query("SELECT count(*)::int AS n FROM suppressions WHERE user_id LIKE 'f%' OR user_id = 'boom'");
      expect(kept.rows[0].n).toBe(0);
      // Audited with the change only: a batch that changed nothing has no audit row.
      const audited = await side.query("SELECT count(*)::int AS n FROM audit_log WHERE (detail->>'batch_id')::int = $1", [r.body.id]);
      expect(audited.rows[0].n).toBe(0);
    } finally {
      await side.query('DROP TRIGGER refuse_boom ON suppressions; DROP FUNCTION refuse_boom()');
    }
  });
});

// A batch whose apply meets a lock timeout again and again: counted, shown, and failed at the last attempt.
describe('a suppression batch on lock timeouts', () => {
  let ns: Namespace;
  let side: pg.Client;
  let db: pg.Pool;

  beforeAll(async () => {
    ns = await createNamespace();
    side = new pg.Client({ connectionString: ns.config.databaseUrl });
    await side.connect();
    // No Herald here (its sweep would apply the batch too): the repository on a pool whose lock waits end at 100 ms.
    db = new pg.Pool({ connectionString: ns.config.databaseUrl, options: '-c lock_timeout=100' });
  });

  afterAll(async () => {
    await side?.end();
    await db?.end();
    await ns?.drop();
  });

  it('stays applying with the last error until the last attempt fails it, and is audited only when applied', async () => {
    const repo = new ConsentRepo(db);
    const users = ['t1', 't2', 't3'];
    const audit = (batchId: number) => ({
      actor: { ...TOKEN_CALLER, requestId: 'test' },
      action: 'suppressions.put' as const,
      detail: { batch_id: batchId },
    });
    const stageOne = (): Promise<number> =>
      repo.stageBatch({
        op: 'put',
        copyText: (async function* () {
          yield users
            .map((u, i) => suppressionCopyLine(i + 1, { userId: u, topic: '', reason: null }, fingerprintSql(fingerprint('', u))))
            .join('');
        })(),
        counts: () => ({ total: users.length, accepted: users.length, rejectedCount: 0, rejected: [] }),
        audit,
        startedAt: new Date(),
      });
    const id = await stageOne();
    await side.query('BEGIN');
    await side.query('LOCK TABLE suppressions IN SHARE MODE');
    try {
      for (let i = 1; i < SUPPRESSION_APPLY_ATTEMPTS; i++) {
        await expect(repo.applyBatch(id, { wait: true })).rejects.toThrow(/lock timeout/);
        expect(await repo.getBatch(id)).toMatchObject({ status: 'applying', error: expect.stringContaining('lock timeout') });
      }
      await expect(repo.applyBatch(id, { wait: true })).rejects.toBeTruthy();
      const failed = await repo.getBatch(id);
      expect(failed).toMatchObject({ status: 'failed' });
      expect(failed!.error).toContain(`(${SUPPRESSION_APPLY_ATTEMPTS} attempts)`);
    } finally {
      await side.query('ROLLBACK');
    }
    // The next batch applies once the lock is gone, and its audit row carries what it changed.
    const next = await stageOne();
    expect(await repo.applyBatch(next, { wait: true })).toMatchObject({ status: 'completed', changed: 3 });
    const rows = await side.query(
      "SELECT (detail->>'batch_id')::int AS b, (detail->>'changed')::int AS c FROM audit_log WHERE action = 'suppressions.put' ORDER BY id",
    );
    expect(rows.rows).toEqual([{ b: next, c: 3 }]);
  });
});

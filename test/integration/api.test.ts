import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Keys } from '../../src/stream/keys.js';
import { announceStatus } from '../../src/stream/control.js';
import type { Herald } from '../../src/main.js';
import { Api, apiFor, createNamespace, startTestHerald, type Namespace } from '../helpers/herald.js';

describe('HTTP API: validation, auth, imports and errors', () => {
  let ns: Namespace;
  let herald: Herald;
  let api: Api;

  beforeAll(async () => {
    ns = await createNamespace({ maxBodyBytes: 4096, maxImportBytes: 1 << 20, workers: 0 });
    herald = await startTestHerald(ns);
    api = apiFor(herald);
  });

  afterAll(async () => {
    await herald?.stop();
    await ns?.drop();
  });

  it('refuses calls without a valid bearer key', async () => {
    const none = await fetch(`${api.base}/v1/campaigns`);
    expect(none.status).toBe(401);
    const wrong = await new Api(api.base, 'not-the-key-at-all').call('GET', '/v1/campaigns');
    expect(wrong.status).toBe(401);
    expect(wrong.body.field).toBe('authorization');
  });

  it('answers 400 naming the field for malformed JSON and invalid fields', async () => {
    const bad = await api.call('POST', '/v1/audiences', '{"name":', { 'content-type': 'application/json' });
    expect(bad.status).toBe(400);
    expect(bad.body.field).toBe('body');

    const noName = await api.call('POST', '/v1/audiences', { name: '' });
    expect(noName).toMatchObject({ status: 400, body: { field: 'name' } });

    const c = await api.call('POST', '/v1/campaigns', {
      name: 'x',
      audience_id: 1,
      channel: { type: 'webhook' },
      content: { title: 't', body: 'b' },
      chunk_size: 0,
    });
    expect(c.status).toBe(400);
    expect(c.body.field).toBe('channel.url');
    expect(c.body.fields.map((f: { field: string }) => f.field)).toEqual(['channel.url', 'chunk_size']);

    const unknownAudience = await api.call('POST', '/v1/campaigns', {
      name: 'x',
      audience_id: 999_999,
      channel: { type: 'null' },
      content: { title: 't', body: 'b' },
    });
    expect(unknownAudience).toMatchObject({ status: 400, body: { field: 'audience_id' } });

    const badList = await api.call('GET', '/v1/campaigns?limit=0&status=nope');
    expect(badList.status).toBe(400);
    expect(badList.body.fields.map((f: { field: string }) => f.field)).toEqual(['status', 'limit']);
  });

  it('answers 413 for a body over the limit and 404 for unknown ids and routes', async () => {
    const big = await api.call('POST', '/v1/audiences', { name: 'x'.repeat(10_000) });
    expect(big.status).toBe(413);
    expect((await api.call('GET', '/v1/campaigns/424242')).status).toBe(404);
    expect((await api.call('POST', '/v1/campaigns/424242/start')).status).toBe(404);
    expect((await api.call('GET', '/v1/campaigns/abc')).body.field).toBe('id');
    expect((await api.call('GET', '/v1/nothing-here')).status).toBe(404);
    const importTooBig = await api.call('POST', '/v1/audiences/1/recipients', 'x'.repeat(2 << 20), {
      'content-type': 'application/x-ndjson',
    });
    expect(importTooBig.status).toBe(413);
  });

  it('imports NDJSON: bad lines are rejected by number, duplicates count once, the rest imports', async () => {
    const a = await api.call('POST', '/v1/audiences', { name: 'mixed' });
    expect(a.status).toBe(201);
    const body = [
      '{"user_id":"a1","address":"a1@x.test","attrs":{"country":"FR"}}',
      '{"user_id":"a2"}',
      'not json',
      '',
      '{"user_id":""}',
      '{"user_id":"a1"}',
      '{"address":"no-id@x.test"}',
      '{"user_id":"tab\\there","address":"line\\nbreak"}',
      '{"user_id":"a3","attrs":[1]}',
    ].join('\n');
    const r = await api.importRecipients(a.body.id, body, { 'content-type': 'application/x-ndjson' });
    expect(r.status).toBe(200);
    expect(r.body.total).toBe(8);
    expect(r.body.imported).toBe(3);
    expect(r.body.duplicates).toBe(1);
    expect(r.body.rejected).toEqual([
      { line: 3, error: 'line: is not valid JSON' },
      { line: 5, error: 'user_id: must be 1 to 256 characters' },
      { line: 7, error: 'user_id: is required and must be a string' },
      { line: 9, error: 'attrs: must be an object' },
    ]);
    // A re-import of the same users adds nothing and keeps what is there.
    const again = await api.importRecipients(a.body.id, '{"user_id":"a2"}\n{"user_id":"a4"}\n', {
      'content-type': 'application/x-ndjson',
    });
    expect(again.body).toMatchObject({ imported: 1, duplicates: 1, total: 2 });
    const rows = await herald.db.query('SELECT user_id, address, attrs FROM recipients WHERE audience_id = $1 ORDER BY id', [a.body.id]);
    expect(rows.rows).toEqual([
      { user_id: 'a1', address: 'a1@x.test', attrs: { country: 'FR' } },
      { user_id: 'a2', address: null, attrs: null },
      { user_id: 'tab\there', address: 'line\nbreak', attrs: null },
      { user_id: 'a4', address: null, attrs: null },
    ]);
    // Ids follow the file, not the user ids' order (rows go in sorted by user_id), and come after the
    // audience's earlier ones; a repeated user keeps its first line.
    await api.call(
      'POST',
      `/v1/audiences/${a.body.id}/recipients`,
      '{"user_id":"zz"}\n{"user_id":"bb","address":"first"}\n{"user_id":"mm"}\n{"user_id":"bb","address":"second"}\n',
      {
        'content-type': 'application/x-ndjson',
      },
    );
    const later = await herald.db.query('SELECT id, user_id, address FROM recipients WHERE audience_id = $1 ORDER BY id', [a.body.id]);
    expect(later.rows.map((x: { user_id: string }) => x.user_id)).toEqual(['a1', 'a2', 'tab\there', 'a4', 'zz', 'bb', 'mm']);
    expect(later.rows.find((x: { user_id: string }) => x.user_id === 'bb').address).toBe('first');
  });

  it('imports CSV with a header, extra columns as attrs, and reports bad rows', async () => {
    const a = await api.call('POST', '/v1/audiences', { name: 'csv' });
    const csv = 'user_id,address,country\nc1,c1@x.test,DE\nc2,,\n"c3",c3@x.test,"FR"\n,missing@x.test,US\nc4,"unterminated\n';
    const r = await api.importRecipients(a.body.id, csv, { 'content-type': 'text/csv' });
    expect(r.status).toBe(200);
    expect(r.body.imported).toBe(3);
    expect(r.body.rejected[0]).toEqual({ line: 5, error: 'user_id: must be 1 to 256 characters' });
    expect(r.body.rejected_count).toBeGreaterThanOrEqual(1);
    const noHeader = await api.importRecipients(a.body.id, 'id,address\n1,x\n', { 'content-type': 'text/csv' });
    expect(noHeader).toMatchObject({ status: 400, body: { field: 'user_id' } });
    const wrongType = await api.importRecipients(a.body.id, 'x', { 'content-type': 'application/xml' });
    expect(wrongType).toMatchObject({ status: 415, body: { field: 'content-type' } });
    const missing = await api.call('POST', '/v1/audiences/987654/recipients', '{"user_id":"z"}', {
      'content-type': 'application/x-ndjson',
    });
    expect(missing.status).toBe(404);
    const size = await herald.db.query('SELECT count(*)::int AS n FROM recipients WHERE audience_id = $1', [a.body.id]);
    expect(size.rows[0].n).toBe(3);
  });

  it('moves campaign status only through legal transitions', async () => {
    const a = await api.call('POST', '/v1/audiences', { name: 'lifecycle' });
    const c = await api.call('POST', '/v1/campaigns', {
      name: 'lc',
      audience_id: a.body.id,
      channel: { type: 'null' },
      content: { title: 't', body: 'b' },
    });
    const id = c.body.id;
    expect(await api.call('POST', `/v1/campaigns/${id}/pause`)).toMatchObject({ status: 409, body: { status: 'draft' } });
    // Racing starts: exactly one wins.
    const starts = await Promise.all([1, 2, 3, 4].map(() => api.call('POST', `/v1/campaigns/${id}/start`)));
    expect(starts.filter((s) => s.status === 200)).toHaveLength(1);
    expect(starts.filter((s) => s.status === 409).every((s) => s.body.status === 'sending')).toBe(true);
    expect((await api.call('POST', `/v1/campaigns/${id}/pause`)).body).toEqual({ id, status: 'paused' });
    expect((await api.call('POST', `/v1/campaigns/${id}/cancel`)).body).toEqual({ id, status: 'cancelled' });
    expect(await api.call('POST', `/v1/campaigns/${id}/resume`)).toMatchObject({ status: 409, body: { status: 'cancelled' } });
    const got = await api.call('GET', `/v1/campaigns/${id}`);
    expect(got.body).toMatchObject({ id, status: 'cancelled', delivered: 0, sent: 0 });
    expect(got.body.finished_at).not.toBeNull();
  });

  it('keeps the state machine consistent under racing pause and resume calls', async () => {
    // A campaign that stays `sending` for the whole test: 1 message a second.
    const audienceId = await api.audience(50, 'race');
    const id = await api.nullCampaign(audienceId, { name: 'racing', rate_limit: 1 });
    expect((await api.call('POST', `/v1/campaigns/${id}/start`)).status).toBe(200);
    let state = 'sending';
    for (let round = 0; round < 5; round++) {
      const calls = await Promise.all(
        ['pause', 'resume', 'pause', 'resume', 'pause', 'resume'].map((cmd) =>
          api.call('POST', `/v1/campaigns/${id}/${cmd}`).then((r) => ({ cmd, ...r })),
        ),
      );
      expect(calls.every((r) => r.status === 200 || r.status === 409)).toBe(true);
      // Serialised by PostgreSQL, the winners alternate from the state the round began in: from sending,
      // pause, resume, pause…; from paused, resume, pause…. So the final state follows from the counts.
      const won = (cmd: string): number => calls.filter((r) => r.cmd === cmd && r.status === 200).length;
      const [first, second] = state === 'sending' ? ['pause', 'resume'] : ['resume', 'pause'];
      const lead = won(first!) - won(second!);
      expect([0, 1]).toContain(lead);
      state = lead === 1 ? (first === 'pause' ? 'paused' : 'sending') : state;
      expect((await api.call('GET', `/v1/campaigns/${id}`)).body.status).toBe(state);
      // Each 409 names the status that made the move illegal.
      for (const r of calls.filter((x) => x.status === 409)) expect(r.body.status).toBe(r.cmd === 'pause' ? 'paused' : 'sending');
    }
    expect((await api.call('POST', `/v1/campaigns/${id}/cancel`)).body.status).toBe('cancelled');
  });

  it('keeps the newer status in Redis when two announcements arrive out of order', async () => {
    const keys = new Keys(ns.config.redisPrefix);
    const id = 987_001;
    expect(await announceStatus(herald.gateway, id, 'sending', 7)).toBe(true);
    expect(await announceStatus(herald.gateway, id, 'paused', 6)).toBe(false);
    expect(await herald.redis.get(keys.status(id))).toBe('sending');
    expect(await announceStatus(herald.gateway, id, 'paused', 8)).toBe(true);
    expect(await herald.redis.get(keys.status(id))).toBe('paused');
  });

  it('lists audiences newest first with their imports, and reads one with its exact size', async () => {
    const a = (await api.call('POST', '/v1/audiences', { name: 'listed one' })).body.id as number;
    const b = await api.audience(25, 'lst');
    const page = await api.call('GET', '/v1/audiences?limit=2');
    expect(page.status).toBe(200);
    expect(page.body.audiences.map((x: any) => x.id)).toEqual([b, a]);
    expect(page.body.audiences[0]).toMatchObject({ imports: 1, imported: 25 });
    expect(page.body.audiences[1]).toMatchObject({ name: 'listed one', imports: 0, imported: 0, last_import_at: null });
    const next = await api.call('GET', `/v1/audiences?limit=500&before=${page.body.next_before}`);
    expect(next.body.audiences.every((x: any) => x.id < a)).toBe(true);
    expect((await api.call('GET', `/v1/audiences/${b}`)).body).toMatchObject({ id: b, recipients: 25 });
    expect((await api.call('GET', '/v1/audiences/99999999')).status).toBe(404);
    expect((await api.call('GET', '/v1/audiences?limit=9999')).body.field).toBe('limit');
    expect((await api.call('GET', '/v1/audiences?before=-1')).body.field).toBe('before');
  });

  it('reports health of every dependency', async () => {
    const h = await fetch(`${api.base}/healthz`);
    expect(h.status).toBe(200);
    expect(await h.json()).toMatchObject({ status: 'ok', checks: { postgres: 'ok', redis: 'ok', clickhouse: 'ok' } });
    // Nothing listens on port 1: ClickHouse is reported as the one that does not answer.
    const broken = await startTestHerald(ns, { clickhouseUrl: 'http://127.0.0.1:1', workers: 0 });
    try {
      const r = await fetch(`http://127.0.0.1:${broken.port}/healthz`);
      expect(r.status).toBe(503);
      expect(await r.json()).toMatchObject({ status: 'unavailable', failing: ['clickhouse'] });
    } finally {
      await broken.stop();
    }
  });
});

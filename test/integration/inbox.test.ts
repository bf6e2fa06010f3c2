import { readFile } from 'node:fs/promises';
import { describe, expect, it } from 'vitest';
import { splitStatements } from '../../src/migrate/migrate.js';
import { tokenSecret } from '../../src/config.js';
import { trackingToken } from '../../src/domain/tokens.js';
import { Api, eventCounts, eventually, useHerald } from '../helpers/herald.js';
import { InboxReader } from '../../src/progress/inbox-reader.js';

const COUNTRIES = ['FR', 'DE', 'US'];
const country = (i: number): string => COUNTRIES[i % 3]!;

/** Runs `fn` over `items` with at most `width` at a time. */
async function pool<T>(items: T[], width: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: width }, async () => {
      while (next < items.length) await fn(items[next++]!);
    }),
  );
}

describe('the in-app inbox, read receipts and read-rate analytics', () => {
  const ctx = useHerald();

  async function audienceWithCountries(n: number, prefix: string): Promise<number> {
    const { api } = ctx;
    const a = await api.call('POST', '/v1/audiences', { name: `inbox ${prefix}` });
    const lines = Array.from({ length: n }, (_, k) => JSON.stringify({ user_id: `${prefix}${k + 1}`, attrs: { country: country(k + 1) } }));
    const r = await api.importRecipients(a.body.id, lines.join('\n'), { 'content-type': 'application/x-ndjson' });
    expect(r.body.imported).toBe(n);
    return a.body.id as number;
  }

  it('delivers to 100,000 inboxes without a row per recipient, and counts every read exactly', async () => {
    const { api, herald } = ctx;
    const n = 100_000;
    const audienceId = await audienceWithCountries(n, 'i');
    const rowsBefore = Number((await herald.db.query('SELECT count(*) AS n FROM recipients')).rows[0].n);
    const id = await api.nullCampaign(audienceId, {
      name: 'inbox',
      channel: { type: 'inbox' },
      content: { title: 'Hello', body: 'News' },
      segment_by: 'country',
    });
    await api.call('POST', `/v1/campaigns/${id}/start`);
    const done = await api.waitForStatus(id, ['completed'], 120_000);
    expect(done.delivered).toBe(n);
    // Delivering wrote no row per recipient in PostgreSQL.
    expect(Number((await herald.db.query('SELECT count(*) AS n FROM recipients')).rows[0].n)).toBe(rowsBefore);

    // 30,000 distinct readers: 27,000 by provider callback, 2,000 in the inbox, 1,000 by pixel; then 500
    // of them read again in the inbox and 500 by pixel.
    const readers = Array.from({ length: 30_000 }, (_, k) => `i${k * 3 + 1 + (k % 3)}`); // spread over all three countries
    const byCallback = readers.slice(0, 27_000);
    const byInbox = readers.slice(27_000, 29_000);
    const byPixel = readers.slice(29_000);
    const again = [...readers.slice(0, 500).map((u) => ['inbox', u]), ...readers.slice(500, 1_000).map((u) => ['pixel', u])];
    // Sent at once: the recorder takes concurrent calls together (group commit).
    const calls = [];
    for (let k = 0; k < byCallback.length; k += 3_000)
      calls.push(byCallback.slice(k, k + 3_000).map((u) => ({ campaign_id: id, user_id: u, kind: 'read' })));
    for (const [batch, r] of await Promise.all(calls.map(async (b) => [b, await api.call('POST', '/v1/events', b)] as const)))
      expect(r.body).toEqual({ accepted: batch.length, rejected: [] });
    const secret = tokenSecret(herald.config);
    const readInbox = async (u: string): Promise<void> => {
      const r = await api.call('POST', `/v1/users/${u}/inbox/${id}/read`);
      expect(r.status).toBe(204);
    };
    const readPixel = async (u: string): Promise<void> => {
      const res = await fetch(`${api.base}/t/${trackingToken(secret, id, u)}`);
      expect(res.headers.get('content-type')).toBe('image/gif');
      expect((await res.arrayBuffer()).byteLength).toBeGreaterThan(20);
    };
    await pool(byInbox, 128, readInbox);
    await pool(byPixel, 128, readPixel);
    await pool(again, 128, ([how, u]) => (how === 'inbox' ? readInbox(u!) : readPixel(u!)));
    // Forged and altered pixels: still an image, no read.
    const forged = trackingToken('not the secret', id, 'i2');
    expect((await fetch(`${api.base}/t/${forged}`)).status).toBe(200);
    const genuine = trackingToken(secret, id, 'i2');
    const resigned = genuine.slice(0, -1) + (genuine.endsWith('A') ? 'B' : 'A');
    const otherUser = genuine.replace(`.${Buffer.from('i2').toString('base64url')}.`, `.${Buffer.from('i3').toString('base64url')}.`);
    expect(otherUser).not.toBe(genuine);
    for (const t of [resigned, otherUser]) expect((await fetch(`${api.base}/t/${t}`)).status).toBe(200);
    expect((await fetch(`${api.base}/t/garbage`)).status).toBe(200);

    const reads = 30_000 + 1_000;
    // pixel reads and callbacks are spooled before their answer and stored right after
    expect(
      await eventually(
        () => eventCounts(herald, id, 'read'),
        (c) => c.n >= reads,
      ),
    ).toEqual({ n: reads, u: 30_000 });
    const got = (await api.call('GET', `/v1/campaigns/${id}`)).body;
    expect(got).toMatchObject({ delivered: n, read: reads, unique_readers: 30_000 });

    const stats = await api.call('GET', `/v1/campaigns/${id}/stats?bucket=minute`);
    expect(stats.status).toBe(200);
    expect(stats.body.totals).toMatchObject({ delivered: n, read: reads, unique_readers: 30_000, pending: 0 });
    expect(stats.body.read_rate).toBeCloseTo(0.3, 6);
    const sum = (k: 'delivered' | 'read'): number => stats.body.series.reduce((s: number, p: Record<string, number>) => s + p[k]!, 0);
    expect([sum('delivered'), sum('read')]).toEqual([n, reads]);
    expect(stats.body.series.every((p: { t: string }) => /^\d{4}-\d\d-\d\dT\d\d:\d\d:00Z$/.test(p.t))).toBe(true);
    const hourly = (await api.call('GET', `/v1/campaigns/${id}/stats?bucket=hour`)).body;
    expect(hourly.series.reduce((s: number, p: { read: number }) => s + p.read, 0)).toBe(reads);
    const { p50, p90, p99 } = stats.body.time_to_read;
    expect(p50).not.toBeNull();
    expect(0 <= p50 && p50 <= p90 && p90 <= p99 && p99 < 600).toBe(true);
    // Segments: deliveries and unique readers per country, exactly as the test read.
    const expected = COUNTRIES.map((c) => {
      const delivered = Array.from({ length: n }, (_, k) => country(k + 1)).filter((x) => x === c).length;
      const uniq = readers.filter((u) => country(Number(u.slice(1))) === c).length;
      return { segment: c, delivered, unique_readers: uniq };
    });
    for (const e of expected) expect(stats.body.by_segment).toContainEqual(expect.objectContaining(e));
    expect((await api.call('GET', `/v1/campaigns/${id}/stats?bucket=week`)).body.field).toBe('bucket');

    // The analyst queries in schemas/clickhouse/queries give the same answers.
    const query = async (file: string): Promise<Array<Array<Record<string, unknown>>>> => {
      const sql = (await readFile(`schemas/clickhouse/queries/${file}`, 'utf8')).replace(/campaign_id = 1\b/g, `campaign_id = ${id}`);
      const out = [];
      for (const stmt of splitStatements(sql)) out.push(await herald.ch.rows<Record<string, unknown>>(stmt));
      return out;
    };
    const [hours] = await query('read_rate_by_hour.sql');
    expect(hours!.reduce((s, r) => s + Number(r.reads), 0)).toBe(reads);
    expect(hours!.reduce((s, r) => s + Number(r.delivered), 0)).toBe(n);
    const [segs] = await query('read_rate_by_segment.sql');
    for (const e of expected) {
      expect(segs).toContainEqual(expect.objectContaining({ segment: e.segment }));
      const row = segs!.find((r) => r.segment === e.segment)!;
      expect([Number(row.delivered), Number(row.readers)]).toEqual([e.delivered, e.unique_readers]);
    }
    const [cohort, quantiles] = await query('readers_within_an_hour.sql');
    expect(Number(cohort![0]!.readers)).toBe(30_000);
    expect(Number(cohort![0]!.within_1h)).toBe(30_000);
    expect(quantiles![0]!.seconds_p50_p90_p99).toHaveLength(3);

    // Inboxes: read and unread, with the user's own token.
    const tokenFor = async (u: string): Promise<string> => (await api.call('POST', `/v1/users/${u}/token`)).body.token as string;
    const asUser = (token: string): Api => new Api(api.base, token);
    const reader = readers[27_000]!; // read in the inbox
    const stranger = 'i3'; // k = 0 reads i1; i3 is never read (readers are i1, i5, i9, i10, …)
    expect(readers).not.toContain(stranger);
    const mine = await asUser(await tokenFor(reader)).call('GET', `/v1/users/${reader}/inbox`);
    expect(mine.status).toBe(200);
    expect(mine.body.messages).toEqual([expect.objectContaining({ campaign_id: id, title: 'Hello', body: 'News', read: true })]);
    const unread = await asUser(await tokenFor(stranger)).call('GET', `/v1/users/${stranger}/inbox`);
    expect(unread.body.messages).toEqual([expect.objectContaining({ campaign_id: id, read: false })]);
    expect((await asUser(await tokenFor(stranger)).call('GET', `/v1/users/${stranger}/inbox/unread_count`)).body).toEqual({ unread: 1 });
    expect((await api.call('GET', `/v1/users/${reader}/inbox/unread_count`)).body).toEqual({ unread: 0 }); // admin key works too

    // Credentials: another user's token, a forged one, none.
    const other = await asUser(await tokenFor(stranger)).call('GET', `/v1/users/${reader}/inbox`);
    expect(other).toMatchObject({ status: 403, body: { field: 'authorization' } });
    expect((await asUser(await tokenFor(stranger)).call('POST', `/v1/users/${reader}/inbox/${id}/read`)).status).toBe(403);
    const good = await tokenFor(reader);
    const altered = good.slice(0, -2) + (good.endsWith('A') ? 'BB' : 'AA');
    expect((await asUser(altered).call('GET', `/v1/users/${reader}/inbox`)).status).toBe(401);
    expect((await new Api(api.base, '').call('GET', `/v1/users/${reader}/inbox`)).status).toBe(401);
    // Not a recipient: 404; and nothing was recorded by any refused call.
    expect((await api.call('POST', `/v1/users/nobody/inbox/${id}/read`)).status).toBe(404);
    expect(await eventCounts(herald, id, 'read')).toEqual({ n: reads, u: 30_000 });
  });

  it('shows a paused campaign only to the recipients it reached', async () => {
    const { api, herald } = ctx;
    const audienceId = await audienceWithCountries(2_000, 'p');
    const id = await api.nullCampaign(audienceId, { name: 'slow inbox', channel: { type: 'inbox' }, chunk_size: 50, rate_limit: 500 });
    await api.call('POST', `/v1/campaigns/${id}/start`);
    await new Promise((r) => setTimeout(r, 600));
    await api.call('POST', `/v1/campaigns/${id}/pause`);
    await new Promise((r) => setTimeout(r, 800));
    const reached = await herald.ch.rows<{ user_id: string }>(
      `SELECT user_id FROM message_events WHERE campaign_id = ${id} AND kind = 'delivered'`,
    );
    const got = new Set(reached.map((r) => r.user_id));
    expect(got.size).toBeGreaterThan(0);
    expect(got.size).toBeLessThan(2_000);
    const inA = [...got][0]!;
    const notIn = Array.from({ length: 2_000 }, (_, k) => `p${k + 1}`).find((u) => !got.has(u))!;
    expect((await api.call('GET', `/v1/users/${inA}/inbox`)).body.messages.map((m: { campaign_id: number }) => m.campaign_id)).toEqual([
      id,
    ]);
    expect((await api.call('GET', `/v1/users/${notIn}/inbox`)).body.messages).toEqual([]);
    // Marking read is for recipients: one not reached yet may still mark it (it is theirs once sent).
    expect((await api.call('POST', `/v1/users/${inA}/inbox/${id}/read`)).status).toBe(204);
    expect((await api.call('GET', `/v1/users/${inA}/inbox`)).body.messages[0].read).toBe(true);
    await api.call('POST', `/v1/campaigns/${id}/cancel`);
  });

  it('looks up the deliveries of more readers at once than ClickHouse takes in one IN list, odd ids too', async () => {
    const campaign = 987_654;
    const odd = ['a,b', "it's", 'tab\there', 'back\\slash', 'ünï'];
    const tickets = [];
    for (const [i, u] of odd.entries())
      tickets.push(
        await ctx.herald.sink.append({ campaignId: campaign, userId: u, kind: 'delivered', atSec: 1_700_000_000 + i, segment: `s${i}` }),
      );
    ctx.herald.sink.flushSoon();
    await Promise.all(tickets.map((t) => t.stored));
    const reader = new InboxReader(ctx.herald.ch);
    // 60,000 ids as a list of literals would be 60,000 AST nodes in one query: past ClickHouse's 50,000 limit.
    const ids = [...Array.from({ length: 60_000 }, (_, k) => `nobody-${k}`), ...odd];
    const found = await reader.deliveries(campaign, ids);
    expect([...found.keys()].sort()).toEqual([...odd].sort());
    expect(found.get("it's")).toEqual({ deliveredAtSec: 1_700_000_001, segment: 's1' });
    // an id with NUL in it cannot go through the NUL-separated form: the list form answers
    const withNul = await reader.deliveries(campaign, ['nul\0id', ...odd]);
    expect(withNul.size).toBe(odd.length);
  });

  it('validates provider callbacks item by item', async () => {
    const { api } = ctx;
    const audienceId = await audienceWithCountries(10, 'cb');
    const id = await api.nullCampaign(audienceId, { name: 'callbacks' });
    const r = await api.call('POST', '/v1/events', [
      { campaign_id: id, user_id: 'cb1', kind: 'delivered', at: '2026-01-01T00:00:00Z' },
      { campaign_id: id, user_id: 'cb2', kind: 'failed', error: 'mailbox full' },
      { campaign_id: id, user_id: '', kind: 'read' },
      { campaign_id: 'x', user_id: 'cb3', kind: 'opened' },
      { campaign_id: 999_999_999, user_id: 'cb4', kind: 'read' },
      { campaign_id: id, user_id: 'cb5', kind: 'read', at: 'yesterday' },
      7,
    ]);
    expect(r.status).toBe(200);
    expect(r.body.accepted).toBe(2);
    expect(r.body.rejected).toEqual([
      { index: 2, field: 'user_id', error: expect.any(String) },
      { index: 3, field: 'campaign_id', error: expect.any(String) },
      { index: 3, field: 'kind', error: expect.any(String) },
      { index: 4, field: 'campaign_id', error: 'no such campaign' },
      { index: 5, field: 'at', error: expect.any(String) },
      { index: 6, field: 'event', error: 'must be an object' },
    ]);
    // A provider's delivered / failed are kept beside Herald's own outcomes, never added to them.
    const got = await eventually(
      async () => (await api.call('GET', `/v1/campaigns/${id}/stats`)).body,
      (b) => b.totals.confirmed + b.totals.bounced >= 2,
    );
    expect(got.totals).toMatchObject({ delivered: 0, failed: 0, confirmed: 1, bounced: 1 });
    expect((await api.call('POST', '/v1/events', { nope: true })).body.field).toBe('body');
  });
});

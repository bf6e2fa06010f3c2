/**
 * A completed campaign's count check (sink/count-repair.ts) is recorded in PostgreSQL, so one that did not
 * finish (ClickHouse away at that moment, or its process killed first) is run again by a dispatcher's sweep.
 * Here a campaign completes (its own process checks it), then its `campaign_counts` is made short of the
 * stored outcomes, as a server that died between an insert's parts leaves it, and its check is made due
 * again: while another process's claim on it is fresh, the sweep leaves it alone; once the claim is old,
 * the sweep adds what is missing, once, and records the check.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Herald } from '../../src/main.js';
import { EventBlockWriter } from '../../src/sink/native-block.js';
import { packStrings } from '../../src/domain/packed-ids.js';
import { apiFor, createNamespace, startTestHerald, type Api, type Namespace } from '../helpers/herald.js';

describe('the count check of a completed campaign', () => {
  let ns: Namespace;
  let herald: Herald;
  let api: Api;

  beforeAll(async () => {
    ns = await createNamespace({ pollMs: 100 });
    herald = await startTestHerald(ns);
    api = apiFor(herald);
  });

  afterAll(async () => {
    await herald?.stop();
    await ns?.drop();
  });

  const checkedAt = async (id: number): Promise<unknown> =>
    (await herald.db.query('SELECT counts_checked_at FROM campaigns WHERE id = $1', [id])).rows[0].counts_checked_at;

  /** stored delivered rows against campaign_counts' sum */
  const counts = async (id: number): Promise<{ stored: number; view: number }> => {
    const [s] = await herald.ch.rows<{ n: string }>(
      `SELECT count() AS n FROM message_events WHERE campaign_id = ${id} AND kind = 'delivered'`,
    );
    const [v] = await herald.ch.rows<{ n: string }>(
      `SELECT countMerge(events) AS n FROM campaign_counts WHERE campaign_id = ${id} AND kind = 'delivered'`,
    );
    return { stored: Number(s?.n ?? 0), view: Number(v?.n ?? 0) };
  };

  it('is run again by the sweep once a claim on it has aged, and adds what is missing once', async () => {
    const id = await api.nullCampaign(await api.audience(300, 'cc'), { name: 'count check' });
    await api.call('POST', `/v1/campaigns/${id}/start`);
    await api.waitForStatus(id, ['completed'], 30_000);
    for (let i = 0; i < 100 && (await checkedAt(id)) === null; i++) await new Promise((r) => setTimeout(r, 100));
    expect(await checkedAt(id)).not.toBeNull();
    expect(await counts(id)).toEqual({ stored: 300, view: 300 });

    // A sub-batch stored whose campaign_counts part was never written.
    const db = ns.config.clickhouseDb;
    await herald.ch.command(`DETACH TABLE ${db}.campaign_counts_mv`);
    try {
      const w = new EventBlockWriter(id, 999_999n);
      const m0 = w.mark();
      const users = ['x1', 'x2', 'x3', 'x4', 'x5'];
      w.addOutcomes(id, packStrings(users), users.length, new Map(), Math.floor(Date.now() / 1000), 'delivered');
      await herald.ch.insertRaw('message_events', 'Native', w.finish([{ start: m0, end: w.mark() }]));
    } finally {
      await herald.ch.command(`ATTACH TABLE ${db}.campaign_counts_mv`);
    }
    expect(await counts(id)).toEqual({ stored: 305, view: 300 });

    // Due again, but claimed a moment ago by a process that is (as far as anyone knows) still at it.
    await herald.db.query('UPDATE campaigns SET counts_checked_at = NULL, counts_claimed_at = now() WHERE id = $1', [id]);
    await new Promise((r) => setTimeout(r, 1_000));
    expect(await counts(id)).toEqual({ stored: 305, view: 300 });
    expect(await checkedAt(id)).toBeNull();

    // That process died: its claim ages, and the sweep takes the check on.
    await herald.db.query(`UPDATE campaigns SET counts_claimed_at = now() - interval '2 minutes' WHERE id = $1`, [id]);
    for (let i = 0; i < 100 && (await checkedAt(id)) === null; i++) await new Promise((r) => setTimeout(r, 100));
    expect(await checkedAt(id)).not.toBeNull();
    expect(await counts(id)).toEqual({ stored: 305, view: 305 });
    // done: not run again
    await new Promise((r) => setTimeout(r, 1_000));
    expect(await counts(id)).toEqual({ stored: 305, view: 305 });
  });
});

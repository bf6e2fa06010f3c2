/**
 * Peer (b): the naive design, done as well as it goes. Starting a campaign writes one `message_items`
 * row per recipient (INSERT … SELECT). `workers` loops take consecutive ranges of 500 row ids from a
 * shared cursor (no lock contention, no SKIP LOCKED scans over dead rows), read the range's pending
 * rows by primary key, call a no-op send per recipient and mark the range sent: two statements per chunk. The rows are
 * its event record and its progress: `count(*) … GROUP BY status`. Measured from the INSERT to the last
 * range marked sent (or to `maxSeconds`: recipients/s is then what it sent in that time).
 */
import type { Pool } from 'pg';
import { noopSend, type PeerResult } from './peer.js';

export interface NaiveOptions {
  pool: Pool;
  audienceId: number;
  campaignId: number;
  chunk: number;
  workers: number;
  /**
   * Stop sending after this long (at 10M it would take many minutes); the rest is then marked sent in
   * one untimed UPDATE, so the progress query runs on a finished campaign's rows.
   */
  maxSeconds: number;
}

export const NAIVE_SCHEMA = `
CREATE TABLE IF NOT EXISTS message_items (
  id           bigserial PRIMARY KEY,
  campaign_id  bigint NOT NULL,
  recipient_id bigint NOT NULL,
  user_id      text NOT NULL,
  status       text NOT NULL DEFAULT 'pending',
  error        text,
  updated_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS message_items_campaign ON message_items (campaign_id);
`;

export async function runNaive(o: NaiveOptions): Promise<PeerResult> {
  await o.pool.query(NAIVE_SCHEMA);
  const t0 = performance.now();
  const inserted = await o.pool.query<{ lo: string; hi: string }>(
    `WITH ins AS (
       INSERT INTO message_items (campaign_id, recipient_id, user_id)
       SELECT $1, id, user_id FROM recipients WHERE audience_id = $2 ORDER BY id RETURNING id
     ) SELECT min(id) AS lo, max(id) AS hi FROM ins`,
    [o.campaignId, o.audienceId],
  );
  // Fresh statistics, so the range queries use the primary key.
  await o.pool.query('ANALYZE message_items');
  const firstMessageMs = Math.round(performance.now() - t0);
  const hi = Number(inserted.rows[0]!.hi);
  let next = Number(inserted.rows[0]!.lo);
  let recipients = 0;
  const deadline = t0 + o.maxSeconds * 1000;
  const loop = async (): Promise<void> => {
    while (next <= hi && performance.now() < deadline) {
      const from = next;
      next += o.chunk;
      const rows = await o.pool.query({
        text: `SELECT user_id FROM message_items WHERE id >= $1 AND id < $2 AND status = 'pending'`,
        values: [from, from + o.chunk],
        rowMode: 'array',
      });
      for (const [user] of rows.rows as Array<[string]>) noopSend(user);
      await o.pool.query(`UPDATE message_items SET status = 'sent', updated_at = now() WHERE id >= $1 AND id < $2 AND status = 'pending'`, [
        from,
        from + o.chunk,
      ]);
      recipients += rows.rows.length;
    }
  };
  await Promise.all(Array.from({ length: o.workers }, loop));
  const seconds = (performance.now() - t0) / 1000;
  const cut = next <= hi;
  if (cut) await o.pool.query(`UPDATE message_items SET status = 'sent', updated_at = now() WHERE id >= $1 AND status = 'pending'`, [next]);
  return {
    seconds,
    recipients,
    firstMessageMs,
    extra: { rows: hi - Number(inserted.rows[0]!.lo) + 1, cutShortAfterSeconds: cut ? o.maxSeconds : 0 },
  };
}

/** The naive progress query, and how long it takes (median of `times`). */
export async function naiveProgress(pool: Pool, campaignId: number, times = 5): Promise<{ ms: number; counts: Record<string, number> }> {
  const ms: number[] = [];
  let counts: Record<string, number> = {};
  for (let i = 0; i < times; i++) {
    const t = performance.now();
    const r = await pool.query<{ status: string; n: string }>(
      'SELECT status, count(*) AS n FROM message_items WHERE campaign_id = $1 GROUP BY status',
      [campaignId],
    );
    ms.push(performance.now() - t);
    counts = Object.fromEntries(r.rows.map((x) => [x.status, Number(x.n)]));
  }
  return { ms: median(ms), counts };
}

export async function naiveBytes(pool: Pool): Promise<number> {
  const r = await pool.query<{ n: string }>(`SELECT pg_total_relation_size('message_items') AS n`);
  return Number(r.rows[0]!.n);
}

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

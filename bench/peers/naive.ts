/**
 * Peer (b): the naive design. Starting a campaign writes one `message_items` row per recipient
 * (INSERT … SELECT); `workers` loops each claim 500 pending rows (UPDATE … FOR UPDATE SKIP LOCKED
 * RETURNING), call a no-op send per recipient and mark them sent. The rows are its event record and its
 * progress: `count(*) … GROUP BY status`. Measured from the INSERT to the last row marked sent.
 */
import type { Pool } from 'pg';
import { noopSend, type PeerResult } from './peer.js';

export interface NaiveOptions {
  pool: Pool;
  audienceId: number;
  campaignId: number;
  chunk: number;
  workers: number;
}

export const NAIVE_SCHEMA = `
CREATE TABLE IF NOT EXISTS message_items (
  id          bigserial PRIMARY KEY,
  campaign_id bigint NOT NULL,
  recipient_id bigint NOT NULL,
  user_id     text NOT NULL,
  status      text NOT NULL DEFAULT 'pending',
  error       text,
  updated_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS message_items_pending ON message_items (campaign_id, status, id);
`;

export async function runNaive(o: NaiveOptions): Promise<PeerResult> {
  await o.pool.query(NAIVE_SCHEMA);
  const t0 = performance.now();
  const inserted = await o.pool.query(
    'INSERT INTO message_items (campaign_id, recipient_id, user_id) SELECT $1, id, user_id FROM recipients WHERE audience_id = $2',
    [o.campaignId, o.audienceId],
  );
  const firstMessageMs = Math.round(performance.now() - t0);
  let recipients = 0;
  const loop = async (): Promise<void> => {
    for (;;) {
      const claimed = await o.pool.query({
        text: `UPDATE message_items SET status = 'sending', updated_at = now() WHERE id IN (
                 SELECT id FROM message_items WHERE campaign_id = $1 AND status = 'pending' ORDER BY id LIMIT $2 FOR UPDATE SKIP LOCKED
               ) RETURNING id, user_id`,
        values: [o.campaignId, o.chunk],
        rowMode: 'array',
      });
      if (claimed.rows.length === 0) return;
      const ids: string[] = [];
      for (const [id, user] of claimed.rows as Array<[string, string]>) {
        noopSend(user);
        ids.push(id);
      }
      await o.pool.query(`UPDATE message_items SET status = 'sent', updated_at = now() WHERE id = ANY($1::bigint[])`, [ids]);
      recipients += ids.length;
    }
  };
  await Promise.all(Array.from({ length: o.workers }, loop));
  const seconds = (performance.now() - t0) / 1000;
  return { seconds, recipients, firstMessageMs, extra: { rowsInserted: inserted.rowCount ?? 0 } };
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

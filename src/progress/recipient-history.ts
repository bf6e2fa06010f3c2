/**
 * One recipient's rows of one campaign in ClickHouse `message_events`: every outcome (one per round),
 * provider callback and read. The table is ordered by (campaign_id, kind, user_id), so the query reads one
 * small range per kind. A row stored twice (an insert retried after a lost answer) has the same batch,
 * time and error, and DISTINCT folds it.
 */
import type { ClickHouse } from '../clickhouse/client.js';
import { str, uint } from '../clickhouse/sql.js';
import type { EventKind } from '../domain/message-event.js';
import type { RecipientEventRow } from '../domain/recipient-outcome.js';

/** Past this many rows (reads, mostly) the answer is cut: the outcome rows come first. */
const MAX_ROWS = 1000;

export class RecipientHistory {
  constructor(private readonly ch: ClickHouse) {}

  async events(campaignId: number, userId: string): Promise<RecipientEventRow[]> {
    // Aliases unlike the column names, which 18.16 and the newer analyzer resolve alike.
    const rows = await this.ch.rows<{ k: string; t: string | number; error: string; b: string }>(
      `SELECT DISTINCT toString(kind) AS k, toUInt32(at) AS t, error, toString(batch) AS b FROM message_events
       WHERE campaign_id = ${uint(campaignId)} AND user_id = ${str(userId)}
       ORDER BY k = 'read', t LIMIT ${MAX_ROWS}`,
    );
    return rows.map((r) => ({ kind: r.k as EventKind, at: Number(r.t), error: r.error, batch: BigInt(r.b) }));
  }
}

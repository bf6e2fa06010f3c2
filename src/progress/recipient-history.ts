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
    const rows = await this.ch.rows<{ kind: string; at: string | number; error: string; batch: string }>(
      `SELECT DISTINCT toString(kind) AS kind, toUInt32(at) AS at, error, toString(batch) AS batch FROM message_events
       WHERE campaign_id = ${uint(campaignId)} AND user_id = ${str(userId)}
       ORDER BY kind = 'read', at LIMIT ${MAX_ROWS}`,
    );
    return rows.map((r) => ({ kind: r.kind as EventKind, at: Number(r.at), error: r.error, batch: BigInt(r.batch) }));
  }
}

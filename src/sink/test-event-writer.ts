/**
 * Stores the outcomes of test sends in `message_tests` (schemas/clickhouse/0008_message_tests.sql), which
 * no view over `message_events` reads, so no campaign count includes them. A test is a few rows (at most
 * a hundred recipients), written in one insert before the API answers.
 */
import type { ClickHouse } from '../clickhouse/client.js';
import { str, uint } from '../clickhouse/sql.js';

export interface TestEvent {
  campaignId: number;
  testId: string;
  userId: string;
  kind: 'delivered' | 'failed' | 'skipped';
  atSec: number;
  error: string;
}

export class TestEventWriter {
  constructor(private readonly ch: ClickHouse) {}

  async record(events: readonly TestEvent[]): Promise<void> {
    if (events.length === 0) return;
    const values = events
      .map((e) => `(${uint(e.campaignId)}, ${str(e.testId)}, ${str(e.userId)}, ${str(e.kind)}, ${uint(e.atSec)}, ${str(e.error)})`)
      .join(', ');
    await this.ch.command(`INSERT INTO message_tests (campaign_id, test_id, user_id, kind, at, error) VALUES ${values}`);
  }
}

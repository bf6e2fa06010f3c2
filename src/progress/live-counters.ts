/**
 * The live outcome counters the ledger step keeps in Redis (stream/keys.ts `live`): they move the moment
 * a sub-batch is recorded, while ClickHouse shows it only after the sink's next flush. WebSocket frames
 * of running campaigns use the higher of the two; the HTTP API stays on ClickHouse alone.
 */
import type { OutcomeCounts } from '../domain/accounting.js';
import type { RedisGateway } from '../stream/redis-gateway.js';

export class LiveCounters {
  constructor(private readonly gateway: RedisGateway) {}

  /** Campaigns with no counters (none sent yet, or Redis restarted empty) are left out. */
  read(campaignIds: readonly number[]): Promise<Map<number, OutcomeCounts>> {
    return this.gateway.liveCounts(campaignIds);
  }
}

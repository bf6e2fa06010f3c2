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

/**
 * What a frame shows: ClickHouse's counts, raised to the live ones while the campaign may still move.
 * A finished campaign shows ClickHouse's alone, the durable figures GET answers with.
 */
export function liveOutcomes(ch: OutcomeCounts, live: OutcomeCounts | undefined, terminal: boolean): OutcomeCounts {
  if (live === undefined || terminal) return ch;
  return { delivered: Math.max(ch.delivered, live.delivered), failed: Math.max(ch.failed, live.failed) };
}

/**
 * The live outcome counters the ledger step keeps in Redis (stream/keys.ts `live`): they move the moment
 * a sub-batch is recorded, while ClickHouse shows it only after the sink's next flush. WebSocket frames
 * of running campaigns use the higher of the two; the HTTP API stays on ClickHouse alone.
 */
import type { Redis } from 'ioredis';
import type { Keys } from '../stream/keys.js';
import type { OutcomeCounts } from '../domain/accounting.js';
import { HeraldError } from '../errors.js';

export class LiveCounters {
  constructor(
    private readonly redis: Redis,
    private readonly keys: Keys,
  ) {}

  /** Campaigns with no counters (none sent yet, or Redis restarted empty) are left out. */
  async read(campaignIds: readonly number[]): Promise<Map<number, OutcomeCounts>> {
    const out = new Map<number, OutcomeCounts>();
    if (campaignIds.length === 0) return out;
    const pipe = this.redis.pipeline();
    for (const id of campaignIds) pipe.hmget(this.keys.live(id), 'delivered', 'failed');
    let replies: Array<[Error | null, unknown]>;
    try {
      replies = (await pipe.exec()) ?? [];
    } catch (err) {
      throw new HeraldError('DEPENDENCY_UNAVAILABLE', `Redis live counters: ${(err as Error).message}`, {}, err);
    }
    campaignIds.forEach((id, i) => {
      const [err, value] = replies[i] ?? [null, null];
      if (err !== null) return;
      const [delivered, failed] = value as [string | null, string | null];
      if (delivered === null && failed === null) return;
      out.set(id, { delivered: Number(delivered ?? 0), failed: Number(failed ?? 0) });
    });
    return out;
  }
}

/**
 * A campaign's send rate, shared by every consumer in every process: a GCRA schedule kept in Redis
 * (one key per campaign, Redis's own clock). A consumer asks for a chunk's worth of messages before
 * sending it and sleeps for as long as the answer says.
 */
import type { RedisGateway } from '../stream/redis-gateway.js';
import { NO_METRICS, type DispatchMetrics } from '../domain/metrics.js';

/** How far ahead of the schedule a sender may run: one sub-batch's worth at common rates, which smooths chunked sends. */
const RATE_BURST_MS = 100;
/** The longest sleep between two asks, so a pause or a changed rate is noticed within it. */
const RATE_MAX_SLEEP_MS = 250;

export class RateLimiter {
  constructor(
    private readonly gateway: RedisGateway,
    private readonly metrics: DispatchMetrics = NO_METRICS,
  ) {}

  /**
   * Waits until `n` messages may go at `rate` per second. `rate()` is read again after every wait, so a
   * limit changed meanwhile takes effect at once; `shouldStop()` ends the wait early (returns false).
   */
  async acquire(campaignId: number, n: number, rate: () => number | null, shouldStop: () => boolean): Promise<boolean> {
    // When the first sleep began (0: none yet): one wait is counted per acquire, however many sleeps it took.
    let waitedFrom = 0;
    const waited = (): void => {
      if (waitedFrom !== 0) this.metrics.rateWait(campaignId, (performance.now() - waitedFrom) / 1000);
    };
    for (;;) {
      if (shouldStop()) {
        waited();
        return false;
      }
      const r = rate();
      if (r === null) return true;
      const waitUs = await this.gateway.rateAcquire({ campaignId, rate: r, n, burstUs: RATE_BURST_MS * 1000 });
      if (waitUs <= 0) {
        waited();
        return true;
      }
      if (waitedFrom === 0) waitedFrom = performance.now();
      await new Promise((resolve) => setTimeout(resolve, Math.min(RATE_MAX_SLEEP_MS, Math.ceil(waitUs / 1000))));
    }
  }
}

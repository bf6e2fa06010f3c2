/**
 * A campaign's send rate, shared by every consumer in every process: a GCRA schedule kept in Redis
 * (one key per campaign, Redis's own clock). A consumer asks for a chunk's worth of messages before
 * sending it and sleeps for as long as the answer says.
 */
import { readFileSync } from 'node:fs';
import type { Redis } from 'ioredis';
import type { Keys } from '../stream/keys.js';

interface RateCommands {
  heraldRateAcquire(key: string, rate: number, n: number, burstUs: number): Promise<number>;
}

const LUA = readFileSync(new URL('./lua/rate-acquire.lua', import.meta.url), 'utf8');

export class RateLimiter {
  private readonly cmds: RateCommands;

  constructor(
    redis: Redis,
    private readonly keys: Keys,
    /** how far ahead of the schedule a sender may run; smooths chunked sends */
    private readonly burstMs = 100,
  ) {
    if (!(redis as unknown as Partial<RateCommands>).heraldRateAcquire) {
      redis.defineCommand('heraldRateAcquire', { numberOfKeys: 1, lua: LUA });
    }
    this.cmds = redis as unknown as RateCommands;
  }

  /**
   * Waits until `n` messages may go at `rate` per second. `rate()` is read again after every wait, so a
   * limit changed meanwhile takes effect at once; `shouldStop()` ends the wait early (returns false).
   */
  async acquire(campaignId: number, n: number, rate: () => number | null, shouldStop: () => boolean): Promise<boolean> {
    for (;;) {
      if (shouldStop()) return false;
      const r = rate();
      if (r === null) return true;
      const waitUs = Number(await this.cmds.heraldRateAcquire(this.keys.rate(campaignId), r, n, this.burstMs * 1000));
      if (waitUs <= 0) return true;
      // Sleep at most 250 ms at a time, so pause and rate changes are noticed promptly.
      await new Promise((resolve) => setTimeout(resolve, Math.min(250, Math.ceil(waitUs / 1000))));
    }
  }
}

/**
 * A process's heartbeat in one campaign (domain/liveness.ts): renewed on a timer of its own, so owner duties
 * or a slow PostgreSQL never delay it; only an event-loop stall does. While it is current, nobody takes
 * the process's chunks or lease by liveness; once it lapses, the campaign's owner takes them at once
 * (stream/lua/takeover-2.lua) instead of after the idle time.
 */
import type { Logger } from 'pino';
import type { RedisGateway } from '../stream/redis-gateway.js';
import type { LivenessTimings } from '../domain/liveness.js';

export interface LivenessOptions {
  gateway: RedisGateway;
  campaignId: number;
  holderId: string;
  timings: LivenessTimings;
  log: Logger;
}

export class Liveness {
  /**
   * When the last heartbeat that Redis confirmed was sent (local ms, taken before the call): the heartbeat
   * is current until at least this + ttlMs. 0: none yet.
   */
  confirmedAt = 0;
  private timer: NodeJS.Timeout | null = null;
  private beating: Promise<void> | null = null;
  private stopped = false;

  constructor(private readonly opts: LivenessOptions) {}

  get enabled(): boolean {
    return this.opts.timings.ttlMs > 0;
  }

  start(): void {
    if (!this.enabled || this.timer !== null) return;
    void this.beat();
    this.timer = setInterval(() => void this.beat(), this.opts.timings.renewEveryMs);
  }

  /** Renews the heartbeat now (one at a time: a beat still on its way counts). */
  beat(): Promise<void> {
    if (this.beating !== null) return this.beating;
    if (this.stopped || !this.enabled) return Promise.resolve();
    const sentAt = Date.now();
    const { gateway, campaignId, holderId, timings } = this.opts;
    this.beating = gateway
      .livenessBeat({ campaignId, holder: holderId, ttlMs: timings.ttlMs })
      .then(
        () => {
          this.confirmedAt = Math.max(this.confirmedAt, sentAt);
        },
        (err: unknown) => this.opts.log.warn({ err, campaignId }, 'liveness heartbeat failed'),
      )
      .finally(() => {
        this.beating = null;
      });
    return this.beating;
  }

  /**
   * Stops the heartbeat and withdraws it: what this process still holds (chunks stopped by a pause, events
   * not yet stored) is left to the idle-time reclaim, as for a holder with no heartbeat, so a process that
   * stays up but stops sending does not have its chunks taken at once. `release`: the heartbeat is left
   * lapsed instead, so its chunks are taken over at once (a cancelled campaign's closer needs them, and
   * nothing of them is in flight here any more).
   */
  async stop(options: { release?: boolean } = {}): Promise<void> {
    this.stopped = true;
    if (this.timer !== null) clearInterval(this.timer);
    this.timer = null;
    if (!this.enabled) return;
    await this.beating;
    await this.opts.gateway.livenessBeat({ campaignId: this.opts.campaignId, holder: this.opts.holderId, ttlMs: options.release ? -1 : 0 });
  }
}

/**
 * Campaign ownership: a Redis lease with a fencing epoch. The owner plans, reclaims idle chunks and
 * decides completion; every process may run consumers. A lease whose holder's heartbeat (liveness.ts)
 * has lapsed is taken at once rather than after its ttl (stream/lua/lease-acquire-3.lua).
 */
import type { RedisGateway } from '../stream/redis-gateway.js';

export interface LeaseOptions {
  gateway: RedisGateway;
  campaignId: number;
  /** this process's holder id */
  holder: string;
  /** HERALD_LEASE_MS */
  ttlMs: number;
}

export class Lease {
  epoch = 0;
  private readonly gateway: RedisGateway;
  private readonly campaignId: number;
  private readonly holder: string;
  private readonly ttlMs: number;
  private ticking: Promise<boolean> | null = null;

  constructor(options: LeaseOptions) {
    this.gateway = options.gateway;
    this.campaignId = options.campaignId;
    this.holder = options.holder;
    this.ttlMs = options.ttlMs;
  }

  get held(): boolean {
    return this.epoch > 0;
  }

  private get token(): string {
    return `${this.holder}:${this.epoch}`;
  }

  /**
   * Acquires if free (or if its holder's heartbeat in the campaign has lapsed: actor/liveness.ts), renews
   * if ours; returns whether we hold it afterwards.
   */
  tick(): Promise<boolean> {
    // One at a time: two ticks side by side (a renewal timer and the owner's own check) would each set the
    // epoch from their own answer, and the later answer, a failed acquire, could clear a lease just won.
    this.ticking ??= this.tickOnce().finally(() => (this.ticking = null));
    return this.ticking;
  }

  private async tickOnce(): Promise<boolean> {
    if (this.held) {
      if (await this.gateway.leaseRenew({ campaignId: this.campaignId, token: this.token, ttlMs: this.ttlMs })) return true;
      this.epoch = 0;
    }
    this.epoch = await this.gateway.leaseAcquire({ campaignId: this.campaignId, holder: this.holder, ttlMs: this.ttlMs });
    return this.held;
  }

  async release(): Promise<void> {
    await this.ticking?.catch(() => undefined);
    if (!this.held) return;
    const token = this.token;
    this.epoch = 0;
    await this.gateway.leaseRelease({ campaignId: this.campaignId, token });
  }
}

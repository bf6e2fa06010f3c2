/**
 * Campaign ownership: a Redis lease with a fencing epoch. The owner plans, reclaims idle chunks and
 * decides completion; every process may run consumers. A lease whose holder's heartbeat (liveness.ts)
 * has lapsed is taken at once rather than after its ttl. Scripts are loaded with ioredis defineCommand.
 */
import { readFileSync } from 'node:fs';
import type { Redis } from 'ioredis';
import type { Keys } from '../stream/keys.js';

const lua = (name: string): string => readFileSync(new URL(`./lua/${name}.lua`, import.meta.url), 'utf8');

interface LeaseCommands {
  heraldLeaseAcquire(lease: string, epoch: string, alive: string, holder: string, ttlMs: number): Promise<number>;
  heraldLeaseRenew(lease: string, token: string, ttlMs: number): Promise<number>;
  heraldLeaseRelease(lease: string, token: string): Promise<number>;
}

export function defineLeaseCommands(redis: Redis): void {
  if ((redis as unknown as Partial<LeaseCommands>).heraldLeaseAcquire) return;
  redis.defineCommand('heraldLeaseAcquire', { numberOfKeys: 3, lua: lua('lease-acquire') });
  redis.defineCommand('heraldLeaseRenew', { numberOfKeys: 1, lua: lua('lease-renew') });
  redis.defineCommand('heraldLeaseRelease', { numberOfKeys: 1, lua: lua('lease-release') });
}

export class Lease {
  epoch = 0;
  private readonly cmds: LeaseCommands;

  constructor(
    redis: Redis,
    private readonly keys: Keys,
    private readonly campaignId: number,
    private readonly holder: string,
    private readonly ttlMs: number,
  ) {
    defineLeaseCommands(redis);
    this.cmds = redis as unknown as LeaseCommands;
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
  async tick(): Promise<boolean> {
    if (this.held) {
      const ok = await this.cmds.heraldLeaseRenew(this.keys.lease(this.campaignId), this.token, this.ttlMs);
      if (ok === 1) return true;
      this.epoch = 0;
    }
    const k = this.keys;
    this.epoch = Number(
      await this.cmds.heraldLeaseAcquire(
        k.lease(this.campaignId),
        k.leaseEpoch(this.campaignId),
        k.alive(this.campaignId),
        this.holder,
        this.ttlMs,
      ),
    );
    return this.held;
  }

  async release(): Promise<void> {
    if (!this.held) return;
    const token = this.token;
    this.epoch = 0;
    await this.cmds.heraldLeaseRelease(this.keys.lease(this.campaignId), token);
  }
}

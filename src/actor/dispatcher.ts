/**
 * Hosts campaign actors in this process: activates one for every `sending` campaign (told by pub/sub,
 * found by polling PostgreSQL as the fallback), routes status changes to it, and deactivates it when
 * the campaign leaves `sending`. Several processes do the same and share each campaign's chunks.
 */
import type { Redis } from 'ioredis';
import { isCampaignStatus, type CampaignStatus } from '../domain/campaign-status.js';
import { CampaignActor, type ActorDeps } from './campaign-actor.js';
import { announceStatus } from '../stream/control.js';

export type DispatcherDeps = Omit<ActorDeps, 'publishStatus' | 'recordAvailable'> & {
  subscriber: Redis;
  pollMs: number;
};

export class Dispatcher {
  private readonly actors = new Map<number, CampaignActor>();
  private timer: NodeJS.Timeout | null = null;
  private stopped = false;
  private polling: Promise<void> | null = null;
  /** whether the last poll reached PostgreSQL; while it does not, no sub-batch is started */
  private pgUp = true;

  constructor(private readonly deps: DispatcherDeps) {}

  async start(): Promise<void> {
    const channel = this.deps.keys.control();
    this.deps.subscriber.on('message', (ch: string, message: string) => {
      if (ch !== channel) return;
      const [idText, what] = message.split(' ');
      const id = Number(idText);
      if (!Number.isSafeInteger(id)) return;
      if (isCampaignStatus(what)) this.onStatus(id, what);
      else if (what === 'changed') this.actors.get(id)?.reload();
    });
    await this.deps.subscriber.subscribe(channel);
    await this.poll();
    this.timer = setInterval(() => {
      if (this.polling === null) this.polling = this.poll().finally(() => (this.polling = null));
    }, this.deps.pollMs);
  }

  async publishStatus(campaignId: number, status: CampaignStatus): Promise<void> {
    await announceStatus(this.deps.redis, this.deps.keys, campaignId, status);
  }

  hosted(): CampaignActor[] {
    return [...this.actors.values()];
  }

  private onStatus(id: number, status: CampaignStatus): void {
    const actor = this.actors.get(id);
    if (actor !== undefined) actor.setStatus(status);
    else if (status === 'sending') void this.activate(id);
  }

  private async poll(): Promise<void> {
    if (this.stopped) return;
    // A PostgreSQL that hangs instead of refusing must also count as away.
    const limit = Math.max(5_000, this.deps.pollMs * 5);
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`PostgreSQL did not answer the poll in ${limit} ms`)), limit);
    });
    try {
      await Promise.race([this.pollOnce(), timeout]);
      if (!this.pgUp) this.deps.log.info('PostgreSQL answers again: dispatch continues');
      this.pgUp = true;
    } catch (err) {
      if (this.pgUp) this.deps.log.error({ err }, 'dispatcher poll failed: dispatch holds until PostgreSQL answers');
      this.pgUp = false;
    } finally {
      clearTimeout(timer);
    }
  }

  private async pollOnce(): Promise<void> {
    for (const id of await this.deps.campaigns.startDue()) {
      this.deps.log.info({ campaignId: id }, 'scheduled campaign started');
      await this.publishStatus(id, 'sending');
    }
    const sending = new Set(await this.deps.campaigns.idsWithStatus('sending'));
    for (const id of sending) if (!this.actors.has(id)) await this.activate(id);
    for (const [id, actor] of this.actors) {
      if (sending.has(id)) continue;
      const status = await this.deps.campaigns.status(id);
      actor.setStatus(status ?? 'cancelled');
    }
    // Settings (rate limit) of the campaigns hosted here, in case a change message was missed.
    for (const actor of this.actors.values()) {
      if (sending.has(actor.id)) actor.reload();
    }
  }

  private async activate(id: number): Promise<void> {
    if (this.stopped || this.actors.has(id) || this.deps.options.workers === 0) return;
    const campaign = await this.deps.campaigns.get(id).catch((err: unknown) => {
      this.deps.log.error({ err, campaignId: id }, 'cannot load campaign');
      return null;
    });
    if (campaign === null || campaign.status !== 'sending' || this.actors.has(id) || this.stopped) return;
    const actor = new CampaignActor(
      { ...this.deps, publishStatus: (c, s) => this.publishStatus(c, s), recordAvailable: () => this.pgUp },
      campaign,
    );
    this.actors.set(id, actor);
    actor.start();
    this.deps.log.info({ campaignId: id }, 'campaign actor activated');
    void actor.done.then(async () => {
      await actor.stop();
      if (this.actors.get(id) === actor) this.actors.delete(id);
      this.deps.log.info({ campaignId: id, status: actor.status, ...actor.stats }, 'campaign actor deactivated');
      // Resumed while it was stopping: host it again now rather than at the next poll.
      if (actor.status === 'sending' && !this.stopped) void this.activate(id);
    });
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer !== null) clearInterval(this.timer);
    await this.polling;
    await Promise.all([...this.actors.values()].map((a) => a.stop()));
    this.actors.clear();
  }
}

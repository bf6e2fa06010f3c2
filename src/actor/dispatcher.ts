/**
 * Hosts campaign actors in this process: activates one for every `sending` campaign (told by pub/sub,
 * found by polling PostgreSQL as the fallback), routes status changes to it, and deactivates it when
 * the campaign leaves `sending`. Several processes do the same and share each campaign's chunks.
 */
import type { CampaignStatus } from '../domain/campaign-status.js';
import { CampaignActor, type ActorDeps, type ActorStats } from './campaign-actor.js';
import { CampaignCloser } from './campaign-closer.js';
import { ChunkSender } from './chunk-sender.js';
import { checkCounts, COUNT_CHECK_CLAIM_MS } from './count-check.js';

/** The control channel (stream/control.ts), as the dispatcher uses it. */
export interface ControlPort {
  /** sets the status key and publishes the change, unless Redis holds a newer status_version */
  announce(campaignId: number, status: CampaignStatus, version: number): Promise<boolean>;
  /** calls `onMessage` with each status change, or 'changed' for settings */
  listen(onMessage: (campaignId: number, what: CampaignStatus | 'changed') => void): Promise<void>;
}

export type DispatcherDeps = Omit<ActorDeps, 'publishStatus' | 'recordAvailable'> & {
  control: ControlPort;
  pollMs: number;
};

export class Dispatcher {
  private readonly actors = new Map<number, CampaignActor>();
  /** the stats of the last actor each campaign had here, kept after it stops (small: a few numbers) */
  private readonly lastStats = new Map<number, ActorStats>();
  /** cancelled campaigns being closed here (their aborted recipients recorded) */
  private readonly closing = new Map<number, Promise<void>>();
  /** completed campaigns whose count check runs here (count-check.ts) */
  private readonly checking = new Map<number, Promise<void>>();
  private timer: NodeJS.Timeout | null = null;
  private stopped = false;
  private polling: Promise<void> | null = null;
  /** whether the last poll reached PostgreSQL; while it does not, no sub-batch is started */
  private pgUp = true;

  constructor(private readonly deps: DispatcherDeps) {}

  async start(): Promise<void> {
    await this.deps.control.listen((id, what) => {
      if (what === 'changed') this.actors.get(id)?.reload();
      else this.onStatus(id, what);
    });
    await this.poll();
    this.timer = setInterval(() => {
      if (this.polling === null) this.polling = this.poll().finally(() => (this.polling = null));
    }, this.deps.pollMs);
  }

  async publishStatus(campaignId: number, status: CampaignStatus, version: number): Promise<void> {
    await this.deps.control.announce(campaignId, status, version);
  }

  hosted(): CampaignActor[] {
    return [...this.actors.values()];
  }

  /** What this process did for a campaign: its hosted actor's stats, or those of the last one it had. */
  statsOf(campaignId: number): ActorStats | null {
    return this.actors.get(campaignId)?.stats ?? this.lastStats.get(campaignId) ?? null;
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
    for (const { id, statusVersion } of await this.deps.campaigns.startDue()) {
      this.deps.log.info({ campaignId: id }, 'scheduled campaign started');
      await this.publishStatus(id, 'sending', statusVersion);
    }
    for (const id of await this.deps.campaigns.idsToClose()) this.close(id);
    if (this.deps.countRepair !== undefined && this.deps.options.workers > 0) {
      for (const id of await this.deps.campaigns.idsToCheckCounts(COUNT_CHECK_CLAIM_MS, 10)) this.checkCounts(id);
    }
    const rows = await this.deps.campaigns.withStatus('sending');
    // Announced again each poll (a no-op unless Redis missed it: an announcement that failed, or a Redis
    // that lost its keys), so consumers never go on reading a stale paused status.
    for (const { id, statusVersion } of rows) await this.publishStatus(id, 'sending', statusVersion);
    const sending = new Set(rows.map((r) => r.id));
    for (const id of sending) if (!this.actors.has(id)) await this.activate(id);
    for (const [id, actor] of this.actors) {
      if (sending.has(id)) continue;
      const status = await this.deps.campaigns.status(id);
      actor.setStatus(status ?? 'cancelled');
    }
    // Settings (rate limit) of the campaigns hosted here, in case a change message was missed.
    for (const actor of this.actors.values()) {
      if (sending.has(actor.id)) {
        actor.reload();
        // PostgreSQL says sending: a paused status a step read from Redis has been superseded.
        actor.setStatus('sending');
      }
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
      { ...this.deps, publishStatus: (c, s, v) => this.publishStatus(c, s, v), recordAvailable: () => this.pgUp },
      campaign,
    );
    this.actors.set(id, actor);
    actor.start();
    this.deps.log.info({ campaignId: id }, 'campaign actor activated');
    void actor.done.then(async () => {
      await actor.stop();
      if (this.actors.get(id) === actor) this.actors.delete(id);
      this.lastStats.set(id, { ...actor.stats });
      this.deps.log.info({ campaignId: id, status: actor.status, ...actor.stats }, 'campaign actor deactivated');
      // Resumed while it was stopping: host it again now rather than at the next poll.
      if (actor.status === 'sending' && !this.stopped) void this.activate(id);
      if (actor.status === 'cancelled' || actor.status === 'failed') this.close(id);
    });
  }

  /**
   * Records the unsent recipients of a cancelled campaign as aborted (campaign-closer.ts), once its actor
   * here has stopped. Another process holding the lease does it instead; a failed close is retried at
   * the next poll.
   */
  private close(id: number): void {
    if (this.stopped || this.closing.has(id) || this.actors.has(id) || this.deps.options.workers === 0) return;
    const sender = new ChunkSender({
      ...this.deps,
      recordAvailable: () => this.pgUp,
      subBatchSize: this.deps.options.subBatchSize,
      recheckAfterMs: this.deps.options.reclaimIdleMs,
    });
    const closer = new CampaignCloser(
      {
        ...this.deps,
        sender,
        reclaimIdleMs: this.deps.options.reclaimIdleMs,
        leaseMs: this.deps.options.leaseMs,
        takeoverGraceMs: this.deps.options.takeoverGraceMs,
        lostStreamGraceMs: this.deps.options.lostStreamGraceMs,
        raisedPlanGraceMs: this.deps.options.raisedPlanGraceMs,
      },
      id,
      () => this.stopped,
    );
    const run = closer
      .run()
      .then((r) => {
        if (r === 'busy') this.deps.log.debug({ campaignId: id }, 'campaign being closed by another process');
      })
      .catch((err: unknown) => this.deps.log.error({ err, campaignId: id }, 'closing cancelled campaign failed; will retry'))
      .finally(() => this.closing.delete(id));
    this.closing.set(id, run);
  }

  /** A completed campaign's count check that its completing process did not finish (count-check.ts). */
  private checkCounts(id: number): void {
    const countRepair = this.deps.countRepair;
    if (this.stopped || this.checking.has(id) || countRepair === undefined) return;
    const run = checkCounts({ countRepair, campaigns: this.deps.campaigns, log: this.deps.log }, id)
      .then((r) => {
        if (r === 'checked') this.deps.log.info({ campaignId: id }, 'count check of a completed campaign done by the sweep');
      })
      .catch((err: unknown) => this.deps.log.error({ err, campaignId: id }, 'count check failed; will retry'))
      .finally(() => this.checking.delete(id));
    this.checking.set(id, run);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer !== null) clearInterval(this.timer);
    await this.polling;
    await Promise.all([...this.actors.values()].map((a) => a.stop()));
    this.actors.clear();
    await Promise.all(this.closing.values());
    await Promise.all(this.checking.values());
  }
}

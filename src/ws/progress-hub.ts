/**
 * Live progress for WebSocket subscribers. Every tick (HERALD_WS_TICK_MS) it computes one frame per
 * campaign someone here watches (and, for `*` subscribers, every sending campaign), and publishes it
 * once per format to the campaign's uWS topic: one computed frame, whatever the number of clients.
 * A status change (Redis pub/sub, from whichever process made it) is published at once. Counts come from
 * ClickHouse's views and, while a campaign runs, from the ledger's live counters in Redis, which are
 * ahead of them by a sink flush; every process shares both, so a client on any process sees every campaign.
 */
import type { Logger } from 'pino';
import { account, liveOutcomes, type OutcomeCounts } from '../domain/accounting.js';
import { isTerminal, type CampaignStatus } from '../domain/campaign-status.js';
import type { Campaign, CampaignRepo } from '../store/campaign-repo.js';
import type { ProgressReader } from '../progress/progress-reader.js';
import type { LiveCounters } from '../progress/live-counters.js';
import { doneOf, encodeFrame, withRate, type FrameFormat, type ProgressFrame, type Sample } from './frame.js';

export const FORMATS: readonly FrameFormat[] = ['json', 'msgpack'];

export function campaignTopic(id: number | '*', format: FrameFormat): string {
  return id === '*' ? `all/${format}` : `c/${id}/${format}`;
}

export interface HubDeps {
  campaigns: CampaignRepo;
  progress: ProgressReader;
  live: LiveCounters;
  /** hears every campaign's status changes, and 'changed' for settings, from any process (stream/control.ts) */
  listenControl(onMessage: (campaignId: number, what: CampaignStatus | 'changed') => void): Promise<void>;
  log: Logger;
  tickMs: number;
  publish(topic: string, message: string | Buffer, binary: boolean): void;
}

export class ProgressHub {
  /** campaign → subscribers here */
  private readonly interest = new Map<number, number>();
  private allSubscribers = 0;
  private readonly latest = new Map<number, ProgressFrame>();
  private readonly samples = new Map<number, Sample>();
  /** campaign → when the reads of its latest frame began: a refresh that began earlier publishes nothing */
  private readonly readAt = new Map<number, number>();
  private refreshes = 0;
  private timer: NodeJS.Timeout | null = null;
  private ticking: Promise<void> | null = null;
  readonly stats = { framesComputed: 0, framesPublished: 0 };

  constructor(private readonly deps: HubDeps) {}

  async start(): Promise<void> {
    await this.deps.listenControl((id, what) => {
      if (what !== 'changed' && (this.allSubscribers > 0 || this.interest.has(id))) void this.refresh([id], true);
    });
    this.timer = setInterval(() => {
      if (this.ticking === null) this.ticking = this.tick().finally(() => (this.ticking = null));
    }, this.deps.tickMs);
  }

  async stop(): Promise<void> {
    if (this.timer !== null) clearInterval(this.timer);
    await this.ticking;
  }

  subscribe(id: number | '*'): void {
    if (id === '*') this.allSubscribers++;
    else this.interest.set(id, (this.interest.get(id) ?? 0) + 1);
  }

  unsubscribe(id: number | '*'): void {
    if (id === '*') this.allSubscribers = Math.max(0, this.allSubscribers - 1);
    else {
      // Its last frame is kept until the next tick: a client subscribing again meanwhile is answered
      // from it, so subscribe/unsubscribe churn costs no queries.
      const n = (this.interest.get(id) ?? 0) - 1;
      if (n > 0) this.interest.set(id, n);
      else this.interest.delete(id);
    }
  }

  private forget(id: number): void {
    this.latest.delete(id);
    this.samples.delete(id);
    this.readAt.delete(id);
  }

  /** The last frame of a campaign, computed now if there is none (a new subscriber gets one at once). */
  async current(id: number): Promise<ProgressFrame | null> {
    const cached = this.latest.get(id);
    if (cached !== undefined && Date.now() - Date.parse(cached.at) < this.deps.tickMs) return cached;
    await this.refresh([id], false);
    return this.latest.get(id) ?? null;
  }

  /** The last frame of each campaign named, `*` naming all (for a client whose frames were skipped). */
  latestOf(ids: ReadonlySet<number | '*'>): ProgressFrame[] {
    if (ids.has('*')) return [...this.latest.values()];
    const out: ProgressFrame[] = [];
    for (const id of ids as ReadonlySet<number>) {
      const f = this.latest.get(id);
      if (f !== undefined) out.push(f);
    }
    return out;
  }

  private async tick(): Promise<void> {
    try {
      const ids = new Set(this.interest.keys());
      if (this.allSubscribers > 0) for (const { id } of await this.deps.campaigns.withStatus('sending')) ids.add(id);
      // Campaigns shown to `*` subscribers that are no longer sending still get their last changes (reads).
      if (this.allSubscribers > 0) for (const id of this.latest.keys()) ids.add(id);
      if (ids.size > 0) await this.refresh([...ids], false);
      // Frames nobody here watches any more are let go.
      if (this.allSubscribers === 0) for (const id of [...this.latest.keys()]) if (!this.interest.has(id)) this.forget(id);
    } catch (err) {
      this.deps.log.warn({ err: (err as Error).message }, 'progress tick failed');
    }
  }

  /**
   * Computes frames and publishes those worth sending: every tick while sending (rate and ETA move),
   * otherwise only when something changed. `statusChange`: publish even if nothing else did.
   */
  private async refresh(ids: number[], statusChange: boolean): Promise<void> {
    // Refreshes overlap (a status change's and the tick's): numbered as they start, so one whose reads
    // began before those of the frame already out cannot follow it with older counts.
    const started = ++this.refreshes;
    const rows = await Promise.all(ids.map((id) => this.deps.campaigns.get(id)));
    const campaigns = rows.filter((c): c is Campaign => c !== null);
    if (campaigns.length === 0) return;
    const shown = campaigns.map((c) => c.id);
    const [counts, live] = await Promise.all([
      this.deps.progress.counts(shown),
      // Live counters only make frames fresher: without Redis, ClickHouse's counts still serve.
      this.deps.live.read(shown).catch(() => new Map<number, OutcomeCounts>()),
    ]);
    const now = Date.now();
    for (const c of campaigns) {
      if ((this.readAt.get(c.id) ?? 0) > started) continue;
      this.readAt.set(c.id, started);
      const n = counts.get(c.id)!;
      const a = account(c, liveOutcomes(n, live.get(c.id), isTerminal(c.status)));
      const frame = withRate(
        { campaign_id: c.id, status: c.status, total: c.total, ...a, read: n.read, unique_readers: n.uniqueReaders },
        this.samples.get(c.id),
        now,
      );
      this.stats.framesComputed++;
      this.samples.set(c.id, { done: doneOf(frame), atMs: now });
      const prev = this.latest.get(c.id);
      this.latest.set(c.id, frame);
      const changed =
        prev === undefined ||
        prev.status !== frame.status ||
        doneOf(prev) !== doneOf(frame) ||
        prev.read !== frame.read ||
        prev.unique_readers !== frame.unique_readers ||
        prev.aborted !== frame.aborted ||
        prev.total !== frame.total;
      if (statusChange || changed || frame.status === 'sending') this.publish(frame);
      // A finished campaign with nobody watching it in particular is let go after its final frame.
      if (isTerminal(c.status) && !this.interest.has(c.id) && prev !== undefined && !changed) this.forget(c.id);
    }
  }

  private publish(frame: ProgressFrame): void {
    for (const format of FORMATS) {
      const message = encodeFrame(frame, format);
      this.deps.publish(campaignTopic(frame.campaign_id, format), message, format === 'msgpack');
      this.deps.publish(campaignTopic('*', format), message, format === 'msgpack');
    }
    this.stats.framesPublished++;
  }
}

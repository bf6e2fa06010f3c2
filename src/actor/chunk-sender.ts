/**
 * Sends one chunk, sub-batch by sub-batch: wait for the record (PostgreSQL) and the shared rate, send,
 * hand the outcomes to the event sink, then take the ledger step that records the progress and says
 * whether to go on. The actor decides which chunk and when; this decides how.
 */
import type { Logger } from 'pino';
import type { ChunkDescriptor } from '../domain/chunk.js';
import { packedOffsets, unpackStrings } from '../domain/packed-ids.js';
import type { Campaign } from '../store/campaign-repo.js';
import type { ChannelRegistry } from '../channel/channel-registry.js';
import type { EventSink } from '../sink/event-sink.js';
import type { Ledger, StepResult } from './ledger.js';
import type { RateLimiter } from './rate-limiter.js';

export interface ChunkSenderDeps {
  channels: ChannelRegistry;
  sink: EventSink;
  rate: RateLimiter;
  ledger: Ledger;
  log: Logger;
  recordAvailable(): boolean;
  subBatchSize: number;
  /**
   * Ownership older than this is checked again right before a send. A live process refreshes its hold
   * every reclaimIdleMs / 3, so an older check means this process stalled (GC, SIGSTOP) and its chunk
   * may have been taken over meanwhile.
   */
  recheckAfterMs: number;
}

export interface SendContext {
  campaign: Campaign;
  chunk: ChunkDescriptor;
  entryId: string;
  /** the consumer name the entry is pending on (the fencing identity) */
  holder: string;
  /** where the chunk stands before this attempt */
  step: StepResult;
  /** when ownership was last seen (the read, or the last ledger step), in ms */
  checkedAt: number;
  /** whether this process still sends for the campaign, given the last announced status (null: unknown) */
  mayGoOn(announced: string | null): boolean;
  /** the campaign's current rate limit (it can change while the chunk is sent) */
  rateLimit(): number | null;
  sleep(ms: number): Promise<void>;
}

export type SendOutcome =
  | { kind: 'done'; stored: Promise<void>; recipients: number; failed: number }
  | { kind: 'stopped'; recipients: number; failed: number }
  | { kind: 'taken-over'; recipients: number; failed: number };

export class ChunkSender {
  constructor(private readonly deps: ChunkSenderDeps) {}

  async send(ctx: SendContext): Promise<SendOutcome> {
    const { chunk, campaign } = ctx;
    let step = ctx.step;
    let checkedAt = ctx.checkedAt;
    let sent = step.sent;
    let recipients = 0;
    let failed = 0;
    const channel = this.deps.channels.get(campaign.channel);
    // Instant channels (null) have no effect outside Herald: a whole chunk is one sub-batch.
    const subBatch = channel.instant ? chunk.count : this.deps.subBatchSize;
    const offsets = packedOffsets(chunk.users, chunk.count);
    const tickets: Array<Promise<void>> = [];
    while (sent < chunk.count) {
      while (!this.deps.recordAvailable() && ctx.mayGoOn(step.status)) await ctx.sleep(100);
      // Stopping leaves the chunk pending: it is resumed (or reclaimed) from the ledger.
      if (!ctx.mayGoOn(step.status)) return { kind: 'stopped', recipients, failed };
      const n = Math.min(subBatch, chunk.count - sent);
      const mayGo = await this.deps.rate.acquire(campaign.id, n, ctx.rateLimit, () => !ctx.mayGoOn(null));
      if (!mayGo) return { kind: 'stopped', recipients, failed };
      if (Date.now() - checkedAt > this.deps.recheckAfterMs) {
        step = await this.deps.ledger.step(campaign.id, ctx.holder, ctx.entryId, -1, 0);
        checkedAt = Date.now();
        if (step.stale) return { kind: 'taken-over', recipients, failed };
        if (!ctx.mayGoOn(step.status)) return { kind: 'stopped', recipients, failed };
      }
      const users = chunk.users.subarray(offsets[sent]!, offsets[sent + n]!);
      const result = await channel.send({
        campaignId: campaign.id,
        title: campaign.content.title,
        body: campaign.content.body,
        count: n,
        userIds: channel.needsRecipients ? unpackStrings(users, n) : [],
        addresses: channel.needsRecipients ? (chunk.addresses?.slice(sent, sent + n) ?? new Array<string | null>(n).fill(null)) : [],
      });
      const { stored } = await this.deps.sink.appendOutcomes(campaign.id, users, n, result.failed, Math.floor(Date.now() / 1000));
      tickets.push(stored);
      recipients += n;
      failed += result.failed.size;
      sent += n;
      step = await this.deps.ledger.step(campaign.id, ctx.holder, ctx.entryId, sent, n);
      checkedAt = Date.now();
      if (step.stale) {
        // Taken over while we were sending (we stalled past the reclaim time): stop here at once.
        this.deps.log.warn({ campaignId: campaign.id, entry: ctx.entryId }, 'chunk taken over by another consumer; stopping');
        return { kind: 'taken-over', recipients, failed };
      }
    }
    return { kind: 'done', stored: Promise.all(tickets).then(() => undefined), recipients, failed };
  }
}

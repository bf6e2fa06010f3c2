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
import { encodeRecord, subBatchId } from '../domain/sub-batch.js';
import { channelCompresses, channelTracks } from '../domain/campaign-input.js';
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
   * Ownership older than this is checked again right before a send: `ownershipTrustMs` (domain/liveness.ts),
   * under both the interval a live process refreshes its hold at and the liveness trust time.
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
  /** the storing of the chunk's events from before this attempt (recovered, or sent here before a pause) */
  earlier: Array<Promise<void>>;
  /**
   * when ownership was last seen (ms, before the read or the ledger step that saw it; for a fresh read,
   * no later than the last confirmed heartbeat, since a read does not renew it)
   */
  checkedAt: number;
  /** whether this process still sends for the campaign, given the last announced status (null: unknown) */
  mayGoOn(announced: string | null): boolean;
  /** the campaign's current rate limit (it can change while the chunk is sent) */
  rateLimit(): number | null;
  sleep(ms: number): Promise<void>;
}

export interface SendOutcome {
  /** done: every recipient is recorded; stopped: paused, cancelled or shutting down; taken-over: fenced out */
  kind: 'done' | 'stopped' | 'taken-over';
  /** the storing of every event of the chunk recorded by this process so far (earlier attempts included) */
  stored: Promise<void>;
  recipients: number;
  failed: number;
}

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
    const tickets: Array<Promise<void>> = [...ctx.earlier];
    while (sent < chunk.count) {
      while (!this.deps.recordAvailable() && ctx.mayGoOn(step.status)) await ctx.sleep(100);
      // Stopping leaves the chunk pending: it is resumed (or reclaimed) from the ledger.
      if (!ctx.mayGoOn(step.status)) return this.outcome('stopped', tickets, recipients, failed);
      const n = Math.min(subBatch, chunk.count - sent);
      const mayGo = await this.deps.rate.acquire(campaign.id, n, ctx.rateLimit, () => !ctx.mayGoOn(null));
      if (!mayGo) return this.outcome('stopped', tickets, recipients, failed);
      if (Date.now() - checkedAt > this.deps.recheckAfterMs) {
        // The time before the step: what it finds held from then on, however long its reply waited.
        checkedAt = Date.now();
        step = await this.deps.ledger.step(campaign.id, ctx.holder, ctx.entryId, -1, 0);
        if (step.stale) return this.outcome('taken-over', tickets, recipients, failed);
        if (!ctx.mayGoOn(step.status)) return this.outcome('stopped', tickets, recipients, failed);
      }
      const users = chunk.users.subarray(offsets[sent]!, offsets[sent + n]!);
      const result = await channel.send({
        tracking: channelTracks(campaign.channel),
        compress: channelCompresses(campaign.channel),
        campaignId: campaign.id,
        title: campaign.content.title,
        body: campaign.content.body,
        count: n,
        userIds: channel.needsRecipients ? unpackStrings(users, n) : [],
        addresses: channel.needsRecipients ? (chunk.addresses?.slice(sent, sent + n) ?? new Array<string | null>(n).fill(null)) : [],
      });
      const atSec = Math.floor(Date.now() / 1000);
      const record = encodeRecord({ from: sent, n, atSec, failed: result.failed });
      checkedAt = Date.now();
      step = await this.deps.ledger.step(campaign.id, ctx.holder, ctx.entryId, sent + n, n, record, result.failed.size);
      if (step.stale && !step.lost) {
        // Taken over while we were sending (we stalled past the reclaim time): this sub-batch is not
        // recorded (its new holder sends it again), and we stop here at once.
        this.deps.log.warn({ campaignId: campaign.id, entry: ctx.entryId }, 'chunk taken over by another consumer; stopping');
        return this.outcome('taken-over', tickets, recipients, failed);
      }
      // Recorded: from here on its events can be rebuilt from the ledger by whoever holds the chunk, so
      // the rows are written only while this consumer still does (the sink's fence). Lost (Redis lost
      // the ledger): it was sent and only ClickHouse can say so now (the re-plan leaves out whoever has
      // an outcome there), so its rows are written whoever holds what.
      const { stored } = await this.deps.sink.appendOutcomes({
        campaignId: campaign.id,
        users,
        count: n,
        failed: result.failed,
        atSec,
        batchId: subBatchId(chunk.generation, chunk.seq, sent),
        segments: chunk.segments?.slice(sent, sent + n) ?? null,
        owner: step.lost ? null : { entryId: ctx.entryId, holder: ctx.holder },
      });
      tickets.push(stored);
      recipients += n;
      failed += result.failed.size;
      if (step.lost) {
        this.deps.log.warn({ campaignId: campaign.id, entry: ctx.entryId }, 'campaign stream lost in Redis; stopping this chunk');
        return this.outcome('taken-over', tickets, recipients, failed);
      }
      sent += n;
    }
    return this.outcome('done', tickets, recipients, failed);
  }

  /**
   * Takes over the events of a chunk's recorded sub-batches (from an earlier holder, or an earlier attempt
   * here whose storing the caller has awaited): those not in ClickHouse are rebuilt from the ledger's
   * records and written under this holder. The earlier holder either stored them or can no longer (the
   * sink's fence leaves out chunks it does not hold), so each is stored exactly once.
   */
  async recover(campaignId: number, chunk: ChunkDescriptor, entryId: string, holder: string): Promise<Array<Promise<void>>> {
    const records = await this.deps.ledger.records(campaignId, entryId);
    if (records.length === 0) return [];
    const ids = records.map((r) => subBatchId(chunk.generation, chunk.seq, r.from));
    const landed = await this.deps.sink.landed(campaignId, ids);
    const offsets = packedOffsets(chunk.users, chunk.count);
    const tickets: Array<Promise<void>> = [];
    let rows = 0;
    for (let i = 0; i < records.length; i++) {
      const r = records[i]!;
      if (landed.has(ids[i]!)) continue;
      if (r.from + r.n > chunk.count) throw new RangeError(`record [${r.from}, +${r.n}) outside chunk ${entryId} of ${chunk.count}`);
      const { stored } = await this.deps.sink.appendOutcomes({
        campaignId,
        users: chunk.users.subarray(offsets[r.from]!, offsets[r.from + r.n]!),
        count: r.n,
        failed: r.failed,
        atSec: r.atSec,
        batchId: ids[i]!,
        segments: chunk.segments?.slice(r.from, r.from + r.n) ?? null,
        owner: { entryId, holder },
      });
      tickets.push(stored);
      rows += r.n;
    }
    if (rows > 0) this.deps.log.info({ campaignId, entry: entryId, rows }, 'events of a taken-over chunk rebuilt from the ledger');
    return tickets;
  }

  private outcome(kind: SendOutcome['kind'], tickets: Array<Promise<void>>, recipients: number, failed: number): SendOutcome {
    return { kind, stored: Promise.all(tickets).then(() => undefined), recipients, failed };
  }
}

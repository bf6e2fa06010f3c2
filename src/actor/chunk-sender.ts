/**
 * Sends one chunk, sub-batch by sub-batch: check where it stands (a chunk delivered before), wait for the
 * record (PostgreSQL) and the shared rate, send, hand the outcomes to the event sink, then take the ledger
 * step that records the progress and says whether to go on. Where the chunk stands after each effect is
 * domain/chunk-state.ts's decision; the actor decides which chunk and when, this performs the effects.
 */
import type { Logger } from 'pino';
import type { CampaignStatus } from '../domain/campaign-status.js';
import type { ChunkDescriptor } from '../domain/chunk.js';
import { chunkTransition, eventsAfterSend, receivedChunk, type ChunkState, type StepReply } from '../domain/chunk-state.js';
import { packedOffsets, unpackStrings } from '../domain/packed-ids.js';
import type { Campaign, CampaignRepo } from '../store/campaign-repo.js';
import type { ChannelRegistry } from '../channel/channel-registry.js';
import type { Channel, OutboundBatch, SendResult } from '../channel/channel.js';
import { withheldTally, type Withheld } from '../domain/withheld.js';
import type { EventSink } from '../sink/event-sink.js';
import type { ChunkProtocol } from '../stream/chunk-protocol.js';
import { encodeRecord, subBatchId } from '../domain/sub-batch.js';
import { channelCompresses, channelRendersAtSend, channelTracks } from '../domain/campaign-input.js';
import { parseAttrs, renderRecipients, TemplateCache, type RenderedContent } from '../domain/template.js';
import { NO_METRICS, type DispatchMetrics } from '../domain/metrics.js';
import type { RateLimiter } from './rate-limiter.js';

export interface ChunkSenderDeps {
  channels: ChannelRegistry;
  sink: EventSink;
  rate: RateLimiter;
  protocol: ChunkProtocol;
  log: Logger;
  recordAvailable(): boolean;
  subBatchSize: number;
  /**
   * Ownership older than this is checked again right before a send: `ownershipTrustMs` (domain/liveness.ts),
   * under both the interval a live process refreshes its hold at and the liveness trust time.
   */
  recheckAfterMs: number;
  /** decides, right before each send, which recipients are not sent to (consent); none: everyone is */
  screen?: RecipientScreen | null;
  /** compiled templates per campaign (shared by the senders of a process); default: one of the sender's own */
  templates?: TemplateCache;
  /** counts per sub-batch and per chunk; default: none */
  metrics?: DispatchMetrics;
  /**
   * PostgreSQL's word on a campaign's plan generation, asked when Redis has no plan key ('lost'): a chunk of
   * an older generation than PostgreSQL's was re-planned already (Redis lost its state again since the
   * owner raised the key), so it is stale, not lost; absent: not asked
   */
  campaigns?: Pick<CampaignRepo, 'planGeneration'>;
}

/**
 * The port the sender asks, right before a sub-batch is handed to the channel, which of its recipients
 * must not be sent to (suppressed, capped: domain/withheld.ts). Asked at send time, not at planning, so a
 * user who unsubscribes during a campaign gets nothing after that moment. A screen must answer the same
 * for a sub-batch screened again after a crash (its decisions are idempotent per campaign and user).
 */
export interface RecipientScreen {
  /** whether the campaign is screened at all; when not, its ids are never decoded for it */
  applies(campaign: Campaign): boolean;
  screen(q: ScreenQuery): Promise<Map<number, Withheld>>;
}

export interface ScreenQuery {
  campaign: Campaign;
  /** the sub-batch's user ids, packed (domain/packed-ids.ts), `count` of them */
  users: Buffer;
  count: number;
}

/** What the sender asks of the campaign it sends for (the actor answers). */
export interface SendControl {
  /** the campaign as last loaded (its rate limit can change while a chunk is sent) */
  campaign(): Campaign;
  /** whether this process still sends for the campaign, given what a step read from the status key (null: nothing) */
  goOn(stepStatus: CampaignStatus | null): boolean;
  sleep(ms: number): Promise<void>;
}

export interface SendContext {
  control: SendControl;
  chunk: ChunkDescriptor;
  entryId: string;
  /** the consumer name the entry is pending on (the fencing identity) */
  holder: string;
  /** a first delivery: no earlier holder can have sent any of it */
  fresh: boolean;
  /** the storing of events this process wrote for the chunk before (an attempt stopped by a pause) */
  storedBefore: Promise<void> | null;
  /**
   * when ownership was last seen (ms, before the read that delivered it; for a fresh read, no later than
   * the last confirmed heartbeat, since a read does not renew it)
   */
  checkedAt: number;
}

export interface SendOutcome {
  /** recorded: every recipient is; stopped: paused, cancelled or shutting down; taken-over or lost: fenced out */
  state: Extract<ChunkState, { phase: 'recorded' | 'stopped' | 'taken-over' | 'lost' }>;
  /** the storing of every event of the chunk recorded by this process so far (earlier attempts included) */
  stored: Promise<void>;
  recipients: number;
  failed: number;
  /** recipients not sent to (suppressed, capped, skipped) */
  withheld: number;
}

function stepStatus(reply: StepReply): CampaignStatus | null {
  return reply.hold === 'held' ? reply.status : null;
}

/** What a channel did with a screened sub-batch, at positions in the whole sub-batch. */
interface ScreenedResult {
  failed: Map<number, string>;
  withheld: Map<number, Withheld>;
  /** 429 answers the receiver gave */
  throttled: number;
}

export class ChunkSender {
  private readonly templates: TemplateCache;
  private readonly metrics: DispatchMetrics;

  constructor(private readonly deps: ChunkSenderDeps) {
    this.templates = deps.templates ?? new TemplateCache(16);
    this.metrics = deps.metrics ?? NO_METRICS;
  }

  async send(ctx: SendContext): Promise<SendOutcome> {
    const { chunk, control, entryId, holder } = ctx;
    const startedAt = performance.now();
    const { protocol } = this.deps;
    const campaignId = chunk.campaignId;
    const check = async (): Promise<StepReply> => {
      checkedAt = Date.now();
      const reply = await protocol.step({ campaignId, consumer: holder, entryId });
      state = chunkTransition(state, { type: 'checked', reply, goOn: control.goOn(stepStatus(reply)) }, chunk.count);
      return reply;
    };
    let state: ChunkState = receivedChunk(ctx.fresh);
    let checkedAt = ctx.checkedAt;
    // A channel that retries asks before each request whether the chunk is still held, since a retry can go
    // out long after the check before its sub-batch: trusted for recheckAfterMs like a fresh sub-batch, then
    // checked in Redis, one check at a time for all the requests of the sub-batch. The check leaves `state`
    // alone while the channel sends; what it found taken over is `fencedBy`, applied once the send returns.
    // A plan Redis lost is not fenced until the owner re-plans: nobody else holds its chunks (the owner
    // raises the plan key first, then waits for what was sent meanwhile to be stored, and leaves out whoever
    // has an outcome), so the sub-batch is sent out and recorded whole, by the step after it, which finds the
    // loss. Once the plan key is raised, the step and the sink's fence find the chunk stale: the new plan
    // sends its recipients.
    // A 'lost' step is asked again of PostgreSQL: re-planned already under a later generation, the chunk is
    // stale. A PostgreSQL that does not answer leaves it lost (posted and recorded, as before the re-plan).
    const replannedSince = async (reply: StepReply): Promise<boolean> => {
      if (reply.hold !== 'lost' || this.deps.campaigns === undefined) return false;
      try {
        const g = await this.deps.campaigns.planGeneration(campaignId);
        return g !== null && g > chunk.generation;
      } catch {
        return false;
      }
    };
    const STALE: StepReply = { hold: 'stale', sent: 0 };
    let fencedBy: StepReply | null = null;
    let confirming: Promise<boolean> | null = null;
    // The campaign's status is looked at again at the sub-batch's first request: under load the look before
    // the sub-batch can be tens of milliseconds old by the time its request is built and its bytes admitted,
    // and a pause heard meanwhile should let nothing more out. Decided once for all the sub-batch's requests,
    // so a sub-batch goes out whole or not at all: `closed`, nothing of it was posted and it is halted
    // unrecorded, as when the look before it finds the pause.
    const gate: { state: 'undecided' | 'open' | 'closed' } = { state: 'undecided' };
    const gateClosed = (): boolean => gate.state === 'closed';
    const mayPost = (): Promise<boolean> => {
      if (fencedBy !== null) return Promise.resolve(false);
      if (gate.state === 'undecided') gate.state = control.goOn(null) ? 'open' : 'closed';
      if (gate.state === 'closed') return Promise.resolve(false);
      if (confirming !== null) return confirming;
      if (Date.now() - checkedAt <= this.deps.recheckAfterMs) return Promise.resolve(true);
      const at = Date.now();
      confirming = protocol.step({ campaignId, consumer: holder, entryId }).then(
        async (reply) => {
          if (await replannedSince(reply)) reply = STALE;
          confirming = null;
          if (reply.hold === 'held' || reply.hold === 'lost') {
            checkedAt = Math.max(checkedAt, at);
            return true;
          }
          fencedBy = reply;
          return false;
        },
        (err: unknown) => {
          // Redis did not answer: posted as before the fence (the step after the send decides what is
          // recorded), rather than failing the send with parts of it delivered
          confirming = null;
          this.deps.log.warn(
            { err: (err as Error).message, campaignId, entry: entryId },
            'ownership check before a request failed; posting',
          );
          return true;
        },
      );
      return confirming;
    };
    let recipients = 0;
    let failed = 0;
    let withheld = 0;
    const tickets: Array<Promise<void>> = [];
    const outcome = (): SendOutcome => {
      const stored = Promise.all(tickets).then(() => undefined);
      if (state.phase === 'recorded' || state.phase === 'stopped' || state.phase === 'taken-over' || state.phase === 'lost') {
        return { state, stored, recipients, failed, withheld };
      }
      throw new Error(`chunk ${entryId}: send ended in ${state.phase}`);
    };
    if (state.phase === 'received') {
      // Where this chunk stands: sent in part by an earlier holder (before a pause, a crash, a takeover)?
      const reply = await check();
      if (reply.hold !== 'held') return outcome();
      if (reply.sent > 0) {
        // What was recorded before must reach ClickHouse exactly once: first let this process's own earlier
        // attempt finish storing (or be fenced out), then write what is still missing.
        await ctx.storedBefore;
        tickets.push(...(await this.recover(campaignId, chunk, entryId, holder)));
      }
    } else if (ctx.storedBefore !== null) tickets.push(ctx.storedBefore);
    const channel = this.deps.channels.get(control.campaign().channel);
    // Instant channels (null) have no effect outside Herald: a whole chunk is one sub-batch.
    const subBatch = channel.instant ? chunk.count : this.deps.subBatchSize;
    const offsets = packedOffsets(chunk.users, chunk.count);
    while (state.phase === 'sending') {
      const sent = state.sent;
      while (!this.deps.recordAvailable() && control.goOn(null)) await control.sleep(100);
      const n = Math.min(subBatch, chunk.count - sent);
      // Stopping leaves the chunk pending: it is resumed (or reclaimed) from the ledger.
      const mayGo =
        control.goOn(null) &&
        (await this.deps.rate.acquire(
          campaignId,
          n,
          () => control.campaign().rateLimit,
          () => !control.goOn(null),
        ));
      if (!mayGo) {
        state = chunkTransition(state, { type: 'halted' }, chunk.count);
        break;
      }
      if (Date.now() - checkedAt > this.deps.recheckAfterMs) {
        // The time before the step: what it finds held from then on, however long its reply waited.
        await check();
        if (state.phase !== 'sending') break;
      }
      const campaign = control.campaign();
      const users = chunk.users.subarray(offsets[sent]!, offsets[sent + n]!);
      gate.state = 'undecided';
      const result = await this.sendScreened(channel, campaign, {
        users,
        n,
        addresses: chunk.addresses?.slice(sent, sent + n) ?? null,
        attrs: chunk.attrs?.slice(sent, sent + n) ?? null,
        mayPost: channel.instant ? null : mayPost,
      });
      if (fencedBy !== null) {
        // Found taken over before a request (a retry, mostly) went out: the channel posted nothing more (its
        // `unsent`), and nothing of this sub-batch is recorded or written, as when the record step below finds
        // it taken over: the new holder sends it again.
        state = chunkTransition(state, { type: 'checked', reply: fencedBy, goOn: false }, chunk.count);
        this.deps.log.warn({ campaignId, entry: entryId }, 'chunk taken over by another consumer while sending; stopping');
        break;
      }
      if (gateClosed()) {
        state = chunkTransition(state, { type: 'halted' }, chunk.count);
        break;
      }
      // When the channel answered: a pause's overshoot counts only what was answered after it (chunk-step-9.lua).
      const answeredAtMs = Date.now();
      const atSec = Math.floor(answeredAtMs / 1000);
      const tally = withheldTally(result.withheld);
      this.metrics.throttled(campaignId, result.throttled);
      checkedAt = Date.now();
      let reply = await protocol.step({
        campaignId,
        consumer: holder,
        entryId,
        record: {
          sent: sent + n,
          n,
          bytes: encodeRecord({ from: sent, n, atSec, failed: result.failed, withheld: result.withheld }),
          failed: result.failed.size,
          withheld: tally,
          answeredAtMs,
        },
      });
      if (await replannedSince(reply)) reply = STALE;
      state = chunkTransition(state, { type: 'recorded', reply, n, goOn: control.goOn(stepStatus(reply)) }, chunk.count);
      const events = eventsAfterSend(reply);
      if (events === 'none') {
        // Taken over while we were sending (we stalled past the reclaim time): this sub-batch is not
        // recorded (its new holder sends it again), and we stop here at once.
        this.deps.log.warn({ campaignId, entry: entryId }, 'chunk taken over by another consumer; stopping');
        break;
      }
      // Recorded: from here on its events can be rebuilt from the ledger by whoever holds the chunk, so
      // the rows are written only while this consumer still does (the sink's fence). Lost (Redis lost
      // the ledger): it was sent and only ClickHouse can say so now (the re-plan leaves out whoever has
      // an outcome there), so its rows are written unless the owner has raised the plan key by the time
      // they are inserted (fence-3.lua), when the re-plan, which reads the outcomes a grace later, sends
      // them again instead.
      const { stored } = await this.deps.sink.appendOutcomes({
        campaignId,
        users,
        count: n,
        failed: result.failed,
        withheld: result.withheld,
        atSec,
        batchId: subBatchId(chunk.generation, chunk.seq, sent),
        segments: chunk.segments?.slice(sent, sent + n) ?? null,
        owner: { entryId, holder },
      });
      tickets.push(stored);
      // Counted where the ledger recorded it, once per sub-batch: what the campaign's own counts say.
      this.metrics.outcomes(campaignId, channel.type, {
        delivered: n - result.failed.size - result.withheld.size,
        failed: result.failed.size,
        ...tally,
      });
      recipients += n;
      failed += result.failed.size;
      withheld += result.withheld.size;
      if (state.phase === 'lost') this.deps.log.warn({ campaignId, entry: entryId }, 'campaign stream lost in Redis; stopping this chunk');
    }
    if (state.phase === 'recorded' && recipients > 0) this.metrics.chunkSeconds(channel.type, (performance.now() - startedAt) / 1000);
    return outcome();
  }

  /**
   * Screens a sub-batch and applies the campaign's templates (a recipient lacking a value under `skip` is
   * withheld, one whose render fails has failed), then hands the channel only the rest; failures and the
   * channel's own withholdings come back at their positions in the whole sub-batch.
   */
  private async sendScreened(
    channel: Channel,
    campaign: Campaign,
    part: {
      users: Buffer;
      n: number;
      addresses: Array<string | null> | null;
      attrs: Array<string | null> | null;
      /** OutboundBatch.mayPost; null for an instant channel */
      mayPost: (() => Promise<boolean>) | null;
    },
  ): Promise<ScreenedResult> {
    const { users, n, addresses } = part;
    const screen = this.deps.screen ?? null;
    const screened = screen !== null && screen.applies(campaign);
    const templates = this.templates.get(campaign);
    const rendersNow = channelRendersAtSend(campaign.channel);
    // Rendered here for a channel that renders when it sends; for one that renders later (the inbox), only
    // the `skip` decision is taken here, since it is an outcome.
    const templated = templates.personal && (rendersNow || campaign.missing === 'skip');
    // The screen reads packed ids itself: the null and inbox paths decode nothing for it.
    const userIds = channel.needsRecipients || templated ? unpackStrings(users, n) : [];
    const held = screened ? await screen.screen({ campaign, users, count: n }) : new Map<number, Withheld>();
    const failed = new Map<number, string>();
    let contents: Array<RenderedContent | undefined> | null = null;
    if (templated) {
      const r = renderRecipients(templates, {
        n,
        render: rendersNow,
        exclude: held,
        recipient: (i) => ({ userId: userIds[i]!, address: addresses?.[i] ?? null, attrs: parseAttrs(part.attrs?.[i]) }),
      });
      for (const [i, reason] of r.skipped) held.set(i, { kind: 'skipped', reason });
      for (const [i, error] of r.failed) failed.set(i, error);
      contents = r.contents;
    }
    const batch = {
      tracking: channelTracks(campaign.channel),
      compress: channelCompresses(campaign.channel),
      campaignId: campaign.id,
      title: campaign.content.title,
      body: campaign.content.body,
      data: campaign.content.data ?? null,
      topic: campaign.topic,
      mayPost: part.mayPost,
    };
    const allAddresses = (): Array<string | null> => addresses ?? new Array<string | null>(n).fill(null);
    if (held.size === 0 && failed.size === 0) {
      const result = await this.timedSend(channel, {
        ...batch,
        contents: contents as RenderedContent[] | null,
        count: n,
        userIds: channel.needsRecipients ? userIds : [],
        addresses: channel.needsRecipients ? allAddresses() : [],
      });
      return { failed: result.failed, withheld: result.withheld ?? held, throttled: result.throttled ?? 0 };
    }
    // Positions in the sub-batch of the recipients sent to, in order.
    const keep: number[] = [];
    for (let i = 0; i < n; i++) if (!held.has(i) && !failed.has(i)) keep.push(i);
    if (keep.length === 0) return { failed, withheld: held, throttled: 0 };
    const all = channel.needsRecipients ? allAddresses() : [];
    const result = await this.timedSend(channel, {
      ...batch,
      contents: contents === null ? null : keep.map((i) => contents[i]!),
      count: keep.length,
      userIds: channel.needsRecipients ? keep.map((i) => userIds[i]!) : [],
      addresses: channel.needsRecipients ? keep.map((i) => all[i] ?? null) : [],
    });
    for (const [i, err] of result.failed) failed.set(keep[i]!, err);
    if (result.withheld !== undefined) for (const [i, w] of result.withheld) held.set(keep[i]!, w);
    return { failed, withheld: held, throttled: result.throttled ?? 0 };
  }

  private async timedSend(channel: Channel, batch: OutboundBatch): Promise<SendResult> {
    const t0 = performance.now();
    try {
      return await channel.send(batch);
    } finally {
      this.metrics.sendSeconds(channel.type, (performance.now() - t0) / 1000);
    }
  }

  /**
   * Takes over the events of a chunk's recorded sub-batches (from an earlier holder, or an earlier attempt
   * here whose storing the caller has awaited): those not in ClickHouse are rebuilt from the ledger's
   * records and written under this holder. The earlier holder either stored them or can no longer (the
   * sink's fence leaves out chunks it does not hold), so each is stored exactly once.
   */
  async recover(campaignId: number, chunk: ChunkDescriptor, entryId: string, holder: string): Promise<Array<Promise<void>>> {
    const records = await this.deps.protocol.records(campaignId, entryId);
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
        withheld: r.withheld,
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
}

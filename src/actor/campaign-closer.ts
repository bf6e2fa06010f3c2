/**
 * Closes a cancelled (or failed) campaign: records every recipient it will never send to as `aborted`
 * in ClickHouse, then drops its stream. It holds the campaign's lease, so one process does it, and it
 * resumes after a crash (aborted rows carry deterministic sub-batch ids and are looked up before they
 * are written; the unplanned rest is walked with the planner's recorded progress).
 *
 * Chunks still held by consumers that are stopping are not taken from them: the closer waits until
 * they are idle for the reclaim time (their holders have stopped heartbeating them), so a sub-batch in
 * flight at the cancel is recorded as sent by its holder, never as aborted.
 */
import type { Logger } from 'pino';
import type { ChunkDescriptor } from '../domain/chunk.js';
import { packedOffsets } from '../domain/packed-ids.js';
import { subBatchId } from '../domain/sub-batch.js';
import type { Campaign, CampaignRepo } from '../store/campaign-repo.js';
import { fenceLostPlan } from './lost-plan.js';
import type { ChunkProtocol, StreamEntry } from '../stream/chunk-protocol.js';
import type { RedisGateway } from '../stream/redis-gateway.js';
import { seqFromStreamId } from '../domain/chunk.js';
import type { Planner } from '../planner/planner.js';
import type { RangeReader } from '../planner/range-reader.js';
import { HeraldError } from '../errors.js';
import type { EventSink, Ticket } from '../sink/event-sink.js';
import type { ChunkSender } from './chunk-sender.js';
import { Lease } from './lease.js';
import { consumerName } from '../domain/liveness.js';
import type { DispatchMetrics } from '../domain/metrics.js';

export interface CloserDeps {
  gateway: RedisGateway;
  protocol: ChunkProtocol;
  campaigns: CampaignRepo;
  planner: Planner;
  /** reads the recipients of the ranges left in the stream (planner/range-reader.ts) */
  ranges: Pick<RangeReader, 'fill' | 'chunksPerRead'>;
  sink: EventSink;
  sender: ChunkSender;
  log: Logger;
  holderId: string;
  reclaimIdleMs: number;
  leaseMs: number;
  /** after a takeover, before the chunks' recorded sub-batches are looked up in ClickHouse (ActorOptions) */
  takeoverGraceMs: number;
  /** counts the aborted recipients, once they are stored; absent: none */
  metrics?: DispatchMetrics;
  /** after a lost stream, before and after the plan key is raised (ActorOptions: the re-plan's graces) */
  lostStreamGraceMs: number;
  raisedPlanGraceMs: number;
}

export type CloseResult = 'closed' | 'busy' | 'stopped';

export class CampaignCloser {
  private readonly lease: Lease;
  private readonly consumer: string;
  aborted = 0;

  constructor(
    private readonly deps: CloserDeps,
    private readonly campaignId: number,
    private readonly shouldStop: () => boolean,
  ) {
    this.lease = new Lease({ gateway: deps.gateway, campaignId, holder: deps.holderId, ttlMs: deps.leaseMs });
    this.consumer = consumerName(deps.holderId, 'closer');
  }

  async run(): Promise<CloseResult> {
    await this.lease.tick();
    if (!this.lease.held) return 'busy';
    // The lease is renewed while closing; losing it (this process stalled) stops the close, and the
    // next holder starts over, which is safe: every write is looked up first.
    let lost = false;
    const renew = setInterval(
      () => {
        this.lease.tick().then(
          (held) => (lost ||= !held),
          () => undefined,
        );
      },
      Math.max(50, Math.floor(this.deps.leaseMs / 3)),
    );
    const stop = (): boolean => lost || this.shouldStop();
    try {
      let c = await this.deps.campaigns.get(this.campaignId);
      if (c === null || c.abortsRecordedAt !== null) return 'closed';
      if (c.plannedChunks > 0 && !(await this.deps.protocol.state(this.campaignId)).exists) {
        c = await this.replanLost(c, stop);
        if (c === null) return 'stopped';
      }
      const lastSeq = await this.drainStream(c, stop);
      if (lastSeq === null) return 'stopped';
      if (!c.planningDone) {
        const r = await this.deps.planner.plan(this.campaignId, stop, (chunks) => this.abortUnplanned(chunks, lastSeq));
        if (!r.done) return 'stopped';
      }
      await this.deps.sink.flush();
      if (stop()) return 'stopped';
      await this.deps.campaigns.markAbortsRecorded(this.campaignId);
      this.deps.metrics?.outcomes(this.campaignId, c.channel.type, { aborted: this.aborted });
      await this.deps.protocol.drop(this.campaignId);
      this.deps.log.info(
        { campaignId: this.campaignId, aborted: this.aborted },
        'cancelled campaign closed: unsent recipients recorded as aborted',
      );
      return 'closed';
    } finally {
      clearInterval(renew);
      await this.lease.release().catch(() => undefined);
    }
  }

  /**
   * The stream is gone while PostgreSQL records a plan and no aborts: Redis lost it (the stream is dropped
   * only after the aborts are recorded). Who was sent to is only in ClickHouse now, so, as an owner's
   * re-plan does (campaign-actor.ts recover()), the closer lets what was recorded land, raises the plan key
   * so a holder elsewhere records nothing more of the lost plan, and walks the audience again under the next
   * generation: the walk's outcome filter leaves out whoever has an outcome, aborted included (a walk run
   * again after this closer died aborts nobody twice), and the rest is recorded as aborted. Null if asked
   * to stop meanwhile.
   */
  private async replanLost(c: Campaign, stop: () => boolean): Promise<Campaign | null> {
    this.deps.log.warn(
      { campaignId: this.campaignId, generation: c.planGeneration },
      'cancelled campaign whose stream Redis lost: walking its audience again',
    );
    await fenceLostPlan(this.deps, this.campaignId, c.planGeneration);
    if (stop()) return null;
    await this.deps.campaigns.restartPlan(this.campaignId, c.planGeneration, { closing: true });
    const again = await this.deps.campaigns.get(this.campaignId);
    return again === null || again.abortsRecordedAt !== null ? null : again;
  }

  /**
   * Takes every chunk left in the stream (never delivered, or idle on a stopped consumer) and records
   * the unsent part of each. Returns the seq of the last chunk the stream ever had (the unplanned rest
   * starts after it), or null if asked to stop.
   */
  private async drainStream(c: Campaign, stop: () => boolean): Promise<number | null> {
    const generation = c.planGeneration;
    // as many entries at once as one read of their recipients holds, up to 100
    const n = this.deps.ranges.chunksPerRead(100, c.chunkSize);
    const { protocol } = this.deps;
    const conn = this.deps.gateway.redis;
    let history: string | null = '0-0';
    for (;;) {
      if (stop()) return null;
      let entries: StreamEntry[];
      if (history !== null) {
        entries = await protocol.readPending(conn, this.campaignId, this.consumer, n, history);
        history = entries.length === 0 ? null : entries[entries.length - 1]!.id;
      } else {
        entries = await this.takeover(n);
        if (entries.length === 0) entries = await protocol.reclaim(this.campaignId, this.consumer, this.deps.reclaimIdleMs, n);
        if (entries.length === 0) entries = await protocol.readNew(conn, this.campaignId, this.consumer, n);
      }
      // The ranges' recipients in one read; then side by side: their aborted rows share inserts, and the
      // landed checks their round trips.
      await this.deps.ranges.fill(c, entries);
      await Promise.all(entries.map((e) => this.closeEntry(e, generation)));
      if (entries.length > 0) continue;
      const state = await protocol.state(this.campaignId);
      if (!state.exists || (state.pending === 0 && state.lastDeliveredId === state.lastGeneratedId)) {
        return seqFromStreamId(state.lastGeneratedId)?.seq ?? 0;
      }
      // Held by consumers still stopping: wait until they are idle past the reclaim time.
      await new Promise((r) => setTimeout(r, Math.min(250, Math.max(20, this.deps.reclaimIdleMs / 4))));
    }
  }

  /**
   * The chunks of processes whose heartbeat lapsed or was released, once the takeover grace is over: an
   * insert a dead holder had on the wire lands meanwhile, and must not be written again beside it.
   */
  private async takeover(count: number): Promise<StreamEntry[]> {
    // Claimed as a holder of its own, so the chunks of this process's own stopped actor are taken too (a
    // claimer never takes from its own holder id, whose heartbeat the claim renews).
    const claimer = `${this.deps.holderId}~closer`;
    const entries = await this.deps.protocol.takeover(this.campaignId, this.consumer, claimer, count);
    if (entries.length > 0) await new Promise((r) => setTimeout(r, this.deps.takeoverGraceMs));
    return entries;
  }

  private async closeEntry(e: StreamEntry, generation: number): Promise<void> {
    const planned = e.range;
    if (planned === null || planned.campaignId !== this.campaignId || planned.generation < generation) {
      await this.deps.protocol.ack(this.campaignId, [e.id]);
      return;
    }
    const step = await this.deps.protocol.step({ campaignId: this.campaignId, consumer: this.consumer, entryId: e.id });
    if (step.hold !== 'held') return;
    const chunk = e.chunk;
    if (chunk === null) throw new HeraldError('INTERNAL', `entry ${e.id}: its recipients were not read`);
    // What its holders sent and recorded must be stored too (they may have died before storing it).
    const tickets = step.sent > 0 ? await this.deps.sender.recover(this.campaignId, chunk, e.id, this.consumer) : [];
    if (step.sent < chunk.count) tickets.push((await this.abort(chunk, step.sent, { entryId: e.id, holder: this.consumer })).stored);
    await Promise.all(tickets);
    await this.deps.protocol.ack(this.campaignId, [e.id]);
  }

  /** Chunks of the audience never appended: aborted whole, and stored before the planner records them. */
  private async abortUnplanned(chunks: ChunkDescriptor[], lastSeq: number): Promise<void> {
    // A chunk appended but not yet recorded in PostgreSQL when planning stopped was in the stream: done above.
    const rest = chunks.filter((c) => c.seq > lastSeq);
    if (rest.length === 0) return;
    const ids = rest.map((c) => subBatchId(c.generation, c.seq, 0, 'aborted'));
    const landed = await this.deps.sink.landed(this.campaignId, ids);
    const tickets: Array<Promise<void>> = [];
    for (let i = 0; i < rest.length; i++) if (!landed.has(ids[i]!)) tickets.push((await this.append(rest[i]!, 0, ids[i]!, null)).stored);
    await Promise.all(tickets);
  }

  /** Records recipients [from, count) of a chunk as aborted, unless a previous closer already did. */
  private async abort(chunk: ChunkDescriptor, from: number, owner: { entryId: string; holder: string } | null): Promise<Ticket> {
    const batchId = subBatchId(chunk.generation, chunk.seq, from, 'aborted');
    if ((await this.deps.sink.landed(this.campaignId, [batchId])).size > 0) return { stored: Promise.resolve() };
    return this.append(chunk, from, batchId, owner);
  }

  private async append(
    chunk: ChunkDescriptor,
    from: number,
    batchId: bigint,
    owner: { entryId: string; holder: string } | null,
  ): Promise<Ticket> {
    const offsets = packedOffsets(chunk.users, chunk.count);
    const ticket = await this.deps.sink.appendOutcomes({
      campaignId: this.campaignId,
      users: chunk.users.subarray(offsets[from]!, offsets[chunk.count]!),
      count: chunk.count - from,
      failed: new Map(),
      atSec: Math.floor(Date.now() / 1000),
      batchId,
      kind: 'aborted',
      segments: chunk.segments?.slice(from) ?? null,
      owner,
    });
    this.aborted += chunk.count - from;
    return ticket;
  }
}

/**
 * The campaign actor as hosted by one dispatcher process: N consumers of the campaign's consumer group,
 * plus, while this process holds the campaign's lease, the owner duties (plan, reclaim, complete).
 * It is activated when the campaign is `sending` and stops when it is not.
 */
import type { Redis } from 'ioredis';
import type { Logger } from 'pino';
import type { CampaignStatus } from '../domain/campaign-status.js';
import type { Campaign, CampaignRepo } from '../store/campaign-repo.js';
import type { ChunkStream, StreamEntry } from '../stream/chunk-stream.js';
import type { Keys } from '../stream/keys.js';
import type { Planner } from '../planner/planner.js';
import type { ChannelRegistry } from '../channel/channel-registry.js';
import type { EventSink } from '../sink/event-sink.js';
import type { RateLimiter } from './rate-limiter.js';
import { isDrained, mayStartChunk, onStatus } from './decide.js';
import { Lease } from './lease.js';
import { AckBatcher } from './ack-batcher.js';
import type { Ledger, StepResult } from './ledger.js';
import { ChunkSender } from './chunk-sender.js';
import { Liveness } from './liveness.js';
import { consumerName, livenessTimings, ownershipTrustMs, touchEveryMs, type LivenessTimings } from '../domain/liveness.js';
import { channelConcurrency } from '../domain/campaign-input.js';
import { Semaphore } from '../domain/semaphore.js';

export interface ActorOptions {
  workers: number;
  readCount: number;
  reclaimIdleMs: number;
  leaseMs: number;
  /** HERALD_LIVENESS_TTL_MS (domain/liveness.ts); 0: off, dead consumers wait for reclaimIdleMs */
  livenessTtlMs: number;
  /** XREADGROUP BLOCK; also bounds how long a stopping consumer takes to notice */
  blockMs: number;
  /** how often the owner checks for completion */
  completionCheckMs: number;
  /** recipients per channel call; status is checked and the ledger written between sub-batches */
  subBatchSize: number;
  /** HERALD_WEBHOOK_CONCURRENCY: chunks (so requests) in flight per campaign here, unless its channel says */
  webhookConcurrency: number;
  /** after the stream is found lost: how long to let every process's buffered events reach ClickHouse before re-planning */
  lostStreamGraceMs: number;
  /**
   * after a takeover by liveness, before the chunks' recorded sub-batches are looked up in ClickHouse:
   * an insert the dead process had on the wire still lands meanwhile, and must not be rebuilt beside it
   */
  takeoverGraceMs: number;
}

export interface ActorDeps {
  redis: Redis;
  keys: Keys;
  stream: ChunkStream;
  campaigns: CampaignRepo;
  planner: Planner;
  channels: ChannelRegistry;
  sink: EventSink;
  rate: RateLimiter;
  ledger: Ledger;
  log: Logger;
  holderId: string;
  /** `version`: the campaign's status_version after the change (stream/control.ts) */
  publishStatus(campaignId: number, status: CampaignStatus, version: number): Promise<void>;
  /**
   * Whether PostgreSQL, the record, answers. While it does not, no sub-batch is started: a status
   * change could not be seen, and nothing must be done that cannot be recorded.
   */
  recordAvailable(): boolean;
  options: ActorOptions;
}

export interface ActorStats {
  chunks: number;
  recipients: number;
  failed: number;
  reclaimed: number;
}

export class CampaignActor {
  status: CampaignStatus;
  readonly stats: ActorStats = { chunks: 0, recipients: 0, failed: 0, reclaimed: 0 };
  private running = true;
  private readonly lease: Lease;
  private readonly acks: AckBatcher;
  private readonly reclaimed: StreamEntry[] = [];
  /** entries read or reclaimed here and not yet acked → the consumer name holding them */
  private readonly inflight = new Map<string, string>();
  /** entries this process recorded sub-batches of → the storing of their events (until acked) */
  private readonly storing = new Map<string, Promise<void>>();
  /** consumers of this actor between a read that brought entries and the end of sending them, or chunks being sent */
  private busy = 0;
  /** batches of taken-over chunks waiting out the takeover grace */
  private held = 0;
  /**
   * A slow channel's send slots, shared by this process's consumers of the campaign: one per chunk in flight,
   * and a chunk has one sub-batch (one request) in flight at a time. Null for an instant channel.
   */
  private readonly slots: Semaphore | null;
  private readonly conns: Redis[] = [];
  private readonly loops: Array<Promise<void>> = [];
  private planningDone: boolean;
  private planning: Promise<void> | null = null;
  /** re-planning after the stream was lost: planning and completion wait */
  private recovering = false;
  private lastReclaimAt = 0;
  private lastTakeoverAt = 0;
  private readonly timings: LivenessTimings;
  private readonly liveness: Liveness;
  /** the status a ledger step last read from Redis (null: none since the last status change) */
  private announced: string | null = null;
  /** sleepers to wake early (status change, stop) */
  private readonly wakers = new Set<() => void>();
  private readonly sender: ChunkSender;

  constructor(
    private readonly deps: ActorDeps,
    private campaign: Campaign,
  ) {
    this.status = campaign.status;
    this.planningDone = campaign.planningDone;
    this.lease = new Lease(deps.redis, deps.keys, campaign.id, deps.holderId, deps.options.leaseMs);
    this.timings = livenessTimings(deps.options.livenessTtlMs);
    this.liveness = new Liveness({ ...deps, campaignId: campaign.id, timings: this.timings });
    this.sender = new ChunkSender({
      ...deps,
      subBatchSize: deps.options.subBatchSize,
      recheckAfterMs: ownershipTrustMs(deps.options.reclaimIdleMs, deps.options.livenessTtlMs),
    });
    this.slots = deps.channels.get(campaign.channel).instant
      ? null
      : new Semaphore(channelConcurrency(campaign.channel, deps.options.webhookConcurrency));
    this.acks = new AckBatcher(deps.stream, campaign.id, (err) => deps.log.error({ err, campaignId: campaign.id }, 'XACK failed'));
    this.acks.onAcked = (ids) => {
      for (const id of ids) {
        this.inflight.delete(id);
        this.storing.delete(id);
      }
    };
  }

  get id(): number {
    return this.campaign.id;
  }

  get isOwner(): boolean {
    return this.lease.held;
  }

  start(): void {
    this.liveness.start();
    this.loops.push(this.ownerLoop());
    for (let i = 0; i < this.deps.options.workers; i++) {
      const conn = this.deps.redis.duplicate();
      // Connection trouble shows up as failed reads, handled in the loop; the event is only reported.
      conn.on('error', (err: Error) => this.deps.log.debug({ err: err.message, campaignId: this.id }, 'consumer connection'));
      this.conns.push(conn);
      this.loops.push(this.consumerLoop(conn, consumerName(this.deps.holderId, i)));
    }
  }

  /** Re-reads the campaign's settings (rate limit) from PostgreSQL. */
  reload(): void {
    this.deps.campaigns.get(this.id).then(
      (c) => {
        if (c !== null) this.campaign = c;
      },
      (err: unknown) => this.deps.log.warn({ err, campaignId: this.id }, 'campaign reload failed'),
    );
  }

  setStatus(status: CampaignStatus): void {
    this.status = status;
    // PostgreSQL's word (pub/sub, poll) supersedes what a step last read from the status key.
    this.announced = null;
    if (onStatus(status) !== 'run') this.running = false;
    this.wakeAll();
  }

  private wakeAll(): void {
    for (const wake of [...this.wakers]) wake();
  }

  /** Stops consumers after their current chunk, waits for them, and gives the lease up. */
  async stop(): Promise<void> {
    this.running = false;
    this.wakeAll();
    await Promise.allSettled(this.loops);
    // A page being appended when the campaign stopped lands before the lease goes (the closer of a
    // cancelled campaign reads the stream's end once it holds the lease).
    await this.planning;
    await this.acks.flush();
    // Withdrawn before the lease goes, so the next owner leaves what this process still holds (a pause
    // stopped it mid-chunk) to the idle-time reclaim rather than taking it from a process that is up.
    await this.liveness.stop().catch((err: unknown) => this.deps.log.warn({ err, campaignId: this.id }, 'liveness withdrawal failed'));
    if (this.lease.held && onStatus(this.status) === 'stop-and-drop') {
      await this.deps.stream.drop(this.id).catch((err: unknown) => this.deps.log.warn({ err }, 'drop stream failed'));
    }
    await this.lease.release().catch(() => undefined);
    for (const c of this.conns) c.disconnect();
  }

  get done(): Promise<void> {
    return Promise.allSettled(this.loops).then(() => undefined);
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const wake = (): void => {
        clearTimeout(t);
        this.wakers.delete(wake);
        resolve();
      };
      const t = setTimeout(wake, ms);
      this.wakers.add(wake);
    });
  }

  /**
   * Resets the idle time of every entry this process holds (being sent, or waiting for its events to
   * be stored), so the owner's reclaim only ever takes entries of consumers that stopped.
   */
  private async heartbeat(): Promise<void> {
    const byConsumer = new Map<string, string[]>();
    for (const [id, consumer] of this.inflight) {
      const ids = byConsumer.get(consumer);
      if (ids === undefined) byConsumer.set(consumer, [id]);
      else ids.push(id);
    }
    for (const [consumer, ids] of byConsumer) {
      // Entries taken over by another consumer (this process stalled past the reclaim time) are not ours.
      for (const id of await this.deps.stream.touch(this.id, consumer, ids)) this.inflight.delete(id);
    }
  }

  private async ownerLoop(): Promise<void> {
    const { options, log } = this.deps;
    let lastRenew = 0;
    let lastHeartbeat = Date.now();
    while (this.running) {
      try {
        const now = Date.now();
        if (now - lastHeartbeat >= touchEveryMs(options.reclaimIdleMs)) {
          lastHeartbeat = now;
          await this.heartbeat();
        }
        if (now - lastRenew >= options.leaseMs / 3 || !this.lease.held) {
          const was = this.lease.held;
          await this.lease.tick();
          lastRenew = now;
          if (this.lease.held && !was) log.debug({ campaignId: this.id, epoch: this.lease.epoch }, 'campaign lease acquired');
        }
        if (this.lease.held) {
          if (await this.streamLost()) await this.recover();
          if (!this.planningDone && this.planning === null) this.planning = this.plan();
          // A consumer whose process's heartbeat lapsed (it died, or stalled past the liveness ttl): its
          // chunks are taken at once.
          if (this.liveness.enabled && now - this.lastTakeoverAt >= this.timings.scanEveryMs) {
            this.lastTakeoverAt = now;
            await this.takeover();
          }
          // The backstop, for holders with no heartbeat: often, so a dead consumer's chunks wait little more
          // than the idle time (XAUTOCLAIM is one cheap call).
          if (now - this.lastReclaimAt >= options.reclaimIdleMs / 8) {
            this.lastReclaimAt = now;
            await this.reclaim();
          }
          if (this.planningDone && (await this.checkCompletion())) return;
        }
      } catch (err) {
        log.error({ err, campaignId: this.id }, 'campaign owner step failed');
      }
      await this.sleep(options.completionCheckMs);
    }
  }

  /**
   * The stream (with its group) is gone although PostgreSQL records a plan of the current generation:
   * Redis lost it (restart without persistence, FLUSHALL, failover).
   */
  private async streamLost(): Promise<boolean> {
    const state = await this.deps.stream.state(this.id);
    if (state.exists) return false;
    const c = await this.deps.campaigns.get(this.id);
    return c !== null && c.status === 'sending' && c.plannedChunks > 0 && c.planGeneration === this.campaign.planGeneration;
  }

  /**
   * Re-plans from PostgreSQL under the next generation. First every outcome sent so far must be in
   * ClickHouse (this process flushes; others flush within their flush interval), because the new plan
   * leaves out every recipient with an outcome: what was sent is not sent again.
   */
  private async recover(): Promise<void> {
    this.recovering = true;
    try {
      this.deps.log.warn(
        { campaignId: this.id, generation: this.campaign.planGeneration },
        'campaign stream lost; re-planning from PostgreSQL',
      );
      await this.planning;
      await this.deps.sink.flush();
      await this.sleep(this.deps.options.lostStreamGraceMs);
      await this.deps.campaigns.restartPlan(this.id, this.campaign.planGeneration);
      const c = await this.deps.campaigns.get(this.id);
      if (c !== null) this.campaign = c;
      this.planningDone = c?.planningDone ?? false;
      this.inflight.clear();
      this.reclaimed.length = 0;
    } finally {
      this.recovering = false;
    }
  }

  private plan(): Promise<void> {
    return this.deps.planner
      .plan(this.id, () => !this.running || this.recovering)
      .then((r) => {
        this.planningDone = r.done;
        this.deps.log.info({ campaignId: this.id, chunks: r.chunks, recipients: r.recipients, ms: Math.round(r.ms) }, 'campaign planned');
      })
      .catch((err: unknown) => this.deps.log.error({ err, campaignId: this.id }, 'planning failed; will retry'))
      .finally(() => {
        this.planning = null;
      });
  }

  private get reclaimer(): string {
    return consumerName(this.deps.holderId, 'reclaim');
  }

  /** Chunks idle for the reclaim time (XAUTOCLAIM): their holder stopped touching them. */
  private async reclaim(): Promise<void> {
    const claimed = await this.deps.stream.reclaim(this.id, this.reclaimer, this.deps.options.reclaimIdleMs, 100);
    await this.adopt(claimed, 'reclaimed idle chunks');
  }

  /**
   * Chunks of consumers whose process's heartbeat lapsed (takeover.lua), page by page while pages come
   * back full and the consumers here have not got a backlog of them already.
   */
  private async takeover(): Promise<void> {
    const page = 100;
    for (let i = 0; i < 10 && this.reclaimed.length < page; i++) {
      const claimed = await this.deps.stream.takeover(this.id, this.reclaimer, this.deps.holderId, page);
      await this.adopt(claimed, 'took over the chunks of a process whose heartbeat lapsed', this.deps.options.takeoverGraceMs);
      if (claimed.length < page) return;
    }
  }

  /** `graceMs`: the entries are held that long before they are sent (and their records recovered). */
  private async adopt(claimed: StreamEntry[], what: string, graceMs = 0): Promise<void> {
    const consumer = this.reclaimer;
    // An entry this process already holds is being worked on (its heartbeat was late, the process was
    // busy): never twice, and given straight back to the consumer working on it, so that consumer's next
    // ledger step is not refused (which would make it send its sub-batch in flight a second time).
    const mine = claimed.filter((e) => this.inflight.has(e.id));
    for (const e of mine) await this.deps.stream.giveBack(this.id, consumer, this.inflight.get(e.id)!, e.id);
    const entries = claimed.filter((e) => !this.inflight.has(e.id));
    for (const e of entries) this.inflight.set(e.id, consumer);
    if (entries.length === 0) return;
    this.stats.reclaimed += entries.length;
    this.deps.log.info({ campaignId: this.id, chunks: entries.length }, what);
    if (graceMs === 0) this.reclaimed.push(...entries);
    else {
      // Pending on this process's reclaimer meanwhile: covered by its heartbeat, and not drained.
      this.held++;
      setTimeout(() => {
        this.held--;
        this.reclaimed.push(...entries);
      }, graceMs).unref();
    }
  }

  private async checkCompletion(): Promise<boolean> {
    await this.acks.flush();
    const state = await this.deps.stream.state(this.id);
    if (!isDrained(this.planningDone, state) || this.reclaimed.length > 0 || this.held > 0 || this.recovering) return false;
    // Drained as far as this process knows; PostgreSQL says whether the current plan is complete (another
    // process may have re-planned after a lost stream).
    const c = await this.deps.campaigns.get(this.id);
    if (c === null || !c.planningDone) {
      if (c !== null) this.campaign = c;
      this.planningDone = false;
      return false;
    }
    let completed: Campaign;
    try {
      completed = await this.deps.campaigns.transition(this.id, 'complete');
    } catch (err) {
      // paused or cancelled meanwhile: not ours to complete
      this.deps.log.debug({ err, campaignId: this.id }, 'complete refused');
      return false;
    }
    this.status = 'completed';
    this.running = false;
    this.wakeAll();
    this.deps.log.info({ campaignId: this.id }, 'campaign completed');
    // Every entry is acked: the stream has nothing left to give, so free it now rather than at stop.
    await this.deps.stream.drop(this.id);
    await this.deps.publishStatus(this.id, 'completed', completed.statusVersion);
    return true;
  }

  private async consumerLoop(conn: Redis, consumer: string): Promise<void> {
    if (this.slots !== null) return this.slottedLoop(conn, consumer, this.slots);
    const { options } = this.deps;
    const reader = this.reader(conn, consumer);
    while (this.running && mayStartChunk(this.status)) {
      const entries = await reader(options.readCount);
      if (entries === null || entries.length === 0) continue;
      this.busy++;
      try {
        // An instant channel's chunks (one sub-batch each, no wait on a provider) go side by side, so their
        // ledger steps share one Redis round trip (Ledger.send). Held to a rate, chunks gain nothing by
        // going side by side (the schedule is the limit), so they go one by one.
        const sideBySide = this.campaign.rateLimit === null;
        const started: Array<Promise<void>> = [];
        for (const entry of entries) {
          if (!(await this.mayStart())) break;
          const p = this.processGuarded(entry);
          if (sideBySide) started.push(p);
          else await p;
        }
        await Promise.all(started);
      } finally {
        this.busy--;
      }
    }
  }

  /**
   * A slow channel's consumer: it reads as many chunks as there are free slots and sends each in a slot of
   * its own, without waiting for them, so the campaign has as many requests in flight here as it has slots.
   * A pause lets through what is in flight (each chunk checks the status before each sub-batch); the loop
   * ends once its chunks have stopped.
   */
  private async slottedLoop(conn: Redis, consumer: string, slots: Semaphore): Promise<void> {
    const reader = this.reader(conn, consumer);
    const sending = new Set<Promise<void>>();
    while (this.running && mayStartChunk(this.status)) {
      const room = await slots.takeFree(slots.capacity);
      let used = 0;
      try {
        // Slots come free as chunks stop: after a pause, nothing more is read.
        if (!this.running || !mayStartChunk(this.status)) break;
        const entries = (await reader(room)) ?? [];
        for (const entry of entries) {
          if (!(await this.mayStart())) break;
          used++;
          this.busy++;
          const p: Promise<void> = this.processGuarded(entry).finally(() => {
            this.busy--;
            slots.release(1);
            sending.delete(p);
          });
          sending.add(p);
        }
      } finally {
        slots.release(room - used);
      }
    }
    await Promise.all(sending);
  }

  /** Waits out a pause a step saw before this process was told; then whether a fresh chunk may start. */
  private async mayStart(): Promise<boolean> {
    while (this.running && this.announced !== null && this.announced !== 'sending') await this.sleep(50);
    return this.running && mayStartChunk(this.status);
  }

  /**
   * A consumer's source of chunks, at most `count` per call: reclaimed ones first, then those pending on
   * this consumer name from before a pause (or a restart), then new ones. Null after a failed read.
   */
  private reader(conn: Redis, consumer: string): (count: number) => Promise<StreamEntry[] | null> {
    const { stream, log } = this.deps;
    let history: string | null = '0-0';
    return async (count) => {
      let entries: StreamEntry[];
      try {
        if (this.reclaimed.length > 0) entries = this.reclaimed.splice(0, count);
        else if (history !== null) {
          entries = await stream.readPending(conn, this.id, consumer, count, history);
          history = entries.length === 0 ? null : entries[entries.length - 1]!.id;
        } else {
          entries = await stream.read(conn, this.id, consumer, count, 1);
          if (entries.length === 0) {
            // Nothing to do here now (the end of the campaign, or the planner is behind): once no other
            // consumer of the campaign is sending either, what is buffered goes to ClickHouse now, so the
            // last acks (and completion) do not wait for flushMs. While one still sends, its own empty
            // read comes soon enough, and an early small insert would only cost ClickHouse a part.
            if (this.busy === 0) this.deps.sink.flushSoon();
            entries = await stream.read(conn, this.id, consumer, count, this.deps.options.blockMs);
          }
        }
      } catch (err) {
        log.error({ err, campaignId: this.id }, 'reading chunks failed');
        await this.sleep(500);
        return null;
      }
      for (const entry of entries) if (!this.inflight.has(entry.id)) this.inflight.set(entry.id, consumer);
      return entries;
    };
  }

  private async processGuarded(entry: StreamEntry): Promise<void> {
    try {
      await this.processEntry(entry);
    } catch (err) {
      // Left pending, and no longer heartbeated: the owner's reclaim retries it after reclaimIdleMs.
      this.inflight.delete(entry.id);
      this.deps.log.error({ err, campaignId: this.id, entry: entry.id }, 'chunk failed; left for reclaim');
      await this.sleep(200);
    }
  }

  private async processEntry(entry: StreamEntry): Promise<void> {
    const chunk = entry.chunk;
    if (chunk === null || chunk.campaignId !== this.id) {
      // An entry that cannot be decoded can never succeed: report it and take it off the stream.
      this.deps.log.error({ campaignId: this.id, entry: entry.id, err: entry.error }, 'invalid stream entry dropped');
      this.acks.add(entry.id);
      return;
    }
    const holder = this.inflight.get(entry.id);
    if (holder === undefined) return;
    if (chunk.generation > this.campaign.planGeneration) {
      const c = await this.deps.campaigns.get(this.id);
      if (c !== null) this.campaign = c;
    }
    if (chunk.generation < this.campaign.planGeneration) {
      // An entry of a plan that was replaced (its stream was lost and re-planned): never sent.
      this.acks.add(entry.id);
      return;
    }
    const mayGoOn = (announced: string | null): boolean => {
      // What a ledger step read from the status key is news for every consumer here: the pause may be
      // seen by a step before its pub/sub message arrives, and a fresh chunk must not start meanwhile.
      if (announced !== null) this.announced = announced;
      return this.running && mayStartChunk(this.status) && (announced ?? this.announced ?? 'sending') === 'sending';
    };
    // Where this chunk stands: sent by an earlier holder (before a pause, a crash, a reclaim), and may we
    // go on? A first delivery has no earlier holder; its first sub-batch goes on the status known here.
    let step: StepResult = { stale: false, lost: false, status: null, sent: 0 };
    // A read does not renew the heartbeat: what it delivered holds no longer than the heartbeat does.
    let checkedAt = this.liveness.enabled ? Math.min(entry.readAt, this.liveness.confirmedAt) : entry.readAt;
    let earlier: Array<Promise<void>> = [];
    if (!entry.fresh) {
      checkedAt = Date.now();
      step = await this.deps.ledger.step(this.id, holder, entry.id, -1, 0);
      if (step.stale) {
        this.inflight.delete(entry.id);
        return;
      }
      if (step.sent > 0) {
        // What was recorded before must reach ClickHouse exactly once: first let this process's own
        // earlier attempt finish storing (or be fenced out), then write what is still missing.
        await this.storing.get(entry.id);
        earlier = await this.sender.recover(this.id, chunk, entry.id, holder);
      }
    }
    const outcome = await this.sender.send({
      campaign: this.campaign,
      chunk,
      entryId: entry.id,
      holder,
      step,
      earlier,
      checkedAt,
      mayGoOn,
      rateLimit: () => this.campaign.rateLimit,
      sleep: (ms) => this.sleep(ms),
    });
    this.stats.recipients += outcome.recipients;
    this.stats.failed += outcome.failed;
    this.storing.set(entry.id, outcome.stored);
    if (outcome.kind === 'taken-over') this.inflight.delete(entry.id);
    if (outcome.kind !== 'done') return;
    this.stats.chunks++;
    // Ack only once every event of the chunk is in ClickHouse; the consumer moves on meanwhile.
    void outcome.stored.then(() => this.acks.add(entry.id));
  }
}

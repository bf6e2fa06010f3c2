/**
 * The campaign actor as hosted by one dispatcher process: N consumers of the campaign's consumer group,
 * plus, while this process holds the campaign's lease, the owner duties (plan, take over, reclaim, complete).
 * It is activated when the campaign is `sending` and stops when it is not. It schedules: which chunk goes
 * when, on which consumer; the sender (chunk-sender.ts) sends it, the chunk protocol (stream/) records it.
 */
import { checkCounts } from './count-check.js';
import { fenceLostPlan } from './lost-plan.js';
import type { RedisClient } from '../stream/redis-connect.js';
import type { Logger } from 'pino';
import { isTerminal, type CampaignStatus } from '../domain/campaign-status.js';
import type { ChunkPhase } from '../domain/chunk-state.js';
import type { Campaign, CampaignRepo } from '../store/campaign-repo.js';
import type { ChunkProtocol, StreamEntry } from '../stream/chunk-protocol.js';
import type { RedisGateway } from '../stream/redis-gateway.js';
import type { Planner } from '../planner/planner.js';
import type { RangeReader } from '../planner/range-reader.js';
import { HeraldError } from '../errors.js';
import type { ChannelRegistry } from '../channel/channel-registry.js';
import type { CountRepair } from '../sink/count-repair.js';
import type { EventSink } from '../sink/event-sink.js';
import type { RateLimiter } from './rate-limiter.js';
import { isDrained, mayStartChunk, onStatus } from './decide.js';
import { Lease } from './lease.js';
import { AckBatcher } from './ack-batcher.js';
import { ChunkSender, type RecipientScreen, type SendControl } from './chunk-sender.js';
import { Liveness } from './liveness.js';
import { StatusView } from './status-view.js';
import { consumerName, livenessTimings, ownershipTrustMs, touchEveryMs, type LivenessTimings } from '../domain/liveness.js';
import { channelConcurrency } from '../domain/campaign-input.js';
import { Semaphore } from '../domain/semaphore.js';
import type { DispatchMetrics, ReclaimReason } from '../domain/metrics.js';

/** Failed reads of a batch's recipients (other than PostgreSQL being away) before its chunks are let go. */
const MAX_READ_FAILURES = 5;

/** The longest a lost stream's re-plan waits for this process's chunks in hand (see recover). */
const LOST_STREAM_HAND_WAIT_MS = 5 * 60_000;
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
  /** after raising the plan key for a re-plan: until inserts that passed the fence before it have landed */
  raisedPlanGraceMs: number;
  /**
   * after a takeover by liveness, before the chunks' recorded sub-batches are looked up in ClickHouse:
   * an insert the dead process had on the wire still lands meanwhile, and must not be rebuilt beside it
   */
  takeoverGraceMs: number;
}

export interface ActorDeps {
  gateway: RedisGateway;
  protocol: ChunkProtocol;
  campaigns: CampaignRepo;
  planner: Planner;
  /** reads the recipients of the ranges a consumer is handed (planner/range-reader.ts) */
  ranges: Pick<RangeReader, 'fill' | 'chunksPerRead' | 'reads'>;
  channels: ChannelRegistry;
  sink: EventSink;
  rate: RateLimiter;
  log: Logger;
  holderId: string;
  /** `version`: the campaign's status_version after the change (stream/control.ts) */
  publishStatus(campaignId: number, status: CampaignStatus, version: number): Promise<void>;
  /**
   * Whether PostgreSQL, the record, answers. While it does not, no sub-batch is started: a status
   * change could not be seen, and nothing must be done that cannot be recorded.
   */
  recordAvailable(): boolean;
  /** consent: who of each sub-batch is not sent to (chunk-sender.ts); absent: everyone is */
  screen?: RecipientScreen | null;
  /** counts of sends, outcomes and reclaims; absent: none */
  metrics?: DispatchMetrics;
  /** the summing views made whole once a campaign completes (sink/count-repair.ts); absent: not done */
  countRepair?: Pick<CountRepair, 'afterCompletion'>;
  options: ActorOptions;
}

export interface ActorStats {
  chunks: number;
  recipients: number;
  failed: number;
  reclaimed: number;
}

/** running: consumers send; stopping: they finish their current sub-batch; stopped: the lease is given up */
export type ActorPhase = 'running' | 'stopping' | 'stopped';

/**
 * The owner's planning: not finished (and nobody plans here now), planning, planned, or recovering (the
 * stream was lost: re-planning waits for every process's events to reach ClickHouse first).
 */
type PlanState = { kind: 'unplanned' } | { kind: 'planning'; run: Promise<void> } | { kind: 'planned' } | { kind: 'recovering' };

/** A chunk this process holds: read or taken over here and not yet acked (or lost to another consumer). */
interface HeldChunk {
  /** the consumer name it is pending on */
  consumer: string;
  phase: ChunkPhase;
  /** the storing of the events this process wrote for it (until acked) */
  stored: Promise<void> | null;
}

/** What the actor is doing, for logs and tests (Temporal's worker reports its `State` the same way). */
export interface ActorState {
  phase: ActorPhase;
  plan: PlanState['kind'];
  owner: boolean;
  status: CampaignStatus;
  /** chunks held here, by phase */
  chunks: Partial<Record<ChunkPhase, number>>;
  /** taken-over chunks waiting for a consumer here (or for the takeover grace) */
  queued: number;
}

export class CampaignActor {
  readonly stats: ActorStats = { chunks: 0, recipients: 0, failed: 0, reclaimed: 0 };
  private phase: ActorPhase = 'running';
  private plan: PlanState;
  private readonly view: StatusView;
  private readonly lease: Lease;
  private readonly acks: AckBatcher;
  /** entry id → the chunk held here */
  private readonly held = new Map<string, HeldChunk>();
  /** taken-over or reclaimed chunks for the consumers here, each from when it may be sent (the takeover grace) */
  private readonly queue: Array<{ entry: StreamEntry; readyAt: number }> = [];
  /**
   * A slow channel's send slots, shared by this process's consumers of the campaign: one per chunk in flight,
   * and a chunk has one sub-batch (one request) in flight at a time. Null for an instant channel.
   */
  private readonly slots: Semaphore | null;
  private readonly conns: RedisClient[] = [];
  /** chunk sends running here (processGuarded) */
  private readonly inHand = new Set<Promise<void>>();
  private readonly loops: Array<Promise<void>> = [];
  private lastReclaimAt = 0;
  private lastTakeoverAt = 0;
  private readonly timings: LivenessTimings;
  private readonly liveness: Liveness;
  /** sleepers to wake early (status change, stop) */
  private readonly wakers = new Set<() => void>();
  private readonly sender: ChunkSender;
  private readonly control: SendControl;

  constructor(
    private readonly deps: ActorDeps,
    private campaign: Campaign,
  ) {
    this.view = new StatusView(campaign.status);
    this.plan = campaign.planningDone ? { kind: 'planned' } : { kind: 'unplanned' };
    this.lease = new Lease({ gateway: deps.gateway, campaignId: campaign.id, holder: deps.holderId, ttlMs: deps.options.leaseMs });
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
    this.acks = new AckBatcher(deps.protocol, campaign.id, (err) => deps.log.error({ err, campaignId: campaign.id }, 'XACK failed'));
    this.acks.onAcked = (ids) => {
      for (const id of ids) this.held.delete(id);
    };
    this.control = {
      campaign: () => this.campaign,
      goOn: (stepStatus) => {
        this.view.stepRead(stepStatus);
        return this.phase === 'running' && this.view.sending;
      },
      sleep: (ms) => this.sleep(ms),
    };
  }

  /** PostgreSQL's last word on the campaign's status here. */
  get status(): CampaignStatus {
    return this.view.status;
  }

  get state(): ActorState {
    const chunks: Partial<Record<ChunkPhase, number>> = {};
    for (const c of this.held.values()) chunks[c.phase] = (chunks[c.phase] ?? 0) + 1;
    return { phase: this.phase, plan: this.plan.kind, owner: this.lease.held, status: this.view.status, chunks, queued: this.queue.length };
  }

  get id(): number {
    return this.campaign.id;
  }

  get isOwner(): boolean {
    return this.lease.held;
  }

  private get running(): boolean {
    return this.phase === 'running';
  }

  start(): void {
    this.liveness.start();
    this.loops.push(this.ownerLoop());
    for (let i = 0; i < this.deps.options.workers; i++) {
      const conn = this.deps.protocol.readConnection();
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

  /** PostgreSQL's word on the status (pub/sub, poll). */
  setStatus(status: CampaignStatus): void {
    this.view.record(status);
    if (onStatus(status) !== 'run') this.halt();
    this.wakeAll();
  }

  /** Consumers finish their current sub-batch and stop. */
  private halt(): void {
    if (this.phase === 'running') this.phase = 'stopping';
    this.view.release();
    this.wakeAll();
  }

  private wakeAll(): void {
    for (const wake of [...this.wakers]) wake();
  }

  /** Stops consumers after their current chunk, waits for them, and gives the lease up. */
  async stop(): Promise<void> {
    this.halt();
    await Promise.allSettled(this.loops);
    // A page being appended when the campaign stopped lands before the lease goes (the closer of a
    // cancelled campaign reads the stream's end once it holds the lease).
    if (this.plan.kind === 'planning') await this.plan.run;
    await this.acks.flush();
    // A cancelled (or failed) campaign is not resumed: once the events of what this process sent are stored
    // (or fenced out), its chunks are released for the closer to take over at once. Otherwise the heartbeat
    // is withdrawn before the lease goes, so the next owner leaves what this process still holds (a pause
    // stopped it mid-chunk) to the idle-time reclaim rather than taking it from a process that is up.
    const release = isTerminal(this.status);
    if (release) await Promise.allSettled([...this.held.values()].map((c) => c.stored));
    await this.liveness
      .stop({ release })
      .catch((err: unknown) => this.deps.log.warn({ err, campaignId: this.id }, 'liveness withdrawal failed'));
    if (this.lease.held && onStatus(this.status) === 'stop-and-drop') {
      await this.deps.protocol.drop(this.id).catch((err: unknown) => this.deps.log.warn({ err }, 'drop stream failed'));
    }
    await this.lease.release().catch(() => undefined);
    for (const c of this.conns) c.disconnect();
    this.phase = 'stopped';
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

  /** Takes a chunk into this process's hands (read, taken over or reclaimed here), unless it is already. */
  private hold(entry: StreamEntry, consumer: string): void {
    if (!this.held.has(entry.id)) this.held.set(entry.id, { consumer, phase: entry.fresh ? 'sending' : 'received', stored: null });
  }

  /** Whether a consumer here is between a read that brought chunks and the end of sending them. */
  private get sendingHere(): boolean {
    for (const c of this.held.values()) if (c.phase === 'received' || c.phase === 'sending') return true;
    return false;
  }

  /**
   * Resets the idle time of every entry this process holds (being sent, or waiting for its events to
   * be stored), so the owner's reclaim only ever takes entries of consumers that stopped.
   */
  private async heartbeat(): Promise<void> {
    const byConsumer = new Map<string, string[]>();
    for (const [id, { consumer }] of this.held) {
      const ids = byConsumer.get(consumer);
      if (ids === undefined) byConsumer.set(consumer, [id]);
      else ids.push(id);
    }
    for (const [consumer, ids] of byConsumer) {
      // Entries taken over by another consumer (this process stalled past the reclaim time) are not ours.
      for (const id of await this.deps.protocol.touch(this.id, consumer, ids)) this.held.delete(id);
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
          if (this.plan.kind === 'unplanned') this.plan = { kind: 'planning', run: this.runPlanner() };
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
          if (this.plan.kind === 'planned' && (await this.checkCompletion())) return;
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
    const state = await this.deps.protocol.state(this.id);
    if (state.exists) return false;
    const c = await this.deps.campaigns.get(this.id);
    return c !== null && c.status === 'sending' && c.plannedChunks > 0 && c.planGeneration === this.campaign.planGeneration;
  }

  /**
   * Re-plans from PostgreSQL under the next generation. First every outcome sent so far must be in
   * ClickHouse (this process flushes; others flush within their flush interval), because the new plan
   * leaves out every recipient with an outcome: what was sent is not sent again. A holder elsewhere whose
   * sub-batch outlasts that (a slow receiver, a retry) must not be stored beside the new plan's send of
   * the same recipients: the plan key is raised first, so from then on its step finds the chunk stale and
   * the fence drops its rows, and the new plan, which reads the outcomes a grace later, sends them.
   */
  private async recover(): Promise<void> {
    const planning = this.plan.kind === 'planning' ? this.plan.run : null;
    this.plan = { kind: 'recovering' };
    // The generation found lost, taken now: `campaign` may be re-read during the grace below, and a
    // process that lost the race to re-plan would then re-plan the winner's new generation again.
    const lost = this.campaign.planGeneration;
    let planned = false;
    // The waits below outlast the lease (a sub-batch in hand, two graces): it is renewed meanwhile, or
    // another process would take it, find the stream lost too and re-plan beside this one (two planners of
    // one generation cut its chunks apart differently).
    const renewing = this.renewLeaseWhileRecovering();
    try {
      this.deps.log.warn({ campaignId: this.id, generation: lost }, 'campaign stream lost; re-planning from PostgreSQL');
      await planning;
      // A chunk of the lost generation still in hand here sends at most the sub-batch it is in, then finds
      // the stream gone. Its events must be in the sink before the flush: the re-plan leaves out whoever has
      // an outcome, and would otherwise send that sub-batch's recipients again. A sub-batch ends within its
      // channel's timeouts and attempts, and one whose request waits for a retry (a slow or failing
      // receiver) outlasts any grace of the flush's size; a receiver throttling it for minutes does not
      // hold the re-plan longer than LOST_STREAM_HAND_WAIT_MS.
      const inHand = Promise.allSettled([...this.inHand]).then(() => true);
      const waited = await Promise.race([inHand, new Promise<false>((r) => setTimeout(() => r(false), LOST_STREAM_HAND_WAIT_MS).unref())]);
      if (!waited) this.deps.log.warn({ campaignId: this.id }, 'chunks still in hand after the lost stream; re-planning without them');
      const { sink, protocol, options } = this.deps;
      await fenceLostPlan(
        { sink, protocol, lostStreamGraceMs: options.lostStreamGraceMs, raisedPlanGraceMs: options.raisedPlanGraceMs },
        this.id,
        lost,
      );
      // Stopped meanwhile, or the lease is another process's (Redis lost it with the stream, and the other
      // took it first while this one still thought it held it): the owner recovers the stream.
      if (!this.running) return;
      if (!(await this.lease.tick())) {
        this.deps.log.info({ campaignId: this.id }, 'lease lost while re-planning; its new owner re-plans');
        return;
      }
      const restarted = await this.deps.campaigns.restartPlan(this.id, lost);
      this.deps.log.info(
        { campaignId: this.id, generation: lost + 1 },
        restarted ? 'campaign re-planned under a new generation' : 'campaign already re-planned by another process',
      );
      const c = await this.deps.campaigns.get(this.id);
      if (c !== null) this.campaign = c;
      planned = c?.planningDone ?? false;
      this.held.clear();
      this.queue.length = 0;
    } finally {
      renewing.stop();
      this.plan = planned ? { kind: 'planned' } : { kind: 'unplanned' };
    }
  }

  /** Renews the lease every third of its ttl until stopped (the owner loop, which does it otherwise, waits on recover). */
  private renewLeaseWhileRecovering(): { stop: () => void } {
    // Lease.tick runs one at a time: a tick still out when the next is due is joined, not doubled.
    const timer = setInterval(() => {
      this.lease.tick().catch((err: unknown) => this.deps.log.warn({ err, campaignId: this.id }, 'lease renewal failed while re-planning'));
    }, this.deps.options.leaseMs / 3);
    timer.unref();
    return { stop: () => clearInterval(timer) };
  }

  private runPlanner(): Promise<void> {
    return (
      this.deps.planner
        // Stops once the lease is lost: the new owner resumes the plan from what PostgreSQL recorded.
        .plan(this.id, () => !this.running || this.plan.kind === 'recovering' || !this.lease.held)
        .then((r) => {
          if (this.plan.kind === 'planning') this.plan = r.done ? { kind: 'planned' } : { kind: 'unplanned' };
          this.deps.log.info({ campaignId: this.id, chunks: r.chunks, recipients: r.recipients, ms: Math.round(r.ms) }, 'campaign planned');
        })
        .catch((err: unknown) => {
          if (this.plan.kind === 'planning') this.plan = { kind: 'unplanned' };
          this.deps.log.error({ err, campaignId: this.id }, 'planning failed; will retry');
        })
    );
  }

  private get reclaimer(): string {
    return consumerName(this.deps.holderId, 'reclaim');
  }

  /** Chunks idle for the reclaim time (XAUTOCLAIM): their holder stopped touching them. */
  private async reclaim(): Promise<void> {
    const claimed = await this.deps.protocol.reclaim(this.id, this.reclaimer, this.deps.options.reclaimIdleMs, 100);
    await this.adopt(claimed, 'idle', 'reclaimed idle chunks');
  }

  /**
   * Chunks of consumers whose process's heartbeat lapsed (takeover-2.lua), page by page while pages come
   * back full and the consumers here have not got a backlog of them already.
   */
  private async takeover(): Promise<void> {
    const page = 100;
    for (let i = 0; i < 10 && this.queue.length < page; i++) {
      const claimed = await this.deps.protocol.takeover(this.id, this.reclaimer, this.deps.holderId, page);
      await this.adopt(claimed, 'heartbeat', 'took over the chunks of a process whose heartbeat lapsed', this.deps.options.takeoverGraceMs);
      if (claimed.length < page) return;
    }
  }

  /** `graceMs`: the entries wait that long before they are sent (and their records recovered). */
  private async adopt(claimed: StreamEntry[], reason: ReclaimReason, what: string, graceMs = 0): Promise<void> {
    const consumer = this.reclaimer;
    // An entry this process already holds is being worked on (its heartbeat was late, the process was
    // busy): never twice, and given straight back to the consumer working on it, so that consumer's next
    // ledger step is not refused (which would make it send its sub-batch in flight a second time).
    for (const e of claimed) {
      const mine = this.held.get(e.id);
      if (mine !== undefined) await this.deps.protocol.giveBack(this.id, consumer, mine.consumer, e.id);
    }
    const entries = claimed.filter((e) => !this.held.has(e.id));
    if (entries.length === 0) return;
    // Pending on this process's reclaimer meanwhile: covered by its heartbeat, and not drained.
    for (const e of entries) this.hold(e, consumer);
    this.stats.reclaimed += entries.length;
    this.deps.metrics?.reclaimed(reason, entries.length);
    this.deps.log.info({ campaignId: this.id, chunks: entries.length }, what);
    const readyAt = Date.now() + graceMs;
    for (const entry of entries) this.queue.push({ entry, readyAt });
  }

  private async checkCompletion(): Promise<boolean> {
    await this.acks.flush();
    const state = await this.deps.protocol.state(this.id);
    if (!isDrained(true, state) || this.queue.length > 0) return false;
    // Drained as far as this process knows; PostgreSQL says whether the current plan is complete (another
    // process may have re-planned after a lost stream).
    const c = await this.deps.campaigns.get(this.id);
    if (c === null || !c.planningDone) {
      if (c !== null) this.campaign = c;
      this.plan = { kind: 'unplanned' };
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
    this.view.record('completed');
    this.halt();
    this.deps.log.info({ campaignId: this.id }, 'campaign completed');
    // Every entry is acked: the stream has nothing left to give, so free it now rather than at stop.
    await this.deps.protocol.drop(this.id);
    await this.deps.publishStatus(this.id, 'completed', completed.statusVersion);
    await this.repairCounts();
    return true;
  }

  /** Run by the process whose completion won (count-check.ts); the dispatchers' sweep runs it if this fails. */
  private async repairCounts(): Promise<void> {
    const { countRepair, campaigns, log } = this.deps;
    if (countRepair === undefined) return;
    try {
      await checkCounts({ countRepair, campaigns, log }, this.id);
    } catch (err) {
      log.error(
        { err: (err as Error).message, campaignId: this.id },
        'could not check the views against the stored outcomes; tried again later',
      );
    }
  }

  private async consumerLoop(conn: RedisClient, consumer: string): Promise<void> {
    if (this.slots !== null) return this.slottedLoop(conn, consumer, this.slots);
    const { options } = this.deps;
    const reader = this.reader(conn, consumer);
    while (this.running && mayStartChunk(this.status)) {
      const entries = await reader(options.readCount);
      if (entries === null || entries.length === 0) continue;
      // An instant channel's chunks (one sub-batch each, no wait on a provider) go side by side, so their
      // ledger steps share one Redis round trip (ChunkProtocol.step). Held to a rate, chunks gain nothing
      // by going side by side (the schedule is the limit), so they go one by one.
      const sideBySide = this.campaign.rateLimit === null;
      const started: Array<Promise<void>> = [];
      for (const entry of entries) {
        if (!(await this.mayStart())) break;
        const p = this.processGuarded(entry);
        if (sideBySide) started.push(p);
        else await p;
      }
      await Promise.all(started);
    }
  }

  /**
   * A slow channel's consumer: it reads as many chunks as there are free slots and sends each in a slot of
   * its own, without waiting for them, so the campaign has as many requests in flight here as it has slots.
   * A pause lets through what is in flight (each chunk checks the status before each sub-batch); the loop
   * ends once its chunks have stopped.
   */
  private async slottedLoop(conn: RedisClient, consumer: string, slots: Semaphore): Promise<void> {
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
          const p: Promise<void> = this.processGuarded(entry).finally(() => {
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
    await this.view.settled();
    return this.running && mayStartChunk(this.status);
  }

  /**
   * A consumer's source of chunks, at most `count` per call: taken-over ones first (once their grace is
   * over), then those pending on this consumer name from before a pause (or a restart), then new ones.
   * Null after a failed read.
   */
  private reader(conn: RedisClient, consumer: string): (count: number) => Promise<StreamEntry[] | null> {
    const { protocol, log } = this.deps;
    let history: string | null = '0-0';
    return async (wanted) => {
      // No more chunks at once than one read of their recipients holds (a campaign of large chunks).
      const count = this.deps.ranges.chunksPerRead(wanted, this.campaign.chunkSize);
      let entries: StreamEntry[];
      try {
        const ready = this.takeQueued(count);
        if (ready.length > 0) entries = ready;
        else if (history !== null) {
          entries = await protocol.readPending(conn, this.id, consumer, count, history);
          history = entries.length === 0 ? null : entries[entries.length - 1]!.id;
        } else {
          entries = await protocol.read(conn, this.id, consumer, count, 1);
          if (entries.length === 0) {
            // Nothing to do here now (the end of the campaign, or the planner is behind): once no other
            // consumer of the campaign is sending either, what is buffered goes to ClickHouse now, so the
            // last acks (and completion) do not wait for flushMs. While one still sends, its own empty
            // read comes soon enough, and an early small insert would only cost ClickHouse a part.
            if (!this.sendingHere) this.deps.sink.flushSoon();
            entries = await protocol.read(conn, this.id, consumer, count, this.deps.options.blockMs);
          }
        }
      } catch (err) {
        log.error({ err, campaignId: this.id }, 'reading chunks failed');
        await this.sleep(500);
        return null;
      }
      for (const entry of entries) this.hold(entry, consumer);
      await this.readRecipients(entries);
      return entries;
    };
  }

  /**
   * Reads the recipients of the ranges just handed to this consumer, together (one read of each run of
   * adjacent ranges). While PostgreSQL does not answer, the entries stay held here and the read is tried
   * again, as the sender waits for the record: nothing is sent that could not be read. An entry of a later
   * generation, or one left unread as the actor stops, is read on its own when it is processed.
   */
  private async readRecipients(entries: readonly StreamEntry[]): Promise<void> {
    let failures = 0;
    for (let wait = 100; this.running; wait = Math.min(wait * 2, 1_000)) {
      try {
        await this.deps.ranges.fill(this.campaign, entries);
        return;
      } catch (err) {
        // Not PostgreSQL being away, a few times over (a connection cut in the middle of a COPY shows as
        // a COPY cut short once, then as the connection): reading again here would fail the same way,
        // with the chunks held (heartbeated) so that nobody else tries. They are let go, to be reclaimed
        // after reclaimIdleMs, and the error is loud.
        if (!(err instanceof HeraldError && err.retryable) && ++failures >= MAX_READ_FAILURES) {
          this.deps.log.error({ err, campaignId: this.id }, "reading the chunks' recipients failed; left for reclaim");
          for (const e of entries) if (this.deps.ranges.reads(this.campaign, e)) this.held.delete(e.id);
          return;
        }
        this.deps.log.warn({ err, campaignId: this.id }, "reading the chunks' recipients failed; tried again");
        await this.sleep(wait);
      }
    }
  }

  /** Queued chunks whose grace is over, at most `count`. */
  private takeQueued(count: number): StreamEntry[] {
    const now = Date.now();
    const out: StreamEntry[] = [];
    for (let i = 0; i < this.queue.length && out.length < count;) {
      const q = this.queue[i]!;
      if (q.readyAt > now) i++;
      else {
        this.queue.splice(i, 1);
        out.push(q.entry);
      }
    }
    return out;
  }

  /**
   * A chunk stopped by a step that saw the campaign leave `sending` stays pending here. If PostgreSQL's word
   * then says it is still sending (the pause was undone before this process heard of it), the chunk goes
   * back in the queue, to be checked against the ledger again (never as a fresh one: part of it was sent).
   */
  private resumeLater(entry: StreamEntry): void {
    if (!this.running) return;
    void this.view.settled().then(() => {
      if (this.running && mayStartChunk(this.status) && this.held.has(entry.id))
        this.queue.push({ entry: { ...entry, fresh: false }, readyAt: 0 });
    });
  }

  /** Every chunk send in hand here, from its start to its end (a lost stream's re-plan waits for them). */
  private processGuarded(entry: StreamEntry): Promise<void> {
    const run = this.runGuarded(entry);
    this.inHand.add(run);
    void run.finally(() => this.inHand.delete(run));
    return run;
  }

  private async runGuarded(entry: StreamEntry): Promise<void> {
    try {
      await this.processEntry(entry);
    } catch (err) {
      // Left pending, and no longer heartbeated: the owner's reclaim retries it after reclaimIdleMs.
      this.held.delete(entry.id);
      this.deps.log.error({ err, campaignId: this.id, entry: entry.id }, 'chunk failed; left for reclaim');
      await this.sleep(200);
    }
  }

  private async processEntry(entry: StreamEntry): Promise<void> {
    const planned = entry.range;
    const held = this.held.get(entry.id);
    if (held === undefined) return;
    if (planned === null || planned.campaignId !== this.id) {
      // An entry that cannot be decoded can never succeed: report it and take it off the stream.
      this.deps.log.error({ campaignId: this.id, entry: entry.id, err: entry.error }, 'invalid stream entry dropped');
      held.phase = 'dropped';
      this.acks.add(entry.id);
      return;
    }
    if (planned.generation > this.campaign.planGeneration) {
      const c = await this.deps.campaigns.get(this.id);
      if (c !== null) this.campaign = c;
    }
    if (planned.generation < this.campaign.planGeneration) {
      // An entry of a plan that was replaced (its stream was lost and re-planned): never sent.
      held.phase = 'dropped';
      this.acks.add(entry.id);
      return;
    }
    // Read with the others it came with, unless it is of a generation this process had not loaded then.
    if (entry.chunk === null) await this.deps.ranges.fill(this.campaign, [entry]);
    const chunk = entry.chunk;
    if (chunk === null) throw new HeraldError('INTERNAL', `entry ${entry.id}: its recipients were not read`);
    // A read does not renew the heartbeat: what it delivered holds no longer than the heartbeat does.
    const checkedAt = this.liveness.enabled ? Math.min(entry.readAt, this.liveness.confirmedAt) : entry.readAt;
    held.phase = 'sending';
    const outcome = await this.sender.send({
      control: this.control,
      chunk,
      entryId: entry.id,
      holder: held.consumer,
      fresh: entry.fresh,
      storedBefore: held.stored,
      checkedAt,
    });
    this.stats.recipients += outcome.recipients;
    this.stats.failed += outcome.failed;
    held.phase = outcome.state.phase;
    held.stored = outcome.stored;
    if (outcome.state.phase === 'taken-over' || outcome.state.phase === 'lost') this.held.delete(entry.id);
    if (outcome.state.phase === 'stopped') this.resumeLater(entry);
    if (outcome.state.phase !== 'recorded') return;
    this.stats.chunks++;
    // Ack only once every event of the chunk is in ClickHouse; the consumer moves on meanwhile.
    void outcome.stored.then(() => {
      held.phase = 'stored';
      this.acks.add(entry.id);
    });
  }
}

/**
 * The batching ClickHouse writer. Rows are encoded into the open batch as they arrive; a batch is
 * inserted when it reaches `flushRows` or is `flushMs` old, one insert in flight while the next fills.
 * `append` waits while more than `maxBufferedRows` are unwritten (backpressure on the actors), and
 * hands back a promise for the moment the rows are in ClickHouse: callers XACK only after that, so an
 * acknowledged chunk always has its events stored. A failed insert is retried with backoff.
 *
 * A batch is a list of segments (row ranges), one per sub-batch (domain/sub-batch.ts), each under its sub-batch's id.
 * Before each insert attempt the fence drops the segments of chunks this process no longer holds (their
 * new holder rebuilds them from the ledger), and before a retry the segments already stored are dropped
 * (the answer to an insert that did land can be lost), so no row is ever stored twice.
 */
import type { Withholdings } from '../domain/withheld.js';
import { randomBytes } from 'node:crypto';
import type { EventKind } from '../domain/message-event.js';
import { EventBlockWriter, type BlockMark } from './native-block.js';
import { NO_METRICS, type SinkMetrics } from '../domain/metrics.js';
import { nextRowBytes } from '../domain/buffers.js';

export interface EventInserter {
  /** one Native block of `message_events` rows (native-block.ts), in parts */
  insert(block: Buffer[], rowCount: number): Promise<void>;
  /** of these (campaign, batch id) pairs, the ones with rows stored, as `landedKey`s */
  landed(pairs: ReadonlyArray<{ campaignId: number; batchId: bigint }>): Promise<Set<string>>;
}

function pendingKey(campaignId: number, batchId: bigint, holder: string): string {
  return `${campaignId}:${batchId}:${holder}`;
}

export function landedKey(campaignId: number, batchId: bigint): string {
  return `${campaignId}:${batchId}`;
}

/**
 * Which of a holder's chunks it may still write events for (stream/lua/fence-3.lua). Returns the entry ids
 * whose segments must be dropped.
 */
export type EventFence = (campaignId: number, holder: string, entryIds: readonly string[]) => Promise<string[]>;

/** The chunk a segment's events belong to, and the consumer that holds it. */
export interface SegmentOwner {
  entryId: string;
  holder: string;
}

export interface Outcomes {
  campaignId: number;
  /** packed user ids (domain/packed-ids.ts), `count` of them */
  users: Buffer;
  count: number;
  failed: ReadonlyMap<number, string>;
  atSec: number;
  /** the sub-batch id (domain/sub-batch.ts) */
  batchId: bigint;
  /** what the rows not in `failed` or `withheld` are: delivered (the default), or aborted (never sent) */
  kind?: 'delivered' | 'aborted';
  /** recipients not sent to, each with its outcome (skipped, suppressed, capped); none when absent */
  withheld?: Withholdings;
  /** each recipient's segment value (the campaign's segment_by attribute), or null */
  segments?: ReadonlyArray<string | null> | null;
  /** null: written whoever holds the chunk (no fence) */
  owner: SegmentOwner | null;
}

/** One event of `appendGroup`: a read carries when its message was delivered and the segment, when known. */
export interface GroupEvent {
  campaignId: number;
  userId: string;
  kind: EventKind;
  atSec: number;
  error: string;
  deliveredAtSec: number;
  segment: string;
}

/** One event outside any sub-batch (`append`). */
export interface SingleEvent {
  campaignId: number;
  userId: string;
  kind: EventKind;
  atSec: number;
  /** @default '' */
  error?: string;
  /** a read: when its message was delivered (s; 0: unknown) */
  deliveredAtSec?: number;
  /** @default '' */
  segment?: string;
}

export interface EventSinkOptions {
  flushRows: number;
  flushMs: number;
  maxBufferedRows: number;
  /** first retry delay; doubles up to 10 s */
  retryBaseMs?: number;
  fence?: EventFence;
  /**
   * A fence answer older than this when the insert is about to start is asked again: the process stalled
   * (GC, SIGSTOP) in between, and its chunks may have been taken over meanwhile. Keep it well under the
   * reclaim time and the liveness ttl, which are how long a fenced entry stays ours (the fence resets its
   * idle time and renews its process's heartbeat).
   */
  fenceValidMs?: number;
  /** `failedAt`: the fence (Redis, tried again every `retryBaseMs`) or ClickHouse (backed off) */
  onError?: (err: unknown, attempt: number, failedAt: 'fence' | 'clickhouse') => void;
  /** rows left out of an insert by the fence (their chunk was taken over) */
  onFenced?: (campaignId: number, entryIds: readonly string[], rows: number) => void;
  /** counts inserts (rows, latency) and failed attempts; default: none */
  metrics?: SinkMetrics;
}

interface Segment {
  campaignId: number;
  batchId: bigint;
  owner: SegmentOwner | null;
  start: BlockMark;
  end: BlockMark;
  rows: number;
}

interface Batch {
  /** the id of rows outside a sub-batch (single events) */
  id: bigint;
  /** `pendingKey`s of the sub-batches in it */
  keys: string[];
  segments: Segment[];
  writer: EventBlockWriter;
  done: Promise<void>;
  resolve: () => void;
  openedAt: number;
}

/** Wrapped in an object: a promise resolving to a promise would flatten into one. */
export interface Ticket {
  stored: Promise<void>;
}

export interface SinkStats {
  insertedRows: number;
  insertedBatches: number;
  failedInserts: number;
  bufferedRows: number;
  /** rows left to a chunk's new holder */
  fencedRows: number;
  /** rows found already stored before a retry */
  landedRows: number;
}

export class EventSink {
  private current: Batch;
  private inflight: Promise<void> | null = null;
  private inflightRows = 0;
  private timer: NodeJS.Timeout | null = null;
  private waiters: Array<() => void> = [];
  private closed = false;
  /** someone waits for the open batch (flushSoon while an insert was in flight) */
  private soon = false;
  /** bytes a packed user id is given in a new batch's column (the last batch's, domain/buffers.ts) */
  private userBytes = 24;
  /** sub-batches appended and not yet stored (or fenced out), by `pendingKey` → their storing */
  private readonly pending = new Map<string, Promise<void>>();
  readonly stats: SinkStats = { insertedRows: 0, insertedBatches: 0, failedInserts: 0, bufferedRows: 0, fencedRows: 0, landedRows: 0 };

  constructor(
    private readonly inserter: EventInserter,
    private readonly opts: EventSinkOptions,
  ) {
    this.current = this.newBatch();
  }

  private newBatch(): Batch {
    let resolve!: () => void;
    const done = new Promise<void>((r) => (resolve = r));
    const id = randomBytes(8).readBigUInt64LE();
    return {
      id,
      keys: [],
      segments: [],
      // Sized for a full batch up front, its user ids as long as the last batch's: growing by doubling
      // would copy, and touch, it all, and leave the malloc heap a run of freed big blocks (peak RSS).
      writer: new EventBlockWriter(Math.min(this.opts.flushRows, 1 << 20), id, this.userBytes),
      done,
      resolve,
      openedAt: Date.now(),
    };
  }

  private buffered(): number {
    return this.current.writer.rows + this.inflightRows;
  }

  /** Waits for room, encodes one sub-batch's outcomes, and returns the promise of their being stored. */
  async appendOutcomes(o: Outcomes): Promise<Ticket> {
    // The same sub-batch of the same holder is already on its way: a holder that rebuilds its own chunk's
    // events (a new actor of this process resuming its consumer's pending entries) while the first copy
    // is still here must not add a second one. A different holder's copy is appended: the fence keeps
    // exactly one of the two, the one whose holder still has the chunk.
    const key = o.owner === null ? null : pendingKey(o.campaignId, o.batchId, o.owner.holder);
    const already = key === null ? undefined : this.pending.get(key);
    if (already !== undefined) return { stored: already };
    await this.room();
    const again = key === null ? undefined : this.pending.get(key);
    if (again !== undefined) return { stored: again };
    const w = this.current.writer;
    const start = w.mark();
    w.setBatch(o.batchId);
    w.addOutcomes(o.campaignId, o.users, o.count, o.failed, o.atSec, o.kind, o.segments ?? null, o.withheld);
    this.current.segments.push({ campaignId: o.campaignId, batchId: o.batchId, owner: o.owner, start, end: w.mark(), rows: o.count });
    if (key !== null) {
      this.current.keys.push(key);
      this.pending.set(key, this.current.done);
    }
    return this.afterAppend();
  }

  /**
   * One event outside any sub-batch (a read, a provider's callback): written under the insert's own id.
   * A read carries when its message was delivered and the recipient's segment, when known.
   */
  async append(e: SingleEvent): Promise<Ticket> {
    const { campaignId, userId, kind, atSec } = e;
    await this.room();
    const b = this.current;
    const start = b.writer.mark();
    b.writer.setBatch(b.id);
    b.writer.add(campaignId, userId, kind, atSec, e.error ?? '', e.deliveredAtSec ?? 0, e.segment ?? '');
    const last = b.segments[b.segments.length - 1];
    if (
      last !== undefined &&
      last.owner === null &&
      last.batchId === b.id &&
      last.campaignId === campaignId &&
      last.end.rows === start.rows
    ) {
      last.end = b.writer.mark();
      last.rows++;
    } else b.segments.push({ campaignId, batchId: b.id, owner: null, start, end: b.writer.mark(), rows: 1 });
    return this.afterAppend();
  }

  /**
   * Events written together under one id of their own (a spool frame, domain/spool-frame.ts), all in
   * one insert: a frame replayed after a crash is then either wholly stored (`landed`) or not at all.
   */
  async appendGroup(batchId: bigint, events: readonly GroupEvent[]): Promise<Ticket> {
    await this.room();
    const b = this.current;
    b.writer.setBatch(batchId);
    let from = 0;
    while (from < events.length) {
      // one segment per run of a campaign's events: the landed check and the fence go by campaign
      const campaignId = events[from]!.campaignId;
      const start = b.writer.mark();
      let to = from;
      for (; to < events.length && events[to]!.campaignId === campaignId; to++) {
        const e = events[to]!;
        b.writer.add(campaignId, e.userId, e.kind, e.atSec, e.error, e.deliveredAtSec, e.segment);
      }
      b.segments.push({ campaignId, batchId, owner: null, start, end: b.writer.mark(), rows: to - from });
      from = to;
    }
    return this.afterAppend();
  }

  /** Of these sub-batch ids of a campaign, the ones whose rows are stored already. */
  async landed(campaignId: number, batchIds: readonly bigint[]): Promise<Set<bigint>> {
    if (batchIds.length === 0) return new Set();
    const keys = await this.inserter.landed(batchIds.map((batchId) => ({ campaignId, batchId })));
    return new Set(batchIds.filter((b) => keys.has(landedKey(campaignId, b))));
  }

  private async room(): Promise<void> {
    if (this.closed) throw new Error('event sink is closed');
    while (this.buffered() >= this.opts.maxBufferedRows) await new Promise<void>((r) => this.waiters.push(r));
  }

  private afterAppend(): Ticket {
    const batch = this.current;
    this.stats.bufferedRows = this.buffered();
    if (batch.writer.rows >= this.opts.flushRows) this.rotate();
    else if (this.timer === null) this.timer = setTimeout(() => this.rotate(), this.opts.flushMs);
    return { stored: batch.done };
  }

  /** Closes the open batch and queues it behind the insert in flight. */
  private rotate(): void {
    if (this.timer !== null) {
      clearTimeout(this.timer);
      this.timer = null;
    }
    const batch = this.current;
    if (batch.writer.rows === 0) return;
    this.soon = false;
    const mark = batch.writer.mark();
    this.userBytes = nextRowBytes(mark.user, mark.rows, this.userBytes);
    this.current = this.newBatch();
    const rows = batch.writer.rows;
    this.inflightRows += rows;
    const prev = this.inflight ?? Promise.resolve();
    const run = prev.then(() => this.insertWithRetry(batch));
    this.inflight = run;
    void run.then(() => {
      this.inflightRows -= rows;
      this.stats.insertedBatches++;
      this.stats.bufferedRows = this.buffered();
      if (this.inflight === run) this.inflight = null;
      for (const k of batch.keys) this.pending.delete(k);
      batch.resolve();
      const w = this.waiters;
      this.waiters = [];
      for (const wake of w) wake();
      // rows that arrived while we were inserting and are already a full batch (or are awaited) go next
      if (this.current.writer.rows >= this.opts.flushRows || (this.soon && this.current.writer.rows > 0)) this.rotate();
    });
  }

  /**
   * Inserts until it works. Each attempt first leaves out the segments of chunks taken over meanwhile
   * (fence); a retry also leaves out the segments already stored (the failed attempt may have landed).
   */
  private async insertWithRetry(batch: Batch): Promise<void> {
    const base = this.opts.retryBaseMs ?? 200;
    let segments = batch.segments;
    // Where the last attempt failed: ClickHouse backs off (up to 10 s), Redis's fence does not. A Redis
    // that comes back empty is found lost by an owner that waits only a flush or two before re-planning
    // (actor/lost-plan.ts): these rows must be in by then, or the raised plan key fences them out and the
    // re-plan sends their recipients again.
    // (set inside `fence` too: declared by cast, so the checker does not narrow it to its first value)
    let failedAt = 'clickhouse' as 'fence' | 'clickhouse';
    let clickhouseFailures = 0;
    const fence = async (s: Segment[]): Promise<Segment[]> => {
      failedAt = 'fence';
      const kept = await this.fenced(s);
      failedAt = 'clickhouse';
      return kept;
    };
    for (let attempt = 1; ; attempt++) {
      try {
        // Taken before the fence is asked: its answer holds from the moment Redis gave it, which a stall
        // while the reply waited does not postpone.
        let fencedAt = Date.now();
        segments = await fence(segments);
        if (attempt > 1) segments = await this.notLanded(segments);
        const body = (): Buffer[] => batch.writer.finish(segments.length === batch.segments.length ? undefined : segments);
        let block = body();
        // Stalled since the fence answered (GC, SIGSTOP)? Ask again right before the insert starts.
        while (Date.now() - fencedAt > (this.opts.fenceValidMs ?? Infinity)) {
          fencedAt = Date.now();
          segments = await fence(segments);
          block = body();
        }
        if (segments.length === 0) return;
        const rows = segments.reduce((n, s) => n + s.rows, 0);
        const t0 = performance.now();
        await this.inserter.insert(block, rows);
        (this.opts.metrics ?? NO_METRICS).inserted(rows, (performance.now() - t0) / 1000);
        this.stats.insertedRows += rows;
        return;
      } catch (err) {
        this.stats.failedInserts++;
        (this.opts.metrics ?? NO_METRICS).insertFailed();
        this.opts.onError?.(err, attempt, failedAt);
        const waitMs = failedAt === 'fence' ? base : Math.min(base * 2 ** clickhouseFailures++, 10_000);
        await new Promise((r) => setTimeout(r, waitMs));
      }
    }
  }

  private async fenced(segments: Segment[]): Promise<Segment[]> {
    const fence = this.opts.fence;
    if (fence === undefined) return segments;
    const byHolder = new Map<string, { campaignId: number; holder: string; ids: Set<string> }>();
    for (const s of segments) {
      if (s.owner === null) continue;
      const key = `${s.campaignId} ${s.owner.holder}`;
      let g = byHolder.get(key);
      if (g === undefined) byHolder.set(key, (g = { campaignId: s.campaignId, holder: s.owner.holder, ids: new Set() }));
      g.ids.add(s.owner.entryId);
    }
    const dropped = new Set<string>();
    for (const g of byHolder.values()) {
      const ids = await fence(g.campaignId, g.holder, [...g.ids]);
      for (const id of ids) dropped.add(`${g.campaignId} ${g.holder} ${id}`);
      if (ids.length > 0) {
        const rows = segments
          .filter((s) => s.owner !== null && s.campaignId === g.campaignId && s.owner.holder === g.holder && ids.includes(s.owner.entryId))
          .reduce((n, s) => n + s.rows, 0);
        this.stats.fencedRows += rows;
        this.opts.onFenced?.(g.campaignId, ids, rows);
      }
    }
    if (dropped.size === 0) return segments;
    return segments.filter((s) => s.owner === null || !dropped.has(`${s.campaignId} ${s.owner.holder} ${s.owner.entryId}`));
  }

  private async notLanded(segments: Segment[]): Promise<Segment[]> {
    const landed = await this.inserter.landed(segments.map((s) => ({ campaignId: s.campaignId, batchId: s.batchId })));
    if (landed.size === 0) return segments;
    const rest = segments.filter((s) => !landed.has(landedKey(s.campaignId, s.batchId)));
    for (const s of segments) if (landed.has(landedKey(s.campaignId, s.batchId))) this.stats.landedRows += s.rows;
    return rest;
  }

  /** Starts inserting the open batch now instead of at flushMs: senders call this when they run out of work. */
  flushSoon(): void {
    if (this.current.writer.rows === 0) return;
    if (this.inflight === null) this.rotate();
    // Behind an insert in flight: goes as soon as that one is done, not at flushMs.
    else this.soon = true;
  }

  /** Inserts everything appended so far. */
  async flush(): Promise<void> {
    this.rotate();
    while (this.inflight !== null) await this.inflight;
  }

  async close(): Promise<void> {
    await this.flush();
    this.closed = true;
  }
}

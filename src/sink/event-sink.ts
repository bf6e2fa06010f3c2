/**
 * The batching ClickHouse writer. Rows are encoded into the open batch as they arrive; a batch is
 * inserted when it reaches `flushRows` or is `flushMs` old, one insert in flight while the next fills.
 * `append` waits while more than `maxBufferedRows` are unwritten (backpressure on the actors), and
 * hands back a promise for the moment the rows are in ClickHouse: callers XACK only after that, so an
 * acknowledged chunk always has its events stored. A failed insert is retried (same batch) with backoff.
 */
import { randomBytes } from 'node:crypto';
import type { EventKind } from '../domain/message-event.js';
import { EventRowWriter } from './row-binary.js';

export interface EventInserter {
  insert(rows: Buffer, rowCount: number): Promise<void>;
  /** rows of batch `batch` already stored, looked up within these campaigns (their primary-key prefix) */
  landed(batch: bigint, campaignIds: readonly number[]): Promise<number>;
}

export interface EventSinkOptions {
  flushRows: number;
  flushMs: number;
  maxBufferedRows: number;
  /** first retry delay; doubles up to 10 s */
  retryBaseMs?: number;
  onError?: (err: unknown, attempt: number) => void;
}

interface Batch {
  id: bigint;
  campaigns: Set<number>;
  writer: EventRowWriter;
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
}

export class EventSink {
  private current: Batch;
  private inflight: Promise<void> | null = null;
  private inflightRows = 0;
  private timer: NodeJS.Timeout | null = null;
  private waiters: Array<() => void> = [];
  private closed = false;
  readonly stats: SinkStats = { insertedRows: 0, insertedBatches: 0, failedInserts: 0, bufferedRows: 0 };

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
      campaigns: new Set(),
      writer: new EventRowWriter(Math.min(this.opts.flushRows * 56, 64 << 20), id),
      done,
      resolve,
      openedAt: Date.now(),
    };
  }

  private buffered(): number {
    return this.current.writer.rows + this.inflightRows;
  }

  /** Waits for room, encodes, and returns the promise of the rows being stored. */
  /** `users` are packed user ids (domain/packed-ids.ts), `count` of them. */
  async appendOutcomes(
    campaignId: number,
    users: Buffer,
    count: number,
    failed: ReadonlyMap<number, string>,
    atSec: number,
  ): Promise<Ticket> {
    await this.room();
    this.current.campaigns.add(campaignId);
    this.current.writer.addOutcomes(campaignId, users, count, failed, atSec);
    return this.afterAppend();
  }

  async append(campaignId: number, userId: string, kind: EventKind, atSec: number, error = ''): Promise<Ticket> {
    await this.room();
    this.current.campaigns.add(campaignId);
    this.current.writer.add(campaignId, userId, kind, atSec, error);
    return this.afterAppend();
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
    this.current = this.newBatch();
    const rows = batch.writer.rows;
    this.inflightRows += rows;
    const prev = this.inflight ?? Promise.resolve();
    const run = prev.then(() => this.insertWithRetry(batch, batch.writer.finish(), rows));
    this.inflight = run;
    void run.then(() => {
      this.inflightRows -= rows;
      this.stats.insertedRows += rows;
      this.stats.insertedBatches++;
      this.stats.bufferedRows = this.buffered();
      if (this.inflight === run) this.inflight = null;
      batch.resolve();
      const w = this.waiters;
      this.waiters = [];
      for (const wake of w) wake();
      // rows that arrived while we were inserting and are already a full batch go next
      if (this.current.writer.rows >= this.opts.flushRows) this.rotate();
    });
  }

  /**
   * Inserts until it works. A failed insert may still have been stored (the answer was lost), so before
   * each retry the batch id is looked up: a batch already there is not inserted again.
   */
  private async insertWithRetry(batch: Batch, rows: Buffer, count: number): Promise<void> {
    const base = this.opts.retryBaseMs ?? 200;
    const campaigns = [...batch.campaigns];
    for (let attempt = 1; ; attempt++) {
      try {
        if (attempt > 1) {
          const landed = await this.inserter.landed(batch.id, campaigns);
          if (landed > 0) {
            // landed < count happens only if the batch spanned partitions (months) and one part failed;
            // a second insert would double the rest, so it is reported rather than retried.
            if (landed < count) this.opts.onError?.(new Error(`batch ${batch.id} stored ${landed} of ${count} rows`), attempt);
            return;
          }
        }
        await this.inserter.insert(rows, count);
        return;
      } catch (err) {
        this.stats.failedInserts++;
        this.opts.onError?.(err, attempt);
        await new Promise((r) => setTimeout(r, Math.min(base * 2 ** (attempt - 1), 10_000)));
      }
    }
  }

  /** Starts inserting the open batch now instead of at flushMs: senders call this when they run out of work. */
  flushSoon(): void {
    if (this.current.writer.rows > 0 && this.inflight === null) this.rotate();
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

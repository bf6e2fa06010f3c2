/**
 * Writes suppressions: bulk NDJSON bodies (PUT / DELETE /v1/suppressions) streamed line by line into COPY
 * text with each row's fingerprint, a bad line rejected with its number while the rest is kept; and single
 * unsubscribes. A bulk body is staged as a batch while it arrives, and the batch is applied in the
 * background: the request waits for the apply only `answerWaitMs` (then answers 202 with the batch), so a
 * body of any size is answered within seconds of its last byte, whatever PostgreSQL is doing. After a put
 * commits, its mark is raised in Redis, so senders reload before their next sub-batch
 * (consent/suppression-index.ts); a single unsubscribe's answer waits for that. Every `sweepMs`, batches
 * left applying by a stopped process are applied, and applied puts whose mark was not raised are marked.
 */
import type { Readable } from 'node:stream';
import type { Logger } from 'pino';
import { HeraldError } from '../errors.js';
import { fingerprint, fingerprintSql } from '../domain/fingerprint.js';
import { parseSuppressionLine, suppressionCopyLine, type SuppressionLine } from '../domain/consent-input.js';
import type { Actor, AuditRecord } from '../domain/audit.js';
import type { StageRequest, SuppressionBatch, SuppressionBatchStatus, SuppressionOp } from '../domain/suppression-batch.js';
import { LoopTurns } from './loop-turns.js';
import { withRoom } from '../domain/buffers.js';

/** Each change is recorded in the audit with it. */
export interface SuppressionRecord {
  stageBatch(p: StageRequest): Promise<number>;
  applyBatch(id: number, opts: { wait: boolean }): Promise<SuppressionBatch | null>;
  getBatch(id: number): Promise<SuppressionBatch | null>;
  openBatches(limit: number, olderThanMs: number): Promise<Array<{ id: number; status: SuppressionBatchStatus }>>;
  markRaised(id: number): Promise<void>;
  changeMark(): Promise<number>;
  put(s: SuppressionLine, fp: string, audit: AuditRecord): Promise<number>;
}

export interface SuppressionWriterOptions {
  /** how long a bulk request waits for its apply before answering 202 with the batch */
  answerWaitMs: number;
  /** how often batches left behind by a stopped process are looked for */
  sweepMs: number;
  log: Logger;
}

export interface BulkReport {
  /** non-empty lines */
  total: number;
  accepted: number;
  rejectedCount: number;
  /** the first MAX_REJECTED_SHOWN, in line order */
  rejected: Array<{ line: number; error: string }>;
}

export const MAX_REJECTED_SHOWN = 100;
const BATCH_BYTES = 256 * 1024;
const SWEEP_BATCHES = 100;

/**
 * NDJSON to the staging table's COPY text, in ~256 KB Buffers (the COPY's backpressure reaches the
 * socket). Written into a Buffer, not joined into a string: a string of a batch's lines holds each line
 * until the batch is out, long enough for them to be promoted, and 1M lines then left the old generation
 * hundreds of MB of them between full collections (peak RSS 606 MB for a 1M-line PUT, bench/README.md).
 */
export async function* suppressionCopyText(body: Readable, report: BulkReport): AsyncGenerator<Buffer> {
  let lineNo = 0;
  let out: Buffer = Buffer.allocUnsafe(BATCH_BYTES + 64 * 1024);
  let off = 0;
  const handle = (line: string): void => {
    lineNo++;
    if (line.trim() === '') return;
    report.total++;
    const r = parseSuppressionLine(line);
    if (!r.ok) {
      report.rejectedCount++;
      if (report.rejected.length < MAX_REJECTED_SHOWN) report.rejected.push({ line: lineNo, error: r.error });
      return;
    }
    report.accepted++;
    const text = suppressionCopyLine(lineNo, r.value, fingerprintSql(fingerprint(r.value.topic, r.value.userId)));
    const bytes = Buffer.byteLength(text, 'utf8');
    if (off + bytes > out.length) out = withRoom(out, off, bytes);
    off += out.write(text, off, bytes, 'utf8');
  };
  let carry = '';
  body.setEncoding('utf8');
  const turns = new LoopTurns();
  for await (const chunk of body as AsyncIterable<string>) {
    if (turns.due()) await turns.take();
    const text = carry + chunk;
    let start = 0;
    for (let nl = text.indexOf('\n'); nl !== -1; nl = text.indexOf('\n', start)) {
      handle(text.slice(start, nl));
      start = nl + 1;
    }
    carry = text.slice(start);
    if (off >= BATCH_BYTES) {
      yield out.subarray(0, off);
      out = Buffer.allocUnsafe(BATCH_BYTES + 64 * 1024);
      off = 0;
    }
  }
  if (carry !== '') handle(carry);
  if (off > 0) yield out.subarray(0, off);
}

export class SuppressionWriter {
  private sweepTimer: NodeJS.Timeout | null = null;
  private state: 'running' | 'stopped' = 'running';
  private sweeping: Promise<void> | null = null;
  private readonly applies = new Map<number, Promise<SuppressionBatch | null>>();

  constructor(
    private readonly record: SuppressionRecord,
    /** raises the change mark senders compare with (stream/redis-gateway.ts) */
    private readonly raiseMark: (mark: number) => Promise<unknown>,
    private readonly opts: SuppressionWriterOptions,
  ) {}

  start(): void {
    this.sweepTimer = setInterval(() => {
      this.sweeping ??= this.sweep().finally(() => (this.sweeping = null));
    }, this.opts.sweepMs);
    this.sweepTimer.unref();
  }

  /** Stops sweeping and waits for applies started here (one cut short rolls back and is applied elsewhere). */
  async stop(timeoutMs: number): Promise<void> {
    this.state = 'stopped';
    if (this.sweepTimer !== null) clearInterval(this.sweepTimer);
    const all = Promise.allSettled([...this.applies.values(), this.sweeping]);
    await Promise.race([all, new Promise((resolve) => setTimeout(resolve, timeoutMs).unref())]);
  }

  /**
   * Stages the body as a batch, starts its apply, and answers with the batch as it stands after
   * `answerWaitMs`, with the request's rejected lines (the first MAX_REJECTED_SHOWN).
   */
  async bulk(op: SuppressionOp, body: Readable, actor: Actor): Promise<{ batch: SuppressionBatch; report: BulkReport }> {
    const report: BulkReport = { total: 0, accepted: 0, rejectedCount: 0, rejected: [] };
    const startedAt = new Date();
    const id = await this.record.stageBatch({
      op,
      copyText: suppressionCopyText(body, report),
      counts: () => report,
      audit: (batchId) => ({
        actor,
        action: op === 'put' ? 'suppressions.put' : 'suppressions.delete',
        detail: { batch_id: batchId, accepted: report.accepted, rejected_count: report.rejectedCount, total: report.total },
      }),
      startedAt,
    });
    // An apply that fails within the wait is answered as the batch stands: failed (with the reason), or
    // still applying when its connection failed (the sweep applies it), so the answer never hides a change.
    const applied = this.apply(id).catch(() => null);
    const done = await Promise.race([
      applied,
      new Promise<null>((resolve) => setTimeout(() => resolve(null), this.opts.answerWaitMs).unref()),
    ]);
    const batch = done ?? (await this.record.getBatch(id));
    if (batch === null) throw new HeraldError('INTERNAL', `suppression batch ${id} vanished`);
    return { batch, report };
  }

  get(id: number): Promise<SuppressionBatch | null> {
    return this.record.getBatch(id);
  }

  /**
   * Applies batch `id` (with the older ones still applying, first), then, for a put, raises the change
   * mark. Rejects with the apply's error; a batch left `applying` (its connection failed) is the sweep's.
   */
  private apply(id: number, wait = true): Promise<SuppressionBatch | null> {
    const running = this.record.applyBatch(id, { wait }).then(async (batch) => {
      if (batch === null || batch.status !== 'completed' || batch.op !== 'put' || batch.inEffect) return batch;
      await this.marked(batch.id);
      return { ...batch, inEffect: true };
    });
    running.catch((err: unknown) => this.opts.log.error({ err, batchId: id }, 'suppression batch apply failed'));
    this.applies.set(id, running);
    void running.finally(() => this.applies.delete(id)).catch(() => undefined);
    return running;
  }

  /** Raises an applied put's change mark, then records that it did: the put is in effect. */
  private async marked(id: number): Promise<void> {
    await this.raiseMark(await this.record.changeMark());
    await this.record.markRaised(id);
  }

  private async sweep(): Promise<void> {
    let open: Array<{ id: number; status: SuppressionBatchStatus }>;
    try {
      open = await this.record.openBatches(SWEEP_BATCHES, this.opts.sweepMs);
    } catch {
      return;
    }
    for (const b of open) {
      if (this.state === 'stopped') return;
      if (this.applies.has(b.id)) continue;
      try {
        if (b.status === 'applying') {
          const batch = await this.apply(b.id, false);
          if (batch !== null)
            this.opts.log.warn({ batchId: b.id, status: batch.status }, 'suppression batch left by a stopped process applied');
        } else {
          await this.marked(b.id);
        }
      } catch {
        // logged by apply, or tried again on the next sweep
      }
    }
  }

  /** One suppression (an unsubscribe); once answered, no sub-batch screened after it sends to that user. */
  async one(s: SuppressionLine, actor: Actor, campaignId: number | null = null): Promise<void> {
    const audit: AuditRecord = {
      actor,
      action: 'suppression.unsubscribe',
      campaignId,
      detail: { user_id: s.userId, topic: s.topic === '' ? null : s.topic },
    };
    await this.raiseMark(await this.record.put(s, fingerprintSql(fingerprint(s.topic, s.userId)), audit));
  }
}

/**
 * Runs recipient imports as jobs: a request's body is decoded (gzip), hashed, turned into COPY text
 * and staged as it arrives; the merge into the audience then runs in the background, and the request
 * waits for it only `answerWaitMs`, so a request of any size gets its answer within seconds of its last
 * byte. Every `sweepMs`, jobs left behind by a process that stopped are resumed (src/store/import-repo.ts).
 */
import { createHash } from 'node:crypto';
import { Transform, type Readable } from 'node:stream';
import { createGunzip } from 'node:zlib';
import type { Logger } from 'pino';
import { HeraldError } from '../errors.js';
import { isFinished, MAX_KEPT_REJECTED, type ImportFormat, type ImportJob, type RejectedLine } from '../domain/import-job.js';
import type { Actor } from '../domain/audit.js';
import type { ImportRepo } from '../store/import-repo.js';
import { csvToCopy, ndjsonToCopy, type ImportReport } from './recipient-import.js';
import { NO_METRICS, type ImportMetrics } from '../domain/metrics.js';

export type ContentEncoding = 'identity' | 'gzip';

export interface ImportJobsOptions {
  /** how long an import request waits for its merge before answering 202 */
  answerWaitMs: number;
  /** how often jobs left behind by a stopped process are looked for */
  sweepMs: number;
  /** decompressed body bytes past which an import fails with 413 */
  maxImportBytes: number;
  /** how often a receiving job's progress is written */
  progressMs: number;
  log: Logger;
  /** counts jobs started and ended here, and their rows; default: none */
  metrics?: ImportMetrics;
}

export interface ImportRequest {
  audienceId: number;
  format: ImportFormat;
  encoding: ContentEncoding;
  body: Readable;
  /** who started it, for the audit */
  actor: Actor;
}

export interface ImportResult {
  job: ImportJob;
  /** the request's rejected lines, in line order (up to MAX_REJECTED) */
  rejected: RejectedLine[];
}

export class ImportJobs {
  private sweepTimer: NodeJS.Timeout | null = null;
  private sweeping: Promise<void> | null = null;
  private readonly merges = new Map<number, Promise<ImportJob | null>>();
  private readonly watchers = new Set<(job: ImportJob) => void>();

  private readonly metrics: ImportMetrics;

  constructor(
    private readonly repo: ImportRepo,
    private readonly opts: ImportJobsOptions,
  ) {
    this.metrics = opts.metrics ?? NO_METRICS;
  }

  start(): void {
    this.sweepTimer = setInterval(() => {
      this.sweeping ??= this.repo
        .resumeLeftBehind((job) => {
          this.opts.log.warn({ importId: job.id, status: job.status, error: job.error }, 'import left behind by a stopped process resumed');
          this.changed(job);
        })
        .finally(() => (this.sweeping = null));
    }, this.opts.sweepMs);
    this.sweepTimer.unref();
  }

  /** Stops sweeping and waits for merges started here (a merge cut short rolls back and is resumed elsewhere). */
  async stop(timeoutMs: number): Promise<void> {
    if (this.sweepTimer !== null) clearInterval(this.sweepTimer);
    const all = Promise.allSettled([...this.merges.values(), this.sweeping]);
    await Promise.race([all, new Promise((resolve) => setTimeout(resolve, timeoutMs).unref())]);
  }

  /** `fn` hears of every job this process changes (for live progress); returns the unsubscribe. */
  watch(fn: (job: ImportJob) => void): () => void {
    this.watchers.add(fn);
    return () => this.watchers.delete(fn);
  }

  get(id: number): Promise<ImportJob | null> {
    return this.repo.get(id);
  }

  listByAudience(audienceId: number, opts: { limit: number; before: number | null }): Promise<ImportJob[]> {
    return this.repo.listByAudience(audienceId, opts);
  }

  /** Stages the body, starts the merge, and answers with the job as it stands after `answerWaitMs`. */
  async run(req: ImportRequest): Promise<ImportResult> {
    const report: ImportReport = { total: 0, accepted: 0, rejectedCount: 0, rejected: [] };
    let receivedBytes = 0;
    req.body.on('data', (chunk: Buffer) => (receivedBytes += chunk.length));
    const decoded = this.decode(req);
    const batches = req.format === 'csv' ? csvToCopy(decoded.stream, report) : ndjsonToCopy(decoded.stream, report);
    let progress: NodeJS.Timeout | null = null;
    let id: number;
    try {
      id = await this.repo.receive({
        audienceId: req.audienceId,
        format: req.format,
        audit: { actor: req.actor, action: 'import.start' },
        batches,
        counts: () => ({
          receivedBytes,
          total: report.total,
          staged: report.accepted,
          rejectedCount: report.rejectedCount,
          rejected: sortedRejected(report).slice(0, MAX_KEPT_REJECTED),
          contentSha256: decoded.sha256(),
        }),
        onCreated: (jobId) => {
          this.metrics.importStarted();
          progress = setInterval(() => void this.repo.progress(jobId, receivedBytes, report.accepted, report.total), this.opts.progressMs);
          progress.unref();
        },
      });
    } finally {
      if (progress !== null) clearInterval(progress);
      req.body.destroy();
    }
    const merge = this.merge(id);
    const done = await Promise.race([
      merge.then(
        (job) => job,
        () => null,
      ),
      new Promise<null>((resolve) => setTimeout(() => resolve(null), this.opts.answerWaitMs).unref()),
    ]);
    const job = done !== null && isFinished(done.status) ? done : await this.repo.get(id);
    if (job === null) throw new HeraldError('INTERNAL', `import ${id} vanished`);
    return { job, rejected: sortedRejected(report) };
  }

  private merge(id: number): Promise<ImportJob | null> {
    const running = this.repo.merge(id).then(
      (job) => {
        if (job !== null) this.changed(job);
        return job;
      },
      (err: unknown) => {
        // A connection failure leaves the job merging, for the sweep to resume; others failed it.
        this.opts.log.error({ err, importId: id }, 'import merge failed');
        void this.repo
          .get(id)
          .then((job) => job !== null && this.changed(job))
          .catch(() => undefined);
        throw err;
      },
    );
    running.catch(() => undefined);
    this.merges.set(id, running);
    void running.finally(() => this.merges.delete(id)).catch(() => undefined);
    return running;
  }

  private changed(job: ImportJob): void {
    // Each job ends once: a merge here reports it once, and so does a resume of a job left behind.
    if (isFinished(job.status)) {
      this.metrics.importFinished(job.status === 'completed' ? 'completed' : 'failed', {
        imported: job.imported ?? 0,
        duplicates: job.duplicates ?? 0,
        rejected: job.rejectedCount,
      });
    }
    for (const fn of this.watchers) fn(job);
  }

  /**
   * The decompressed body, counted against maxImportBytes (a small gzip body can inflate without
   * bound) and hashed, so a re-import of the same content is recognised.
   */
  private decode(req: ImportRequest): { stream: Readable; sha256: () => string } {
    const hash = createHash('sha256');
    let bytes = 0;
    const max = this.opts.maxImportBytes;
    const tap = new Transform({
      transform(chunk: Buffer, _enc, cb) {
        bytes += chunk.length;
        if (bytes > max) {
          cb(new HeraldError('PAYLOAD_TOO_LARGE', `body exceeds ${max} bytes`, { field: 'body', limit: max }));
          return;
        }
        hash.update(chunk);
        cb(null, chunk);
      },
    });
    // The error reaches the reader through its iteration (a destroyed stream keeps it), which may start
    // only after the job's table exists: until then nobody else listens.
    tap.on('error', () => undefined);
    req.body.on('error', (err) => tap.destroy(err));
    if (req.encoding === 'gzip') {
      const gunzip = createGunzip();
      gunzip.on('error', (err) =>
        tap.destroy(new HeraldError('BAD_REQUEST', `body: is not valid gzip (${err.message})`, { field: 'content-encoding' })),
      );
      req.body.pipe(gunzip).pipe(tap);
    } else {
      req.body.pipe(tap);
    }
    let digest: string | null = null;
    return { stream: tap, sha256: () => (digest ??= hash.digest('hex')) };
  }
}

function sortedRejected(report: ImportReport): RejectedLine[] {
  // CSV parse errors are reported by event, ahead of rows read before them: answer in line order.
  return report.rejected.sort((x, y) => x.line - y.line);
}

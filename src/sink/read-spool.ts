/**
 * A durable local spool for reads and provider callbacks, so the pixel and `POST /v1/events` answer
 * without waiting for a ClickHouse insert, and an answered read survives a `kill -9` of the process
 * that answered it.
 *   - `append` adds events to the next frame; frames are written to an append-only file and fsynced in
 *     groups (group commit: whatever arrives while one fsync runs goes in the next frame), and `append`
 *     resolves once its frame is on disk. Only then does the API answer.
 *   - The drainer (spool-drainer.ts) runs in a worker thread (spool-worker.ts), told of every fsync: it
 *     stores the frames in ClickHouse and deletes drained files, and at start it adopts the files of
 *     processes that died. The thread (an isolate: ~30 MB) and this process's file are made when first
 *     needed: the first event spooled, or a dead process's file found at open; a process that spools
 *     nothing (a dispatcher) has neither.
 * The directory belongs to one ClickHouse database (config: spoolDir), so a replay never crosses them.
 */
import { randomBytes } from 'node:crypto';
import { constants } from 'node:fs';
import { mkdir, open, type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { Worker } from 'node:worker_threads';
import type { Logger } from 'pino';
import { encodeFrame, MAX_FRAME_NUMBER, randomSpoolId, type SpooledEvent } from '../domain/spool-frame.js';
import { hasOrphanedSpools, spoolFileName, type DrainStats } from './spool-drainer.js';
import type { SpoolWorkerData, ToWorker } from './spool-worker.js';

export interface ReadSpoolOptions {
  dir: string;
  /** a file past this size is replaced by a new one (and deleted once drained) */
  rotateBytes: number;
  /** the drainer's settings and its ClickHouse */
  drain: Omit<SpoolWorkerData, 'instance' | 'dir' | 'live'>;
  log: Logger;
}

interface Waiting {
  events: readonly SpooledEvent[];
  resolve: () => void;
  reject: (err: unknown) => void;
}

interface InFlightWrite {
  group: Waiting[];
  /** the file offset just after this write */
  end: number;
  frames: number;
  state: 'writing' | 'written' | 'failed';
  error?: unknown;
}

const MAX_FRAME_EVENTS = 10_000;
/**
 * Durable writes on their way at once. A write with O_DSYNC takes a few milliseconds under load (the
 * journal commit), and the requests of the next group would wait all of it; with two in flight the next
 * group goes at once. Two, not more: each holds one of libuv's four pool threads, which DNS, file reads
 * and gzip share.
 */
const MAX_WRITES_IN_FLIGHT = 2;

// Spools alive in this process (tests run several Heralds in one; a restarted container reuses its pid).
const LIVE_HERE = new Set<string>();

/** Frames a group of waiting appends makes. */
function framesFor(group: readonly Waiting[]): number {
  let n = 0;
  for (const w of group) n += w.events.length;
  return Math.ceil(n / MAX_FRAME_EVENTS);
}

export class ReadSpool {
  private readonly instance = randomBytes(4).toString('hex');
  /** the file being written: `end` is where the next write goes, `committed` how far every write is on disk */
  private file: { path: string; spoolId: number; end: number; committed: number } | null = null;
  /** every file written here: told to a drain worker that (re)starts */
  private readonly files: Array<{ path: string; spoolId: number; end: number; live: boolean }> = [];
  private fh: FileHandle | null = null;
  private frame = 0;
  private pending: Waiting[] = [];
  /** a flush is due at the end of this turn of the event loop */
  private flushDue = false;
  /** writes on their way to disk, in file order; each group is answered once it and all before it are */
  private readonly inFlight: InFlightWrite[] = [];
  /** a write failed: the writes after it are refused, and the next one goes to a new file */
  private failed = false;
  /** resolved when nothing is pending or in flight (close) */
  private idleWaiters: Array<() => void> = [];
  private worker: Worker | null = null;
  private starting: Promise<void> | null = null;
  private closed = false;
  private latest: DrainStats = { eventsDrained: 0, framesReplayedStored: 0, backlogBytes: 0 };
  private readonly written = { framesWritten: 0, eventsSpooled: 0 };

  constructor(private readonly opts: ReadSpoolOptions) {}

  /** What was spooled here and what the drainer last reported (for tests and metrics). */
  get stats(): DrainStats & { framesWritten: number; eventsSpooled: number } {
    return { ...this.written, ...this.latest };
  }

  /** Bytes spooled and not yet stored, as the drainer last reported. */
  backlog(): number {
    return this.latest.backlogBytes;
  }

  async open(): Promise<void> {
    await mkdir(this.opts.dir, { recursive: true });
    LIVE_HERE.add(this.instance);
    if (await hasOrphanedSpools(this.opts.dir, LIVE_HERE)) await this.ensureWorker();
  }

  private ensureWorker(): Promise<void> {
    this.starting ??= this.startWorker().catch((err: unknown) => {
      this.starting = null;
      this.opts.log.error({ err }, 'read spool: the drain worker did not start; trying again with the next event');
    });
    return this.starting;
  }

  private async startWorker(): Promise<void> {
    const entry = new URL(`./spool-worker${import.meta.url.endsWith('.ts') ? '.ts' : '.js'}`, import.meta.url).href;
    const workerData: SpoolWorkerData & { entry: string } = {
      ...this.opts.drain,
      instance: this.instance,
      live: [...LIVE_HERE],
      dir: this.opts.dir,
      entry,
    };
    const worker = new Worker(new URL('./spool-worker-boot.mjs', import.meta.url), { workerData });
    this.worker = worker;
    worker.on('error', (err) => this.opts.log.error({ err }, 'read spool: the drain worker failed'));
    // A worker that died is started again with the next event (what it had not drained is on disk).
    worker.once('exit', (code) => {
      if (this.worker !== worker) return;
      this.worker = null;
      this.starting = null;
      if (!this.closed) {
        this.opts.log.error({ code }, 'read spool: the drain worker stopped; starting another');
        void this.ensureWorker();
      }
    });
    worker.on('message', (msg: { t: string; stats?: DrainStats }) => {
      if (msg.stats !== undefined) this.latest = msg.stats;
    });
    await new Promise<void>((resolve, reject) => {
      const ready = (msg: { t: string }): void => {
        if (msg.t !== 'ready') return;
        worker.off('message', ready);
        resolve();
      };
      worker.on('message', ready);
      worker.once('error', reject);
    });
    for (const f of this.files) this.tellFile(f);
  }

  /** Resolves once the events are on disk (fsynced): from then on they reach ClickHouse exactly once. */
  append(events: readonly SpooledEvent[]): Promise<void> {
    if (events.length === 0) return Promise.resolve();
    if (this.closed) return Promise.reject(new Error('read spool is closed'));
    return new Promise((resolve, reject) => {
      this.pending.push({ events, resolve, reject });
      this.scheduleFlush();
    });
  }

  /** Stops taking events, writes what was taken, lets the drainer work for at most `timeoutMs`; the rest stays on disk. */
  async close(timeoutMs: number): Promise<void> {
    this.closed = true;
    if (this.pending.length > 0 || this.inFlight.length > 0 || this.flushDue) await new Promise<void>((r) => this.idleWaiters.push(r));
    await this.starting;
    await this.fh?.close();
    this.fh = null;
    this.tell(false);
    LIVE_HERE.delete(this.instance);
    const worker = this.worker;
    this.worker = null;
    if (worker === null) return;
    await Promise.race([
      new Promise<void>((resolve) => {
        worker.on('message', (msg: { t: string; stats?: DrainStats }) => {
          if (msg.t === 'closed') resolve();
        });
        worker.once('exit', () => resolve());
        worker.postMessage({ t: 'close', timeoutMs } satisfies ToWorker);
      }),
      new Promise((r) => setTimeout(r, timeoutMs + 5000).unref()),
    ]);
    await worker.terminate();
    this.worker = null;
  }

  /** Tells the drainer how far the file being written is whole (and whether it still is being written). */
  private tell(live: boolean): void {
    const f = this.file;
    if (f === null) return;
    const known = this.files.find((x) => x.path === f.path)!;
    known.end = f.committed;
    known.live = live;
    this.tellFile(known);
  }

  private tellFile(f: { path: string; spoolId: number; end: number; live: boolean }): void {
    this.worker?.postMessage({ t: 'committed', file: f.path, spoolId: f.spoolId, end: f.end, live: f.live } satisfies ToWorker);
  }

  private scheduleFlush(): void {
    if (this.flushDue) return;
    this.flushDue = true;
    // Let the requests of this turn of the event loop join the frame.
    setImmediate(() => {
      this.flushDue = false;
      void this.flush();
    });
  }

  private opening: Promise<void> | null = null;

  /** Starts writes for what is pending, as far as the writes in flight allow. */
  private async flush(): Promise<void> {
    while (this.pending.length > 0 && this.inFlight.length < MAX_WRITES_IN_FLIGHT && this.opening === null) {
      const due =
        this.failed ||
        this.file === null ||
        this.file.end >= this.opts.rotateBytes ||
        this.frame + framesFor(this.pending) > MAX_FRAME_NUMBER;
      if (due) {
        // A file is closed only once its writes are all answered: the last of them flushes again.
        if (this.inFlight.length > 0) return;
        this.opening = this.rotate().then(
          () => {
            this.failed = false;
          },
          (err: unknown) => {
            const group = this.pending;
            this.pending = [];
            for (const w of group) w.reject(err);
          },
        );
        await this.opening;
        this.opening = null;
        continue;
      }
      void this.ensureWorker();
      const group = this.pending;
      this.pending = [];
      const file = this.file!;
      const events = group.length === 1 ? group[0]!.events : group.flatMap((w) => w.events);
      // Frames of bounded size (a drain reads a few MB at a time), all made durable by one write.
      const parts: Buffer[] = [];
      for (let i = 0; i < events.length; i += MAX_FRAME_EVENTS)
        parts.push(encodeFrame(this.frame++, events.length <= MAX_FRAME_EVENTS ? events : events.slice(i, i + MAX_FRAME_EVENTS)));
      const buf = parts.length === 1 ? parts[0]! : Buffer.concat(parts);
      const at = file.end;
      // Reserved now, so the next group is written after this one while this one is on its way.
      file.end += buf.length;
      const w: InFlightWrite = { group, end: file.end, frames: parts.length, state: 'writing' };
      this.inFlight.push(w);
      // The file is open with O_DSYNC: the write returns once the frame is on disk, in one trip to the
      // thread pool instead of a write and then an fdatasync.
      this.fh!.write(buf, 0, buf.length, at).then(
        ({ bytesWritten }) =>
          bytesWritten === buf.length
            ? this.settled(w, 'written')
            : this.settled(w, 'failed', new Error(`read spool: short write (${bytesWritten} of ${buf.length} bytes): disk full?`)),
        (err: unknown) => this.settled(w, 'failed', err),
      );
    }
    if (this.pending.length === 0 && this.inFlight.length === 0 && !this.flushDue) {
      const waiters = this.idleWaiters;
      this.idleWaiters = [];
      for (const r of waiters) r();
    }
  }

  /**
   * A write came back. Groups are answered in file order: a group is on disk, and told to the drainer,
   * only when every write before it is. After a failed write nothing later in the file is answered as
   * spooled (the drainer reads the file in order and would stop at the failed frame), and the next write
   * goes to a new file.
   */
  private settled(w: InFlightWrite, state: 'written' | 'failed', error?: unknown): void {
    w.state = state;
    w.error = error;
    let told = false;
    while (this.inFlight.length > 0 && this.inFlight[0]!.state !== 'writing') {
      const head = this.inFlight.shift()!;
      if (head.state === 'failed' || this.failed) {
        this.failed = true;
        const err = head.error ?? new Error('read spool: an earlier write to this file failed');
        for (const x of head.group) x.reject(err);
        continue;
      }
      this.file!.committed = head.end;
      this.written.framesWritten += head.frames;
      for (const x of head.group) {
        this.written.eventsSpooled += x.events.length;
        x.resolve();
      }
      told = true;
    }
    if (told) this.tell(true);
    void this.flush();
  }

  /** A new file for the writer; the drainer keeps the one before until it is drained. */
  private async rotate(): Promise<void> {
    if (this.fh !== null) {
      const fh = this.fh;
      // cleared first: a failed open below leaves no closed handle to be closed again
      this.fh = null;
      // After a failed write, the writes refused after it may be on disk all the same: cut them off, or a
      // replay of this file after a crash would store events whose senders were told they were not.
      if (this.failed && this.file !== null) {
        await fh
          .truncate(this.file.committed)
          .catch((err: unknown) => this.opts.log.warn({ err, file: this.file?.path }, 'read spool: could not cut off refused writes'));
      }
      await fh.close();
      this.tell(false);
    }
    const spoolId = randomSpoolId();
    const file = path.join(this.opts.dir, spoolFileName(this.instance, spoolId));
    const fh = await open(file, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_DSYNC);
    try {
      // The new name must be on disk too, or a crash of the machine could lose the file with its frames.
      const dir = await open(this.opts.dir, constants.O_RDONLY);
      try {
        await dir.sync();
      } finally {
        await dir.close();
      }
    } catch (err) {
      await fh.close();
      throw err;
    }
    this.fh = fh;
    this.frame = 0;
    this.file = { path: file, spoolId, end: 0, committed: 0 };
    this.files.push({ path: file, spoolId, end: 0, live: true });
    this.tell(true);
  }
}

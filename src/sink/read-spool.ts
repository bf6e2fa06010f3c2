/**
 * A durable local spool for reads and provider callbacks, so the pixel and `POST /v1/events` answer
 * without waiting for a ClickHouse insert, and an answered read survives a `kill -9` of the process
 * that answered it.
 *   - `append` adds events to the next frame; frames are written to an append-only file and fsynced
 *     in groups (group commit: whatever arrives while one fsync runs goes in the next frame), and
 *     `append` resolves once its frame is on disk. Only then does the API answer.
 *   - A drainer reads the file behind the writer, looks the reads' deliveries up (time to read,
 *     segment), and hands each frame to the event sink under the frame's own id
 *     (domain/spool-frame.ts), one drain at a time; once stored, the drained offset is written beside
 *     the file. A drained file that was rotated away is deleted.
 *   - Files of a process that died (its pid gone) in the same spool directory are adopted at start:
 *     their frames from the drained offset on are replayed, leaving out frames ClickHouse already has
 *     (the marker may lag the last insert), after a grace for an insert the dead process had in flight.
 * The directory belongs to one ClickHouse database (config: spoolDir), so a replay never crosses them.
 */
import { randomBytes } from 'node:crypto';
import { mkdir, open, readdir, readFile, rename, rm, stat, writeFile, type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import type { Logger } from 'pino';
import { decodeFrames, encodeFrame, FRAME_HEADER_BYTES, spoolFrameId, type SpooledEvent } from '../domain/spool-frame.js';
import type { EventSink, GroupEvent } from './event-sink.js';
import { lookupDeliveries, type DeliveryLookup } from './read-recorder.js';

export interface ReadSpoolOptions {
  dir: string;
  /** a file past this size is replaced by a new one (and deleted once drained) */
  rotateBytes: number;
  /** most events one drain hands to the sink */
  drainEvents: number;
  /**
   * the least time between drains while fewer than drainEvents wait: each drain costs ClickHouse a
   * lookup query and an insert whatever its size, so under a burst drains grow instead of multiplying
   */
  drainIntervalMs: number;
  /** before replaying a dead process's file: an insert it had in flight may still land meanwhile */
  adoptGraceMs: number;
  log: Logger;
}

interface SpoolFile {
  path: string;
  spoolId: number;
  /** bytes of whole frames (for the file being written: as far as fsynced) */
  end: number;
  drained: number;
  /** still being written by this process */
  live: boolean;
  /** a dead process's: replayed frames are checked against ClickHouse first */
  adopted: boolean;
}

interface Waiting {
  events: readonly SpooledEvent[];
  resolve: () => void;
  reject: (err: unknown) => void;
}

const MAX_FRAME_EVENTS = 10_000;
const READ_BYTES = 8 << 20;

// Spools of live Herald instances in this process (tests run several in one process): never adopted.
const LIVE_HERE = new Set<string>();
const FILE_RE = /^reads-(\d+)-([0-9a-f]+)-(\d+)\.spool$/;

function pidAlive(pid: number): boolean {
  if (pid === process.pid) return true;
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as { code?: string }).code === 'EPERM';
  }
}

export class ReadSpool {
  private readonly instance = randomBytes(4).toString('hex');
  private readonly files: SpoolFile[] = [];
  private current: SpoolFile | null = null;
  private fh: FileHandle | null = null;
  private frame = 0;
  private pending: Waiting[] = [];
  private writing: Promise<void> | null = null;
  private draining: Promise<void> | null = null;
  private wake: (() => void) | null = null;
  private timer: NodeJS.Timeout | null = null;
  private closed = false;
  /** events of this process's own files drained so far */
  private spooledDrained = 0;
  /** adopted files are replayed from this time on */
  private adoptAfter = 0;
  readonly stats = { framesWritten: 0, eventsSpooled: 0, eventsDrained: 0, framesReplayedStored: 0 };

  constructor(
    private readonly sink: EventSink,
    private readonly lookup: DeliveryLookup,
    private readonly opts: ReadSpoolOptions,
  ) {}

  async open(): Promise<void> {
    await mkdir(this.opts.dir, { recursive: true });
    LIVE_HERE.add(this.instance);
    for (const name of (await readdir(this.opts.dir)).sort()) {
      const m = FILE_RE.exec(name);
      if (m === null || LIVE_HERE.has(m[2]!) || (Number(m[1]) !== process.pid && pidAlive(Number(m[1])))) continue;
      // Taken by renaming it into this instance's name: of two processes starting at once, one wins the
      // rename and the other finds the file gone, so a file is never replayed twice at the same time.
      // The spool id stays, and with it the frames' ids.
      const file = path.join(this.opts.dir, `reads-${process.pid}-${this.instance}-${m[3]}.spool`);
      try {
        await rename(path.join(this.opts.dir, name), file);
      } catch {
        continue;
      }
      await rename(path.join(this.opts.dir, `${name}.drained`), `${file}.drained`).catch(() => undefined);
      const size = (await stat(file)).size;
      const drained = Number((await readFile(`${file}.drained`, 'utf8').catch(() => '0')).trim()) || 0;
      this.files.push({ path: file, spoolId: Number(m[3]), end: size, drained, live: false, adopted: true });
    }
    if (this.files.length > 0) this.opts.log.warn({ files: this.files.length }, 'read spool: replaying the files of a stopped process');
    await this.rotate();
    // Adopted files wait out the grace; the drainer also looks again now and then (a failed drain).
    this.timer = setInterval(() => this.kick(), Math.max(250, this.opts.adoptGraceMs));
    this.timer.unref();
    this.adoptAfter = Date.now() + this.opts.adoptGraceMs;
    this.kick();
  }

  /** Resolves once the events are on disk (fsynced): from then on they reach ClickHouse exactly once. */
  append(events: readonly SpooledEvent[]): Promise<void> {
    if (events.length === 0) return Promise.resolve();
    if (this.closed) return Promise.reject(new Error('read spool is closed'));
    return new Promise((resolve, reject) => {
      this.pending.push({ events, resolve, reject });
      this.writing ??= this.write().finally(() => (this.writing = null));
    });
  }

  /** Stops taking events, writes what was taken, and drains for at most `timeoutMs`; the rest stays on disk. */
  async close(timeoutMs: number): Promise<void> {
    this.closed = true;
    await this.writing;
    if (this.timer !== null) clearInterval(this.timer);
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline && this.files.some((f) => f.drained < f.end && (!f.adopted || Date.now() >= this.adoptAfter))) {
      this.kick();
      await Promise.race([this.draining, new Promise((r) => setTimeout(r, 50))]);
    }
    await this.fh?.close();
    this.fh = null;
    const own = this.current;
    if (own !== null && own.drained >= own.end) await this.remove(own);
    LIVE_HERE.delete(this.instance);
  }

  /** Bytes spooled and not yet stored (for tests and metrics). */
  backlog(): number {
    return this.files.reduce((n, f) => n + (f.end - f.drained), 0);
  }

  /** Events spooled here and not yet drained (those of adopted files are not counted). */
  private backlogEvents(): number {
    return this.stats.eventsSpooled - this.spooledDrained;
  }

  private async write(): Promise<void> {
    // Let the requests of this turn of the event loop join the frame.
    await new Promise((r) => setImmediate(r));
    while (this.pending.length > 0) {
      const group = this.pending;
      this.pending = [];
      try {
        if (this.current !== null && this.current.end >= this.opts.rotateBytes) await this.rotate();
        const file = this.current!;
        const events = group.flatMap((w) => w.events);
        // Frames of bounded size (a drain reads a few MB at a time), all made durable by one fsync.
        const parts: Buffer[] = [];
        for (let i = 0; i < events.length; i += MAX_FRAME_EVENTS)
          parts.push(encodeFrame(this.frame++, events.slice(i, i + MAX_FRAME_EVENTS)));
        const buf = parts.length === 1 ? parts[0]! : Buffer.concat(parts);
        await this.fh!.write(buf, 0, buf.length, file.end);
        await this.fh!.datasync();
        file.end += buf.length;
        this.stats.framesWritten += parts.length;
        for (const w of group) {
          this.stats.eventsSpooled += w.events.length;
          w.resolve();
        }
        this.kick();
      } catch (err) {
        for (const w of group) w.reject(err);
      }
    }
  }

  /** A new file for the writer; the one before is kept until drained. */
  private async rotate(): Promise<void> {
    const prev = this.current;
    await this.fh?.close();
    const spoolId = randomBytes(4).readUInt32LE() >>> 2;
    const file = path.join(this.opts.dir, `reads-${process.pid}-${this.instance}-${spoolId}.spool`);
    this.fh = await open(file, 'wx');
    this.frame = 0;
    if (prev !== null) prev.live = false;
    this.current = { path: file, spoolId, end: 0, drained: 0, live: true, adopted: false };
    this.files.push(this.current);
  }

  private kick(): void {
    this.draining ??= this.drain()
      .catch((err: unknown) => this.opts.log.error({ err }, 'read spool: drain failed; retrying'))
      .finally(() => (this.draining = null));
  }

  private async drain(): Promise<void> {
    for (let first = true; ; first = false) {
      if (!first && this.backlogEvents() < this.opts.drainEvents && !this.closed) await sleep(this.opts.drainIntervalMs);
      const file = this.files.find((f) => f.drained < f.end && (!f.adopted || Date.now() >= this.adoptAfter));
      if (file === undefined) {
        // Drained files no longer written are done with.
        for (const f of this.files.filter((x) => !x.live && x.drained >= x.end)) await this.remove(f);
        return;
      }
      const decoded = await readFrames(file);
      if (decoded.frames.length === 0) {
        if (file.live) {
          this.opts.log.error({ file: file.path, at: file.drained }, 'read spool: unreadable frame in the file being written');
          return;
        }
        // A torn last frame of a dead process's file (it died mid-write): nothing after it stands.
        file.end = file.drained;
        continue;
      }
      let frames = decoded.frames;
      let take = 0;
      let events = 0;
      while (take < frames.length && (take === 0 || events + frames[take]!.events.length <= this.opts.drainEvents))
        events += frames[take++]!.events.length;
      frames = frames.slice(0, take);
      const upTo = frames[frames.length - 1]!.end;
      await this.store(file, frames);
      file.drained = upTo;
      if (decoded.torn && take === decoded.frames.length && !file.live) file.end = upTo;
      await writeFile(`${file.path}.drained`, String(upTo));
    }
  }

  private async store(file: SpoolFile, frames: ReturnType<typeof decodeFrames>['frames']): Promise<void> {
    let todo = frames;
    if (file.adopted) {
      const ids = new Map<string, number>();
      const pairs: Array<{ campaignId: number; batchId: bigint }> = [];
      for (const [i, f] of frames.entries()) {
        const batchId = spoolFrameId(file.spoolId, f.frame);
        for (const campaignId of new Set(f.events.map((e) => e.campaignId))) {
          pairs.push({ campaignId, batchId });
          ids.set(`${campaignId}:${batchId}`, i);
        }
      }
      const stored = new Set<number>();
      for (const [campaignId, batchIds] of groupBy(pairs)) {
        for (const b of await this.sink.landed(campaignId, batchIds)) stored.add(ids.get(`${campaignId}:${b}`)!);
      }
      this.stats.framesReplayedStored += stored.size;
      todo = frames.filter((_, i) => !stored.has(i));
    }
    const reads = todo.flatMap((f) => f.events.filter((e) => e.kind === 'read'));
    const facts = await lookupDeliveries(this.lookup, reads);
    const tickets = [];
    for (const f of todo) {
      const rows: GroupEvent[] = f.events.map((e) => {
        const d = e.kind === 'read' ? facts.get(e.campaignId)?.get(e.userId) : undefined;
        return { ...e, deliveredAtSec: d?.deliveredAtSec ?? 0, segment: d?.segment ?? '' };
      });
      tickets.push(await this.sink.appendGroup(spoolFrameId(file.spoolId, f.frame), rows));
      this.stats.eventsDrained += rows.length;
      // Requests go on between frames: a drain of thousands of events is never one long block.
      await new Promise((r) => setImmediate(r));
    }
    if (!file.adopted) this.spooledDrained += frames.reduce((n, f) => n + f.events.length, 0);
    this.sink.flushSoon();
    await Promise.all(tickets.map((t) => t.stored));
  }

  private async remove(f: SpoolFile): Promise<void> {
    const i = this.files.indexOf(f);
    if (i !== -1) this.files.splice(i, 1);
    await rm(f.path, { force: true });
    await rm(`${f.path}.drained`, { force: true });
  }
}

/** Whole frames from the drained offset on, a few MB at a time (more when one frame is bigger). */
async function readFrames(file: SpoolFile): Promise<ReturnType<typeof decodeFrames>> {
  const fh = await open(file.path, 'r');
  try {
    let len = Math.min(file.end - file.drained, READ_BYTES);
    for (;;) {
      const buf = Buffer.allocUnsafe(len);
      const { bytesRead } = await fh.read(buf, 0, len, file.drained);
      const decoded = decodeFrames(buf.subarray(0, bytesRead), file.drained);
      if (decoded.frames.length > 0 || decoded.torn || bytesRead < FRAME_HEADER_BYTES) return decoded;
      const need = FRAME_HEADER_BYTES + buf.readUInt32LE(4);
      if (need <= bytesRead || need > file.end - file.drained) return decoded;
      len = need;
    }
  } finally {
    await fh.close();
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

function groupBy(pairs: ReadonlyArray<{ campaignId: number; batchId: bigint }>): Map<number, bigint[]> {
  const out = new Map<number, bigint[]>();
  for (const p of pairs) {
    let list = out.get(p.campaignId);
    if (list === undefined) out.set(p.campaignId, (list = []));
    list.push(p.batchId);
  }
  return out;
}

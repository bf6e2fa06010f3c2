/**
 * The read spool's drainer (read-spool.ts writes the files): reads the spool files behind the writer,
 * looks the reads' deliveries up (time to read, segment), and hands each frame to its event sink under
 * the frame's own id (domain/spool-frame.ts), one drain at a time; once stored, the drained offset is
 * written beside the file, and a drained file no longer written is deleted. It runs in a worker thread
 * of its own (spool-worker.ts), so the API's event loop only writes.
 * Files of a process that died (its pid gone) are adopted at start by renaming them into this
 * instance's name, and replayed from their drained offset after a grace (an insert the dead process had
 * in flight may still land), leaving out frames ClickHouse already has (the offset may lag the insert).
 */
import { mkdir, open, readdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { decodeFrames, FRAME_HEADER_BYTES, spoolFrameId } from '../domain/spool-frame.js';
import type { EventSink, GroupEvent } from './event-sink.js';
import { lookupDeliveries, type DeliveryLookup } from './read-recorder.js';

export interface SpoolDrainerOptions {
  dir: string;
  /** most events one drain hands to the sink */
  drainEvents: number;
  /**
   * the least time between drains while less than a read's worth of bytes waits: each drain costs
   * ClickHouse a lookup query and an insert whatever its size, so under a burst drains grow instead
   * of multiplying
   */
  drainIntervalMs: number;
  /** before replaying a dead process's file */
  adoptGraceMs: number;
  log: { warn(obj: object, msg: string): void; error(obj: object, msg: string): void };
}

export interface DrainStats {
  eventsDrained: number;
  /** frames of adopted files found already stored, and so left out */
  framesReplayedStored: number;
  /** bytes spooled and not yet stored */
  backlogBytes: number;
}

interface SpoolFile {
  path: string;
  spoolId: number;
  /** bytes of whole frames (for the file being written: as far as fsynced) */
  end: number;
  drained: number;
  /** still being written */
  live: boolean;
  /** a dead process's: replayed frames are checked against ClickHouse first */
  adopted: boolean;
}

const READ_BYTES = 8 << 20;
export const SPOOL_FILE = /^reads-(\d+)-([0-9a-f]+)-(\d+)\.spool$/;

export function spoolFileName(instance: string, spoolId: number): string {
  return `reads-${process.pid}-${instance}-${spoolId}.spool`;
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as { code?: string }).code === 'EPERM';
  }
}

/**
 * Whether a spool file was left by a writer that is gone: its process is dead, or it is this process's
 * pid but none of the spools alive in it (`live`: their instance ids) wrote it — a restarted container
 * gets the same pid again, and its predecessor's reads must not be left behind.
 */
function orphaned(name: string, live: ReadonlySet<string>): boolean {
  const m = SPOOL_FILE.exec(name);
  if (m === null) return false;
  return Number(m[1]) === process.pid ? !live.has(m[2]!) : !pidAlive(Number(m[1]));
}

/** Whether `dir` holds spool files of writers that are gone (the drainer's start adopts them). */
export async function hasOrphanedSpools(dir: string, live: ReadonlySet<string>): Promise<boolean> {
  const names = await readdir(dir).catch(() => [] as string[]);
  return names.some((name) => orphaned(name, live));
}

export class SpoolDrainer {
  private readonly files: SpoolFile[] = [];
  private draining: Promise<void> | null = null;
  private timer: NodeJS.Timeout | null = null;
  private closed = false;
  private adoptAfter = 0;
  private eventsDrained = 0;
  private framesReplayedStored = 0;
  /** told after every drain (the worker posts it to the main thread) */
  onStats: ((s: DrainStats) => void) | null = null;

  constructor(
    private readonly sink: EventSink,
    private readonly lookup: DeliveryLookup,
    private readonly opts: SpoolDrainerOptions,
  ) {}

  /**
   * Takes over the files of processes that are gone: renamed into `instance`'s name (of two processes
   * starting at once, one wins the rename and the other finds the file gone, so no file is replayed
   * twice at once); the spool id stays, and with it the frames' ids. Files of the spools alive in this
   * process (`live`: tests run several Heralds in one) are never taken.
   */
  async start(instance: string, live: ReadonlySet<string>): Promise<void> {
    await mkdir(this.opts.dir, { recursive: true });
    for (const name of (await readdir(this.opts.dir)).sort()) {
      const m = SPOOL_FILE.exec(name);
      if (m === null || !orphaned(name, live)) continue;
      const file = path.join(this.opts.dir, spoolFileName(instance, Number(m[3])));
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
    this.adoptAfter = Date.now() + this.opts.adoptGraceMs;
    // the drainer also looks again now and then: adopted files after their grace, a failed drain
    this.timer = setInterval(() => this.kick(), Math.max(250, this.opts.adoptGraceMs));
    this.timer.unref();
    this.kick();
  }

  /** The writer's word: `file` holds whole frames up to `end` (`live`: it is still being written). */
  committed(file: string, spoolId: number, end: number, live: boolean): void {
    let f = this.files.find((x) => x.path === file);
    if (f === undefined) this.files.push((f = { path: file, spoolId, end, drained: 0, live, adopted: false }));
    f.end = Math.max(f.end, end);
    f.live = live;
    this.kick();
  }

  stats(): DrainStats {
    return {
      eventsDrained: this.eventsDrained,
      framesReplayedStored: this.framesReplayedStored,
      backlogBytes: this.files.reduce((n, f) => n + (f.end - f.drained), 0),
    };
  }

  /** Drains for at most `timeoutMs`; what is left stays on disk for the next start. */
  async close(timeoutMs: number): Promise<void> {
    this.closed = true;
    if (this.timer !== null) clearInterval(this.timer);
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline && this.files.some((f) => this.due(f))) {
      this.kick();
      await Promise.race([this.draining, new Promise((r) => setTimeout(r, 50))]);
    }
    await this.draining;
    for (const f of this.files.filter((x) => x.drained >= x.end)) await this.remove(f);
  }

  private due(f: SpoolFile): boolean {
    return f.drained < f.end && (!f.adopted || Date.now() >= this.adoptAfter);
  }

  private kick(): void {
    this.draining ??= this.drain()
      .catch((err: unknown) => this.opts.log.error({ err }, 'read spool: drain failed; retrying'))
      .finally(() => {
        this.draining = null;
        this.onStats?.(this.stats());
      });
  }

  private async drain(): Promise<void> {
    for (let first = true; ; first = false) {
      if (!first && this.stats().backlogBytes < READ_BYTES && !this.closed) await sleep(this.opts.drainIntervalMs);
      const file = this.files.find((f) => this.due(f));
      if (file === undefined) {
        // Drained files no longer written are done with.
        for (const f of this.files.filter((x) => !x.live && x.drained >= x.end)) await this.remove(f);
        return;
      }
      let decoded: ReturnType<typeof decodeFrames>;
      try {
        decoded = await readFrames(file);
      } catch (err) {
        // Told of again by a restarted writer after it was drained and deleted: nothing to do.
        if ((err as { code?: string }).code !== 'ENOENT') throw err;
        this.files.splice(this.files.indexOf(file), 1);
        continue;
      }
      if (decoded.frames.length === 0) {
        if (file.live) {
          this.opts.log.error({ file: file.path, at: file.drained }, 'read spool: unreadable frame in the file being written');
          return;
        }
        // A torn last frame of a dead process's file (it died mid-write): nothing after it stands.
        file.end = file.drained;
        continue;
      }
      let take = 0;
      let events = 0;
      while (take < decoded.frames.length && (take === 0 || events + decoded.frames[take]!.events.length <= this.opts.drainEvents))
        events += decoded.frames[take++]!.events.length;
      const frames = decoded.frames.slice(0, take);
      const upTo = frames[frames.length - 1]!.end;
      await this.store(file, frames);
      file.drained = upTo;
      await writeFile(`${file.path}.drained`, String(upTo));
      this.onStats?.(this.stats());
    }
  }

  private async store(file: SpoolFile, frames: ReturnType<typeof decodeFrames>['frames']): Promise<void> {
    let todo = frames;
    if (file.adopted) {
      const index = new Map<string, number>();
      const byCampaign = new Map<number, bigint[]>();
      for (const [i, f] of frames.entries()) {
        const batchId = spoolFrameId(file.spoolId, f.frame);
        for (const campaignId of new Set(f.events.map((e) => e.campaignId))) {
          let list = byCampaign.get(campaignId);
          if (list === undefined) byCampaign.set(campaignId, (list = []));
          list.push(batchId);
          index.set(`${campaignId}:${batchId}`, i);
        }
      }
      const stored = new Set<number>();
      for (const [campaignId, batchIds] of byCampaign) {
        for (const b of await this.sink.landed(campaignId, batchIds)) stored.add(index.get(`${campaignId}:${b}`)!);
      }
      this.framesReplayedStored += stored.size;
      todo = frames.filter((_, i) => !stored.has(i));
    }
    const facts = await lookupDeliveries(
      this.lookup,
      todo.flatMap((f) => f.events.filter((e) => e.kind === 'read')),
    );
    const tickets = [];
    for (const f of todo) {
      const rows: GroupEvent[] = f.events.map((e) => {
        const d = e.kind === 'read' ? facts.get(e.campaignId)?.get(e.userId) : undefined;
        return { ...e, deliveredAtSec: d?.deliveredAtSec ?? 0, segment: d?.segment ?? '' };
      });
      tickets.push(await this.sink.appendGroup(spoolFrameId(file.spoolId, f.frame), rows));
      this.eventsDrained += rows.length;
    }
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

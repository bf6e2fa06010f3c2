/**
 * The dispatcher's view of the suppression lists: a FingerprintSet (domain/fingerprint.ts) of every
 * (topic, user) in PostgreSQL, kept current by change marks. Every committed change is followed by a mark
 * from a PostgreSQL sequence, raised in Redis (raise-1.lua); before each sub-batch the index
 * reads the mark (one GET) and, when it is newer than the one it loaded at, reloads the rows of the
 * transactions its last load could not see (xid >= that snapshot's xmin). The mark is read before the
 * load, so a change whose mark it saw is in the index. When Redis has no mark (emptied), the index takes a
 * fresh one from the sequence, reloads, and puts it back: a sequence never repeats, so no sender can take
 * a new mark for one it saw before. Removals need no mark: a hit is always confirmed in PostgreSQL.
 */
import { FingerprintSet } from '../domain/fingerprint.js';
import type { FingerprintLoad } from '../store/consent-repo.js';

export interface SuppressionSource {
  loadFingerprints(sinceXmin: string | null): Promise<FingerprintLoad>;
  changeMark(): Promise<number>;
}

export interface MarkBoard {
  suppressionMark(): Promise<number | null>;
  raiseSuppressionMark(mark: number): Promise<number>;
}

export interface SuppressionIndexOptions {
  source: SuppressionSource;
  marks: MarkBoard;
  /** confirmed misses (removed suppressions, fingerprint collisions) past which the index is rebuilt whole */
  rebuildAfterMisses: number;
}

export class SuppressionIndex {
  private set = new FingerprintSet();
  /** the mark the index holds every change of; -1: nothing loaded */
  private seen = -1;
  private xmin: string | null = null;
  /** refreshes run one after the other */
  private chain: Promise<void> = Promise.resolve();
  private misses = 0;
  /** the mark GET out now, and the one that callers arriving meanwhile wait for */
  private reading: Promise<number | null> | null = null;
  private queued: Promise<number | null> | null = null;

  constructor(private readonly opts: SuppressionIndexOptions) {}

  get size(): number {
    return this.set.size;
  }

  get bytes(): number {
    return this.set.bytes;
  }

  has(hi: number, lo: number): boolean {
    return this.set.has(hi, lo);
  }

  /** A hit PostgreSQL did not confirm: enough of them and the next refresh rebuilds the set. */
  missed(n: number): void {
    this.misses += n;
  }

  /** Makes the index hold every suppression whose change mark was raised before this call. */
  async ensureFresh(): Promise<void> {
    const mark = await this.readMark();
    if (mark !== null && mark <= this.seen) return;
    await this.refresh(mark);
  }

  /**
   * The mark, by a GET that starts after this call: callers that arrive while one GET is out share the next
   * one, so sub-batches screened side by side cost one round trip between them, and none is answered by a
   * read older than its own call.
   */
  private readMark(): Promise<number | null> {
    if (this.reading === null) return this.startRead();
    this.queued ??= this.reading
      .catch(() => undefined)
      .then(() => {
        this.queued = null;
        return this.startRead();
      });
    return this.queued;
  }

  private startRead(): Promise<number | null> {
    const read = this.opts.marks.suppressionMark();
    this.reading = read;
    const clear = (): void => {
      if (this.reading === read) this.reading = null;
    };
    read.then(clear, clear);
    return read;
  }

  private refresh(mark: number | null): Promise<void> {
    const run = async (): Promise<void> => {
      if (mark !== null && mark <= this.seen) return;
      // Redis lost the mark: a fresh one, taken before the load, is put back after it.
      const target = mark ?? (await this.opts.source.changeMark());
      const whole = this.seen < 0 || this.misses > Math.max(this.opts.rebuildAfterMisses, this.set.size / 8);
      const load = await this.opts.source.loadFingerprints(whole ? null : this.xmin);
      const set = whole ? new FingerprintSet(load.count) : this.set;
      for (let i = 0; i < load.count; i++) set.add(load.hi[i]!, load.lo[i]!);
      this.set = set;
      if (whole) this.misses = 0;
      this.xmin = load.xmin;
      this.seen = Math.max(this.seen, target);
      if (mark === null) await this.opts.marks.raiseSuppressionMark(target);
    };
    const next = this.chain.then(run);
    this.chain = next.catch(() => undefined);
    return next;
  }
}

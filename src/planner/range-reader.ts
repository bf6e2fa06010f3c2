/**
 * Reads the recipients of the ranges a consumer was handed (domain/chunk.ts): one keyset read of the
 * audience for each run of adjacent ranges, with the campaign's filter and the columns its channel and
 * templates need (plan-read.ts), cut back into the ranges' chunks. The planner only appends the ranges,
 * so reading an audience is spread over the consumers that send it, beside their sending. A read is at
 * most `maxRows` recipients (a run longer than that is read in pieces, one after another), and at most
 * `concurrency` reads are out at once in a process, so the consumers of many campaigns leave the pool's
 * other connections to the dispatcher's poll, the planner and the API.
 */
import { HeraldError } from '../errors.js';
import { chunksOfRanges, type ChunkDescriptor, type ChunkRange, type RecipientPage } from '../domain/chunk.js';
import type { Campaign } from '../store/campaign-repo.js';
import type { PageQuery } from '../store/recipient-reader.js';
import type { StreamEntry } from '../stream/chunk-protocol.js';
import { planRead, type PlanRead } from './plan-read.js';
import { Semaphore } from '../domain/semaphore.js';

export interface PageSource {
  page(q: PageQuery): Promise<RecipientPage>;
}

export interface RangeReaderOptions {
  /** recipients per read at most (HERALD_PLAN_PAGE_ROWS) */
  maxRows: number;
  /** reads out at once in this process */
  concurrency: number;
}

export class RangeReader {
  /** per campaign as loaded (a reload is a new object): compiling its templates once, not per read */
  private readonly specs = new WeakMap<Campaign, PlanRead>();
  private readonly slots: Semaphore;
  readonly maxRows: number;

  constructor(
    private readonly source: PageSource,
    opts: RangeReaderOptions = { maxRows: 100_000, concurrency: 4 },
  ) {
    this.maxRows = opts.maxRows;
    this.slots = new Semaphore(opts.concurrency);
  }

  /** How many chunks of `chunkSize` a consumer takes at once, of the `wanted`: no more than one read holds. */
  chunksPerRead(wanted: number, chunkSize: number): number {
    return Math.max(1, Math.min(wanted, Math.floor(this.maxRows / chunkSize)));
  }

  /**
   * The chunks of `ranges`, in their order. All are the campaign's; adjacent ones (each starting where
   * another ends, in the same generation and audience) share one read.
   */
  async read(campaign: Campaign, ranges: readonly ChunkRange[]): Promise<ChunkDescriptor[]> {
    let spec = this.specs.get(campaign);
    if (spec === undefined) {
      spec = planRead(campaign);
      this.specs.set(campaign, spec);
    }
    const sorted = [...ranges].sort((a, b) => a.generation - b.generation || a.seq - b.seq);
    const runs: ChunkRange[][] = [];
    let rows = 0;
    for (const r of sorted) {
      const run = runs[runs.length - 1];
      const last = run?.[run.length - 1];
      const adjacent =
        last !== undefined && last.generation === r.generation && last.audienceId === r.audienceId && last.lastId === r.afterId;
      if (adjacent && rows + r.count <= this.maxRows) {
        run!.push(r);
        rows += r.count;
      } else {
        runs.push([r]);
        rows = r.count;
      }
    }
    // One read after another, so they share the pool with the other callers' (the consumers ask for no
    // more chunks than one read holds: chunksPerRead).
    const chunkOf = new Map<ChunkRange, ChunkDescriptor>();
    for (const run of runs) {
      const read = await this.readRun(campaign, spec, run);
      run.forEach((r, j) => chunkOf.set(r, read[j]!));
    }
    return ranges.map((r) => chunkOf.get(r)!);
  }

  /**
   * Gives each entry of `campaign`'s generation that is a range alone its chunk. Entries of another
   * campaign or generation, undecodable ones and those that carry their recipients are left as they are.
   */
  async fill(campaign: Campaign, entries: readonly StreamEntry[]): Promise<void> {
    const open = entries.filter((e) => this.reads(campaign, e));
    if (open.length === 0) return;
    const chunks = await this.read(
      campaign,
      open.map((e) => e.range!),
    );
    open.forEach((e, i) => (e.chunk = chunks[i]!));
  }

  /** Whether `fill` reads `e` for `campaign`: a range alone, of the campaign's generation. */
  reads(campaign: Campaign, e: StreamEntry): boolean {
    return e.chunk === null && e.range !== null && e.range.campaignId === campaign.id && e.range.generation === campaign.planGeneration;
  }

  private async readRun(campaign: Campaign, spec: PlanRead, run: ChunkRange[]): Promise<ChunkDescriptor[]> {
    const first = run[0]!;
    const last = run[run.length - 1]!;
    let limit = 0;
    for (const r of run) limit += r.count;
    await this.slots.take(1);
    let page: RecipientPage;
    try {
      page = await this.source.page({ ...spec, audienceId: first.audienceId, afterId: first.afterId, maxId: last.lastId, limit });
    } finally {
      this.slots.release(1);
    }
    try {
      return chunksOfRanges(run, page);
    } catch (err) {
      // The audience's rows up to a plan's extent never change, so this is no race but a broken store.
      throw new HeraldError('INTERNAL', `campaign ${campaign.id}: ${(err as Error).message}`, {}, err);
    }
  }
}

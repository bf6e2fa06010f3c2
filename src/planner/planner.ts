/**
 * Cuts a campaign's audience into chunks and appends them to its stream. It reads the audience a page
 * at a time in id order (keyset, never all of it in memory) and stays at most `aheadChunks` chunks
 * ahead of the consumers, so Redis holds a bounded window of the campaign, not its audience. Progress is
 * recorded in PostgreSQL after every page, so a planner that dies resumes where it stopped; re-appending
 * a chunk is refused by Redis (explicit ids), so nothing is appended twice.
 */
import {
  packChunks,
  rangesFromBounds,
  type ChunkBound,
  type ChunkDescriptor,
  type ChunkRange,
  type RecipientPage,
} from '../domain/chunk.js';
import type { CampaignRepo } from '../store/campaign-repo.js';
import type { PageQuery, RecipientReader } from '../store/recipient-reader.js';
import { planRead } from './plan-read.js';
import type { ChunkProtocol } from '../stream/chunk-protocol.js';

/** Leaves out recipients that already have an outcome (used by re-plans after a lost stream). */
export interface OutcomeFilterPort {
  withoutOutcomes(campaignId: number, page: RecipientPage, sinceGeneration: number): Promise<RecipientPage>;
}

export interface PlanResult {
  chunks: number;
  recipients: number;
  appended: number;
  ms: number;
  /** false when `shouldStop` ended it early */
  done: boolean;
}

/** A page as read: a plan's chunk bounds, or the rows of a re-plan's (or the closer's walk's) chunks. */
interface ReadPage {
  bounds: ChunkBound[] | null;
  rows: RecipientPage | null;
  final: boolean;
  lastRead: number | undefined;
}

export interface PlannerOptions {
  /** chunks that carry their recipients (a re-plan's) in the stream (unacknowledged) before the planner waits */
  aheadChunks: number;
  /** ranges (a plan's entries, a few dozen bytes each) in the stream before the planner waits */
  aheadRanges: number;
  /** upper bound on recipients per page query */
  pageRows: number;
  /**
   * the same for a plan's pages, which read the chunks' bounds alone (RANGE_PAGE_CHUNKS)
   * @default 1_000_000
   */
  rangePageRows?: number;
}

/** Chunks per page: small first, so consumers start within milliseconds, then large. */
const PAGE_CHUNKS = [8, 64, 256];
/**
 * A plan's pages (bounds alone) hold no rows, so they grow past `pageRows`: the plan is appended in a few
 * queries (a page of 2,048 chunks of 500 is about 0.2 s of PostgreSQL's time), and the planner is done
 * long before the consumers are.
 */
const RANGE_PAGE_CHUNKS = [8, 64, 512, 2048];

export class Planner {
  constructor(
    private readonly campaigns: CampaignRepo,
    private readonly reader: RecipientReader,
    private readonly stream: ChunkProtocol,
    private readonly opts: PlannerOptions = { aheadChunks: 400, aheadRanges: 20_000, pageRows: 100_000 },
    private readonly outcomes: OutcomeFilterPort | null = null,
  ) {}

  /**
   * `emit`, when given, takes the chunks instead of the stream, with no window to wait for: the closer of
   * a cancelled campaign walks the unplanned rest of the audience this way, with the same seqs and the
   * same recorded progress, so it too resumes where it stopped.
   */
  async plan(
    campaignId: number,
    shouldStop: () => boolean = () => false,
    emit: ((chunks: ChunkDescriptor[]) => Promise<void>) | null = null,
  ): Promise<PlanResult> {
    const t0 = performance.now();
    const c = await this.campaigns.beginPlan(campaignId);
    if (emit === null) await this.stream.ensureGroup(campaignId);
    // The total is counted beside planning, started once the first chunks are out so it does not
    // compete with the first page for PostgreSQL's time.
    let counting: Promise<number> | null = c.total === null ? null : Promise.resolve(c.total);
    const base = { campaignId, audienceId: c.planAudienceId, generation: c.planGeneration };
    // A re-plan (a later generation of the same round) must not send again to anyone who already has an
    // outcome in this round.
    const replan = c.planGeneration > c.roundGeneration;
    if (replan && this.outcomes === null) throw new Error('a re-plan needs an outcome filter');
    let seq = c.plannedChunks;
    let afterId = c.plannedLastId;
    let position = c.plannedCount;
    let appended = 0;
    let done = c.planningDone;
    const maxId = c.planMaxId ?? 0;
    const ranged = emit === null && !replan;
    const pageLimit = (page: number): number => {
      const schedule = ranged ? RANGE_PAGE_CHUNKS : PAGE_CHUNKS;
      const wanted = schedule[Math.min(page, schedule.length - 1)]!;
      const rows = ranged ? (this.opts.rangePageRows ?? 1_000_000) : this.opts.pageRows;
      return Math.max(1, Math.min(wanted, Math.floor(rows / c.chunkSize))) * c.chunkSize;
    };
    const pageQuery = { ...planRead(c), maxId };
    // A plan's entries are ranges, which the consumers read (domain/chunk.ts): a page here is its chunks'
    // bounds, a few hundred ids. A re-plan leaves out whoever has an outcome, and the closer's walk
    // records every recipient aborted: both read the recipients themselves and cut them into chunks.
    const readPage = async (from: number, limit: number): Promise<ReadPage> => {
      const q: PageQuery = { ...pageQuery, afterId: from, limit };
      if (ranged) {
        const bounds = await this.reader.bounds(q, c.chunkSize);
        const last = bounds[bounds.length - 1];
        return { bounds, rows: null, final: last === undefined || last.row < limit, lastRead: last?.lastId };
      }
      const rows = await this.reader.page(q);
      return { bounds: null, rows, final: rows.ids.length < limit, lastRead: rows.ids[rows.ids.length - 1] };
    };
    // One page read ahead: PostgreSQL reads page k+1 while page k is cut and appended. A non-final page is
    // always whole chunks (its limit is a multiple of chunkSize), so page k+1 starts at its last id.
    let limit = pageLimit(0);
    let next: Promise<ReadPage> | null = done ? null : readPage(afterId, limit);
    for (let page = 0; next !== null && !shouldStop(); page++) {
      const read = await next;
      const { final, lastRead } = read;
      next = null;
      if (!final) {
        limit = pageLimit(page + 1);
        next = readPage(lastRead!, limit);
        next.catch(() => undefined); // awaited on the next turn; do not let an early exit leave it unhandled
      }
      let chunks: Array<ChunkDescriptor | ChunkRange>;
      if (read.bounds !== null) chunks = rangesFromBounds(base, { seq, afterId }, read.bounds);
      else {
        const rows = replan ? await this.outcomes!.withoutOutcomes(campaignId, read.rows!, c.roundGeneration) : read.rows!;
        // A filtered page is no longer whole chunks: keep its tail for the next page only when the audience
        // goes on, by packing it as final here (a short chunk) — a re-plan's chunks need not be full.
        chunks = packChunks(base, { seq, afterId }, rows, c.chunkSize, final || replan);
      }
      if (emit !== null) {
        if (shouldStop()) break;
        await emit(chunks as ChunkDescriptor[]);
      } else {
        const ahead = ranged ? this.opts.aheadRanges : this.opts.aheadChunks;
        if (!(await this.roomFor(campaignId, chunks.length, ahead, shouldStop))) break;
        appended += await this.stream.append(chunks);
      }
      for (const ch of chunks) {
        seq = ch.seq;
        afterId = ch.lastId;
        position += ch.count;
      }
      // Skipped recipients still move the plan on: the next page starts after the last one read.
      if (replan && lastRead !== undefined) afterId = Math.max(afterId, lastRead);
      if (counting === null) {
        counting = this.campaigns.countPlanTotal(campaignId);
        counting.catch(() => undefined); // awaited before planning is recorded done; never left unhandled
      }
      if (final) await counting;
      await this.campaigns.recordPlanned({
        id: campaignId,
        generation: c.planGeneration,
        chunks: seq,
        lastId: afterId,
        count: position,
        done: final,
      });
      done = final;
    }
    return { chunks: seq, recipients: position, appended, ms: performance.now() - t0, done };
  }

  /** Waits until the stream has room for `n` more entries of `ahead`; false if asked to stop meanwhile. */
  private async roomFor(campaignId: number, n: number, ahead: number, shouldStop: () => boolean): Promise<boolean> {
    for (let wait = 2; ; wait = Math.min(wait * 2, 50)) {
      if (shouldStop()) return false;
      const backlog = await this.stream.length(campaignId);
      if (backlog + n <= Math.max(ahead, n)) return true;
      await new Promise((r) => setTimeout(r, wait));
    }
  }
}

/**
 * Cuts a campaign's audience into chunks and appends them to its stream. It reads the audience a page
 * at a time in id order (keyset, never all of it in memory) and stays at most `aheadChunks` chunks
 * ahead of the consumers, so Redis holds a bounded window of the campaign, not its audience. Progress is
 * recorded in PostgreSQL after every page, so a planner that dies resumes where it stopped; re-appending
 * a chunk is refused by Redis (explicit ids), so nothing is appended twice.
 */
import { packChunks, type ChunkDescriptor, type RecipientPage } from '../domain/chunk.js';
import { channelNeedsAddress, channelRendersAtSend } from '../domain/campaign-input.js';
import { CampaignTemplates, sendTimeNeeds } from '../domain/template.js';
import { storedFilter } from '../domain/segment-filter.js';
import type { CampaignRepo } from '../store/campaign-repo.js';
import type { RecipientReader } from '../store/recipient-reader.js';
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

export interface PlannerOptions {
  /** chunks in the stream (unacknowledged) before the planner waits */
  aheadChunks: number;
  /** upper bound on recipients per page query */
  pageRows: number;
}

/** Chunks per page: small first, so consumers start within milliseconds, then large. */
const PAGE_CHUNKS = [8, 64, 256];

export class Planner {
  constructor(
    private readonly campaigns: CampaignRepo,
    private readonly reader: RecipientReader,
    private readonly stream: ChunkProtocol,
    private readonly opts: PlannerOptions = { aheadChunks: 400, pageRows: 100_000 },
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
    // What templates read at send time travels in the chunk, so the sender renders without a round trip.
    const needs = sendTimeNeeds(CampaignTemplates.compile(c.content, c.missing, c), channelRendersAtSend(c.channel));
    const withAddress = channelNeedsAddress(c.channel) || needs?.address === true;
    // The campaign's own copy of its filter: every page, re-plan, retry round and the closer's walk
    // select the same recipients.
    const filter = c.filter === null ? null : storedFilter(c.filter, `campaign ${campaignId}`);
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
    const pageLimit = (page: number): number => {
      const wanted = PAGE_CHUNKS[Math.min(page, PAGE_CHUNKS.length - 1)]!;
      return Math.max(1, Math.min(wanted, Math.floor(this.opts.pageRows / c.chunkSize))) * c.chunkSize;
    };
    const readPage = (from: number, limit: number): Promise<RecipientPage> =>
      this.reader.page({
        audienceId: c.planAudienceId,
        afterId: from,
        maxId,
        limit,
        withAddress,
        segmentBy: c.segmentBy,
        attrs: needs?.attrs ?? null,
        filter,
      });
    // One page read ahead: PostgreSQL reads page k+1 while page k is packed and appended. A non-final
    // page is always whole chunks (its limit is a multiple of chunkSize), so page k+1 starts at its last id.
    let limit = pageLimit(0);
    let next: Promise<RecipientPage> | null = done ? null : readPage(afterId, limit);
    for (let page = 0; next !== null && !shouldStop(); page++) {
      const read = await next;
      const final = read.ids.length < limit;
      const lastRead = read.ids[read.ids.length - 1];
      next = null;
      if (!final) {
        limit = pageLimit(page + 1);
        next = readPage(lastRead!, limit);
        next.catch(() => undefined); // awaited on the next turn; do not let an early exit leave it unhandled
      }
      const rows = replan ? await this.outcomes!.withoutOutcomes(campaignId, read, c.roundGeneration) : read;
      // A filtered page is no longer whole chunks: keep its tail for the next page only when the audience
      // goes on, by packing it as final here (a short chunk) — a re-plan's chunks need not be full.
      const chunks = packChunks(base, { seq, afterId }, rows, c.chunkSize, final || replan);
      if (emit !== null) {
        if (shouldStop()) break;
        await emit(chunks);
      } else {
        if (!(await this.roomFor(campaignId, chunks.length, shouldStop))) break;
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

  /** Waits until the stream has room for `n` more chunks; false if asked to stop meanwhile. */
  private async roomFor(campaignId: number, n: number, shouldStop: () => boolean): Promise<boolean> {
    for (let wait = 2; ; wait = Math.min(wait * 2, 50)) {
      if (shouldStop()) return false;
      const backlog = await this.stream.length(campaignId);
      if (backlog + n <= Math.max(this.opts.aheadChunks, n)) return true;
      await new Promise((r) => setTimeout(r, wait));
    }
  }
}

/**
 * Cuts a campaign's audience into chunks and appends them to its stream. It reads the audience a page
 * at a time in id order (keyset, never all of it in memory) and stays at most `aheadChunks` chunks
 * ahead of the consumers, so Redis holds a bounded window of the campaign, not its audience. Progress is
 * recorded in PostgreSQL after every page, so a planner that dies resumes where it stopped; re-appending
 * a chunk is refused by Redis (explicit ids), so nothing is appended twice.
 */
import { packChunks } from '../domain/chunk.js';
import { channelNeedsAddress } from '../domain/campaign-input.js';
import type { CampaignRepo } from '../store/campaign-repo.js';
import type { RecipientReader } from '../store/recipient-reader.js';
import type { ChunkStream } from '../stream/chunk-stream.js';

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
    private readonly stream: ChunkStream,
    private readonly opts: PlannerOptions = { aheadChunks: 400, pageRows: 100_000 },
  ) {}

  async plan(campaignId: number, shouldStop: () => boolean = () => false): Promise<PlanResult> {
    const t0 = performance.now();
    const c = await this.campaigns.beginPlan(campaignId);
    await this.stream.ensureGroup(campaignId);
    const counting = c.total === null ? this.campaigns.countPlanTotal(campaignId) : Promise.resolve(c.total);
    // Attach now: if planning stops early, nobody awaits it.
    counting.catch(() => undefined);
    const withAddress = channelNeedsAddress(c.channel);
    const base = { campaignId, audienceId: c.audienceId };
    let seq = c.plannedChunks;
    let afterId = c.plannedLastId;
    let position = c.plannedCount;
    let appended = 0;
    let done = c.planningDone;
    const maxId = c.planMaxId ?? 0;
    for (let page = 0; !done && !shouldStop(); page++) {
      const chunksWanted = PAGE_CHUNKS[Math.min(page, PAGE_CHUNKS.length - 1)]!;
      const pageChunks = Math.max(1, Math.min(chunksWanted, Math.floor(this.opts.pageRows / c.chunkSize)));
      if (!(await this.roomFor(campaignId, pageChunks, shouldStop))) break;
      const limit = pageChunks * c.chunkSize;
      const rows = await this.reader.page(c.audienceId, afterId, maxId, limit, withAddress);
      const final = rows.ids.length < limit;
      const chunks = packChunks(base, { seq, afterId }, rows, c.chunkSize, final);
      appended += await this.stream.append(chunks);
      for (const ch of chunks) {
        seq = ch.seq;
        afterId = ch.lastId;
        position += ch.count;
      }
      if (final) await counting;
      await this.campaigns.recordPlanned(campaignId, seq, afterId, position, final);
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

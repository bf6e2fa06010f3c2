/**
 * Cuts a campaign's audience into keyset-range chunks and appends them to its stream. It reads only
 * chunk boundaries (one row per chunk, a page of 1,000 chunks per query), never the audience itself,
 * and records its progress in PostgreSQL after every page, so a planner that dies resumes where it
 * stopped; re-appending a chunk is refused by Redis (explicit ids), so nothing is appended twice.
 */
import { chunksFromBoundaries } from '../domain/chunk.js';
import type { CampaignRepo } from '../store/campaign-repo.js';
import type { RecipientReader } from '../store/recipient-reader.js';
import type { ChunkStream } from '../stream/chunk-stream.js';

export interface PlanResult {
  chunks: number;
  recipients: number;
  appended: number;
  ms: number;
}

/** Chunks per boundary query: small first, so consumers start within milliseconds, then large. */
const PAGE_CHUNKS = [16, 256, 2000];

export class Planner {
  constructor(
    private readonly campaigns: CampaignRepo,
    private readonly reader: RecipientReader,
    private readonly stream: ChunkStream,
  ) {}

  async plan(campaignId: number, shouldStop: () => boolean = () => false): Promise<PlanResult> {
    const t0 = performance.now();
    const c = await this.campaigns.beginPlan(campaignId);
    await this.stream.ensureGroup(campaignId);
    let seq = c.plannedChunks;
    let afterId = c.plannedLastId;
    let position = c.plannedCount;
    let appended = 0;
    let done = c.planningDone;
    const maxId = c.planMaxId ?? 0;
    for (let page = 0; !done && !shouldStop(); page++) {
      const limit = PAGE_CHUNKS[Math.min(page, PAGE_CHUNKS.length - 1)]!;
      const ids = await this.reader.boundaries(c.audienceId, afterId, maxId, c.chunkSize, limit);
      const bounds = ids.map((lastId, i) => ({ lastId, position: position + (i + 1) * c.chunkSize }));
      done = ids.length < limit;
      if (done) {
        const tailAfter = ids[ids.length - 1] ?? afterId;
        const tail = await this.reader.tail(c.audienceId, tailAfter, maxId);
        if (tail.count > 0) bounds.push({ lastId: tail.lastId, position: position + ids.length * c.chunkSize + tail.count });
      }
      const chunks = chunksFromBoundaries({ campaignId, audienceId: c.audienceId }, { seq, afterId, position }, bounds);
      appended += await this.stream.append(chunks);
      const last = chunks[chunks.length - 1];
      if (last !== undefined) {
        seq = last.seq;
        afterId = last.lastId;
        position = bounds[bounds.length - 1]!.position;
      }
      await this.campaigns.recordPlanned(campaignId, seq, afterId, position, done);
    }
    return { chunks: seq, recipients: position, appended, ms: performance.now() - t0 };
  }
}

/**
 * Chunks: what the planner appends to a campaign's stream and a consumer reads back. A chunk is a
 * keyset range of recipient ids (`afterId` exclusive, `lastId` inclusive) within one audience, and it
 * carries that range's recipients, so a consumer sends without a database round trip. The planner
 * keeps only a bounded window of chunks in Redis, so the stream never holds the whole audience.
 */

export interface ChunkDescriptor {
  campaignId: number;
  audienceId: number;
  /** the plan this chunk belongs to (a lost stream is re-planned under the next generation) */
  generation: number;
  /** 1-based position in the plan; with the generation, the stream entry id `<generation>-<seq>`, which makes appends idempotent */
  seq: number;
  afterId: number;
  lastId: number;
  /** recipients in the range (ids are sparse, so lastId - afterId is not the count) */
  count: number;
  /** the range's user ids, packed (see packed-ids.ts): exactly `count` of them */
  users: Buffer;
  /** null when the campaign's channel does not use addresses */
  addresses: Array<string | null> | null;
  /** each recipient's value of the campaign's `segment_by` attribute; null when the campaign has none */
  segments: Array<string | null> | null;
  /**
   * each recipient's attributes that the campaign's templates read at send time, as JSON text of an object
   * (domain/template.ts); absent when nothing is rendered or checked at send time
   */
  attrs?: Array<string | null> | null;
}

/** One page of an audience in id order, as the planner reads it. */
export interface RecipientPage {
  /** typed arrays, not number[]: a page's 100k-entry arrays would otherwise be copied by every GC that finds them young */
  ids: Float64Array;
  /** packed user ids, and the end offset of each row's in `users` */
  users: Buffer;
  userEnds: Uint32Array;
  addresses: Array<string | null> | null;
  segments: Array<string | null> | null;
  attrs?: Array<string | null> | null;
}

/** Stream ids are `<ms>-<seq>`; using the plan generation and the chunk's seq means Redis itself refuses a repeated append. */
export function chunkStreamId(generation: number, seq: number): string {
  return `${generation}-${seq}`;
}

export function seqFromStreamId(id: string): { generation: number; seq: number } | null {
  const m = /^(\d+)-(\d+)$/.exec(id);
  if (m === null) return null;
  const generation = Number(m[1]);
  const seq = Number(m[2]);
  return Number.isSafeInteger(generation) && Number.isSafeInteger(seq) && seq >= 1 ? { generation, seq } : null;
}

/**
 * Cuts a page of recipients into chunks of `chunkSize`, continuing the plan at `start.seq` / `start.afterId`.
 * A trailing partial chunk is made only when `final` (the audience ends in this page); otherwise those
 * recipients are left for the next page, which the caller starts after the last full chunk.
 */
export function packChunks(
  base: { campaignId: number; audienceId: number; generation: number },
  start: { seq: number; afterId: number },
  page: RecipientPage,
  chunkSize: number,
  final: boolean,
): ChunkDescriptor[] {
  if (chunkSize < 1) throw new RangeError('chunkSize must be >= 1');
  const out: ChunkDescriptor[] = [];
  let { seq, afterId } = start;
  const n = page.ids.length;
  for (let from = 0; from < n; from += chunkSize) {
    const to = Math.min(from + chunkSize, n);
    if (to - from < chunkSize && !final) break;
    const lastId = page.ids[to - 1]!;
    if (lastId <= afterId) throw new RangeError(`ids must increase: ${lastId} after ${afterId}`);
    seq += 1;
    out.push({
      ...base,
      seq,
      afterId,
      lastId,
      count: to - from,
      users: page.users.subarray(from === 0 ? 0 : page.userEnds[from - 1]!, page.userEnds[to - 1]!),
      addresses: page.addresses === null ? null : page.addresses.slice(from, to),
      segments: page.segments === null ? null : page.segments.slice(from, to),
      ...(page.attrs === undefined || page.attrs === null ? {} : { attrs: page.attrs.slice(from, to) }),
    });
    afterId = lastId;
  }
  return out;
}

export function chunkCount(total: number, chunkSize: number): number {
  if (chunkSize < 1) throw new RangeError('chunkSize must be >= 1');
  return Math.ceil(total / chunkSize);
}

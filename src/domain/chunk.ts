/**
 * Chunks: what the planner appends to a campaign's stream and a consumer reads back. A chunk is a
 * keyset range of recipient ids (`afterId` exclusive, `lastId` inclusive) within one audience. A plan's
 * entries are the ranges alone (`ChunkRange`): the consumer that sends one reads its recipients, one
 * keyset read for the chunks it was handed together, since an audience's rows up to the plan's extent
 * never change (recipients are never removed, and one merge per audience commits ids above the extent).
 * A re-plan's entries carry their recipients (`ChunkDescriptor`), since what they leave out (recipients
 * with an outcome already) is no range. The planner keeps a bounded window of entries in Redis.
 */

/** A chunk as planned: the range and how many of the audience's recipients (the filter's) it holds. */
export interface ChunkRange {
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
}

/** A chunk with its recipients: as a consumer sends it (read for a range, or carried by a re-plan's entry). */
export interface ChunkDescriptor extends ChunkRange {
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
      ...rowsOf(page, from, to),
    });
    afterId = lastId;
  }
  return out;
}

/** Whether a stream entry carries its recipients (a re-plan's), or is a range to read them for. */
export function carriesRecipients(c: ChunkRange | ChunkDescriptor): c is ChunkDescriptor {
  return 'users' in c;
}

/** The last id of each chunk a range page holds and its row number in the page (1-based), in id order. */
export interface ChunkBound {
  lastId: number;
  row: number;
}

/**
 * Ranges from the bounds of one page of the audience, continuing the plan at `start`. A page's bounds are
 * every `chunkSize`-th row and its last row, so every chunk is whole but, when the page is the audience's
 * last, the final one.
 */
export function rangesFromBounds(
  base: { campaignId: number; audienceId: number; generation: number },
  start: { seq: number; afterId: number },
  bounds: readonly ChunkBound[],
): ChunkRange[] {
  const out: ChunkRange[] = [];
  let { seq, afterId } = start;
  let row = 0;
  for (const b of bounds) {
    if (b.lastId <= afterId) throw new RangeError(`ids must increase: ${b.lastId} after ${afterId}`);
    if (b.row <= row) throw new RangeError(`rows must increase: ${b.row} after ${row}`);
    seq += 1;
    out.push({ ...base, seq, afterId, lastId: b.lastId, count: b.row - row });
    afterId = b.lastId;
    row = b.row;
  }
  return out;
}

/**
 * Cuts one read of adjacent ranges (each starting where the one before ends) into their chunks. The page
 * must hold exactly the ranges' recipients, each range ending at its last id: anything else means the
 * audience is not what was planned, which Herald never does to it, so it is an error rather than a guess.
 */
export function chunksOfRanges(ranges: readonly ChunkRange[], page: RecipientPage): ChunkDescriptor[] {
  const out: ChunkDescriptor[] = [];
  let from = 0;
  for (let i = 0; i < ranges.length; i++) {
    const r = ranges[i]!;
    if (i > 0 && r.afterId !== ranges[i - 1]!.lastId) throw new RangeError(`range ${r.seq} does not follow range ${ranges[i - 1]!.seq}`);
    const to = from + r.count;
    if (to > page.ids.length) throw new RangeError(`range ${r.seq}: ${r.count} recipients planned, ${page.ids.length - from} read`);
    if (page.ids[to - 1] !== r.lastId)
      throw new RangeError(`range ${r.seq}: the ${r.count} recipients read end at id ${page.ids[to - 1]}, not ${r.lastId}`);
    out.push({ ...r, ...rowsOf(page, from, to) });
    from = to;
  }
  if (from !== page.ids.length) throw new RangeError(`${page.ids.length} recipients read for ${from} planned`);
  return out;
}

/** Rows [from, to) of a page, as a chunk carries them (the users' bytes shared, not copied). */
function rowsOf(page: RecipientPage, from: number, to: number): Pick<ChunkDescriptor, 'users' | 'addresses' | 'segments' | 'attrs'> {
  return {
    users: page.users.subarray(from === 0 ? 0 : page.userEnds[from - 1]!, page.userEnds[to - 1]!),
    addresses: page.addresses === null ? null : page.addresses.slice(from, to),
    segments: page.segments === null ? null : page.segments.slice(from, to),
    ...(page.attrs === undefined || page.attrs === null ? {} : { attrs: page.attrs.slice(from, to) }),
  };
}

export function chunkCount(total: number, chunkSize: number): number {
  if (chunkSize < 1) throw new RangeError('chunkSize must be >= 1');
  return Math.ceil(total / chunkSize);
}

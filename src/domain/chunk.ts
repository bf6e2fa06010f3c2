/**
 * Chunk descriptors: what the planner appends to a campaign's stream and a consumer reads back.
 * A chunk names a keyset range of recipient ids (`afterId` exclusive, `lastId` inclusive) within one
 * audience, never the recipients themselves, so a stream entry stays ~40 bytes whatever the chunk size.
 */

export interface ChunkDescriptor {
  campaignId: number;
  audienceId: number;
  /** 1-based position in the campaign's plan; also the stream entry id `0-<seq>`, which makes appends idempotent. */
  seq: number;
  afterId: number;
  lastId: number;
  /** recipients in the range when planned (ids are sparse, so lastId - afterId is not the count). */
  count: number;
}

/** Stream ids are `<ms>-<seq>`; using ms = 0 and the chunk's seq means Redis itself refuses a repeated append. */
export function chunkStreamId(seq: number): string {
  return `0-${seq}`;
}

export function seqFromStreamId(id: string): number {
  const dash = id.indexOf('-');
  const seq = Number(id.slice(dash + 1));
  if (dash < 0 || id.slice(0, dash) !== '0' || !Number.isSafeInteger(seq) || seq < 1) return -1;
  return seq;
}

/**
 * Builds chunk descriptors from boundary rows (each boundary is the last id of a chunk, with how many
 * recipients precede it in the audience, counting from 1). Pure, so the arithmetic is tested without a database.
 */
export function chunksFromBoundaries(
  base: { campaignId: number; audienceId: number },
  start: { seq: number; afterId: number; position: number },
  boundaries: Iterable<{ lastId: number; position: number }>,
): ChunkDescriptor[] {
  const out: ChunkDescriptor[] = [];
  let { seq, afterId, position } = start;
  for (const b of boundaries) {
    if (b.lastId <= afterId || b.position <= position) throw new RangeError(`boundaries must increase: ${b.lastId} after ${afterId}`);
    seq += 1;
    out.push({ ...base, seq, afterId, lastId: b.lastId, count: b.position - position });
    afterId = b.lastId;
    position = b.position;
  }
  return out;
}

export function chunkCount(total: number, chunkSize: number): number {
  if (chunkSize < 1) throw new RangeError('chunkSize must be >= 1');
  return Math.ceil(total / chunkSize);
}

import { describe, expect, it } from 'vitest';
import { RangeReader, type PageSource } from '../../src/planner/range-reader.js';
import { rangesFromBounds, type RecipientPage } from '../../src/domain/chunk.js';
import { RecipientRowDecoder } from '../../src/store/copy-binary.js';
import { unpackStrings } from '../../src/domain/packed-ids.js';
import type { PageQuery } from '../../src/store/recipient-reader.js';
import type { Campaign } from '../../src/store/campaign-repo.js';
import { copyBinary } from '../helpers/copy-binary.js';

/** An audience of ids 1…n (user `u<id>`), read as PostgreSQL would: ids after afterId up to maxId, limit of them. */
function audience(n: number): PageSource & { reads: PageQuery[]; open: number; most: number } {
  const src = {
    reads: [] as PageQuery[],
    open: 0,
    most: 0,
    async page(q: PageQuery): Promise<RecipientPage> {
      src.reads.push(q);
      src.most = Math.max(src.most, ++src.open);
      await new Promise((r) => setTimeout(r, 1));
      const rows: Array<[number, string]> = [];
      for (let id = q.afterId + 1; id <= Math.min(n, q.maxId) && rows.length < q.limit; id++) rows.push([id, `u${id}`]);
      const d = new RecipientRowDecoder();
      const data = copyBinary(rows);
      d.feed(data, 0, data.length);
      src.open--;
      return d.finish();
    },
  };
  return src;
}

const campaign = {
  id: 7,
  planAudienceId: 3,
  planGeneration: 0,
  channel: { type: 'null' },
  content: { title: 't', body: 'b' },
  missing: 'empty',
  segmentBy: null,
  filter: null,
  variables: null,
} as unknown as Campaign;

const ranges = (from: number, chunks: number, size: number) =>
  rangesFromBounds({ campaignId: 7, audienceId: 3, generation: 0 }, { seq: from / size, afterId: from }, [
    ...Array.from({ length: chunks }, (_, i) => ({ lastId: from + (i + 1) * size, row: (i + 1) * size })),
  ]);

describe('a consumer reading the recipients of its ranges', () => {
  it('reads adjacent ranges together, at most maxRows a read, one read after another, and cuts them back in order', async () => {
    const src = audience(10_000);
    const reader = new RangeReader(src, { maxRows: 1_000, concurrency: 4 });
    const rs = ranges(0, 10, 250); // ids 1…2,500
    const shuffled = [rs[3]!, rs[0]!, rs[9]!, ...rs.slice(4, 9), rs[1]!, rs[2]!];
    const chunks = await reader.read(campaign, shuffled);
    expect(chunks.map((c) => c.seq)).toEqual(shuffled.map((r) => r.seq));
    for (const c of chunks)
      expect(unpackStrings(c.users, c.count)).toEqual(Array.from({ length: c.count }, (_, i) => `u${c.afterId + 1 + i}`));
    // 2,500 recipients in reads of at most 1,000: three, in id order, never two at once for one caller
    expect(src.reads.map((q) => [q.afterId, q.maxId, q.limit])).toEqual([
      [0, 1_000, 1_000],
      [1_000, 2_000, 1_000],
      [2_000, 2_500, 500],
    ]);
    expect(src.most).toBe(1);
  });

  it('keeps a gap apart, and never has more reads out than its concurrency across callers', async () => {
    const src = audience(10_000);
    const reader = new RangeReader(src, { maxRows: 100_000, concurrency: 2 });
    await reader.read(campaign, [...ranges(0, 2, 100), ...ranges(500, 2, 100)]);
    expect(src.reads.map((q) => [q.afterId, q.maxId])).toEqual([
      [0, 200],
      [500, 700],
    ]);
    src.reads.length = 0;
    src.most = 0;
    await Promise.all(Array.from({ length: 6 }, (_, i) => reader.read(campaign, ranges(i * 1_000, 1, 100))));
    expect(src.reads).toHaveLength(6);
    expect(src.most).toBe(2);
  });

  it('asks for no more chunks at once than one read holds', () => {
    const reader = new RangeReader(audience(1), { maxRows: 100_000, concurrency: 1 });
    expect(reader.chunksPerRead(64, 500)).toBe(64);
    expect(reader.chunksPerRead(64, 10_000)).toBe(10);
    expect(reader.chunksPerRead(64, 100_000)).toBe(1);
    expect(reader.chunksPerRead(64, 250_000)).toBe(1);
  });

  it('refuses a read that is not what was planned, as an internal error', async () => {
    const reader = new RangeReader(audience(150), { maxRows: 1_000, concurrency: 1 });
    await expect(reader.read(campaign, ranges(0, 2, 100))).rejects.toMatchObject({ code: 'INTERNAL', retryable: false });
  });
});

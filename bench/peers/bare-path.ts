/**
 * The bare path: what Herald's data flow costs with nothing of Herald around it, the ceiling its
 * end-to-end figure is compared with. Chunks of `chunk` packed user ids, encoded as Herald encodes
 * them, are XADDed to a stream (pipelined, timed on its own); then one consumer XREADGROUPs them 20 at a
 * time, decodes each, walks its recipients (a no-op send each), encodes one event row per recipient as
 * Herald does (a Native block), inserts `batchRows` at a time into Herald's `message_events` (with its views; two inserts in
 * flight) and XACKs each chunk once its rows are stored.
 */
import type { Redis } from 'ioredis';
import type { ClickHouse } from '../../src/clickhouse/client.js';
import { encodeChunk, decodeChunk } from '../../src/stream/chunk-codec.js';
import { packStrings, readVarint } from '../../src/domain/packed-ids.js';
import { EventBlockWriter } from '../../src/sink/native-block.js';

export interface BarePathResult {
  xaddPerSec: number;
  seconds: number;
  recipientsPerSec: number;
}

export async function runBarePath(
  redis: Redis,
  ch: ClickHouse,
  key: string,
  n: number,
  chunk: number,
  batchRows: number,
): Promise<BarePathResult> {
  const chunks = Math.ceil(n / chunk);
  await redis.del(key);
  let t = performance.now();
  for (let c0 = 0; c0 < chunks; c0 += 200) {
    const pipe = redis.pipeline();
    for (let c = c0; c < Math.min(chunks, c0 + 200); c++) {
      const count = Math.min(chunk, n - c * chunk);
      const users = packStrings(Array.from({ length: count }, (_, i) => `bare-${c * chunk + i}`));
      const d = encodeChunk({
        campaignId: 1,
        audienceId: 1,
        generation: 0,
        seq: c + 1,
        afterId: c * chunk,
        lastId: c * chunk + count,
        count,
        users,
        addresses: null,
        segments: null,
      });
      pipe.xadd(key, `0-${c + 1}`, 'd', d);
    }
    await pipe.exec();
  }
  const xaddPerSec = chunks / ((performance.now() - t) / 1000);
  await redis.xgroup('CREATE', key, 'g', '0');

  t = performance.now();
  let writer = new EventBlockWriter(batchRows);
  let acks: string[] = [];
  const inFlight = new Set<Promise<void>>();
  const flush = async (): Promise<void> => {
    const rows = writer.finish();
    const ids = acks;
    writer = new EventBlockWriter(batchRows);
    acks = [];
    const p = ch.insertRaw('message_events', 'Native', rows).then(async () => {
      await redis.xack(key, 'g', ...ids);
    });
    inFlight.add(p);
    void p.finally(() => inFlight.delete(p));
    if (inFlight.size >= 2) await Promise.race(inFlight);
  };
  let seen = 0;
  for (;;) {
    const reply = (await redis.callBuffer('XREADGROUP', 'GROUP', 'g', 'c', 'COUNT', '20', 'STREAMS', key, '>')) as Array<
      [Buffer, Array<[Buffer, Buffer[]]>]
    > | null;
    const entries = reply?.[0]?.[1] ?? [];
    if (entries.length === 0) break;
    const at = Math.floor(Date.now() / 1000);
    for (const [id, fields] of entries) {
      const c = decodeChunk(fields[1]!);
      for (let i = 0, pos = 0; i < c.count; i++) {
        const [len, start] = readVarint(c.users, pos, c.users.length);
        pos = start + len; // the no-op send
      }
      writer.addOutcomes(1, c.users, c.count, new Map(), at);
      acks.push(id.toString());
      seen += c.count;
    }
    if (writer.rows >= batchRows) await flush();
  }
  if (writer.rows > 0) await flush();
  await Promise.all(inFlight);
  const seconds = (performance.now() - t) / 1000;
  await redis.del(key);
  if (seen !== n) throw new Error(`bare path read ${seen} of ${n}`);
  return { xaddPerSec, seconds, recipientsPerSec: n / seconds };
}

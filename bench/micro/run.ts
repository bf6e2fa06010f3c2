/**
 * Micro benchmarks (tinybench) of the pure hot-path pieces. Unit: operations per second (and, per op,
 * how many recipients it covers, so figures convert to recipients/s). Method: tinybench defaults
 * (≥ 500 ms per task, after warm-up), all tasks in one run on this machine; compare ratios, not absolutes.
 *   npm run bench:micro
 */
import { Bench } from 'tinybench';
import { cpus } from 'node:os';
import { writeFileSync, mkdirSync } from 'node:fs';
import { packChunks } from '../../src/domain/chunk.js';
import { transition } from '../../src/domain/campaign-status.js';
import { packStrings } from '../../src/domain/packed-ids.js';
import { decodeChunk, encodeChunk } from '../../src/stream/chunk-codec.js';
import { RecipientRowDecoder } from '../../src/store/copy-binary.js';
import { copyBinary } from '../../test/helpers/copy-binary.js';
import { EventBlockWriter } from '../../src/sink/native-block.js';

const CHUNK = 500;
const ids = Array.from({ length: CHUNK }, (_, i) => 1_000_000 + i);
const names = ids.map((i) => `user-${i}`);
const copyData = copyBinary(ids.map((i) => [i, `user-${i}`]));
const decodeCopy = (): ReturnType<RecipientRowDecoder['finish']> => {
  const d = new RecipientRowDecoder({ expectedRows: CHUNK });
  d.feed(copyData, 0, copyData.length);
  return d.finish();
};
const page = decodeCopy();
const [chunk] = packChunks({ campaignId: 42, audienceId: 7, generation: 0 }, { seq: 0, afterId: 0 }, page, CHUNK, true);
const encoded = encodeChunk(chunk!);
const asJson = JSON.stringify({ ...chunk, users: names });
const none = new Map<number, string>();

const bench = new Bench({ time: 500 });
bench
  .add(`chunk encode, msgpackr (${CHUNK} recipients)`, () => encodeChunk(chunk!))
  .add(`chunk encode, JSON with string ids (${CHUNK} recipients)`, () => JSON.stringify({ ...chunk, users: names }))
  .add(`chunk decode + validate, msgpackr (${CHUNK} recipients)`, () => decodeChunk(encoded))
  .add(`chunk decode, JSON (${CHUNK} recipients)`, () => JSON.parse(asJson))
  .add(`binary COPY → packed ids (${CHUNK} rows)`, decodeCopy)
  .add(`planner: page → chunks (${CHUNK} rows)`, () =>
    packChunks({ campaignId: 42, audienceId: 7, generation: 0 }, { seq: 0, afterId: 0 }, page, CHUNK, true),
  )
  // as the sink fills a batch: 200 chunks' outcomes into one 100k-row Native block
  .add(`Native event block from packed ids (200 × ${CHUNK} rows)`, () => {
    const w = new EventBlockWriter(200 * CHUNK);
    for (let c = 0; c < 200; c++) w.addOutcomes(42, chunk!.users, CHUNK, none, 1_700_000_000);
    return w.finish();
  })
  .add(`Native event block from strings, one add() per row (${CHUNK} rows)`, () => {
    const w = new EventBlockWriter(CHUNK);
    for (const n of names) w.add(42, n, 'delivered', 1_700_000_000, '');
    return w.finish();
  })
  .add(`pack ${CHUNK} string ids`, () => packStrings(names))
  .add('transition(sending, pause)', () => transition('sending', 'pause'));

await bench.run();
const rows = bench.tasks.map((t) => {
  const r = t.result as { state: string; throughput?: { mean: number; rme: number } };
  return { task: t.name, opsPerSec: Math.round(r.throughput?.mean ?? 0), rmePercent: r.throughput?.rme ?? null };
});
console.log(`micro benchmarks on ${cpus().length} × ${cpus()[0]?.model ?? 'cpu'}, node ${process.version}`);
console.table(rows.map((r) => ({ task: r.task, 'ops/s': r.opsPerSec.toLocaleString('en-US') })));
mkdirSync('bench/results', { recursive: true });
writeFileSync('bench/results/micro.json', `${JSON.stringify({ bench: 'micro', at: new Date().toISOString(), rows }, null, 2)}\n`);

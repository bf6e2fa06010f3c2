/**
 * The cost of instrumentation on the hot path (tinybench). Unit: ns per sub-batch of what ChunkSender
 * reports for one (two clock reads, the send and chunk histograms, the 429 count, the outcome counters:
 * the null channel's whole chunk), through the prom-client registry and through NO_METRICS. Method:
 * tinybench, `--time` ms per task (default 1000) after warm-up, both tasks in one run, 20 campaigns taking
 * turns; compare the difference with a sub-batch's own time (bench/README.md).
 *   npx tsx bench/micro/metrics.bench.ts [--time 1000]
 */
import { Bench } from 'tinybench';
import { cpus } from 'node:os';
import { createMetrics } from '../../src/metrics/herald-metrics.js';
import { NO_METRICS, type Metrics } from '../../src/domain/metrics.js';

const i = process.argv.indexOf('--time');
const time = i === -1 ? 1000 : Number(process.argv[i + 1]);
const registry = createMetrics({ retentionMs: 600_000, collectTimeoutMs: 1000 });

function subBatch(m: Metrics, campaignId: number): void {
  const t0 = performance.now();
  m.sendSeconds('null', (performance.now() - t0) / 1000);
  m.throttled(campaignId, 0);
  m.outcomes(campaignId, 'null', { delivered: 500, failed: 0, skipped: 0, suppressed: 0, capped: 0 });
  m.chunkSeconds('null', (performance.now() - t0) / 1000);
}

let n = 0;
const bench = new Bench({ time });
bench.add('NO_METRICS', () => subBatch(NO_METRICS, 1 + (n++ % 20))).add('prom-client registry', () => subBatch(registry, 1 + (n++ % 20)));
await bench.run();
registry.close();
console.log(`metrics per sub-batch — ${cpus()[0]?.model ?? 'unknown CPU'}, Node ${process.version}, tinybench ${time} ms per task`);
for (const t of bench.tasks) {
  const r = t.result as { latency?: { mean: number; rme: number } };
  if (r.latency === undefined) continue;
  console.log(`  ${t.name.padEnd(22)} ${(r.latency.mean * 1e6).toFixed(0).padStart(6)} ns per sub-batch (±${r.latency.rme.toFixed(1)} %)`);
}

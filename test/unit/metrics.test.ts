import { describe, expect, it } from 'vitest';
import { createMetrics, type MetricsSources } from '../../src/metrics/herald-metrics.js';
import { parseExposition, sumOf } from '../helpers/prometheus.js';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

function sources(over: Partial<MetricsSources> = {}): Partial<MetricsSources> {
  return {
    hosted: () => [],
    streams: async (ids) => new Map(ids.map((id) => [id, { length: 10, lag: 4, pending: 2 }])),
    overshoot: async (ids) => new Map(ids.map((id) => [id, 7])),
    sinkBufferedRows: () => 123,
    ws: () => ({ clients: 3, slow: 1 }),
    ...over,
  };
}

describe('HeraldMetrics', () => {
  it('counts outcomes per sub-batch, with every outcome from 0', async () => {
    const m = createMetrics({ retentionMs: 60_000, collectTimeoutMs: 100, processMetrics: false });
    m.attach(sources());
    m.outcomes(5, 'webhook', { delivered: 90, failed: 7, suppressed: 3 });
    m.outcomes(5, 'webhook', { delivered: 100 });
    m.outcomes(5, 'null', { aborted: 40 });
    const s = parseExposition(await m.text());
    expect(sumOf(s, 'herald_messages_total', { campaign: '5', channel: 'webhook', outcome: 'delivered' })).toBe(190);
    expect(sumOf(s, 'herald_messages_total', { campaign: '5', channel: 'webhook', outcome: 'failed' })).toBe(7);
    expect(sumOf(s, 'herald_messages_total', { campaign: '5', channel: 'null', outcome: 'aborted' })).toBe(40);
    // 6 outcomes × 2 channels, the zero ones included
    expect(s.filter((x) => x.name === 'herald_messages_total')).toHaveLength(12);
    // Not hosted here (paused, finished): no stream series, but its overshoot while it has series.
    expect(s.some((x) => x.name === 'herald_stream_length_chunks')).toBe(false);
    expect(sumOf(s, 'herald_pause_overshoot_messages', { campaign: '5' })).toBe(7);
    expect(sumOf(s, 'herald_sink_buffered_rows')).toBe(123);
    expect(sumOf(s, 'herald_ws_clients')).toBe(3);
    expect(sumOf(s, 'herald_ws_slow_clients')).toBe(1);
    m.close();
  });

  it('reads hosted campaigns’ streams at scrape time, and removes a campaign’s series after the retention', async () => {
    let hosted = [8];
    const m = createMetrics({ retentionMs: 150, collectTimeoutMs: 100, processMetrics: false });
    m.attach(sources({ hosted: () => hosted }));
    m.outcomes(8, 'null', { delivered: 5 });
    m.rateWait(8, 0.25);
    m.throttled(8, 2);
    let s = parseExposition(await m.text());
    expect(sumOf(s, 'herald_stream_length_chunks', { campaign: '8' })).toBe(10);
    expect(sumOf(s, 'herald_stream_lag_chunks', { campaign: '8' })).toBe(4);
    expect(sumOf(s, 'herald_stream_pending_chunks', { campaign: '8' })).toBe(2);
    expect(sumOf(s, 'herald_pause_overshoot_messages', { campaign: '8' })).toBe(7);
    expect(sumOf(s, 'herald_campaigns_hosted')).toBe(1);
    // Hosted: kept past the retention.
    await sleep(200);
    s = parseExposition(await m.text());
    expect(sumOf(s, 'herald_messages_total', { campaign: '8', outcome: 'delivered' })).toBe(5);
    // No longer hosted: the stream series go at once, the counters after the retention.
    hosted = [];
    s = parseExposition(await m.text());
    expect(s.some((x) => x.name === 'herald_stream_length_chunks')).toBe(false);
    expect(s.some((x) => x.labels.campaign === '8')).toBe(false);
    expect(m.campaignsWithSeries()).toEqual([]);
    // Counted again later: from 0.
    m.outcomes(8, 'null', { delivered: 1 });
    s = parseExposition(await m.text());
    expect(sumOf(s, 'herald_messages_total', { campaign: '8', outcome: 'delivered' })).toBe(1);
    expect(sumOf(s, 'herald_rate_limit_waits_total', { campaign: '8' })).toBe(0);
    m.close();
  });

  it('answers within the collect timeout when Redis hangs, leaving the stream series out', async () => {
    const m = createMetrics({ retentionMs: 60_000, collectTimeoutMs: 100, processMetrics: false });
    m.attach(sources({ hosted: () => [1], streams: () => new Promise(() => undefined) }));
    const t0 = Date.now();
    const s = parseExposition(await m.text());
    expect(Date.now() - t0).toBeLessThan(1000);
    expect(s.some((x) => x.name === 'herald_stream_length_chunks')).toBe(false);
    expect(sumOf(s, 'herald_metrics_collect_failures_total', { source: 'redis' })).toBe(1);
    m.attach({ streams: () => Promise.reject(new Error('down')) });
    expect(sumOf(parseExposition(await m.text()), 'herald_metrics_collect_failures_total', { source: 'redis' })).toBe(2);
    m.close();
  });

  it('keeps registries apart: two in one process count on their own', async () => {
    const a = createMetrics({ retentionMs: 60_000, collectTimeoutMs: 100 });
    const b = createMetrics({ retentionMs: 60_000, collectTimeoutMs: 100 });
    a.outcomes(1, 'null', { delivered: 3 });
    expect(sumOf(parseExposition(await a.text()), 'herald_messages_total')).toBe(3);
    expect(sumOf(parseExposition(await b.text()), 'herald_messages_total')).toBe(0);
    expect(sumOf(parseExposition(await b.text()), 'herald_process_cpu_seconds_total')).toBeGreaterThan(0);
    a.close();
    b.close();
  });
});

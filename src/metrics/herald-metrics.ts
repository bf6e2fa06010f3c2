/**
 * Herald's Prometheus series in a registry of their own (never prom-client's global one, so several
 * Heralds can run in one process, as the tests do). The adapters report through the ports of
 * domain/metrics.ts; what only Redis or another stage knows (stream length, lag and pending, pause
 * overshoot, the sink's backlog, WebSocket clients) is read at scrape time from `MetricsSources`, the
 * Redis part bounded by `collectTimeoutMs`.
 *
 * Series labelled by campaign exist while the campaign is hosted here and for `retentionMs` after its
 * last count, then are removed, so a process that sends thousands of campaigns keeps a bounded number of
 * series. A campaign counted again later starts its counters at 0 (Prometheus' rate() reads that as a reset).
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { MESSAGE_OUTCOMES, type Metrics, type OutcomeCounts, type ReclaimReason, type WsCloseReason } from '../domain/metrics.js';

export interface StreamStats {
  /** entries in the campaign's stream (acked ones included, until it is dropped) */
  length: number;
  /** entries not yet delivered to the consumer group; null when Redis cannot tell */
  lag: number | null;
  /** entries delivered and not yet acknowledged */
  pending: number;
}

/** What the registry reads at scrape time; each part is attached by main.ts once its stage exists. */
export interface MetricsSources {
  /** campaigns with an actor in this process now */
  hosted(): readonly number[];
  /** the chunk stream of each campaign (those Redis has no stream for are left out) */
  streams(campaignIds: readonly number[]): Promise<Map<number, StreamStats>>;
  /** messages sent after a pause, per campaign (shared by every process, in Redis) */
  overshoot(campaignIds: readonly number[]): Promise<Map<number, number>>;
  /** rows the event sink holds, not yet in ClickHouse */
  sinkBufferedRows(): number;
  /** WebSocket clients now, and slow ones; null when the WebSocket API is off here */
  ws(): { clients: number; slow: number } | null;
}

export interface MetricsOptions {
  /** how long a campaign's series stay after its last count once it is no longer hosted here */
  retentionMs: number;
  /** bound of the Redis reads made at scrape time */
  collectTimeoutMs: number;
  /** prom-client's process and Node.js collectors, prefixed `herald_` (default true) */
  processMetrics?: boolean;
}

/** Seconds: a null or inbox chunk takes a millisecond or two, a webhook sub-batch a receiver's latency, up to its timeout. */
const LATENCY_BUCKETS_S = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];
const FLUSH_BUCKETS_S = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];

type CampaignLabel = 'campaign';
type Labels = Record<string, string>;

/** One campaign's outcome counts on one channel: added to in plain numbers, moved into the counter at scrape time. */
interface OutcomeTally {
  labels: Labels[];
  /** by MESSAGE_OUTCOMES' order, since the last scrape */
  pending: Float64Array;
}

/** The series of one campaign: what to remove when it goes, and its outcome tallies. */
interface CampaignSeries {
  label: string;
  touchedAt: number;
  /** channel → its tally */
  messages: Map<string, OutcomeTally>;
  /** every label set created for it, by metric, to remove them by exact labels */
  created: Array<{ metric: Counter<string> | Gauge<string>; labels: Labels }>;
}

export class HeraldMetrics implements Metrics {
  readonly registry = new Registry();
  private readonly campaigns = new Map<number, CampaignSeries>();
  private sources: Partial<MetricsSources> = {};
  private readonly sweepTimer: NodeJS.Timeout;

  private readonly messages: Counter<'campaign' | 'channel' | 'outcome'>;
  private readonly chunkDuration: Histogram<'channel'>;
  private readonly sendDuration: Histogram<'channel'>;
  private readonly rateWaits: Counter<CampaignLabel>;
  private readonly rateWaitSeconds: Counter<CampaignLabel>;
  private readonly throttles: Counter<CampaignLabel>;
  private readonly reclaims: Counter<'reason'>;
  private readonly streamLength: Gauge<CampaignLabel>;
  private readonly streamLag: Gauge<CampaignLabel>;
  private readonly streamPending: Gauge<CampaignLabel>;
  private readonly overshootMessages: Gauge<CampaignLabel>;
  private readonly sinkInsertedRows: Counter;
  private readonly sinkFlushDuration: Histogram;
  private readonly sinkInsertFailures: Counter;
  private readonly importsStarted: Counter;
  private readonly importsFinished: Counter<'outcome'>;
  private readonly importRows: Counter<'kind'>;
  private readonly wsClosedTotal: Counter<'reason'>;
  private readonly collectFailures: Counter<'source'>;

  constructor(private readonly opts: MetricsOptions) {
    const registers = [this.registry];
    const counter = <L extends string>(name: string, help: string, labelNames: readonly L[] = []): Counter<L> =>
      new Counter({ name, help, labelNames, registers });
    /** `read`: sets the gauge at scrape time */
    const gauge = <L extends string>(name: string, help: string, labelNames: readonly L[] = [], read?: (g: Gauge<L>) => void): Gauge<L> =>
      new Gauge({
        name,
        help,
        labelNames,
        registers,
        ...(read === undefined
          ? {}
          : {
              collect(this: Gauge<L>) {
                read(this);
              },
            }),
      });
    const histogram = <L extends string>(name: string, help: string, buckets: number[], labelNames: readonly L[] = []): Histogram<L> =>
      new Histogram({ name, help, labelNames, buckets, registers });

    this.messages = counter('herald_messages_total', 'Recipients given a final outcome, by campaign, channel and outcome', [
      'campaign',
      'channel',
      'outcome',
    ]);
    this.chunkDuration = histogram(
      'herald_chunk_duration_seconds',
      'Time to send one chunk, first ledger check to last step',
      LATENCY_BUCKETS_S,
      ['channel'],
    );
    this.sendDuration = histogram('herald_send_duration_seconds', 'Time of one channel call (a sub-batch)', LATENCY_BUCKETS_S, ['channel']);
    this.rateWaits = counter('herald_rate_limit_waits_total', "Waits for a campaign's rate limit", ['campaign']);
    this.rateWaitSeconds = counter('herald_rate_limit_wait_seconds_total', "Time spent waiting for a campaign's rate limit", ['campaign']);
    this.throttles = counter('herald_webhook_throttled_total', "429 answers from a campaign's webhook receiver", ['campaign']);
    this.reclaims = counter(
      'herald_chunks_reclaimed_total',
      'Chunks taken from a consumer that stopped: its heartbeat lapsed (heartbeat) or it sat idle (idle, XAUTOCLAIM)',
      ['reason'],
    );
    gauge('herald_campaigns_hosted', 'Campaigns with an actor in this process', [], (g) => g.set(this.sources.hosted?.().length ?? 0));
    this.streamLength = gauge('herald_stream_length_chunks', "Entries in a hosted campaign's chunk stream", ['campaign']);
    this.streamLag = gauge('herald_stream_lag_chunks', "Chunks of a hosted campaign's stream not yet read by any consumer", ['campaign']);
    this.streamPending = gauge('herald_stream_pending_chunks', 'Chunks of a hosted campaign read and not yet acknowledged', ['campaign']);
    this.overshootMessages = gauge('herald_pause_overshoot_messages', 'Messages a hosted campaign sent after it was paused', ['campaign']);
    gauge('herald_sink_buffered_rows', 'Event rows held by the sink, not yet in ClickHouse', [], (g) =>
      g.set(this.sources.sinkBufferedRows?.() ?? 0),
    );
    this.sinkInsertedRows = counter('herald_sink_inserted_rows_total', 'Event rows inserted into ClickHouse');
    this.sinkFlushDuration = histogram('herald_sink_flush_duration_seconds', 'Time of one ClickHouse insert that landed', FLUSH_BUCKETS_S);
    this.sinkInsertFailures = counter('herald_sink_insert_failures_total', 'ClickHouse insert attempts that failed (each is retried)');
    this.importsStarted = counter('herald_imports_started_total', 'Recipient imports started here');
    this.importsFinished = counter('herald_imports_finished_total', 'Recipient imports ended here, by outcome', ['outcome']);
    this.importRows = counter('herald_import_rows_total', 'Rows of completed imports: imported, duplicates, rejected', ['kind']);
    gauge('herald_ws_clients', 'WebSocket clients connected', [], (g) => g.set(this.sources.ws?.()?.clients ?? 0));
    gauge('herald_ws_slow_clients', 'WebSocket clients past the backpressure limit now (their frames are skipped)', [], (g) =>
      g.set(this.sources.ws?.()?.slow ?? 0),
    );
    this.wsClosedTotal = counter('herald_ws_closed_total', 'WebSocket clients gone: closed for staying slow (slow), or any other close', [
      'reason',
    ]);
    this.collectFailures = counter('herald_metrics_collect_failures_total', 'Scrape-time reads that failed or timed out, by source', [
      'source',
    ]);
    if (opts.processMetrics !== false) collectDefaultMetrics({ register: this.registry, prefix: 'herald_' });
    // Without scrapes too, finished campaigns' series go.
    this.sweepTimer = setInterval(() => this.sweep(Date.now()), Math.max(100, Math.min(opts.retentionMs, 60_000)));
    this.sweepTimer.unref();
  }

  /** Adds what the registry reads at scrape time (main.ts, as the stages come up). */
  attach(sources: Partial<MetricsSources>): void {
    this.sources = { ...this.sources, ...sources };
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  /** The exposition text: finished campaigns' series removed, the scrape-time series read, then every series. */
  async text(): Promise<string> {
    const hosted = this.sweep(Date.now());
    this.flushOutcomes();
    await this.collectStreams(hosted);
    return this.registry.metrics();
  }

  /** Series labelled by campaign now (for tests and the cardinality bound). */
  campaignsWithSeries(): number[] {
    return [...this.campaigns.keys()];
  }

  close(): void {
    clearInterval(this.sweepTimer);
  }

  // --- DispatchMetrics

  outcomes(campaignId: number, channel: string, counts: OutcomeCounts): void {
    const s = this.series(campaignId);
    let tally = s.messages.get(channel);
    if (tally === undefined) {
      // Every outcome from 0, so rate() and ratios see a series from the campaign's first count on.
      const labels = MESSAGE_OUTCOMES.map((outcome) => ({ campaign: s.label, channel, outcome }));
      for (const l of labels) {
        this.messages.inc(l, 0);
        s.created.push({ metric: this.messages, labels: l });
      }
      s.messages.set(channel, (tally = { labels, pending: new Float64Array(MESSAGE_OUTCOMES.length) }));
    }
    // Plain additions here (a sub-batch's hot path); prom-client's label hashing runs once per scrape.
    for (let i = 0; i < MESSAGE_OUTCOMES.length; i++) {
      const n = counts[MESSAGE_OUTCOMES[i]!];
      if (n !== undefined && n > 0) tally.pending[i]! += n;
    }
  }

  /** Moves the outcome tallies into `herald_messages_total`. */
  private flushOutcomes(): void {
    for (const s of this.campaigns.values()) {
      for (const tally of s.messages.values()) {
        for (let i = 0; i < tally.pending.length; i++) {
          if (tally.pending[i] === 0) continue;
          this.messages.inc(tally.labels[i]!, tally.pending[i]);
          tally.pending[i] = 0;
        }
      }
    }
  }

  sendSeconds(channel: string, seconds: number): void {
    this.sendDuration.observe({ channel }, seconds);
  }

  chunkSeconds(channel: string, seconds: number): void {
    this.chunkDuration.observe({ channel }, seconds);
  }

  rateWait(campaignId: number, seconds: number): void {
    const labels = this.campaignLabels(campaignId, this.rateWaits, this.rateWaitSeconds);
    this.rateWaits.inc(labels);
    this.rateWaitSeconds.inc(labels, seconds);
  }

  throttled(campaignId: number, answers: number): void {
    if (answers <= 0) return;
    this.throttles.inc(this.campaignLabels(campaignId, this.throttles), answers);
  }

  reclaimed(reason: ReclaimReason, chunks: number): void {
    this.reclaims.inc({ reason }, chunks);
  }

  // --- SinkMetrics

  inserted(rows: number, seconds: number): void {
    this.sinkInsertedRows.inc(rows);
    this.sinkFlushDuration.observe(seconds);
  }

  insertFailed(): void {
    this.sinkInsertFailures.inc();
  }

  // --- WsMetrics

  wsClosed(reason: WsCloseReason): void {
    this.wsClosedTotal.inc({ reason });
  }

  // --- ImportMetrics

  importStarted(): void {
    this.importsStarted.inc();
  }

  importFinished(outcome: 'completed' | 'failed', rows: { imported: number; duplicates: number; rejected: number }): void {
    this.importsFinished.inc({ outcome });
    if (outcome !== 'completed') return;
    this.importRows.inc({ kind: 'imported' }, rows.imported);
    this.importRows.inc({ kind: 'duplicates' }, rows.duplicates);
    this.importRows.inc({ kind: 'rejected' }, rows.rejected);
  }

  // --- per-campaign series

  private series(campaignId: number): CampaignSeries {
    let s = this.campaigns.get(campaignId);
    if (s === undefined) {
      s = { label: String(campaignId), touchedAt: 0, messages: new Map(), created: [] };
      this.campaigns.set(campaignId, s);
    }
    s.touchedAt = Date.now();
    return s;
  }

  /** `{campaign}`, noted for removal on each metric the first time it is used. */
  private campaignLabels(campaignId: number, ...metrics: Array<Counter<CampaignLabel>>): Labels {
    const s = this.series(campaignId);
    const labels = { campaign: s.label };
    for (const metric of metrics) if (!s.created.some((c) => c.metric === metric)) s.created.push({ metric, labels });
    return labels;
  }

  /** Removes the series of campaigns not hosted here and not counted for `retentionMs`; returns those hosted. */
  private sweep(now: number): readonly number[] {
    const hosted = this.sources.hosted?.() ?? [];
    const keep = new Set(hosted);
    for (const [id, s] of this.campaigns) {
      if (keep.has(id) || now - s.touchedAt <= this.opts.retentionMs) continue;
      for (const { metric, labels } of s.created) metric.remove(labels);
      this.campaigns.delete(id);
    }
    return hosted;
  }

  /**
   * Hosted campaigns' streams, and the overshoot of every campaign with series (a pause's overshoot is
   * known once its actor has stopped), from Redis, bounded by collectTimeoutMs; on failure those series are
   * left out.
   */
  private async collectStreams(hosted: readonly number[]): Promise<void> {
    const gauges = [this.streamLength, this.streamLag, this.streamPending, this.overshootMessages];
    for (const g of gauges) g.reset();
    const { streams, overshoot } = this.sources;
    const recent = [...new Set([...hosted, ...this.campaigns.keys()])];
    if (recent.length === 0 || streams === undefined || overshoot === undefined) return;
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<'timeout'>((resolve) => (timer = setTimeout(() => resolve('timeout'), this.opts.collectTimeoutMs)));
    try {
      const read = Promise.all([streams(hosted), overshoot(recent)]);
      read.catch(() => undefined);
      const result = await Promise.race([read, timeout]);
      if (result === 'timeout') {
        this.collectFailures.inc({ source: 'redis' });
        return;
      }
      const [byStream, byOvershoot] = result;
      for (const [id, st] of byStream) {
        const labels = { campaign: String(id) };
        this.streamLength.set(labels, st.length);
        if (st.lag !== null) this.streamLag.set(labels, st.lag);
        this.streamPending.set(labels, st.pending);
      }
      for (const [id, n] of byOvershoot) this.overshootMessages.set({ campaign: String(id) }, n);
    } catch {
      this.collectFailures.inc({ source: 'redis' });
    } finally {
      clearTimeout(timer);
    }
  }
}

/** A registry of Herald's series, on its own (see HeraldMetrics). */
export function createMetrics(opts: MetricsOptions): HeraldMetrics {
  return new HeraldMetrics(opts);
}

/**
 * Composition root: the only place that constructs adapters and wires stages together. The command line
 * (src/cli/main.ts) calls `migrate` and `startHerald` for `herald migrate`, `serve` and `worker`
 * (the dispatcher, with only `/healthz` and `/metrics` over HTTP).
 */
import { hostname } from 'node:os';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { pino, type Logger } from 'pino';
import { dbPoolSize, requireApiKeys, sinkBufferedRows, requireSigningKey, tokenSecret, type Config } from './config.js';
import type { ROLES } from './config/schema.js';
import {
  COMPLETION_CHECK_MS,
  eventsLandedMs,
  HEALTH_CHECK_TIMEOUT_MS,
  IMPORT_POOL_END_MS,
  IMPORT_PROGRESS_MS,
  IMPORTS_STOP_MS,
  SINK_CLOSE_MS,
  SPOOL_CLOSE_MS,
  SPOOL_DRAIN_EVENTS,
  SPOOL_DRAIN_MIN_INTERVAL_MS,
  SPOOL_ROTATE_BYTES,
  STREAM_BLOCK_MS,
  TAKEOVER_GRACE_MS,
  CAP_REBUILD_LOCK_MS,
  CAP_REBUILD_WAIT_MS,
  SUPPRESSION_REBUILD_MISSES,
  TOPIC_CAP_TTL_MS,
  KEY_CACHE_MS,
  KEY_TOUCH_MS,
  KEY_CACHE_MAX,
  METRICS_COLLECT_TIMEOUT_MS,
  INSERT_LANDS_MS,
} from './config/timings.js';
import { migrateClickHouse, migratePostgres } from './migrate/migrate.js';
import { createDb, type Db } from './store/db.js';
import { CampaignRepo } from './store/campaign-repo.js';
import { AudienceRepo } from './store/audience-repo.js';
import { ImportRepo } from './store/import-repo.js';
import { ImportJobs } from './import/import-jobs.js';
import { MAX_KEPT_REJECTED } from './domain/import-job.js';
import { RecipientReader } from './store/recipient-reader.js';
import { ReadReplica } from './store/read-replica.js';
import { ClickHouse } from './clickhouse/client.js';
import { Keys } from './stream/keys.js';
import { ChunkProtocol } from './stream/chunk-protocol.js';
import { RedisGateway } from './stream/redis-gateway.js';
import { connectRedis, duplicateRedis, type RedisClient } from './stream/redis-connect.js';
import { announceChanged, announceStatus, listenControl } from './stream/control.js';
import { Planner } from './planner/planner.js';
import { RangeReader } from './planner/range-reader.js';
import { ChannelRegistry } from './channel/channel-registry.js';
import { EventSink } from './sink/event-sink.js';
import { clickhouseInserter } from './sink/clickhouse-inserter.js';
import { CountRepair } from './sink/count-repair.js';
import { SegmentRepo } from './store/segment-repo.js';
import { AttrIndexes, MAX_COUNTED_VALUES } from './store/attr-index.js';
import { RetryRepo } from './store/retry-repo.js';
import { InboxRepo } from './store/inbox-repo.js';
import { InboxReader } from './progress/inbox-reader.js';
import { StatsReader } from './progress/stats-reader.js';
import { ReadRecorder } from './sink/read-recorder.js';
import { ReadSpool } from './sink/read-spool.js';
import { messageTokens } from './domain/tokens.js';
import { ConsentRepo } from './store/consent-repo.js';
import { SuppressionIndex } from './consent/suppression-index.js';
import { CapKeeper } from './consent/cap-keeper.js';
import { ConsentScreen } from './consent/consent-screen.js';
import { CapHistory } from './progress/cap-history.js';
import { SuppressionWriter } from './import/suppression-writer.js';
import { ProgressReader } from './progress/progress-reader.js';
import { OutcomeFilter } from './progress/outcome-filter.js';
import { Dispatcher } from './actor/dispatcher.js';
import { RateLimiter } from './actor/rate-limiter.js';
import { ownershipTrustMs } from './domain/liveness.js';
import { healthChecks, withTimeout } from './health.js';
import { startApi, startOpsApi, type ApiServer } from './api/server.js';
import { createMetrics, type HeraldMetrics } from './metrics/herald-metrics.js';
import { mountWebSocketApi, type WsSetup } from './ws/ws-api.js';
import { LiveCounters } from './progress/live-counters.js';
import { TemplateCache } from './domain/template.js';
import { RecipientLookup } from './store/recipient-lookup.js';
import { CampaignMembership } from './store/campaign-membership.js';
import { RecipientHistory } from './progress/recipient-history.js';
import { TestEventWriter } from './sink/test-event-writer.js';
import { TestSender } from './actor/test-sender.js';
import { KeyRepo } from './store/key-repo.js';
import { AuditRepo } from './store/audit-repo.js';
import { KeyVerifier } from './api/key-verifier.js';
import { reconcileIndexes } from './api/segment-routes.js';

export interface Herald {
  config: Readonly<Config>;
  port: number;
  db: Db;
  /** where audience pages and counts run, and how many ran on each side (store/read-replica.ts) */
  reads: ReadReplica;
  /** one Redis, or a Redis Cluster (REDIS_CLUSTER_NODES) */
  redis: RedisClient;
  /** every Redis script and key (stream/redis-gateway.ts) */
  gateway: RedisGateway;
  ch: ClickHouse;
  sink: EventSink;
  dispatcher: Dispatcher | null;
  /** the full API (`serve`), or a worker's `/healthz` and `/metrics` only */
  api: ApiServer | null;
  /** this process's Prometheus registry (GET /metrics) */
  metrics: HeraldMetrics;
  /** the read spool of this process's API (null without the API) */
  spool: ReadSpool | null;
  /** the API's attribute index builds (null without the API) */
  attrIndexes: AttrIndexes | null;
  log: Logger;
  /** Graceful: stop taking chunks, finish the ones in hand, flush events, close connections. */
  stop(): Promise<void>;
}

/**
 * `all`: the API (HTTP and WebSocket) and the dispatcher; `api`: the API only, for processes in front of
 * `worker`s; `worker`: the dispatcher, with an HTTP listener for `/healthz` and `/metrics` only (no API key
 * needed). HERALD_ROLE picks it for `herald serve`; `herald worker` is `worker`.
 */
export type Role = (typeof ROLES)[number];

export interface StartOptions {
  /** @default cfg.role (HERALD_ROLE, `all` unless set) */
  role?: Role;
  /** false: no HTTP listener at all (tests of the dispatcher alone) */
  api?: boolean;
  dispatcher?: boolean;
  migrate?: boolean;
  logger?: Logger;
}

export async function migrate(cfg: Readonly<Config>): Promise<string[]> {
  return [
    ...(await migratePostgres(cfg.databaseUrl)),
    ...(await migrateClickHouse(cfg.clickhouseUrl, cfg.clickhouseDb, cfg.clickhouseCluster)),
  ];
}

export async function startHerald(cfg: Readonly<Config>, opts: StartOptions = {}): Promise<Herald> {
  const log = opts.logger ?? pino({ level: cfg.logLevel });
  const role = opts.role ?? cfg.role;
  const fullApi = opts.api !== false && role !== 'worker';
  if (fullApi) requireApiKeys(cfg);
  else if (role === 'worker') requireSigningKey(cfg);
  if (opts.migrate !== false) {
    const applied = await migrate(cfg);
    if (applied.length > 0) log.info({ applied }, 'migrations applied');
  }
  const db = createDb(cfg.databaseUrl, dbPoolSize(cfg));
  // Imports hold connections for as long as a body streams in or a merge runs (two each at times): a
  // pool of their own, so uploads never starve the dispatcher and the API.
  const importDb = createDb(cfg.databaseUrl, cfg.importDbPoolSize);
  // The planner's audience pages and the segment and plan counts: on the replica when one is set, once it
  // holds the rows they must see (store/read-replica.ts).
  const readDb = cfg.databaseReadUrl === '' ? null : createDb(cfg.databaseReadUrl, dbPoolSize(cfg));
  const reads = new ReadReplica(db, readDb, { waitMs: cfg.readReplicaWaitMs });
  const redis = connectRedis({ url: cfg.redisUrl, clusterNodes: cfg.redisClusterNodes });
  redis.on('error', (err) => log.warn({ err: err.message }, 'redis connection'));
  const ch = new ClickHouse({ url: cfg.clickhouseUrl, database: cfg.clickhouseDb, cluster: cfg.clickhouseCluster });
  const metrics = createMetrics({ retentionMs: cfg.metricsRetentionMs, collectTimeoutMs: METRICS_COLLECT_TIMEOUT_MS });
  const health = healthChecks({ db, redis, ch, timeoutMs: HEALTH_CHECK_TIMEOUT_MS });
  const keys = new Keys(cfg.redisPrefix);
  const gateway = new RedisGateway(redis, keys, { livenessTtlMs: cfg.livenessTtlMs });
  const protocol = new ChunkProtocol(gateway);
  const campaigns = new CampaignRepo(db, reads);
  const audiences = new AudienceRepo(db);
  const reader = new RecipientReader(db, reads);
  const sink = new EventSink(
    clickhouseInserter(ch, {
      onRecounted: (campaignId, batches) =>
        log.warn({ campaignId, batches }, 'sub-batches stored but not counted (ClickHouse stopped mid-insert): counted again'),
    }),
    {
      flushRows: cfg.sinkFlushRows,
      flushMs: cfg.sinkFlushMs,
      maxBufferedRows: sinkBufferedRows(cfg),
      fence: (campaignId, holder, entryIds) => protocol.fence(campaignId, holder, entryIds),
      fenceValidMs: ownershipTrustMs(cfg.reclaimIdleMs, cfg.livenessTtlMs),
      onError: (err, attempt, failedAt) => {
        // The fence is asked again every 200 ms while Redis is away: its failures are logged now and then.
        if (failedAt === 'clickhouse') log.error({ err: (err as Error).message, attempt }, 'ClickHouse insert failed; retrying');
        else if (attempt % 25 === 1) log.error({ err: (err as Error).message, attempt }, 'event fence failed (Redis); retrying');
      },
      onFenced: (campaignId, entryIds, rows) =>
        log.warn({ campaignId, chunks: entryIds.length, rows }, "events left to the chunks' new holder (taken over)"),
      metrics,
    },
  );
  const secret = tokenSecret(cfg);
  // Tracking URLs point at this process's API unless HERALD_PUBLIC_URL names the public address.
  let listeningPort = cfg.port;
  const publicUrl = (): string =>
    cfg.publicUrl !== ''
      ? cfg.publicUrl
      : `http://${cfg.host === '0.0.0.0' || cfg.host === '::' ? '127.0.0.1' : cfg.host}:${listeningPort}`;
  const channels = new ChannelRegistry({
    batchSize: cfg.webhookBatchSize,
    timeoutMs: cfg.webhookTimeoutMs,
    attempts: cfg.webhookAttempts,
    backoffMs: cfg.webhookBackoffMs,
    connections: cfg.webhookConnections,
    maxInflightBytes: cfg.webhookMaxInflightBytes,
    links: (campaignId, userId, topic) => {
      const t = messageTokens(secret, campaignId, userId, topic);
      const base = publicUrl();
      return { trackingUrl: `${base}/t/${t.tracking}`, unsubscribeUrl: `${base}/u/${t.unsubscribe}` };
    },
  });
  const holderId = `${hostname()}-${process.pid}-${randomBytes(3).toString('hex')}`;
  const consent = new ConsentRepo(db);

  let dispatcher: Dispatcher | null = null;
  let subscriber: RedisClient | null = null;
  if (opts.dispatcher !== false && role !== 'api' && cfg.workers > 0) {
    const dispatchSubscriber = duplicateRedis(redis, 'subscriber');
    subscriber = dispatchSubscriber;
    dispatchSubscriber.on('error', (err) => log.warn({ err: err.message }, 'redis subscriber connection'));
    dispatcher = new Dispatcher({
      gateway,
      protocol,
      control: {
        announce: (id, status, version) => announceStatus(gateway, id, status, version),
        listen: (fn) => listenControl(dispatchSubscriber, keys, fn),
      },
      campaigns,
      planner: new Planner(
        campaigns,
        reader,
        protocol,
        { aheadChunks: cfg.planAheadChunks, aheadRanges: cfg.planAheadRanges, pageRows: cfg.planPageRows },
        new OutcomeFilter(ch),
      ),
      // The consumers' reads leave four of the pool's connections to the poll, the planner and the API.
      ranges: new RangeReader(reader, { maxRows: cfg.planPageRows, concurrency: Math.max(1, dbPoolSize(cfg) - 4) }),
      channels,
      sink,
      rate: new RateLimiter(gateway, metrics),
      metrics,
      countRepair: new CountRepair(ch),
      screen: new ConsentScreen({
        index: new SuppressionIndex({ source: consent, marks: gateway, rebuildAfterMisses: SUPPRESSION_REBUILD_MISSES }),
        caps: new CapKeeper({
          store: gateway,
          history: new CapHistory(ch),
          topicCampaigns: (topic, windowS) => consent.topicCampaigns(topic, windowS),
          holder: holderId,
          landedMs: eventsLandedMs(cfg),
          lockMs: CAP_REBUILD_LOCK_MS,
          waitMs: CAP_REBUILD_WAIT_MS,
        }),
        confirm: (topics, userIds) => consent.confirm(topics, userIds),
        topicCap: async (topic) => (await consent.getTopic(topic))?.cap ?? null,
        topicCapTtlMs: TOPIC_CAP_TTL_MS,
      }),
      log,
      holderId,
      pollMs: cfg.pollMs,
      options: {
        workers: cfg.workers,
        readCount: cfg.readCount,
        reclaimIdleMs: cfg.reclaimIdleMs,
        leaseMs: cfg.leaseMs,
        livenessTtlMs: cfg.livenessTtlMs,
        blockMs: STREAM_BLOCK_MS,
        completionCheckMs: COMPLETION_CHECK_MS,
        subBatchSize: cfg.subBatchSize,
        webhookConcurrency: cfg.webhookConcurrency,
        lostStreamGraceMs: eventsLandedMs(cfg),
        raisedPlanGraceMs: ownershipTrustMs(cfg.reclaimIdleMs, cfg.livenessTtlMs) + INSERT_LANDS_MS,
        takeoverGraceMs: TAKEOVER_GRACE_MS,
      },
    });
    await dispatcher.start();
  }

  let api: ApiServer | null = null;
  let wsSubscriber: RedisClient | null = null;
  let imports: ImportJobs | null = null;
  let suppressions: SuppressionWriter | null = null;
  let readSpool: ReadSpool | null = null;
  let attrIndexes: AttrIndexes | null = null;
  if (fullApi) {
    const importRepo = new ImportRepo(importDb, MAX_KEPT_REJECTED);
    imports = new ImportJobs(importRepo, {
      answerWaitMs: cfg.importAnswerWaitMs,
      sweepMs: cfg.importSweepMs,
      maxImportBytes: cfg.maxImportBytes,
      progressMs: IMPORT_PROGRESS_MS,
      log,
      metrics,
    });
    imports.start();
    const importJobs = imports;
    // An import is when an audience's attribute indexes matter: the first one gives a segment made while
    // the audience was empty its partition to index, and every later one pays for each index it keeps.
    const indexes = new AttrIndexes(db, MAX_COUNTED_VALUES, log);
    attrIndexes = indexes;
    importJobs.watch((job) => {
      if (job.status === 'completed' && (job.imported ?? 0) > 0) reconcileIndexes({ attrIndexes: indexes, log }, job.audienceId);
    });
    // On the long jobs' pool, like imports: a million-line apply never holds a connection the senders'
    // confirmations need.
    suppressions = new SuppressionWriter(new ConsentRepo(importDb), (mark) => gateway.raiseSuppressionMark(mark), {
      answerWaitMs: cfg.importAnswerWaitMs,
      sweepMs: cfg.importSweepMs,
      log,
    });
    suppressions.start();
    const progress = new ProgressReader(ch);
    wsSubscriber = duplicateRedis(redis, 'subscriber');
    wsSubscriber.on('error', (err) => log.warn({ err: err.message }, 'redis progress subscriber connection'));
    const inboxReader = new InboxReader(ch);
    // One cache for the API's routes that render (inbox items, previews, test sends).
    const templates = new TemplateCache();
    const testEvents = new TestEventWriter(ch);
    const deliveries = (campaignId: number, userIds: readonly string[]): ReturnType<InboxReader['deliveries']> =>
      inboxReader.deliveries(campaignId, userIds);
    readSpool = new ReadSpool({
      dir: cfg.spoolDir !== '' ? cfg.spoolDir : path.resolve('.herald', 'spool', cfg.clickhouseDb),
      rotateBytes: SPOOL_ROTATE_BYTES,
      drain: {
        clickhouseUrl: cfg.clickhouseUrl,
        clickhouseDb: cfg.clickhouseDb,
        clickhouseCluster: cfg.clickhouseCluster,
        flushRows: cfg.sinkFlushRows,
        flushMs: cfg.sinkFlushMs,
        maxBufferedRows: sinkBufferedRows(cfg),
        drainEvents: SPOOL_DRAIN_EVENTS,
        drainIntervalMs: Math.max(cfg.sinkFlushMs, SPOOL_DRAIN_MIN_INTERVAL_MS),
        adoptGraceMs: eventsLandedMs(cfg),
        logLevel: cfg.logLevel,
      },
      log,
    });
    await readSpool.open();
    const keyRepo = new KeyRepo(db);
    const keyVerifier = new KeyVerifier({
      bootstrapKeys: cfg.apiKeys,
      source: keyRepo,
      cacheMs: KEY_CACHE_MS,
      touchEveryMs: KEY_TOUCH_MS,
      maxCached: KEY_CACHE_MAX,
      onTouchFailed: (err) => log.warn({ err: (err as Error).message }, 'key last_used_at not written'),
    });
    const authenticate = (authorization: string): ReturnType<KeyVerifier['authenticate']> => keyVerifier.authenticate(authorization);
    const controlSubscriber = wsSubscriber;
    const wsSetup: WsSetup = {
      hub: {
        campaigns,
        progress,
        live: new LiveCounters(gateway),
        listenControl: (fn) => listenControl(controlSubscriber, keys, fn),
        log,
        tickMs: cfg.wsTickMs,
      },
      imports: { jobs: importRepo, tickMs: cfg.wsTickMs, log, watch: (fn) => importJobs.watch(fn) },
      options: { authenticate, tokenSecret: secret, maxBackpressure: cfg.wsMaxBackpressure, slowCloseMs: cfg.wsSlowCloseMs, log, metrics },
    };
    api = await startApi({
      host: cfg.host,
      port: cfg.port,
      mountWs: (app) => mountWebSocketApi(app, wsSetup),
      deps: {
        tokenSecret: secret,
        userTokenTtlS: cfg.userTokenTtlS,
        inbox: new InboxRepo(db),
        inboxReader,
        reads: new ReadRecorder(sink, deliveries),
        spool: readSpool,
        stats: new StatsReader(ch),
        apiKeys: cfg.apiKeys,
        authenticate,
        keys: keyRepo,
        forgetKey: (id) => keyVerifier.forget(id),
        audit: new AuditRepo(db),
        maxBodyBytes: cfg.maxBodyBytes,
        maxImportBytes: cfg.maxImportBytes,
        imports,
        defaultChunkSize: cfg.chunkSize,
        audiences,
        campaigns,
        segments: new SegmentRepo(db, reads),
        attrIndexes: indexes,
        retries: new RetryRepo(db),
        progress,
        publishStatus: async (id, status, version) => {
          await announceStatus(gateway, id, status, version);
        },
        publishChanged: (id) => announceChanged(redis, keys, id),
        overshoot: (ids) => gateway.overshoot(ids),
        templates,
        recipients: new RecipientLookup(db),
        membership: new CampaignMembership(db),
        recipientEvents: new RecipientHistory(ch),
        testSends: new TestSender({ channels, templates, record: (events) => testEvents.record(events) }),
        suppressions,
        consent,
        log,
        health,
        metrics,
        metricsKey: cfg.metricsKey,
      },
    });
    listeningPort = api.port;
    log.info({ port: api.port }, 'Herald API listening');
  } else if (opts.api !== false) {
    api = await startOpsApi({ host: cfg.host, port: cfg.port, deps: { health, metrics, metricsKey: cfg.metricsKey, log } });
    listeningPort = api.port;
    log.info({ port: api.port }, 'Herald worker listening (/healthz, /metrics)');
    // Its links lead to this listener otherwise, which serves neither pixels nor unsubscribes.
    if (cfg.publicUrl === '')
      log.warn('HERALD_PUBLIC_URL is not set: tracking and unsubscribe links would point at this worker, not the API');
  }
  const serving = dispatcher;
  const apiNow = api;
  metrics.attach({
    hosted: () => serving?.hosted().map((a) => a.id) ?? [],
    streams: (ids) => protocol.streamStats(ids),
    overshoot: (ids) => gateway.overshoot(ids),
    sinkBufferedRows: () => sink.stats.bufferedRows,
    ws: () => apiNow?.wsStats() ?? null,
  });

  let stopping: Promise<void> | null = null;
  return {
    config: cfg,
    port: api?.port ?? 0,
    db,
    reads,
    redis,
    gateway,
    ch,
    sink,
    dispatcher,
    api,
    metrics,
    spool: readSpool,
    attrIndexes,
    log,
    stop() {
      stopping ??= (async () => {
        await api?.close();
        wsSubscriber?.disconnect();
        // Side by side, so none eats the others' share of the shutdown grace: what is cut short is
        // picked up again (a merge rolls back and is resumed, a spool file is adopted, a chunk reclaimed).
        await Promise.all([
          imports?.stop(IMPORTS_STOP_MS),
          suppressions?.stop(IMPORTS_STOP_MS),
          readSpool?.close(SPOOL_CLOSE_MS),
          dispatcher?.stop(),
        ]);
        await withTimeout(sink.close(), SINK_CLOSE_MS).catch((err: unknown) => log.error({ err }, 'event flush at shutdown failed'));
        await channels.close();
        subscriber?.disconnect();
        redis.disconnect();
        await ch.close();
        metrics.close();
        await db.end();
        await readDb?.end();
        await withTimeout(importDb.end(), IMPORT_POOL_END_MS).catch(() => undefined);
      })();
      return stopping;
    },
  };
}

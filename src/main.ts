/**
 * Composition root: the only place that constructs adapters and wires stages together.
 *   herald migrate   apply PostgreSQL and ClickHouse migrations
 *   herald serve     migrate, then run the HTTP API and the dispatcher in this process
 *   herald config    print every setting: variable, resolved value (secrets redacted), default, source
 */
import { hostname } from 'node:os';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { Redis } from 'ioredis';
import { pino, type Logger } from 'pino';
import { dbPoolSize, loadConfig, readConfig, requireApiKeys, tokenSecret, type Config } from './config.js';
import { configReport, formatConfigReport } from './config/report.js';
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
} from './config/timings.js';
import { isHeraldError } from './errors.js';
import { migrateClickHouse, migratePostgres } from './migrate/migrate.js';
import { createDb, type Db } from './store/db.js';
import { CampaignRepo } from './store/campaign-repo.js';
import { AudienceRepo } from './store/audience-repo.js';
import { ImportRepo } from './store/import-repo.js';
import { ImportJobs } from './import/import-jobs.js';
import { MAX_KEPT_REJECTED } from './domain/import-job.js';
import { RecipientReader } from './store/recipient-reader.js';
import { ClickHouse } from './clickhouse/client.js';
import { Keys } from './stream/keys.js';
import { ChunkProtocol } from './stream/chunk-protocol.js';
import { RedisGateway } from './stream/redis-gateway.js';
import { announceChanged, announceStatus, listenControl } from './stream/control.js';
import { Planner } from './planner/planner.js';
import { ChannelRegistry } from './channel/channel-registry.js';
import { EventSink } from './sink/event-sink.js';
import { clickhouseInserter } from './sink/clickhouse-inserter.js';
import { SegmentRepo } from './store/segment-repo.js';
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
import { startApi, type ApiServer } from './api/server.js';
import { mountWebSocketApi, type WsSetup } from './ws/ws-api.js';
import { LiveCounters } from './progress/live-counters.js';
import { TemplateCache } from './domain/template.js';
import { RecipientLookup } from './store/recipient-lookup.js';
import { TestEventWriter } from './sink/test-event-writer.js';
import { TestSender } from './actor/test-sender.js';

export interface Herald {
  config: Readonly<Config>;
  port: number;
  db: Db;
  redis: Redis;
  /** every Redis script and key (stream/redis-gateway.ts) */
  gateway: RedisGateway;
  ch: ClickHouse;
  sink: EventSink;
  dispatcher: Dispatcher | null;
  api: ApiServer | null;
  /** the read spool of this process's API (null without the API) */
  spool: ReadSpool | null;
  log: Logger;
  /** Graceful: stop taking chunks, finish the ones in hand, flush events, close connections. */
  stop(): Promise<void>;
}

export interface StartOptions {
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
  if (opts.api !== false) requireApiKeys(cfg);
  if (opts.migrate !== false) {
    const applied = await migrate(cfg);
    if (applied.length > 0) log.info({ applied }, 'migrations applied');
  }
  const db = createDb(cfg.databaseUrl, dbPoolSize(cfg));
  // Imports hold connections for as long as a body streams in or a merge runs (two each at times): a
  // pool of their own, so uploads never starve the dispatcher and the API.
  const importDb = createDb(cfg.databaseUrl, cfg.importDbPoolSize);
  const redis = new Redis(cfg.redisUrl, { maxRetriesPerRequest: null, lazyConnect: false });
  redis.on('error', (err) => log.warn({ err: err.message }, 'redis connection'));
  const ch = new ClickHouse({ url: cfg.clickhouseUrl, database: cfg.clickhouseDb, cluster: cfg.clickhouseCluster });
  const keys = new Keys(cfg.redisPrefix);
  const gateway = new RedisGateway(redis, keys, { livenessTtlMs: cfg.livenessTtlMs });
  const protocol = new ChunkProtocol(gateway);
  const campaigns = new CampaignRepo(db);
  const audiences = new AudienceRepo(db);
  const reader = new RecipientReader(db);
  const sink = new EventSink(clickhouseInserter(ch), {
    flushRows: cfg.sinkFlushRows,
    flushMs: cfg.sinkFlushMs,
    maxBufferedRows: cfg.sinkMaxBufferedRows,
    fence: (campaignId, holder, entryIds) => protocol.fence(campaignId, holder, entryIds),
    fenceValidMs: ownershipTrustMs(cfg.reclaimIdleMs, cfg.livenessTtlMs),
    onError: (err, attempt) => log.error({ err: (err as Error).message, attempt }, 'ClickHouse insert failed; retrying'),
    onFenced: (campaignId, entryIds, rows) =>
      log.warn({ campaignId, chunks: entryIds.length, rows }, "events left to the chunks' new holder (taken over)"),
  });
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
  let subscriber: Redis | null = null;
  if (opts.dispatcher !== false && cfg.workers > 0) {
    // No ready check on subscribers: ioredis (5.8.2 and later, redis/ioredis#2037) may send its INFO after a
    // queued SUBSCRIBE, which Redis refuses in subscriber mode, and the connection then errors and reconnects.
    const dispatchSubscriber = redis.duplicate({ enableReadyCheck: false });
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
        { aheadChunks: cfg.planAheadChunks, pageRows: cfg.planPageRows },
        new OutcomeFilter(ch),
      ),
      channels,
      sink,
      rate: new RateLimiter(gateway),
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
        takeoverGraceMs: TAKEOVER_GRACE_MS,
      },
    });
    await dispatcher.start();
  }

  let api: ApiServer | null = null;
  let wsSubscriber: Redis | null = null;
  let imports: ImportJobs | null = null;
  let readSpool: ReadSpool | null = null;
  if (opts.api !== false) {
    const importRepo = new ImportRepo(importDb, MAX_KEPT_REJECTED);
    imports = new ImportJobs(importRepo, {
      answerWaitMs: cfg.importAnswerWaitMs,
      sweepMs: cfg.importSweepMs,
      maxImportBytes: cfg.maxImportBytes,
      progressMs: IMPORT_PROGRESS_MS,
      log,
    });
    imports.start();
    const importJobs = imports;
    const progress = new ProgressReader(ch);
    wsSubscriber = redis.duplicate({ enableReadyCheck: false }); // see dispatchSubscriber
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
        maxBufferedRows: cfg.sinkMaxBufferedRows,
        drainEvents: SPOOL_DRAIN_EVENTS,
        drainIntervalMs: Math.max(cfg.sinkFlushMs, SPOOL_DRAIN_MIN_INTERVAL_MS),
        adoptGraceMs: eventsLandedMs(cfg),
        logLevel: cfg.logLevel,
      },
      log,
    });
    await readSpool.open();
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
      options: { apiKeys: cfg.apiKeys, tokenSecret: secret, maxBackpressure: cfg.wsMaxBackpressure, slowCloseMs: cfg.wsSlowCloseMs, log },
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
        maxBodyBytes: cfg.maxBodyBytes,
        maxImportBytes: cfg.maxImportBytes,
        imports,
        defaultChunkSize: cfg.chunkSize,
        audiences,
        campaigns,
        segments: new SegmentRepo(db),
        retries: new RetryRepo(db),
        progress,
        publishStatus: async (id, status, version) => {
          await announceStatus(gateway, id, status, version);
        },
        publishChanged: (id) => announceChanged(redis, keys, id),
        overshoot: (ids) => gateway.overshoot(ids),
        templates,
        recipients: new RecipientLookup(db),
        testSends: new TestSender({ channels, templates, record: (events) => testEvents.record(events) }),
        suppressions: new SuppressionWriter(consent, (mark) => gateway.raiseSuppressionMark(mark)),
        consent,
        log,
        health: healthChecks({ db, redis, ch, timeoutMs: HEALTH_CHECK_TIMEOUT_MS }),
      },
    });
    listeningPort = api.port;
    log.info({ port: api.port }, 'Herald API listening');
  }

  let stopping: Promise<void> | null = null;
  return {
    config: cfg,
    port: api?.port ?? 0,
    db,
    redis,
    gateway,
    ch,
    sink,
    dispatcher,
    api,
    spool: readSpool,
    log,
    stop() {
      stopping ??= (async () => {
        await api?.close();
        wsSubscriber?.disconnect();
        // Side by side, so none eats the others' share of the shutdown grace: what is cut short is
        // picked up again (a merge rolls back and is resumed, a spool file is adopted, a chunk reclaimed).
        await Promise.all([imports?.stop(IMPORTS_STOP_MS), readSpool?.close(SPOOL_CLOSE_MS), dispatcher?.stop()]);
        await withTimeout(sink.close(), SINK_CLOSE_MS).catch((err: unknown) => log.error({ err }, 'event flush at shutdown failed'));
        await channels.close();
        subscriber?.disconnect();
        redis.disconnect();
        await ch.close();
        await db.end();
        await withTimeout(importDb.end(), IMPORT_POOL_END_MS).catch(() => undefined);
      })();
      return stopping;
    },
  };
}

const USAGE = 'usage: herald serve | herald migrate | herald config [--json]';

/** `herald config [--json]`: every setting as this environment resolves it; exit 1 naming every bad value. */
function printConfig(args: readonly string[]): number {
  const json = args.includes('--json');
  const unknown = args.find((a) => a !== '--json');
  if (unknown !== undefined) {
    console.error(`herald config: unknown option "${unknown}"\n${USAGE}`);
    return 2;
  }
  const reading = readConfig();
  if (reading.errors.length > 0) {
    console.error(['herald: invalid configuration', ...reading.errors.map((e) => `  ${e.field} ${e.error}`)].join('\n'));
    return 1;
  }
  if (reading.config.apiKeys.length === 0) console.error('herald: HERALD_API_KEYS is not set; herald serve refuses to start without it');
  const report = configReport(reading);
  console.log(json ? JSON.stringify(report, null, 2) : formatConfigReport(report));
  return 0;
}

async function cli(argv: string[]): Promise<void> {
  const command = argv[0] ?? 'serve';
  if (command === 'config') {
    process.exitCode = printConfig(argv.slice(1));
    return;
  }
  const cfg = loadConfig();
  if (command === 'migrate') {
    const applied = await migrate(cfg);
    console.log(applied.length === 0 ? 'migrations: up to date' : `migrations applied: ${applied.join(', ')}`);
    return;
  }
  if (command !== 'serve') {
    console.error(`herald: unknown command "${command}"\n${USAGE}`);
    process.exit(2);
  }
  const herald = await startHerald(cfg);
  const shutdown = (signal: string): void => {
    herald.log.info({ signal, graceMs: cfg.shutdownGraceMs }, 'shutting down');
    // Chunks not finished by then stay pending in their stream and are reclaimed by another process.
    setTimeout(() => {
      herald.log.error('shutdown grace period over; exiting with work in hand');
      process.exit(1);
    }, cfg.shutdownGraceMs).unref();
    herald.stop().then(
      () => process.exit(0),
      () => process.exit(1),
    );
  };
  process.once('SIGTERM', () => shutdown('SIGTERM'));
  process.once('SIGINT', () => shutdown('SIGINT'));
}

if (process.argv[1] !== undefined && fileURLToPath(import.meta.url) === process.argv[1]) {
  cli(process.argv.slice(2)).catch((err: unknown) => {
    console.error(isHeraldError(err) ? `herald: ${err.message}` : err);
    process.exit(1);
  });
}

/**
 * Composition root: the only place that constructs adapters and wires stages together.
 *   herald migrate   apply PostgreSQL and ClickHouse migrations
 *   herald serve     migrate, then run the HTTP API and the dispatcher in this process
 */
import { hostname } from 'node:os';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { Redis } from 'ioredis';
import { pino, type Logger } from 'pino';
import { loadConfig, requireApiKeys, tokenSecret, type Config } from './config.js';
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
import { ChunkStream } from './stream/chunk-stream.js';
import { announceChanged, announceStatus, listenControl } from './stream/control.js';
import { Planner } from './planner/planner.js';
import { ChannelRegistry } from './channel/channel-registry.js';
import { EventSink } from './sink/event-sink.js';
import { clickhouseInserter } from './sink/clickhouse-inserter.js';
import { RetryRepo } from './store/retry-repo.js';
import { InboxRepo } from './store/inbox-repo.js';
import { InboxReader } from './progress/inbox-reader.js';
import { StatsReader } from './progress/stats-reader.js';
import { ReadRecorder } from './sink/read-recorder.js';
import { ReadSpool } from './sink/read-spool.js';
import { trackingToken } from './domain/tokens.js';
import { ProgressReader } from './progress/progress-reader.js';
import { OutcomeFilter } from './progress/outcome-filter.js';
import { Dispatcher } from './actor/dispatcher.js';
import { RateLimiter } from './actor/rate-limiter.js';
import { Ledger } from './actor/ledger.js';
import { livenessTimings } from './domain/liveness.js';
import { startApi, type ApiServer } from './api/server.js';
import { mountWebSocketApi, type WsSetup } from './ws/ws-api.js';
import { LiveCounters } from './progress/live-counters.js';

export interface Herald {
  config: Readonly<Config>;
  port: number;
  db: Db;
  redis: Redis;
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
  return [...(await migratePostgres(cfg.databaseUrl)), ...(await migrateClickHouse(cfg.clickhouseUrl, cfg.clickhouseDb))];
}

function withTimeout<T>(p: Promise<T>, ms: number): Promise<T> {
  return Promise.race([p, new Promise<T>((_, reject) => setTimeout(() => reject(new Error(`no answer in ${ms} ms`)), ms).unref())]);
}

export async function startHerald(cfg: Readonly<Config>, opts: StartOptions = {}): Promise<Herald> {
  const log = opts.logger ?? pino({ level: cfg.logLevel });
  if (opts.api !== false) requireApiKeys(cfg);
  if (opts.migrate !== false) {
    const applied = await migrate(cfg);
    if (applied.length > 0) log.info({ applied }, 'migrations applied');
  }
  const db = createDb(cfg.databaseUrl, 4 + cfg.workers * 2);
  // Imports hold connections for as long as a body streams in or a merge runs (two each at times): a
  // pool of their own, so uploads never starve the dispatcher and the API.
  const importDb = createDb(cfg.databaseUrl, 6);
  const redis = new Redis(cfg.redisUrl, { maxRetriesPerRequest: null, lazyConnect: false });
  redis.on('error', (err) => log.warn({ err: err.message }, 'redis connection'));
  const ch = new ClickHouse({ url: cfg.clickhouseUrl, database: cfg.clickhouseDb });
  const keys = new Keys(cfg.redisPrefix);
  const stream = new ChunkStream(redis, keys, { livenessTtlMs: cfg.livenessTtlMs });
  const campaigns = new CampaignRepo(db);
  const audiences = new AudienceRepo(db);
  const reader = new RecipientReader(db);
  const sink = new EventSink(clickhouseInserter(ch), {
    flushRows: cfg.sinkFlushRows,
    flushMs: cfg.sinkFlushMs,
    maxBufferedRows: cfg.sinkMaxBufferedRows,
    fence: (campaignId, holder, entryIds) => stream.fence(campaignId, holder, entryIds),
    fenceValidMs: Math.min(Math.max(50, Math.floor(cfg.reclaimIdleMs / 3)), livenessTimings(cfg.livenessTtlMs).trustMs),
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
    trackingUrl: (campaignId, userId) => `${publicUrl()}/t/${trackingToken(secret, campaignId, userId)}`,
  });
  const holderId = `${hostname()}-${process.pid}-${randomBytes(3).toString('hex')}`;

  let dispatcher: Dispatcher | null = null;
  let subscriber: Redis | null = null;
  if (opts.dispatcher !== false && cfg.workers > 0) {
    subscriber = redis.duplicate();
    subscriber.on('error', (err) => log.warn({ err: err.message }, 'redis subscriber connection'));
    dispatcher = new Dispatcher({
      redis,
      subscriber,
      keys,
      stream,
      campaigns,
      planner: new Planner(
        campaigns,
        reader,
        stream,
        { aheadChunks: cfg.planAheadChunks, pageRows: cfg.planPageRows },
        new OutcomeFilter(ch),
      ),
      channels,
      sink,
      rate: new RateLimiter(redis, keys),
      ledger: new Ledger(redis, keys, { livenessTtlMs: cfg.livenessTtlMs }),
      log,
      holderId,
      pollMs: cfg.pollMs,
      options: {
        workers: cfg.workers,
        readCount: cfg.readCount,
        reclaimIdleMs: cfg.reclaimIdleMs,
        leaseMs: cfg.leaseMs,
        livenessTtlMs: cfg.livenessTtlMs,
        blockMs: 250,
        completionCheckMs: 50,
        subBatchSize: cfg.subBatchSize,
        webhookConcurrency: cfg.webhookConcurrency,
        lostStreamGraceMs: cfg.sinkFlushMs * 2 + 1000,
        // an insert on the wire when its process died is stored within this (100k rows: 0.1-0.5 s here)
        takeoverGraceMs: 1000,
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
      progressMs: 1000,
      log,
    });
    imports.start();
    const importJobs = imports;
    const progress = new ProgressReader(ch);
    wsSubscriber = redis.duplicate();
    wsSubscriber.on('error', (err) => log.warn({ err: err.message }, 'redis progress subscriber connection'));
    const inboxReader = new InboxReader(ch);
    const deliveries = (campaignId: number, userIds: readonly string[]): ReturnType<InboxReader['deliveries']> =>
      inboxReader.deliveries(campaignId, userIds);
    readSpool = new ReadSpool({
      dir: cfg.spoolDir !== '' ? cfg.spoolDir : path.resolve('.herald', 'spool', cfg.clickhouseDb),
      rotateBytes: 64 << 20,
      drain: {
        clickhouseUrl: cfg.clickhouseUrl,
        clickhouseDb: cfg.clickhouseDb,
        flushRows: cfg.sinkFlushRows,
        flushMs: cfg.sinkFlushMs,
        maxBufferedRows: cfg.sinkMaxBufferedRows,
        drainEvents: 50_000,
        drainIntervalMs: Math.max(cfg.sinkFlushMs, 250),
        // an insert the dead process had in flight lands within its flush interval and timeout
        adoptGraceMs: 2 * cfg.sinkFlushMs + 1000,
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
        live: new LiveCounters(redis, keys),
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
        retries: new RetryRepo(db),
        progress,
        publishStatus: async (id, status, version) => {
          await announceStatus(redis, keys, id, status, version);
        },
        publishChanged: (id) => announceChanged(redis, keys, id),
        overshoot: async (ids) => {
          const out = new Map<number, number>();
          if (ids.length === 0) return out;
          const values = await redis.mget(ids.map((id) => keys.overshoot(id)));
          ids.forEach((id, i) => out.set(id, Number(values[i] ?? 0)));
          return out;
        },
        log,
        health: async () => {
          const check = async (name: string, fn: () => Promise<unknown>): Promise<[string, string]> => {
            try {
              await withTimeout(fn(), 2000);
              return [name, 'ok'];
            } catch (err) {
              return [name, (err as Error).message || 'unreachable'];
            }
          };
          const results = await Promise.all([
            check('postgres', () => db.query('SELECT 1')),
            check('redis', () => redis.ping()),
            check('clickhouse', async () => {
              if (!(await ch.ping())) throw new Error('ping failed');
            }),
          ]);
          return Object.fromEntries(results);
        },
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
        await Promise.all([imports?.stop(10_000), readSpool?.close(10_000), dispatcher?.stop()]);
        await withTimeout(sink.close(), 30_000).catch((err: unknown) => log.error({ err }, 'event flush at shutdown failed'));
        await channels.close();
        subscriber?.disconnect();
        redis.disconnect();
        await ch.close();
        await db.end();
        await withTimeout(importDb.end(), 5_000).catch(() => undefined);
      })();
      return stopping;
    },
  };
}

async function cli(argv: string[]): Promise<void> {
  const command = argv[0] ?? 'serve';
  const cfg = loadConfig();
  if (command === 'migrate') {
    const applied = await migrate(cfg);
    console.log(applied.length === 0 ? 'migrations: up to date' : `migrations applied: ${applied.join(', ')}`);
    return;
  }
  if (command !== 'serve') {
    console.error(`herald: unknown command "${command}"\nusage: herald serve | herald migrate`);
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

/**
 * Every setting Herald reads from the environment, once: its key in `Config`, variable, kind, default,
 * range and one line of documentation. `loadConfig` (config.ts), the README's settings table
 * (`npm run docs:settings`) and `herald config` are all produced from this table, so a setting added
 * here is parsed, validated, typed and documented at once. Boot errors name settings in this order.
 */
import { MAX_WEBHOOK_CONCURRENCY } from '../domain/campaign-input.js';
import { hostPorts, int, list, oneOf, str, url } from './settings.js';

const HOUR_MS = 3_600_000;

export const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'] as const;
/** What a process runs (main.ts Role): everything, the API only, or the dispatcher only. */
export const ROLES = ['all', 'api', 'worker'] as const;

export const SCHEMA = {
  // Services
  databaseUrl: url({
    env: 'DATABASE_URL',
    default: 'postgres://postgres@127.0.0.1:5432/postgres',
    protocols: ['postgres:', 'postgresql:'],
    doc: 'PostgreSQL; the database is created if missing',
  }),
  databaseReadUrl: url({
    env: 'DATABASE_READ_URL',
    default: '',
    protocols: ['postgres:', 'postgresql:'],
    defaultDoc: '— (every read on `DATABASE_URL`)',
    doc: "a PostgreSQL read replica of `DATABASE_URL`: the planner's audience pages and the segment and plan counts run there once it holds their rows (see `HERALD_READ_REPLICA_WAIT_MS`); everything else runs on `DATABASE_URL` (a pool of `HERALD_DB_POOL_SIZE` connections to each)",
  }),
  readReplicaWaitMs: int({
    env: 'HERALD_READ_REPLICA_WAIT_MS',
    default: 10_000,
    min: 0,
    max: HOUR_MS,
    doc: 'how long a read waits for a lagging `DATABASE_READ_URL` to hold the recipients it must see (those committed when the plan or count began) before it runs on `DATABASE_URL`',
  }),
  redisUrl: url({ env: 'REDIS_URL', default: 'redis://127.0.0.1:6379', protocols: ['redis:', 'rediss:'], doc: 'Redis 7' }),
  redisClusterNodes: hostPorts({
    env: 'REDIS_CLUSTER_NODES',
    default: [],
    defaultDoc: '— (one Redis at `REDIS_URL`)',
    doc: "a Redis Cluster's nodes (some are enough: the rest are discovered); when set, Herald uses the cluster and REDIS_URL only for its user name and password",
  }),
  clickhouseUrl: url({
    env: 'CLICKHOUSE_URL',
    default: 'http://127.0.0.1:8123',
    protocols: ['http:', 'https:'],
    doc: 'ClickHouse HTTP interface',
  }),
  dbPoolSize: int({
    env: 'HERALD_DB_POOL_SIZE',
    default: 0,
    min: 0,
    max: 1000,
    defaultDoc: '`0`: 4 + 2 × `HERALD_WORKERS`',
    doc: 'PostgreSQL connections of the dispatcher and the API in this process; 0: 4, plus 2 per consumer',
  }),
  importDbPoolSize: int({
    env: 'HERALD_IMPORT_DB_POOL_SIZE',
    default: 6,
    min: 1,
    max: 1000,
    doc: 'PostgreSQL connections of recipient imports: a pool of their own, so uploads never starve the dispatcher and the API (an import holds up to two while its body streams in or its merge runs)',
  }),

  // HTTP API
  host: str({ env: 'HERALD_HOST', default: '0.0.0.0', range: 'host name or address', doc: 'HTTP listener address' }),
  port: int({ env: 'HERALD_PORT', default: 8080, min: 0, max: 65535, doc: 'HTTP listener port (0: any free port)' }),
  apiKeys: list({
    env: 'HERALD_API_KEYS',
    default: [],
    item: 'key',
    minLength: 8,
    secret: true,
    defaultDoc: '— (required)',
    doc: 'bearer keys for the admin API; `herald serve` refuses to start without one, since an open admin API would let anyone message every user',
  }),
  secret: str({
    env: 'HERALD_SECRET',
    default: '',
    pattern: /^.{16,}$/s,
    error: 'must be at least 16 characters',
    range: '16+ characters',
    secret: true,
    defaultDoc: 'derived from `HERALD_API_KEYS`',
    doc: 'signs user and tracking tokens; set it when several processes or key rotations must accept the same tokens (changing the keys otherwise invalidates every token)',
  }),
  userTokenTtlS: int({
    env: 'HERALD_USER_TOKEN_TTL_S',
    default: 86_400,
    min: 60,
    max: 366 * 86_400,
    doc: 'lifetime of a user token minted by `POST /v1/users/:id/token`, in seconds',
  }),
  publicUrl: url({
    env: 'HERALD_PUBLIC_URL',
    default: '',
    protocols: ['http:', 'https:'],
    trimSlash: true,
    defaultDoc: '`http://<host>:<port>` of the API',
    doc: "base of the `tracking_url` in webhook messages; set it to the address users' clients reach",
  }),
  maxBodyBytes: int({
    env: 'HERALD_MAX_BODY_BYTES',
    default: 1 << 20,
    min: 1024,
    max: 2 ** 31,
    doc: 'JSON request body limit in bytes (413 above)',
  }),
  maxImportBytes: int({
    env: 'HERALD_MAX_IMPORT_BYTES',
    default: 2 ** 31,
    min: 1024,
    max: 2 ** 40,
    doc: 'recipient import body limit in bytes, as received and decompressed; streamed, so it costs no memory (413 above)',
  }),
  importAnswerWaitMs: int({
    env: 'HERALD_IMPORT_ANSWER_WAIT_MS',
    default: 5000,
    min: 0,
    // well under uWebSockets.js's ~10 s idle timeout, which would close the connection unanswered
    max: 8000,
    doc: "an import request waits this long for its merge, and a bulk suppression request for its apply, before answering 202 with the job or batch (at most 8000, under uWebSockets.js's idle timeout)",
  }),
  importSweepMs: int({
    env: 'HERALD_IMPORT_SWEEP_MS',
    default: 5000,
    min: 100,
    max: HOUR_MS,
    doc: 'how often a process looks for import jobs and suppression batches left by a stopped process, and resumes them',
  }),

  // Dispatch
  workers: int({
    env: 'HERALD_WORKERS',
    default: 2,
    min: 0,
    max: 256,
    doc: 'consumers per campaign in this process (0 = API only)',
  }),
  chunkSize: int({
    env: 'HERALD_CHUNK_SIZE',
    default: 500,
    min: 1,
    max: 100_000,
    doc: 'recipients per chunk when a campaign does not say',
  }),
  pollMs: int({
    env: 'HERALD_POLL_MS',
    default: 1000,
    min: 10,
    max: HOUR_MS,
    doc: 'how often a dispatcher polls PostgreSQL for campaigns to host (pub/sub wakes it sooner)',
  }),
  reclaimIdleMs: int({
    env: 'HERALD_RECLAIM_IDLE_MS',
    default: 30_000,
    min: 100,
    max: 24 * HOUR_MS,
    doc: 'a chunk pending this long on a consumer is taken over by the owner (the backstop for holders with no heartbeat); a live consumer touches its chunks every third of it',
  }),
  leaseMs: int({
    env: 'HERALD_LEASE_MS',
    default: 10_000,
    min: 300,
    max: HOUR_MS,
    doc: "campaign ownership lease, renewed every third of it (taken at once when its holder's heartbeat lapses)",
  }),
  livenessTtlMs: int({
    env: 'HERALD_LIVENESS_TTL_MS',
    default: 3_000,
    min: 300,
    max: 600_000,
    zeroOff: true,
    doc: "a process's heartbeat in each campaign it sends, renewed every sixth of it; once it lapses, the process's chunks and lease are taken over at once. A stall shorter than 5/6 of it loses nothing; 0 turns it off (then a dead process's chunks wait for `HERALD_RECLAIM_IDLE_MS`, its lease for `HERALD_LEASE_MS`)",
  }),
  readCount: int({
    env: 'HERALD_READ_COUNT',
    default: 64,
    min: 1,
    max: 1000,
    doc: "chunks per XREADGROUP, whose recipients are read in one PostgreSQL query; an instant channel's (null, inbox) without a rate limit are sent side by side, their ledger steps in one Redis round trip",
  }),
  subBatchSize: int({
    env: 'HERALD_SUBBATCH_SIZE',
    default: 100,
    min: 1,
    max: 100_000,
    doc: "recipients per channel call, one webhook POST up to `HERALD_WEBHOOK_BATCH_SIZE`; pause and ledger steps happen between a chunk's sub-batches (the null channel sends a chunk at once)",
  }),
  planAheadChunks: int({
    env: 'HERALD_PLAN_AHEAD_CHUNKS',
    default: 1200,
    min: 1,
    max: 1_000_000,
    doc: "a re-plan's chunks (which carry their recipients) in Redis, planned and not yet done, before the planner waits; above what the sink holds unacknowledged (two 100k-row batches), or the planner waits on ClickHouse",
  }),
  planAheadRanges: int({
    env: 'HERALD_PLAN_AHEAD_RANGES',
    default: 20_000,
    min: 1,
    max: 1_000_000,
    doc: "a plan's chunks in Redis (planned, not yet done) before the planner waits: each is a range of ids (about 60 bytes), whose recipients the consumer that sends it reads; 20,000 are 10M recipients of 500",
  }),
  planPageRows: int({
    env: 'HERALD_PLAN_PAGE_ROWS',
    default: 100_000,
    min: 1,
    max: 1_000_000,
    doc: "recipients per read of an audience's rows: what a consumer reads at once for the chunks it is handed (it takes no more chunks than that), and a re-plan's page",
  }),

  // Events to ClickHouse
  sinkFlushRows: int({
    env: 'HERALD_SINK_FLUSH_ROWS',
    default: 100_000,
    min: 1,
    max: 10_000_000,
    doc: 'ClickHouse insert batch size in rows; one insert is in flight while the next batch fills',
  }),
  sinkFlushMs: int({
    env: 'HERALD_SINK_FLUSH_MS',
    default: 200,
    min: 1,
    max: 600_000,
    doc: 'a partial batch is inserted after this long',
  }),
  sinkMaxBufferedRows: int({
    env: 'HERALD_SINK_MAX_BUFFERED_ROWS',
    default: 0,
    min: 0,
    max: 100_000_000,
    defaultDoc: '`0`: 2 × `HERALD_SINK_FLUSH_ROWS`',
    // Two batches: one being inserted while the next fills. More only holds rows in memory while
    // ClickHouse is the slower side (at 10M: peak RSS 194-198 MB at 200,000, 215-217 MB at 400,000,
    // the same rate within the runs' noise; bench/README.md).
    doc: 'unwritten rows before senders wait, so memory stays bounded when ClickHouse is slow (at least `HERALD_SINK_FLUSH_ROWS`); 0: two batches',
  }),

  // Webhook channel
  webhookBatchSize: int({
    env: 'HERALD_WEBHOOK_BATCH_SIZE',
    default: 100,
    min: 1,
    max: 10_000,
    doc: 'messages per webhook POST',
  }),
  webhookTimeoutMs: int({
    env: 'HERALD_WEBHOOK_TIMEOUT_MS',
    default: 10_000,
    min: 10,
    max: 600_000,
    doc: 'per webhook request',
  }),
  webhookAttempts: int({
    env: 'HERALD_WEBHOOK_ATTEMPTS',
    default: 4,
    min: 1,
    max: 100,
    doc: 'tries for 5xx / timeouts before a message fails',
  }),
  webhookBackoffMs: int({
    env: 'HERALD_WEBHOOK_BACKOFF_MS',
    default: 200,
    min: 0,
    max: 600_000,
    doc: 'first retry delay, doubled each try (with jitter)',
  }),
  webhookConcurrency: int({
    env: 'HERALD_WEBHOOK_CONCURRENCY',
    default: 64,
    min: 1,
    max: MAX_WEBHOOK_CONCURRENCY,
    doc: "chunks, so requests, in flight per webhook campaign in each process; a campaign's `channel.concurrency` overrides it. With 100-message requests, 64 allow 64,000 messages/s to a receiver answering in 100 ms, 320,000/s at 20 ms",
  }),
  webhookMaxInflightBytes: int({
    env: 'HERALD_WEBHOOK_MAX_INFLIGHT_BYTES',
    default: 16 << 20,
    min: 1024,
    max: 2 ** 32,
    doc: 'request body bytes in flight per webhook campaign in each process; past it requests wait (one larger than the budget goes alone), so large messages to a slow receiver cannot fill memory',
  }),
  webhookConnections: int({
    env: 'HERALD_WEBHOOK_CONNECTIONS',
    default: 0,
    min: 0,
    max: 10_000,
    doc: 'keep-alive sockets per webhook origin; 0: no cap (one per request in flight); a cap below the concurrency makes requests queue for a socket',
  }),

  // Live progress over WebSocket
  wsTickMs: int({
    env: 'HERALD_WS_TICK_MS',
    default: 1000,
    min: 50,
    max: 60_000,
    doc: 'how often live progress frames are computed and published',
  }),
  wsMaxBackpressure: int({
    env: 'HERALD_WS_MAX_BACKPRESSURE',
    default: 1 << 20,
    min: 1024,
    max: 1 << 30,
    doc: 'bytes unsent to one WebSocket client past which its frames are skipped',
  }),
  wsSlowCloseMs: int({
    env: 'HERALD_WS_SLOW_CLOSE_MS',
    default: 10_000,
    min: 100,
    max: HOUR_MS,
    doc: 'a client past that limit this long is closed (4008)',
  }),

  // Metrics (GET /metrics)
  metricsKey: str({
    env: 'HERALD_METRICS_KEY',
    default: '',
    pattern: /^.{8,}$/s,
    error: 'must be at least 8 characters',
    range: '8+ characters',
    secret: true,
    defaultDoc: '— (public)',
    doc: '`GET /metrics` requires `Authorization: Bearer <key>` when set; unset, it is public, for a scraper on a private network',
  }),
  metricsRetentionMs: int({
    env: 'HERALD_METRICS_RETENTION_MS',
    default: 600_000,
    min: 100,
    max: 7 * 24 * HOUR_MS,
    doc: "a campaign's series (messages, rate-limit waits, 429s) stay this long after its last count once no actor here sends it, then go, so the series stay bounded however many campaigns are sent",
  }),

  // Names and places
  clickhouseDb: str({
    env: 'CLICKHOUSE_DB',
    default: 'herald',
    pattern: /^[A-Za-z_][A-Za-z0-9_]{0,63}$/,
    error: 'must be an identifier (letters, digits, _)',
    range: 'identifier (letters, digits, _)',
    doc: 'ClickHouse database, created and migrated by Herald',
  }),
  clickhouseCluster: str({
    env: 'HERALD_CLICKHOUSE_CLUSTER',
    default: '',
    pattern: /^[A-Za-z_][A-Za-z0-9_]{0,63}$/,
    error: 'must be a cluster name from remote_servers (letters, digits, _)',
    range: 'cluster name (letters, digits, _)',
    defaultDoc: '— (one server)',
    doc: "a ClickHouse cluster (the servers' `remote_servers`): `herald migrate` creates the cluster schema (`ON CLUSTER`, Replicated tables on each shard, Distributed tables sharded by `campaign_id` under the usual names) and inserts wait for the shards",
  }),
  redisPrefix: str({
    env: 'HERALD_REDIS_PREFIX',
    default: 'herald',
    pattern: /^[A-Za-z0-9_.:-]{1,64}$/,
    error: 'must be 1-64 of letters, digits, _ . : -',
    range: '1–64 of letters, digits, _ . : -',
    doc: 'first segment of every Redis key',
  }),
  spoolDir: str({
    env: 'HERALD_SPOOL_DIR',
    default: '',
    range: 'directory',
    defaultDoc: '`.herald/spool/<CLICKHOUSE_DB>`',
    doc: "where pixel reads and provider callbacks are spooled (fsynced) before their answer; give each host's processes a directory on a disk that survives them",
  }),

  // Process
  shutdownGraceMs: int({
    env: 'HERALD_SHUTDOWN_GRACE_MS',
    default: 30_000,
    min: 0,
    max: HOUR_MS,
    doc: 'on SIGTERM, time to finish chunks in hand and flush events; what is left is taken over by another process',
  }),
  logLevel: oneOf({ env: 'HERALD_LOG_LEVEL', values: LOG_LEVELS, default: 'info', doc: 'pino level' }),
  role: oneOf({
    env: 'HERALD_ROLE',
    values: ROLES,
    default: 'all',
    doc: '`herald serve` runs: `all`, the API and the dispatcher; `api`, the HTTP and WebSocket API only (campaigns are sent by `worker` processes); `worker`, the dispatcher only, with `/healthz` and `/metrics` (as `herald worker`)',
  }),
  nodeFlags: str({
    env: 'HERALD_NODE_FLAGS',
    default: '',
    range: 'node flags',
    doc: 'node flags `bin/herald` adds after its own `--max-semi-space-size=2` (a 2 MB young generation: 20 MB less peak RSS at 10M recipients, same throughput; the last flag wins)',
  }),
};

export type Schema = typeof SCHEMA;
export type SettingName = keyof Schema;

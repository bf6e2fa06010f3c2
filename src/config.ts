/**
 * Configuration: one defaults object, resolved from the environment once at boot, validated, frozen.
 * A bad value fails the boot with the name of the variable, never later in the hot path.
 */
import { createHmac } from 'node:crypto';
import { HeraldError, type FieldError } from './errors.js';
import { MAX_WEBHOOK_CONCURRENCY } from './domain/campaign-input.js';

export const DEFAULTS = {
  databaseUrl: 'postgres://postgres@127.0.0.1:5432/postgres', // DATABASE_URL
  redisUrl: 'redis://127.0.0.1:6379', // REDIS_URL
  clickhouseUrl: 'http://127.0.0.1:8123', // CLICKHOUSE_URL (HTTP interface)
  clickhouseDb: 'herald', // CLICKHOUSE_DB: database created and migrated by Herald
  redisPrefix: 'herald', // HERALD_REDIS_PREFIX: first segment of every Redis key
  host: '0.0.0.0', // HERALD_HOST
  port: 8080, // HERALD_PORT
  apiKeys: [] as string[], // HERALD_API_KEYS: comma-separated bearer keys for the admin API (required)
  workers: 2, // HERALD_WORKERS: consumers per campaign in this process
  chunkSize: 500, // HERALD_CHUNK_SIZE: recipients per chunk when a campaign does not say
  maxBodyBytes: 1 << 20, // HERALD_MAX_BODY_BYTES: JSON request bodies; larger → 413
  maxImportBytes: 2 ** 31, // HERALD_MAX_IMPORT_BYTES: recipient import bodies (streamed); larger → 413
  importAnswerWaitMs: 5000, // HERALD_IMPORT_ANSWER_WAIT_MS: an import request waits this long for its merge, then answers 202 with the job
  importSweepMs: 5000, // HERALD_IMPORT_SWEEP_MS: how often import jobs left by a stopped process are looked for and resumed
  pollMs: 1000, // HERALD_POLL_MS: how often a dispatcher looks for campaigns to host (pub/sub wakes it sooner)
  reclaimIdleMs: 30_000, // HERALD_RECLAIM_IDLE_MS: a chunk pending this long on a consumer is taken over
  leaseMs: 10_000, // HERALD_LEASE_MS: campaign ownership lease; renewed every third of it
  // HERALD_LIVENESS_TTL_MS: a process's heartbeat in each campaign it sends for, renewed every sixth of it; once it
  // lapses, the process's chunks (and its lease) are taken over at once. A stall shorter than 5/6 of it loses
  // nothing; 0 turns it off (a dead process's chunks then wait for HERALD_RECLAIM_IDLE_MS, its lease for HERALD_LEASE_MS)
  livenessTtlMs: 3_000,
  readCount: 16, // HERALD_READ_COUNT: chunks one XREADGROUP asks for (an instant channel sends them side by side)
  // HERALD_SUBBATCH_SIZE: recipients per channel call (null channel: the whole chunk), one webhook POST up to
  // HERALD_WEBHOOK_BATCH_SIZE; the status is checked and the ledger written between a chunk's sub-batches
  subBatchSize: 100,
  planAheadChunks: 1200, // HERALD_PLAN_AHEAD_CHUNKS: chunks in Redis (planned, not yet done) before the planner waits
  planPageRows: 100_000, // HERALD_PLAN_PAGE_ROWS: recipients the planner reads (and packs in one go) per page
  sinkFlushRows: 100_000, // HERALD_SINK_FLUSH_ROWS: ClickHouse insert batch size
  sinkFlushMs: 200, // HERALD_SINK_FLUSH_MS: a partial batch is inserted after this long
  sinkMaxBufferedRows: 400_000, // HERALD_SINK_MAX_BUFFERED_ROWS: past this, senders wait (backpressure)
  webhookBatchSize: 100, // HERALD_WEBHOOK_BATCH_SIZE: messages per webhook POST
  webhookTimeoutMs: 10_000, // HERALD_WEBHOOK_TIMEOUT_MS: per request
  webhookAttempts: 4, // HERALD_WEBHOOK_ATTEMPTS: tries for 5xx / timeouts before a message fails
  webhookBackoffMs: 200, // HERALD_WEBHOOK_BACKOFF_MS: first retry delay, doubled each try (with jitter)
  // HERALD_WEBHOOK_CONCURRENCY: requests in flight per webhook campaign in each process (a campaign's
  // `channel.concurrency` overrides it); with 100-message requests, 64 allow 64,000 messages/s to a receiver
  // answering in 100 ms, 320,000/s at 20 ms, so the receiver's latency is not what limits one process
  webhookConcurrency: 64,
  // HERALD_WEBHOOK_MAX_INFLIGHT_BYTES: request bytes in flight per webhook campaign in each process; past it a
  // request waits for earlier ones to finish (one larger than the budget goes alone), so large messages to a
  // slow receiver cannot fill memory however many slots there are
  webhookMaxInflightBytes: 16 << 20,
  // HERALD_WEBHOOK_CONNECTIONS: keep-alive sockets per webhook origin; 0: no cap, one per request in flight
  // (at most the concurrency of the campaigns sending there). A cap below that makes requests queue for a socket.
  webhookConnections: 0,
  shutdownGraceMs: 30_000, // HERALD_SHUTDOWN_GRACE_MS: on SIGTERM, finish chunks in hand and flush events for at most this long
  logLevel: 'info', // HERALD_LOG_LEVEL: pino level
  secret: '', // HERALD_SECRET: signs user and tracking tokens (16+ characters); empty: derived from HERALD_API_KEYS
  userTokenTtlS: 86_400, // HERALD_USER_TOKEN_TTL_S: lifetime of a user token minted by POST /v1/users/:id/token
  wsTickMs: 1000, // HERALD_WS_TICK_MS: how often live progress frames are computed and published
  wsMaxBackpressure: 1 << 20, // HERALD_WS_MAX_BACKPRESSURE: bytes unsent to one WebSocket client past which its frames are skipped
  wsSlowCloseMs: 10_000, // HERALD_WS_SLOW_CLOSE_MS: a client past that limit this long is closed
  spoolDir: '', // HERALD_SPOOL_DIR: where pixel reads and callbacks are spooled before their answer; empty: .herald/spool/<CLICKHOUSE_DB> under the working directory
  publicUrl: '', // HERALD_PUBLIC_URL: base of tracking URLs put in webhook messages; empty: http://<host>:<port>
} as const;

export interface Config {
  wsTickMs: number;
  wsMaxBackpressure: number;
  wsSlowCloseMs: number;
  secret: string;
  userTokenTtlS: number;
  publicUrl: string;
  spoolDir: string;
  databaseUrl: string;
  redisUrl: string;
  clickhouseUrl: string;
  clickhouseDb: string;
  redisPrefix: string;
  host: string;
  port: number;
  apiKeys: readonly string[];
  workers: number;
  chunkSize: number;
  maxBodyBytes: number;
  maxImportBytes: number;
  importAnswerWaitMs: number;
  importSweepMs: number;
  pollMs: number;
  reclaimIdleMs: number;
  leaseMs: number;
  livenessTtlMs: number;
  readCount: number;
  planAheadChunks: number;
  planPageRows: number;
  subBatchSize: number;
  sinkFlushRows: number;
  sinkFlushMs: number;
  sinkMaxBufferedRows: number;
  webhookBatchSize: number;
  webhookTimeoutMs: number;
  webhookAttempts: number;
  webhookBackoffMs: number;
  webhookConnections: number;
  webhookConcurrency: number;
  webhookMaxInflightBytes: number;
  shutdownGraceMs: number;
  logLevel: string;
}

type Env = Record<string, string | undefined>;

const INT_KEYS: Array<[keyof Config, string, number, number]> = [
  ['port', 'HERALD_PORT', 0, 65535],
  ['workers', 'HERALD_WORKERS', 0, 256],
  ['chunkSize', 'HERALD_CHUNK_SIZE', 1, 100_000],
  ['maxBodyBytes', 'HERALD_MAX_BODY_BYTES', 1024, 2 ** 31],
  ['maxImportBytes', 'HERALD_MAX_IMPORT_BYTES', 1024, 2 ** 40],
  // The wait stays well under uWebSockets.js's ~10 s idle timeout, which would close the connection unanswered.
  ['importAnswerWaitMs', 'HERALD_IMPORT_ANSWER_WAIT_MS', 0, 8000],
  ['importSweepMs', 'HERALD_IMPORT_SWEEP_MS', 100, 3_600_000],
  ['pollMs', 'HERALD_POLL_MS', 10, 3_600_000],
  ['reclaimIdleMs', 'HERALD_RECLAIM_IDLE_MS', 100, 86_400_000],
  ['leaseMs', 'HERALD_LEASE_MS', 300, 3_600_000],
  ['livenessTtlMs', 'HERALD_LIVENESS_TTL_MS', 0, 600_000],
  ['readCount', 'HERALD_READ_COUNT', 1, 1000],
  ['planAheadChunks', 'HERALD_PLAN_AHEAD_CHUNKS', 1, 1_000_000],
  ['planPageRows', 'HERALD_PLAN_PAGE_ROWS', 1, 1_000_000],
  ['subBatchSize', 'HERALD_SUBBATCH_SIZE', 1, 100_000],
  ['sinkFlushRows', 'HERALD_SINK_FLUSH_ROWS', 1, 10_000_000],
  ['sinkFlushMs', 'HERALD_SINK_FLUSH_MS', 1, 600_000],
  ['sinkMaxBufferedRows', 'HERALD_SINK_MAX_BUFFERED_ROWS', 1, 100_000_000],
  ['webhookBatchSize', 'HERALD_WEBHOOK_BATCH_SIZE', 1, 10_000],
  ['webhookTimeoutMs', 'HERALD_WEBHOOK_TIMEOUT_MS', 10, 600_000],
  ['webhookAttempts', 'HERALD_WEBHOOK_ATTEMPTS', 1, 100],
  ['webhookBackoffMs', 'HERALD_WEBHOOK_BACKOFF_MS', 0, 600_000],
  ['webhookConnections', 'HERALD_WEBHOOK_CONNECTIONS', 0, 10_000],
  ['webhookConcurrency', 'HERALD_WEBHOOK_CONCURRENCY', 1, MAX_WEBHOOK_CONCURRENCY],
  ['webhookMaxInflightBytes', 'HERALD_WEBHOOK_MAX_INFLIGHT_BYTES', 1024, 2 ** 32],
  ['userTokenTtlS', 'HERALD_USER_TOKEN_TTL_S', 60, 366 * 86_400],
  ['wsTickMs', 'HERALD_WS_TICK_MS', 50, 60_000],
  ['wsMaxBackpressure', 'HERALD_WS_MAX_BACKPRESSURE', 1024, 1 << 30],
  ['wsSlowCloseMs', 'HERALD_WS_SLOW_CLOSE_MS', 100, 3_600_000],
  ['shutdownGraceMs', 'HERALD_SHUTDOWN_GRACE_MS', 0, 3_600_000],
];

const URL_KEYS: Array<[keyof Config, string, string[]]> = [
  ['databaseUrl', 'DATABASE_URL', ['postgres:', 'postgresql:']],
  ['redisUrl', 'REDIS_URL', ['redis:', 'rediss:']],
  ['clickhouseUrl', 'CLICKHOUSE_URL', ['http:', 'https:']],
];

const LOG_LEVELS = new Set(['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent']);

/** Resolves the environment over DEFAULTS; `overrides` win over both (tests, the demo). */
export function loadConfig(env: Env = process.env, overrides: Partial<Config> = {}): Readonly<Config> {
  const errors: FieldError[] = [];
  const cfg: Config = { ...DEFAULTS, apiKeys: [...DEFAULTS.apiKeys] };

  for (const [key, name, protocols] of URL_KEYS) {
    const raw = env[name];
    if (raw === undefined || raw === '') continue;
    try {
      const u = new URL(raw);
      if (!protocols.includes(u.protocol)) errors.push({ field: name, error: `must start with ${protocols.join(' or ')}//` });
      else (cfg[key] as string) = raw;
    } catch {
      errors.push({ field: name, error: 'is not a URL' });
    }
  }
  for (const [key, name, min, max] of INT_KEYS) {
    const raw = env[name];
    if (raw === undefined || raw === '') continue;
    const n = Number(raw);
    if (!Number.isInteger(n) || n < min || n > max) errors.push({ field: name, error: `must be an integer from ${min} to ${max}` });
    else (cfg[key] as number) = n;
  }
  if (env.CLICKHOUSE_DB) {
    if (/^[A-Za-z_][A-Za-z0-9_]{0,63}$/.test(env.CLICKHOUSE_DB)) cfg.clickhouseDb = env.CLICKHOUSE_DB;
    else errors.push({ field: 'CLICKHOUSE_DB', error: 'must be an identifier (letters, digits, _)' });
  }
  if (env.HERALD_REDIS_PREFIX) {
    if (/^[A-Za-z0-9_.:-]{1,64}$/.test(env.HERALD_REDIS_PREFIX)) cfg.redisPrefix = env.HERALD_REDIS_PREFIX;
    else errors.push({ field: 'HERALD_REDIS_PREFIX', error: 'must be 1-64 of letters, digits, _ . : -' });
  }
  if (env.HERALD_HOST) cfg.host = env.HERALD_HOST;
  if (env.HERALD_SPOOL_DIR) cfg.spoolDir = env.HERALD_SPOOL_DIR;
  if (env.HERALD_LOG_LEVEL) {
    if (LOG_LEVELS.has(env.HERALD_LOG_LEVEL)) cfg.logLevel = env.HERALD_LOG_LEVEL;
    else errors.push({ field: 'HERALD_LOG_LEVEL', error: `must be one of ${[...LOG_LEVELS].join(', ')}` });
  }
  if (env.HERALD_API_KEYS !== undefined) {
    const keys = env.HERALD_API_KEYS.split(',')
      .map((k) => k.trim())
      .filter((k) => k.length > 0);
    if (keys.some((k) => k.length < 8)) errors.push({ field: 'HERALD_API_KEYS', error: 'every key must be at least 8 characters' });
    cfg.apiKeys = keys;
  }
  if (env.HERALD_SECRET !== undefined && env.HERALD_SECRET !== '') {
    if (env.HERALD_SECRET.length < 16) errors.push({ field: 'HERALD_SECRET', error: 'must be at least 16 characters' });
    else cfg.secret = env.HERALD_SECRET;
  }
  if (env.HERALD_PUBLIC_URL) {
    try {
      const u = new URL(env.HERALD_PUBLIC_URL);
      if (u.protocol !== 'http:' && u.protocol !== 'https:')
        errors.push({ field: 'HERALD_PUBLIC_URL', error: 'must start with http:// or https://' });
      else cfg.publicUrl = env.HERALD_PUBLIC_URL.replace(/\/+$/, '');
    } catch {
      errors.push({ field: 'HERALD_PUBLIC_URL', error: 'is not a URL' });
    }
  }
  if (cfg.livenessTtlMs > 0 && cfg.livenessTtlMs < 300) {
    errors.push({ field: 'HERALD_LIVENESS_TTL_MS', error: 'must be 0 (off) or at least 300' });
  }
  if (cfg.sinkMaxBufferedRows < cfg.sinkFlushRows) {
    errors.push({ field: 'HERALD_SINK_MAX_BUFFERED_ROWS', error: 'must be at least HERALD_SINK_FLUSH_ROWS' });
  }
  Object.assign(cfg, overrides);
  if (errors.length > 0) {
    throw new HeraldError('CONFIG_INVALID', `invalid configuration: ${errors.map((e) => `${e.field} ${e.error}`).join('; ')}`, {
      fields: errors,
    });
  }
  return Object.freeze(cfg);
}

/** The API refuses to start without a key: an open admin API would let anyone message every user. */
export function requireApiKeys(cfg: Readonly<Config>): void {
  if (cfg.apiKeys.length === 0) {
    throw new HeraldError('CONFIG_INVALID', 'HERALD_API_KEYS is required: set one or more comma-separated keys (8+ characters)', {
      field: 'HERALD_API_KEYS',
    });
  }
}

/**
 * The key tokens are signed with: HERALD_SECRET, or one derived from the API keys (so a single-key setup
 * works out of the box; changing the keys then invalidates every token, which is the safe direction).
 */
export function tokenSecret(cfg: Readonly<Config>): string {
  if (cfg.secret !== '') return cfg.secret;
  return createHmac('sha256', 'herald token secret').update(cfg.apiKeys.join(',')).digest('base64url');
}

import { readFileSync } from 'node:fs';
import { describe, expect, expectTypeOf, it } from 'vitest';
import {
  DEFAULTS,
  SCHEMA,
  SETTINGS,
  dbPoolSize,
  loadConfig,
  sinkBufferedRows,
  readConfig,
  tokenSecret,
  type Config,
} from '../../src/config.js';
import { bool, int, list, oneOf, str, url } from '../../src/config/settings.js';
import { configReport, formatConfigReport, redactUrl, REDACTED } from '../../src/config/report.js';
import { settingsTable, withSettingsTable, TABLE_BEGIN, TABLE_END } from '../../src/config/settings-table.js';
import { eventsLandedMs } from '../../src/config/timings.js';
import { livenessTimings, ownershipTrustMs, touchEveryMs } from '../../src/domain/liveness.js';
import type { HeraldError } from '../../src/errors.js';

/** The fields of a CONFIG_INVALID error, in order. */
function fieldErrors(env: Record<string, string>): Array<{ field: string; error: string }> {
  try {
    loadConfig(env);
  } catch (err) {
    return (err as HeraldError).details.fields as Array<{ field: string; error: string }>;
  }
  throw new Error('accepted');
}

describe('config schema: defaults', () => {
  it('keeps every default users rely on', () => {
    expect(loadConfig({})).toEqual({
      databaseUrl: 'postgres://postgres@127.0.0.1:5432/postgres',
      databaseReadUrl: '',
      redisUrl: 'redis://127.0.0.1:6379',
      redisClusterNodes: [],
      clickhouseUrl: 'http://127.0.0.1:8123',
      clickhouseDb: 'herald',
      clickhouseCluster: '',
      redisPrefix: 'herald',
      host: '0.0.0.0',
      port: 8080,
      apiKeys: [],
      workers: 2,
      chunkSize: 500,
      maxBodyBytes: 1 << 20,
      maxImportBytes: 2 ** 31,
      importAnswerWaitMs: 5000,
      importSweepMs: 5000,
      pollMs: 1000,
      reclaimIdleMs: 30_000,
      leaseMs: 10_000,
      livenessTtlMs: 3_000,
      readCount: 64,
      readReplicaWaitMs: 10_000,
      subBatchSize: 100,
      planAheadChunks: 1200,
      planAheadRanges: 20_000,
      planPageRows: 100_000,
      sinkFlushRows: 100_000,
      sinkFlushMs: 200,
      sinkMaxBufferedRows: 0,
      webhookBatchSize: 100,
      webhookTimeoutMs: 10_000,
      webhookAttempts: 4,
      webhookBackoffMs: 200,
      webhookConcurrency: 64,
      webhookMaxInflightBytes: 16 << 20,
      webhookConnections: 0,
      shutdownGraceMs: 30_000,
      logLevel: 'info',
      role: 'all',
      secret: '',
      userTokenTtlS: 86_400,
      wsTickMs: 1000,
      wsMaxBackpressure: 1 << 20,
      wsSlowCloseMs: 10_000,
      spoolDir: '',
      publicUrl: '',
      // settings that were constants in main.ts, at the values they had
      dbPoolSize: 0,
      importDbPoolSize: 6,
      nodeFlags: '',
      // GET /metrics: public, a finished campaign's series kept 10 minutes
      metricsKey: '',
      metricsRetentionMs: 600_000,
    });
    expect(DEFAULTS).toEqual(loadConfig({}));
    expect(Object.isFrozen(DEFAULTS)).toBe(true);
    expect(Object.isFrozen(loadConfig({}))).toBe(true);
  });

  it('derives the main pool size from the workers unless it is set', () => {
    expect(dbPoolSize(loadConfig({}))).toBe(8);
    expect(dbPoolSize(loadConfig({ HERALD_WORKERS: '0' }))).toBe(4);
    expect(dbPoolSize(loadConfig({ HERALD_WORKERS: '8', HERALD_DB_POOL_SIZE: '5' }))).toBe(5);
  });

  it('types every setting from its kind', () => {
    expectTypeOf<Config['port']>().toEqualTypeOf<number>();
    expectTypeOf<Config['databaseUrl']>().toEqualTypeOf<string>();
    expectTypeOf<Config['apiKeys']>().toEqualTypeOf<readonly string[]>();
    expectTypeOf<Config['logLevel']>().toEqualTypeOf<'trace' | 'debug' | 'info' | 'warn' | 'error' | 'fatal' | 'silent'>();
    expectTypeOf<keyof Config>().toEqualTypeOf<keyof typeof SCHEMA>();
  });

  it('gives every setting a variable of its own and a one-line doc', () => {
    const envs = SETTINGS.map(([, s]) => s.env);
    expect(new Set(envs).size).toBe(envs.length);
    for (const [, s] of SETTINGS) {
      expect(s.doc.length).toBeGreaterThan(0);
      expect(s.doc).not.toMatch(/\n/);
    }
  });
});

describe('config schema: ranges', () => {
  // Every integer setting's variable and range, as users have been told them.
  const INTS: Array<[keyof Config, string, number, number]> = [
    ['port', 'HERALD_PORT', 0, 65535],
    ['workers', 'HERALD_WORKERS', 0, 256],
    ['chunkSize', 'HERALD_CHUNK_SIZE', 1, 100_000],
    ['maxBodyBytes', 'HERALD_MAX_BODY_BYTES', 1024, 2 ** 31],
    ['maxImportBytes', 'HERALD_MAX_IMPORT_BYTES', 1024, 2 ** 40],
    ['importAnswerWaitMs', 'HERALD_IMPORT_ANSWER_WAIT_MS', 0, 8000],
    ['importSweepMs', 'HERALD_IMPORT_SWEEP_MS', 100, 3_600_000],
    ['pollMs', 'HERALD_POLL_MS', 10, 3_600_000],
    ['reclaimIdleMs', 'HERALD_RECLAIM_IDLE_MS', 100, 86_400_000],
    ['leaseMs', 'HERALD_LEASE_MS', 300, 3_600_000],
    ['livenessTtlMs', 'HERALD_LIVENESS_TTL_MS', 300, 600_000],
    ['readCount', 'HERALD_READ_COUNT', 1, 1000],
    ['planAheadChunks', 'HERALD_PLAN_AHEAD_CHUNKS', 1, 1_000_000],
    ['planAheadRanges', 'HERALD_PLAN_AHEAD_RANGES', 1, 1_000_000],
    ['planPageRows', 'HERALD_PLAN_PAGE_ROWS', 1, 1_000_000],
    ['subBatchSize', 'HERALD_SUBBATCH_SIZE', 1, 100_000],
    ['sinkFlushRows', 'HERALD_SINK_FLUSH_ROWS', 1, 10_000_000],
    ['sinkFlushMs', 'HERALD_SINK_FLUSH_MS', 1, 600_000],
    ['sinkMaxBufferedRows', 'HERALD_SINK_MAX_BUFFERED_ROWS', 0, 100_000_000],
    ['webhookBatchSize', 'HERALD_WEBHOOK_BATCH_SIZE', 1, 10_000],
    ['webhookTimeoutMs', 'HERALD_WEBHOOK_TIMEOUT_MS', 10, 600_000],
    ['webhookAttempts', 'HERALD_WEBHOOK_ATTEMPTS', 1, 100],
    ['webhookBackoffMs', 'HERALD_WEBHOOK_BACKOFF_MS', 0, 600_000],
    ['webhookConnections', 'HERALD_WEBHOOK_CONNECTIONS', 0, 10_000],
    ['webhookConcurrency', 'HERALD_WEBHOOK_CONCURRENCY', 1, 1024],
    ['webhookMaxInflightBytes', 'HERALD_WEBHOOK_MAX_INFLIGHT_BYTES', 1024, 2 ** 32],
    ['userTokenTtlS', 'HERALD_USER_TOKEN_TTL_S', 60, 366 * 86_400],
    ['wsTickMs', 'HERALD_WS_TICK_MS', 50, 60_000],
    ['wsMaxBackpressure', 'HERALD_WS_MAX_BACKPRESSURE', 1024, 1 << 30],
    ['wsSlowCloseMs', 'HERALD_WS_SLOW_CLOSE_MS', 100, 3_600_000],
    ['shutdownGraceMs', 'HERALD_SHUTDOWN_GRACE_MS', 0, 3_600_000],
    ['dbPoolSize', 'HERALD_DB_POOL_SIZE', 0, 1000],
    ['importDbPoolSize', 'HERALD_IMPORT_DB_POOL_SIZE', 1, 1000],
  ];

  it.each(INTS)('%s (%s) takes %d to %d and names its variable outside', (key, env, min, max) => {
    expect(SCHEMA[key].env).toBe(env);
    // the sink's buffer must hold a batch (a rule across the two): keep it out of the way
    const rest: Record<string, string> =
      key === 'sinkMaxBufferedRows'
        ? { HERALD_SINK_FLUSH_ROWS: '1' }
        : key === 'sinkFlushRows'
          ? { HERALD_SINK_MAX_BUFFERED_ROWS: '100000000' }
          : {};
    expect(loadConfig({ ...rest, [env]: String(min) })[key]).toBe(min);
    expect(loadConfig({ ...rest, [env]: String(max) })[key]).toBe(max);
    for (const raw of [String(min - 1), String(max + 1), '1.5', 'ten']) {
      if (raw === '-1' && key === 'livenessTtlMs') continue;
      const errors = fieldErrors({ ...rest, [env]: raw });
      expect(errors).toEqual([{ field: env, error: expect.stringContaining(`integer from ${min} to ${max}`) }]);
    }
  });

  it('takes 0 (off) for the liveness ttl, but nothing between 0 and its least value', () => {
    expect(loadConfig({ HERALD_LIVENESS_TTL_MS: '0' }).livenessTtlMs).toBe(0);
    expect(fieldErrors({ HERALD_LIVENESS_TTL_MS: '100' })).toEqual([
      { field: 'HERALD_LIVENESS_TTL_MS', error: 'must be 0 (off) or an integer from 300 to 600000' },
    ]);
  });

  it('treats an empty variable as unset', () => {
    expect(loadConfig({ HERALD_PORT: '', DATABASE_URL: '', HERALD_API_KEYS: '' })).toEqual(DEFAULTS);
    expect(readConfig({ HERALD_PORT: '' }).fromEnv.size).toBe(0);
  });
});

describe('config schema: kinds', () => {
  const common = { env: 'X', doc: 'x' };

  it('int: integers only, in range', () => {
    const s = int({ ...common, default: 1, min: 1, max: 10 });
    expect(s.parse('7')).toEqual({ ok: true, value: 7 });
    expect(s.parse('0')).toEqual({ ok: false, error: 'must be an integer from 1 to 10' });
    expect(s.parse('7.5').ok).toBe(false);
    expect(s.range).toBe('1–10');
  });

  it('str: any text, or text matching a pattern', () => {
    expect(str({ ...common, default: '' }).parse('a b')).toEqual({ ok: true, value: 'a b' });
    const s = str({ ...common, default: 'a', pattern: /^[a-z]+$/, error: 'must be lower-case letters' });
    expect(s.parse('abc')).toEqual({ ok: true, value: 'abc' });
    expect(s.parse('ABC')).toEqual({ ok: false, error: 'must be lower-case letters' });
  });

  it('url: a URL with one of its protocols, trailing slashes dropped where asked', () => {
    const s = url({ ...common, default: '', protocols: ['http:', 'https:'], trimSlash: true });
    expect(s.parse('https://example.com/base//')).toEqual({ ok: true, value: 'https://example.com/base' });
    expect(s.parse('ftp://example.com')).toEqual({ ok: false, error: 'must start with http:// or https://' });
    expect(s.parse('not a url')).toEqual({ ok: false, error: 'is not a URL' });
    const kept = url({ ...common, default: '', protocols: ['redis:'] });
    expect(kept.parse('redis://h:6379/')).toEqual({ ok: true, value: 'redis://h:6379/' });
  });

  it('bool: true / false and their usual spellings', () => {
    const s = bool({ ...common, default: false });
    for (const raw of ['true', 'TRUE', '1', 'yes', 'on']) expect(s.parse(raw)).toEqual({ ok: true, value: true });
    for (const raw of ['false', '0', 'No', 'off']) expect(s.parse(raw)).toEqual({ ok: true, value: false });
    expect(s.parse('maybe').ok).toBe(false);
  });

  it('list: comma-separated, trimmed, blanks dropped, each long enough', () => {
    const s = list({ ...common, default: [], item: 'key', minLength: 3 });
    expect(s.parse(' abc, defg ,,')).toEqual({ ok: true, value: ['abc', 'defg'] });
    expect(s.parse('abc,de')).toEqual({ ok: false, error: 'every key must be at least 3 characters' });
  });

  it('enum: one of its values', () => {
    const s = oneOf({ ...common, values: ['a', 'b'], default: 'a' });
    expectTypeOf(s.default).toEqualTypeOf<'a' | 'b'>();
    expect(s.parse('b')).toEqual({ ok: true, value: 'b' });
    expect(s.parse('c')).toEqual({ ok: false, error: 'must be one of a, b' });
  });

  it.each([
    ['HERALD_API_KEYS', 'key-one-123, key-two-456', 'apiKeys', ['key-one-123', 'key-two-456']],
    ['HERALD_PUBLIC_URL', 'https://herald.example.com/', 'publicUrl', 'https://herald.example.com'],
    ['HERALD_LOG_LEVEL', 'debug', 'logLevel', 'debug'],
    ['CLICKHOUSE_DB', 'herald_test', 'clickhouseDb', 'herald_test'],
    ['HERALD_SECRET', 'a-secret-of-16-chars', 'secret', 'a-secret-of-16-chars'],
    ['HERALD_HOST', '127.0.0.1', 'host', '127.0.0.1'],
    ['HERALD_METRICS_KEY', 'scrape-key-1234', 'metricsKey', 'scrape-key-1234'],
    ['HERALD_METRICS_RETENTION_MS', '60000', 'metricsRetentionMs', 60_000],
  ] as const)('reads %s from the environment', (env, raw, key, value) => {
    expect(loadConfig({ [env]: raw })[key]).toEqual(value);
    expect(readConfig({ [env]: raw }).fromEnv).toEqual(new Set([key]));
  });
});

describe('config schema: errors', () => {
  it('reports every bad value at once, naming its variable, in schema order', () => {
    const errors = fieldErrors({
      HERALD_LOG_LEVEL: 'loud',
      DATABASE_URL: 'mysql://x',
      HERALD_SECRET: 'short',
      HERALD_REDIS_PREFIX: 'a b',
      HERALD_PORT: '70000',
      HERALD_API_KEYS: 'ok-key-123,short',
    });
    expect(errors).toEqual([
      { field: 'DATABASE_URL', error: 'must start with postgres:// or postgresql://' },
      { field: 'HERALD_PORT', error: 'must be an integer from 0 to 65535' },
      { field: 'HERALD_API_KEYS', error: 'every key must be at least 8 characters' },
      { field: 'HERALD_SECRET', error: 'must be at least 16 characters' },
      { field: 'HERALD_REDIS_PREFIX', error: 'must be 1-64 of letters, digits, _ . : -' },
      { field: 'HERALD_LOG_LEVEL', error: 'must be one of trace, debug, info, warn, error, fatal, silent' },
    ]);
    expect(() => loadConfig({ HERALD_PORT: '70000', HERALD_WORKERS: '-1' })).toThrow(
      'invalid configuration: HERALD_PORT must be an integer from 0 to 65535; HERALD_WORKERS must be an integer from 0 to 256',
    );
  });

  it('names the metrics settings when they are out of range', () => {
    expect(fieldErrors({ HERALD_METRICS_KEY: 'short', HERALD_METRICS_RETENTION_MS: '10' })).toEqual([
      { field: 'HERALD_METRICS_KEY', error: 'must be at least 8 characters' },
      { field: 'HERALD_METRICS_RETENTION_MS', error: 'must be an integer from 100 to 604800000' },
    ]);
  });

  it('checks the rules across settings on the resolved values', () => {
    expect(fieldErrors({ HERALD_SINK_MAX_BUFFERED_ROWS: '1000' })).toEqual([
      { field: 'HERALD_SINK_MAX_BUFFERED_ROWS', error: 'must be at least HERALD_SINK_FLUSH_ROWS' },
    ]);
    expect(loadConfig({ HERALD_SINK_MAX_BUFFERED_ROWS: '1000', HERALD_SINK_FLUSH_ROWS: '1000' }).sinkMaxBufferedRows).toBe(1000);
    // 0 (the default) is two batches, whatever the batch
    expect(sinkBufferedRows(loadConfig({ HERALD_SINK_FLUSH_ROWS: '400000' }))).toBe(800_000);
    expect(sinkBufferedRows(loadConfig({}))).toBe(200_000);
    expect(sinkBufferedRows(loadConfig({ HERALD_SINK_MAX_BUFFERED_ROWS: '5000', HERALD_SINK_FLUSH_ROWS: '1000' }))).toBe(5000);
  });

  it('lets overrides win without checking them (tests, the demo)', () => {
    const c = loadConfig({ HERALD_PORT: '9090' }, { port: 0, workers: 1 });
    expect(c.port).toBe(0);
    expect(c.workers).toBe(1);
  });

  it('derives the token secret from the keys unless HERALD_SECRET is set', () => {
    const derived = tokenSecret(loadConfig({ HERALD_API_KEYS: 'key-one-123' }));
    expect(derived).not.toBe('');
    expect(tokenSecret(loadConfig({ HERALD_API_KEYS: 'key-two-456' }))).not.toBe(derived);
    expect(tokenSecret(loadConfig({ HERALD_API_KEYS: 'key-one-123', HERALD_SECRET: 'a-secret-of-16-chars' }))).toBe('a-secret-of-16-chars');
  });
});

describe('herald config report', () => {
  const env = {
    HERALD_API_KEYS: 'key-one-123,key-two-456',
    HERALD_SECRET: 'a-secret-of-16-chars',
    DATABASE_URL: 'postgres://herald:pg-password@db:5432/herald',
    REDIS_URL: 'redis://:redis-password@cache:6379',
    HERALD_PORT: '9090',
  };
  const report = configReport(readConfig(env));
  const byEnv = new Map(report.map((r) => [r.env, r]));

  it('lists every setting with its value, default and source', () => {
    expect(report.map((r) => r.env)).toEqual(SETTINGS.map(([, s]) => s.env));
    expect(byEnv.get('HERALD_PORT')).toEqual({ name: 'port', env: 'HERALD_PORT', value: 9090, default: 8080, fromEnv: true });
    expect(byEnv.get('HERALD_WORKERS')).toMatchObject({ value: 2, default: 2, fromEnv: false });
  });

  it('redacts keys, the secret and passwords in URLs', () => {
    expect(byEnv.get('HERALD_API_KEYS')!.value).toEqual([REDACTED, REDACTED]);
    expect(byEnv.get('HERALD_SECRET')!.value).toBe(REDACTED);
    expect(byEnv.get('DATABASE_URL')!.value).toBe(`postgres://herald:${REDACTED}@db:5432/herald`);
    expect(byEnv.get('REDIS_URL')!.value).toBe(`redis://:${REDACTED}@cache:6379`);
    const text = formatConfigReport(report) + JSON.stringify(report);
    for (const secret of ['key-one-123', 'key-two-456', 'a-secret-of-16-chars', 'pg-password', 'redis-password']) {
      expect(text).not.toContain(secret);
    }
    expect(redactUrl('http://127.0.0.1:8123')).toBe('http://127.0.0.1:8123');
  });

  it('prints one aligned line per setting', () => {
    const lines = formatConfigReport(report).split('\n');
    expect(lines).toHaveLength(SETTINGS.length + 1);
    expect(lines[0]).toMatch(/^variable\s+value\s+default\s+from$/);
    expect(lines.find((l) => l.startsWith('HERALD_PORT '))).toMatch(/^HERALD_PORT\s+9090\s+8080\s+env$/);
    expect(lines.find((l) => l.startsWith('HERALD_SECRET '))).toMatch(/\*\*\*\s+derived from HERALD_API_KEYS\s+env$/);
    expect(lines.find((l) => l.startsWith('HERALD_SPOOL_DIR '))).toMatch(/\(empty\)\s+\.herald\/spool\/<CLICKHOUSE_DB>\s+default$/);
  });
});

describe('README settings table', () => {
  it('is the one the schema writes (npm run docs:settings)', () => {
    const readme = readFileSync(new URL('../../README.md', import.meta.url), 'utf8');
    expect(readme).toContain(TABLE_BEGIN);
    expect(withSettingsTable(readme)).toBe(readme);
  });

  it('has a row per setting, with its default and range', () => {
    const rows = settingsTable().split('\n').slice(2);
    expect(rows).toHaveLength(SETTINGS.length);
    expect(rows).toContain('| `HERALD_PORT` | `8080` | 0–65535 | HTTP listener port (0: any free port) |');
    expect(rows.find((r) => r.startsWith('| `HERALD_API_KEYS` |'))).toContain('— (required)');
    expect(() => withSettingsTable('no markers')).toThrow(TABLE_END);
  });
});

describe('named timings', () => {
  it('keep the values the stages had', () => {
    for (const [reclaimIdleMs, ttlMs] of [
      [30_000, 3_000],
      [30_000, 0],
      [100, 3_000],
      [600, 600_000],
    ] as const) {
      const was = Math.min(Math.max(50, Math.floor(reclaimIdleMs / 3)), livenessTimings(ttlMs).trustMs);
      expect(ownershipTrustMs(reclaimIdleMs, ttlMs)).toBe(was);
      expect(touchEveryMs(reclaimIdleMs)).toBe(reclaimIdleMs / 3);
    }
    expect(ownershipTrustMs(30_000, 3_000)).toBe(1000);
    expect(eventsLandedMs(DEFAULTS)).toBe(2 * 200 + 1000);
  });
});

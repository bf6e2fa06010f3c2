/**
 * Starts a Herald instance for one test file in a namespace of its own: a fresh PostgreSQL database,
 * ClickHouse database and Redis key prefix, so files run in parallel without seeing each other.
 */
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { pino } from 'pino';
import { afterAll, beforeAll, inject } from 'vitest';
import { loadConfig, type Config } from '../../src/config.js';
import { migrate, startHerald, type Herald } from '../../src/main.js';
import { ClickHouse } from '../../src/clickhouse/client.js';
import { deleteKeysWithPrefix } from '../../src/stream/keys.js';
import { connectRedis } from '../../src/stream/redis-connect.js';

export const API_KEY = 'test-key-0123456789';

export interface Namespace {
  config: Readonly<Config>;
  drop(): Promise<void>;
}

/**
 * `route`: the namespace's database URL as Herald reaches it (through a pgbouncer, say); the database is
 * created and migrated that way too. Dropped directly.
 */
export async function createNamespace(
  overrides: Partial<Config> = {},
  route: (databaseUrl: string) => string = (u) => u,
): Promise<Namespace> {
  const services = inject('services');
  const name = `herald_t_${randomBytes(5).toString('hex')}`;
  const dbUrl = new URL(route(services.databaseUrl));
  dbUrl.pathname = `/${name}`;
  const config = loadConfig(
    { HERALD_LOG_LEVEL: process.env.HERALD_TEST_LOG ?? 'silent' },
    {
      databaseUrl: dbUrl.toString(),
      redisUrl: services.redisUrl,
      redisClusterNodes: services.redisClusterNodes,
      clickhouseUrl: services.clickhouseUrl,
      clickhouseDb: name,
      redisPrefix: name,
      apiKeys: [API_KEY],
      host: '127.0.0.1',
      port: 0,
      pollMs: 200,
      sinkFlushMs: 50,
      ...overrides,
    },
  );
  await migrate(config);
  return {
    config,
    drop: async () => {
      const admin = new pg.Client({ connectionString: services.databaseUrl });
      await admin.connect();
      await admin.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`).catch(() => undefined);
      await admin.end();
      const ch = new ClickHouse({ url: services.clickhouseUrl, database: 'default' });
      await ch.command(`DROP DATABASE IF EXISTS ${name}`).catch(() => undefined);
      await ch.close();
      // The shared Redis, or the cluster the namespace used (a test's own single Redis may be gone by now).
      const redis = connectRedis({ url: services.redisUrl, clusterNodes: config.redisClusterNodes });
      await deleteKeysWithPrefix(redis, name).catch(() => undefined);
      redis.disconnect();
    },
  };
}

export async function startTestHerald(ns: Namespace, overrides: Partial<Config> = {}): Promise<Herald> {
  const cfg = Object.freeze({ ...ns.config, ...overrides });
  return startHerald(cfg, { migrate: false, logger: pino({ level: cfg.logLevel }) });
}

/** A small client for the HTTP API. */
export class Api {
  constructor(
    readonly base: string,
    readonly key = API_KEY,
  ) {}

  async call(method: string, path: string, body?: unknown, headers: Record<string, string> = {}): Promise<{ status: number; body: any }> {
    const init: RequestInit = { method, headers: { authorization: `Bearer ${this.key}`, ...headers } };
    if (body !== undefined) {
      const raw = typeof body === 'string' || body instanceof Uint8Array;
      init.body = raw ? (body as string) : JSON.stringify(body);
      if (!raw) (init.headers as Record<string, string>)['content-type'] = 'application/json';
    }
    let res: Response;
    try {
      res = await fetch(`${this.base}${path}`, init);
    } catch (err) {
      throw new Error(`${method} ${path}: ${(err as Error).message}`, { cause: err });
    }
    const text = await res.text();
    let parsed: unknown = text;
    try {
      parsed = text ? JSON.parse(text) : null;
    } catch {
      // not JSON
    }
    return { status: res.status, body: parsed };
  }

  /**
   * Imports a body into an audience and answers as a quick import does (200 with the result): an
   * import answered 202 (its merge took longer than HERALD_IMPORT_ANSWER_WAIT_MS, as on a loaded
   * machine) is followed to its end at GET /v1/imports/:id. Any other answer is returned as it is.
   */
  async importRecipients(
    audienceId: number,
    body: string | Uint8Array,
    headers: Record<string, string> = { 'content-type': 'application/x-ndjson' },
  ): Promise<{ status: number; body: any }> {
    const r = await this.call('POST', `/v1/audiences/${audienceId}/recipients`, body, headers);
    if (r.status !== 202) return r;
    const t0 = Date.now();
    for (;;) {
      const job = (await this.call('GET', `/v1/imports/${r.body.import_id}`)).body;
      if (job.status === 'completed' || job.status === 'failed') {
        const { id, imported, duplicates, rejected_count, total, same_as, error, status } = job;
        return {
          status: status === 'completed' ? 200 : 500,
          body: { import_id: id, status, imported, duplicates, rejected: r.body.rejected, rejected_count, total, same_as, error },
        };
      }
      if (Date.now() - t0 > 120_000) throw new Error(`import ${r.body.import_id} still ${job.status}`);
      await new Promise((res) => setTimeout(res, 50));
    }
  }

  /** Creates an audience of `n` recipients `u1..un` through the API. */
  async audience(n: number, prefix = 'u'): Promise<number> {
    const a = await this.call('POST', '/v1/audiences', { name: `aud-${prefix}-${n}` });
    const lines: string[] = [];
    for (let i = 1; i <= n; i++) lines.push(`{"user_id":"${prefix}${i}","address":"${prefix}${i}@example.test"}`);
    const r = await this.importRecipients(a.body.id, lines.join('\n'));
    if (r.status !== 200 || r.body.imported !== n) throw new Error(`import failed: ${JSON.stringify(r.body).slice(0, 300)}`);
    return a.body.id as number;
  }

  /** Creates a campaign on `audienceId` (null channel unless `extra` says otherwise); returns its id. */
  async nullCampaign(audienceId: number, extra: Record<string, unknown> = {}): Promise<number> {
    const c = await this.call('POST', '/v1/campaigns', {
      name: `campaign on ${audienceId}`,
      audience_id: audienceId,
      channel: { type: 'null' },
      content: { title: 't', body: 'b' },
      ...extra,
    });
    if (c.status !== 201) throw new Error(`create campaign failed: ${JSON.stringify(c.body)}`);
    return c.body.id as number;
  }

  /** Creates a webhook campaign posting to `url`, 100-recipient chunks unless `extra` says otherwise. */
  webhookCampaign(audienceId: number, url: string, extra: Record<string, unknown> = {}): Promise<number> {
    return this.nullCampaign(audienceId, { channel: { type: 'webhook', url }, chunk_size: 100, ...extra });
  }

  async waitForStatus(id: number, statuses: string[], timeoutMs = 120_000): Promise<any> {
    const t0 = Date.now();
    for (;;) {
      const r = await this.call('GET', `/v1/campaigns/${id}`);
      if (statuses.includes(r.body.status)) return r.body;
      if (Date.now() - t0 > timeoutMs) throw new Error(`campaign ${id} still ${r.body.status} after ${timeoutMs} ms`);
      await new Promise((res) => setTimeout(res, 100));
    }
  }
}

export function apiFor(h: Herald): Api {
  return new Api(`http://127.0.0.1:${h.port}`);
}

/** Rows of one kind for a campaign in ClickHouse, and how many distinct recipients they name. */
export async function eventCounts(h: Herald, campaignId: number, kind = 'delivered'): Promise<{ n: number; u: number }> {
  const r = await h.ch.rows<{ n: string; u: string }>(
    `SELECT count() AS n, uniqExact(user_id) AS u FROM message_events WHERE campaign_id = ${campaignId} AND kind = '${kind}'`,
  );
  return { n: Number(r[0]!.n), u: Number(r[0]!.u) };
}

/**
 * Polls `read` until `done` says its value is final (or `timeoutMs` passes) and returns that value:
 * for what Herald stores after it answers (pixel reads and callbacks go through the read spool).
 */
export async function eventually<T>(read: () => Promise<T>, done: (v: T) => boolean, timeoutMs = 30_000): Promise<T> {
  const t0 = Date.now();
  for (;;) {
    const v = await read();
    if (done(v) || Date.now() - t0 > timeoutMs) return v;
    await new Promise((r) => setTimeout(r, 100));
  }
}

/**
 * The usual file setup: a namespace and a Herald on it for the file's tests, stopped and dropped after.
 * Read the fields inside tests (they are set in beforeAll).
 */
export function useHerald(overrides: Partial<Config> = {}): { ns: Namespace; herald: Herald; api: Api } {
  const ctx = {} as { ns: Namespace; herald: Herald; api: Api };
  beforeAll(async () => {
    ctx.ns = await createNamespace(overrides);
    ctx.herald = await startTestHerald(ctx.ns);
    ctx.api = apiFor(ctx.herald);
  });
  afterAll(async () => {
    await ctx.herald?.stop();
    await ctx.ns?.drop();
  });
  return ctx;
}

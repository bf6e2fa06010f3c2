/**
 * A bench run's own namespace: a PostgreSQL database, a ClickHouse database and a Redis key prefix, all
 * named `ns`, created by Herald's migrations at start and dropped by `dropNamespace` at the end, so a
 * bench never touches anyone's data and leaves nothing behind.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createReadStream } from 'node:fs';
import { Readable } from 'node:stream';
import { ClickHouse } from '../src/clickhouse/client.js';
import type { Config } from '../src/config.js';
import { createDb } from '../src/store/db.js';
import { deleteKeysWithPrefix } from '../src/stream/keys.js';
import { connectRedis } from '../src/stream/redis-connect.js';

export function namespaced(base: Readonly<Config>, ns: string, overrides: Partial<Config> = {}): Readonly<Config> {
  const dbUrl = new URL(base.databaseUrl);
  dbUrl.pathname = `/${ns}`;
  return Object.freeze({
    ...base,
    databaseUrl: dbUrl.toString(),
    clickhouseDb: ns,
    redisPrefix: ns,
    port: 0,
    host: '127.0.0.1',
    logLevel: 'warn',
    ...overrides,
  });
}

export async function dropNamespace(base: Readonly<Config>, ns: string): Promise<void> {
  const ch = new ClickHouse({ url: base.clickhouseUrl, database: 'default' });
  await ch.command(`DROP DATABASE IF EXISTS ${ns}`);
  await ch.close();
  const admin = createDb(base.databaseUrl, 1);
  await admin.query(`DROP DATABASE IF EXISTS ${ns} WITH (FORCE)`);
  await admin.end();
  await dropRedisNamespace(base, ns);
}

/** Only the Redis keys of `ns` (a bench in the kept used database of populated.ts). */
export async function dropRedisNamespace(base: Readonly<Config>, ns: string): Promise<void> {
  const redis = connectRedis({ url: base.redisUrl, clusterNodes: base.redisClusterNodes });
  await deleteKeysWithPrefix(redis, ns);
  redis.disconnect();
}

/**
 * The environment of a `bin/herald serve` child on the same namespace as `cfg` (its databases and key
 * prefix), answering `key`; `extra` adds or overrides settings (HERALD_* variables).
 */
export function childHeraldEnv(cfg: Readonly<Config>, key: string, extra: Record<string, string>): NodeJS.ProcessEnv {
  return {
    ...process.env,
    DATABASE_URL: cfg.databaseUrl,
    REDIS_URL: cfg.redisUrl,
    CLICKHOUSE_URL: cfg.clickhouseUrl,
    CLICKHOUSE_DB: cfg.clickhouseDb,
    HERALD_REDIS_PREFIX: cfg.redisPrefix,
    HERALD_API_KEYS: key,
    HERALD_LOG_LEVEL: 'warn',
    ...extra,
  };
}

/** A minimal client for the bench's Herald: JSON bodies unless `type` says otherwise; parsed JSON back. */
export function apiCaller(base: string, key: string): (method: string, path: string, body?: unknown, type?: string) => Promise<any> {
  return async (method, path, body, type = 'application/json') => {
    const r = await fetch(`${base}${path}`, {
      method,
      headers: { authorization: `Bearer ${key}`, 'content-type': type },
      body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
    });
    const text = await r.text();
    return text === '' ? null : JSON.parse(text);
  };
}

/**
 * Starts `bin/herald serve` (as deployed, its node flags included) with `env` and resolves once its
 * `/healthz` on `port` answers; kills it if it does not within `waitMs`.
 */
export async function spawnServe(env: NodeJS.ProcessEnv, port: number, waitMs = 30_000): Promise<ChildProcess> {
  const child = spawn('bin/herald', ['serve'], { env, stdio: ['ignore', 'inherit', 'inherit'] });
  for (const t0 = Date.now(); Date.now() - t0 < waitMs;) {
    const up = await fetch(`http://127.0.0.1:${port}/healthz`).then(
      (r) => r.ok,
      () => false,
    );
    if (up) return child;
    await new Promise((r) => setTimeout(r, 100));
  }
  child.kill('SIGKILL');
  throw new Error('Herald did not start');
}

/** SIGTERM, and resolves once the process has exited (a graceful stop flushes its events). */
export async function stopServe(child: ChildProcess): Promise<void> {
  const exited = new Promise((r) => child.once('exit', r));
  child.kill('SIGTERM');
  await exited;
}

/**
 * Streams an NDJSON file into an audience's import over HTTP (one request, 1 MB reads) and returns the
 * first answer's status and body: the final result of a quick import, or the job to follow (`import_id`).
 */
export async function uploadNdjson(base: string, key: string, audienceId: number, path: string): Promise<{ status: number; body: any }> {
  const res = await fetch(`${base}/v1/audiences/${audienceId}/recipients`, {
    method: 'POST',
    headers: { authorization: `Bearer ${key}`, 'content-type': 'application/x-ndjson' },
    body: Readable.toWeb(createReadStream(path, { highWaterMark: 1 << 20 })) as ReadableStream,
    duplex: 'half',
  } as RequestInit);
  return { status: res.status, body: await res.json() };
}

/** Streams an NDJSON file in (`uploadNdjson`) and follows the import job to its end: the job's last state. */
export async function importNdjson(
  base: string,
  key: string,
  audienceId: number,
  path: string,
): Promise<{ imported: number; status: string; import_id: number }> {
  const call = apiCaller(base, key);
  let job = (await uploadNdjson(base, key, audienceId, path)).body as { imported: number; status: string; import_id: number };
  // A large import answers 202 once its body is staged; the job (GET /v1/imports/:id, which names it `id`)
  // says when it is in.
  const importId = job.import_id;
  while (job.status !== 'completed' && job.status !== 'failed') {
    await new Promise((r) => setTimeout(r, 100));
    job = await call('GET', `/v1/imports/${importId}`);
  }
  return { ...job, import_id: importId };
}

/** `n` recipients as NDJSON lines (`prefix` + 1…n, each with an address), 10,000 lines per string. */
export function* ndjsonLines(n: number, prefix: string): Generator<string> {
  for (let start = 1; start <= n; start += 10_000) {
    let s = '';
    for (let i = start; i <= Math.min(n, start + 9999); i++) s += `{"user_id":"${prefix}${i}","address":"u${i}@example.test"}\n`;
    yield s;
  }
}

/**
 * `GET /healthz`'s checks: one cheap round trip to each service Herald needs, each bounded by its own
 * timeout, so a service that hangs instead of refusing shows as down rather than hanging the answer.
 */
import { masters, type RedisClient } from './stream/redis-connect.js';
import type { ClickHouse } from './clickhouse/client.js';
import type { Db } from './store/db.js';

/** Resolves with `p`, or rejects after `ms`. */
export function withTimeout<T>(p: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer in ${ms} ms`)), ms);
    timer.unref();
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}

export interface HealthTargets {
  db: Db;
  redis: RedisClient;
  ch: ClickHouse;
  /** each check's bound */
  timeoutMs: number;
}

/** `{postgres, redis, clickhouse}` → `'ok'` or what went wrong. */
export function healthChecks(t: HealthTargets): () => Promise<Record<string, string>> {
  const check = async (name: string, fn: () => Promise<unknown>): Promise<[string, string]> => {
    try {
      await withTimeout(fn(), t.timeoutMs);
      return [name, 'ok'];
    } catch (err) {
      return [name, (err as Error).message || 'unreachable'];
    }
  };
  return async () => {
    const results = await Promise.all([
      check('postgres', () => t.db.query('SELECT 1')),
      // Every master: on a cluster, a master away stops the campaigns whose slots it serves.
      check('redis', async () => Promise.all((await masters(t.redis)).map((m) => m.ping()))),
      check('clickhouse', async () => {
        if (!(await t.ch.ping())) throw new Error('ping failed');
      }),
    ]);
    return Object.fromEntries(results);
  };
}

/**
 * PostgreSQL pool and error mapping. int8 columns are parsed as JS numbers: ids and counts stay far
 * below 2^53 (a campaign of 10^15 recipients is not a concern), and numbers are what the API returns.
 */
import pg from 'pg';
import { HeraldError } from '../errors.js';

pg.types.setTypeParser(20, (v: string) => Number(v));

export type Db = pg.Pool;

export function createDb(databaseUrl: string, max = 10): Db {
  const pool = new pg.Pool({ connectionString: databaseUrl, max, idleTimeoutMillis: 30_000 });
  // An idle client that loses its connection emits 'error' on the pool; without a listener that kills
  // the process. The next query gets a fresh connection, so logging is enough.
  pool.on('error', () => undefined);
  return pool;
}

/** Connection-level failures (server down, network) are retryable; SQL errors are not. */
export function wrapPgError(err: unknown, what: string): HeraldError {
  if (err instanceof HeraldError) return err;
  const e = err as { code?: string; message?: string };
  const connection = e.code === undefined || e.code.startsWith('08') || e.code === '57P01' || e.code === 'ECONNREFUSED';
  return new HeraldError(connection ? 'DEPENDENCY_UNAVAILABLE' : 'INTERNAL', `PostgreSQL ${what}: ${e.message ?? String(err)}`, {}, err);
}

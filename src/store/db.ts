/**
 * PostgreSQL pool and error mapping. int8 columns are parsed as JS numbers: ids and counts stay far
 * below 2^53 (a campaign of 10^15 recipients is not a concern), and numbers are what the API returns.
 */
import { once } from 'node:events';
import pg from 'pg';
import { from as copyFrom } from 'pg-copy-streams';
import { HeraldError } from '../errors.js';

pg.types.setTypeParser(20, (v: string) => Number(v));

export type Db = pg.Pool;

export function createDb(databaseUrl: string, max = 10): Db {
  // A bounded wait for a connection: a PostgreSQL that stops answering must surface as an error. No
  // global query timeout: a 10M-row import legitimately runs for minutes (the dispatcher's poll has its own).
  const pool = new pg.Pool({ connectionString: databaseUrl, max, idleTimeoutMillis: 30_000, connectionTimeoutMillis: 5_000 });
  // An idle client that loses its connection emits 'error' on the pool; without a listener that kills
  // the process. The next query gets a fresh connection, so logging is enough.
  pool.on('error', () => undefined);
  // The pool listens only to idle clients: a checked-out client whose connection resets between two of
  // its queries (a transaction's steps, a job holding its advisory lock) emits 'error' with nobody
  // listening, which would kill the process. Its next query fails on its own and its caller handles that.
  pool.on('connect', (client) => {
    client.on('error', () => undefined);
  });
  return pool;
}

/** Connection-level failures (server down, network) are retryable; SQL errors are not. */
export function wrapPgError(err: unknown, what: string): HeraldError {
  if (err instanceof HeraldError) return err;
  const e = err as { code?: string; message?: string };
  // A SQLSTATE is five characters; anything else (ECONNRESET, ECONNREFUSED, timeouts, no code at all)
  // is the connection, as are classes 08 (connection), 57P0x (shutdown) and 53300 (too many clients).
  const code = e.code ?? '';
  const connection = !/^[0-9A-Z]{5}$/.test(code) || code.startsWith('08') || code.startsWith('57P0') || code === '53300';
  return new HeraldError(connection ? 'DEPENDENCY_UNAVAILABLE' : 'INTERNAL', `PostgreSQL ${what}: ${e.message ?? String(err)}`, {}, err);
}

/** Makes a transaction's statements give up within a second once Herald's end of the connection is gone. */
export const CHECK_CLIENT = `SET LOCAL client_connection_check_interval = '1s'`;

// Deadlock, lock timeout, serialization failure, query cancelled: a background job's transaction that
// failed on these (or on the connection) is tried again later rather than failed.
const RETRYABLE_SQLSTATES = new Set(['40P01', '55P03', '40001', '57014']);

/** Whether `err` is one of those SQLSTATEs: PostgreSQL answered, and the same work may succeed later. */
export function retryableSqlState(err: unknown): boolean {
  return RETRYABLE_SQLSTATES.has((err as { code?: string }).code ?? '');
}

/** Whether a background job's failed transaction is tried again later (`e` is `err` wrapped). */
export function triedAgainLater(err: unknown, e: HeraldError): boolean {
  return e.retryable || retryableSqlState(err);
}

/**
 * Runs `fn` in a transaction on one pooled connection: COMMIT when it returns (unless it rolled back
 * itself), ROLLBACK when it throws. Errors come out as HeraldErrors naming `what`.
 */
export async function inTransaction<T>(db: Db, what: string, fn: (client: pg.PoolClient) => Promise<T>): Promise<T> {
  let client: pg.PoolClient;
  try {
    client = await db.connect();
  } catch (err) {
    throw wrapPgError(err, `connect for ${what}`);
  }
  try {
    await client.query('BEGIN');
    const out = await fn(client);
    await client.query('COMMIT');
    return out;
  } catch (err) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw wrapPgError(err, what);
  } finally {
    client.release();
  }
}

/**
 * Streams COPY text from `chunks` into `COPY … FROM STDIN`, waiting on the socket's drain (backpressure).
 * A source that throws aborts the COPY (and so the transaction) with its own error.
 */
export async function copyIn(client: pg.PoolClient, sql: string, chunks: AsyncIterable<string | Buffer>): Promise<void> {
  const copy = client.query(copyFrom(sql));
  const finished = once(copy, 'finish');
  // Attach early so a COPY error while the source is still being read is not an unhandled rejection.
  finished.catch(() => undefined);
  try {
    for await (const text of chunks) {
      if (!copy.write(text)) await Promise.race([once(copy, 'drain'), finished]);
    }
  } catch (err) {
    copy.destroy(err as Error);
    throw err;
  }
  copy.end();
  await finished;
}

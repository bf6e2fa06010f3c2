/**
 * A test's own pgbouncer (Debian's /usr/sbin/pgbouncer) in transaction mode, in front of a PostgreSQL:
 * its own ini in a temp dir, listening on a spare 127.0.0.1 port, every database of the server behind
 * it (`*`). A small pool, so server connections really pass from client to client, and no reset query,
 * so anything a client leaves on one (a session SET, a session lock) stays there for the next: what the
 * leak check (`sessionLeftovers`) looks for. pgbouncer refuses to run as root, so it runs as `postgres`.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import net, { type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pg from 'pg';

export const PGBOUNCER = '/usr/sbin/pgbouncer';

export interface PgBouncerOptions {
  /** the PostgreSQL behind it */
  host?: string;
  port?: number;
  /** server connections per (database, user) */
  poolSize?: number;
}

export interface PgBouncer {
  port: number;
  /** `url` with its host and port swapped for pgbouncer's */
  route(url: string): string;
  /** a statement on the admin console (`SHOW SERVERS`, `PAUSE db`, `RESUME db`) */
  admin<T extends pg.QueryResultRow = pg.QueryResultRow>(sql: string): Promise<T[]>;
  poolSize: number;
  stop(): Promise<void>;
}

export async function sparePort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as AddressInfo).port;
  await new Promise((r) => s.close(r));
  return port;
}

async function listening(port: number, timeoutMs: number, child: ChildProcess, log: () => string): Promise<void> {
  const t0 = Date.now();
  for (;;) {
    if (child.exitCode !== null) throw new Error(`pgbouncer exited (${child.exitCode}): ${log()}`);
    const ok = await new Promise<boolean>((resolve) => {
      const c = net.connect({ host: '127.0.0.1', port });
      c.once('connect', () => (c.destroy(), resolve(true)));
      c.once('error', () => resolve(false));
    });
    if (ok) return;
    if (Date.now() - t0 > timeoutMs) throw new Error(`pgbouncer not listening on ${port}: ${log()}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

export async function startPgBouncer(opts: PgBouncerOptions = {}): Promise<PgBouncer> {
  const dir = mkdtempSync(path.join(tmpdir(), 'herald-pgbouncer-'));
  // read and written by the postgres user pgbouncer switches to
  chmodSync(dir, 0o777);
  const port = await sparePort();
  const poolSize = opts.poolSize ?? 10;
  const ini = path.join(dir, 'pgbouncer.ini');
  writeFileSync(path.join(dir, 'users.txt'), '"postgres" ""\n', { mode: 0o644 });
  writeFileSync(
    ini,
    [
      '[databases]',
      `* = host=${opts.host ?? '127.0.0.1'} port=${opts.port ?? 5432}`,
      '[pgbouncer]',
      'listen_addr = 127.0.0.1',
      `listen_port = ${port}`,
      'unix_socket_dir =',
      'auth_type = trust',
      `auth_file = ${path.join(dir, 'users.txt')}`,
      'admin_users = postgres',
      'pool_mode = transaction',
      'max_client_conn = 1000',
      `default_pool_size = ${poolSize}`,
      'reserve_pool_size = 0',
      // Nothing resets a server connection between clients: what one leaves, the next one gets.
      'server_reset_query =',
      'server_reset_query_always = 0',
      'ignore_startup_parameters = extra_float_digits',
      'query_wait_timeout = 120',
      'log_connections = 0',
      'log_disconnections = 0',
      '',
    ].join('\n'),
    { mode: 0o644 },
  );
  let output = '';
  const child = spawn(PGBOUNCER, process.getuid?.() === 0 ? ['-u', 'postgres', ini] : [ini], { stdio: ['ignore', 'pipe', 'pipe'] });
  child.stdout!.on('data', (d: Buffer) => (output = (output + d.toString()).slice(-4000)));
  child.stderr!.on('data', (d: Buffer) => (output = (output + d.toString()).slice(-4000)));
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  try {
    await listening(port, 10_000, child, () => output);
  } catch (err) {
    child.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
  return {
    port,
    poolSize,
    route(url: string): string {
      const u = new URL(url);
      u.hostname = '127.0.0.1';
      u.port = String(port);
      return u.toString();
    },
    async admin<T extends pg.QueryResultRow>(sql: string): Promise<T[]> {
      const c = new pg.Client({ host: '127.0.0.1', port, user: 'postgres', database: 'pgbouncer' });
      await c.connect();
      try {
        return (await c.query<T>(sql)).rows;
      } finally {
        await c.end();
      }
    },
    async stop(): Promise<void> {
      if (child.exitCode === null) {
        child.kill('SIGTERM');
        await Promise.race([exited, new Promise((r) => setTimeout(r, 3000))]);
        if (child.exitCode === null) child.kill('SIGKILL');
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** What a client left on one server connection that the next client on it would inherit. */
export interface Leftovers {
  pid: number;
  /** settings changed by a session SET (pgbouncer's own client parameters aside) */
  settings: string[];
  advisoryLocks: number;
  preparedStatements: string[];
  cursors: string[];
  listening: string[];
  tempTables: string[];
}

// The client parameters pgbouncer itself sets on a server connection for each client (it tracks them), and
// the transaction's own characteristics, which every transaction starts from the defaults (a past SET
// TRANSACTION leaves their source at 'session', not their value).
const NOT_SESSION_STATE = new Set([
  'client_encoding',
  'datestyle',
  'timezone',
  'standard_conforming_strings',
  'application_name',
  'transaction_isolation',
  'transaction_read_only',
  'transaction_deferrable',
]);

/**
 * Looks at every server connection of `database`'s pool: `poolSize` clients through pgbouncer each open a
 * transaction at once, so each holds a different server connection (the idle ones first), and each reads
 * what a previous client left on it. Empty lists everywhere: nothing leaks between clients.
 */
export async function sessionLeftovers(bouncer: PgBouncer, database: string): Promise<Leftovers[]> {
  const clients = Array.from(
    { length: bouncer.poolSize },
    () => new pg.Client({ host: '127.0.0.1', port: bouncer.port, user: 'postgres', database }),
  );
  await Promise.all(clients.map((c) => c.connect()));
  try {
    await Promise.all(clients.map((c) => c.query('BEGIN')));
    return await Promise.all(
      clients.map(async (c) => {
        const one = async <T extends pg.QueryResultRow>(sql: string): Promise<T[]> => (await c.query<T>(sql)).rows;
        const settings = (await one<{ name: string }>(`SELECT name FROM pg_settings WHERE source = 'session'`))
          .map((r) => r.name)
          .filter((n) => !NOT_SESSION_STATE.has(n.toLowerCase()));
        const locks = await one<{ n: number }>(
          `SELECT count(*)::int AS n FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()`,
        );
        return {
          pid: (await one<{ pid: number }>('SELECT pg_backend_pid() AS pid'))[0]!.pid,
          settings,
          advisoryLocks: locks[0]!.n,
          preparedStatements: (await one<{ name: string }>('SELECT name FROM pg_prepared_statements')).map((r) => r.name),
          cursors: (await one<{ name: string }>('SELECT name FROM pg_cursors')).map((r) => r.name),
          listening: (await one<{ c: string }>('SELECT pg_listening_channels() AS c')).map((r) => r.c),
          tempTables: (await one<{ t: string }>(`SELECT relname AS t FROM pg_class WHERE relnamespace = pg_my_temp_schema()`)).map(
            (r) => r.t,
          ),
        };
      }),
    );
  } finally {
    await Promise.all(clients.map((c) => c.query('ROLLBACK').catch(() => undefined)));
    await Promise.all(clients.map((c) => c.end().catch(() => undefined)));
  }
}

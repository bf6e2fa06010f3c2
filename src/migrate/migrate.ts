/**
 * Applies schemas/postgres/*.sql and schemas/clickhouse/*.sql in file-name order, each once, and
 * records them in a `herald_migrations` table in each database. Re-running is a no-op. Also creates
 * the databases themselves when missing, so a fresh machine needs no manual step.
 */
import { readdir, readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import path from 'node:path';
import pg from 'pg';
import { ClickHouse, type ClickHouseOptions } from '../clickhouse/client.js';
import { identifier, str } from '../clickhouse/sql.js';
import { ClusterSchema, clusterMigrations } from './cluster-schema.js';

export const SCHEMAS_DIR = fileURLToPath(new URL('../../schemas/', import.meta.url));

// An arbitrary constant: one advisory lock key so two processes starting at once migrate one at a time.
const PG_MIGRATION_LOCK = 7_231_004_512;

export interface MigrationFile {
  name: string;
  sql: string;
}

export async function loadMigrations(kind: 'postgres' | 'clickhouse'): Promise<MigrationFile[]> {
  const dir = path.join(SCHEMAS_DIR, kind);
  const names = (await readdir(dir)).filter((n) => /^\d{4}_[a-z0-9_]+\.sql$/.test(n)).sort();
  return Promise.all(names.map(async (name) => ({ name, sql: await readFile(path.join(dir, name), 'utf8') })));
}

/** Splits a ClickHouse file into statements (the HTTP interface takes one per request). */
export function splitStatements(sql: string): string[] {
  const withoutComments = sql
    .split('\n')
    .filter((line) => !line.trim().startsWith('--'))
    .join('\n');
  return withoutComments
    .split(/;\s*(?:\n|$)/)
    .map((s) => s.trim())
    .filter((s) => s.length > 0);
}

export async function ensurePostgresDatabase(databaseUrl: string): Promise<void> {
  const u = new URL(databaseUrl);
  const db = decodeURIComponent(u.pathname.replace(/^\//, '')) || 'postgres';
  const admin = new URL(databaseUrl);
  admin.pathname = '/postgres';
  const client = new pg.Client({ connectionString: admin.toString() });
  await client.connect();
  try {
    const r = await client.query('SELECT 1 FROM pg_database WHERE datname = $1', [db]);
    if (r.rowCount === 0) {
      try {
        await client.query(`CREATE DATABASE "${db.replace(/"/g, '""')}"`);
      } catch (err) {
        // Created meanwhile by another process: 42P04 when it had committed, 23505 (pg_database's unique
        // name index) when both CREATE DATABASE statements ran at once.
        const code = (err as { code?: string }).code;
        if (code !== '42P04' && code !== '23505') throw err;
      }
    }
  } finally {
    await client.end();
  }
}

export async function migratePostgres(databaseUrl: string): Promise<string[]> {
  await ensurePostgresDatabase(databaseUrl);
  const client = new pg.Client({ connectionString: databaseUrl });
  await client.connect();
  const applied: string[] = [];
  // Each step is one transaction holding the migration lock (a transaction-level one: through pgbouncer in
  // transaction mode, the statements of a session may run on different server connections, and a session
  // lock would stay behind on whichever took it). The applied set is read under the lock, so a migration a
  // process starting at the same time applied meanwhile is not applied twice.
  const locked = async <T>(fn: () => Promise<T>): Promise<T> => {
    await client.query('BEGIN');
    try {
      await client.query('SELECT pg_advisory_xact_lock($1)', [PG_MIGRATION_LOCK]);
      const out = await fn();
      await client.query('COMMIT');
      return out;
    } catch (err) {
      await client.query('ROLLBACK').catch(() => undefined);
      throw err;
    }
  };
  const appliedNames = async (): Promise<Set<string>> =>
    new Set((await client.query<{ name: string }>('SELECT name FROM herald_migrations')).rows.map((r) => r.name));
  try {
    const done = await locked(async () => {
      await client.query(
        'CREATE TABLE IF NOT EXISTS herald_migrations (name text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())',
      );
      return appliedNames();
    });
    for (const m of await loadMigrations('postgres')) {
      if (done.has(m.name)) continue;
      const ran = await locked(async () => {
        if ((await appliedNames()).has(m.name)) return false;
        try {
          await client.query(m.sql);
        } catch (err) {
          throw new Error(`migration postgres/${m.name} failed: ${(err as Error).message}`, { cause: err });
        }
        await client.query('INSERT INTO herald_migrations (name) VALUES ($1)', [m.name]);
        return true;
      });
      if (ran) applied.push(`postgres/${m.name}`);
    }
  } finally {
    await client.end();
  }
  return applied;
}

/**
 * `cluster` (HERALD_CLICKHOUSE_CLUSTER): the cluster form of every file instead (cluster-schema.ts), run
 * ON CLUSTER through the server at `url`; the ledger is itself a cluster table, so any server sees it.
 */
/** `connect`: a transport other than HTTP for each client it opens (ClickHouseOptions.connection). */
export async function migrateClickHouse(
  url: string,
  database: string,
  cluster = '',
  connect?: () => NonNullable<ClickHouseOptions['connection']>,
): Promise<string[]> {
  const schema = cluster === '' ? null : new ClusterSchema({ cluster, database });
  const via = (): Pick<ClickHouseOptions, 'connection'> => (connect === undefined ? {} : { connection: connect() });
  const admin = new ClickHouse({ url, database: 'default', cluster, ...via() });
  try {
    await admin.command(schema?.createDatabase() ?? `CREATE DATABASE IF NOT EXISTS ${identifier(database)}`);
  } finally {
    await admin.close();
  }
  const ch = new ClickHouse({ url, database, cluster, ...via() });
  const applied: string[] = [];
  try {
    const ledger = 'CREATE TABLE IF NOT EXISTS herald_migrations (name String, applied_at DateTime) ENGINE = MergeTree() ORDER BY name';
    for (const stmt of schema === null ? [ledger] : schema.statement(ledger, 'herald_migrations')) await ch.command(stmt);
    const done = new Set((await ch.rows<{ name: string }>('SELECT name FROM herald_migrations')).map((r) => r.name));
    const files = (await loadMigrations('clickhouse')).map((m) => ({ name: m.name, statements: splitStatements(m.sql) }));
    for (const m of schema === null ? files : clusterMigrations(files, schema)) {
      if (done.has(m.name)) continue;
      // Statements use IF NOT EXISTS, so a file interrupted half-way re-applies cleanly.
      for (const stmt of m.statements) await ch.command(stmt);
      await ch.command(`INSERT INTO herald_migrations (name, applied_at) VALUES (${str(m.name)}, now())`);
      applied.push(`clickhouse/${m.name}`);
    }
  } finally {
    await ch.close();
  }
  return applied;
}

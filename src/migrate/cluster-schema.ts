/**
 * The cluster form of Herald's ClickHouse schema (HERALD_CLICKHOUSE_CLUSTER), derived statement by
 * statement from the single-server migrations, so the two can never drift apart:
 *   CREATE TABLE t … ENGINE = XMergeTree(args)  ->  t_local ON CLUSTER, ReplicatedXMergeTree(path, replica, args),
 *                                                   and t ON CLUSTER, Distributed over t_local
 *   CREATE MATERIALIZED VIEW v TO t AS … FROM s  ->  v ON CLUSTER, TO t_local, FROM s_local (each shard
 *                                                   aggregates what it stores)
 *   ALTER TABLE t …                             ->  the ALTER on t_local ON CLUSTER, then t re-created over
 *                                                   it (18.16 refuses ALTER ON CLUSTER of a Distributed table
 *                                                   in a cluster with internal replication; it holds no rows)
 *   INSERT INTO t SELECT …                      ->  unchanged: through the Distributed tables
 * Anything else is refused, so a new migration of another form fails loudly instead of running on one
 * server only. The Distributed tables keep the single-server names, so every query Herald and the analyst
 * queries run is the same on both. Rows are sharded by `campaign_id`: a campaign lives on one shard, so a
 * sub-batch is stored whole or not at all (the sink's landed check) and every per-campaign aggregate
 * (the max() of campaign_batch_counts) is complete on that shard. Tables without the column use rand().
 * Names are qualified with the database: ON CLUSTER statements run on every server in its default database.
 */
import { identifier } from '../clickhouse/sql.js';

export interface ClusterSchemaOptions {
  cluster: string;
  database: string;
  /** ZooKeeper path of a Replicated table: `{shard}` and `{replica}` are the servers' macros */
  zkPrefix?: string;
  /**
   * What the tables with a campaign are sharded by. `campaign` (the default) is the one Herald supports;
   * `user` (cityHash64(user_id)) is here to measure the alternative (bench/clickhouse-cluster.ts): it
   * splits a sub-batch over shards, which breaks the landed check and max() of campaign_batch_counts.
   */
  shardBy?: 'campaign' | 'user';
}

/** The ZooKeeper path prefix; the database and local table name follow it. */
export const ZK_PREFIX = '/clickhouse/tables/{shard}';

export const LOCAL_SUFFIX = '_local';

interface TableInfo {
  shardKey: string;
}

const CREATE_TABLE = /^CREATE TABLE IF NOT EXISTS (\w+)\s*(\([\s\S]*\))\s*ENGINE\s*=\s*(\w*MergeTree)\(([^)]*)\)([\s\S]*)$/;
const CREATE_MV = /^CREATE MATERIALIZED VIEW IF NOT EXISTS (\w+) TO (\w+) AS\s+(SELECT[\s\S]*)$/;
const ALTER_TABLE = /^ALTER TABLE (\w+) ([\s\S]+)$/;
const INSERT_SELECT = /^INSERT INTO (\w+)\s+SELECT\b/;

/** Rewrites statements into their cluster form, keeping what it learns of tables in `tables` across calls. */
export class ClusterSchema {
  private readonly tables = new Map<string, TableInfo>();
  private readonly on: string;
  private readonly zk: string;

  constructor(private readonly opts: ClusterSchemaOptions) {
    this.on = `ON CLUSTER ${identifier(opts.cluster)}`;
    this.zk = opts.zkPrefix ?? ZK_PREFIX;
  }

  /** The database itself, on every server. */
  createDatabase(): string {
    return `CREATE DATABASE IF NOT EXISTS ${identifier(this.opts.database)} ${this.on}`;
  }

  dropDatabase(): string {
    return `DROP DATABASE IF EXISTS ${identifier(this.opts.database)} ${this.on}`;
  }

  /** The cluster statements of one single-server statement; throws for a form it does not know. */
  statement(sql: string, where = 'statement'): string[] {
    const s = sql.trim();
    let m: RegExpExecArray | null;
    if ((m = CREATE_TABLE.exec(s)) !== null) {
      const [, name, columns, engine, args, rest] = m as unknown as [string, string, string, string, string, string];
      if (engine.startsWith('Replicated')) throw new Error(`${where}: ${name} is already Replicated; write the single-server form`);
      const byUser = this.opts.shardBy === 'user' && /\buser_id\s+String\b/.test(columns) ? 'cityHash64(user_id)' : null;
      const shardKey = byUser ?? (/\bcampaign_id\s+UInt64\b/.test(columns) ? 'campaign_id' : 'rand()');
      this.tables.set(name, { shardKey });
      const local = this.local(name);
      const path = `'${this.zk}/${this.opts.database}/${name}${LOCAL_SUFFIX}'`;
      const engineArgs = [path, "'{replica}'", ...(args.trim() === '' ? [] : [args.trim()])].join(', ');
      return [
        `CREATE TABLE IF NOT EXISTS ${local} ${this.on} ${columns} ENGINE = Replicated${engine}(${engineArgs})${rest}`,
        this.distributed(name),
      ];
    }
    if ((m = CREATE_MV.exec(s)) !== null) {
      const [, view, target, select] = m as unknown as [string, string, string, string];
      if (/\bJOIN\b/i.test(select)) throw new Error(`${where}: view ${view} joins; no cluster form is defined for that`);
      const body = select.replace(/\bFROM\s+(\w+)/g, (_all, src: string) => `FROM ${this.local(this.known(src, where))}`);
      return [
        `CREATE MATERIALIZED VIEW IF NOT EXISTS ${this.qualified(view)} ${this.on} TO ${this.local(this.known(target, where))} AS ${body}`,
      ];
    }
    if ((m = ALTER_TABLE.exec(s)) !== null) {
      const [, name, change] = m as unknown as [string, string, string];
      this.known(name, where);
      return [
        `ALTER TABLE ${this.local(name)} ${this.on} ${change}`,
        `DROP TABLE IF EXISTS ${this.qualified(name)} ${this.on}`,
        this.distributed(name),
      ];
    }
    if ((m = INSERT_SELECT.exec(s)) !== null) {
      this.known(m[1]!, where);
      return [s];
    }
    throw new Error(`${where}: no cluster form for this statement (${s.slice(0, 80)}…); add one in src/migrate/cluster-schema.ts`);
  }

  /** Every table seen so far (single-server name), for the completeness test. */
  tableNames(): string[] {
    return [...this.tables.keys()];
  }

  private distributed(name: string): string {
    const db = identifier(this.opts.database);
    const shardKey = this.tables.get(name)!.shardKey;
    return (
      `CREATE TABLE IF NOT EXISTS ${this.qualified(name)} ${this.on} AS ${this.local(name)} ` +
      `ENGINE = Distributed(${identifier(this.opts.cluster)}, ${db}, ${identifier(name + LOCAL_SUFFIX)}, ${shardKey})`
    );
  }

  private known(name: string, where: string): string {
    if (!this.tables.has(name)) throw new Error(`${where}: table ${name} is not created by an earlier migration`);
    return name;
  }

  private qualified(name: string): string {
    return `${identifier(this.opts.database)}.${identifier(name)}`;
  }

  private local(name: string): string {
    return this.qualified(name + LOCAL_SUFFIX);
  }
}

/**
 * The cluster form of every migration file, in order: earlier files define the tables later ones alter,
 * so all are rewritten even when only the last is pending.
 */
export function clusterMigrations(
  files: ReadonlyArray<{ name: string; statements: readonly string[] }>,
  schema: ClusterSchema,
): Array<{ name: string; statements: string[] }> {
  return files.map((f) => ({
    name: f.name,
    statements: f.statements.flatMap((stmt, i) => schema.statement(stmt, `clickhouse/${f.name} statement ${i + 1}`)),
  }));
}

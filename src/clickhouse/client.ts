/**
 * Thin adapter over @clickhouse/client: creation, JSON queries, statements, raw inserts, and the
 * mapping of every failure to HeraldError. Settings are limited to ones ClickHouse 18.16 knows:
 * an unknown setting fails the whole request there.
 */
import { ClickHouseLogLevel, createClient, type ClickHouseClient, type ClickHouseClientConfigOptions } from '@clickhouse/client';
import { Readable } from 'node:stream';
import { HeraldError } from '../errors.js';

export interface ClickHouseOptions {
  url: string;
  database: string;
  /** per request */
  requestTimeoutMs?: number;
  /**
   * A cluster (HERALD_CLICKHOUSE_CLUSTER; '' or absent: one server). Every request then carries the
   * settings the cluster schema (migrate/cluster-schema.ts) needs, all known to 18.16 and 23-25:
   *   insert_distributed_sync=1   an insert into a Distributed table answers once the shard stored it, so
   *                               the sink's landed check sees what an acknowledged insert wrote
   *   insert_deduplicate=0        Replicated tables would drop a block identical to a recent one: two
   *                               inserts of equal counts in the same minute aggregate into identical view
   *                               blocks, both genuine (the sink's landed check and max() keep retries once)
   *   distributed_product_mode=local   `IN (SELECT … FROM message_events)` inside a distributed query reads
   *                               each shard's own table: a campaign lives on one shard
   *   max_replica_delay_for_distributed_queries=0   a query reads the replica Herald talks to, which holds
   *                               every row Herald inserted there, never another one of the same shard: a
   *                               replica just restarted reports a huge delay until it has read the
   *                               replication log, and the other may lag (stale progress, landed checks)
   */
  cluster?: string;
  /**
   * Another transport than HTTP to the server at `url` (@clickhouse/client's pluggable connection): the
   * compatibility test runs Herald's statements on an embedded modern ClickHouse through chDB's. Closed
   * with this client.
   */
  connection?: NonNullable<ClickHouseClientConfigOptions['connection']>;
}

const CLUSTER_SETTINGS = {
  insert_distributed_sync: 1,
  insert_deduplicate: 0,
  distributed_product_mode: 'local',
  max_replica_delay_for_distributed_queries: '0',
} as const;

export class ClickHouse {
  readonly client: ClickHouseClient;
  readonly database: string;

  constructor(opts: ClickHouseOptions) {
    const u = new URL(opts.url);
    this.database = opts.database;
    this.client = createClient({
      url: `${u.protocol}//${u.host}`,
      username: decodeURIComponent(u.username) || 'default',
      password: decodeURIComponent(u.password),
      database: opts.database,
      request_timeout: opts.requestTimeoutMs ?? 60_000,
      compression: { request: false, response: false },
      keep_alive: { enabled: true },
      // Every failure comes back to the caller as a HeraldError and is logged there, once.
      log: { level: ClickHouseLogLevel.OFF },
      ...(opts.cluster ? { clickhouse_settings: CLUSTER_SETTINGS } : {}),
      ...(opts.connection ? { connection: opts.connection } : {}),
    });
  }

  /** SELECT … returning JSONEachRow rows. `max_execution_time` stops a runaway query on the server too. */
  async rows<T>(query: string, maxSeconds = 30, settings: Record<string, number> = {}): Promise<T[]> {
    try {
      const rs = await this.client.query({
        query,
        format: 'JSONEachRow',
        clickhouse_settings: { max_execution_time: maxSeconds, ...settings },
      });
      return await rs.json<T>();
    } catch (err) {
      throw wrap(err, query);
    }
  }

  /**
   * SELECT … returning JSONEachRow rows as they arrive, `batchRows` at a time: for results too large to
   * hold at once (a cap state rebuilt from a day of a topic's messages).
   */
  async *rowBatches<T>(query: string, batchRows: number, maxSeconds = 300): AsyncGenerator<T[]> {
    let batch: T[] = [];
    try {
      const rs = await this.client.query({ query, format: 'JSONEachRow', clickhouse_settings: { max_execution_time: maxSeconds } });
      for await (const rows of rs.stream() as AsyncIterable<Array<{ json<R>(): R }>>) {
        for (const row of rows) {
          batch.push(row.json<T>());
          if (batch.length >= batchRows) {
            yield batch;
            batch = [];
          }
        }
      }
    } catch (err) {
      throw wrap(err, query);
    }
    if (batch.length > 0) yield batch;
  }

  async command(query: string): Promise<void> {
    try {
      await this.client.command({ query });
    } catch (err) {
      throw wrap(err, query);
    }
  }

  /**
   * Sends pre-encoded rows (`INSERT INTO t FORMAT Native` with Buffers) through `exec`, the path that
   * works on 18.16, and reads the whole answer: ClickHouse can send an exception after a 2xx start, so a
   * response body that carries one is a failed insert.
   */
  async insertRaw(table: string, format: 'Native' | 'TabSeparated', chunks: Buffer[], queryId?: string): Promise<void> {
    const query = `INSERT INTO ${table} FORMAT ${format}`;
    try {
      const res = await this.client.exec({
        query,
        values: Readable.from(chunks, { objectMode: false }),
        ...(queryId === undefined ? {} : { query_id: queryId }),
      });
      let body = '';
      for await (const part of res.stream as AsyncIterable<Buffer>) {
        if (body.length < 4096) body += part.toString('utf8');
      }
      if (/Code: \d+|Exception/.test(body)) throw new Error(body.trim().slice(0, 1000));
    } catch (err) {
      throw wrap(err, query);
    }
  }

  async ping(): Promise<boolean> {
    const r = await this.client.ping();
    return r.success;
  }

  async close(): Promise<void> {
    await this.client.close();
  }
}

/** 18.16 answers errors as plain Error text; the code is parsed out of "Code: N". */
export function clickhouseCode(err: unknown): number | null {
  const m = /Code: (\d+)/.exec(err instanceof Error ? err.message : String(err));
  return m ? Number(m[1]) : null;
}

function wrap(err: unknown, query: string): HeraldError {
  const msg = err instanceof Error ? err.message : String(err);
  return new HeraldError(
    'CLICKHOUSE_FAILED',
    `ClickHouse: ${msg.slice(0, 500)} (query: ${query.slice(0, 120)})`,
    { code: clickhouseCode(err) },
    err,
  );
}

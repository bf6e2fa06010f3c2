/**
 * Decides where integration tests find PostgreSQL, Redis and ClickHouse: the env URLs when given, else
 * the local defaults when they answer, else testcontainers when a Docker engine is present. Never a mock.
 * With HERALD_TEST_REDIS=cluster, Herald's Redis is a Redis Cluster: REDIS_CLUSTER_NODES when given, else a
 * 3-master cluster of the run's own (test/helpers/redis-cluster.ts).
 */
import net from 'node:net';
import { execFileSync } from 'node:child_process';
import { OwnRedisCluster } from './redis-cluster.js';

export interface ServiceUrls {
  databaseUrl: string;
  redisUrl: string;
  clickhouseUrl: string;
  /** the Redis Cluster tests run against (HERALD_TEST_REDIS=cluster); empty: one Redis at redisUrl */
  redisClusterNodes: string[];
}

const DEFAULTS: Omit<ServiceUrls, 'redisClusterNodes'> = {
  databaseUrl: 'postgres://postgres@127.0.0.1:5432/postgres',
  redisUrl: 'redis://127.0.0.1:6379',
  clickhouseUrl: 'http://127.0.0.1:8123',
};

function reachable(url: string, defaultPort: number): Promise<boolean> {
  const u = new URL(url);
  return new Promise((resolve) => {
    const s = net.connect({ host: u.hostname, port: Number(u.port || defaultPort), timeout: 1000 });
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
    s.once('timeout', () => {
      s.destroy();
      resolve(false);
    });
  });
}

function dockerAvailable(): boolean {
  try {
    execFileSync('docker', ['info'], { stdio: 'ignore', timeout: 5000 });
    return true;
  } catch {
    return false;
  }
}

export interface ResolvedServices {
  urls: ServiceUrls;
  stop(): Promise<void>;
}

export async function resolveServices(env = process.env): Promise<ResolvedServices> {
  const urls: ServiceUrls = {
    databaseUrl: env.DATABASE_URL || DEFAULTS.databaseUrl,
    redisUrl: env.REDIS_URL || DEFAULTS.redisUrl,
    clickhouseUrl: env.CLICKHOUSE_URL || DEFAULTS.clickhouseUrl,
    redisClusterNodes: [],
  };
  const missing: Array<keyof ServiceUrls> = [];
  if (!(await reachable(urls.databaseUrl, 5432))) missing.push('databaseUrl');
  if (!(await reachable(urls.redisUrl, 6379))) missing.push('redisUrl');
  if (!(await reachable(urls.clickhouseUrl, 8123))) missing.push('clickhouseUrl');
  const stops: Array<() => Promise<unknown>> = [];
  if (missing.length > 0) {
    if (!dockerAvailable()) {
      throw new Error(
        `integration tests need real services; unreachable: ${missing.map((m) => `${m} (${urls[m]})`).join(', ')}. ` +
          'Run `bash scripts/services up`, set DATABASE_URL / REDIS_URL / CLICKHOUSE_URL, or provide a Docker engine.',
      );
    }
    // Loaded only here: testcontainers is for machines with Docker.
    if (missing.includes('databaseUrl')) {
      const { PostgreSqlContainer } = await import('@testcontainers/postgresql');
      const c = await new PostgreSqlContainer('postgres:16-alpine').start();
      urls.databaseUrl = c.getConnectionUri();
      stops.push(() => c.stop());
    }
    if (missing.includes('redisUrl')) {
      const { RedisContainer } = await import('@testcontainers/redis');
      const c = await new RedisContainer('redis:7-alpine').start();
      urls.redisUrl = c.getConnectionUrl();
      stops.push(() => c.stop());
    }
    if (missing.includes('clickhouseUrl')) {
      const { ClickHouseContainer } = await import('@testcontainers/clickhouse');
      const c = await new ClickHouseContainer('clickhouse/clickhouse-server:24.8').start();
      const u = new URL(c.getConnectionUrl());
      u.pathname = '/';
      urls.clickhouseUrl = u.toString();
      stops.push(() => c.stop());
    }
  }
  if (env.HERALD_TEST_REDIS === 'cluster') {
    const given = (env.REDIS_CLUSTER_NODES ?? '').split(',').filter((n) => n.trim() !== '');
    if (given.length > 0) urls.redisClusterNodes = given;
    else {
      const cluster = await OwnRedisCluster.start();
      urls.redisClusterNodes = cluster.nodes;
      stops.push(() => cluster.stop());
    }
  } else if (env.HERALD_TEST_REDIS !== undefined && env.HERALD_TEST_REDIS !== '' && env.HERALD_TEST_REDIS !== 'single') {
    throw new Error(`HERALD_TEST_REDIS must be 'single' or 'cluster', not '${env.HERALD_TEST_REDIS}'`);
  }
  return {
    urls,
    stop: async () => {
      await Promise.all(stops.map((s) => s()));
    },
  };
}

/**
 * The project-local ClickHouse cluster of `scripts/services up --clickhouse-cluster` (ZooKeeper and two
 * clickhouse-server nodes, `herald_cluster`) for integration tests: started when it is not up, stopped
 * after when the test started it, and one node stopped and started again on demand.
 *
 * Test files run in parallel, so each layout is a cluster of its own (directory, ZooKeeper port, HTTP
 * ports; native = HTTP + 1000, interserver = HTTP + 2000): the shards one below, and `REPLICAS`.
 */
import { execFile } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { ClickHouse } from '../../src/clickhouse/client.js';

const run = promisify(execFile);
const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const SERVICES = path.join(ROOT, 'scripts', 'services');

export const CLUSTER = 'herald_cluster';

export interface TestClusterOptions {
  /** `shards`: node n is shard n; `replicas`: one shard, node n is replica `chN` */
  layout: 'shards' | 'replicas';
  /** HERALD_CLICKHOUSE_CLUSTER_DIR, relative to the checkout */
  dir: string;
  /** HERALD_ZOOKEEPER_PORT */
  zookeeperPort: number;
  /** HERALD_CLICKHOUSE_CLUSTER_PORTS: node 1's and node 2's HTTP ports */
  httpPorts: readonly [number, number];
  /** HERALD_ZOOKEEPER_SESSION_TIMEOUT_MS: a killed node started again resumes replication only after it */
  zookeeperSessionTimeoutMs?: number;
}

/** Why the cluster cannot be started here, or null. In CI it always must (scripts/services installs ZooKeeper). */
export function clusterUnavailable(): string | null {
  if (process.env.CI) return null;
  const java = (process.env.PATH ?? '').split(':').some((d) => existsSync(path.join(d, 'java')));
  if (java && existsSync('/usr/share/java/zookeeper.jar')) return null;
  if (process.getuid?.() === 0 && existsSync('/usr/bin/apt-get')) return null;
  return "ZooKeeper is not installed (Debian's `zookeeper`) and installing it needs root";
}

export async function nodeUp(url: string): Promise<boolean> {
  try {
    return (await (await fetch(`${url}/ping`, { signal: AbortSignal.timeout(2000) })).text()) === 'Ok.\n';
  } catch {
    return false;
  }
}

/** One project-local cluster; Herald talks to node 1 (`nodeUrls[0]`). */
export class TestCluster {
  readonly nodeUrls: readonly [string, string];

  constructor(readonly options: TestClusterOptions) {
    this.nodeUrls = [`http://127.0.0.1:${options.httpPorts[0]}`, `http://127.0.0.1:${options.httpPorts[1]}`];
  }

  private async services(...args: string[]): Promise<void> {
    const { layout, dir, zookeeperPort, httpPorts, zookeeperSessionTimeoutMs = 30_000 } = this.options;
    const env = {
      ...process.env,
      HERALD_CLICKHOUSE_CLUSTER_LAYOUT: layout,
      HERALD_CLICKHOUSE_CLUSTER_DIR: dir,
      HERALD_ZOOKEEPER_PORT: String(zookeeperPort),
      HERALD_CLICKHOUSE_CLUSTER_PORTS: httpPorts.join(' '),
      HERALD_ZOOKEEPER_SESSION_TIMEOUT_MS: String(zookeeperSessionTimeoutMs),
    };
    try {
      await run('bash', [SERVICES, ...args], { cwd: ROOT, timeout: 180_000, env });
    } catch (err) {
      const e = err as { stdout?: string; stderr?: string; message: string };
      throw new Error(`scripts/services ${args.join(' ')} failed: ${e.message}\n${e.stdout ?? ''}${e.stderr ?? ''}`, { cause: err });
    }
  }

  /** Brings the cluster up; answers whether it was down (then `stop` after the test). */
  async start(): Promise<boolean> {
    const wasUp = (await Promise.all(this.nodeUrls.map(nodeUp))).every(Boolean);
    await this.services('up', '--clickhouse-cluster');
    return !wasUp;
  }

  async stop(): Promise<void> {
    await this.services('down', '--clickhouse-cluster');
  }

  /**
   * Kills node n (SIGKILL: a crash; a SIGTERM'd server goes on answering the connections it has for
   * seconds) and waits for its process to end.
   */
  async killNode(n: number): Promise<void> {
    const pidFile = path.join(ROOT, this.options.dir, `ch${n}`, 'clickhouse-server.pid');
    const pid = Number(readFileSync(pidFile, 'utf8').trim());
    process.kill(pid, 'SIGKILL');
    const t0 = Date.now();
    while (existsSync(`/proc/${pid}`)) {
      if (Date.now() - t0 > 20_000) throw new Error(`clickhouse node ${n} (pid ${pid}) did not stop`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  /** Starts whatever of the cluster is down (the stopped node). */
  async restartStopped(): Promise<void> {
    await this.services('up', '--clickhouse-cluster');
  }

  async dropDatabase(database: string): Promise<void> {
    const ch = new ClickHouse({ url: this.nodeUrls[0], database: 'default', cluster: CLUSTER });
    try {
      await ch.command(`DROP DATABASE IF EXISTS ${database} ON CLUSTER ${CLUSTER}`);
    } finally {
      await ch.close();
    }
  }

  /** The rows of `sql` run on node n (1-based) itself, on its own `_local` tables. */
  async onNode<T>(n: number, database: string, sql: string): Promise<T[]> {
    const ch = new ClickHouse({ url: this.nodeUrls[n - 1]!, database });
    try {
      return await ch.rows<T>(sql);
    } finally {
      await ch.close();
    }
  }

  /** The rows of `sql` run on each node itself, node 1 first. */
  async onEachNode<T>(database: string, sql: string): Promise<T[][]> {
    return Promise.all([this.onNode<T>(1, database, sql), this.onNode<T>(2, database, sql)]);
  }

  /** Rows of `table` on each node's own shard or replica (the `_local` table), node 1 first. */
  async rowsPerNode(database: string, table: string, where: string): Promise<number[]> {
    const per = await this.onEachNode<{ n: string }>(database, `SELECT count() AS n FROM ${table}_local WHERE ${where}`);
    return per.map((r) => Number(r[0]!.n));
  }
}

/** The default cluster: two shards (`scripts/services up --clickhouse-cluster` with no settings). */
export const SHARDS = new TestCluster({
  layout: 'shards',
  dir: '.herald/clickhouse-cluster',
  zookeeperPort: 12181,
  httpPorts: [18141, 18142],
});

/** One shard, two replicas, beside the shards cluster (native 19151/19152, interserver 20151/20152). */
export const REPLICAS = new TestCluster({
  layout: 'replicas',
  dir: '.herald/clickhouse-cluster-replicas',
  zookeeperPort: 12182,
  httpPorts: [18151, 18152],
  // its tests kill a replica and wait for it to replicate again: not the default 30 s
  zookeeperSessionTimeoutMs: 8_000,
});

/** node n (1-based) is shard n in the default layout; Herald talks to node 1 */
export const NODE_URLS = SHARDS.nodeUrls;
export const startCluster = (): Promise<boolean> => SHARDS.start();
export const stopCluster = (): Promise<void> => SHARDS.stop();
export const killNode = (n: number): Promise<void> => SHARDS.killNode(n);
export const restartStopped = (): Promise<void> => SHARDS.restartStopped();
export const dropClusterDatabase = (database: string): Promise<void> => SHARDS.dropDatabase(database);
/** Rows of `table` on each node's own shard (the `_local` table), node 1 first. */
export const rowsPerShard = (database: string, table: string, where: string): Promise<number[]> =>
  SHARDS.rowsPerNode(database, table, where);

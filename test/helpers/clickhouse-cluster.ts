/**
 * The project-local ClickHouse cluster of `scripts/services up --clickhouse-cluster` (ZooKeeper and two
 * clickhouse-server nodes, `herald_cluster`) for integration tests: started when it is not up, stopped
 * after when the test started it, and one node stopped and started again on demand.
 */
import { execFile } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { ClickHouse } from '../../src/clickhouse/client.js';

const run = promisify(execFile);
const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const DIR = path.join(ROOT, '.herald', 'clickhouse-cluster');
const SERVICES = path.join(ROOT, 'scripts', 'services');

export const CLUSTER = 'herald_cluster';
/** node n (1-based) is shard n in the default layout; Herald talks to node 1 */
export const NODE_URLS = ['http://127.0.0.1:18141', 'http://127.0.0.1:18142'] as const;

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

async function services(...args: string[]): Promise<void> {
  try {
    // the tests expect the default layout: two shards
    const env = { ...process.env, HERALD_CLICKHOUSE_CLUSTER_LAYOUT: 'shards' };
    await run('bash', [SERVICES, ...args], { cwd: ROOT, timeout: 180_000, env });
  } catch (err) {
    const e = err as { stdout?: string; stderr?: string; message: string };
    throw new Error(`scripts/services ${args.join(' ')} failed: ${e.message}\n${e.stdout ?? ''}${e.stderr ?? ''}`, { cause: err });
  }
}

/** Brings the cluster up; answers whether it was down (then `stopCluster` after the test). */
export async function startCluster(): Promise<boolean> {
  const wasUp = (await Promise.all(NODE_URLS.map(nodeUp))).every(Boolean);
  await services('up', '--clickhouse-cluster');
  return !wasUp;
}

export async function stopCluster(): Promise<void> {
  await services('down', '--clickhouse-cluster');
}

/**
 * Kills node n (SIGKILL: a crash; a SIGTERM'd server goes on answering the connections it has for
 * seconds) and waits for its process to end.
 */
export async function killNode(n: number): Promise<void> {
  const pid = Number(readFileSync(path.join(DIR, `ch${n}`, 'clickhouse-server.pid'), 'utf8').trim());
  process.kill(pid, 'SIGKILL');
  const t0 = Date.now();
  while (existsSync(`/proc/${pid}`)) {
    if (Date.now() - t0 > 20_000) throw new Error(`clickhouse node ${n} (pid ${pid}) did not stop`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Starts whatever of the cluster is down (the stopped node). */
export async function restartStopped(): Promise<void> {
  await services('up', '--clickhouse-cluster');
}

export async function dropClusterDatabase(database: string): Promise<void> {
  const ch = new ClickHouse({ url: NODE_URLS[0], database: 'default', cluster: CLUSTER });
  try {
    await ch.command(`DROP DATABASE IF EXISTS ${database} ON CLUSTER ${CLUSTER}`);
  } finally {
    await ch.close();
  }
}

/** Rows of `table` on each node's own shard (the `_local` table), node 1 first. */
export async function rowsPerShard(database: string, table: string, where: string): Promise<number[]> {
  return Promise.all(
    NODE_URLS.map(async (url) => {
      const ch = new ClickHouse({ url, database });
      try {
        const r = await ch.rows<{ n: string }>(`SELECT count() AS n FROM ${table}_local WHERE ${where}`);
        return Number(r[0]!.n);
      } finally {
        await ch.close();
      }
    }),
  );
}

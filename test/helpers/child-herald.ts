import { spawn, type ChildProcess } from 'node:child_process';
import type { Namespace } from './herald.js';

export interface SpawnOptions {
  /** the launcher to run; `bin/herald` of this checkout unless a test runs another copy (the compiled build's) */
  bin?: string;
}

/** Starts `bin/herald serve` as a real OS process on the namespace; resolves once it logs that it listens. */
export function spawnHerald(
  ns: Namespace,
  lines: string[],
  env: Record<string, string> = {},
  opts: SpawnOptions = {},
): Promise<ChildProcess> {
  const c = ns.config;
  const child = spawn(opts.bin ?? 'bin/herald', ['serve'], {
    env: {
      ...process.env,
      DATABASE_URL: c.databaseUrl,
      REDIS_URL: c.redisUrl,
      REDIS_CLUSTER_NODES: c.redisClusterNodes.join(','),
      CLICKHOUSE_URL: c.clickhouseUrl,
      CLICKHOUSE_DB: c.clickhouseDb,
      HERALD_REDIS_PREFIX: c.redisPrefix,
      HERALD_API_KEYS: c.apiKeys.join(','),
      HERALD_PORT: '0',
      HERALD_HOST: '127.0.0.1',
      HERALD_WORKERS: '2',
      HERALD_POLL_MS: '200',
      HERALD_LOG_LEVEL: 'info',
      ...env,
    },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  return new Promise((resolve, reject) => {
    let buf = '';
    child.stdout!.on('data', (d: Buffer) => {
      buf += d.toString();
      let nl;
      while ((nl = buf.indexOf('\n')) !== -1) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        lines.push(line);
        if (line.includes('Herald API listening')) resolve(child);
      }
    });
    child.once('exit', (code) => reject(new Error(`herald exited with ${code}`)));
  });
}

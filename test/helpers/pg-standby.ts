/**
 * A test's own PostgreSQL primary and a streaming-replication hot standby of it (Debian's PostgreSQL
 * binaries: initdb, pg_basebackup -R, pg_ctl), each on a spare 127.0.0.1 port with its data in a temp
 * dir, run as `postgres` (PostgreSQL refuses root). Replay on the standby can be paused and resumed
 * (`pg_wal_replay_pause()`), which is replica lag on demand: the standby keeps answering, from a snapshot
 * that misses whatever the primary committed since.
 */
import { execFile } from 'node:child_process';
import { chownSync, existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync, appendFileSync } from 'node:fs';
import { tmpdir, userInfo } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';
import { sparePort } from './pgbouncer.js';

const run = promisify(execFile);

/** The newest PostgreSQL server binaries installed. */
export function postgresBin(): string | null {
  const root = '/usr/lib/postgresql';
  if (!existsSync(root)) return null;
  const versions = readdirSync(root)
    .filter((v) => existsSync(path.join(root, v, 'bin', 'pg_basebackup')))
    .sort((a, b) => Number(b) - Number(a));
  return versions[0] === undefined ? null : path.join(root, versions[0], 'bin');
}

export interface PgPair {
  primaryPort: number;
  standbyPort: number;
  /** `url` with its host and port swapped for the primary's or the standby's */
  onPrimary(url: string): string;
  onStandby(url: string): string;
  /** a statement on the standby, in database `postgres` */
  standby<T extends pg.QueryResultRow = pg.QueryResultRow>(sql: string, params?: unknown[]): Promise<T[]>;
  pauseReplay(): Promise<void>;
  resumeReplay(): Promise<void>;
  /** waits until the standby has replayed everything the primary has written so far */
  caughtUp(timeoutMs?: number): Promise<void>;
  stop(): Promise<void>;
}

export async function startPgPair(): Promise<PgPair> {
  const bin = postgresBin();
  if (bin === null) throw new Error('no PostgreSQL server binaries under /usr/lib/postgresql');
  const root = mkdtempSync(path.join(tmpdir(), 'herald-pgpair-'));
  const asRoot = userInfo().uid === 0;
  let uid = -1;
  let gid = -1;
  if (asRoot) {
    const id = await run('id', ['-u', 'postgres']);
    const g = await run('id', ['-g', 'postgres']);
    uid = Number(id.stdout.trim());
    gid = Number(g.stdout.trim());
    chownSync(root, uid, gid);
  }
  // every tool runs as postgres when the test runs as root
  const pgTool = (tool: string, args: string[]): Promise<{ stdout: string }> =>
    asRoot ? run('runuser', ['-u', 'postgres', '--', path.join(bin, tool), ...args]) : run(path.join(bin, tool), args);
  const primaryDir = path.join(root, 'primary');
  const standbyDir = path.join(root, 'standby');
  const [primaryPort, standbyPort] = [await sparePort(), await sparePort()];
  const started: string[] = [];
  const start = async (dir: string, port: number): Promise<void> => {
    await pgTool('pg_ctl', ['-D', dir, '-w', '-t', '60', '-l', path.join(root, `${port}.log`), '-o', `-p ${port} -k ${root}`, 'start']);
    started.push(dir);
  };
  const stop = async (): Promise<void> => {
    for (const dir of started.reverse()) await pgTool('pg_ctl', ['-D', dir, '-m', 'immediate', '-w', 'stop']).catch(() => undefined);
    rmSync(root, { recursive: true, force: true });
  };
  try {
    await pgTool('initdb', ['-D', primaryDir, '-U', 'postgres', '-A', 'trust', '--no-sync', '-E', 'UTF8']);
    appendFileSync(
      path.join(primaryDir, 'postgresql.conf'),
      ["listen_addresses = '127.0.0.1'", 'wal_level = replica', 'max_wal_senders = 4', 'fsync = off', 'shared_buffers = 64MB', ''].join(
        '\n',
      ),
    );
    writeFileSync(
      path.join(primaryDir, 'pg_hba.conf'),
      ['local all all trust', 'host all all 127.0.0.1/32 trust', 'host replication all 127.0.0.1/32 trust', ''].join('\n'),
    );
    if (asRoot) chownSync(path.join(primaryDir, 'pg_hba.conf'), uid, gid);
    await start(primaryDir, primaryPort);
    // -R: standby.signal and primary_conninfo, so it starts as a hot standby streaming from the primary
    await pgTool('pg_basebackup', ['-h', '127.0.0.1', '-p', String(primaryPort), '-U', 'postgres', '-D', standbyDir, '-R', '-X', 'stream']);
    await start(standbyDir, standbyPort);
  } catch (err) {
    await stop();
    throw err;
  }
  const swap = (url: string, port: number): string => {
    const u = new URL(url);
    u.hostname = '127.0.0.1';
    u.port = String(port);
    return u.toString();
  };
  const on = async <T extends pg.QueryResultRow>(port: number, sql: string, params: unknown[] = []): Promise<T[]> => {
    const c = new pg.Client({ host: '127.0.0.1', port, user: 'postgres', database: 'postgres' });
    await c.connect();
    try {
      return (await c.query<T>(sql, params)).rows;
    } finally {
      await c.end();
    }
  };
  return {
    primaryPort,
    standbyPort,
    onPrimary: (url) => swap(url, primaryPort),
    onStandby: (url) => swap(url, standbyPort),
    standby: (sql, params) => on(standbyPort, sql, params),
    pauseReplay: async () => {
      await on(standbyPort, 'SELECT pg_wal_replay_pause()');
    },
    resumeReplay: async () => {
      await on(standbyPort, 'SELECT pg_wal_replay_resume()');
    },
    caughtUp: async (timeoutMs = 30_000) => {
      const target = (await on<{ lsn: string }>(primaryPort, 'SELECT pg_current_wal_lsn()::text AS lsn'))[0]!.lsn;
      for (const t0 = Date.now(); ;) {
        const r = await on<{ ok: boolean }>(standbyPort, 'SELECT pg_last_wal_replay_lsn() >= $1::pg_lsn AS ok', [target]);
        if (r[0]?.ok === true) return;
        if (Date.now() - t0 > timeoutMs) throw new Error(`standby not at ${target} after ${timeoutMs} ms`);
        await new Promise((res) => setTimeout(res, 50));
      }
    },
    stop,
  };
}

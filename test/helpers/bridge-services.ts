/**
 * The test's own PostgreSQL, Redis and ClickHouse, listening on a test network's bridge address
 * (test/helpers/netns.ts) and nowhere else, so the hosts reach them only across their veths. Each runs
 * from the run's directory and is recorded there for the leftover cleanup; none keeps anything after.
 * The ClickHouse is the machine's clickhouse-server binary with the project-local config
 * (scripts/clickhouse/*.tmpl), listening on the bridge instead of loopback; the PostgreSQL is a fresh
 * initdb cluster of the machine's PostgreSQL 15 (or whichever `pg_ctl` the system has), durability off.
 */
import { execFileSync, spawn } from 'node:child_process';
import { accessSync, appendFileSync, chownSync, constants, existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import type { TestNet } from './netns.js';

export interface BridgeServices {
  databaseUrl: string;
  redisUrl: string;
  clickhouseUrl: string;
  stop(): Promise<void>;
}

async function waitForPort(host: string, port: number, what: string, timeoutMs = 30_000): Promise<void> {
  const t0 = Date.now();
  for (;;) {
    const open = await new Promise<boolean>((resolve) => {
      const s = net.connect(port, host);
      s.once('connect', () => {
        s.destroy();
        resolve(true);
      });
      s.once('error', () => resolve(false));
    });
    if (open) return;
    if (Date.now() - t0 > timeoutMs) throw new Error(`${what} on ${host}:${port} did not come up within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

function programOf(pid: number): string {
  return readFileSync(`/proc/${pid}/comm`, 'utf8').trim();
}

function uidOf(user: string): { uid: number; gid: number } {
  const line = readFileSync('/etc/passwd', 'utf8')
    .split('\n')
    .find((l) => l.startsWith(`${user}:`));
  if (!line) throw new Error(`no user ${user}`);
  const f = line.split(':');
  return { uid: Number(f[2]), gid: Number(f[3]) };
}

function chownTree(dir: string, owner: { uid: number; gid: number }): void {
  chownSync(dir, owner.uid, owner.gid);
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) chownTree(p, owner);
    else chownSync(p, owner.uid, owner.gid);
  }
}

async function startRedis(netw: TestNet): Promise<() => void> {
  const p = spawn(
    'redis-server',
    ['--bind', netw.address, '--port', '6379', '--save', '', '--appendonly', 'no', '--protected-mode', 'no'],
    {
      stdio: 'ignore',
    },
  );
  netw.recordPid(p.pid!, 'redis-server');
  await waitForPort(netw.address, 6379, 'redis-server');
  return () => p.kill('SIGKILL');
}

/** The machine's clickhouse-server binary (18.16's has no --version: the file is looked for), or null. */
function clickhouseBin(): string | null {
  for (const c of ['/usr/sbin/clickhouse-server', '/usr/bin/clickhouse-server']) {
    try {
      accessSync(c, constants.X_OK);
      return c;
    } catch {
      // next
    }
  }
  return null;
}

async function startClickHouse(netw: TestNet): Promise<() => void> {
  const dir = `${netw.dir}/clickhouse`;
  for (const d of ['etc', 'data', 'tmp', 'user_files', 'format_schemas', 'log']) mkdirSync(`${dir}/${d}`, { recursive: true });
  const tmpl = (name: string): string => readFileSync(new URL(`../../scripts/clickhouse/${name}.tmpl`, import.meta.url), 'utf8');
  const render = (s: string): string =>
    s.replaceAll('@@CH_DIR@@', dir).replaceAll('@@HTTP_PORT@@', '8123').replaceAll('@@TCP_PORT@@', '9000');
  const config = render(tmpl('config.xml')).replace('<listen_host>127.0.0.1</listen_host>', `<listen_host>${netw.address}</listen_host>`);
  if (!config.includes(netw.address))
    throw new Error('scripts/clickhouse/config.xml.tmpl has no <listen_host>127.0.0.1</listen_host> to replace');
  writeFileSync(`${dir}/etc/config.xml`, config);
  // The default user from the test's subnet only (the template allows loopback).
  const users = render(tmpl('users.xml')).replace('<ip>127.0.0.1</ip>', `<ip>${netw.subnet}</ip>`).replace('<ip>::1</ip>', '');
  writeFileSync(`${dir}/etc/users.xml`, users);
  // As root, the server runs as nobody (it refuses to run as root on newer versions, and should not).
  const nobody = uidOf('nobody');
  chownTree(dir, nobody);
  const p = spawn(
    'setpriv',
    [`--reuid=${nobody.uid}`, `--regid=${nobody.gid}`, '--clear-groups', clickhouseBin()!, `--config-file=${dir}/etc/config.xml`],
    { stdio: ['ignore', 'ignore', 'ignore'] },
  );
  netw.recordPid(p.pid!, 'clickhouse-serv');
  await waitForPort(netw.address, 8123, 'clickhouse-server');
  for (const t0 = Date.now(); ;) {
    const ok = await fetch(`http://${netw.address}:8123/ping`)
      .then((r) => r.text())
      .catch(() => '');
    if (ok.startsWith('Ok.')) break;
    if (Date.now() - t0 > 30_000) throw new Error('clickhouse-server does not answer /ping');
    await new Promise((r) => setTimeout(r, 50));
  }
  return () => p.kill('SIGKILL');
}

function pgBin(name: string): string {
  const base = '/usr/lib/postgresql';
  const versions = (existsSync(base) ? readdirSync(base) : []).filter((v) => /^\d+$/.test(v)).sort((a, b) => Number(b) - Number(a));
  if (versions.length === 0) throw new Error(`no PostgreSQL under ${base}`);
  return `${base}/${versions[0]}/bin/${name}`;
}

async function startPostgres(netw: TestNet): Promise<() => void> {
  const dir = `${netw.dir}/postgres`;
  mkdirSync(dir, { recursive: true });
  chownTree(dir, uidOf('postgres'));
  const asPostgres = (bin: string, args: string[]): void => {
    execFileSync('runuser', ['-u', 'postgres', '--', pgBin(bin), ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
  };
  asPostgres('initdb', ['-D', `${dir}/data`, '-A', 'trust', '-U', 'postgres', '--no-sync', '-E', 'UTF8']);
  appendFileSync(`${dir}/data/pg_hba.conf`, `host all all ${netw.subnet} trust\n`);
  const opts = [
    `-c listen_addresses=${netw.address}`,
    '-c port=5432',
    `-c unix_socket_directories=${dir}`,
    '-c max_connections=200',
    '-c fsync=off',
    '-c synchronous_commit=off',
    '-c full_page_writes=off',
    '-c shared_buffers=128MB',
  ].join(' ');
  asPostgres('pg_ctl', ['-D', `${dir}/data`, '-l', `${dir}/log`, '-w', '-t', '60', '-o', opts, 'start']);
  const pid = Number(readFileSync(`${dir}/data/postmaster.pid`, 'utf8').split('\n')[0]);
  netw.recordPid(pid, programOf(pid));
  await waitForPort(netw.address, 5432, 'postgres');
  return () => {
    try {
      asPostgres('pg_ctl', ['-D', `${dir}/data`, '-m', 'immediate', '-w', 'stop']);
    } catch {
      process.kill(pid, 'SIGKILL');
    }
  };
}

/** Why the three servers cannot be started here (a binary missing), or null when they can. */
export function bridgeServicesUnavailable(): string | null {
  try {
    execFileSync('redis-server', ['--version'], { stdio: 'ignore' });
  } catch {
    return 'needs redis-server';
  }
  if (clickhouseBin() === null) return 'needs clickhouse-server (scripts/services up installs it)';
  try {
    execFileSync(pgBin('initdb'), ['--version'], { stdio: 'ignore' });
  } catch {
    return "needs PostgreSQL's server binaries (initdb, pg_ctl) under /usr/lib/postgresql/<version>/bin";
  }
  return null;
}

/** Starts the three services on the net's bridge address, at their usual ports. */
export async function startBridgeServices(netw: TestNet): Promise<BridgeServices> {
  const stops: Array<() => void> = [];
  try {
    stops.push(await startRedis(netw));
    stops.push(await startClickHouse(netw));
    stops.push(await startPostgres(netw));
  } catch (err) {
    for (const s of stops) s();
    throw err;
  }
  return {
    databaseUrl: `postgres://postgres@${netw.address}:5432/herald`,
    redisUrl: `redis://${netw.address}:6379`,
    clickhouseUrl: `http://${netw.address}:8123`,
    stop: async () => {
      for (const s of stops.reverse()) s();
      await Promise.resolve();
    },
  };
}

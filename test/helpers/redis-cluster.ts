/**
 * A Redis Cluster of the test's own: `masters` replica-less redis-servers with `--cluster-enabled yes` on
 * spare loopback ports (each port and its bus port, port + 10000, free), joined by `redis-cli --cluster
 * create`, nothing kept on disk but each node's cluster config file. A node killed (SIGKILL) and started
 * again comes back empty, with its slots: the cluster's view of a master lost without persistence.
 * `cluster-require-full-coverage no`: while one master is away, the others keep serving their slots.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';

/** A clear failure when the machine lacks the binaries, instead of a spawn ENOENT deep in a hook. */
export function requireRedisBinaries(): void {
  for (const bin of ['redis-server', 'redis-cli']) {
    const r = spawnSync(bin, ['--version'], { stdio: 'ignore' });
    if (r.error !== undefined || r.status !== 0) {
      throw new Error(`the Redis Cluster tests need ${bin} on PATH (Debian: apt-get install -y redis-server redis-tools)`);
    }
  }
}

function canListen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const srv = net.createServer();
    srv.once('error', () => resolve(false));
    srv.listen(port, '127.0.0.1', () => srv.close(() => resolve(true)));
  });
}

/** `n` ports whose bus ports (+10000) are free too; from the ephemeral-free range 20000–55000. */
async function freeClusterPorts(n: number): Promise<number[]> {
  const out: number[] = [];
  let p = 20_000 + Math.floor(Math.random() * 30_000);
  for (let tries = 0; out.length < n && tries < 2_000; tries++, p++) {
    if (p > 55_000) p = 20_000;
    if ((await canListen(p)) && (await canListen(p + 10_000))) out.push(p);
  }
  if (out.length < n) throw new Error('no free ports for a Redis Cluster');
  return out;
}

async function portOpen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1');
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

async function waitFor(what: string, check: () => Promise<boolean> | boolean, timeoutMs: number): Promise<void> {
  const t0 = Date.now();
  while (!(await check())) {
    if (Date.now() - t0 > timeoutMs) throw new Error(`${what} within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

function cli(port: number, ...args: string[]): string {
  const r = spawnSync('redis-cli', ['-p', String(port), ...args], { encoding: 'utf8', timeout: 10_000 });
  return r.stdout ?? '';
}

export class OwnRedisCluster {
  private readonly procs: Array<ChildProcess | null>;

  private constructor(
    readonly ports: readonly number[],
    private readonly dir: string,
  ) {
    this.procs = ports.map(() => null);
  }

  static async start(masters = 3): Promise<OwnRedisCluster> {
    requireRedisBinaries();
    const c = new OwnRedisCluster(await freeClusterPorts(masters), mkdtempSync(path.join(os.tmpdir(), 'herald-rcluster-')));
    await Promise.all(c.ports.map((_, i) => c.up(i)));
    const create = spawnSync(
      'redis-cli',
      ['--cluster', 'create', ...c.ports.map((p) => `127.0.0.1:${p}`), '--cluster-replicas', '0', '--cluster-yes'],
      { encoding: 'utf8', timeout: 30_000 },
    );
    if (create.status !== 0) throw new Error(`redis-cli --cluster create failed: ${create.stdout}${create.stderr}`);
    await c.waitOk();
    return c;
  }

  /** REDIS_CLUSTER_NODES */
  get nodes(): string[] {
    return this.ports.map((p) => `127.0.0.1:${p}`);
  }

  /** Starts node `i` (again: empty, with the slots its cluster config file names). */
  async up(i: number): Promise<void> {
    const port = this.ports[i]!;
    const p = spawn(
      'redis-server',
      [
        '--port',
        String(port),
        '--bind',
        '127.0.0.1',
        '--cluster-enabled',
        'yes',
        '--cluster-config-file',
        path.join(this.dir, `nodes-${port}.conf`),
        '--cluster-node-timeout',
        '2000',
        '--cluster-require-full-coverage',
        'no',
        '--dir',
        this.dir,
        '--save',
        '',
        '--appendonly',
        'no',
      ],
      { stdio: 'ignore' },
    );
    this.procs[i] = p;
    await waitFor(`redis-server on ${port} did not come up`, () => portOpen(port), 10_000);
  }

  /** kill -9 of node `i`: every key it held is gone. */
  async kill(i: number): Promise<void> {
    const p = this.procs[i];
    this.procs[i] = null;
    if (p === null || p === undefined || p.exitCode !== null) return;
    const exited = new Promise((r) => p.once('exit', r));
    p.kill('SIGKILL');
    await exited;
    await waitFor(`redis-server on ${this.ports[i]} did not go down`, async () => !(await portOpen(this.ports[i]!)), 10_000);
  }

  /** Until every node says cluster_state:ok and knows every slot. */
  async waitOk(timeoutMs = 30_000): Promise<void> {
    await waitFor(
      'the cluster did not reach cluster_state:ok',
      () =>
        this.ports.every(
          (p) => /cluster_state:ok/.test(cli(p, 'cluster', 'info')) && /cluster_slots_ok:16384/.test(cli(p, 'cluster', 'info')),
        ),
      timeoutMs,
    );
  }

  /** The index of the node serving `key`'s slot. */
  nodeOf(key: string): number {
    const slot = Number(cli(this.ports[0]!, 'cluster', 'keyslot', key).trim());
    for (let i = 0; i < this.ports.length; i++) {
      for (const line of cli(this.ports[i]!, 'cluster', 'nodes').split('\n')) {
        const f = line.split(' ');
        if (!f[2]?.includes('myself')) continue;
        for (const range of f.slice(8)) {
          const [lo, hi] = range.split('-').map(Number);
          if (slot >= lo! && slot <= (hi ?? lo)!) return i;
        }
      }
    }
    throw new Error(`no node serves slot ${slot} of ${key}`);
  }

  /** Whether node `i` itself holds `key` (asked directly, not through the cluster: another node answers MOVED). */
  holds(i: number, key: string): boolean {
    return cli(this.ports[i]!, 'exists', key).trim() === '1';
  }

  async stop(): Promise<void> {
    await Promise.all(this.ports.map((_, i) => this.kill(i)));
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/**
 * Hosts on one machine: Linux network namespaces joined by veth pairs to a bridge in the root namespace,
 * on a private /24 the helper picks among 10.213.0.0/16 (one no address or route of the machine uses).
 * The bridge carries the address the test's own services and receiver listen on (`.1`); host i is the
 * namespace `<prefix>-h<i>` at `.11 + i`, with loopback up. A process started in a host reaches the
 * services only across its veth, so cutting that veth (`cut`) partitions it as a pulled cable would:
 * packets are dropped, no connection is reset.
 *
 * Every name carries `hrld<run>-`, `<run>` the test process's pid in hex, and the run's files live in
 * `/tmp/herald-netns-<run>/`. `removeLeftovers` deletes what a run whose process is gone left behind
 * (after a crash: its namespaces, their processes, its bridge, the processes it recorded in `pids`, its
 * files), and leaves a live run alone. Needs root and iproute2.
 */
import { execFile, execFileSync, spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { appendFileSync, mkdirSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { promisify } from 'node:util';

const run = promisify(execFile);
const NAME = /^hrld([0-9a-f]+)-/;
const DIR_PREFIX = '/tmp/herald-netns-';

export interface Host {
  /** namespace name, `hrld<run>-h<i>` */
  ns: string;
  /** the host's address on the bridge */
  address: string;
  /** the root-side end of its veth (the bridge port): what `cut` takes down */
  rootVeth: string;
}

export interface TestNet {
  bridge: string;
  /** the bridge's address: services and receivers listen here */
  address: string;
  /** the /24 in CIDR form */
  subnet: string;
  hosts: Host[];
  /** the run's directory, for service data and logs */
  dir: string;
  /** Starts `cmd args` inside the host's namespace (`ip netns exec`); the pid is the command's own (ip execs it). */
  spawnIn(host: Host, cmd: string, args: string[], opts?: SpawnOptions): ChildProcess;
  /** Records a pid for leftover cleanup (a service started in the root namespace). */
  recordPid(pid: number, program: string): void;
  /** Takes the host's link down from the bridge side: its packets go nowhere, its connections stay open. */
  cut(host: Host): Promise<void>;
  restore(host: Host): Promise<void>;
  /** Kills what runs in the hosts and removes everything the run made; idempotent. */
  destroy(): void;
}

/** Why namespaces cannot be built here, or null when they can. */
export function netnsUnavailable(): string | null {
  if (process.getuid?.() !== 0) return 'needs root (ip netns, veth pairs)';
  try {
    execFileSync('ip', ['-V'], { stdio: 'ignore' });
  } catch {
    return 'needs iproute2 (`ip`)';
  }
  return null;
}

function ip(...args: string[]): void {
  execFileSync('ip', args, { stdio: ['ignore', 'ignore', 'pipe'] });
}

function quiet(fn: () => void): void {
  try {
    fn();
  } catch {
    // already gone
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** The program a live pid runs (its /proc comm), or null. */
function programOf(pid: number): string | null {
  try {
    return readFileSync(`/proc/${pid}/comm`, 'utf8').trim();
  } catch {
    return null;
  }
}

function namespaces(): string[] {
  try {
    return execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' })
      .split('\n')
      .map((l) => l.split(' ')[0]!)
      .filter((n) => n.length > 0);
  } catch {
    return [];
  }
}

function links(): string[] {
  const out = execFileSync('ip', ['-o', 'link', 'show'], { encoding: 'utf8' });
  return out
    .split('\n')
    .map((l) => /^\d+:\s+([^:@\s]+)/.exec(l)?.[1])
    .filter((n): n is string => n !== undefined);
}

function killNamespace(ns: string): void {
  let pids: number[] = [];
  try {
    pids = execFileSync('ip', ['netns', 'pids', ns], { encoding: 'utf8' }).split('\n').filter(Boolean).map(Number);
  } catch {
    // no such namespace
  }
  for (const pid of pids) quiet(() => process.kill(pid, 'SIGKILL'));
  quiet(() => ip('netns', 'del', ns));
}

/** Kills the pids a run recorded, each only if it still runs the program recorded with it (no reused pid). */
function killRecorded(dir: string): void {
  let lines: string[] = [];
  try {
    lines = readFileSync(`${dir}/pids`, 'utf8').split('\n').filter(Boolean);
  } catch {
    return;
  }
  for (const line of lines) {
    const [pid, program] = line.split(' ');
    if (programOf(Number(pid)) === program) quiet(() => process.kill(Number(pid), 'SIGKILL'));
  }
}

function removeRun(runId: string): void {
  const prefix = `hrld${runId}-`;
  for (const ns of namespaces().filter((n) => n.startsWith(prefix))) killNamespace(ns);
  for (const l of links().filter((n) => n.startsWith(prefix))) quiet(() => ip('link', 'del', l));
  const dir = `${DIR_PREFIX}${runId}`;
  killRecorded(dir);
  rmSync(dir, { recursive: true, force: true });
}

/** Removes what earlier runs left behind (their process is gone); a running run's things are left alone. */
export function removeLeftovers(): void {
  const runs = new Set<string>();
  for (const n of [...namespaces(), ...links()]) {
    const m = NAME.exec(n);
    if (m) runs.add(m[1]!);
  }
  for (const d of readdirSync('/tmp')) if (d.startsWith('herald-netns-')) runs.add(d.slice('herald-netns-'.length));
  for (const r of runs) if (/^[0-9a-f]+$/.test(r) && !alive(parseInt(r, 16))) removeRun(r);
}

/** A /24 of 10.213.0.0/16 that no address or route of this machine touches. */
function freeSubnet(): number {
  const used =
    execFileSync('ip', ['-4', 'route', 'show', 'table', 'all'], { encoding: 'utf8' }) +
    execFileSync('ip', ['-4', 'addr'], { encoding: 'utf8' });
  const start = 20 + (process.pid % 200);
  for (let i = 0; i < 230; i++) {
    const n = 20 + ((start - 20 + i) % 230);
    if (!used.includes(`10.213.${n}.`)) return n;
  }
  throw new Error('no free /24 in 10.213.0.0/16');
}

/** Builds the bridge and `hostCount` hosts (removing leftovers of dead runs first). */
export function buildNet(hostCount: number): TestNet {
  removeLeftovers();
  const runId = process.pid.toString(16);
  const p = `hrld${runId}-`;
  const dir = `${DIR_PREFIX}${runId}`;
  mkdirSync(dir, { recursive: true });
  const n = freeSubnet();
  const bridge = `${p}br`;
  const address = `10.213.${n}.1`;
  const hosts: Host[] = [];
  let destroyed = false;
  const destroy = (): void => {
    if (destroyed) return;
    destroyed = true;
    removeRun(runId);
  };
  // A test process that dies without its teardown (an uncaught error, process.exit) still removes the net.
  process.once('exit', destroy);
  try {
    ip('link', 'add', bridge, 'type', 'bridge');
    ip('addr', 'add', `${address}/24`, 'dev', bridge);
    ip('link', 'set', bridge, 'up');
    for (let i = 0; i < hostCount; i++) {
      const ns = `${p}h${i}`;
      const rootVeth = `${p}v${i}`;
      const peer = `${p}p${i}`;
      const hostAddress = `10.213.${n}.${11 + i}`;
      ip('netns', 'add', ns);
      ip('link', 'add', rootVeth, 'type', 'veth', 'peer', 'name', peer);
      ip('link', 'set', peer, 'netns', ns);
      ip('link', 'set', rootVeth, 'master', bridge);
      ip('link', 'set', rootVeth, 'up');
      ip('-n', ns, 'link', 'set', 'lo', 'up');
      ip('-n', ns, 'link', 'set', peer, 'name', 'eth0');
      ip('-n', ns, 'addr', 'add', `${hostAddress}/24`, 'dev', 'eth0');
      ip('-n', ns, 'link', 'set', 'eth0', 'up');
      hosts.push({ ns, address: hostAddress, rootVeth });
    }
  } catch (err) {
    destroy();
    throw err;
  }
  return {
    bridge,
    address,
    subnet: `10.213.${n}.0/24`,
    hosts,
    dir,
    spawnIn: (host, cmd, args, opts = {}) => spawn('ip', ['netns', 'exec', host.ns, cmd, ...args], opts),
    recordPid: (pid, program) => appendFileSync(`${dir}/pids`, `${pid} ${program}\n`),
    cut: async (host) => {
      await run('ip', ['link', 'set', host.rootVeth, 'down']);
    },
    restore: async (host) => {
      await run('ip', ['link', 'set', host.rootVeth, 'up']);
    },
    destroy: () => {
      destroy();
      process.removeListener('exit', destroy);
    },
  };
}

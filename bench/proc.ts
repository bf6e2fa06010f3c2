/** What /proc says about the bench's processes: CPU seconds (user + system, exited children included) by command name or pid. */
import { readdirSync, readFileSync } from 'node:fs';

export function cpuSeconds(match: (comm: string, pid: number) => boolean): number {
  let ticks = 0;
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const comm = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'));
      if (!match(comm, Number(entry))) continue;
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      // utime + stime, and cutime + cstime: what its children used once they exited (PostgreSQL's
      // backends are reaped by the postmaster), so a total taken across their exits never goes down
      ticks += Number(fields[11]) + Number(fields[12]) + Number(fields[13]) + Number(fields[14]);
    } catch {
      // ended meanwhile
    }
  }
  return ticks / 100;
}

/** CPU seconds so far of the Herald process `pid` and of each service. */
export function cpuByService(pid: number): Record<string, number> {
  return {
    herald: cpuSeconds((_, p) => p === pid),
    postgres: cpuSeconds((c) => c.startsWith('postgres')),
    clickhouse: cpuSeconds((c) => c.startsWith('clickhouse')),
    redis: cpuSeconds((c) => c.startsWith('redis')),
  };
}

export function cpuSince(before: Record<string, number>, pid: number): Record<string, number> {
  const now = cpuByService(pid);
  return Object.fromEntries(Object.entries(now).map(([k, v]) => [k, Math.round((v - before[k]!) * 100) / 100]));
}

export function peakRssMb(pid: number): number {
  const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) / 1024 : NaN;
}

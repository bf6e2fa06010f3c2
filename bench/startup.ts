/**
 * The compiled build against the tsx path: time from spawning `bin/herald serve` to its first healthy
 * `/healthz`, and the process's RSS once idle, for HERALD_RUN=src and HERALD_RUN=dist alternating in one run
 * (medians of --rounds each). Builds dist/ first when it is missing.
 *   npm run bench:startup -- [--rounds 5] [--idle-ms 5000]
 * Writes bench/results/startup.json.
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { loadConfig } from '../src/config.js';
import { childHeraldEnv, dropNamespace, namespaced, spawnServe, stopServe } from './namespace.js';

const arg = (name: string, fallback: string): string => {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] !== undefined ? process.argv[i + 1]! : fallback;
};
const ROUNDS = Number(arg('rounds', '5'));
const IDLE_MS = Number(arg('idle-ms', '5000'));
const PORT = 18_470;
const KEY = 'bench-startup-key';

if (!existsSync('dist/BUILD')) {
  const built = spawnSync('npm', ['run', 'build'], { stdio: 'inherit' });
  if (built.status !== 0) throw new Error('npm run build failed');
}

const base = loadConfig({ ...process.env, HERALD_API_KEYS: KEY });
const ns = `herald_bench_startup_${process.pid}`;
const cfg = namespaced(base, ns);
const env = childHeraldEnv(cfg, KEY, { HERALD_PORT: String(PORT) });
const admin = spawnSync('psql', ['-h', '127.0.0.1', '-U', 'postgres', '-qc', `CREATE DATABASE ${ns}`], { stdio: 'inherit' });
if (admin.status !== 0) throw new Error('could not create the bench database');
// Migrations once, so every start below does the same (already up-to-date) work.
const migrated = spawnSync('bin/herald', ['migrate'], { env, stdio: 'inherit' });
if (migrated.status !== 0) throw new Error('herald migrate failed');

const rssMb = (pid: number): number => Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1]) / 1024;
const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

const runs: Record<'src' | 'dist', Array<{ startMs: number; idleRssMb: number }>> = { src: [], dist: [] };
try {
  for (let round = 0; round < ROUNDS; round++) {
    for (const run of ['src', 'dist'] as const) {
      const t0 = performance.now();
      const child = await spawnServe({ ...env, HERALD_RUN: run }, PORT, 30_000);
      const startMs = performance.now() - t0;
      await new Promise((r) => setTimeout(r, IDLE_MS));
      const idleRssMb = rssMb(child.pid!);
      await stopServe(child);
      runs[run].push({ startMs, idleRssMb });
      console.log(`round ${round + 1} ${run}: start ${startMs.toFixed(0)} ms, idle RSS ${idleRssMb.toFixed(1)} MB`);
    }
  }
} finally {
  await dropNamespace(base, ns);
}

const summary = Object.fromEntries(
  (['src', 'dist'] as const).map((run) => [
    run,
    { startMs: Math.round(median(runs[run].map((r) => r.startMs))), idleRssMb: +median(runs[run].map((r) => r.idleRssMb)).toFixed(1) },
  ]),
) as Record<'src' | 'dist', { startMs: number; idleRssMb: number }>;
console.log(
  `median of ${ROUNDS}: tsx ${summary.src.startMs} ms / ${summary.src.idleRssMb} MB, compiled ${summary.dist.startMs} ms / ${summary.dist.idleRssMb} MB ` +
    `(start ${(summary.dist.startMs / summary.src.startMs).toFixed(2)}×, RSS ${(summary.dist.idleRssMb / summary.src.idleRssMb).toFixed(2)}×)`,
);
mkdirSync('bench/results', { recursive: true });
writeFileSync(
  'bench/results/startup.json',
  JSON.stringify({ at: new Date().toISOString(), rounds: ROUNDS, idleMs: IDLE_MS, summary, runs }, null, 2),
);

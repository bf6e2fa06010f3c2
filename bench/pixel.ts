/**
 * Read-receipt pixel benchmark: genuine pixel hits against a static dashboard file, served by the same
 * Herald process, both under `wrk -c256`, in one run.
 *   unit: requests/s and latency percentiles (wrk --latency); the pixel rate as a fraction of the static
 *   file's; reads stored in ClickHouse against pixel requests answered (each counted once).
 *   method: `bin/herald serve` with its defaults on a namespace of its own; a 100-recipient campaign;
 *   20,000 distinct genuine tracking tokens, cycled by a wrk Lua script; `--seconds` per run, static
 *   file first, then the pixel, then a forged token (no read: the HMAC check alone) for reference.
 *   wrk runs with 2 threads on the same 2 cores as Herald, PostgreSQL, Redis and ClickHouse.
 *   npm run bench:pixel -- [--seconds 10] [--connections 256] [--profile]   (--profile: a CPU profile of Herald into bench/results/prof/)
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import path from 'node:path';
import { loadConfig, tokenSecret } from '../src/config.js';
import { migrate } from '../src/main.js';
import { trackingToken } from '../src/domain/tokens.js';
import { ClickHouse } from '../src/clickhouse/client.js';
import { apiCaller, childHeraldEnv, dropNamespace, namespaced } from './namespace.js';
import { cpuByService, cpuSince } from './proc.js';

function arg(name: string, dflt: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i === -1 ? dflt : (process.argv[i + 1] ?? dflt);
}
const SECONDS = Number(arg('seconds', '10'));
const CONNECTIONS = Number(arg('connections', '256'));
const KEY = 'bench-key-0123456789';
const PORT = 18_495;
const base = loadConfig();
const ns = `herald_pixel_${Date.now().toString(36)}`;
const cfg = namespaced(base, ns, { apiKeys: [KEY] });
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

interface WrkResult {
  /** CPU seconds per process over the run */
  cpu?: Record<string, number>;
  requests: number;
  rps: number;
  non2xx: number;
  latencyMs: Record<string, number>;
}

function toMs(v: string): number {
  const m = /^([\d.]+)(us|ms|s)$/.exec(v.trim());
  if (m === null) return NaN;
  const n = Number(m[1]);
  return m[2] === 'us' ? n / 1000 : m[2] === 's' ? n * 1000 : n;
}

function wrk(url: string, script: string | null): WrkResult {
  const args = ['-t2', `-c${CONNECTIONS}`, `-d${SECONDS}s`, '--latency', ...(script === null ? [] : ['-s', script]), url];
  const out = spawnSync('wrk', args, { encoding: 'utf8' }).stdout;
  const latencyMs: Record<string, number> = {};
  for (const m of out.matchAll(/^\s+(50|75|90|99)%\s+(\S+)$/gm)) latencyMs[`p${m[1]}`] = toMs(m[2]!);
  const requests = Number(/(\d+) requests in/.exec(out)?.[1] ?? NaN);
  return {
    requests,
    rps: Number(/Requests\/sec:\s+([\d.]+)/.exec(out)?.[1] ?? NaN),
    non2xx: Number(/Non-2xx or 3xx responses: (\d+)/.exec(out)?.[1] ?? 0),
    latencyMs,
  };
}

if (spawnSync('wrk', ['--version']).error !== undefined) throw new Error('wrk is not installed (apt-get install wrk)');
await migrate(cfg);
const child: ChildProcess = spawn('bin/herald', ['serve'], {
  env: childHeraldEnv(cfg, KEY, {
    HERALD_PORT: String(PORT),
    HERALD_HOST: '127.0.0.1',
    HERALD_WORKERS: '2',
    ...(process.argv.includes('--profile') ? { HERALD_NODE_FLAGS: '--cpu-prof --cpu-prof-dir=bench/results/prof' } : {}),
    ...(process.env.HERALD_NODE_FLAGS !== undefined ? { HERALD_NODE_FLAGS: process.env.HERALD_NODE_FLAGS } : {}),
  }),
  stdio: ['ignore', 'inherit', 'inherit'],
});
try {
  for (
    let i = 0;
    i < 300 &&
    !(await fetch(`http://127.0.0.1:${PORT}/healthz`).then(
      (r) => r.ok,
      () => false,
    ));
    i++
  )
    await sleep(100);
  const call = apiCaller(`http://127.0.0.1:${PORT}`, KEY);
  const audience = await call('POST', '/v1/audiences', { name: 'pixel bench' });
  const lines = Array.from({ length: 100 }, (_, i) => JSON.stringify({ user_id: `p${i}` })).join('\n');
  await call('POST', `/v1/audiences/${audience.id}/recipients`, lines, 'application/x-ndjson');
  const campaign = await call('POST', '/v1/campaigns', {
    name: 'pixel bench',
    audience_id: audience.id,
    channel: { type: 'null' },
    content: { title: 't', body: 'b' },
  });
  await call('POST', `/v1/campaigns/${campaign.id}/start`);
  const secret = tokenSecret(cfg);
  const dir = mkdtempSync(path.join(tmpdir(), 'herald-pixel-'));
  const paths = Array.from({ length: 20_000 }, (_, i) => `/t/${trackingToken(secret, campaign.id, `p${i % 100}-${i}`)}`);
  const script = path.join(dir, 'pixels.lua');
  writeFileSync(
    script,
    `local paths = {${paths.map((p) => `"${p}"`).join(',')}}\nlocal i = 0\nrequest = function()\n  i = i % #paths + 1\n  return wrk.format("GET", paths[i])\nend\n`,
  );
  const forged = `/t/${trackingToken('not the secret', campaign.id, 'p1')}`;
  await sleep(1000);
  const measured = (url: string, lua: string | null): WrkResult => {
    const before = cpuByService(child.pid!);
    const r = wrk(url, lua);
    return { ...r, cpu: cpuSince(before, child.pid!) };
  };
  // --pixel-only: the pixel run alone (for a profile of it)
  const only = process.argv.includes('--pixel-only');
  const skipped: WrkResult = { requests: 0, rps: NaN, non2xx: 0, latencyMs: {} };
  const staticFile = only ? skipped : measured(`http://127.0.0.1:${PORT}/dashboard/app.css`, null);
  const pixel = measured(`http://127.0.0.1:${PORT}/`, script);
  const forgedRun = only ? skipped : measured(`http://127.0.0.1:${PORT}${forged}`, null);
  // every answered pixel is a read in ClickHouse, once
  const ch = new ClickHouse({ url: cfg.clickhouseUrl, database: ns });
  let stored = 0;
  for (let i = 0; i < 600; i++) {
    stored = Number(
      (await ch.rows<{ n: string }>(`SELECT count() AS n FROM message_events WHERE campaign_id = ${campaign.id} AND kind = 'read'`))[0]!.n,
    );
    if (stored >= pixel.requests - pixel.non2xx) {
      await sleep(1000); // what wrk cut off at the end may still come in
      stored = Number(
        (await ch.rows<{ n: string }>(`SELECT count() AS n FROM message_events WHERE campaign_id = ${campaign.id} AND kind = 'read'`))[0]!
          .n,
      );
      break;
    }
    await sleep(100);
  }
  await ch.close();
  const ratio = pixel.rps / staticFile.rps;
  console.log(
    `static file: ${Math.round(staticFile.rps).toLocaleString()} req/s, p50 ${staticFile.latencyMs.p50} ms, p99 ${staticFile.latencyMs.p99} ms`,
  );
  console.log(
    `genuine pixel: ${Math.round(pixel.rps).toLocaleString()} req/s (${Math.round(100 * ratio)} % of the static file), p50 ${pixel.latencyMs.p50} ms, p99 ${pixel.latencyMs.p99} ms; ` +
      `${pixel.requests.toLocaleString()} answered, ${stored.toLocaleString()} reads stored`,
  );
  console.log(`CPU seconds: static ${JSON.stringify(staticFile.cpu)}; pixel ${JSON.stringify(pixel.cpu)}`);
  console.log(`forged pixel (no read): ${Math.round(forgedRun.rps).toLocaleString()} req/s, p99 ${forgedRun.latencyMs.p99} ms`);
  mkdirSync('bench/results', { recursive: true });
  writeFileSync(
    'bench/results/pixel.json',
    `${JSON.stringify(
      {
        machine: { cpus: cpus().length, model: cpus()[0]?.model, node: process.version },
        connections: CONNECTIONS,
        seconds: SECONDS,
        static: staticFile,
        pixel: { ...pixel, readsStored: stored, ratioToStatic: Math.round(ratio * 100) / 100 },
        forged: forgedRun,
        at: new Date().toISOString(),
      },
      null,
      2,
    )}\n`,
  );
  // wrk leaves up to one request per connection unanswered when its time is up: the server may have taken those too
  const answered = pixel.requests - pixel.non2xx;
  if (stored < answered || stored > answered + CONNECTIONS) throw new Error(`${stored} reads stored for ${answered} pixels answered`);
} finally {
  child.kill('SIGTERM');
  await new Promise((r) => child.once('exit', r));
  await dropNamespace(base, ns);
}

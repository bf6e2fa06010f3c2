/**
 * Read-receipt pixel benchmark: genuine pixel hits against a static dashboard file, served by the same
 * Herald process, both under `wrk -c256`, in one run.
 *   unit: requests/s and latency percentiles (wrk --latency); the pixel rate as a fraction of the static
 *   file's; reads stored in ClickHouse against pixel requests answered (each counted once).
 *   method: `bin/herald serve` with its defaults on a namespace of its own; a 100-recipient campaign;
 *   20,000 distinct genuine tracking tokens, cycled by a wrk Lua script; `--seconds` per run, the static
 *   file and the pixel alternating `--rounds` times (the ratio is the median round's), then the static
 *   file through the pixel's Lua script (what wrk's script costs wrk) and a forged token (no read: the
 *   HMAC check alone) for reference; wrk's own CPU seconds beside each.
 *   wrk runs with 2 threads on the same 2 cores as Herald, PostgreSQL, Redis and ClickHouse.
 *   --populated: Herald runs in the used database of populated.ts (filled first where short), into results/pixel-populated.json.
 *   npm run bench:pixel -- [--seconds 10] [--connections 256] [--rounds 3] [--only pixel|forged|static] [--profile] [--populated [--database D] …]   (--profile: a CPU profile of Herald into bench/results/prof/, of one run with --only)
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import path from 'node:path';
import { loadConfig, tokenSecret } from '../src/config.js';
import { migrate } from '../src/main.js';
import { trackingToken } from '../src/domain/tokens.js';
import { ClickHouse } from '../src/clickhouse/client.js';
import { apiCaller, childHeraldEnv, namespaced } from './namespace.js';
import { dropRun, inPopulated, populate, populatedOptions } from './populated.js';
import { cpuByService, cpuSince } from './proc.js';

function arg(name: string, dflt: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i === -1 ? dflt : (process.argv[i + 1] ?? dflt);
}
const SECONDS = Number(arg('seconds', '10'));
const CONNECTIONS = Number(arg('connections', '256'));
const ROUNDS = Number(arg('rounds', '3'));
const KEY = 'bench-key-0123456789';
const PORT = 18_495;
const base = loadConfig();
const ns = `herald_pixel_${Date.now().toString(36)}`;
const POPULATED = populatedOptions();
// --populated: PostgreSQL and ClickHouse are the used database's (populated.ts); Redis stays the run's own
const own = namespaced(base, ns, { apiKeys: [KEY] });
const cfg = POPULATED === null ? own : inPopulated(own, POPULATED);
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

interface WrkResult {
  /** CPU seconds per process over the run */
  cpu?: Record<string, number>;
  /** wrk's own CPU seconds (user + system) */
  wrkCpu?: number;
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
  // wrk shares the two cores with Herald: its own CPU seconds are reported beside the processes'
  const run = spawnSync('/usr/bin/time', ['-f', 'wrk-cpu %U %S', 'wrk', ...args], { encoding: 'utf8' });
  const out = run.stdout;
  const wrkCpu = /wrk-cpu ([\d.]+) ([\d.]+)/.exec(run.stderr);
  const latencyMs: Record<string, number> = {};
  for (const m of out.matchAll(/^\s+(50|75|90|99)%\s+(\S+)$/gm)) latencyMs[`p${m[1]}`] = toMs(m[2]!);
  const requests = Number(/(\d+) requests in/.exec(out)?.[1] ?? NaN);
  return {
    wrkCpu: wrkCpu === null ? NaN : Math.round((Number(wrkCpu[1]) + Number(wrkCpu[2])) * 100) / 100,
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
  const used = POPULATED === null ? null : await populate(cfg, POPULATED, `http://127.0.0.1:${PORT}`, KEY);
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
  // One request function for every run that cycles paths: wrk's Lua costs it CPU per request on the cores it
  // shares with Herald, so the static file is also measured through the same script (its one path).
  const cycling = (name: string, list: readonly string[]): string => {
    const file = path.join(dir, name);
    writeFileSync(
      file,
      `local paths = {${list.map((p) => `"${p}"`).join(',')}}\nlocal i = 0\nrequest = function()\n  i = i % #paths + 1\n  return wrk.format("GET", paths[i])\nend\n`,
    );
    return file;
  };
  const script = cycling('pixels.lua', paths);
  const staticScript = cycling('static.lua', ['/dashboard/app.css']);
  const forged = `/t/${trackingToken('not the secret', campaign.id, 'p1')}`;
  await sleep(1000);
  const measured = (url: string, lua: string | null): WrkResult => {
    const before = cpuByService(child.pid!);
    const r = wrk(url, lua);
    return { ...r, cpu: cpuSince(before, child.pid!) };
  };
  // --only pixel | forged | static: one run alone (for a profile of it); --pixel-only is --only pixel
  const only = process.argv.includes('--pixel-only') ? 'pixel' : arg('only', '');
  const skipped: WrkResult = { requests: 0, rps: NaN, non2xx: 0, latencyMs: {} };
  const runs = (name: string): boolean => only === '' || only === name;
  // The static file and the pixel alternate ROUNDS times (the machine's speed drifts within a run); the
  // ratio is the median of the rounds' ratios, and the figures below are that round's.
  const rounds: Array<{ staticFile: WrkResult; pixel: WrkResult; ratio: number }> = [];
  for (let r = 0; r < (only === '' ? ROUNDS : 1); r++) {
    const staticFile = runs('static') ? measured(`http://127.0.0.1:${PORT}/dashboard/app.css`, null) : skipped;
    const pixel = runs('pixel') ? measured(`http://127.0.0.1:${PORT}/`, script) : skipped;
    rounds.push({ staticFile, pixel, ratio: pixel.rps / staticFile.rps });
  }
  const { staticFile, pixel, ratio } = [...rounds].sort((a, b) => a.ratio - b.ratio)[Math.floor((rounds.length - 1) / 2)]!;
  const pixelsAnswered = rounds.reduce((n, r) => n + r.pixel.requests - r.pixel.non2xx, 0);
  const staticCycled = only === '' ? measured(`http://127.0.0.1:${PORT}/`, staticScript) : skipped;
  const forgedRun = runs('forged') ? measured(`http://127.0.0.1:${PORT}${forged}`, null) : skipped;
  // every answered pixel is a read in ClickHouse, once
  const ch = new ClickHouse({ url: cfg.clickhouseUrl, database: cfg.clickhouseDb });
  let stored = 0;
  for (let i = 0; i < 600; i++) {
    stored = Number(
      (await ch.rows<{ n: string }>(`SELECT count() AS n FROM message_events WHERE campaign_id = ${campaign.id} AND kind = 'read'`))[0]!.n,
    );
    if (stored >= pixelsAnswered) {
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
  const ratioCycled = pixel.rps / staticCycled.rps;
  console.log(
    `static file: ${Math.round(staticFile.rps).toLocaleString()} req/s, p50 ${staticFile.latencyMs.p50} ms, p99 ${staticFile.latencyMs.p99} ms`,
  );
  console.log(
    `genuine pixel: ${Math.round(pixel.rps).toLocaleString()} req/s (${Math.round(100 * ratio)} % of the static file), p50 ${pixel.latencyMs.p50} ms, p99 ${pixel.latencyMs.p99} ms; ` +
      `${pixelsAnswered.toLocaleString()} answered in all, ${stored.toLocaleString()} reads stored`,
  );
  if (rounds.length > 1)
    console.log(
      `rounds (static / pixel req/s, ratio): ${rounds.map((r) => `${Math.round(r.staticFile.rps)} / ${Math.round(r.pixel.rps)} ${r.ratio.toFixed(2)}`).join('; ')}; median ${ratio.toFixed(2)}`,
    );
  console.log(
    `static file through the pixel's wrk script: ${Math.round(staticCycled.rps).toLocaleString()} req/s, p99 ${staticCycled.latencyMs.p99} ms; ` +
      `the pixel at ${Math.round(100 * ratioCycled)} % of it`,
  );
  console.log(
    `wrk's own CPU s: static ${staticFile.wrkCpu}, static through the script ${staticCycled.wrkCpu}, pixel ${pixel.wrkCpu}, forged ${forgedRun.wrkCpu}`,
  );
  console.log(`CPU seconds: static ${JSON.stringify(staticFile.cpu)}; pixel ${JSON.stringify(pixel.cpu)}`);
  console.log(`forged pixel (no read): ${Math.round(forgedRun.rps).toLocaleString()} req/s, p99 ${forgedRun.latencyMs.p99} ms`);
  mkdirSync('bench/results', { recursive: true });
  writeFileSync(
    `bench/results/pixel${POPULATED === null ? '' : '-populated'}.json`,
    `${JSON.stringify(
      {
        machine: { cpus: cpus().length, model: cpus()[0]?.model, node: process.version },
        populated: used,
        connections: CONNECTIONS,
        seconds: SECONDS,
        static: staticFile,
        staticThroughScript: { ...staticCycled, pixelRatio: Math.round(ratioCycled * 100) / 100 },
        pixel: { ...pixel, readsStored: stored, ratioToStatic: Math.round(ratio * 100) / 100 },
        forged: forgedRun,
        rounds: rounds.map((r) => ({
          staticRps: Math.round(r.staticFile.rps),
          pixelRps: Math.round(r.pixel.rps),
          ratio: Math.round(r.ratio * 100) / 100,
        })),
        at: new Date().toISOString(),
      },
      null,
      2,
    )}\n`,
  );
  // wrk leaves up to one request per connection unanswered when its time is up: the server may have taken those too
  if (stored < pixelsAnswered || stored > pixelsAnswered + CONNECTIONS * rounds.length)
    throw new Error(`${stored} reads stored for ${pixelsAnswered} pixels answered`);
} finally {
  child.kill('SIGTERM');
  await new Promise((r) => child.once('exit', r));
  await dropRun(base, ns, POPULATED);
}

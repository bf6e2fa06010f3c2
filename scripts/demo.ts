/**
 * `npm run demo`: starts Herald (API + dispatcher) against the local services, imports a demo audience
 * over the HTTP API, starts a campaign on the null channel, draws a progress bar until it completes,
 * prints the totals, and keeps serving (Ctrl-C stops it; --exit stops right away).
 *   --recipients N   audience size (default 1,000,000)
 *   --exit           stop Herald after the totals
 */
import { Readable } from 'node:stream';
import { loadConfig } from '../src/config.js';
import { startHerald } from '../src/main.js';

function arg(name: string): string | undefined {
  const i = process.argv.indexOf(`--${name}`);
  return i === -1 ? undefined : (process.argv[i + 1] ?? '');
}

const recipients = Number(arg('recipients') ?? 1_000_000);
if (!Number.isSafeInteger(recipients) || recipients < 1) throw new Error('--recipients must be a positive integer');
const exitAfter = process.argv.includes('--exit');
const key = process.env.HERALD_API_KEYS?.split(',')[0]?.trim() || 'demo-key-change-me';
const cfg = loadConfig({ HERALD_LOG_LEVEL: 'warn', ...process.env, HERALD_API_KEYS: process.env.HERALD_API_KEYS ?? key });
const herald = await startHerald(cfg);
const base = `http://127.0.0.1:${herald.port}`;
const headers = { authorization: `Bearer ${key}` };

async function call(method: string, path: string, body?: unknown): Promise<any> {
  const res = await fetch(`${base}${path}`, {
    method,
    headers: { ...headers, 'content-type': 'application/json' },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  const json = await res.json();
  if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${JSON.stringify(json)}`);
  return json;
}

function* ndjson(n: number, run: string): Generator<string> {
  const page = 10_000;
  for (let start = 1; start <= n; start += page) {
    let s = '';
    const end = Math.min(n, start + page - 1);
    for (let i = start; i <= end; i++)
      s += `{"user_id":"demo-${run}-${i}","address":"user${i}@example.test","attrs":{"country":"${['FR', 'DE', 'US', 'BR', 'JP'][i % 5]}"}}\n`;
    yield s;
  }
}

function bar(done: number, total: number, width = 40): string {
  const f = total === 0 ? 1 : Math.min(1, done / total);
  const full = Math.round(f * width);
  return `[${'#'.repeat(full)}${'.'.repeat(width - full)}] ${(f * 100).toFixed(1).padStart(5)}%`;
}

const fmt = (n: number): string => n.toLocaleString('en-US');
const run = Date.now().toString(36);
console.log(`Herald is listening on ${base} (API key: ${key}); dashboard: ${base}/?key=${encodeURIComponent(key)}`);

const audience = await call('POST', '/v1/audiences', { name: `demo ${run}` });
let t0 = performance.now();
const imp = await fetch(`${base}/v1/audiences/${audience.id}/recipients`, {
  method: 'POST',
  headers: { ...headers, 'content-type': 'application/x-ndjson' },
  body: Readable.toWeb(Readable.from(ndjson(recipients, run))) as ReadableStream,
  duplex: 'half',
} as RequestInit);
let imported = (await imp.json()) as { imported: number; total: number; status: string; import_id: number };
// A large import answers 202 once its body is staged; the job says when it is in.
while (imported.status !== 'completed' && imported.status !== 'failed') {
  await new Promise((r) => setTimeout(r, 200));
  imported = (await call('GET', `/v1/imports/${imported.import_id}`)) as typeof imported;
}
if (imported.status === 'failed') throw new Error(`import failed: ${JSON.stringify(imported)}`);
const importS = (performance.now() - t0) / 1000;
console.log(`imported ${fmt(imported.imported)} recipients in ${importS.toFixed(1)} s (${fmt(Math.round(imported.imported / importS))}/s)`);

const campaign = await call('POST', '/v1/campaigns', {
  name: `demo ${run}`,
  audience_id: audience.id,
  channel: { type: 'null' },
  content: { title: 'Hello from Herald', body: 'This is the demo campaign.' },
});
t0 = performance.now();
await call('POST', `/v1/campaigns/${campaign.id}/start`);
let c: any;
for (;;) {
  c = await call('GET', `/v1/campaigns/${campaign.id}`);
  const s = (performance.now() - t0) / 1000;
  const line = `${bar(c.sent, c.total ?? recipients)} ${fmt(c.sent)}/${fmt(c.total ?? recipients)} sent  ${fmt(Math.round(c.sent / Math.max(s, 0.001)))}/s  ${c.status}`;
  process.stdout.write(process.stdout.isTTY ? `\r${line}` : `${line}\n`);
  if (c.status !== 'sending') break;
  await new Promise((r) => setTimeout(r, 250));
}
const secs = (performance.now() - t0) / 1000;
process.stdout.write('\n');
console.log(`campaign ${c.id} ${c.status} in ${secs.toFixed(2)} s: ${fmt(Math.round(c.total / secs))} recipients/s`);
console.log(`totals: total=${fmt(c.total)} sent=${fmt(c.sent)} delivered=${fmt(c.delivered)} failed=${fmt(c.failed)} read=${fmt(c.read)}`);

if (exitAfter) {
  await herald.stop();
  process.exit(c.status === 'completed' && c.delivered === c.total ? 0 : 1);
}
console.log(`Herald keeps serving on ${base}; try: curl -H 'authorization: Bearer ${key}' ${base}/v1/campaigns/${c.id}  (Ctrl-C stops)`);
const stop = (): void => {
  herald.stop().then(
    () => process.exit(0),
    () => process.exit(1),
  );
};
process.once('SIGINT', stop);
process.once('SIGTERM', stop);

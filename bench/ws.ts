/**
 * WebSocket fan-out benchmark: 1,000 clients subscribed to one running campaign.
 *   unit: frames delivered to clients per second; delay from each delivery (the webhook receiver accepting
 *   the message) to the first frame a client gets whose `delivered` count includes it (p50 / p99 over
 *   every message, ms; it includes waiting for the next tick); spread of one frame's arrival across the
 *   1,000 clients (p99, ms); memory of the process (RSS) before and with the clients connected.
 *   method: Herald in this process with its default 1 s tick; a local webhook receiver answering at once
 *   and recording when each request arrived; a 200,000-recipient webhook campaign held to 10,000
 *   messages/s so it runs ~20 s; the clients (undici WebSocket) live in this process too, so the RSS
 *   figure includes their side and is an upper bound for the server's.
 *   npm run bench:ws -- [--clients 1000]
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { cpus } from 'node:os';
import { mkdirSync, writeFileSync } from 'node:fs';
import { pino } from 'pino';
import { WebSocket } from 'undici';
import { loadConfig } from '../src/config.js';
import { startHerald } from '../src/main.js';
import { apiCaller, dropNamespace, namespaced } from './namespace.js';

function arg(name: string, dflt: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i === -1 ? dflt : (process.argv[i + 1] ?? dflt);
}

const CLIENTS = Number(arg('clients', '1000'));
const N = 200_000;
const KEY = 'bench-key-0123456789';
const ns = `herald_ws_${Date.now().toString(36)}`;

// The receiver's timeline: after request k, `counts[k]` messages had arrived by `times[k]`.
const times: number[] = [];
const counts: number[] = [];
let received = 0;
const sink = createServer((req, res) => {
  let data = '';
  req.on('data', (d: Buffer) => (data += d.toString()));
  req.on('end', () => {
    received += (JSON.parse(data) as { messages: unknown[] }).messages.length;
    times.push(Date.now());
    counts.push(received);
    res.writeHead(200).end();
  });
});
await new Promise<void>((r) => sink.listen(0, '127.0.0.1', r));
const sinkUrl = `http://127.0.0.1:${(sink.address() as AddressInfo).port}/`;

const base = loadConfig({ ...process.env, HERALD_API_KEYS: KEY });
const herald = await startHerald(namespaced(base, ns, { webhookBatchSize: 100, subBatchSize: 100 }), { logger: pino({ level: 'warn' }) });
const api = `http://127.0.0.1:${herald.port}`;
const call = apiCaller(api, KEY);
const aud = await call('POST', '/v1/audiences', { name: 'ws bench' });
await call(
  'POST',
  `/v1/audiences/${aud.id}/recipients`,
  Array.from({ length: N }, (_, i) => `{"user_id":"w${i + 1}","address":"w${i + 1}@example.test"}`).join('\n'),
  'application/x-ndjson',
);
const c = await call('POST', '/v1/campaigns', {
  name: 'ws bench',
  audience_id: aud.id,
  channel: { type: 'webhook', url: sinkUrl },
  content: { title: 't', body: 'b' },
  chunk_size: 500,
  rate_limit: 10_000,
});

global.gc?.();
const rssBefore = process.memoryUsage().rss;
let frames = 0;
/** client 0's frames: when it had them, and the count they showed */
const seen: Array<{ at: number; delivered: number }> = [];
/** each frame (by its `at`): first and last arrival over all clients */
const spread = new Map<string, { first: number; last: number }>();
const sockets: WebSocket[] = [];
for (let i = 0; i < CLIENTS; i++) {
  const ws = new WebSocket(`ws://127.0.0.1:${herald.port}/v1/ws`, { headers: { authorization: `Bearer ${KEY}` } } as never);
  const first = i === 0;
  ws.addEventListener('message', (ev) => {
    const now = Date.now();
    const f = JSON.parse(ev.data as string) as { campaign_id?: number; status?: string; delivered?: number; at?: string };
    if (f.campaign_id !== c.id || f.status !== 'sending' || f.at === undefined) return;
    frames++;
    const s = spread.get(f.at);
    if (s === undefined) spread.set(f.at, { first: now, last: now });
    else s.last = Math.max(s.last, now);
    if (first) seen.push({ at: now, delivered: f.delivered ?? 0 });
  });
  await new Promise<void>((resolve, reject) => {
    ws.addEventListener('open', () => resolve());
    ws.addEventListener('error', () => reject(new Error('websocket refused')));
  });
  ws.send(JSON.stringify({ subscribe: String(c.id) }));
  sockets.push(ws);
}
const rssWith = process.memoryUsage().rss;
const t0 = Date.now();
await call('POST', `/v1/campaigns/${c.id}/start`);
for (;;) {
  const g = await call('GET', `/v1/campaigns/${c.id}`);
  if (g.status === 'completed') break;
  await new Promise((r) => setTimeout(r, 200));
}
const seconds = (Date.now() - t0) / 1000;
const rssPeak = process.memoryUsage().rss;
// Every message becomes visible with the first frame whose count includes it: weight each request's
// delay (frame arrival − request arrival) by its messages.
const weighted: Array<[delay: number, messages: number]> = [];
let k = 0;
for (const f of seen) {
  while (k < counts.length && counts[k]! <= f.delivered) {
    weighted.push([f.at - times[k]!, counts[k]! - (k === 0 ? 0 : counts[k - 1]!)]);
    k++;
  }
}
weighted.sort((a, b) => a[0] - b[0]);
const total = weighted.reduce((n, [, m]) => n + m, 0);
const q = (p: number): number => {
  let acc = 0;
  for (const [d, m] of weighted) if ((acc += m) >= p * total) return d;
  return NaN;
};
const spreads = [...spread.values()].map((s) => s.last - s.first).sort((a, b) => a - b);
const result = {
  clients: CLIENTS,
  seconds: Math.round(seconds * 10) / 10,
  framesPerSec: Math.round(frames / seconds),
  framesPerClientPerSec: Math.round((frames / seconds / CLIENTS) * 100) / 100,
  messagesTimed: total,
  delayP50Ms: q(0.5),
  delayP99Ms: q(0.99),
  fanOutSpreadP99Ms: spreads[Math.floor(0.99 * (spreads.length - 1))] ?? NaN,
  rssBeforeMb: Math.round(rssBefore / 2 ** 20),
  rssWithClientsMb: Math.round(rssWith / 2 ** 20),
  rssPeakMb: Math.round(rssPeak / 2 ** 20),
  serverStats: herald.api?.hub?.stats,
};
console.log(
  `${CLIENTS} WebSocket clients on one campaign (${N.toLocaleString('en')} recipients, ${result.seconds} s): ` +
    `${result.framesPerSec.toLocaleString('en')} frames/s delivered (${result.framesPerClientPerSec} per client per second); ` +
    `delivery → first frame showing it p50 ${result.delayP50Ms} ms, p99 ${result.delayP99Ms} ms (over ${total.toLocaleString('en')} messages); ` +
    `one frame reaches all clients within ${result.fanOutSpreadP99Ms} ms (p99); RSS ${result.rssBeforeMb} MB before the clients, ` +
    `${result.rssWithClientsMb} MB with them, ${result.rssPeakMb} MB at the end (clients in the same process)`,
);
console.log(`machine: ${cpus().length} × ${cpus()[0]?.model ?? 'cpu'}, node ${process.version}`);
mkdirSync('bench/results', { recursive: true });
writeFileSync('bench/results/ws.json', `${JSON.stringify({ bench: 'ws', at: new Date().toISOString(), ...result }, null, 2)}\n`);
for (const ws of sockets) ws.close();
await herald.stop();
sink.close();
await dropNamespace(base, ns);

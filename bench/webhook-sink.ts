/**
 * The webhook bench's receiver, in a process of its own so it does not share Herald's event loop. It
 * answers every POST after `--latency` ms with 200, counts messages, distinct idempotency keys,
 * requests, TCP connections and the most requests it held at once, and reports them to its parent on
 * request (IPC). Gzipped bodies (`content-encoding: gzip`) are inflated first. `{since: t}` asks how many
 * messages arrived, and how many were accepted (answered), after t (ms, this machine's clock), and when
 * the last request arrived and was answered; `{since: 'paused'}` counts from when the receiver heard, on
 * Herald's control channel (`--control <redis url> <channel>`), that a campaign was paused: the message is
 * published in the same Redis step that records the status every consumer checks.
 */
import { createServer } from 'node:http';
import { gunzipSync } from 'node:zlib';
import { Redis } from 'ioredis';
import type { AddressInfo } from 'node:net';

const latency = Number(process.argv[process.argv.indexOf('--latency') + 1] ?? 0);
const keys = new Set<string>();
let pausedAt = 0;
const control = process.argv.indexOf('--control');
if (control !== -1) {
  const sub = new Redis(process.argv[control + 1]!);
  sub.on('message', (_ch: string, m: string) => {
    if (m.endsWith(' paused') && pausedAt === 0) pausedAt = Date.now();
  });
  await sub.subscribe(process.argv[control + 2]!);
}
let messages = 0;
let requests = 0;
let connections = 0;
let lastAt = 0;
let open = 0;
let maxOpen = 0;
let firstAt = 0;
/** the sum of the requests' times from first byte to answer: over the receiver's busy span, the mean in flight */
let openMs = 0;
/** per request: when its body had arrived, when it was answered, its messages */
const log: Array<[number, number, number]> = [];
const server = createServer({ keepAliveTimeout: 60_000 }, (req, res) => {
  const parts: Buffer[] = [];
  const startedAt = Date.now();
  if (firstAt === 0) firstAt = startedAt;
  open++;
  maxOpen = Math.max(maxOpen, open);
  req.on('data', (d: Buffer) => parts.push(d));
  req.on('end', () => {
    const arrivedAt = Date.now();
    const raw = Buffer.concat(parts);
    const text = (req.headers['content-encoding'] === 'gzip' ? gunzipSync(raw) : raw).toString();
    const body = JSON.parse(text) as { messages: Array<{ idempotency_key: string }> };
    const answer = (): void => {
      open--;
      requests++;
      messages += body.messages.length;
      for (const m of body.messages) keys.add(m.idempotency_key);
      lastAt = Date.now();
      openMs += lastAt - startedAt;
      log.push([arrivedAt, lastAt, body.messages.length]);
      res.writeHead(200, { 'content-type': 'application/json' }).end('{"failed":[]}');
    };
    if (latency === 0) answer();
    else setTimeout(answer, latency);
  });
});
server.on('connection', () => connections++);
server.listen(0, '127.0.0.1', () => process.send!({ port: (server.address() as AddressInfo).port }));
process.on('message', (m: string | { since: number | 'paused' }) => {
  if (typeof m === 'object') {
    const since = m.since === 'paused' ? pausedAt : m.since;
    const after = { since, arrived: 0, answered: 0, lastArrivedAt: 0, lastAnsweredAt: 0 };
    for (const [arrived, answered, n] of log) {
      if (arrived > since) after.arrived += n;
      if (answered > since) after.answered += n;
      after.lastArrivedAt = Math.max(after.lastArrivedAt, arrived);
      after.lastAnsweredAt = Math.max(after.lastAnsweredAt, answered);
    }
    process.send!(after);
    return;
  }
  if (m === 'stats') {
    const cpu = process.cpuUsage();
    process.send!({
      messages,
      unique: keys.size,
      requests,
      connections,
      lastAt,
      firstAt,
      openMs,
      maxOpen,
      cpuMs: (cpu.user + cpu.system) / 1000,
    });
  }
  if (m === 'reset') {
    keys.clear();
    log.length = 0;
    pausedAt = 0;
    messages = requests = connections = maxOpen = firstAt = openMs = 0;
  }
  if (m === 'stop') server.close(() => process.exit(0));
  if (m === 'stop') server.closeAllConnections();
});

/**
 * The webhook bench's receiver, in a process of its own so it does not share Herald's event loop. It
 * answers every POST after `--latency` ms with 200, counts messages, distinct idempotency keys,
 * requests, TCP connections and the most requests it held at once, and reports them to its parent on
 * request (IPC). Gzipped bodies (`content-encoding: gzip`) are inflated first. `{since: t}` asks how many
 * messages arrived, and how many were accepted (answered), after t (ms, this machine's clock), and when
 * the last request arrived and was answered.
 */
import { createServer } from 'node:http';
import { gunzipSync } from 'node:zlib';
import type { AddressInfo } from 'node:net';

const latency = Number(process.argv[process.argv.indexOf('--latency') + 1] ?? 0);
const keys = new Set<string>();
let messages = 0;
let requests = 0;
let connections = 0;
let lastAt = 0;
let open = 0;
let maxOpen = 0;
/** per request: when its body had arrived, when it was answered, its messages */
const log: Array<[number, number, number]> = [];
const server = createServer({ keepAliveTimeout: 60_000 }, (req, res) => {
  const parts: Buffer[] = [];
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
      log.push([arrivedAt, lastAt, body.messages.length]);
      res.writeHead(200, { 'content-type': 'application/json' }).end('{"failed":[]}');
    };
    if (latency === 0) answer();
    else setTimeout(answer, latency);
  });
});
server.on('connection', () => connections++);
server.listen(0, '127.0.0.1', () => process.send!({ port: (server.address() as AddressInfo).port }));
process.on('message', (m: string | { since: number }) => {
  if (typeof m === 'object') {
    const after = { arrived: 0, answered: 0, lastArrivedAt: 0, lastAnsweredAt: 0 };
    for (const [arrived, answered, n] of log) {
      if (arrived > m.since) after.arrived += n;
      if (answered > m.since) after.answered += n;
      after.lastArrivedAt = Math.max(after.lastArrivedAt, arrived);
      after.lastAnsweredAt = Math.max(after.lastAnsweredAt, answered);
    }
    process.send!(after);
    return;
  }
  if (m === 'stats') process.send!({ messages, unique: keys.size, requests, connections, lastAt, maxOpen });
  if (m === 'reset') {
    keys.clear();
    log.length = 0;
    messages = requests = connections = maxOpen = 0;
  }
  if (m === 'stop') server.close(() => process.exit(0));
});

/**
 * The webhook bench's receiver, in a process of its own so it does not share Herald's event loop. It
 * answers every POST after `--latency` ms with 200, counts messages, distinct idempotency keys,
 * requests and TCP connections, and reports them to its parent on request (IPC).
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';

const latency = Number(process.argv[process.argv.indexOf('--latency') + 1] ?? 0);
const keys = new Set<string>();
let messages = 0;
let requests = 0;
let connections = 0;
let lastAt = 0;
const server = createServer({ keepAliveTimeout: 60_000 }, (req, res) => {
  const parts: Buffer[] = [];
  req.on('data', (d: Buffer) => parts.push(d));
  req.on('end', () => {
    const body = JSON.parse(Buffer.concat(parts).toString()) as { messages: Array<{ idempotency_key: string }> };
    const answer = (): void => {
      requests++;
      messages += body.messages.length;
      for (const m of body.messages) keys.add(m.idempotency_key);
      lastAt = Date.now();
      res.writeHead(200, { 'content-type': 'application/json' }).end('{"failed":[]}');
    };
    if (latency === 0) answer();
    else setTimeout(answer, latency);
  });
});
server.on('connection', () => connections++);
server.listen(0, '127.0.0.1', () => process.send!({ port: (server.address() as AddressInfo).port }));
process.on('message', (m: string) => {
  if (m === 'stats') process.send!({ messages, unique: keys.size, requests, connections, lastAt });
  if (m === 'reset') {
    keys.clear();
    messages = requests = connections = 0;
  }
  if (m === 'stop') server.close(() => process.exit(0));
});

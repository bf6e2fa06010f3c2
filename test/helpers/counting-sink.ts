import { createServer, type Server } from 'node:http';
import { gunzipSync } from 'node:zlib';
import { listenLocal } from './local-http.js';

interface Request {
  arrivedAt: number;
  answeredAt: number;
  keys: string[];
}

/**
 * A webhook receiver that answers after `latencyMs`, counts the requests it holds at once, inflates gzip
 * bodies (and remembers which encodings came), and can hold every answer until told to release them.
 */
export class CountingSink {
  server!: Server;
  url!: string;
  open = 0;
  maxOpen = 0;
  /** request body bytes (as sent) of the requests held now, and the most at once */
  openBytes = 0;
  maxOpenBytes = 0;
  readonly requests: Request[] = [];
  readonly encodings = new Set<string>();
  private held: Array<() => void> | null = null;

  constructor(readonly latencyMs: number) {}

  async start(): Promise<void> {
    this.server = createServer((req, res) => {
      const parts: Buffer[] = [];
      this.open++;
      this.maxOpen = Math.max(this.maxOpen, this.open);
      req.on('data', (d: Buffer) => parts.push(d));
      req.on('end', () => {
        const arrivedAt = Date.now();
        const bytes = parts.reduce((n, p) => n + p.length, 0);
        this.openBytes += bytes;
        this.maxOpenBytes = Math.max(this.maxOpenBytes, this.openBytes);
        const encoding = req.headers['content-encoding'] ?? 'identity';
        this.encodings.add(encoding);
        const raw = Buffer.concat(parts);
        const body = JSON.parse((encoding === 'gzip' ? gunzipSync(raw) : raw).toString()) as {
          messages: Array<{ idempotency_key: string }>;
        };
        const answer = (): void => {
          this.open--;
          this.openBytes -= bytes;
          this.requests.push({ arrivedAt, answeredAt: Date.now(), keys: body.messages.map((m) => m.idempotency_key) });
          res.writeHead(200).end();
        };
        setTimeout(() => (this.held === null ? answer() : this.held.push(answer)), this.latencyMs);
      });
    });
    this.url = await listenLocal(this.server);
  }

  /** Answers nothing from now on until `release`. */
  hold(): void {
    this.held ??= [];
  }

  /** Answers what was held, and everything after at once again; returns how many requests were held. */
  release(): number {
    const held = this.held ?? [];
    this.held = null;
    for (const answer of held) answer();
    return held.length;
  }

  /** Messages of `campaignId` the receiver answered (accepted) after `t`. */
  acceptedAfter(t: number, campaignId: number): number {
    return this.of(campaignId)
      .filter((r) => r.answeredAt > t)
      .reduce((n, r) => n + r.keys.length, 0);
  }

  /** How often each idempotency key of `campaignId` was accepted. */
  keys(campaignId: number): Map<string, number> {
    const seen = new Map<string, number>();
    for (const r of this.of(campaignId)) for (const k of r.keys) seen.set(k, (seen.get(k) ?? 0) + 1);
    return seen;
  }

  of(campaignId: number): Request[] {
    return this.requests.filter((r) => r.keys[0]?.startsWith(`${campaignId}:`));
  }
}

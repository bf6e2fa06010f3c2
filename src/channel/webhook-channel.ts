/**
 * POSTs batches of messages to a URL through a pooled keep-alive client (undici Pool: keep-alive sockets,
 * as many as requests in flight unless `connections` caps them, which Node's fetch does not expose).
 * How many requests are in flight is the caller's (the campaign's send slots); the request bytes in flight
 * per campaign are held to `maxInflightBytes` here, where the payloads are built.
 *   2xx → delivered, except entries the receiver lists as failed in `{"failed":[{"idempotency_key","error"}]}`
 *   4xx → every message in the batch failed, with the status and the start of the body as the reason
 *   5xx, 408, timeout, connection error → retried with exponential backoff and jitter, then failed
 *   429 → the receiver asks us to slow down: wait its Retry-After (or the backoff) and try again, without
 *         spending an attempt, up to MAX_THROTTLES times in a row
 * Every request, a retry or a re-post after a 429 above all (it may come long after the chunk's last
 * ownership check), goes out only once the batch's `mayPost` says the sender still holds the chunk; told
 * no, the part is reported `unsent`, neither delivered nor failed.
 */
import { promisify } from 'node:util';
import { gzip as gzipCb } from 'node:zlib';
import { Pool } from 'undici';
import { Semaphore } from '../domain/semaphore.js';
import { idempotencyKey, type Channel, type OutboundBatch, type SendResult } from './channel.js';

const gzip = promisify(gzipCb);

export interface WebhookOptions {
  url: string;
  batchSize: number;
  timeoutMs: number;
  attempts: number;
  backoffMs: number;
  /** keep-alive sockets to the origin; 0: no cap (one per request in flight) */
  connections: number;
  /** request body bytes in flight per campaign; a request larger than this goes alone */
  maxInflightBytes: number;
  /**
   * each message's signed links, made together (one HMAC for both, domain/tokens.ts): the read-receipt
   * pixel put in as `tracking_url` (unless the campaign's `tracking` is off) and the one-click unsubscribe
   * URL put in as `unsubscribe_url` (topic '': the global list); none when absent
   */
  links?: (campaignId: number, userId: string, topic: string) => MessageLinks;
}

export interface MessageLinks {
  trackingUrl: string;
  unsubscribeUrl: string;
}

type Outcome =
  | { kind: 'ok'; failedKeys: Map<string, string> }
  | { kind: 'reject'; error: string }
  | { kind: 'retry'; error: string }
  | { kind: 'throttle'; error: string; waitMs: number | null }
  /** not posted: the sender no longer holds the chunk (`mayPost`) */
  | { kind: 'unsent' };

const UNSENT: Outcome = { kind: 'unsent' };

const MAX_THROTTLES = 100;
const MAX_RETRY_AFTER_MS = 60_000;

/** Retry-After: delay-seconds or an HTTP date; null when absent or unreadable. */
export function retryAfterMs(header: string | string[] | undefined, now = Date.now()): number | null {
  const v = Array.isArray(header) ? header[0] : header;
  if (v === undefined || v.trim() === '') return null;
  if (/^\d+$/.test(v.trim())) return Math.min(Number(v.trim()) * 1000, MAX_RETRY_AFTER_MS);
  const at = Date.parse(v);
  return Number.isNaN(at) ? null : Math.min(Math.max(0, at - now), MAX_RETRY_AFTER_MS);
}

export class WebhookChannel implements Channel {
  readonly instant = false;
  readonly needsRecipients = true;
  readonly type = 'webhook';
  private readonly pool: Pool;
  private readonly path: string;
  /** per campaign sending here: its request bytes in flight (dropped when none are) */
  private readonly budgets = new Map<number, Semaphore>();

  constructor(private readonly opts: WebhookOptions) {
    const u = new URL(opts.url);
    this.pool = new Pool(u.origin, {
      connections: opts.connections === 0 ? null : opts.connections,
      keepAliveTimeout: 30_000,
      headersTimeout: opts.timeoutMs,
      bodyTimeout: opts.timeoutMs,
    });
    this.path = `${u.pathname}${u.search}`;
  }

  async send(batch: OutboundBatch, signal?: AbortSignal): Promise<SendResult> {
    const result: SendResult = { failed: new Map(), retries: 0, throttled: 0 };
    const parts: Array<Promise<void>> = [];
    for (let start = 0; start < batch.userIds.length; start += this.opts.batchSize) {
      const end = Math.min(start + this.opts.batchSize, batch.userIds.length);
      parts.push(this.sendPart(batch, start, end, result, signal));
    }
    await Promise.all(parts);
    return result;
  }

  private async sendPart(batch: OutboundBatch, start: number, end: number, result: SendResult, signal?: AbortSignal): Promise<void> {
    const messages: Array<Record<string, unknown>> = [];
    const contents = batch.contents ?? null;
    const data = batch.data ?? null;
    const links = this.opts.links ?? null;
    const topic = batch.topic ?? '';
    for (let i = start; i < end; i++) {
      const userId = batch.userIds[i]!;
      const content = contents === null ? null : contents[i]!;
      const messageData = content === null ? data : content.data;
      // Built field by field, not by spreading optional parts: one object per message, not five, and
      // every message of a batch has the same shape for JSON.stringify.
      const m: Record<string, unknown> = {
        user_id: userId,
        address: batch.addresses[i] ?? null,
        title: content === null ? batch.title : content.title,
        body: content === null ? batch.body : content.body,
      };
      if (messageData !== null) m.data = messageData;
      m.idempotency_key =
        batch.test === undefined ? idempotencyKey(batch.campaignId, userId) : `${idempotencyKey(batch.campaignId, userId)}:${batch.test}`;
      if (batch.test !== undefined) m.test = true;
      if (links !== null) {
        const l = links(batch.campaignId, userId, topic);
        if (batch.tracking) m.tracking_url = l.trackingUrl;
        m.unsubscribe_url = l.unsubscribeUrl;
      }
      messages.push(m);
    }
    const json = JSON.stringify({ campaign_id: batch.campaignId, messages });
    const payload = batch.compress ? await gzip(json) : Buffer.from(json);
    const headers: Record<string, string> = { 'content-type': 'application/json' };
    if (batch.compress) headers['content-encoding'] = 'gzip';
    // Held from before the first attempt to after the last: retries and throttle waits keep the body.
    const budget = this.budget(batch.campaignId);
    const held = await budget.take(payload.length);
    let outcome: Outcome;
    try {
      outcome = await this.attempts({ payload, headers, result, signal, mayPost: batch.mayPost ?? null });
    } finally {
      budget.release(held);
      if (budget.inUse === 0) this.budgets.delete(batch.campaignId);
    }
    if (outcome.kind === 'unsent') {
      const unsent = (result.unsent ??= new Set());
      for (let i = start; i < end; i++) unsent.add(i);
      return;
    }
    if (outcome.kind === 'ok') {
      if (outcome.failedKeys.size === 0) return;
      for (let i = start; i < end; i++) {
        const err = outcome.failedKeys.get(messages[i - start]!.idempotency_key as string);
        if (err !== undefined) result.failed.set(i, err);
      }
      return;
    }
    const error = outcome.kind === 'retry' ? `gave up after ${this.opts.attempts} attempts: ${outcome.error}` : outcome.error;
    for (let i = start; i < end; i++) result.failed.set(i, error);
  }

  private budget(campaignId: number): Semaphore {
    let b = this.budgets.get(campaignId);
    if (b === undefined) {
      b = new Semaphore(this.opts.maxInflightBytes);
      this.budgets.set(campaignId, b);
    }
    return b;
  }

  /** Posts until a verdict: retries with backoff, throttles without spending an attempt. */
  private async attempts(a: {
    payload: Buffer;
    headers: Record<string, string>;
    result: SendResult;
    signal: AbortSignal | undefined;
    mayPost: (() => Promise<boolean>) | null;
  }): Promise<Outcome> {
    const { payload, headers, result, signal, mayPost } = a;
    let outcome: Outcome = { kind: 'retry', error: 'not sent' };
    let throttles = 0;
    // Asked after the wait, right before the request: a backoff or a Retry-After can outlast the sender's
    // trust in its hold. Every 429 answer is counted (SendResult.throttled), the last one too; a retry only
    // when it is posted.
    const post = async (retry: boolean): Promise<Outcome> => {
      if (mayPost !== null && !(await mayPost())) return UNSENT;
      if (retry) result.retries++;
      const o = await this.post(payload, headers);
      if (o.kind === 'throttle') result.throttled = (result.throttled ?? 0) + 1;
      return o;
    };
    for (let attempt = 1; attempt <= this.opts.attempts; attempt++) {
      if (attempt > 1) {
        const delay = this.opts.backoffMs * 2 ** (attempt - 2);
        await sleep(delay / 2 + Math.random() * (delay / 2), signal);
      }
      outcome = await post(attempt > 1);
      while (outcome.kind === 'throttle' && throttles < MAX_THROTTLES && !signal?.aborted) {
        throttles++;
        await sleep(outcome.waitMs ?? this.opts.backoffMs * 2 ** Math.min(throttles - 1, 8), signal);
        outcome = await post(true);
      }
      if (outcome.kind !== 'retry') break;
    }
    if (outcome.kind === 'throttle') return { kind: 'reject', error: `still throttled after ${throttles} tries: ${outcome.error}` };
    return outcome;
  }

  private async post(payload: Buffer, headers: Record<string, string>): Promise<Outcome> {
    try {
      const res = await this.pool.request({
        method: 'POST',
        path: this.path,
        headers,
        body: payload,
        signal: AbortSignal.timeout(this.opts.timeoutMs),
      });
      const text = await res.body.text();
      if (res.statusCode >= 200 && res.statusCode < 300) return { kind: 'ok', failedKeys: parseFailed(text) };
      const reason = `HTTP ${res.statusCode}${text ? `: ${text.slice(0, 200)}` : ''}`;
      if (res.statusCode === 429) return { kind: 'throttle', error: reason, waitMs: retryAfterMs(res.headers['retry-after']) };
      // 408 is the receiver asking us to come back later, not a verdict on the message.
      if (res.statusCode >= 500 || res.statusCode === 408) return { kind: 'retry', error: reason };
      return { kind: 'reject', error: reason };
    } catch (err) {
      return { kind: 'retry', error: (err as Error).message || String(err) };
    }
  }

  async close(): Promise<void> {
    await this.pool.close();
  }
}

function parseFailed(text: string): Map<string, string> {
  const out = new Map<string, string>();
  if (!text || text[0] !== '{') return out;
  try {
    const body = JSON.parse(text) as { failed?: unknown };
    if (!Array.isArray(body.failed)) return out;
    for (const f of body.failed as Array<{ idempotency_key?: unknown; error?: unknown }>) {
      if (typeof f?.idempotency_key === 'string')
        out.set(f.idempotency_key, typeof f.error === 'string' ? f.error : 'rejected by receiver');
    }
  } catch {
    // a 2xx with a body that is not our JSON: everything delivered
  }
  return out;
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const t = setTimeout(resolve, ms);
    signal?.addEventListener(
      'abort',
      () => {
        clearTimeout(t);
        resolve();
      },
      { once: true },
    );
  });
}

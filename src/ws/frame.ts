/**
 * Progress frames and client messages of the WebSocket API. Pure: the hub (progress-hub.ts) gathers the
 * campaign and its counts, this shapes them, encodes them once per format, and parses what clients send.
 */
import { Packr, Unpackr } from 'msgpackr';

export interface ProgressFrame {
  campaign_id: number;
  status: string;
  total: number | null;
  sent: number;
  delivered: number;
  failed: number;
  skipped: number;
  suppressed: number;
  capped: number;
  aborted: number;
  pending: number;
  read: number;
  unique_readers: number;
  /** messages with an outcome per second since the previous frame (0 when not sending) */
  rate_per_s: number;
  /** seconds left at that rate; null when unknown (not sending, or no rate yet) */
  eta_s: number | null;
  /** when the frame was computed (ISO) */
  at: string;
}

export type FrameFormat = 'json' | 'msgpack';

export interface Sample {
  /** recipients with an outcome: sent, or withheld */
  done: number;
  atMs: number;
}

/** Recipients of a frame that have an outcome (sent to the channel, or withheld). */
export function doneOf(v: Pick<ProgressFrame, 'sent' | 'skipped' | 'suppressed' | 'capped'>): number {
  return v.sent + v.skipped + v.suppressed + v.capped;
}

/** Rate and ETA from the previous sample of the same campaign. */
export function withRate(view: Omit<ProgressFrame, 'rate_per_s' | 'eta_s' | 'at'>, prev: Sample | undefined, nowMs: number): ProgressFrame {
  let rate = 0;
  if (prev !== undefined && nowMs > prev.atMs && view.status === 'sending')
    rate = Math.max(0, ((doneOf(view) - prev.done) * 1000) / (nowMs - prev.atMs));
  const eta = view.status === 'sending' && rate > 0 ? Math.ceil(view.pending / rate) : null;
  return { ...view, rate_per_s: Math.round(rate * 10) / 10, eta_s: eta, at: new Date(nowMs).toISOString() };
}

const packr = new Packr({ useRecords: false });

export function encodeFrame(frame: ProgressFrame | Record<string, unknown>, format: FrameFormat): string | Buffer {
  return format === 'json' ? JSON.stringify(frame) : packr.pack(frame);
}

const unpackr = new Unpackr({ useRecords: false });

/** A frame as a client gets it (a JSON text or a msgpack binary message) back to its fields: for clients such as the CLI. */
export function decodeFrame(data: string | ArrayBuffer | Uint8Array): Record<string, unknown> {
  const v: unknown =
    typeof data === 'string' ? JSON.parse(data) : unpackr.unpack(data instanceof ArrayBuffer ? new Uint8Array(data) : data);
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new Error('frame: not an object');
  return v as Record<string, unknown>;
}

/** What a client watches: a campaign, every campaign (`*`), or an import job (`"import:<id>"`). */
export type Target = number | '*' | { importId: number };

export type ClientMessage = { subscribe: Target } | { unsubscribe: Target };

/** Parses one client message; an Error names what is wrong (the server answers with an error frame). */
export function parseClientMessage(data: ArrayBuffer | Buffer | string): ClientMessage | Error {
  let text: string;
  try {
    text = typeof data === 'string' ? data : Buffer.from(data instanceof ArrayBuffer ? new Uint8Array(data) : data).toString('utf8');
  } catch {
    return new Error('message: not text');
  }
  if (text.length > 1024) return new Error('message: longer than 1024 bytes');
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    return new Error('message: malformed JSON');
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v))
    return new Error('message: expected {"subscribe": "<campaign_id>"} or {"unsubscribe": …}');
  const keys = Object.keys(v);
  if (keys.length !== 1 || (keys[0] !== 'subscribe' && keys[0] !== 'unsubscribe')) {
    return new Error('message: expected exactly one of "subscribe" or "unsubscribe"');
  }
  const key = keys[0] as 'subscribe' | 'unsubscribe';
  const raw = (v as Record<string, unknown>)[key];
  if (raw === '*') return { [key]: '*' } as ClientMessage;
  const imp = typeof raw === 'string' ? /^import:(\d{1,15})$/.exec(raw) : null;
  if (imp !== null) {
    const importId = Number(imp[1]);
    return importId >= 1 ? ({ [key]: { importId } } as ClientMessage) : new Error(`${key}: must be a campaign id, "*" or "import:<id>"`);
  }
  const id = typeof raw === 'number' ? raw : typeof raw === 'string' && /^\d{1,15}$/.test(raw) ? Number(raw) : NaN;
  if (!Number.isSafeInteger(id) || id < 1) return new Error(`${key}: must be a campaign id, "*" or "import:<id>"`);
  return { [key]: id } as ClientMessage;
}

/**
 * The read spool's file format (src/sink/read-spool.ts), pure. A spool file is a sequence of frames,
 * one per group commit:
 *   magic "HSF1" (4) | payload length (u32 LE) | frame number (u32 LE) | crc32 of the payload (u32 LE) | payload
 * The payload is a msgpack array of events. A frame cut short by a crash (a torn write at the end of
 * the file) fails its length or checksum: `decodeFrames` stops there, and everything before it stands.
 * Each frame's events are written to ClickHouse under one id, `spoolFrameId(spool, frame)`, so a frame
 * replayed after a crash is recognised as stored (the sink's `landed`) and never counted twice.
 */
import { crc32 } from 'node:zlib';
import { Packr } from 'msgpackr';
import type { EventKind } from './message-event.js';

export const FRAME_HEADER_BYTES = 16;
const MAGIC = 0x31465348; // "HSF1" read as a little-endian u32

/** An event accepted by the API and spooled before its answer. */
export interface SpooledEvent {
  campaignId: number;
  userId: string;
  kind: Extract<EventKind, 'read' | 'confirmed' | 'bounced'>;
  atSec: number;
  error: string;
}

export interface Frame {
  frame: number;
  events: SpooledEvent[];
  /** file offset just after the frame */
  end: number;
}

const packr = new Packr({ useRecords: false });
const KINDS: ReadonlyArray<SpooledEvent['kind']> = ['read', 'confirmed', 'bounced'];

export function encodeFrame(frame: number, events: readonly SpooledEvent[]): Buffer {
  // compact rows: [campaign, user, kind index, at, error]
  const payload = packr.pack(events.map((e) => [e.campaignId, e.userId, KINDS.indexOf(e.kind), e.atSec, e.error]));
  const out = Buffer.allocUnsafe(FRAME_HEADER_BYTES + payload.length);
  out.writeUInt32LE(MAGIC, 0);
  out.writeUInt32LE(payload.length, 4);
  out.writeUInt32LE(frame >>> 0, 8);
  out.writeUInt32LE(crc32(payload), 12);
  payload.copy(out, FRAME_HEADER_BYTES);
  return out;
}

/**
 * The whole frames in `buf` (read from file offset `base`), in order; `end` of the last one says where
 * reading stopped. A torn or corrupt frame ends the list (`torn`: bytes were left that make no frame).
 */
export function decodeFrames(buf: Buffer, base: number): { frames: Frame[]; end: number; torn: boolean } {
  const frames: Frame[] = [];
  let p = 0;
  while (p + FRAME_HEADER_BYTES <= buf.length) {
    if (buf.readUInt32LE(p) !== MAGIC) return { frames, end: base + p, torn: true };
    const len = buf.readUInt32LE(p + 4);
    if (p + FRAME_HEADER_BYTES + len > buf.length) break;
    const payload = buf.subarray(p + FRAME_HEADER_BYTES, p + FRAME_HEADER_BYTES + len);
    if (crc32(payload) !== buf.readUInt32LE(p + 12)) return { frames, end: base + p, torn: true };
    const rows = packr.unpack(payload) as Array<[number, string, number, number, string]>;
    frames.push({
      frame: buf.readUInt32LE(p + 8),
      events: rows.map(([campaignId, userId, kind, atSec, error]) => ({ campaignId, userId, kind: KINDS[kind] ?? 'read', atSec, error })),
      end: base + p + FRAME_HEADER_BYTES + len,
    });
    p += FRAME_HEADER_BYTES + len;
  }
  return { frames, end: base + p, torn: false };
}

/** Frame numbers take 22 bits of a frame's id (a 64 MB file holds under 2^21 frames of one event). */
export const MAX_FRAME_NUMBER = 2 ** 22 - 1;
const SPOOL_ID_BITS = 40;

/** A new spool file's id: random, 40 bits (collisions matter only between files replayed into one database). */
export function randomSpoolId(): number {
  return Math.floor(Math.random() * 2 ** SPOOL_ID_BITS);
}

/**
 * The ClickHouse batch id of a spool frame: kind 3 in the top two bits (sub-batch ids use 1 and 2,
 * random insert ids any), then the spool file's 40-bit id and the 22-bit frame number.
 */
export function spoolFrameId(spool: number, frame: number): bigint {
  if (!Number.isInteger(spool) || spool < 0 || spool >= 2 ** SPOOL_ID_BITS) throw new RangeError(`spool id ${spool} out of range`);
  if (!Number.isInteger(frame) || frame < 0 || frame > MAX_FRAME_NUMBER) throw new RangeError(`frame ${frame} out of range`);
  return (3n << 62n) | (BigInt(spool) << 22n) | BigInt(frame);
}

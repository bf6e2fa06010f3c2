/**
 * Encodes chunk descriptors for stream entries: a msgpackr array with a version tag, ~20 bytes.
 * Decoding validates every field, since a stream entry is input like any other.
 */
import { Packr } from 'msgpackr';
import { HeraldError } from '../errors.js';
import type { ChunkDescriptor } from '../domain/chunk.js';

const VERSION = 1;
const FIELDS = ['campaignId', 'audienceId', 'seq', 'afterId', 'lastId', 'count'] as const;

// Plain arrays of integers: no records/structures, so any msgpack reader can decode an entry.
const packr = new Packr({ useRecords: false, variableMapSize: true });

export function encodeChunk(c: ChunkDescriptor): Buffer {
  return packr.pack([VERSION, c.campaignId, c.audienceId, c.seq, c.afterId, c.lastId, c.count]);
}

export function decodeChunk(buf: Buffer): ChunkDescriptor {
  let value: unknown;
  try {
    value = packr.unpack(buf);
  } catch (err) {
    throw new HeraldError('STREAM_ENTRY_INVALID', 'chunk entry: not msgpack', { field: 'd' }, err);
  }
  if (!Array.isArray(value) || value.length !== FIELDS.length + 1) {
    throw new HeraldError('STREAM_ENTRY_INVALID', 'chunk entry: expected an array of 7 values', { field: 'd' });
  }
  if (value[0] !== VERSION) {
    throw new HeraldError('STREAM_ENTRY_INVALID', `chunk entry: unknown version ${String(value[0])}`, { field: 'version' });
  }
  const out: Record<string, number> = {};
  for (let i = 0; i < FIELDS.length; i++) {
    const v: unknown = value[i + 1];
    const field = FIELDS[i]!;
    const min = field === 'afterId' ? 0 : 1;
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < min) {
      throw new HeraldError('STREAM_ENTRY_INVALID', `chunk entry: ${field} must be an integer >= ${min}`, { field });
    }
    out[field] = v;
  }
  const c = out as unknown as ChunkDescriptor;
  if (c.lastId <= c.afterId) throw new HeraldError('STREAM_ENTRY_INVALID', 'chunk entry: lastId must exceed afterId', { field: 'lastId' });
  return c;
}

/**
 * Encodes chunks for stream entries: a msgpackr array with a version tag and the range, then, for an entry
 * that carries its recipients (a re-plan's), their packed user ids (a length byte and the id's bytes each)
 * and what the channel needs of them. Decoding validates every field, since a stream entry is input like
 * any other.
 */
import { Packr } from 'msgpackr';
import { HeraldError } from '../errors.js';
import { carriesRecipients, type ChunkDescriptor, type ChunkRange } from '../domain/chunk.js';
import { checkPacked } from '../domain/packed-ids.js';

/**
 * 6 is a range alone (the consumer reads its recipients); 5 adds the recipients' attributes (templates rendered at send time) and is written only by campaigns that
 * carry them, so every other chunk stays 4; 4 added the segments; 3 (without them) is still read, so
 * entries planned before an upgrade are sent.
 */
const VERSION = 4;
const VERSION_ATTRS = 5;
const VERSION_RANGE = 6;
const INT_FIELDS = ['campaignId', 'audienceId', 'generation', 'seq', 'afterId', 'lastId', 'count'] as const;

// Plain arrays: no records/structures, so any msgpack reader can decode an entry.
const packr = new Packr({ useRecords: false, variableMapSize: true });

export function encodeChunk(c: ChunkDescriptor | ChunkRange): Buffer {
  if (!carriesRecipients(c))
    return packr.pack([VERSION_RANGE, c.campaignId, c.audienceId, c.generation, c.seq, c.afterId, c.lastId, c.count]);
  const attrs = c.attrs ?? null;
  return packr.pack([
    attrs === null ? VERSION : VERSION_ATTRS,
    c.campaignId,
    c.audienceId,
    c.generation,
    c.seq,
    c.afterId,
    c.lastId,
    c.count,
    c.users,
    c.addresses,
    c.segments,
    ...(attrs === null ? [] : [attrs]),
  ]);
}

function invalid(message: string, field: string, cause?: unknown): HeraldError {
  return new HeraldError('STREAM_ENTRY_INVALID', `chunk entry: ${message}`, { field }, cause);
}

/** A stream entry that must carry its recipients (a re-plan's, or the bench's). */
export function decodeChunk(buf: Buffer): ChunkDescriptor {
  const c = decodeEntry(buf);
  if (!carriesRecipients(c)) throw invalid('a range, not a chunk with recipients', 'version');
  return c;
}

/** A stream entry: a range, or a chunk with its recipients. */
export function decodeEntry(buf: Buffer): ChunkDescriptor | ChunkRange {
  let value: unknown;
  try {
    value = packr.unpack(buf);
  } catch (err) {
    throw invalid('not msgpack', 'd', err);
  }
  if (!Array.isArray(value)) throw invalid('expected an array', 'd');
  const version: unknown = value[0];
  if (version !== VERSION && version !== VERSION_ATTRS && version !== VERSION_RANGE && version !== 3)
    throw invalid(`unknown version ${String(version)}`, 'version');
  const fields = INT_FIELDS.length + (version === VERSION_RANGE ? 1 : version === 3 ? 3 : version === VERSION ? 4 : 5);
  if (value.length !== fields) throw invalid(`expected ${fields} values`, 'd');
  const ints: Record<(typeof INT_FIELDS)[number], number> = {
    campaignId: 0,
    audienceId: 0,
    generation: 0,
    seq: 0,
    afterId: 0,
    lastId: 0,
    count: 0,
  };
  for (let i = 0; i < INT_FIELDS.length; i++) {
    const v: unknown = value[i + 1];
    const field = INT_FIELDS[i]!;
    const min = field === 'afterId' || field === 'generation' ? 0 : 1;
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < min) throw invalid(`${field} must be an integer >= ${min}`, field);
    ints[field] = v;
  }
  if (ints.lastId <= ints.afterId) throw invalid('lastId must exceed afterId', 'lastId');
  if (ints.count > ints.lastId - ints.afterId) throw invalid('count must not exceed the range of ids', 'count');
  if (version === VERSION_RANGE) return ints;
  const users: unknown = value[INT_FIELDS.length + 1];
  if (!(users instanceof Uint8Array)) throw invalid('users must be binary', 'users');
  const problem = checkPacked(users, ints.count);
  if (problem !== null) throw invalid(`users: ${problem}`, 'users');
  const addresses: unknown = value[INT_FIELDS.length + 2];
  if (!isStringList(addresses, ints.count)) throw invalid('addresses must be null or count strings/nulls', 'addresses');
  const segments: unknown = version === 3 ? null : value[INT_FIELDS.length + 3];
  if (!isStringList(segments, ints.count)) throw invalid('segments must be null or count strings/nulls', 'segments');
  const attrs: unknown = version === VERSION_ATTRS ? value[INT_FIELDS.length + 4] : null;
  if (!isStringList(attrs, ints.count)) throw invalid('attrs must be null or count strings/nulls', 'attrs');
  return {
    ...ints,
    users: Buffer.isBuffer(users) ? users : Buffer.from(users.buffer, users.byteOffset, users.byteLength),
    addresses,
    segments,
    ...(attrs === null ? {} : { attrs }),
  };
}

function isStringList(v: unknown, count: number): v is Array<string | null> | null {
  return v === null || (Array.isArray(v) && v.length === count && v.every((a) => a === null || typeof a === 'string'));
}

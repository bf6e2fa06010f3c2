/**
 * 64-bit fingerprints of (topic, user id), and a compact set of them: the dispatcher's in-process index of
 * suppressions (consent/suppression-screen.ts). 8 bytes an entry in two Uint32Arrays (open addressing, load
 * at most 1/2), so 1M suppressions cost 16 MB at most, against 60–100 MB for a Set of the strings.
 * A fingerprint is a hash, so two keys can share one: a hit is a candidate, confirmed in PostgreSQL, and a
 * miss is exact (the same function wrote every entry), which is what makes the index safe to trust.
 * Fingerprints are over the user id's UTF-8 bytes, as chunks carry them packed (packed-ids.ts), so a
 * sender looks a sub-batch up without decoding its ids to strings; they are stored with each row
 * (suppressions.fp) so every process computes nothing but the lookups.
 */

/** a fingerprint as two unsigned 32-bit halves */
export interface Fingerprint {
  hi: number;
  lo: number;
}

function fmix(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** The hash state after a topic ('' for the global list): fed its length, then its code units. */
export interface TopicSeed {
  a: number;
  b: number;
}

export function topicSeed(topic: string): TopicSeed {
  let a = 0x811c9dc5 ^ topic.length;
  let b = 0x9747b28c ^ Math.imul(topic.length, 0x5bd1e995);
  for (let i = 0; i < topic.length; i++) {
    const c = topic.charCodeAt(i);
    a = Math.imul(a ^ c, 0x01000193);
    b = Math.imul(b ^ c, 0x5bd1e995) ^ (b >>> 15);
  }
  return { a, b };
}

/** Fills `out` with the fingerprint of the UTF-8 bytes `bytes[start, end)` under the topic `seed`; returns `out`. */
export function fingerprintBytes(seed: TopicSeed, bytes: Uint8Array, start: number, end: number, out: Fingerprint): Fingerprint {
  let a = seed.a;
  let b = seed.b;
  for (let i = start; i < end; i++) {
    const c = bytes[i]!;
    a = Math.imul(a ^ c, 0x01000193);
    b = Math.imul(b ^ c, 0x5bd1e995) ^ (b >>> 15);
  }
  const hi = fmix(a ^ Math.imul(end - start, 0x27d4eb2d));
  const lo = fmix(b ^ hi);
  out.hi = hi;
  out.lo = lo;
  return out;
}

/**
 * Fills `a` and `b` with the fingerprints of the same bytes under two seeds (the global list's and a
 * topic's) in one pass over them, as the consent screen looks every user up on both lists.
 */
export function fingerprintBytesTwice(
  seedA: TopicSeed,
  seedB: TopicSeed,
  bytes: Uint8Array,
  start: number,
  end: number,
  a: Fingerprint,
  b: Fingerprint,
): void {
  let a1 = seedA.a;
  let b1 = seedA.b;
  let a2 = seedB.a;
  let b2 = seedB.b;
  for (let i = start; i < end; i++) {
    const c = bytes[i]!;
    a1 = Math.imul(a1 ^ c, 0x01000193);
    b1 = Math.imul(b1 ^ c, 0x5bd1e995) ^ (b1 >>> 15);
    a2 = Math.imul(a2 ^ c, 0x01000193);
    b2 = Math.imul(b2 ^ c, 0x5bd1e995) ^ (b2 >>> 15);
  }
  const len = Math.imul(end - start, 0x27d4eb2d);
  a.hi = fmix(a1 ^ len);
  a.lo = fmix(b1 ^ a.hi);
  b.hi = fmix(a2 ^ len);
  b.lo = fmix(b2 ^ b.hi);
}

/** Fills `out` with the fingerprint of `userId` (its UTF-8 bytes) under the topic `seed`; returns `out`. */
export function fingerprintInto(seed: TopicSeed, userId: string, out: Fingerprint): Fingerprint {
  const bytes = Buffer.from(userId, 'utf8');
  return fingerprintBytes(seed, bytes, 0, bytes.length, out);
}

export function fingerprint(topic: string, userId: string): Fingerprint {
  return fingerprintInto(topicSeed(topic), userId, { hi: 0, lo: 0 });
}

/** The fingerprint as PostgreSQL's signed bigint, in decimal. */
export function fingerprintSql(f: Fingerprint): string {
  return BigInt.asIntN(64, (BigInt(f.hi) << 32n) | BigInt(f.lo)).toString();
}

/**
 * A set of fingerprints. (0, 0) marks an empty slot, so the fingerprint (0, 0) is stored as (0, 1): one more
 * candidate among 2^64, confirmed like any other. A slot's two halves sit side by side, so a lookup in a
 * table far larger than the caches costs one cache miss, not two.
 */
export class FingerprintSet {
  private slots: Uint32Array;
  private mask: number;
  size = 0;

  constructor(expected = 1024) {
    let cap = 1024;
    while (cap < expected * 2) cap *= 2;
    this.slots = new Uint32Array(cap * 2);
    this.mask = cap - 1;
  }

  /** bytes held by the table */
  get bytes(): number {
    return this.slots.byteLength;
  }

  add(hi: number, lo: number): void {
    hi >>>= 0;
    lo >>>= 0;
    if (hi === 0 && lo === 0) lo = 1;
    if ((this.size + 1) * 4 > this.slots.length) this.grow();
    if (this.put(hi, lo)) this.size++;
  }

  has(hi: number, lo: number): boolean {
    hi >>>= 0;
    lo >>>= 0;
    if (hi === 0 && lo === 0) lo = 1;
    const slots = this.slots;
    for (let i = (lo ^ Math.imul(hi, 0x9e3779b1)) & this.mask; ; i = (i + 1) & this.mask) {
      const h = slots[2 * i]!;
      const l = slots[2 * i + 1]!;
      if (h === hi && l === lo) return true;
      if (h === 0 && l === 0) return false;
    }
  }

  private put(hi: number, lo: number): boolean {
    const slots = this.slots;
    for (let i = (lo ^ Math.imul(hi, 0x9e3779b1)) & this.mask; ; i = (i + 1) & this.mask) {
      const h = slots[2 * i]!;
      const l = slots[2 * i + 1]!;
      if (h === hi && l === lo) return false;
      if (h === 0 && l === 0) {
        slots[2 * i] = hi;
        slots[2 * i + 1] = lo;
        return true;
      }
    }
  }

  private grow(): void {
    const old = this.slots;
    this.slots = new Uint32Array(old.length * 2);
    this.mask = this.slots.length / 2 - 1;
    for (let i = 0; i < old.length; i += 2) if (old[i] !== 0 || old[i + 1] !== 0) this.put(old[i]!, old[i + 1]!);
  }
}
